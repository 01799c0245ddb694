"""What `smsgw send` sends and what came of it, as values: the numbers file read and normalised as the gateway's
policy does, the submit_sm payloads of a text, each recipient's submit result, the receipt tracker, and the
summary and progress bar the command prints."""

from __future__ import annotations

import csv
import enum
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from smsgw.numbers import InvalidNumber, normalise_number
from smsgw.pdu.constants import CommandStatus, EsmClass, MessageState, status_name
from smsgw.pdu.segmentation import MAX_SEGMENTS_LIMIT, count_segments, segment_text
from smsgw.pdu.text import choose_encoding, encode_text


@dataclass(frozen=True, slots=True)
class Recipient:
    line: int  # 1-based: the line in the numbers file, or which --to it was
    raw: str
    number: str


@dataclass(frozen=True, slots=True)
class RejectedLine:
    line: int
    raw: str
    reason: str


@dataclass(frozen=True, slots=True)
class RecipientList:
    recipients: tuple[Recipient, ...]
    rejected: tuple[RejectedLine, ...]


def read_recipients(lines: Iterable[str], default_country_code: str = "") -> RecipientList:
    """One number per line, in the first CSV column; blank lines and `#` comments skipped, a header row with no
    digits skipped; then as `number_list` (an invalid or repeated number rejected, each number sent once)."""

    def numbered() -> Iterator[tuple[int, str]]:
        reader = csv.reader(lines)
        for row in reader:
            raw = row[0].strip() if row else ""
            if not raw or raw.startswith("#"):
                continue
            if reader.line_num == 1 and not any(c.isdigit() for c in raw):
                continue
            yield reader.line_num, raw

    return number_list(numbered(), default_country_code)


def number_list(numbered: Iterable[tuple[int, str]], default_country_code: str = "", *,
                place: str = "line") -> RecipientList:
    """Numbers as given, each with its 1-based `place` (a file's line, which --to), normalised as the gateway's
    policy does; an invalid one rejected, and a repeat of a number (however written) rejected so it is sent once."""
    recipients: list[Recipient] = []
    rejected: list[RejectedLine] = []
    first_place_of: dict[str, int] = {}
    for position, raw in numbered:
        try:
            number = normalise_number(raw, default_country_code)
        except InvalidNumber as exc:
            rejected.append(RejectedLine(position, raw, str(exc)))
            continue
        if number in first_place_of:
            rejected.append(RejectedLine(position, raw, f"duplicate of {place} {first_place_of[number]}"))
            continue
        first_place_of[number] = position
        recipients.append(Recipient(position, raw, number))
    return RecipientList(tuple(recipients), tuple(rejected))


@dataclass(frozen=True, slots=True)
class SubmitPart:
    """One submit_sm's payload: the whole text for the SMSC to split (`whole_text`), or one of the UDH parts the
    client split it into (`split_text`)."""

    data_coding: int
    esm_class: int
    short_message: bytes
    # Sent as the message_payload TLV (a text longer than one segment, for the SMSC to split), not short_message.
    payload: bool = False


def whole_text(text: str) -> SubmitPart:
    """The text as one submission: the SMSC splits it and holds it to its route's segment limit, and its one
    receipt covers every part. PduError when the text cannot be encoded."""
    encoding = choose_encoding(text)
    return SubmitPart(
        data_coding=encoding.value,
        esm_class=0,
        short_message=encode_text(text, encoding),
        payload=count_segments(text, encoding=encoding) > 1,
    )


def split_text(text: str, *, max_segments: int = MAX_SEGMENTS_LIMIT) -> tuple[SubmitPart, ...]:
    """GSM 7-bit when every character fits, else UCS-2; parts never split an escape sequence or surrogate pair.
    PduError when the text cannot be encoded or needs more than `max_segments` parts."""
    segmented = segment_text(text, max_segments=max_segments, reference=random.randrange(256))
    return tuple(
        SubmitPart(
            data_coding=segmented.data_coding,
            esm_class=EsmClass.UDHI if part.udh else 0,
            short_message=part.short_message,
        )
        for part in segmented.parts
    )


@dataclass(frozen=True, slots=True)
class SubmitResult:
    recipient: Recipient
    message_ids: tuple[str, ...]  # one per accepted part
    command_status: int  # ESME_ROK, or the first failing part's status

    @property
    def accepted(self) -> bool:
        return self.command_status == CommandStatus.ESME_ROK

    def status_name(self) -> str:
        return status_name(self.command_status)


