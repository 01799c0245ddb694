"""`smsgw send`: submit a text to every recipient with a window of outstanding submit_sm, matched to their
responses by sequence number (unlike smpplib's `listen` loop), retry throttled parts, then wait for the receipts;
one line per message and a progress bar as it goes."""

from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TextIO

import smpplib.command
import smpplib.smpp

from smsgw.client.messages import (
    Failure,
    Outcome,
    ReceiptTracker,
    Recipient,
    SubmitPart,
    SubmitResult,
    render_progress,
)
from smsgw.client.session import ClientSettings, Session, SendError, pdu_text
from smsgw.pdu.constants import CommandStatus, EsmClass, esm_message_type, status_name
from smsgw.pdu.dlr import parse_receipt
from smsgw.pdu.errors import PduError

log = logging.getLogger(__name__)

# Answers that mean "not now": the SMSC takes the same submission later.
_TRY_AGAIN_LATER: Final = frozenset({CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL})


class SmppSender(Session):
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
                receipted_message_id=pdu_text(getattr(pdu, "receipted_message_id", None) or b"") or None,
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
