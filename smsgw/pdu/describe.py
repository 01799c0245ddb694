"""JSON-ready descriptions of SMPP PDUs and TS 23.040 TPDUs, every field named: what `smsgw pdu decode` prints.

`decode_any` tells the two apart: an SMPP PDU starts with its own length (4 octets, big-endian) and is at least
the 16-octet header; anything else is read as a TPDU, first with the SMSC prefix that modems put in front of it in
PDU mode, then without.
"""

from __future__ import annotations

import enum
from dataclasses import fields, is_dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, TypeAlias

from .constants import CommandId, EsmClass, esm_message_type, status_name
from .dlr import parse_receipt
from .errors import PduError
from .smpp import DataSm, DeliverSm, Pdu, SubmitMulti, SubmitSm, decode_pdu
from .text import decode_text
from .tlv import Tlvs
from .tpdu import (
    Address,
    Dcs,
    NumberingPlan,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    Tpdu,
    TypeOfNumber,
    decode_tpdu,
    split_smsc,
)
from .udh import Udh, split_user_data

Kind: TypeAlias = Literal["auto", "smpp", "submit", "deliver", "status-report"]
KINDS: Final[tuple[Kind, ...]] = ("auto", "smpp", "submit", "deliver", "status-report")

_TPDU_CLASSES: Final[dict[str, type[SmsSubmit] | type[SmsDeliver] | type[SmsStatusReport]]] = {
    "submit": SmsSubmit,
    "deliver": SmsDeliver,
    "status-report": SmsStatusReport,
}
_TPDU_NAMES: Final[dict[type, str]] = {
    SmsSubmit: "SMS-SUBMIT",
    SmsDeliver: "SMS-DELIVER",
    SmsStatusReport: "SMS-STATUS-REPORT",
}
_RECEIPT_TYPES: Final = (EsmClass.DELIVERY_RECEIPT, EsmClass.INTERMEDIATE_NOTIFICATION)


def _enum_name(enum_type: type[enum.IntEnum], value: int) -> str | int:
    try:
        return enum_type(value).name
    except ValueError:
        return value


