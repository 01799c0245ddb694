"""A portal send: the numbers checked line by line before anything is sent, then sent as a batch that runs in the
gateway (not in the browser), so a page reload, or closing it, neither stops nor repeats it.

`check_numbers` is sans-IO: the lines of a typed list or an uploaded file (`number_files.read_number_file`) in,
the numbers to send and each refused line (invalid, repeated, opted out, do-not-call) out, the recipient rules
asked once for the whole list (`policy.check_recipients`, the rules the store applies when it accepts).
`Batches` keeps the batches of this process: a DRAFT (checked, shown to the customer with its problems) becomes
SENDING when confirmed; `run` hands it to the accept path in chunks, each one durable commit, counting progress.

A batch is charged to the account's throughput limit like every other send (the `Throttle` of its SMPP binds,
which the REST API and the Kannel/Jasmin endpoints charge too), one number at a time as SMPP counts segments. What
the limit holds back is sent again once the limit has room for it: the batch is paced at the account's rate, as
an API client waits its 429's Retry-After and `smsgw send` waits an ESME_RTHROTTLED, rather than refused for
being larger than the burst. A send the customer waits for (an inbox reply) is not paced but refused, as the API
refuses.

Batches live in this process only, not in the store: a restart loses drafts and stops a batch that is sending
(what was accepted stays accepted, the rest is not sent), and with several nodes a batch is known only to the
node that checked it. Keeping them in the store would need the store's own table and a lease for a half-sent
batch that another node takes over, as queued messages have.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import trio

from smsgw.config import AccountConfig
from smsgw.pdu.constants import Npi, Ton
from smsgw.scheduler.accept import THROTTLED_STATUS, AcceptPath, Options, Rejected, Submission, Text, Timing
from smsgw.scheduler.model import Address, StoreUnavailable
from smsgw.scheduler.number_files import InvalidLine
from smsgw.scheduler.policy import PolicyFacts, check_recipients
from smsgw.smpp_server.throttle import Throttle, TokenBucket

log = logging.getLogger(__name__)

# Submissions per accept call: one durable commit each, and the progress the page shows moves per chunk.
CHUNK: Final = 500
# Batches kept per process (drafts and finished ones; the oldest go first): enough for every customer's latest.
KEPT_BATCHES: Final = 1000
# Refused lines listed on the page; the counts cover all of them.
SHOWN_PROBLEMS: Final = 200


@dataclass(frozen=True, slots=True)
class LineProblem:
    line: int
    raw: str
    reason: str


@dataclass(frozen=True, slots=True)
class CheckedNumbers:
    numbers: tuple[str, ...]  # international digits, in the order given, each once
    problems: tuple[LineProblem, ...]  # every refused line, in line order
    too_many: bool  # more than the limit: nothing is sent


def check_numbers(
    items: Iterable[tuple[int, str | InvalidLine]], facts: PolicyFacts, account: str, *, promotional: bool,
    limit: int,
) -> CheckedNumbers:
    """The numbers to send to and the refused lines, from `read_number_file`'s (line, number) pairs (a typed list
    is read by the same reader). More than `limit` numbers: none, `too_many`."""
    first_line: dict[str, int] = {}
    numbers: list[str] = []
    lines: list[int] = []
    problems: list[LineProblem] = []
    for position, item in items:
        if isinstance(item, InvalidLine):
            problems.append(LineProblem(item.line, item.raw, item.reason))
            continue
        seen = first_line.get(item)
        if seen is not None:
            problems.append(LineProblem(position, item, f"repeats line {seen}"))
            continue
        first_line[item] = position
        numbers.append(item)
        lines.append(position)
        if len(numbers) > limit:
            return CheckedNumbers((), tuple(problems), True)
    refusals = check_recipients(facts, account, [(number, promotional) for number in numbers])
    kept: list[str] = []
    for number, line, refusal in zip(numbers, lines, refusals):
        if refusal is None:
            kept.append(number)
        else:
            problems.append(LineProblem(line, number, refusal.reason))
    problems.sort(key=lambda problem: problem.line)
    return CheckedNumbers(tuple(kept), tuple(problems), False)


class BatchState(enum.Enum):
    DRAFT = "draft"  # checked, waiting for the customer to confirm
    SENDING = "sending"
    DONE = "done"
    FAILED = "failed"  # the store could not write: what was accepted before stays accepted


@dataclass(frozen=True, slots=True)
class SendRequest:
    """What the form asked for, as the accept path takes it."""

    text: str
    sender: str
    timing: Timing
    flash: bool


@dataclass(slots=True)
class Batch:
    id: str
    account: str
    request: SendRequest
    checked: CheckedNumbers
    state: BatchState = BatchState.DRAFT
    accepted: int = 0
    charge_micro: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (number, reason) from the accept path
    error: str = ""
    paced: bool = False  # the account's throughput limit held some numbers back: they go at its rate

    @property
    def total(self) -> int:
        return len(self.checked.numbers)

    @property
    def done(self) -> int:
        return self.accepted + len(self.rejected)


class Batches:
    def __init__(self) -> None:
        self._batches: OrderedDict[str, Batch] = OrderedDict()

    def add(self, account: str, request: SendRequest, checked: CheckedNumbers) -> Batch:
        batch = Batch(secrets.token_urlsafe(12), account, request, checked)
        self._batches[batch.id] = batch
        while len(self._batches) > KEPT_BATCHES:
            self._batches.popitem(last=False)
        return batch

    def get(self, account: str, batch_id: str) -> Batch | None:
        """The batch of `account` (another account's is not found)."""
        batch = self._batches.get(batch_id)
        return batch if batch is not None and batch.account == account else None


class AccountLimits(Protocol):
    """The accounts' throughput limits (`SmppServer`): what the accept path charges, and the bucket behind it."""

    def throttle(self, account: AccountConfig) -> Throttle: ...

    def bucket(self, account: AccountConfig) -> TokenBucket: ...


async def run(batch: Batch, accept: AcceptPath, limits: AccountLimits, *, paced: bool = True) -> None:
    """Send a confirmed batch, one accept call per CHUNK numbers; one submission per number, so each has its own
    message_id (as the REST API does). The account's rate limit (`limits`) holds numbers back: they are sent again
    when its bucket has room for them (`paced`), or refused for it."""
    request = batch.request
    sender = Address(request.sender, Ton.UNKNOWN, Npi.UNKNOWN)
    options = Options(flash=request.flash)
    content = Text(request.text)
    numbers = batch.checked.numbers
    log.info("portal batch sending account=%s batch=%s numbers=%d", batch.account, batch.id, len(numbers))
    for start in range(0, len(numbers), CHUNK):
        pending = numbers[start:start + CHUNK]
        while pending:
            # The account's settings at each call: a reload that changes its limit applies to the rest.
            account = accept.account(batch.account)
            limit = _Held(limits.throttle(account))
            submissions = [
                Submission((Address(number, Ton.INTERNATIONAL, Npi.ISDN),), content, sender, request.timing, options)
                for number in pending
            ]
            try:
                results = await accept.accept(batch.account, submissions, throttle=limit)
            except StoreUnavailable as exc:
                batch.state, batch.error = BatchState.FAILED, f"the store could not write: {exc}"
                log.error("portal batch failed account=%s batch=%s done=%d error=%s", batch.account, batch.id,
                          batch.done, exc)
                return
            held: list[str] = []
            for (result,) in results:
                if isinstance(result, Rejected):
                    if paced and result.command_status == THROTTLED_STATUS:
                        held.append(result.destination.addr)
                    else:
                        batch.rejected.append((result.destination.addr, result.reason))
                else:
                    batch.accepted += 1
                    batch.charge_micro += result.charge_micro
            pending = tuple(held)
            if pending:
                batch.paced = True
                await trio.sleep(limits.bucket(account).wait_s(limit.segments, trio.current_time()))
            else:
                await trio.lowlevel.checkpoint()
    batch.state = BatchState.DONE
    log.info("portal batch done account=%s batch=%s accepted=%d rejected=%d", batch.account, batch.id,
             batch.accepted, len(batch.rejected))


class _Held:
    """The account's `Throttle`, counting the segments of the submissions it held back at its last call."""

    def __init__(self, throttle: Throttle) -> None:
        self._throttle = throttle
        self.segments = 0

    def __call__(self, segments: Sequence[int]) -> Sequence[bool]:
        allowed = self._throttle(segments)
        self.segments = sum(count for count, ok in zip(segments, allowed) if not ok)
        return allowed
