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
from urllib.parse import quote_plus, urlencode

from smsgw.scheduler.model import DlrRequest, ReceiptRecord
from smsgw.scheduler.render import receipt_text
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


def _kannel_time(moment: datetime) -> str:
    # urltrans.c writes %t as "%04d-%02d-%02d+%02d:%02d:%02d" of the report's time in UTC, the space already as '+'
    # and not URL-encoded (the userguide's "YYYY-MM-DD HH:MM" is older than the code).
    return moment.strftime("%Y-%m-%d+%H:%M:%S")


def _plus(number: str) -> str:
    return "+" + number[2:] if number.startswith("00") else number


def _report_text(record: ReceiptRecord, event: int) -> str:
    """The text of Kannel's report message, which %A, %b, %k, %a, %s and %r show: the SMSC's receipt for the
    handset's events; for the network's, bb_smscconn.c's `ACK/` or `NACK/` before the SMSC's reply (a modem's
    +CMGS gives none). A retry the gateway decided on has no SMSC text."""
    if event & FINAL_MASK:
        return receipt_text(record)
    return "ACK/" if event & SMSC_ACCEPTED else "NACK/" if event & SMSC_REJECTED else ""


def _kannel_encode(value: str) -> str:
    # gwlib/octstr.c `octstr_url_encode`: RFC 2396's unreserved characters stay, a space becomes '+'.
    return quote_plus(value, safe="!*'()")


# Codes Kannel has for fields a report of ours never carries (UDH, meta-data, the SMSC's number, the account):
# Kannel writes nothing for an absent field, and so do we.
_ALWAYS_EMPTY: Final = frozenset("uDfo")


def kannel_url(template: str, record: ReceiptRecord, event: int) -> str:
    """`template` with Kannel's escape codes expanded as Kannel's `urltrans_fill_escape_codes` does for a report
    (gw/urltrans.c; read in the pruiz/kannel mirror of Kannel's source): values URL-encoded except %t, %T and
    %S. In a report message (gw/dlr.c `dlr_find`, `create_dlr_from_msg`) the sender is the original message's
    sender and the receiver its receiver, and urltrans.c writes the receiver for %p and the sender for %P, so
    %p is the handset and %P the original sender. %I and %F both name our message_id (Kannel's internal id and
    the SMSC's are one here), %i the gateway, %B the receipt's err (the userguide: "for SMPP DLR it is the DLR
    message err component"). An unknown code is left as it is, as Kannel leaves it."""
    text = _report_text(record, event)
    words = text.split()
    handset, sender = record.source.addr, record.destination.addr
    fixed: dict[str, Callable[[], str]] = {
        "d": lambda: str(event),
        "A": lambda: text,
        "b": lambda: text,
        "k": lambda: words[0] if words else "",
        "p": lambda: handset,
        "P": lambda: sender,
        "q": lambda: _plus(handset),
        "Q": lambda: _plus(sender),
        "I": lambda: record.message_id,
        "F": lambda: record.message_id,
        "i": lambda: JASMIN_CONNECTOR,
        "B": lambda: f"{record.error_code:03d}",
        "R": lambda: template,
    }
    out: list[str] = []
    next_word = 1  # %s and %S take the words after the first, one each; %r the rest
    i = 0
    while i < len(template):
        char = template[i]
        code = template[i + 1] if char == "%" and i + 1 < len(template) else ""
        if code in fixed:
            out.append(_kannel_encode(fixed[code]()))
        elif code == "a":
            out.append(_kannel_encode(" ".join(words)))
        elif code in ("s", "S"):
            word = words[next_word] if next_word < len(words) else ""
            next_word += 1 if word else 0
            out.append(_kannel_encode(word) if code == "s" else word.replace("*", "~"))
        elif code == "r":
            out.append(_kannel_encode(" ".join(words[next_word:])))
        elif code == "t":
            out.append(_kannel_time(from_ms(record.done_ms)))
        elif code == "T":
            out.append(str(record.done_ms // 1000))
        elif code == "%":
            out.append("%")
        elif code in _ALWAYS_EMPTY:
            pass
        else:
            out.append(char)
            i += 1
            continue
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
