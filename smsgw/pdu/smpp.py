"""SMPP 3.4 PDUs as typed frozen values, and their codec: `decode_pdu(bytes) -> Pdu`, `encode_pdu(Pdu) -> bytes`.

Field names are the spec's. Integers stay plain ints (compare with `smsgw.pdu.constants`), C-octet strings are
`str` (Latin-1, so any octet round-trips), time fields stay wire strings (see `smsgw.pdu.smpp_time`) so a round
trip is byte-exact, `short_message` is bytes and `sm_length`/counts are derived. Optional parameters live in
`pdu.tlvs` (`smsgw.pdu.tlv.Tlvs`).

The wire formats are declared with construct in `_smpp_schema`; submit_sm, deliver_sm, their responses and
enquire_link take a hand-written path here that tests prove byte-identical to those declarations.

Response bodies: a response whose body is absent decodes with default fields (SMSCs omit the body of error
responses, as SMPP 3.4 section 4.4.2 allows); encoding an error response whose fields are all defaults writes no
body.
"""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, Final

from smsgw.pdu import _smpp_schema as schema
from smsgw.pdu.smpp_time import TIME_LENGTH, check_smpp_time
from smsgw.pdu.constants import HEADER_LENGTH, CommandId, CommandStatus, DestFlag, InterfaceVersion, is_response
from smsgw.pdu.errors import InvalidField, PduError
from smsgw.pdu.tlv import EMPTY_TLVS, Tlvs, decode_tlvs, encode_tlvs

S = CommandStatus

_HEADER: Final = struct.Struct(">IIII")
_MAX_UINT32: Final = 0xFFFFFFFF


@dataclass(frozen=True, slots=True, kw_only=True)
class Pdu:
    """Header fields every PDU has; `command_id` is a class constant, `command_length` is derived."""

    command_id: ClassVar[int]
    sequence_number: int
    command_status: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericNack(Pdu):
    command_id: ClassVar[int] = CommandId.GENERIC_NACK


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bind(Pdu):
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = InterfaceVersion.SMPP_3_4
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitter(_Bind):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiver(_Bind):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiver(_Bind):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER


@dataclass(frozen=True, slots=True, kw_only=True)
class _BindResp(Pdu):
    system_id: str = ""
    tlvs: Tlvs = EMPTY_TLVS  # sc_interface_version


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitterResp(_BindResp):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiverResp(_BindResp):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiverResp(_BindResp):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class Outbind(Pdu):
    command_id: ClassVar[int] = CommandId.OUTBIND
    system_id: str = ""
    password: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Unbind(Pdu):
    command_id: ClassVar[int] = CommandId.UNBIND


@dataclass(frozen=True, slots=True, kw_only=True)
class UnbindResp(Pdu):
    command_id: ClassVar[int] = CommandId.UNBIND_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLink(Pdu):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLinkResp(Pdu):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class _Message(Pdu):
    """The fields submit_sm, deliver_sm and submit_multi share (all but the destination)."""

    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    tlvs: Tlvs = EMPTY_TLVS


@dataclass(frozen=True, slots=True, kw_only=True)
class _ShortMessage(_Message):
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSm(_ShortMessage):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSm(_ShortMessage):
    command_id: ClassVar[int] = CommandId.DELIVER_SM


@dataclass(frozen=True, slots=True, kw_only=True)
class _MessageIdResp(Pdu):
    message_id: str = ""
    tlvs: Tlvs = EMPTY_TLVS


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSmResp(_MessageIdResp):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSmResp(_MessageIdResp):
    command_id: ClassVar[int] = CommandId.DELIVER_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class DataSmResp(_MessageIdResp):
    """TLVs: delivery_failure_reason, network_error_code, additional_status_info_text, dpf_result."""

    command_id: ClassVar[int] = CommandId.DATA_SM_RESP


@dataclass(frozen=True, slots=True)
class SmeAddress:
    """A submit_multi destination that is one SME (dest_flag 1)."""

    dest_addr_ton: int
    dest_addr_npi: int
    destination_addr: str


@dataclass(frozen=True, slots=True)
class DistributionList:
    """A submit_multi destination naming an SMSC distribution list (dest_flag 2)."""

    dl_name: str


