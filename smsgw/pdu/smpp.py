"""The codec of SMPP 3.4 PDUs: `decode_pdu(bytes) -> Pdu`, `encode_pdu(Pdu) -> bytes`, over the typed frozen values
of `smsgw.pdu.smpp_pdus` (re-exported here, so callers import PDU classes and codec from this one module).

Field names are the spec's. Integers stay plain ints (compare with `smsgw.pdu.constants`), C-octet strings are
`str` (Latin-1, so any octet round-trips), time fields stay wire strings (see `smsgw.pdu.smpp_time`) so a round
trip is byte-exact, `short_message` is bytes and `sm_length`/counts are derived. Optional parameters live in
`pdu.tlvs` (`smsgw.pdu.tlv.Tlvs`).

The wire formats are declared with construct in `_smpp_schema`; submit_sm, deliver_sm, their responses and
enquire_link take the hand-written path of `_smpp_fast` that tests prove byte-identical to those declarations.

Response bodies: a response whose body is absent decodes with default fields (SMSCs omit the body of error
responses, as SMPP 3.4 section 4.4.2 allows); encoding an error response whose fields are all defaults writes no
body.
"""

from __future__ import annotations

import struct
from dataclasses import fields, replace
from typing import Any, Final

from smsgw.pdu import _smpp_schema as schema
from smsgw.pdu._smpp_fast import FAST_DECODERS, FAST_ENCODERS
from smsgw.pdu.constants import HEADER_LENGTH, CommandStatus, DestFlag, is_response
from smsgw.pdu.errors import InvalidField, PduError
from smsgw.pdu.smpp_pdus import (
    PDU_CLASSES,
    AlertNotification,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CancelSm,
    CancelSmResp,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    DistributionList,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Outbind,
    Pdu,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    ReplaceSmResp,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    UnsuccessSme,
    generic_nack_for,
    response_class,
    response_for,
)

__all__ = [
    "PDU_CLASSES",
    "AlertNotification",
    "BindReceiver",
    "BindReceiverResp",
    "BindTransceiver",
    "BindTransceiverResp",
    "BindTransmitter",
    "BindTransmitterResp",
    "CancelSm",
    "CancelSmResp",
    "DataSm",
    "DataSmResp",
    "DeliverSm",
    "DeliverSmResp",
    "DistributionList",
    "EnquireLink",
    "EnquireLinkResp",
    "GenericNack",
    "Outbind",
    "Pdu",
    "QuerySm",
    "QuerySmResp",
    "ReplaceSm",
    "ReplaceSmResp",
    "SmeAddress",
    "SubmitMulti",
    "SubmitMultiResp",
    "SubmitSm",
    "SubmitSmResp",
    "Unbind",
    "UnbindResp",
    "UnsuccessSme",
    "decode_pdu",
    "encode_pdu",
    "generic_nack_for",
    "response_class",
    "response_for",
    "schema_decode_body",
    "schema_encode_body",
]

S = CommandStatus

_HEADER: Final = struct.Struct(">IIII")
_MAX_UINT32: Final = 0xFFFFFFFF

# Body fields of each class in declaration order, without the header fields.
_BODY_FIELDS: Final[dict[type[Pdu], tuple[str, ...]]] = {
    cls: tuple(f.name for f in fields(cls) if f.name not in ("sequence_number", "command_status"))
    for cls in PDU_CLASSES.values()
}
_EMPTY_BODY: Final[dict[type[Pdu], Pdu]] = {cls: cls(sequence_number=0) for cls in PDU_CLASSES.values()}


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
        fast = FAST_DECODERS.get(command_id)
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
            fast = FAST_ENCODERS.get(cls)
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
