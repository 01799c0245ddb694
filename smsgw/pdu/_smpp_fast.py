"""The hand-written twin of the construct declarations of `_smpp_schema` for the hot PDUs: submit_sm, deliver_sm,
their responses and enquire_link, decoded and encoded without construct. `smsgw.pdu.smpp` dispatches to
`FAST_DECODERS` / `FAST_ENCODERS`; property tests prove the results byte-identical to the construct path.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, Final

from smsgw.pdu import _smpp_schema as schema
from smsgw.pdu.constants import HEADER_LENGTH, CommandId, CommandStatus
from smsgw.pdu.errors import InvalidField
from smsgw.pdu.smpp_pdus import (
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    _MessageIdResp,
    _ShortMessage,
)
from smsgw.pdu.smpp_time import TIME_LENGTH, check_smpp_time
from smsgw.pdu.tlv import EMPTY_TLVS, decode_tlvs, encode_tlvs

S = CommandStatus



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
# The statuses a decoded submit_sm's times are checked with, read per PDU: an enum member's lookup through its
# class costs more than a module global's.
_RINVSCHED: Final = S.ESME_RINVSCHED
_RINVEXPIRY: Final = S.ESME_RINVEXPIRY


def _decode_short_message(cls: type[_ShortMessage], data: bytes, command_status: int, sequence_number: int) -> Pdu:
    match = _SHORT_MESSAGE_LAYOUT.match(data, HEADER_LENGTH)
    if match is None:
        raise _layout_error(data)
    service_type, source, source_addr, destination, destination_addr, flags, schedule, validity, tail = (
        match.groups()
    )
    if schedule:
        schedule_delivery_time = schedule.decode("latin-1")
        check_smpp_time(schedule_delivery_time, _RINVSCHED)
    else:
        schedule_delivery_time = ""
    if validity:
        validity_period = validity.decode("latin-1")
        check_smpp_time(validity_period, _RINVEXPIRY)
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
FAST_DECODERS: Final[dict[int, tuple[_Decoder, type[Pdu]]]] = {
    int(CommandId.SUBMIT_SM): (_decode_short_message, SubmitSm),
    int(CommandId.DELIVER_SM): (_decode_short_message, DeliverSm),
    int(CommandId.SUBMIT_SM_RESP): (_decode_message_id_resp, SubmitSmResp),
    int(CommandId.DELIVER_SM_RESP): (_decode_message_id_resp, DeliverSmResp),
    int(CommandId.ENQUIRE_LINK): (_decode_empty, EnquireLink),
    int(CommandId.ENQUIRE_LINK_RESP): (_decode_empty, EnquireLinkResp),
}
FAST_ENCODERS: Final[dict[type[Pdu], Callable[[Any], bytes]]] = {
    SubmitSm: _encode_short_message,
    DeliverSm: _encode_short_message,
    SubmitSmResp: _encode_message_id_resp,
    DeliverSmResp: _encode_message_id_resp,
    EnquireLink: _encode_empty,
    EnquireLinkResp: _encode_empty,
}