def jsonable(value: object) -> Any:
    """`value` as JSON types: enums by name, bytes as upper-case hex, datetimes ISO 8601, durations in seconds."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        return int(seconds) if seconds.is_integer() else seconds
    if isinstance(value, Tlvs):
        present = {name: jsonable(tlv) for name, tlv in value.present().items()}
        unknown = [{"tag": f"0x{raw.tag:04X}", "value": jsonable(raw.value)} for raw in value.unknown]
        return present | {"unknown": unknown}
    if isinstance(value, Address):
        return {
            "number": str(value),
            "ton": _enum_name(TypeOfNumber, value.ton),
            "npi": _enum_name(NumberingPlan, value.npi),
        }
    if isinstance(value, Dcs):
        return {
            "value": f"0x{value.value:02X}",
            "group": value.group.value,
            "encoding": value.encoding.name,
            "message_class": value.message_class,
            "compressed": value.compressed,
        }
    if is_dataclass(value) and not isinstance(value, type):
        return {field.name: jsonable(getattr(value, field.name)) for field in fields(value)}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


def _udh_elements(udh: bytes) -> list[dict[str, Any]]:
    return [{"element": type(element).__name__} | jsonable(element) for element in Udh.from_bytes(udh).elements]


def describe_smpp(pdu: Pdu) -> dict[str, Any]:
    """Every field of `pdu` and its TLVs; the text of its short message when the data_coding is text, and for a
    delivery receipt the receipt as parsed (TLVs preferred over the text)."""
    described: dict[str, Any] = {
        "kind": "smpp",
        "command_id": f"0x{pdu.command_id:08X}",
        "command_name": _enum_name(CommandId, pdu.command_id),
        "command_status_name": status_name(pdu.command_status),
    }
    described |= jsonable(pdu)
    if isinstance(pdu, (SubmitSm, DeliverSm, SubmitMulti, DataSm)):
        described |= _describe_message(pdu)
    return described


def _describe_message(pdu: SubmitSm | DeliverSm | SubmitMulti | DataSm) -> dict[str, Any]:
    described: dict[str, Any] = {}
    tlvs: Tlvs = pdu.tlvs
    # data_sm has no short_message; the others may carry the text in message_payload instead.
    body = (b"" if isinstance(pdu, DataSm) else pdu.short_message) or tlvs.message_payload or b""
    try:
        udh, user_data = split_user_data(body, bool(pdu.esm_class & EsmClass.UDHI))
        if udh is not None:
            described["udh_elements"] = _udh_elements(udh.to_bytes())
        described["text"] = decode_text(user_data, pdu.data_coding)
    except PduError as error:
        described["text"] = None
        described["text_error"] = error.message
    if isinstance(pdu, (DeliverSm, DataSm)) and esm_message_type(pdu.esm_class) in _RECEIPT_TYPES:
        try:
            receipt = parse_receipt(
                body,
                receipted_message_id=tlvs.receipted_message_id,
                message_state=tlvs.message_state,
                network_error_code=tlvs.network_error_code,
            )
        except PduError as error:
            described["receipt_error"] = error.message
        else:
            described["receipt"] = jsonable(receipt) | {
                "message_state": receipt.message_state.name,
                "is_final": receipt.is_final,
            }
    return described


def describe_tpdu(tpdu: Tpdu, *, smsc: str | None, smsc_prefix: bool, tpdu_length: int) -> dict[str, Any]:
    """Every field of `tpdu`, the UDH elements, the text, and for a status report what its TP-ST means."""
    described: dict[str, Any] = {
        "kind": "tpdu",
        "type": _TPDU_NAMES[type(tpdu)],
        "smsc_prefix": smsc_prefix,
        "smsc": smsc,
        "tpdu_length": tpdu_length,
    }
    described |= jsonable(tpdu)
    if tpdu.udh:
        try:
            described["udh_elements"] = _udh_elements(tpdu.udh)
        except PduError as error:
            described["udh_error"] = error.message
    try:
        described["text"] = tpdu.text
    except PduError as error:
        described["text"] = None
        described["text_error"] = error.message
    if isinstance(tpdu, SmsSubmit | SmsDeliver):
        described["message_class"] = tpdu.message_class
    if isinstance(tpdu, SmsStatusReport):
        meaning = tpdu.status_meaning
        described |= {"status_name": tpdu.status_name, "status_meaning": meaning.value, "is_final": meaning.is_final}
    return described


def _looks_like_smpp(data: bytes) -> bool:
    return len(data) >= 16 and int.from_bytes(data[:4], "big") == len(data)


def _decode_tpdu_as(data: bytes, kind: Kind) -> Tpdu:
    cls = _TPDU_CLASSES.get(kind)
    if cls is not None:
        return cls.from_bytes(data)
    # By TP-MTI: 1 is an SMS-SUBMIT (mobile originated), 0, 2 and 3 are read as a mobile receives them.
    return decode_tpdu(data, "mo" if data and data[0] & 0x03 == 1 else "mt")


def decode_any(data: bytes, kind: Kind = "auto") -> dict[str, Any]:
    """Decode `data` as `kind` and describe it; PduError naming what was tried when nothing fits."""
    if kind == "smpp" or (kind == "auto" and _looks_like_smpp(data)):
        return describe_smpp(decode_pdu(data))
    errors: list[PduError] = []
    for smsc_prefix in (True, False):
        try:
            smsc, tpdu_bytes = split_smsc(data) if smsc_prefix else (None, data)
            tpdu = _decode_tpdu_as(tpdu_bytes, kind)
        except PduError as error:
            errors.append(error)
            continue
        return describe_tpdu(tpdu, smsc=smsc, smsc_prefix=smsc_prefix, tpdu_length=len(tpdu_bytes))
    what = "a TPDU" if kind == "auto" else f"an {_TPDU_NAMES[_TPDU_CLASSES[kind]]}"
    prefix = "neither an SMPP PDU (its first 4 octets are not its length) nor " if kind == "auto" else "not "
    raise PduError(
        f"{prefix}{what}: with an SMSC prefix, {errors[0].message}; without, {errors[1].message}",
        command_status=errors[1].command_status,
    )
