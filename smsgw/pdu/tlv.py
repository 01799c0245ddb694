"""SMPP 3.4 optional parameters (TLVs, section 5.3): one typed attribute per standard tag, unknown tags kept.

A `Tlvs` value holds every standard TLV as an optional attribute (`pdu.tlvs.message_payload`); tags this codec
does not know stay in `unknown` as `RawTlv` and are re-encoded byte for byte. Standard TLVs are written in
ascending tag order, then the unknown ones in the order they arrived; TLV order has no meaning in SMPP.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, fields
from typing import Final, Literal

from smsgw.pdu.constants import CommandStatus, TlvTag
from smsgw.pdu.errors import InvalidField, PduError

TlvKind = Literal["u8", "u16", "u32", "cstr", "octets", "flag"]
TlvValue = int | str | bytes | bool

_TLV_HEADER: Final = struct.Struct(">HH")
_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")

_RINVTLVSTREAM: Final = CommandStatus.ESME_RINVTLVSTREAM
_RINVTLVLEN: Final = CommandStatus.ESME_RINVTLVLEN
_RINVTLVVAL: Final = CommandStatus.ESME_RINVTLVVAL
_INT_KINDS: Final = frozenset({"u8", "u16", "u32"})


@dataclass(frozen=True, slots=True)
class TlvSpec:
    """One standard TLV: its tag, attribute name, wire type and the allowed value length in octets."""

    tag: int
    name: str
    kind: TlvKind
    min_length: int
    max_length: int


def _spec(tag: TlvTag, kind: TlvKind, min_length: int | None = None, max_length: int | None = None) -> TlvSpec:
    fixed = {"u8": 1, "u16": 2, "u32": 4, "flag": 0}.get(kind)
    low = fixed if fixed is not None else (min_length or 0)
    high = fixed if fixed is not None else (max_length if max_length is not None else 0xFFFF)
    return TlvSpec(int(tag), tag.name.lower(), kind, low, high)


# Lengths from SMPP 3.4 section 5.3.2; C-octet string maxima include the terminating NUL.
TLV_SPECS: Final[tuple[TlvSpec, ...]] = (
    _spec(TlvTag.DEST_ADDR_SUBUNIT, "u8"),
    _spec(TlvTag.DEST_NETWORK_TYPE, "u8"),
    _spec(TlvTag.DEST_BEARER_TYPE, "u8"),
    _spec(TlvTag.DEST_TELEMATICS_ID, "u16"),
    _spec(TlvTag.SOURCE_ADDR_SUBUNIT, "u8"),
    _spec(TlvTag.SOURCE_NETWORK_TYPE, "u8"),
    _spec(TlvTag.SOURCE_BEARER_TYPE, "u8"),
    _spec(TlvTag.SOURCE_TELEMATICS_ID, "u16"),
    _spec(TlvTag.QOS_TIME_TO_LIVE, "u32"),
    _spec(TlvTag.PAYLOAD_TYPE, "u8"),
    _spec(TlvTag.ADDITIONAL_STATUS_INFO_TEXT, "cstr", 1, 256),
    _spec(TlvTag.RECEIPTED_MESSAGE_ID, "cstr", 1, 65),
    _spec(TlvTag.MS_MSG_WAIT_FACILITIES, "u8"),
    _spec(TlvTag.PRIVACY_INDICATOR, "u8"),
    _spec(TlvTag.SOURCE_SUBADDRESS, "octets", 2, 23),
    _spec(TlvTag.DEST_SUBADDRESS, "octets", 2, 23),
    _spec(TlvTag.USER_MESSAGE_REFERENCE, "u16"),
    _spec(TlvTag.USER_RESPONSE_CODE, "u8"),
    _spec(TlvTag.SOURCE_PORT, "u16"),
    _spec(TlvTag.DESTINATION_PORT, "u16"),
    _spec(TlvTag.SAR_MSG_REF_NUM, "u16"),
    _spec(TlvTag.LANGUAGE_INDICATOR, "u8"),
    _spec(TlvTag.SAR_TOTAL_SEGMENTS, "u8"),
    _spec(TlvTag.SAR_SEGMENT_SEQNUM, "u8"),
    _spec(TlvTag.SC_INTERFACE_VERSION, "u8"),
    _spec(TlvTag.CALLBACK_NUM_PRES_IND, "u8"),
    _spec(TlvTag.CALLBACK_NUM_ATAG, "octets", 0, 65),
    _spec(TlvTag.NUMBER_OF_MESSAGES, "u8"),
    _spec(TlvTag.CALLBACK_NUM, "octets", 4, 19),
    _spec(TlvTag.DPF_RESULT, "u8"),
    _spec(TlvTag.SET_DPF, "u8"),
    _spec(TlvTag.MS_AVAILABILITY_STATUS, "u8"),
    _spec(TlvTag.NETWORK_ERROR_CODE, "octets", 3, 3),
    _spec(TlvTag.MESSAGE_PAYLOAD, "octets", 0, 0xFFFF),
    _spec(TlvTag.DELIVERY_FAILURE_REASON, "u8"),
    _spec(TlvTag.MORE_MESSAGES_TO_SEND, "u8"),
    _spec(TlvTag.MESSAGE_STATE, "u8"),
    _spec(TlvTag.USSD_SERVICE_OP, "u8"),
    _spec(TlvTag.DISPLAY_TIME, "u8"),
    _spec(TlvTag.SMS_SIGNAL, "u16"),
    _spec(TlvTag.MS_VALIDITY, "u8"),
    _spec(TlvTag.ALERT_ON_MESSAGE_DELIVERY, "flag"),
    _spec(TlvTag.ITS_REPLY_TYPE, "u8"),
    _spec(TlvTag.ITS_SESSION_INFO, "octets", 2, 2),
)
SPECS_BY_TAG: Final[dict[int, TlvSpec]] = {s.tag: s for s in TLV_SPECS}
SPECS_BY_NAME: Final[dict[str, TlvSpec]] = {s.name: s for s in TLV_SPECS}
_TAG_ORDER: Final[dict[str, int]] = {s.name: s.tag for s in TLV_SPECS}

# The SAR TLVs only make sense together (SMPP 3.4 section 5.3.2.22-24).
SAR_NAMES: Final = ("sar_msg_ref_num", "sar_total_segments", "sar_segment_seqnum")


@dataclass(frozen=True, slots=True)
class RawTlv:
    """A TLV whose tag this codec does not know; kept so it can be forwarded unchanged."""

    tag: int
    value: bytes


# Not slots: decoding builds a Tlvs by filling only the present attributes into its __dict__ (absent ones fall
# back to the class-level None defaults), which keeps the hot decode path from assigning ~45 attributes.
@dataclass(frozen=True, kw_only=True, repr=False)
class Tlvs:
    dest_addr_subunit: int | None = None
    dest_network_type: int | None = None
    dest_bearer_type: int | None = None
    dest_telematics_id: int | None = None
    source_addr_subunit: int | None = None
    source_network_type: int | None = None
    source_bearer_type: int | None = None
    source_telematics_id: int | None = None
    qos_time_to_live: int | None = None
    payload_type: int | None = None
    additional_status_info_text: str | None = None
    receipted_message_id: str | None = None
    ms_msg_wait_facilities: int | None = None
    privacy_indicator: int | None = None
    source_subaddress: bytes | None = None
    dest_subaddress: bytes | None = None
    user_message_reference: int | None = None
    user_response_code: int | None = None
    source_port: int | None = None
    destination_port: int | None = None
    sar_msg_ref_num: int | None = None
    language_indicator: int | None = None
    sar_total_segments: int | None = None
    sar_segment_seqnum: int | None = None
    sc_interface_version: int | None = None
    callback_num_pres_ind: int | None = None
    callback_num_atag: bytes | None = None
    number_of_messages: int | None = None
    callback_num: bytes | None = None
    dpf_result: int | None = None
    set_dpf: int | None = None
    ms_availability_status: int | None = None
    network_error_code: bytes | None = None  # 3 octets: network type (NetworkErrorType) + 2-octet error code
    message_payload: bytes | None = None
    delivery_failure_reason: int | None = None
    more_messages_to_send: int | None = None
    message_state: int | None = None
    ussd_service_op: int | None = None
    display_time: int | None = None
    sms_signal: int | None = None
    ms_validity: int | None = None
    alert_on_message_delivery: bool | None = None  # zero-length TLV: True when present
    its_reply_type: int | None = None
    its_session_info: bytes | None = None
    unknown: tuple[RawTlv, ...] = field(default=())

    def present(self) -> dict[str, TlvValue]:
        """The standard TLVs that are set, by attribute name, in ascending tag order."""
        found = [(k, v) for k, v in vars(self).items() if v is not None and k != "unknown"]
        if len(found) > 1:
            found.sort(key=lambda kv: _TAG_ORDER[kv[0]])
        return dict(found)

    def __repr__(self) -> str:
        shown = [f"{name}={value!r}" for name, value in self.present().items()]
        if self.unknown:
            shown.append(f"unknown={self.unknown!r}")
        return f"Tlvs({', '.join(shown)})"

    def __bool__(self) -> bool:
        return bool(self.unknown) or any(v is not None for k, v in vars(self).items() if k != "unknown")


EMPTY_TLVS: Final = Tlvs()
_TLV_FIELD_NAMES: Final = frozenset(f.name for f in fields(Tlvs))
assert _TLV_FIELD_NAMES == set(SPECS_BY_NAME) | {"unknown"}, "Tlvs attributes must match TLV_SPECS"


def tlvs_from_values(values: dict[str, TlvValue], unknown: list[RawTlv]) -> Tlvs:
    """A Tlvs from decoded values (already checked), without running the 45-argument __init__."""
    if not values and not unknown:
        return EMPTY_TLVS
    for name in SAR_NAMES:
        if name in values:
            check_sar_group(values)
            break
    tlvs = object.__new__(Tlvs)
    state = vars(tlvs)
    state.update(values)
    if unknown:
        state["unknown"] = tuple(unknown)
    return tlvs


def check_sar_group(values: dict[str, TlvValue]) -> None:
    missing = [name for name in SAR_NAMES if values.get(name) is None]
    if missing and len(missing) < len(SAR_NAMES):
        raise InvalidField(
            f"SAR TLVs must come together; missing {', '.join(missing)}",
            command_status=CommandStatus.ESME_RMISSINGTLV,
        )


def decode_value(spec: TlvSpec, value: bytes) -> TlvValue:
    """Check one standard TLV's length and type its value."""
    length = len(value)
    if not spec.min_length <= length <= spec.max_length:
        raise InvalidField(
            f"TLV {spec.name} (0x{spec.tag:04X}) length {length} outside {spec.min_length}..{spec.max_length}",
            command_status=_RINVTLVLEN,
        )
    kind = spec.kind
    if kind == "u8":
        return value[0]
    if kind == "u16":
        return int(_U16.unpack(value)[0])
    if kind == "u32":
        return int(_U32.unpack(value)[0])
    if kind == "octets":
        return value
    if kind == "flag":
        return True
    # cstr: tolerate a missing terminator (some SMSCs omit it), refuse an embedded NUL.
    if value[-1] == 0:
        value = value[:-1]
    if 0 in value:
        raise InvalidField(f"TLV {spec.name} has a NUL inside its C-octet string", command_status=_RINVTLVVAL)
    return value.decode("latin-1")


