"""Field checks an SMSC makes on a decoded request before the backend sees it, each with its own status.

The codec already refuses what cannot be decoded (lengths, time formats, destination lists); this module checks
values that decode fine but make no sense for a submission: TON/NPI, addresses, esm_class, flags, a reserved
data_coding, short_message together with message_payload. What the content is (its alphabet, its segments and
their limit) is the accept path's to find out, once (`scheduler.content`), not checked here as well.
"""

from __future__ import annotations

from typing import Final

from smsgw.pdu.constants import CommandStatus, EsmClass, Npi, RegisteredDelivery, Ton
from smsgw.pdu.errors import InvalidField
from smsgw.pdu.smpp import CancelSm, DataSm, Pdu, QuerySm, ReplaceSm, SubmitMulti, SubmitSm
from smsgw.pdu.text import parse_data_coding
from smsgw.pdu.tlv import EMPTY_TLVS

S = CommandStatus

_TONS: Final = frozenset(Ton)
_NPIS: Final = frozenset(Npi)
# E.164 allows 15 digits; national and short numbers are shorter, network-specific ones may be longer.
_MAX_INTERNATIONAL_DIGITS: Final = 15
_MAX_ALPHANUMERIC: Final = 11  # what fits in TP-OA as GSM 7-bit alphanumeric
# Message types an ESME may submit (SMPP 3.4 5.2.12): a normal message or an SME acknowledgement.
_SUBMIT_MESSAGE_TYPES: Final = frozenset({0, int(EsmClass.DELIVERY_ACK), int(EsmClass.MANUAL_USER_ACK)})
# Plain ints: IntFlag arithmetic is slow on the per-message path.
_MESSAGE_TYPE_MASK: Final = int(EsmClass.MESSAGE_TYPE_MASK)
_SMSC_RECEIPT_MASK: Final = int(RegisteredDelivery.SMSC_RECEIPT_MASK)
_REGISTERED_DELIVERY_RESERVED: Final = 0xE0
_MAX_PRIORITY: Final = 3
# The fast path's notion of an ordinary number: any TON but alphanumeric, at most as long as an E.164 number.
_NUMBER_TONS: Final = frozenset(int(ton) for ton in Ton if ton != Ton.ALPHANUMERIC)
# The octet values `_check_message_flags` lets through, for one set lookup each on the fast path.
_PLAIN_ESM_CLASSES: Final = frozenset(v for v in range(256) if v & _MESSAGE_TYPE_MASK in _SUBMIT_MESSAGE_TYPES)
_PLAIN_REGISTERED_DELIVERY: Final = frozenset(
    v for v in range(256) if not v & _REGISTERED_DELIVERY_RESERVED and v & _SMSC_RECEIPT_MASK != _SMSC_RECEIPT_MASK
)


def _check_address(ton: int, npi: int, address: str, *, source: bool) -> None:
    which = "source_addr" if source else "destination_addr"
    if ton not in _TONS:
        raise InvalidField(f"{which} TON {ton} is reserved", command_status=S.ESME_RINVSRCTON if source else S.ESME_RINVDSTTON)
    if npi not in _NPIS:
        raise InvalidField(f"{which} NPI {npi} is reserved", command_status=S.ESME_RINVSRCNPI if source else S.ESME_RINVDSTNPI)
    status = S.ESME_RINVSRCADR if source else S.ESME_RINVDSTADR
    if not address:
        if source:
            return  # the gateway fills in the account's default sender
        raise InvalidField("destination_addr is empty", command_status=status)
    digits = address[1:] if address.startswith("+") else address
    if ton == Ton.ALPHANUMERIC:
        if not source:
            raise InvalidField("destination_addr cannot be alphanumeric", command_status=status)
        if len(address) > _MAX_ALPHANUMERIC or not address.isprintable():
            raise InvalidField(f"alphanumeric source_addr {address!r} longer than 11 or unprintable", command_status=status)
        return
    if digits.isdigit() and digits.isascii():
        if ton == Ton.INTERNATIONAL and len(digits) > _MAX_INTERNATIONAL_DIGITS:
            raise InvalidField(f"international {which} {address!r} has more than 15 digits", command_status=status)
        return
    # An alphanumeric sender with TON unknown is common enough in the wild to accept as such.
    if source and ton == Ton.UNKNOWN and len(address) <= _MAX_ALPHANUMERIC and address.isprintable():
        return
    raise InvalidField(f"{which} {address!r} is not a number", command_status=status)


def _check_message_flags(esm_class: int, registered_delivery: int) -> None:
    if esm_class & _MESSAGE_TYPE_MASK not in _SUBMIT_MESSAGE_TYPES:
        raise InvalidField(f"esm_class 0x{esm_class:02X}: message type not allowed in a submission",
                           command_status=S.ESME_RINVESMCLASS)
    if registered_delivery & _REGISTERED_DELIVERY_RESERVED or (
        registered_delivery & _SMSC_RECEIPT_MASK == _SMSC_RECEIPT_MASK
    ):
        raise InvalidField(f"registered_delivery 0x{registered_delivery:02X} uses reserved bits",
                           command_status=S.ESME_RINVREGDLVFLG)


