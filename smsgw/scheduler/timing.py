"""Sans-IO time rules: wall time from the Trio clock, scheduling and validity windows, retry backoff with jitter.

Times in the store are integer milliseconds since the Unix epoch (UTC); these helpers convert at the edges.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import trio

from smsgw.config import MessageConfig
from smsgw.pdu.constants import CommandStatus
from smsgw.scheduler.model import Refused


def to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class WallClock:
    """Wall time that advances with `trio.current_time()`, so `MockClock` drives schedules, validity and retries.

    The anchor is the wall time at the first reading (or the one given, for tests and replays).
    """

    def __init__(self, anchor: datetime | None = None) -> None:
        self._anchor = anchor
        self._origin: tuple[int, float] | None = None

    def now_ms(self) -> int:
        current = trio.current_time()
        if self._origin is None:
            self._origin = (to_ms(self._anchor or datetime.now(UTC)), current)
        anchor_ms, anchor_trio = self._origin
        return anchor_ms + int((current - anchor_trio) * 1000)

    def trio_deadline(self, at_ms: int) -> float:
        """The `trio.current_time()` value at which wall time reaches `at_ms`."""
        return trio.current_time() + (at_ms - self.now_ms()) / 1000


@dataclass(frozen=True, slots=True)
class Window:
    """When a message may first be handed to a modem, and when its validity ends (both epoch ms)."""

    start_ms: int
    expires_ms: int
    scheduled: bool


def delivery_window(
    now_ms: int,
    config: MessageConfig,
    schedule: datetime | timedelta | None,
    validity: datetime | timedelta | None,
) -> Window:
    """Apply the schedule and validity rules of DESIGN.md.

    A schedule in the past means now; more than `max_schedule_ahead_s` ahead is ESME_RINVSCHED. A relative or
    default validity counts from the moment the message may first be sent (a message scheduled for next week does
    not expire before it starts); an absolute one is taken as given. The period must lie within the configured
    bounds, else ESME_RINVEXPIRY.
    """
    start_ms = now_ms
    if isinstance(schedule, datetime):
        start_ms = max(now_ms, to_ms(schedule))
    elif isinstance(schedule, timedelta):
        start_ms = now_ms + max(0, int(schedule.total_seconds() * 1000))
    if start_ms - now_ms > config.max_schedule_ahead_s * 1000:
        raise Refused(
            f"schedule_delivery_time more than {config.max_schedule_ahead_s:.0f} s ahead",
            command_status=CommandStatus.ESME_RINVSCHED,
        )
    if validity is None:
        expires_ms = start_ms + int(config.default_validity_s * 1000)
    elif isinstance(validity, datetime):
        expires_ms = to_ms(validity)
    else:
        expires_ms = start_ms + int(validity.total_seconds() * 1000)
    period_s = (expires_ms - start_ms) / 1000
    if validity is not None and not config.min_validity_s <= period_s <= config.max_validity_s:
        raise Refused(
            f"validity period {period_s:.0f} s outside {config.min_validity_s:.0f}..{config.max_validity_s:.0f} s",
            command_status=CommandStatus.ESME_RINVEXPIRY,
        )
    return Window(start_ms=start_ms, expires_ms=expires_ms, scheduled=start_ms > now_ms)


def retry_delay_ms(attempts: int, config: MessageConfig, rng: random.Random) -> int:
    """Exponential backoff from `retry_backoff_base_s`, capped, with full jitter in its upper half.

    Jitter spreads retries of a batch that failed together (a modem restart) instead of retrying in lockstep.
    """
    ceiling = min(config.retry_backoff_max_s, config.retry_backoff_base_s * 2 ** max(0, attempts - 1))
    return int(ceiling * rng.uniform(0.5, 1.0) * 1000)
