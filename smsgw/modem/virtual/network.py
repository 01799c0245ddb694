"""The virtual GSM network: an SMSC and handsets, chosen by the destination number (DESIGN.md, "The virtual GSM
network").

`VirtualNetwork` is sans-IO: every call takes `now` (seconds on the Trio clock) and the network keeps a queue of
delivery attempts with their due times; `serve_network` is the Trio shell that sleeps until the next one. Virtual
modems attach as `Handset`s under their MSISDN; an MT the network offers them is an SMS-DELIVER or an
SMS-STATUS-REPORT, which they store or announce as a real modem does, or refuse because their memory is full.

As a real SMSC does, the network accepts an SMS-SUBMIT at once and delivers later, one MT at a time to each handset
(`mt_interval_s` apart, as radio transactions are); it retries temporary failures
(absent handset, memory full) every `retry_interval_s` until the message's validity ends, and sends a status
report to the originator only when TP-SRR asked for one.
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import itertools
import logging
import math
from collections.abc import Callable, Container
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Final, Protocol

import trio

from smsgw.config import VirtualNetworkConfig
from smsgw.pdu.reassembly import PartInfo, Reassembler
from smsgw.pdu.segmentation import MAX_SEGMENTS_LIMIT, TooManySegments, segment_text
from smsgw.pdu.text import Encoding
from smsgw.pdu.tpdu import Address, Dcs, SmsDeliver, SmsStatusReport, SmsSubmit, TpStatus, TypeOfNumber
from smsgw.pdu.udh import Udh

log = logging.getLogger(__name__)

AUTO_REPLY_NUMBER: Final = "447700900999"
SWITCHED_OFF_RANGE: Final = range(447700911000, 447700912000)
UNKNOWN_SUBSCRIBER_RANGE: Final = range(447700922000, 447700923000)
MEMORY_FULL_ONCE_RANGE: Final = range(447700933000, 447700934000)
AUTO_REPLY_PREFIX: Final = "RE: "
# E.164 numbers have at most 15 digits; shorter than 5 is no subscriber number anywhere.
_MIN_DIGITS: Final = 5
_MAX_DIGITS: Final = 15
# The virtual network is a UK-like numbering plan: a national number 07700 900001 is +44 7700 900001.
_COUNTRY_CODE: Final = "44"
# TS 24.011 table 8.4: RP cause 1, "unassigned (unallocated) number", reported by the modem as +CMS ERROR: 1.
RP_CAUSE_UNASSIGNED_NUMBER: Final = 1
# TS 23.040 9.2.3.15 has no "unknown subscriber"; SMSCs report an HLR "unknown subscriber" as this one.
TP_ST_UNKNOWN_SUBSCRIBER: Final = TpStatus.INCOMPATIBLE_DESTINATION


class MtResult(enum.Enum):
    ACCEPTED = "accepted"
    MEMORY_FULL = "memory_full"  # TS 24.011 RP cause 22, memory capacity exceeded: try again after RP-SMMA
    ABSENT = "absent"  # switched off, radio off, not registered


Mt = SmsDeliver | SmsStatusReport


class Handset(Protocol):
    def receive_mt(self, now: float, message: Mt) -> MtResult:
        """Take an SMS-DELIVER or SMS-STATUS-REPORT now, or say why not."""


class Behaviour(enum.Enum):
    """What the handset at a destination number does (DESIGN.md table)."""

    SUBSCRIBER = "subscriber"  # an attached virtual modem
    AUTO_REPLY = "auto_reply"
    SWITCHED_OFF = "switched_off"
    UNKNOWN_SUBSCRIBER = "unknown_subscriber"
    MEMORY_FULL_ONCE = "memory_full_once"
    DELIVERED = "delivered"


def normalise_number(address: Address) -> str | None:
    """International digits of a destination, or None when it cannot be a subscriber (alphanumeric, too short)."""
    if address.ton == TypeOfNumber.ALPHANUMERIC or not address.number.isdigit():
        return None
    digits = address.number
    if address.ton != TypeOfNumber.INTERNATIONAL and digits.startswith("0") and not digits.startswith("00"):
        digits = _COUNTRY_CODE + digits[1:]
    digits = digits.removeprefix("00")
    return digits if _MIN_DIGITS <= len(digits) <= _MAX_DIGITS else None


def behaviour_for(number: str, subscribers: Container[str]) -> Behaviour:
    """`subscribers`: the MSISDNs of the virtual modems the network knows (its HLR), attached or not."""
    if number in subscribers:
        return Behaviour.SUBSCRIBER
    if number == AUTO_REPLY_NUMBER:
        return Behaviour.AUTO_REPLY
    value = int(number)
    if value in SWITCHED_OFF_RANGE:
        return Behaviour.SWITCHED_OFF
    if value in UNKNOWN_SUBSCRIBER_RANGE:
        return Behaviour.UNKNOWN_SUBSCRIBER
    if value in MEMORY_FULL_ONCE_RANGE:
        return Behaviour.MEMORY_FULL_ONCE
    return Behaviour.DELIVERED


@dataclass(frozen=True, slots=True)
class SubmitAccepted:
    destination: str
    accepted_at: datetime


@dataclass(frozen=True, slots=True)
class SubmitRejected:
    """The SMSC refused the SMS-SUBMIT (RP-ERROR); the modem answers `+CMS ERROR: <rp_cause>`."""

    rp_cause: int
    reason: str


SubmitResult = SubmitAccepted | SubmitRejected


@dataclass(frozen=True, slots=True)
class _Submission:
    """An accepted SMS-SUBMIT, remembered for its status report."""

    sender: str
    destination: str
    submit: SmsSubmit
    accepted_at: float


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One MT waiting to be offered to `destination` at `due`."""

    due: float
    expires_at: float
    destination: str
    message: Mt
    submission: _Submission | None  # None for status reports and auto-replies: nobody wants a report of those
    attempts: int = 0