def encode_value(spec: TlvSpec, value: TlvValue) -> bytes:
    """The wire value of one standard TLV; raises PduError for a value of the wrong type, range or length."""
    kind = spec.kind
    if kind in _INT_KINDS and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidField(f"TLV {spec.name} takes int, got {type(value).__name__}", command_status=_RINVTLVVAL)
    try:
        if kind == "u8":
            data = bytes((value,))  # type: ignore[arg-type]
        elif kind == "u16":
            data = _U16.pack(value)
        elif kind == "u32":
            data = _U32.pack(value)
        elif kind == "flag":
            if value is not True:
                raise InvalidField(f"TLV {spec.name} is a flag: True or None", command_status=_RINVTLVVAL)
            data = b""
        elif kind == "octets":
            if not isinstance(value, bytes):
                raise InvalidField(f"TLV {spec.name} takes bytes, got {type(value).__name__}", command_status=_RINVTLVVAL)
            data = value
        else:
            if not isinstance(value, str):
                raise InvalidField(f"TLV {spec.name} takes str, got {type(value).__name__}", command_status=_RINVTLVVAL)
            if "\x00" in value:
                raise InvalidField(f"TLV {spec.name} contains NUL", command_status=_RINVTLVVAL)
            data = value.encode("latin-1") + b"\x00"
    except (struct.error, ValueError, TypeError, UnicodeEncodeError, OverflowError) as exc:
        if isinstance(exc, PduError):
            raise
        raise InvalidField(f"TLV {spec.name} value {value!r} not encodable: {exc}", command_status=_RINVTLVVAL) from None
    if not spec.min_length <= len(data) <= spec.max_length:
        raise InvalidField(
            f"TLV {spec.name} length {len(data)} outside {spec.min_length}..{spec.max_length}",
            command_status=_RINVTLVLEN,
        )
    return data


