"""`smsgw send` and `smsgw receive`: SMPP clients for people and scripts, on smpplib's PDU classes and a blocking
socket.

The pure parts (reading a numbers file, normalised as the gateway's policy does, tracking receipts, rendering
progress and the summary) take values and return values; `SmppSender` is the thin I/O shell. Responses are
matched to requests by sequence number with a window of outstanding submissions, unlike smpplib's `listen` loop.
"""

from __future__ import annotations

import csv
import enum
import heapq
import logging
import random
import select
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Self, TextIO

import smpplib.client
import smpplib.command
import smpplib.exceptions
import smpplib.smpp

from smsgw.numbers import InvalidNumber, normalise_number
from smsgw.pdu.constants import CommandStatus, EsmClass, MessageState, esm_message_type, status_name
from smsgw.pdu.dlr import parse_receipt
from smsgw.pdu.errors import PduError
from smsgw.pdu.segmentation import MAX_SEGMENTS_LIMIT, count_segments, segment_text
from smsgw.pdu.text import choose_encoding, decode_text, encode_text

log = logging.getLogger(__name__)

# Answers that mean "not now": the SMSC takes the same submission later.
_TRY_AGAIN_LATER: Final = frozenset({CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL})

# smpplib logs every connect and disconnect at INFO; the CLI keeps that out of a command's output.
SMPPLIB_LOGGER: Final = f"{__name__}.smpplib"


