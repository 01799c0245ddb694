"""Outbox records to deliver_sm PDUs (receipts with their TLVs, MO messages); the session sets sequence_number."""

from __future__ import annotations

from typing import Final

from smsgw.pdu.constants import EsmClass, NetworkErrorType, Npi, Ton
from smsgw.pdu.dlr import DeliveryReceipt, format_receipt
from smsgw.pdu.smpp import DeliverSm
from smsgw.pdu.text import Encoding, choose_encoding, encode_text
from smsgw.pdu.tlv import Tlvs
from smsgw.scheduler.error_codes import is_tp_status
from smsgw.scheduler.model import MoRecord, ReceiptRecord
from smsgw.scheduler.states import FINAL, receipt_stat, smpp_message_state
from smsgw.scheduler.timing import from_ms

MAX_SHORT_MESSAGE: Final = 254


def receipt_text(record: ReceiptRecord) -> str:
    """The SMSC receipt text ("id:... stat:... err:..."): a deliver_sm's short_message, and Kannel's report text."""
    return format_receipt(
        DeliveryReceipt(
            message_id=record.message_id,
            submitted=record.submitted_segments,
            delivered=record.delivered_segments,
            submit_date=from_ms(record.submitted_ms),
            done_date=from_ms(record.done_ms),
            stat=receipt_stat(record.state),
            err=f"{record.error_code:03d}",
            text=record.text,
        )
    )


def receipt_pdu(record: ReceiptRecord) -> DeliverSm:
    final = record.state in FINAL
    network_error = None
    if is_tp_status(record.error_code):  # not one of our 8xx outcomes
        network_error = bytes((NetworkErrorType.GSM,)) + record.error_code.to_bytes(2, "big")
    return DeliverSm(
        sequence_number=0,
        service_type=record.service_type,
        source_addr_ton=record.source.ton,
        source_addr_npi=record.source.npi,
        source_addr=record.source.addr,
        dest_addr_ton=record.destination.ton,
        dest_addr_npi=record.destination.npi,
        destination_addr=record.destination.addr,
        esm_class=EsmClass.DELIVERY_RECEIPT if final else EsmClass.INTERMEDIATE_NOTIFICATION,
        short_message=receipt_text(record).encode("ascii"),
        tlvs=Tlvs(
            receipted_message_id=record.message_id,
            message_state=smpp_message_state(record.state),
            network_error_code=network_error,
        ),
    )


def mo_pdu(record: MoRecord) -> DeliverSm:
    """An MO as deliver_sm: the handset as source, the modem's number as destination; text re-encoded as GSM
    7-bit when it fits, else UCS-2 (8-bit data passes as is); message_payload when it exceeds 254 octets."""
    if record.data_coding == Encoding.BINARY.data_coding:
        data, data_coding = record.user_data, Encoding.BINARY.data_coding
    else:
        encoding = choose_encoding(record.text)
        data, data_coding = encode_text(record.text, encoding), encoding.data_coding
    long = len(data) > MAX_SHORT_MESSAGE
    source_ton, source_npi, source = _address(record.originator)
    dest_ton, dest_npi, destination = _address(record.recipient)
    return DeliverSm(
        sequence_number=0,
        source_addr_ton=source_ton,
        source_addr_npi=source_npi,
        source_addr=source,
        dest_addr_ton=dest_ton,
        dest_addr_npi=dest_npi,
        destination_addr=destination,
        data_coding=data_coding,
        short_message=b"" if long else data,
        tlvs=Tlvs(message_payload=data) if long else Tlvs(),
    )


def _address(addr: str) -> tuple[Ton, Npi, str]:
    """A number as international digits (TON 1, NPI 1), anything else (a sender ID like `SHOP`) as alphanumeric."""
    digits = addr.lstrip("+")
    if digits.isdigit():
        return Ton.INTERNATIONAL, Npi.ISDN, digits
    return Ton.ALPHANUMERIC, Npi.UNKNOWN, addr
