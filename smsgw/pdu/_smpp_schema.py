"""The SMPP 3.4 wire formats declared with construct: header, every body and the TLV stream.

This is the reference declaration of the protocol and the codec for the PDUs that are not on the hot path.
Bodies parse to plain containers whose keys are the dataclass field names (sm_length, number_of_dests and
no_unsuccess live inside ShortMessage, Destinations and UnsuccessList); `smsgw.pdu.smpp` turns them into typed
values. The hot PDUs have a hand-written twin in
`smpp.py`, proven byte-identical to these declarations by property tests.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any, Final

from construct import (
    Construct,
    ConstructError,
    Container,
    Int8ub,
    Int16ub,
    Int32ub,
    Struct,
    Terminated,
)

from smsgw.pdu import smpp_time
from smsgw.pdu.constants import CommandId, CommandStatus, DestFlag
from smsgw.pdu.errors import InvalidField, PduError
from smsgw.pdu.tlv import (
    SAR_NAMES,
    SPECS_BY_NAME,
    SPECS_BY_TAG,
    RawTlv,
    TlvSpec,
    Tlvs,
    TlvValue,
    check_sar_group,
    tlvs_from_values,
)

S = CommandStatus

HEADER: Final = Struct(
    "command_length" / Int32ub,
    "command_id" / Int32ub,
    "command_status" / Int32ub,
    "sequence_number" / Int32ub,
)

MAX_SHORT_MESSAGE: Final = 254
MAX_DESTINATIONS: Final = 254


def _read(stream: BytesIO, size: int, what: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise InvalidField(f"PDU body ends inside {what}", command_status=S.ESME_RINVCMDLEN)
    return data


class CString(Construct):  # type: ignore[misc]
    """A C-octet string of at most `max_length` octets including the NUL; breaking that answers `status`."""

    def __init__(self, field: str, max_length: int, status: int) -> None:
        super().__init__()
        self.field = field
        self.max_length = max_length
        self.status = status

    def _parse(self, stream: BytesIO, context: Any, path: str) -> str:
        start = stream.tell()
        window = stream.read(self.max_length)
        nul = window.find(b"\x00")
        if nul < 0:
            if len(window) == self.max_length:
                raise InvalidField(f"{self.field} longer than {self.max_length - 1} octets", command_status=self.status)
            raise InvalidField(f"PDU body ends inside {self.field}", command_status=S.ESME_RINVCMDLEN)
        stream.seek(start + nul + 1)
        return self._check(window[:nul].decode("latin-1"))

    def _build(self, obj: object, stream: BytesIO, context: Any, path: str) -> object:
        if not isinstance(obj, str):
            raise InvalidField(f"{self.field} must be str, got {type(obj).__name__}", command_status=self.status)
        try:
            data = obj.encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidField(f"{self.field} {obj!r} is not Latin-1", command_status=self.status) from None
        if b"\x00" in data or len(data) >= self.max_length:
            raise InvalidField(
                f"{self.field} {obj!r}: at most {self.max_length - 1} octets, no NUL", command_status=self.status
            )
        self._check(obj)
        stream.write(data + b"\x00")
        return obj

    def _check(self, text: str) -> str:
        return text


class TimeString(CString):
    """schedule_delivery_time / validity_period / final_date: empty or a valid `YYMMDDhhmmsstnnp`."""

    def __init__(self, field: str, status: int) -> None:
        super().__init__(field, smpp_time.TIME_LENGTH + 1, status)

    def _check(self, text: str) -> str:
        smpp_time.check_smpp_time(text, self.status)
        return text


def _address(prefix: str, name: str, max_length: int, status: int) -> list[Construct]:
    return [f"{prefix}_ton" / Int8ub, f"{prefix}_npi" / Int8ub, name / CString(name, max_length, status)]


def _source(max_length: int) -> list[Construct]:
    return _address("source_addr", "source_addr", max_length, S.ESME_RINVSRCADR)


def _dest(max_length: int) -> list[Construct]:
    return _address("dest_addr", "destination_addr", max_length, S.ESME_RINVDSTADR)


class ShortMessage(Construct):  # type: ignore[misc]
    """sm_length (1 octet, at most 254) followed by that many octets."""

    def _parse(self, stream: BytesIO, context: Any, path: str) -> bytes:
        length = _read(stream, 1, "sm_length")[0]
        if length > MAX_SHORT_MESSAGE:
            raise InvalidField(f"sm_length {length} above 254", command_status=S.ESME_RINVMSGLEN)
        data = stream.read(length)
        if len(data) != length:
            raise InvalidField(f"sm_length {length} runs past the PDU end", command_status=S.ESME_RINVMSGLEN)
        return data

    def _build(self, obj: object, stream: BytesIO, context: Any, path: str) -> object:
        if not isinstance(obj, bytes):
            raise InvalidField(f"short_message must be bytes, got {type(obj).__name__}", command_status=S.ESME_RSYSERR)
        if len(obj) > MAX_SHORT_MESSAGE:
            raise InvalidField(
                f"short_message of {len(obj)} octets above 254; use message_payload", command_status=S.ESME_RINVMSGLEN
            )
        stream.write(bytes((len(obj),)) + obj)
        return obj


TLV_HEADER: Final = Struct("tag" / Int16ub, "length" / Int16ub)
_TLV_HEADER_SIZE: Final[int] = TLV_HEADER.sizeof()
_TLV_INT: Final = {"u8": Int8ub, "u16": Int16ub, "u32": Int32ub}


class TlvStream(Construct):  # type: ignore[misc]
    """Every remaining octet of the body as TLVs, parsed into a `Tlvs`."""

    def _parse(self, stream: BytesIO, context: Any, path: str) -> Tlvs:
        values: dict[str, TlvValue] = {}
        unknown: list[RawTlv] = []
        while True:
            head = stream.read(_TLV_HEADER_SIZE)
            if not head:
                return tlvs_from_values(values, unknown)
            if len(head) < _TLV_HEADER_SIZE:
                raise InvalidField(f"{len(head)} stray octets after the last TLV", command_status=S.ESME_RINVTLVSTREAM)
            header = TLV_HEADER.parse(head)
            value = stream.read(header.length)
            if len(value) != header.length:
                raise InvalidField(
                    f"TLV 0x{header.tag:04X} length {header.length} runs past the PDU end",
                    command_status=S.ESME_RINVTLVSTREAM,
                )
            spec = SPECS_BY_TAG.get(header.tag)
            if spec is None:
                unknown.append(RawTlv(header.tag, value))
                continue
            if spec.name in values:
                raise InvalidField(f"TLV {spec.name} appears twice", command_status=S.ESME_RINVTLVSTREAM)
            values[spec.name] = _parse_tlv_value(spec, value)

    def _build(self, obj: object, stream: BytesIO, context: Any, path: str) -> object:
        if not isinstance(obj, Tlvs):
            raise InvalidField(f"tlvs must be Tlvs, got {type(obj).__name__}", command_status=S.ESME_RSYSERR)
        present = obj.present()
        if any(name in present for name in SAR_NAMES):
            check_sar_group(present)
        for name, value in present.items():
            spec = SPECS_BY_NAME[name]
            data = _build_tlv_value(spec, value)
            stream.write(TLV_HEADER.build({"tag": spec.tag, "length": len(data)}) + data)
        for raw in obj.unknown:
            if not isinstance(raw, RawTlv) or not 0 <= raw.tag <= 0xFFFF or len(raw.value) > 0xFFFF:
                raise InvalidField(f"bad unknown TLV {raw!r}", command_status=S.ESME_RINVTLVVAL)
            stream.write(TLV_HEADER.build({"tag": raw.tag, "length": len(raw.value)}) + raw.value)
        return obj


def _tlv_length_error(spec: TlvSpec, length: int) -> InvalidField:
    return InvalidField(
        f"TLV {spec.name} (0x{spec.tag:04X}) length {length} outside {spec.min_length}..{spec.max_length}",
        command_status=S.ESME_RINVTLVLEN,
    )


def _parse_tlv_value(spec: TlvSpec, value: bytes) -> TlvValue:
    if not spec.min_length <= len(value) <= spec.max_length:
        raise _tlv_length_error(spec, len(value))
    if spec.kind in _TLV_INT:
        return int(_TLV_INT[spec.kind].parse(value))
    if spec.kind == "flag":
        return True
    if spec.kind == "octets":
        return value
    text = value[:-1] if value.endswith(b"\x00") else value
    if b"\x00" in text:
        raise InvalidField(f"TLV {spec.name} has a NUL inside its C-octet string", command_status=S.ESME_RINVTLVVAL)
    return text.decode("latin-1")


def _build_tlv_value(spec: TlvSpec, value: TlvValue) -> bytes:
    kind = spec.kind
    if kind in _TLV_INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidField(f"TLV {spec.name} takes int", command_status=S.ESME_RINVTLVVAL)
        try:
            data: bytes = _TLV_INT[kind].build(value)
        except ConstructError:
            raise InvalidField(f"TLV {spec.name} value {value} out of range", command_status=S.ESME_RINVTLVVAL) from None
    elif kind == "flag":
        if value is not True:
            raise InvalidField(f"TLV {spec.name} is a flag: True or None", command_status=S.ESME_RINVTLVVAL)
        data = b""
    elif kind == "octets":
        if not isinstance(value, bytes):
            raise InvalidField(f"TLV {spec.name} takes bytes", command_status=S.ESME_RINVTLVVAL)
        data = value
    else:
        if not isinstance(value, str) or "\x00" in value:
            raise InvalidField(f"TLV {spec.name} takes a str without NUL", command_status=S.ESME_RINVTLVVAL)
        try:
            data = value.encode("latin-1") + b"\x00"
        except UnicodeEncodeError:
            raise InvalidField(f"TLV {spec.name} {value!r} is not Latin-1", command_status=S.ESME_RINVTLVVAL) from None
    if not spec.min_length <= len(data) <= spec.max_length:
        raise _tlv_length_error(spec, len(data))
    return data


class Destinations(Construct):  # type: ignore[misc]
    """submit_multi: number_of_dests then dest_address entries, each an SME address or a distribution list."""

    _SME: Final = Struct(*_dest(21))
    _DL: Final = Struct("dl_name" / CString("dl_name", 21, S.ESME_RINVDLNAME))

    def _parse(self, stream: BytesIO, context: Any, path: str) -> list[Container]:
        count = _read(stream, 1, "number_of_dests")[0]
        if not 1 <= count <= MAX_DESTINATIONS:
            raise InvalidField(f"number_of_dests {count} outside 1..254", command_status=S.ESME_RINVNUMDESTS)
        entries = []
        for _ in range(count):
            flag = _read(stream, 1, "dest_flag")[0]
            if flag == DestFlag.SME_ADDRESS:
                entry = self._SME._parsereport(stream, context, path)
            elif flag == DestFlag.DISTRIBUTION_LIST:
                entry = self._DL._parsereport(stream, context, path)
            else:
                raise InvalidField(f"dest_flag {flag} is neither 1 nor 2", command_status=S.ESME_RINVDESTFLAG)
            entry.dest_flag = flag
            entries.append(entry)
        return entries

    def _build(self, obj: list[dict[str, Any]], stream: BytesIO, context: Any, path: str) -> object:
        if not 1 <= len(obj) <= MAX_DESTINATIONS:
            raise InvalidField(f"{len(obj)} destinations, expected 1..254", command_status=S.ESME_RINVNUMDESTS)
        stream.write(bytes((len(obj),)))
        for entry in obj:
            flag = entry["dest_flag"]
            stream.write(bytes((flag,)))
            (self._SME if flag == DestFlag.SME_ADDRESS else self._DL)._build(entry, stream, context, path)
        return obj


class UnsuccessList(Construct):  # type: ignore[misc]
    """submit_multi_resp: no_unsuccess then that many unsuccess_sme entries."""

    _ENTRY: Final = Struct(*_dest(21), "error_status_code" / Int32ub)

    def _parse(self, stream: BytesIO, context: Any, path: str) -> list[Container]:
        count = _read(stream, 1, "no_unsuccess")[0]
        return [self._ENTRY._parsereport(stream, context, path) for _ in range(count)]

    def _build(self, obj: list[dict[str, Any]], stream: BytesIO, context: Any, path: str) -> object:
        if len(obj) > 255:
            raise InvalidField(f"{len(obj)} unsuccess_sme entries, at most 255", command_status=S.ESME_RSYSERR)
        stream.write(bytes((len(obj),)))
        for entry in obj:
            self._ENTRY._build(entry, stream, context, path)
        return obj


SERVICE_TYPE: Final = "service_type" / CString("service_type", 6, S.ESME_RINVSERTYP)
MESSAGE_ID: Final = "message_id" / CString("message_id", 65, S.ESME_RINVMSGID)
SYSTEM_ID: Final = "system_id" / CString("system_id", 16, S.ESME_RINVSYSID)
PASSWORD: Final = "password" / CString("password", 9, S.ESME_RINVPASWD)
TLVS: Final = "tlvs" / TlvStream()
END: Final = Terminated

# esm_class .. short_message: identical in submit_sm, deliver_sm and (after the destinations) submit_multi.
_MESSAGE_TAIL: Final = [
    "esm_class" / Int8ub,
    "protocol_id" / Int8ub,
    "priority_flag" / Int8ub,
    "schedule_delivery_time" / TimeString("schedule_delivery_time", S.ESME_RINVSCHED),
    "validity_period" / TimeString("validity_period", S.ESME_RINVEXPIRY),
    "registered_delivery" / Int8ub,
    "replace_if_present_flag" / Int8ub,
    "data_coding" / Int8ub,
    "sm_default_msg_id" / Int8ub,
    "short_message" / ShortMessage(),
]

BIND: Final = Struct(
    SYSTEM_ID,
    PASSWORD,
    "system_type" / CString("system_type", 13, S.ESME_RINVSYSTYP),
    "interface_version" / Int8ub,
    *_address("addr", "address_range", 41, S.ESME_RINVPARLEN),
    END,
)
BIND_RESP: Final = Struct(SYSTEM_ID, TLVS)
OUTBIND: Final = Struct(SYSTEM_ID, PASSWORD, END)
EMPTY: Final = Struct(END)
SHORT_MESSAGE: Final = Struct(SERVICE_TYPE, *_source(21), *_dest(21), *_MESSAGE_TAIL, TLVS)
MESSAGE_ID_RESP: Final = Struct(MESSAGE_ID, TLVS)
SUBMIT_MULTI: Final = Struct(
    SERVICE_TYPE, *_source(21), "destinations" / Destinations(), *_MESSAGE_TAIL, TLVS
)
SUBMIT_MULTI_RESP: Final = Struct(MESSAGE_ID, "unsuccess_sme" / UnsuccessList(), TLVS)
DATA_SM: Final = Struct(
    SERVICE_TYPE,
    *_source(65),
    *_dest(65),
    "esm_class" / Int8ub,
    "registered_delivery" / Int8ub,
    "data_coding" / Int8ub,
    TLVS,
)
QUERY_SM: Final = Struct(MESSAGE_ID, *_source(21), END)
QUERY_SM_RESP: Final = Struct(
    MESSAGE_ID,
    "final_date" / TimeString("final_date", S.ESME_RINVPARLEN),
    "message_state" / Int8ub,
    "error_code" / Int8ub,
    END,
)
CANCEL_SM: Final = Struct(SERVICE_TYPE, MESSAGE_ID, *_source(21), *_dest(21), END)
REPLACE_SM: Final = Struct(
    MESSAGE_ID,
    *_source(21),
    "schedule_delivery_time" / TimeString("schedule_delivery_time", S.ESME_RINVSCHED),
    "validity_period" / TimeString("validity_period", S.ESME_RINVEXPIRY),
    "registered_delivery" / Int8ub,
    "sm_default_msg_id" / Int8ub,
    "short_message" / ShortMessage(),
    END,
)
ALERT_NOTIFICATION: Final = Struct(*_source(65), *_address("esme_addr", "esme_addr", 65, S.ESME_RINVPARLEN), TLVS)

BODIES: Final[dict[int, Struct]] = {
    CommandId.GENERIC_NACK: EMPTY,
    CommandId.BIND_RECEIVER: BIND,
    CommandId.BIND_RECEIVER_RESP: BIND_RESP,
    CommandId.BIND_TRANSMITTER: BIND,
    CommandId.BIND_TRANSMITTER_RESP: BIND_RESP,
    CommandId.BIND_TRANSCEIVER: BIND,
    CommandId.BIND_TRANSCEIVER_RESP: BIND_RESP,
    CommandId.OUTBIND: OUTBIND,
    CommandId.UNBIND: EMPTY,
    CommandId.UNBIND_RESP: EMPTY,
    CommandId.SUBMIT_SM: SHORT_MESSAGE,
    CommandId.SUBMIT_SM_RESP: MESSAGE_ID_RESP,
    CommandId.DELIVER_SM: SHORT_MESSAGE,
    CommandId.DELIVER_SM_RESP: MESSAGE_ID_RESP,
    CommandId.SUBMIT_MULTI: SUBMIT_MULTI,
    CommandId.SUBMIT_MULTI_RESP: SUBMIT_MULTI_RESP,
    CommandId.DATA_SM: DATA_SM,
    CommandId.DATA_SM_RESP: MESSAGE_ID_RESP,
    CommandId.QUERY_SM: QUERY_SM,
    CommandId.QUERY_SM_RESP: QUERY_SM_RESP,
    CommandId.CANCEL_SM: CANCEL_SM,
    CommandId.CANCEL_SM_RESP: EMPTY,
    CommandId.REPLACE_SM: REPLACE_SM,
    CommandId.REPLACE_SM_RESP: EMPTY,
    CommandId.ENQUIRE_LINK: EMPTY,
    CommandId.ENQUIRE_LINK_RESP: EMPTY,
    CommandId.ALERT_NOTIFICATION: ALERT_NOTIFICATION,
}


def parse_body(command_id: int, body: bytes) -> Container:
    """The fields of one body; PduError for anything malformed."""
    try:
        return BODIES[command_id].parse(body)
    except PduError:
        raise
    except ConstructError as exc:
        raise InvalidField(f"malformed body: {exc}", command_status=S.ESME_RINVCMDLEN) from None


def build_body(command_id: int, values: dict[str, Any]) -> bytes:
    try:
        data: bytes = BODIES[command_id].build(values)
    except PduError:
        raise
    except (ConstructError, KeyError, TypeError, ValueError) as exc:
        raise InvalidField(f"cannot encode: {exc}", command_status=S.ESME_RSYSERR) from None
    return data