@dataclass(frozen=True, slots=True)
class Recipient:
    line: int  # 1-based line in the numbers file (1 for --to)
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
    digits skipped, a repeated number rejected (sent once)."""
    recipients: list[Recipient] = []
    rejected: list[RejectedLine] = []
    first_line_of: dict[str, int] = {}
    reader = csv.reader(lines)
    for row in reader:
        line_no = reader.line_num
        raw = row[0].strip() if row else ""
        if not raw or raw.startswith("#"):
            continue
        if line_no == 1 and not any(c.isdigit() for c in raw):
            continue
        try:
            number = normalise_number(raw, default_country_code)
        except InvalidNumber as exc:
            rejected.append(RejectedLine(line_no, raw, str(exc)))
            continue
        if number in first_line_of:
            rejected.append(RejectedLine(line_no, raw, f"duplicate of line {first_line_of[number]}"))
            continue
        first_line_of[number] = line_no
        recipients.append(Recipient(line_no, raw, number))
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


class SendError(Exception):
    """The session failed (connect, bind, lost connection, response timeout); the message names the step."""


@dataclass(frozen=True, slots=True)
class ClientSettings:
    host: str
    port: int
    system_id: str
    password: str
    source_addr: str = ""
    window: int = 10
    response_timeout_s: float = 10.0
    enquire_link_interval_s: float = 30.0
    # ESME_RTHROTTLED / ESME_RMSGQFUL: the part is submitted again after delay * 2**attempt, this many times.
    throttle_delay_s: float = 1.0
    throttle_retries: int = 6
    # SMPP over TLS (the gateway's [smpp] tls_port) when given.
    tls: ssl.SSLContext | None = None


class _ServerNamed:
    """smpplib wraps its socket without a server name, which a verifying context refuses (and without which the
    certificate's name could not be checked); this passes the host it connects to."""

    def __init__(self, context: ssl.SSLContext, host: str) -> None:
        self._context = context
        self._host = host

    def wrap_socket(self, sock: socket.socket) -> ssl.SSLSocket:
        return self._context.wrap_socket(sock, server_hostname=self._host)


class _Session:
    """One bind over smpplib's blocking socket: connect and bind on enter, unbind on exit; PDUs are read one at a
    time and answered here, deliver_sm by the subclass's `_on_deliver_sm`."""

    def __init__(self, settings: ClientSettings, bind: str) -> None:
        self._settings = settings
        self._bind = bind  # transmitter, receiver or transceiver
        self._in_flight: dict[int, tuple[int, int]] = {}  # sequence -> (message index, part index)
        self._client = smpplib.client.Client(
            settings.host,
            settings.port,
            timeout=settings.response_timeout_s,
            allow_unknown_opt_params=True,
            logger_name=SMPPLIB_LOGGER,
            ssl_context=None if settings.tls is None else _ServerNamed(settings.tls, settings.host),
        )

    def __enter__(self) -> Self:
        where = f"{self._settings.host}:{self._settings.port}"
        try:
            self._client.connect()
        except smpplib.exceptions.ConnectionError as exc:
            self._client.disconnect()  # the socket exists: closed here, not in smpplib's __del__ with a warning
            # smpplib says "Connection refused" whatever happened; the socket's own error says what did.
            raise SendError(f"cannot connect to {where}: {exc.__context__ or exc}") from None
        try:
            getattr(self._client, f"bind_{self._bind}")(
                system_id=self._settings.system_id, password=self._settings.password
            )
        except smpplib.exceptions.PDUError as exc:
            self._client.disconnect()
            raise SendError(f"bind refused by {where}: {status_name(exc.args[1])}") from None
        except (smpplib.exceptions.ConnectionError, OSError) as exc:
            self._client.disconnect()
            raise SendError(f"connection to {where} lost during bind") from exc
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._client.send_pdu(smpplib.smpp.make_pdu("unbind", client=self._client))
            deadline = time.monotonic() + self._settings.response_timeout_s
            while self._readable(max(deadline - time.monotonic(), 0.0)):
                if self._read_one() == "unbind_resp":
                    break
        except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError, SendError):
            log.debug("unbind not answered; closing anyway")
        finally:
            self._client.disconnect()

    def _readable(self, timeout_s: float) -> bool:
        """Whether a PDU has started to arrive; waiting here, not in a read, never splits a PDU at a timeout.
        A TLS socket may hold decrypted bytes that select cannot see."""
        sock = self._client._socket
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        readable, _, _ = select.select([sock], [], [], timeout_s)
        return bool(readable)

    def _read_one(self, on_response: Callable[[int, int, str], None] | None = None) -> str:
        """Read and handle one PDU; returns its command name."""
        try:
            pdu = self._client.read_pdu()
        except TimeoutError as exc:
            raise SendError(f"a PDU stalled for {self._settings.response_timeout_s} s") from exc
        except smpplib.exceptions.ConnectionError as exc:
            raise SendError("connection closed by the server") from exc
        except smpplib.exceptions.PDUError as exc:
            raise SendError(f"unreadable PDU from the server: {exc}") from exc
        command: str = pdu.command
        if command in ("submit_sm_resp", "generic_nack") and pdu.sequence in self._in_flight:
            if on_response is not None:
                on_response(pdu.sequence, int(pdu.status), _text(getattr(pdu, "message_id", b"")))
        elif command == "deliver_sm":
            status = self._on_deliver_sm(pdu)
            if status is not None:
                self._answer(pdu, "deliver_sm_resp", status)
        elif command == "enquire_link":
            self._answer(pdu, "enquire_link_resp", CommandStatus.ESME_ROK)
        elif command == "unbind":
            self._answer(pdu, "unbind_resp", CommandStatus.ESME_ROK)
            raise SendError("the server unbound the session")
        elif command == "generic_nack":
            raise SendError(f"server sent generic_nack {status_name(int(pdu.status))}")
        return command

    def _on_deliver_sm(self, pdu: smpplib.command.DeliverSM) -> int | None:
        """The deliver_sm_resp status, or None to answer later."""
        raise NotImplementedError

    def _keep_alive(self) -> None:
        self._send(smpplib.smpp.make_pdu("enquire_link", client=self._client))

    def _answer(self, request: smpplib.command.Command, command: str, command_status: int) -> None:
        response = smpplib.smpp.make_pdu(command, client=self._client, status=int(command_status))
        response.sequence = request.sequence
        self._send(response)

    def _send(self, pdu: smpplib.command.Command) -> None:
        try:
            self._client.send_pdu(pdu)
        except smpplib.exceptions.ConnectionError as exc:
            raise SendError("connection closed by the server") from exc