class Outcome(enum.Enum):
    """What the summary table counts, from the receipt's message_state."""

    DELIVERED = "delivered"
    EXPIRED = "expired"
    UNDELIVERABLE = "undeliverable"
    REJECTED = "rejected"
    DELETED = "deleted"
    PENDING = "pending"


_FINAL_OUTCOMES: Final = {
    MessageState.DELIVERED: Outcome.DELIVERED,
    MessageState.EXPIRED: Outcome.EXPIRED,
    MessageState.UNDELIVERABLE: Outcome.UNDELIVERABLE,
    MessageState.REJECTED: Outcome.REJECTED,
    MessageState.DELETED: Outcome.DELETED,
}
SUMMARY_ROWS: Final = (Outcome.DELIVERED, Outcome.EXPIRED, Outcome.UNDELIVERABLE, Outcome.PENDING)


@dataclass(slots=True)
class ReceiptTracker:
    """Which accepted messages still wait for a final receipt. A message the client split is final when every
    part is; it is delivered only if all parts were, else it takes the first failed part's outcome."""

    _messages: dict[str, tuple[str, ...]] = field(default_factory=dict)  # number -> part message_ids
    _part_outcome: dict[str, tuple[Outcome, str]] = field(default_factory=dict)  # message_id -> (outcome, err)
    _owner: dict[str, str] = field(default_factory=dict)  # message_id -> number

    def expect(self, result: SubmitResult) -> None:
        self._messages[result.recipient.number] = result.message_ids
        for message_id in result.message_ids:
            self._owner[message_id] = result.recipient.number

    def receipt(self, message_id: str, message_state: int, err: str = "") -> bool:
        """Record a receipt (`err`: its 3-digit error code); False when the id is not one of ours (another
        client's message of the account).

        A receipt can overtake its submit_sm_resp on a transceiver bind, so unknown ids are remembered too."""
        try:
            outcome = _FINAL_OUTCOMES[MessageState(message_state)]
        except (ValueError, KeyError):
            return message_id in self._owner  # intermediate (ENROUTE, ACCEPTED...): not final yet
        self._part_outcome[message_id] = (outcome, err)
        return message_id in self._owner

    def knows(self, message_id: str) -> bool:
        return message_id in self._owner

    def _outcome_and_error(self, number: str) -> tuple[Outcome, str]:
        parts = [self._part_outcome.get(m, (Outcome.PENDING, "")) for m in self._messages[number]]
        if any(outcome is Outcome.PENDING for outcome, _ in parts):
            return Outcome.PENDING, ""
        return next((p for p in parts if p[0] is not Outcome.DELIVERED), (Outcome.DELIVERED, ""))

    def outcome(self, number: str) -> Outcome:
        return self._outcome_and_error(number)[0]

    def pending(self) -> int:
        return sum(1 for number in self._messages if self.outcome(number) is Outcome.PENDING)

    def total(self) -> int:
        return len(self._messages)

    def summary(self) -> dict[Outcome, int]:
        counts = {o: 0 for o in Outcome}
        for number in self._messages:
            counts[self.outcome(number)] += 1
        return counts

    def not_delivered(self) -> list[Failure]:
        """The numbers whose message was not (or not yet) delivered, in the order they were accepted."""
        failures = []
        for number in self._messages:
            outcome, err = self._outcome_and_error(number)
            if outcome is Outcome.PENDING:
                failures.append(Failure(number, "no final receipt in time (pending)"))
            elif outcome is not Outcome.DELIVERED:
                failures.append(Failure(number, f"{outcome.value}, err {err or '?'}"))
        return failures


@dataclass(frozen=True, slots=True)
class Failure:
    """A number whose message was refused or did not reach the handset, and why (for the summary)."""

    number: str
    reason: str


def format_summary(counts: dict[Outcome, int], failures: Sequence[Failure] = ()) -> str:
    """The outcome table, then one line per number that failed and why (err: the receipt's 3-digit code)."""
    rows = [o for o in Outcome if o in SUMMARY_ROWS or counts[o]]
    width = max(len(o.value) for o in rows)
    lines = [f"{'outcome':<{width}}  count", f"{'-' * width}  -----"]
    lines += [f"{o.value:<{width}}  {counts[o]:>5}" for o in rows]
    lines.append(f"{'total':<{width}}  {sum(counts.values()):>5}")
    if failures:
        lines.append("not delivered:")
        lines += [f"  {failure.number}  {failure.reason}" for failure in failures]
    return "\n".join(lines)


def render_progress(done: int, total: int, *, width: int = 30) -> str:
    filled = width * done // total if total else width
    percent = 100 * done // total if total else 100
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {percent:3d}%"