class VirtualNetwork:
    """The SMSC and the handsets behind every number (sans-IO; see the module docstring)."""

    def __init__(self, config: VirtualNetworkConfig, *, now: float, wall_clock: datetime | None = None) -> None:
        self.config = config
        self._origin = now
        # TP-SCTS and discharge times follow the Trio clock from this wall-clock moment, so MockClock tests
        # see validity periods pass in the timestamps too. Whole seconds: TPDU timestamps have no fraction.
        self._epoch = (wall_clock or datetime.now(timezone.utc)).replace(microsecond=0)
        # The last whole second `wall_time` was asked for, and its answer: several per message, mostly the same.
        self._wall_second = 0
        self._wall_time = self._epoch
        self._subscribers: dict[str, Handset] = {}
        # Every MSISDN that ever attached: while detached it is a switched-off handset, not "any other number".
        self._home_location_register: set[str] = set()
        # When each virtual modem may be offered its next MT (`mt_interval_s` after the last one it was offered).
        self._radio_free_at: dict[str, float] = {}
        self._queue: list[tuple[float, int, _Attempt]] = []
        self._sequence = itertools.count()
        # The auto-reply handset answers once per message, so it joins a concatenated message's parts first.
        self._auto_reply_parts = Reassembler(config.reassembly_timeout_s)
        self._reply_reference = itertools.count()
        self._wakeup: Callable[[], None] = lambda: None

    # --- subscribers ---------------------------------------------------------------------------------------------

    def set_wakeup(self, wakeup: Callable[[], None]) -> None:
        """`wakeup` is called when an attempt became due earlier than `next_deadline()` said before."""
        self._wakeup = wakeup

    def attach(self, now: float, msisdn: str, handset: Handset) -> None:
        """The handset registered: MTs waiting for it are offered now (the HLR "MS present" alert)."""
        self._subscribers[msisdn] = handset
        self._home_location_register.add(msisdn)
        log.info("subscriber attached msisdn=%s", msisdn)
        self._retry_now(now, msisdn)

    def detach(self, now: float, msisdn: str) -> None:
        if self._subscribers.pop(msisdn, None) is not None:
            log.info("subscriber detached msisdn=%s", msisdn)

    def memory_available(self, now: float, msisdn: str) -> None:
        """The handset has room again (RP-SMMA, TS 24.011 7.3.2): retry what it refused for memory full."""
        self._retry_now(now, msisdn)

    def is_attached(self, msisdn: str) -> bool:
        return msisdn in self._subscribers

    def wall_time(self, now: float) -> datetime:
        second = math.floor(now - self._origin)
        if second != self._wall_second:
            self._wall_second, self._wall_time = second, self._epoch + timedelta(seconds=second)
        return self._wall_time

    # --- the SMSC -----------------------------------------------------------------------------------------------

    def submit(self, now: float, sender: str, submit: SmsSubmit) -> SubmitResult:
        """Accept an SMS-SUBMIT from the subscriber `sender` (whose modem chose `submit.tp_mr`)."""
        destination = normalise_number(submit.destination)
        if destination is None:
            log.info("submit rejected sender=%s destination=%s reason=invalid_number", sender, submit.destination)
            return SubmitRejected(RP_CAUSE_UNASSIGNED_NUMBER, f"{submit.destination} is not a valid number")
        accepted_at = self.wall_time(now)
        deliver = SmsDeliver(
            originator=Address.international(sender),
            scts=accepted_at,
            user_data=submit.user_data,
            dcs=submit.dcs,
            udh=submit.udh,
            tp_pid=submit.tp_pid,
            reply_path=submit.reply_path,
        )
        submission = _Submission(sender, destination, submit, now)
        self._schedule(
            _Attempt(now + self.config.delivery_delay_s, self._expiry(now, submit), destination, deliver, submission)
        )
        log.info(
            "submit accepted sender=%s destination=%s tp_mr=%d srr=%s",
            sender,
            destination,
            submit.tp_mr,
            submit.status_report_request,
        )
        return SubmitAccepted(destination, accepted_at)

    def ussd(self, msisdn: str, request: str) -> str | None:
        """The network's answer to a USSD request, or None when the service code is unknown."""
        if request in ("*#100#", "*135#"):
            return f"Your number is +{msisdn}"
        if request in ("*100#", "*101#"):
            return "Your balance is 10.00 GBP."
        return None

    def next_deadline(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def advance(self, now: float) -> None:
        """Make every attempt that is due by `now`."""
        while self._queue and self._queue[0][0] <= now:
            _, _, attempt = heapq.heappop(self._queue)
            self._attempt(now, attempt)
        self._auto_reply_parts.expire(now)  # a message whose parts never all came gets no reply

    # --- internals ----------------------------------------------------------------------------------------------

    def _behaviour(self, number: str) -> Behaviour:
        return behaviour_for(number, self._home_location_register)

    def _expiry(self, now: float, submit: SmsSubmit) -> float:
        validity = submit.validity
        if isinstance(validity, timedelta):
            return now + validity.total_seconds()
        if isinstance(validity, datetime):
            return now + (validity - self.wall_time(now)).total_seconds()
        return now + self.config.default_validity_s

    def _schedule(self, attempt: _Attempt) -> None:
        earliest = self.next_deadline()
        heapq.heappush(self._queue, (attempt.due, next(self._sequence), attempt))
        if earliest is None or attempt.due < earliest:
            self._wakeup()

    def _retry_now(self, now: float, msisdn: str) -> None:
        waiting = [entry for entry in self._queue if entry[2].destination == msisdn and entry[0] > now]
        if not waiting:
            return
        self._queue = [entry for entry in self._queue if not (entry[2].destination == msisdn and entry[0] > now)]
        heapq.heapify(self._queue)
        for _, _, attempt in waiting:
            self._schedule(dataclasses.replace(attempt, due=now))

    def _attempt(self, now: float, attempt: _Attempt) -> None:
        if now >= attempt.expires_at:
            log.info("mt expired destination=%s attempts=%d", attempt.destination, attempt.attempts)
            self._finish(now, attempt, TpStatus.VALIDITY_PERIOD_EXPIRED)
            return
        free_at = self._radio_free_at.get(attempt.destination, now)
        if now < free_at:
            self._schedule(dataclasses.replace(attempt, due=free_at))  # not an attempt: it waits its turn
            return
        behaviour = self._behaviour(attempt.destination)
        result = self._offer(now, attempt, behaviour)
        if result is MtResult.ACCEPTED:
            log.info("mt delivered destination=%s attempts=%d", attempt.destination, attempt.attempts + 1)
            self._finish(now, attempt, TpStatus.RECEIVED_BY_SME)
            if attempt.submission is not None and behaviour is Behaviour.AUTO_REPLY:
                self._auto_reply(now, attempt.submission)
        elif result is None:
            log.info("mt failed destination=%s reason=unknown_subscriber", attempt.destination)
            self._finish(now, attempt, TP_ST_UNKNOWN_SUBSCRIBER)
        else:
            log.info("mt deferred destination=%s reason=%s", attempt.destination, result.value)
            retry = dataclasses.replace(
                attempt,
                due=min(now + self.config.retry_interval_s, attempt.expires_at),
                attempts=attempt.attempts + 1,
            )
            self._schedule(retry)

    def _offer(self, now: float, attempt: _Attempt, behaviour: Behaviour) -> MtResult | None:
        """Offer the MT to the handset at its destination (which behaves as `behaviour`); None for a permanent
        failure."""
        if attempt.submission is None and behaviour is not Behaviour.SUBSCRIBER:
            # Reports and replies go to virtual modems only.
            return MtResult.ABSENT
        if behaviour is Behaviour.SUBSCRIBER:
            handset = self._subscribers.get(attempt.destination)
            if handset is None:
                return MtResult.ABSENT
            self._radio_free_at[attempt.destination] = now + self.config.mt_interval_s
            return handset.receive_mt(now, attempt.message)
        if behaviour is Behaviour.SWITCHED_OFF:
            return MtResult.ABSENT
        if behaviour is Behaviour.UNKNOWN_SUBSCRIBER:
            return None
        if behaviour is Behaviour.MEMORY_FULL_ONCE and attempt.attempts == 0:
            return MtResult.MEMORY_FULL
        return MtResult.ACCEPTED

    def _finish(self, now: float, attempt: _Attempt, tp_st: int) -> None:
        submission = attempt.submission
        if submission is None or not submission.submit.status_report_request:
            return
        report = SmsStatusReport(
            tp_mr=submission.submit.tp_mr,
            recipient=submission.submit.destination,
            scts=self.wall_time(submission.accepted_at),
            discharge_time=self.wall_time(now),
            tp_st=tp_st,
        )
        self._schedule(_Attempt(now, now + self.config.default_validity_s, submission.sender, report, None))

    def _auto_reply(self, now: float, submission: _Submission) -> None:
        """The handset at AUTO_REPLY_NUMBER answers `RE: <text>`, once per message (parts reassembled first)."""
        submit = submission.submit
        encoding = submit.dcs.encoding
        if encoding is Encoding.BINARY or submit.text is None:
            log.info("auto-reply skipped sender=%s reason=binary_message", submission.sender)
            return
        concatenation = Udh.from_bytes(submit.udh).concatenation if submit.udh else None
        if concatenation is None:
            self._send_reply(now, submission.sender, AUTO_REPLY_PREFIX + submit.text)
            return
        part = PartInfo.from_concatenation(concatenation, submit.user_data, encoding)
        whole = self._auto_reply_parts.add(submission.sender, part, now)
        if whole is not None:
            self._send_reply(now, submission.sender, AUTO_REPLY_PREFIX + whole.text())

    def _send_reply(self, now: float, recipient: str, text: str) -> None:
        reference = next(self._reply_reference) % 256
        try:
            segmented = segment_text(text, max_segments=MAX_SEGMENTS_LIMIT, reference=reference)
        except TooManySegments:
            log.info("auto-reply skipped recipient=%s reason=too_long", recipient)
            return
        dcs = Dcs.gsm7() if segmented.encoding is Encoding.GSM7 else Dcs.ucs2()
        due = now + self.config.delivery_delay_s
        for part in segmented.parts:
            deliver = SmsDeliver(
                originator=Address.international(AUTO_REPLY_NUMBER),
                scts=self.wall_time(now),
                user_data=part.user_data,
                dcs=dcs,
                udh=part.udh,
            )
            self._schedule(_Attempt(due, due + self.config.default_validity_s, recipient, deliver, None))
        log.info("auto-reply queued recipient=%s parts=%d", recipient, len(segmented.parts))


async def serve_network(
    network: VirtualNetwork, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the network's attempts on the Trio clock until cancelled."""
    wakeup = trio.Event()

    def wake() -> None:
        wakeup.set()

    network.set_wakeup(wake)
    task_status.started()
    try:
        while True:
            network.advance(trio.current_time())
            # Only now: what advance itself scheduled (a status report due at once) it has already made, so its
            # wake-ups are no reason for another round.
            wakeup = trio.Event()
            deadline = network.next_deadline()
            if deadline is None:
                await wakeup.wait()  # the usual case with no delays: no cancel scope for a timer that is not there
            else:
                with trio.move_on_at(deadline):
                    await wakeup.wait()
    finally:
        network.set_wakeup(lambda: None)
