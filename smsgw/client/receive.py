"""`smsgw receive`: a receiver bind that hands every deliver_sm (an MO or a delivery receipt) on as a value, and
acknowledges it once handled."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import smpplib.command

from smsgw.client.session import ClientSettings, Session, pdu_text
from smsgw.pdu.constants import CommandStatus, EsmClass, esm_message_type
from smsgw.pdu.dlr import parse_receipt
from smsgw.pdu.errors import PduError
from smsgw.pdu.text import decode_text


@dataclass(frozen=True, slots=True)
class Received:
    """One deliver_sm a receiver bind took: an MO (a handset's message) or a delivery receipt."""

    kind: str  # "mo" or "receipt"
    source_addr: str
    destination_addr: str
    text: str
    data_coding: int
    message_id: str = ""  # receipts: the message it reports on
    stat: str = ""  # receipts: DELIVRD, EXPIRED, UNDELIV...
    err: str = ""  # receipts: the 3-digit error code

    def line(self) -> str:
        """One tab-separated line: MO from to text, or RECEIPT message_id stat err from to."""
        fields: tuple[str, ...]
        if self.kind == "receipt":
            fields = ("RECEIPT", self.message_id, self.stat, f"err:{self.err}", self.source_addr, self.destination_addr)
        else:
            fields = ("MO", self.source_addr, self.destination_addr, self.text.replace("\n", " "))
        return "\t".join(fields)

    def as_json(self) -> dict[str, object]:
        document: dict[str, object] = {
            "kind": self.kind, "from": self.source_addr, "to": self.destination_addr, "text": self.text,
            "data_coding": self.data_coding,
        }
        if self.kind == "receipt":
            document |= {"message_id": self.message_id, "stat": self.stat, "err": self.err}
        return document


def read_deliver_sm(pdu: smpplib.command.DeliverSM) -> Received:
    """The deliver_sm as a value; the text decoded by its data_coding (hex when it is not text)."""
    data = bytes(pdu.short_message or getattr(pdu, "message_payload", None) or b"")
    data_coding = int(pdu.data_coding or 0)
    source, destination = pdu_text(pdu.source_addr or b""), pdu_text(pdu.destination_addr or b"")
    try:
        text = decode_text(data, data_coding)
    except (PduError, ValueError):
        text = data.hex()
    if esm_message_type(int(pdu.esm_class)) == EsmClass.DELIVERY_RECEIPT:
        try:
            receipt = parse_receipt(
                data,
                receipted_message_id=pdu_text(getattr(pdu, "receipted_message_id", None) or b"") or None,
                message_state=getattr(pdu, "message_state", None),
            )
        except PduError:
            return Received("receipt", source, destination, text, data_coding)
        return Received("receipt", source, destination, text, data_coding, receipt.message_id, receipt.stat,
                        receipt.err)
    return Received("mo", source, destination, text, data_coding)


class SmppReceiver(Session):
    """A receiver bind that hands every deliver_sm to `on_item` and acknowledges it once that returned."""

    def __init__(self, settings: ClientSettings, on_item: Callable[[Received], None]) -> None:
        super().__init__(settings, "receiver")
        self._on_item = on_item
        self.received = 0

    def run(self, count: int | None, timeout_s: float | None) -> None:
        """Until `count` deliver_sm were taken or `timeout_s` passed (None: no limit); keeps the bind alive."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while count is None or self.received < count:
            wait_s = self._settings.enquire_link_interval_s
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                wait_s = min(wait_s, remaining)
            if self._readable(wait_s):
                self._read_one()
            elif deadline is None or time.monotonic() < deadline:
                self._keep_alive()

    def _on_deliver_sm(self, pdu: smpplib.command.DeliverSM) -> int | None:
        self._on_item(read_deliver_sm(pdu))
        self.received += 1
        return CommandStatus.ESME_ROK
