"""SMPP 3.4 optional parameters (TLVs, section 5.3): one typed attribute per standard tag, unknown tags kept.

A `Tlvs` value holds every standard TLV as an optional attribute (`pdu.tlvs.message_payload`); tags this codec
does not know stay in `unknown` as `RawTlv` and are re-encoded byte for byte. A decoded Tlvs writes its standard
TLVs back in the order they arrived (so a PDU re-encodes to the octets it came from), a Tlvs you build writes them
in ascending tag order; the unknown ones follow. TLV order has no meaning in SMPP, and equality ignores it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, fields
from collections.abc import Callable, Mapping
from typing import Final, Literal, cast

from smsgw.pdu.constants import CommandStatus, TlvTag
from smsgw.pdu.errors import InvalidField

TlvKind = Literal["u8", "u16", "u32", "cstr", "octets", "flag"]
TlvValue = int | str | bytes | bool

_TLV_HEADER: Final = struct.Struct(">HH")

_RINVTLVSTREAM: Final = CommandStatus.ESME_RINVTLVSTREAM
_RINVTLVLEN: Final = CommandStatus.ESME_RINVTLVLEN
_RINVTLVVAL: Final = CommandStatus.ESME_RINVTLVVAL


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

# The SAR TLVs only make sense together (SMPP 3.4 section 5.3.2.22-24).
SAR_NAMES: Final = ("sar_msg_ref_num", "sar_total_segments", "sar_segment_seqnum")


@dataclass(frozen=True, slots=True)
class RawTlv:
    """A TLV whose tag this codec does not know; kept so it can be forwarded unchanged."""

    tag: int
    value: bytes


# Not slots: a Tlvs keeps only its present attributes in __dict__ (absent ones read the class-level None
# defaults); decoding hands it that dict in one step instead of assigning ~45 frozen attributes.
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

    def __post_init__(self) -> None:
        # Keep only the TLVs that are set in __dict__ (absent ones read the class default None), so encoding
        # walks the present TLVs instead of all 45.
        state = vars(self)
        for name in [name for name, value in state.items() if value is None or value == ()]:
            del state[name]

    def present(self) -> dict[str, TlvValue]:
        """The standard TLVs that are set, by attribute name, in encoding order."""
        return {name: value for name, value in vars(self).items() if name != "unknown"}

    def __repr__(self) -> str:
        shown = [f"{name}={value!r}" for name, value in self.present().items()]
        if self.unknown:
            shown.append(f"unknown={self.unknown!r}")
        return f"Tlvs({', '.join(shown)})"

    def __bool__(self) -> bool:
        return bool(vars(self))


EMPTY_TLVS: Final = Tlvs()
_set_attribute: Final = object.__setattr__
# Encoding writes __dict__ in insertion order, which is the field order: it must be the ascending tag order.
assert [f.name for f in fields(Tlvs)] == [s.name for s in sorted(TLV_SPECS, key=lambda s: s.tag)] + ["unknown"]


def tlvs_from_values(values: dict[str, TlvValue], unknown: list[RawTlv] | None) -> Tlvs:
    """A Tlvs from decoded values (already checked, in wire order), without running the 45-argument __init__."""
    if not values and not unknown:
        return EMPTY_TLVS
    if "sar_msg_ref_num" in values or "sar_total_segments" in values or "sar_segment_seqnum" in values:
        check_sar_group(values)
    if unknown:
        cast(dict[str, object], values)["unknown"] = tuple(unknown)
    tlvs = object.__new__(Tlvs)
    _set_attribute(tlvs, "__dict__", values)
    return tlvs


def check_sar_group(values: Mapping[str, object]) -> None:
    missing = [name for name in SAR_NAMES if values.get(name) is None]
    if missing and len(missing) < len(SAR_NAMES):
        raise InvalidField(
            f"SAR TLVs must come together; missing {', '.join(missing)}",
            command_status=CommandStatus.ESME_RMISSINGTLV,
        )


_Decode = Callable[[TlvSpec, bytes], TlvValue]
_Encode = Callable[[TlvSpec, TlvValue], bytes]


def _length_error(spec: TlvSpec, length: int) -> InvalidField:
    return InvalidField(
        f"TLV {spec.name} (0x{spec.tag:04X}) length {length} outside {spec.min_length}..{spec.max_length}",
        command_status=_RINVTLVLEN,
    )


# Decoders take the spec and the value octets; encoders return the whole TLV, header included.


def _decode_u8(spec: TlvSpec, value: bytes) -> TlvValue:
    if len(value) != 1:
        raise _length_error(spec, len(value))
    return value[0]


def _decode_u16(spec: TlvSpec, value: bytes) -> TlvValue:
    if len(value) != 2:
        raise _length_error(spec, len(value))
    return (value[0] << 8) | value[1]


def _decode_u32(spec: TlvSpec, value: bytes) -> TlvValue:
    if len(value) != 4:
        raise _length_error(spec, len(value))
    return int.from_bytes(value, "big")


def _decode_flag(spec: TlvSpec, value: bytes) -> TlvValue:
    if value:
        raise _length_error(spec, len(value))
    return True


def _decode_octets(spec: TlvSpec, value: bytes) -> TlvValue:
    if not spec.min_length <= len(value) <= spec.max_length:
        raise _length_error(spec, len(value))
    return value


def _decode_cstr(spec: TlvSpec, value: bytes) -> TlvValue:
    if not spec.min_length <= len(value) <= spec.max_length:
        raise _length_error(spec, len(value))
    # Tolerate a missing terminator (some SMSCs omit it), refuse an embedded NUL.
    if value[-1] == 0:
        value = value[:-1]
    if 0 in value:
        raise InvalidField(f"TLV {spec.name} has a NUL inside its C-octet string", command_status=_RINVTLVVAL)
    return value.decode("latin-1")


def _header(spec: TlvSpec, length: int) -> bytes:
    return _TLV_HEADER.pack(spec.tag, length)


def _int_encoder(spec: TlvSpec) -> _Encode:
    """The encoder of one integer TLV, with its header and range worked out once."""
    size = spec.max_length
    header = _header(spec, size)
    limit = 1 << (8 * size)

    def encode(spec: TlvSpec, value: TlvValue) -> bytes:
        if value.__class__ is not int and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidField(f"TLV {spec.name} takes int, got {type(value).__name__}", command_status=_RINVTLVVAL)
        if not 0 <= value < limit:
            raise InvalidField(f"TLV {spec.name} value {value} out of range", command_status=_RINVTLVVAL)
        return header + value.to_bytes(size, "big")

    return encode


def _encode_flag(spec: TlvSpec, value: TlvValue) -> bytes:
    if value is not True:
        raise InvalidField(f"TLV {spec.name} is a flag: True or None", command_status=_RINVTLVVAL)
    return _header(spec, 0)


def _encode_octets(spec: TlvSpec, value: TlvValue) -> bytes:
    if not isinstance(value, bytes):
        raise InvalidField(f"TLV {spec.name} takes bytes, got {type(value).__name__}", command_status=_RINVTLVVAL)
    if not spec.min_length <= len(value) <= spec.max_length:
        raise _length_error(spec, len(value))
    return _header(spec, len(value)) + value


def _encode_cstr(spec: TlvSpec, value: TlvValue) -> bytes:
    if not isinstance(value, str) or "\x00" in value:
        raise InvalidField(f"TLV {spec.name} takes a str without NUL", command_status=_RINVTLVVAL)
    try:
        data = value.encode("latin-1") + b"\x00"
    except UnicodeEncodeError:
        raise InvalidField(f"TLV {spec.name} {value!r} is not Latin-1", command_status=_RINVTLVVAL) from None
    if not spec.min_length <= len(data) <= spec.max_length:
        raise _length_error(spec, len(data))
    return _header(spec, len(data)) + data


_DECODE_BY_KIND: Final[dict[str, _Decode]] = {
    "u8": _decode_u8,
    "u16": _decode_u16,
    "u32": _decode_u32,
    "flag": _decode_flag,
    "octets": _decode_octets,
    "cstr": _decode_cstr,
}
_ENCODE_BY_KIND: Final[dict[str, Callable[[TlvSpec], _Encode]]] = {
    "u8": _int_encoder,
    "u16": _int_encoder,
    "u32": _int_encoder,
    "flag": lambda spec: _encode_flag,
    "octets": lambda spec: _encode_octets,
    "cstr": lambda spec: _encode_cstr,
}
# tag -> (name, size if a 1- or 2-octet integer else -1, spec, decoder)
_DECODERS: Final[dict[int, tuple[str, int, TlvSpec, _Decode]]] = {
    s.tag: (s.name, {"u8": 1, "u16": 2}.get(s.kind, -1), s, _DECODE_BY_KIND[s.kind]) for s in TLV_SPECS
}
_ENCODERS: Final[dict[str, tuple[TlvSpec, _Encode]]] = {s.name: (s, _ENCODE_BY_KIND[s.kind](s)) for s in TLV_SPECS}


def decode_tlvs(data: bytes, pos: int) -> Tlvs:
    """The TLV stream from `pos` to the end of `data` (a PDU body)."""
    end = len(data)
    if pos == end:
        return EMPTY_TLVS
    values: dict[str, TlvValue] = {}
    unknown: list[RawTlv] | None = None
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
        known = _DECODERS.get(tag)
        if known is None:
            if unknown is None:
                unknown = []
            unknown.append(RawTlv(tag, data[pos:value_end]))
        else:
            name, int_size, spec, decode = known
            if name in values:
                raise InvalidField(f"TLV {name} appears twice", command_status=_RINVTLVSTREAM)
            # 1- and 2-octet integers are most of the TLVs on the hot path: read them without a call.
            if length == int_size:
                values[name] = data[pos] if length == 1 else (data[pos] << 8) | data[pos + 1]
            else:
                values[name] = decode(spec, data[pos:value_end])
        pos = value_end
    return tlvs_from_values(values, unknown)


def encode_tlvs(tlvs: Tlvs) -> bytes:
    """The TLV stream of `tlvs`: standard TLVs in their order (see the module doc), then the unknown ones."""
    if tlvs.__class__ is not Tlvs:
        raise InvalidField(f"tlvs must be Tlvs, got {type(tlvs).__name__}", command_status=CommandStatus.ESME_RSYSERR)
    present = vars(tlvs)
    if not present:
        return b""
    if "sar_msg_ref_num" in present or "sar_total_segments" in present or "sar_segment_seqnum" in present:
        check_sar_group(present)
    parts: list[bytes] = []
    for name, value in present.items():
        if name != "unknown":
            spec, encode = _ENCODERS[name]
            parts.append(encode(spec, value))
    unknown = present.get("unknown")
    if unknown:
        for raw in unknown:
            if not isinstance(raw, RawTlv) or not 0 <= raw.tag <= 0xFFFF or len(raw.value) > 0xFFFF:
                raise InvalidField(f"bad unknown TLV {raw!r}", command_status=_RINVTLVVAL)
            parts.append(_TLV_HEADER.pack(raw.tag, len(raw.value)) + raw.value)
    return b"".join(parts)
