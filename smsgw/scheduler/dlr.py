"""Delivery-report callbacks over HTTP, pure: which events a message's `DlrRequest` asks for, and the request
each one becomes — smsgw's signed JSON, Kannel's dlr-url with its escape codes expanded, or Jasmin's form fields.

The store renders a report inside the transaction that changes the message (`_update_message`, `_change`), so the
report cannot be lost between the change and its queueing; `callback.DlrKind` sends what was rendered.

Events are Kannel's dlr-mask bits, the one vocabulary of all three formats: JSON reports the final state
(DELIVERED | FAILED), Jasmin's dlr-level 1 is the SMSC level (SMSC_ACCEPTED: the modem's network took the
message), 2 the terminal level (DELIVERED | FAILED), 3 both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Final
from urllib.parse import quote, urlencode

from smsgw.pdu.dlr import DeliveryReceipt, format_receipt
from smsgw.scheduler.model import DlrRequest, ReceiptRecord
from smsgw.scheduler.states import FINAL, State, receipt_stat
from smsgw.scheduler.timing import from_ms

# Kannel's dlr-mask bits (the values %d expands to).
DELIVERED: Final = 1  # delivered to the handset
FAILED: Final = 2  # not delivered to the handset (final failure: expired, undeliverable, rejected, cancelled)
BUFFERED: Final = 4  # queued: a temporary failure, the gateway tries again
SMSC_ACCEPTED: Final = 8  # handed to the network (the modem's +CMGS answer)
SMSC_REJECTED: Final = 16  # refused by the network before it took the message
FINAL_MASK: Final = DELIVERED | FAILED
ALL_MASK: Final = DELIVERED | FAILED | BUFFERED | SMSC_ACCEPTED | SMSC_REJECTED

FORMATS: Final = ("json", "kannel", "jasmin")
# Jasmin's dlr-level as events, and the level a report of each event carries.
JASMIN_LEVELS: Final = {1: SMSC_ACCEPTED | SMSC_REJECTED, 2: FINAL_MASK, 3: ALL_MASK}
_SMSC_LEVEL: Final = SMSC_ACCEPTED | SMSC_REJECTED
# What Jasmin calls the connector a message left by: the gateway has modems, not SMPP connectors.
JASMIN_CONNECTOR: Final = "smsgw"


def event_of(previous: State, derived: State, *, intermediate: bool) -> int:
    """The event bit a message's change from `previous` to `derived` is, 0 for none."""
    if derived in FINAL and derived is not previous:
        return DELIVERED if derived is State.DELIVERED else FAILED
    return BUFFERED if intermediate and derived is State.RETRY else 0


def render(request: DlrRequest, record: ReceiptRecord, event: int) -> tuple[str, str] | None:
    """The (url, body) of the report of `event` about `record`, None when `request` does not ask for it. The
    body is JSON for 'json', the form fields for 'jasmin' (a query string when its method is GET) and '' for
    'kannel' (its URL says it all)."""
    if not request.mask & event:
        return None
    if request.format == "json":
        return request.url, json_body(record, request.client_ref)
    if request.format == "kannel":
        return kannel_url(request.url, record, event), ""
    return request.url, urlencode(jasmin_fields(record, event))


def json_body(record: ReceiptRecord, client_ref: str) -> str:
    return json.dumps(
        {
            "message_id": record.message_id,
            "to": record.source.addr,  # the receipt's source is the handset the message went to
            "state": record.state.name,
            "state_code": int(record.state),
            "error_code": f"{record.error_code:03d}",
            "done_at": from_ms(record.done_ms).isoformat(),
            "client_ref": client_ref or None,
        },
        ensure_ascii=False,
    )


def _receipt_text(record: ReceiptRecord) -> str:
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


def _kannel_time(moment: datetime) -> str:
    # Kannel writes %t this way, the space already as '+'.
    return moment.strftime("%Y-%m-%d+%H:%M:%S")


def _plus(number: str) -> str:
    return "+" + number[2:] if number.startswith("00") else number


def _escapes(record: ReceiptRecord, event: int) -> dict[str, Callable[[], str]]:
    """Kannel's escape codes for a delivery report. %p is the original message's sender and %P its receiver
    (the handset); %I and %F both name our message_id, Kannel's internal and the SMSC's id being one here."""
    sender, receiver = record.destination.addr, record.source.addr
    words = record.text.split()
    return {
        "d": lambda: str(event),
        "A": lambda: _receipt_text(record) if event & FINAL_MASK else ("ACK" if event & SMSC_ACCEPTED else ""),
        "p": lambda: sender,
        "P": lambda: receiver,
        "q": lambda: _plus(sender),
        "Q": lambda: _plus(receiver),
        "t": lambda: _kannel_time(from_ms(record.done_ms)),
        "T": lambda: str(record.done_ms // 1000),
        "I": lambda: record.message_id,
        "F": lambda: record.message_id,
        "i": lambda: JASMIN_CONNECTOR,
        "k": lambda: words[0] if words else "",
        "a": lambda: " ".join(words),
        "b": lambda: record.text,
        "%": lambda: "%",
    }


def kannel_url(template: str, record: ReceiptRecord, event: int) -> str:
    """`template` with Kannel's escape codes expanded (URL-encoded; %t as Kannel writes it); an unknown code is
    left as it is."""
    escapes = _escapes(record, event)
    out: list[str] = []
    i = 0
    while i < len(template):
        char = template[i]
        code = template[i + 1] if char == "%" and i + 1 < len(template) else ""
        expand = escapes.get(code)
        if expand is None:
            out.append(char)
            i += 1
            continue
        value = expand()
        out.append(value if code in "t%" else quote(value, safe=""))
        i += 2
    return "".join(out)


def jasmin_fields(record: ReceiptRecord, event: int) -> dict[str, str]:
    """Jasmin's DLR fields: level 1 (the SMSC took it: id, message_status ESME_ROK, level, connector), level 2
    (the handset: also id_smsc, sub, dlvrd, subdate, donedate, err, text, and the receipt's stat word)."""
    if event & _SMSC_LEVEL:
        status = "ESME_ROK" if event & SMSC_ACCEPTED else "ESME_RSUBMITFAIL"
        return {"id": record.message_id, "message_status": status, "level": "1", "connector": JASMIN_CONNECTOR}
    date = "%y%m%d%H%M"
    return {
        "id": record.message_id,
        "message_status": receipt_stat(record.state),
        "level": "2",
        "connector": JASMIN_CONNECTOR,
        "id_smsc": record.message_id,
        "sub": f"{record.submitted_segments:03d}",
        "dlvrd": f"{record.delivered_segments:03d}",
        "subdate": from_ms(record.submitted_ms).strftime(date),
        "donedate": from_ms(record.done_ms).strftime(date),
        "err": f"{record.error_code:03d}",
        "text": record.text[:20],
    }
