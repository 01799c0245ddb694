"""SMPP delivery receipts: the text of SMPP 3.4 Appendix B, built exactly and parsed tolerantly.

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:EEE text:...

Real SMSCs vary: `Text:` capitalised, fields missing or reordered, 12-digit dates with seconds, extra spaces,
ids in hex in one place and decimal in another. When the deliver_sm carries receipted_message_id, message_state
or network_error_code TLVs, those win over the text.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from .constants import CommandStatus, MessageState
from .errors import PduError

log = logging.getLogger(__name__)

# The stat: words of Appendix B, by message_state.
STAT_BY_STATE: Final[dict[MessageState, str]] = {
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
}

# Spelled-out words some SMSCs send instead of the seven-letter ones.
_STAT_ALIASES: Final[dict[str, str]] = {
    "DELIVERED": "DELIVRD",
    "UNDELIVERABLE": "UNDELIV",
    "UNDELIVERED": "UNDELIV",
    "ACCEPTED": "ACCEPTD",
    "REJECTED": "REJECTD",
    "EN_ROUTE": "ENROUTE",
}

_STATE_BY_STAT: Final[dict[str, MessageState]] = {stat: state for state, stat in STAT_BY_STATE.items()}

# Appendix B's `text:`: the first 20 characters of the message, and all a receipt needs to keep of it.
EXCERPT_LENGTH: Final = 20

# Printable ASCII whose GSM 03.38 septet has the same value, so the excerpt reads the same whether the receiver
# takes data_coding 0 as GSM or as ASCII ($ @ [ \ ] ^ _ ` { | } ~ differ between the two).
_SAFE_EXCERPT_CHARS: Final = frozenset(chr(c) for c in range(0x20, 0x7F)) - frozenset("$@[\\]^_`{|}~")

# A field name and its colon. `text` is last: everything after it is the excerpt, even a "stat:" inside it.
_FIELD: Final = re.compile(r"\b(id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat|err|text)\s*:", re.IGNORECASE)

# SMPP's own answer for a deliver_sm the receiver cannot process and will not accept later either.
_UNPARSABLE: Final = CommandStatus.ESME_RX_P_APPN


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    message_id: str
    submitted: int
    delivered: int
    submit_date: datetime | None
    done_date: datetime | None
    stat: str
    err: str
    text: str

    @property
    def message_state(self) -> MessageState:
        """The message_state the stat word stands for (UNKNOWN for a word outside Appendix B)."""
        return _STATE_BY_STAT.get(self.stat, MessageState.UNKNOWN)

    @property
    def is_final(self) -> bool:
        """Whether the message reached a final state (ENROUTE and ACCEPTD are intermediate)."""
        return self.message_state not in (MessageState.ENROUTE, MessageState.ACCEPTED)


def receipt_excerpt(text: str) -> str:
    """The first `EXCERPT_LENGTH` characters of a message for `text:`, one line, characters that would not
    survive either reading of data_coding 0 replaced by '?'."""
    excerpt = text[:EXCERPT_LENGTH].replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return "".join(char if char in _SAFE_EXCERPT_CHARS else "?" for char in excerpt)


def _is_number(value: str) -> bool:
    # str.isdigit alone accepts "²" and other digits int() refuses.
    return value.isascii() and value.isdigit()


def _format_date(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%y%m%d%H%M")


def _format_err(err: str) -> str:
    return err.zfill(3) if _is_number(err) else err


def format_receipt(receipt: DeliveryReceipt) -> str:
    """The Appendix B text; `text:` holds `receipt_excerpt` of `receipt.text`."""
    return (
        f"id:{receipt.message_id} sub:{receipt.submitted:03d} dlvrd:{receipt.delivered:03d} "
        f"submit date:{_format_date(receipt.submit_date)} done date:{_format_date(receipt.done_date)} "
        f"stat:{receipt.stat} err:{_format_err(receipt.err)} text:{receipt_excerpt(receipt.text)}"
    )


def _parse_date(value: str) -> datetime | None:
    formats = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S", 14: "%Y%m%d%H%M%S"}
    pattern = formats.get(len(value))
    if pattern is None or not _is_number(value):
        return None
    try:
        return datetime.strptime(value, pattern)
    except ValueError:
        return None


def _parse_count(value: str | None) -> int:
    return int(value) if value is not None and _is_number(value) else 0


def _normalise_stat(value: str) -> str:
    word = value.upper()
    return _STAT_ALIASES.get(word, word)


def _fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    matches = list(_FIELD.finditer(text))
    for index, match in enumerate(matches):
        name = re.sub(r"[ _]", "", match.group(1).lower())
        if name == "text":
            fields.setdefault(name, text[match.end() :])
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        # Values hold no spaces; whatever follows the first word is noise some SMSCs add.
        words = text[match.end() : end].split(maxsplit=1)
        fields.setdefault(name, words[0] if words else "")
    return fields


def _network_error(network_error_code: bytes) -> str | None:
    # SMPP 3.4 5.3.2.31: network type (1 octet), then the error code (2 octets).
    if len(network_error_code) != 3:
        log.debug("receipt network_error_code ignored length=%d", len(network_error_code))
        return None
    return str(int.from_bytes(network_error_code[1:], "big")).zfill(3)


def parse_receipt(
    text: str | bytes,
    *,
    receipted_message_id: str | None = None,
    message_state: int | None = None,
    network_error_code: bytes | None = None,
) -> DeliveryReceipt:
    """Read a receipt's short_message (bytes are read as Latin-1: receipts are ASCII, and Latin-1 never fails).

    Missing counts read as 0, missing or unreadable dates as None, a missing err as "". A receipt without an id
    or without a state (in the text or the TLVs) raises PduError.
    """
    body = text.decode("latin-1") if isinstance(text, bytes) else text
    # Some SMSCs send short_message as a C string, terminator included.
    body = body.rstrip("\x00")
    fields = _fields(body)
    message_id = receipted_message_id or fields.get("id", "")
    if not message_id:
        raise PduError(f"delivery receipt without a message id: {body[:80]!r}", command_status=_UNPARSABLE)
    if message_state is not None:
        try:
            stat = STAT_BY_STATE[MessageState(message_state)]
        except ValueError:
            raise PduError(
                f"message_state {message_state} is not an SMPP 3.4 state", command_status=_UNPARSABLE
            ) from None
    elif fields.get("stat"):
        stat = _normalise_stat(fields["stat"])
    else:
        raise PduError(f"delivery receipt without a state: {body[:80]!r}", command_status=_UNPARSABLE)
    err = _network_error(network_error_code) if network_error_code is not None else None
    if err is None:
        err = _format_err(fields.get("err", ""))
    return DeliveryReceipt(
        message_id=message_id,
        submitted=_parse_count(fields.get("sub")),
        delivered=_parse_count(fields.get("dlvrd")),
        submit_date=_parse_date(fields.get("submitdate", "")),
        done_date=_parse_date(fields.get("donedate", "")),
        stat=stat,
        err=err,
        text=fields.get("text", ""),
    )


def message_id_variants(message_id: str) -> tuple[str, ...]:
    """The id as given, then its other readings, for matching a receipt to a submit_sm_resp: SMSCs are known to
    answer submit_sm with a hex id and quote it in decimal in the receipt, or the reverse."""
    variants = [message_id]
    if _is_number(message_id):
        variants.append(format(int(message_id), "x"))
    if message_id and all(c in "0123456789abcdefABCDEF" for c in message_id):
        variants.append(str(int(message_id, 16)))
    return tuple(dict.fromkeys(variants))