class SmppSender(_Session):
    """One bind (transceiver when receipts are wanted, else transmitter) that submits with a window."""

    def __init__(self, settings: ClientSettings, *, receive_receipts: bool) -> None:
        super().__init__(settings, "transceiver" if receive_receipts else "transmitter")
        self._receive_receipts = receive_receipts
        self._undecided: list[tuple[smpplib.command.DeliverSM, str]] = []  # receipts not yet known to be ours
        self.tracker = ReceiptTracker()

    def submit_all(
        self,
        recipients: Sequence[Recipient],
        parts: Sequence[SubmitPart],
        on_result: Callable[[SubmitResult], None],
    ) -> list[SubmitResult]:
        """Submit every part to every recipient, at most `window` unanswered; results in recipient order as
        each recipient's parts are all answered."""
        statuses: list[list[int | None]] = [[None] * len(parts) for _ in recipients]
        message_ids: list[list[str]] = [[""] * len(parts) for _ in recipients]
        results: list[SubmitResult | None] = [None] * len(recipients)
        next_to_report = 0

        def report_ready() -> None:
            nonlocal next_to_report
            while next_to_report < len(recipients) and None not in statuses[next_to_report]:
                i = next_to_report
                answered = [s for s in statuses[i] if s is not None]  # all of them, by the loop's condition
                failed = next((s for s in answered if s != CommandStatus.ESME_ROK), CommandStatus.ESME_ROK)
                ids = tuple(m for m, s in zip(message_ids[i], statuses[i], strict=True) if s == 0)
                result = SubmitResult(recipients[i], ids, int(failed))
                results[i] = result
                if self._receive_receipts and result.accepted:
                    self.tracker.expect(result)
                on_result(result)
                next_to_report += 1

        # Throttled parts wait their turn here: (not_before, attempt, message index, part index).
        retries: list[tuple[float, int, int, int]] = []
        queue = deque((index, part) for index in range(len(recipients)) for part in range(len(parts)))
        attempts: dict[tuple[int, int], int] = {}

        def on_response(sequence: int, command_status: int, message_id: str) -> None:
            index, part = self._in_flight.pop(sequence)
            attempt = attempts.get((index, part), 0)
            if command_status in _TRY_AGAIN_LATER and attempt < self._settings.throttle_retries:
                attempts[(index, part)] = attempt + 1
                delay = self._settings.throttle_delay_s * 2**attempt
                heapq.heappush(retries, (time.monotonic() + delay, attempt + 1, index, part))
                log.debug("submit_sm throttled status=%s retry_in_s=%.1f", status_name(command_status), delay)
                return
            statuses[index][part] = command_status
            message_ids[index][part] = message_id
            report_ready()
            self._settle_undecided()

        last_progress = time.monotonic()
        while queue or retries or self._in_flight:
            now = time.monotonic()
            while len(self._in_flight) < self._settings.window:
                if retries and retries[0][0] <= now:
                    _, _, index, part = heapq.heappop(retries)
                elif queue:
                    index, part = queue.popleft()
                else:
                    break
                self._submit(recipients[index], parts[part], (index, part))
                last_progress = now
            wait_s = self._settings.response_timeout_s
            if retries and len(self._in_flight) < self._settings.window:
                wait_s = min(wait_s, max(retries[0][0] - now, 0.0))
            if self._readable(wait_s):
                self._read_one(on_response)
                last_progress = time.monotonic()
            elif self._in_flight and time.monotonic() - last_progress >= self._settings.response_timeout_s:
                raise SendError(
                    f"no response to {len(self._in_flight)} submit_sm within {self._settings.response_timeout_s} s"
                )
        return [r for r in results if r is not None]

    def _submit(self, recipient: Recipient, part: SubmitPart, key: tuple[int, int]) -> None:
        pdu = smpplib.smpp.make_pdu(
            "submit_sm",
            client=self._client,
            source_addr_ton=_source_ton(self._settings.source_addr),
            source_addr_npi=1 if self._settings.source_addr.isdigit() else 0,
            source_addr=self._settings.source_addr,
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=recipient.number,
            esm_class=part.esm_class,
            data_coding=part.data_coding,
            registered_delivery=1 if self._receive_receipts else 0,
            short_message=b"" if part.payload else part.short_message,
            **({"message_payload": part.short_message} if part.payload else {}),
        )
        self._in_flight[pdu.sequence] = key
        self._send(pdu)

    def wait_receipts(self, timeout_s: float, on_progress: Callable[[int, int], None] | None = None) -> None:
        """Read receipts until every accepted message is final or `timeout_s` passes; keeps the bind alive.
        `on_progress(final, total)` at the start and after each PDU read."""
        deadline = time.monotonic() + timeout_s
        total = self.tracker.total()
        if on_progress is not None:
            on_progress(total - self.tracker.pending(), total)
        while self.tracker.pending():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._readable(min(remaining, self._settings.enquire_link_interval_s)):
                self._read_one()
                if on_progress is not None:
                    on_progress(total - self.tracker.pending(), total)
            elif time.monotonic() < deadline:
                self._keep_alive()

    def _on_deliver_sm(self, pdu: smpplib.command.DeliverSM) -> int | None:
        """The deliver_sm_resp status, or None to answer later (see `_settle_undecided`)."""
        if esm_message_type(int(pdu.esm_class)) != EsmClass.DELIVERY_RECEIPT:
            log.debug("mobile-originated message left for the account's receivers")
            return CommandStatus.ESME_RX_T_APPN
        try:
            receipt = parse_receipt(
                bytes(pdu.short_message or b""),
                receipted_message_id=_text(getattr(pdu, "receipted_message_id", None) or b"") or None,
                message_state=getattr(pdu, "message_state", None),
            )
        except PduError as exc:
            log.warning("unreadable receipt left for the account's receivers: %s", exc)
            return CommandStatus.ESME_RX_T_APPN
        message_id = receipt.message_id
        if self.tracker.receipt(message_id, receipt.message_state, receipt.err):
            return CommandStatus.ESME_ROK
        if self._in_flight:
            # Possibly the receipt of a submission whose response has not arrived yet: answer once we know.
            self._undecided.append((pdu, message_id))
            return None
        return self._foreign(message_id)

    def _settle_undecided(self) -> None:
        still: list[tuple[smpplib.command.DeliverSM, str]] = []
        for pdu, message_id in self._undecided:
            if self.tracker.knows(message_id):
                self._answer(pdu, "deliver_sm_resp", CommandStatus.ESME_ROK)
            elif not self._in_flight:
                self._answer(pdu, "deliver_sm_resp", self._foreign(message_id))
            else:
                still.append((pdu, message_id))
        self._undecided = still

    @staticmethod
    def _foreign(message_id: str) -> int:
        # A temporary error makes the gateway keep the receipt for another bind of the account instead of losing
        # it to this short-lived client.
        log.debug("receipt for another client's message id=%s left for the account's receivers", message_id)
        return CommandStatus.ESME_RX_T_APPN