def _check_short_message(pdu: SubmitSm | SubmitMulti) -> None:
    _check_message_flags(pdu.esm_class, pdu.registered_delivery)
    if pdu.priority_flag > _MAX_PRIORITY:
        raise InvalidField(f"priority_flag {pdu.priority_flag} above 3", command_status=S.ESME_RINVPRTFLG)
    if pdu.replace_if_present_flag > 1:
        raise InvalidField(f"replace_if_present_flag {pdu.replace_if_present_flag} is not 0 or 1",
                           command_status=S.ESME_RINVREPFLAG)
    if pdu.short_message and pdu.tlvs.message_payload is not None:
        raise InvalidField("both short_message and message_payload are present", command_status=S.ESME_RINVPARLEN)
    _check_data_coding(pdu.data_coding)


def _plain_submit(pdu: SubmitSm) -> bool:
    """True for the common submit_sm that passes every check at a glance (numeric addresses, allowed flags, no
    TLVs, a data_coding seen before); False: check it in full.

    Only ever answers what the full checks would, so a False costs time, never a different outcome.
    """
    source = pdu.source_addr
    destination = pdu.destination_addr
    return (
        pdu.tlvs is EMPTY_TLVS
        and pdu.source_addr_ton in _NUMBER_TONS
        and pdu.source_addr_npi in _NPIS
        and pdu.dest_addr_ton in _NUMBER_TONS
        and pdu.dest_addr_npi in _NPIS
        and len(source) <= _MAX_INTERNATIONAL_DIGITS
        and 0 < len(destination) <= _MAX_INTERNATIONAL_DIGITS
        and (numbers := source + destination).isdigit()  # an empty source_addr is allowed
        and numbers.isascii()
        and pdu.esm_class in _PLAIN_ESM_CLASSES
        and pdu.registered_delivery in _PLAIN_REGISTERED_DELIVERY
        and pdu.priority_flag <= _MAX_PRIORITY
        and pdu.replace_if_present_flag <= 1
        and pdu.data_coding in _DATA_CODINGS
    )


def validate_request(pdu: Pdu) -> None:
    """Raise the codec's `PduError` (with the status to answer) for a request an SMSC must refuse."""
    if pdu.__class__ is SubmitSm and _plain_submit(pdu):
        return
    check_request(pdu)


def check_request(pdu: Pdu) -> None:
    """`validate_request` without the fast path: every check, one by one."""
    match pdu:
        case SubmitSm():
            _check_address(pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr, source=True)
            _check_address(pdu.dest_addr_ton, pdu.dest_addr_npi, pdu.destination_addr, source=False)
            _check_short_message(pdu)
        case SubmitMulti():
            _check_address(pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr, source=True)
            # Per-destination address problems go into unsuccess_sme (see `multi_address_error`), not here.
            _check_short_message(pdu)
        case DataSm():
            _check_address(pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr, source=True)
            _check_address(pdu.dest_addr_ton, pdu.dest_addr_npi, pdu.destination_addr, source=False)
            _check_message_flags(pdu.esm_class, pdu.registered_delivery)
            _check_data_coding(pdu.data_coding)
        case ReplaceSm():
            _check_message_id(pdu.message_id)
            _check_address(pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr, source=True)
            _check_message_flags(0, pdu.registered_delivery)
        case QuerySm():
            _check_message_id(pdu.message_id)
            _check_address(pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr, source=True)
        case CancelSm():
            _check_address(pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr, source=True)
            if pdu.destination_addr:
                _check_address(pdu.dest_addr_ton, pdu.dest_addr_npi, pdu.destination_addr, source=False)
            if not pdu.message_id and not pdu.destination_addr:
                raise InvalidField("cancel_sm needs a message_id or a destination", command_status=S.ESME_RINVMSGID)


def multi_address_error(ton: int, npi: int, address: str) -> int | None:
    """The status for one submit_multi destination, or None when it is acceptable."""
    try:
        _check_address(ton, npi, address, source=False)
    except InvalidField as exc:
        return exc.command_status
    return None


def _check_message_id(message_id: str) -> None:
    if not message_id:
        raise InvalidField("message_id is empty", command_status=S.ESME_RINVMSGID)


# The data_coding values `_check_data_coding` has let through (at most 256), for one set lookup on the fast path.
_DATA_CODINGS: Final[set[int]] = set()


def _check_data_coding(data_coding: int) -> None:
    """InvalidField for a reserved data_coding."""
    if data_coding not in _DATA_CODINGS:
        parse_data_coding(data_coding)
        _DATA_CODINGS.add(data_coding)