def decode_tlvs(data: bytes, pos: int) -> Tlvs:
    """The TLV stream from `pos` to the end of `data` (a PDU body)."""
    end = len(data)
    if pos == end:
        return EMPTY_TLVS
    values: dict[str, TlvValue] = {}
    unknown: list[RawTlv] = []
    while pos < end:
        if end - pos < 4:
            raise InvalidField(f"{end - pos} stray octets after the last TLV", command_status=_RINVTLVSTREAM)
        tag, length = _TLV_HEADER.unpack_from(data, pos)
        pos += 4
        value_end = pos + length
        if value_end > end:
            raise InvalidField(
                f"TLV 0x{tag:04X} length {length} runs past the PDU end", command_status=_RINVTLVSTREAM
            )
        spec = SPECS_BY_TAG.get(tag)
        if spec is None:
            unknown.append(RawTlv(tag, data[pos:value_end]))
        else:
            if spec.name in values:
                raise InvalidField(f"TLV {spec.name} appears twice", command_status=_RINVTLVSTREAM)
            values[spec.name] = decode_value(spec, data[pos:value_end])
        pos = value_end
    return tlvs_from_values(values, unknown)


def encode_tlvs(tlvs: Tlvs) -> bytes:
    if tlvs is EMPTY_TLVS:
        return b""
    present = tlvs.present()
    if "sar_msg_ref_num" in present or "sar_total_segments" in present or "sar_segment_seqnum" in present:
        check_sar_group(present)
    parts: list[bytes] = []
    for name, value in present.items():
        spec = SPECS_BY_NAME[name]
        data = encode_value(spec, value)
        parts.append(_TLV_HEADER.pack(spec.tag, len(data)))
        parts.append(data)
    for raw in tlvs.unknown:
        if not isinstance(raw, RawTlv) or not 0 <= raw.tag <= 0xFFFF or len(raw.value) > 0xFFFF:
            raise InvalidField(f"bad unknown TLV {raw!r}", command_status=_RINVTLVVAL)
        parts.append(_TLV_HEADER.pack(raw.tag, len(raw.value)))
        parts.append(raw.value)
    return b"".join(parts)