def _source_ton(source_addr: str) -> int:
    if not source_addr:
        return 0
    return 1 if source_addr.isdigit() else 5  # international number, or alphanumeric sender ID


def _text(value: bytes | str) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class SendReport:
    results: tuple[SubmitResult, ...]
    outcomes: dict[Outcome, int] | None  # the receipt summary when receipts were awaited
    failures: tuple[Failure, ...] = ()  # refused at submit, then (when waiting) not delivered, and why

    @property
    def all_accepted(self) -> bool:
        return all(r.accepted for r in self.results)

    @property
    def all_delivered(self) -> bool:
        return self.outcomes is None or self.outcomes[Outcome.DELIVERED] == sum(self.outcomes.values())


def send_batch(
    settings: ClientSettings,
    recipients: Sequence[Recipient],
    parts: Sequence[SubmitPart],
    *,
    wait_receipts_s: float | None,
    out: TextIO,
    progress: TextIO | None,
) -> SendReport:
    """Submit the parts to every recipient, printing one tab-separated line per message to `out` as its responses
    arrive (number, OK or the error status name, message ids); then, when `wait_receipts_s` is given, wait that
    long for the final receipts. `progress`, when given, gets a progress bar redrawn in place, for the
    submissions and then for the receipts."""
    results: list[SubmitResult] = []

    def on_result(result: SubmitResult) -> None:
        results.append(result)
        status = "OK" if result.accepted else result.status_name()
        print(f"{result.recipient.number}\t{status}\t{','.join(result.message_ids)}", file=out, flush=True)
        if progress is not None:
            print(f"\rsent     {render_progress(len(results), len(recipients))}", end="", file=progress, flush=True)

    def on_receipts(final: int, total: int) -> None:
        assert progress is not None
        print(f"\rreceipts {render_progress(final, total)}", end="", file=progress, flush=True)

    with SmppSender(settings, receive_receipts=wait_receipts_s is not None) as sender:
        try:
            sender.submit_all(recipients, parts, on_result)
        finally:
            if progress is not None and results:
                print(file=progress, flush=True)
        refused = tuple(
            Failure(r.recipient.number, f"refused at submit: {r.status_name()}") for r in results if not r.accepted
        )
        if wait_receipts_s is None:
            return SendReport(tuple(results), None, refused)
        try:
            sender.wait_receipts(wait_receipts_s, on_receipts if progress is not None else None)
        finally:
            if progress is not None and sender.tracker.total():
                print(file=progress, flush=True)
        return SendReport(tuple(results), sender.tracker.summary(), refused + tuple(sender.tracker.not_delivered()))


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
    source, destination = _text(pdu.source_addr or b""), _text(pdu.destination_addr or b"")
    try:
        text = decode_text(data, data_coding)
    except (PduError, ValueError):
        text = data.hex()
    if esm_message_type(int(pdu.esm_class)) == EsmClass.DELIVERY_RECEIPT:
        try:
            receipt = parse_receipt(
                data,
                receipted_message_id=_text(getattr(pdu, "receipted_message_id", None) or b"") or None,
                message_state=getattr(pdu, "message_state", None),
            )
        except PduError:
            return Received("receipt", source, destination, text, data_coding)
        return Received("receipt", source, destination, text, data_coding, receipt.message_id, receipt.stat,
                        receipt.err)
    return Received("mo", source, destination, text, data_coding)


class SmppReceiver(_Session):
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