@dataclass(frozen=True, slots=True)
class UnsuccessSme:
    """A submit_multi_resp entry: a destination the SMSC refused, with the status it gave."""

    dest_addr_ton: int
    dest_addr_npi: int
    destination_addr: str
    error_status_code: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitMulti(_Message):
    command_id: ClassVar[int] = CommandId.SUBMIT_MULTI
    destinations: tuple[SmeAddress | DistributionList, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitMultiResp(Pdu):
    command_id: ClassVar[int] = CommandId.SUBMIT_MULTI_RESP
    message_id: str = ""
    unsuccess_sme: tuple[UnsuccessSme, ...] = ()
    tlvs: Tlvs = EMPTY_TLVS


@dataclass(frozen=True, slots=True, kw_only=True)
class DataSm(Pdu):
    command_id: ClassVar[int] = CommandId.DATA_SM
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0
    tlvs: Tlvs = EMPTY_TLVS


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySm(Pdu):
    command_id: ClassVar[int] = CommandId.QUERY_SM
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySmResp(Pdu):
    command_id: ClassVar[int] = CommandId.QUERY_SM_RESP
    message_id: str = ""
    final_date: str = ""
    message_state: int = 0
    error_code: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelSm(Pdu):
    command_id: ClassVar[int] = CommandId.CANCEL_SM
    service_type: str = ""
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.CANCEL_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaceSm(Pdu):
    command_id: ClassVar[int] = CommandId.REPLACE_SM
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaceSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.REPLACE_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertNotification(Pdu):
    command_id: ClassVar[int] = CommandId.ALERT_NOTIFICATION
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    esme_addr_ton: int = 0
    esme_addr_npi: int = 0
    esme_addr: str = ""
    tlvs: Tlvs = EMPTY_TLVS  # ms_availability_status


PDU_CLASSES: Final[dict[int, type[Pdu]]] = {
    cls.command_id: cls
    for cls in (
        GenericNack,
        BindTransmitter,
        BindTransmitterResp,
        BindReceiver,
        BindReceiverResp,
        BindTransceiver,
        BindTransceiverResp,
        Outbind,
        Unbind,
        UnbindResp,
        SubmitSm,
        SubmitSmResp,
        SubmitMulti,
        SubmitMultiResp,
        DeliverSm,
        DeliverSmResp,
        DataSm,
        DataSmResp,
        QuerySm,
        QuerySmResp,
        CancelSm,
        CancelSmResp,
        ReplaceSm,
        ReplaceSmResp,
        EnquireLink,
        EnquireLinkResp,
        AlertNotification,
    )
}
assert set(PDU_CLASSES) == set(schema.BODIES), "every PDU class needs a construct body declaration"

# Body fields of each class in declaration order, without the header fields.
_BODY_FIELDS: Final[dict[type[Pdu], tuple[str, ...]]] = {
    cls: tuple(f.name for f in fields(cls) if f.name not in ("sequence_number", "command_status"))
    for cls in PDU_CLASSES.values()
}
_EMPTY_BODY: Final[dict[type[Pdu], Pdu]] = {cls: cls(sequence_number=0) for cls in PDU_CLASSES.values()}


def response_class(request: type[Pdu]) -> type[Pdu]:
    """The `_resp` class answering `request` (PduError for outbind, alert_notification and responses)."""
    cls = PDU_CLASSES.get(request.command_id | 0x80000000)
    if cls is None or is_response(request.command_id):
        raise PduError(f"{request.__name__} has no response", command_status=S.ESME_RINVCMDID)
    return cls


def response_for(request: Pdu, *, command_status: int = 0) -> Pdu:
    """The response to `request` with its sequence number and default body; set fields with dataclasses.replace."""
    return response_class(type(request))(sequence_number=request.sequence_number, command_status=command_status)


def generic_nack_for(error: PduError) -> GenericNack:
    """The generic_nack answering a PDU that could not be decoded (sequence number 0 when unreadable)."""
    return GenericNack(sequence_number=error.sequence_number or 0, command_status=error.command_status)


# ---------------------------------------------------------------------------------------------------------------
# Hand-written twin of the construct declarations for the hot PDUs.


def _truncated(field: str) -> InvalidField:
    return InvalidField(f"PDU body ends inside {field}", command_status=S.ESME_RINVCMDLEN)


def _cstring_error(data: bytes, pos: int, max_length: int, status: int, field: str) -> InvalidField:
    """Why no NUL was found in data[pos:pos + max_length]: the field is too long, or the body ended first."""
    if pos + max_length <= len(data):
        return InvalidField(f"{field} longer than {max_length - 1} octets", command_status=status)
    return _truncated(field)


def _cstring(data: bytes, pos: int, max_length: int, status: int, field: str) -> tuple[str, int]:
    nul = data.find(0, pos, pos + max_length)
    if nul < 0:
        raise _cstring_error(data, pos, max_length, status, field)
    return data[pos:nul].decode("latin-1"), nul + 1


# The layout of a submit_sm/deliver_sm body up to short_message: each C-octet string at most its length limit
# (service_type 6, addresses 21, times 17, NUL included), the 1-octet fields taken as runs. One match finds
# every field of a well-formed body in C; for a body it does not match, `_layout_error` walks the fields in wire
# order to name the broken one (property tests compare the result with the construct declaration).
_SHORT_MESSAGE_LAYOUT: Final = re.compile(
    rb"([^\0]{0,5})\0(..)([^\0]{0,20})\0(..)([^\0]{0,20})\0(...)([^\0]{0,16})\0([^\0]{0,16})\0(.....)", re.DOTALL
)


class _ShortMessageBuilder(_ShortMessage):
    """Same slots as SubmitSm/DeliverSm but plain attribute assignment: the fast decoder fills one and then makes
    it the frozen class. A frozen dataclass's __init__ pays one object.__setattr__ call per field (3 us for these
    20); stores into the slots of a class with the ordinary __setattr__/__delattr__ are specialised by the
    interpreter, which with the class switch makes building the value about a quarter of that."""

    __slots__ = ()
    __setattr__ = object.__setattr__
    __delattr__ = object.__delattr__


_new_object: Final = object.__new__


def _decode_short_message(cls: type[_ShortMessage], data: bytes, command_status: int, sequence_number: int) -> Pdu:
    match = _SHORT_MESSAGE_LAYOUT.match(data, HEADER_LENGTH)
    if match is None:
        raise _layout_error(data)
    service_type, source, source_addr, destination, destination_addr, flags, schedule, validity, tail = (
        match.groups()
    )
    if schedule:
        schedule_delivery_time = schedule.decode("latin-1")
        check_smpp_time(schedule_delivery_time, S.ESME_RINVSCHED)
    else:
        schedule_delivery_time = ""
    if validity:
        validity_period = validity.decode("latin-1")
        check_smpp_time(validity_period, S.ESME_RINVEXPIRY)
    else:
        validity_period = ""
    source_addr_ton, source_addr_npi = source
    dest_addr_ton, dest_addr_npi = destination
    esm_class, protocol_id, priority_flag = flags
    registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id, sm_length = tail
    if sm_length > schema.MAX_SHORT_MESSAGE:
        raise InvalidField(f"sm_length {sm_length} above 254", command_status=S.ESME_RINVMSGLEN)
    pos = match.end()
    sm_end = pos + sm_length
    end = len(data)
    if sm_end > end:
        raise InvalidField(f"sm_length {sm_length} runs past the PDU end", command_status=S.ESME_RINVMSGLEN)
    pdu: Any = _new_object(_ShortMessageBuilder)  # Any: mypy would refuse stores into the frozen fields
    pdu.sequence_number = sequence_number
    pdu.command_status = command_status
    pdu.service_type = service_type.decode("latin-1") if service_type else ""
    pdu.source_addr_ton = source_addr_ton
    pdu.source_addr_npi = source_addr_npi
    pdu.source_addr = source_addr.decode("latin-1")
    pdu.esm_class = esm_class
    pdu.protocol_id = protocol_id
    pdu.priority_flag = priority_flag
    pdu.schedule_delivery_time = schedule_delivery_time
    pdu.validity_period = validity_period
    pdu.registered_delivery = registered_delivery
    pdu.replace_if_present_flag = replace_if_present_flag
    pdu.data_coding = data_coding
    pdu.sm_default_msg_id = sm_default_msg_id
    pdu.short_message = data[pos:sm_end]
    pdu.tlvs = decode_tlvs(data, sm_end) if sm_end < end else EMPTY_TLVS
    pdu.dest_addr_ton = dest_addr_ton
    pdu.dest_addr_npi = dest_addr_npi
    pdu.destination_addr = destination_addr.decode("latin-1")
    pdu.__class__ = cls  # frozen from here on
    frozen: Pdu = pdu  # typed again without typing.cast, a function call per PDU
    return frozen


# The C-octet strings of the layout in wire order: (octets with the NUL, status, field, whether it is a time
# string, the run of 1-octet fields after it, the first of those).
_LAYOUT_STRINGS: Final = (
    (6, S.ESME_RINVSERTYP, "service_type", False, 2, "source_addr_ton"),
    (21, S.ESME_RINVSRCADR, "source_addr", False, 2, "dest_addr_ton"),
    (21, S.ESME_RINVDSTADR, "destination_addr", False, 3, "esm_class"),
    (17, S.ESME_RINVSCHED, "schedule_delivery_time", True, 0, ""),
    (17, S.ESME_RINVEXPIRY, "validity_period", True, 5, "registered_delivery"),
)


def _layout_error(data: bytes) -> InvalidField:
    """Why a submit_sm/deliver_sm body does not match `_SHORT_MESSAGE_LAYOUT`: the first field, in wire order,
    that is too long or cut off (or a malformed time string before it)."""
    end = len(data)
    pos = HEADER_LENGTH
    for octets, status, field, is_time, run, run_field in _LAYOUT_STRINGS:
        nul = data.find(0, pos, pos + octets)
        if nul < 0:
            return _cstring_error(data, pos, octets, status, field)
        if is_time and nul > pos:
            check_smpp_time(data[pos:nul].decode("latin-1"), status)
        pos = nul + 1 + run
        if pos > end:
            return _truncated(run_field)
    raise AssertionError("a body whose fields all fit matches _SHORT_MESSAGE_LAYOUT")


def _decode_message_id_resp(
    cls: type[_MessageIdResp], data: bytes, command_status: int, sequence_number: int
) -> Pdu:
    message_id, pos = _cstring(data, HEADER_LENGTH, 65, S.ESME_RINVMSGID, "message_id")
    tlvs = decode_tlvs(data, pos) if pos < len(data) else EMPTY_TLVS
    return cls(sequence_number=sequence_number, command_status=command_status, message_id=message_id, tlvs=tlvs)


def _decode_empty(cls: type[Pdu], data: bytes, command_status: int, sequence_number: int) -> Pdu:
    if len(data) != HEADER_LENGTH:
        raise InvalidField(f"{cls.__name__} has no body", command_status=S.ESME_RINVCMDLEN)
    return cls(sequence_number=sequence_number, command_status=command_status)


def _latin1(value: str, max_length: int, status: int, field: str) -> bytes:
    """The octets of a C-octet string field, without its NUL."""
    if value == "":
        return b""
    try:
        data = value.encode("latin-1")
    except (AttributeError, UnicodeEncodeError):
        raise InvalidField(f"{field} must be a Latin-1 str, got {value!r}", command_status=status) from None
    if len(data) >= max_length or 0 in data:
        raise InvalidField(f"{field} {value!r}: at most {max_length - 1} octets, no NUL", command_status=status)
    return data


def _encode_cstring(value: str, max_length: int, status: int, field: str) -> bytes:
    return _latin1(value, max_length, status, field) + b"\x00"


# ESMEs repeat the same few validity periods: remember the octets of the valid ones.
@functools.lru_cache(maxsize=4096)
def _time(value: str, status: int, field: str) -> bytes:
    data = _latin1(value, TIME_LENGTH + 1, status, field)
    if data:
        check_smpp_time(value, status)
    return data


# One bytes %-format builds the whole body: %b for octet strings (the NULs are in the format), %c for the
# 1-octet integers (OverflowError/TypeError outside 0..255, turned into PduError by encode_pdu).
_SHORT_MESSAGE_BODY: Final = b"%b\x00%c%c%b\x00%c%c%b\x00%c%c%c%b\x00%b\x00%c%c%c%c%c%b%b"


def _encode_short_message(pdu: _ShortMessage) -> bytes:
    short_message = pdu.short_message
    if short_message.__class__ is not bytes:
        raise InvalidField("short_message must be bytes", command_status=S.ESME_RSYSERR)
    if len(short_message) > schema.MAX_SHORT_MESSAGE:
        raise InvalidField(
            f"short_message of {len(short_message)} octets above 254; use message_payload",
            command_status=S.ESME_RINVMSGLEN,
        )
    service_type = pdu.service_type
    schedule_delivery_time = pdu.schedule_delivery_time
    validity_period = pdu.validity_period
    return _SHORT_MESSAGE_BODY % (
        b"" if service_type == "" else _latin1(service_type, 6, S.ESME_RINVSERTYP, "service_type"),
        pdu.source_addr_ton,
        pdu.source_addr_npi,
        _latin1(pdu.source_addr, 21, S.ESME_RINVSRCADR, "source_addr"),
        pdu.dest_addr_ton,
        pdu.dest_addr_npi,
        _latin1(pdu.destination_addr, 21, S.ESME_RINVDSTADR, "destination_addr"),
        pdu.esm_class,
        pdu.protocol_id,
        pdu.priority_flag,
        b""
        if schedule_delivery_time == ""
        else _time(schedule_delivery_time, S.ESME_RINVSCHED, "schedule_delivery_time"),
        b"" if validity_period == "" else _time(validity_period, S.ESME_RINVEXPIRY, "validity_period"),
        pdu.registered_delivery,
        pdu.replace_if_present_flag,
        pdu.data_coding,
        pdu.sm_default_msg_id,
        len(short_message),
        short_message,
        encode_tlvs(pdu.tlvs),
    )


def _encode_message_id_resp(pdu: _MessageIdResp) -> bytes:
    return _encode_cstring(pdu.message_id, 65, S.ESME_RINVMSGID, "message_id") + encode_tlvs(pdu.tlvs)


def _encode_empty(pdu: Pdu) -> bytes:
    return b""


_Decoder = Callable[[Any, bytes, int, int], Pdu]
# Plain int keys: the command_id read from the wire is an int, and int == int is the fastest lookup.
_FAST_DECODERS: Final[dict[int, tuple[_Decoder, type[Pdu]]]] = {
    int(CommandId.SUBMIT_SM): (_decode_short_message, SubmitSm),
    int(CommandId.DELIVER_SM): (_decode_short_message, DeliverSm),
    int(CommandId.SUBMIT_SM_RESP): (_decode_message_id_resp, SubmitSmResp),
    int(CommandId.DELIVER_SM_RESP): (_decode_message_id_resp, DeliverSmResp),
    int(CommandId.ENQUIRE_LINK): (_decode_empty, EnquireLink),
    int(CommandId.ENQUIRE_LINK_RESP): (_decode_empty, EnquireLinkResp),
}
_FAST_ENCODERS: Final[dict[type[Pdu], Callable[[Any], bytes]]] = {
    SubmitSm: _encode_short_message,
    DeliverSm: _encode_short_message,
    SubmitSmResp: _encode_message_id_resp,
    DeliverSmResp: _encode_message_id_resp,
    EnquireLink: _encode_empty,
    EnquireLinkResp: _encode_empty,
}


# ---------------------------------------------------------------------------------------------------------------
# The construct path: every PDU (the hot ones too, which is how tests compare the two).


def _from_fields(cls: type[Pdu], values: Any, command_status: int, sequence_number: int) -> Pdu:
    kwargs = {name: values[name] for name in _BODY_FIELDS[cls]}
    if cls is SubmitMulti:
        kwargs["destinations"] = tuple(
            SmeAddress(d.dest_addr_ton, d.dest_addr_npi, d.destination_addr)
            if d.dest_flag == DestFlag.SME_ADDRESS
            else DistributionList(d.dl_name)
            for d in values["destinations"]
        )
    elif cls is SubmitMultiResp:
        kwargs["unsuccess_sme"] = tuple(
            UnsuccessSme(u.dest_addr_ton, u.dest_addr_npi, u.destination_addr, u.error_status_code)
            for u in values["unsuccess_sme"]
        )
    return cls(sequence_number=sequence_number, command_status=command_status, **kwargs)


def _to_fields(pdu: Pdu) -> dict[str, Any]:
    values = {name: getattr(pdu, name) for name in _BODY_FIELDS[type(pdu)]}
    if isinstance(pdu, SubmitMulti):
        values["destinations"] = [_destination_fields(d) for d in pdu.destinations]
    elif isinstance(pdu, SubmitMultiResp):
        values["unsuccess_sme"] = [
            {
                "dest_addr_ton": u.dest_addr_ton,
                "dest_addr_npi": u.dest_addr_npi,
                "destination_addr": u.destination_addr,
                "error_status_code": u.error_status_code,
            }
            for u in pdu.unsuccess_sme
        ]
    return values


def _destination_fields(destination: SmeAddress | DistributionList) -> dict[str, Any]:
    if isinstance(destination, SmeAddress):
        return {
            "dest_flag": DestFlag.SME_ADDRESS,
            "dest_addr_ton": destination.dest_addr_ton,
            "dest_addr_npi": destination.dest_addr_npi,
            "destination_addr": destination.destination_addr,
        }
    if isinstance(destination, DistributionList):
        return {"dest_flag": DestFlag.DISTRIBUTION_LIST, "dl_name": destination.dl_name}
    raise InvalidField(f"destination {destination!r} is neither SmeAddress nor DistributionList",
                       command_status=S.ESME_RINVDESTFLAG)


def schema_decode_body(cls: type[Pdu], data: bytes, command_status: int, sequence_number: int) -> Pdu:
    """Decode the body of `data` (a whole PDU) with the construct declaration."""
    return _from_fields(cls, schema.parse_body(cls.command_id, data[HEADER_LENGTH:]), command_status, sequence_number)


def schema_encode_body(pdu: Pdu) -> bytes:
    """The body of `pdu` built by the construct declaration."""
    return schema.build_body(pdu.command_id, _to_fields(pdu))


# ---------------------------------------------------------------------------------------------------------------


def decode_pdu(data: bytes) -> Pdu:
    """One whole PDU (header included) to its typed value. Raises only PduError, with the sequence number when
    the header was readable."""
    if data.__class__ is not bytes:
        data = bytes(data)
    if len(data) < HEADER_LENGTH:
        raise InvalidField(f"{len(data)} octets is shorter than the 16-octet header", command_status=S.ESME_RINVCMDLEN)
    length, command_id, command_status, sequence_number = _HEADER.unpack_from(data)
    try:
        if length != len(data):
            raise InvalidField(
                f"command_length {length} but {len(data)} octets given", command_status=S.ESME_RINVCMDLEN
            )
        fast = _FAST_DECODERS.get(command_id)
        if fast is not None:
            decoder, cls = fast
            if length == HEADER_LENGTH and command_id & 0x80000000:
                return cls(sequence_number=sequence_number, command_status=command_status)
            return decoder(cls, data, command_status, sequence_number)
        return _decode_with_schema(command_id, data, command_status, sequence_number)
    except PduError as exc:
        if exc.sequence_number is None:
            exc.sequence_number = sequence_number
        raise


def _decode_with_schema(command_id: int, data: bytes, command_status: int, sequence_number: int) -> Pdu:
    cls = PDU_CLASSES.get(command_id)
    if cls is None:
        raise InvalidField(f"unknown command_id 0x{command_id:08X}", command_status=S.ESME_RINVCMDID)
    if len(data) == HEADER_LENGTH and is_response(command_id):
        return cls(sequence_number=sequence_number, command_status=command_status)
    return schema_decode_body(cls, data, command_status, sequence_number)


def encode_pdu(pdu: Pdu) -> bytes:
    """The wire octets of `pdu`, header included. Raises PduError for a field that cannot be encoded."""
    cls = type(pdu)
    try:
        if pdu.command_status and is_response(cls.command_id) and _has_default_body(pdu):
            body = b""
        else:
            fast = _FAST_ENCODERS.get(cls)
            body = fast(pdu) if fast is not None else schema_encode_body(pdu)
        return _HEADER.pack(HEADER_LENGTH + len(body), cls.command_id, pdu.command_status, pdu.sequence_number) + body
    except PduError as exc:
        if exc.sequence_number is None and isinstance(pdu.sequence_number, int):
            exc.sequence_number = pdu.sequence_number
        raise
    except AttributeError:
        raise PduError(f"{pdu!r} is not an SMPP PDU") from None
    except (struct.error, ValueError, TypeError, OverflowError) as exc:
        raise InvalidField(f"cannot encode {cls.__name__}: {exc}", sequence_number=_sequence_or_none(pdu)) from None


def _sequence_or_none(pdu: Pdu) -> int | None:
    value = pdu.sequence_number
    return value if isinstance(value, int) and 0 <= value <= _MAX_UINT32 else None


def _has_default_body(pdu: Pdu) -> bool:
    empty = _EMPTY_BODY.get(type(pdu))
    return empty is not None and replace(empty, sequence_number=pdu.sequence_number, command_status=pdu.command_status) == pdu

