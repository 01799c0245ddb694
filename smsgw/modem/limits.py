"""Per-modem sending limits, sans-IO: messages per minute (sliding window), per calendar day and calendar month.

Commercial SIM gateways sell bundles that reset at the start of each day and month, and operators block SIMs that
send bursts, so the minute limit slides while day and month follow the calendar (UTC). The caller passes both
clocks: `now` (the monotonic Trio clock) for the window and `today` for the calendar.

A SIM's bundle does not reset when the gateway restarts, so `usage` exports what was used in a form that outlives
the process (the modem status file) and `restore` adds it back in the next run.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class LimitCounters:
    last_minute: int
    today: int
    this_month: int


@dataclass(frozen=True, slots=True)
class LimitUsage:
    """What a SIM has used of its limits: the day and month counts with the UTC day they were counted on, and the
    sliding minute as ages, since the monotonic clock of one process means nothing to the next."""

    day: date  # also names the month of `this_month`
    today: int
    this_month: int
    recent_ages_s: tuple[float, ...]  # how long before the snapshot each send of the last minute was


class SendLimits:
    def __init__(self, per_minute: int | None, per_day: int | None, per_month: int | None) -> None:
        self._per_minute = per_minute
        self._per_day = per_day
        self._per_month = per_month
        self._recent: deque[float] = deque()
        self._day: date | None = None
        self._day_count = 0
        self._month: tuple[int, int] | None = None
        self._month_count = 0

    def counters(self, now: float, today: date) -> LimitCounters:
        self._roll(now, today)
        return LimitCounters(len(self._recent), self._day_count, self._month_count)

    @property
    def unlimited(self) -> bool:
        return self._per_minute is None and self._per_day is None and self._per_month is None

    def exhausted(self, now: float, today: date) -> str | None:
        """Which limit is used up ("per_minute", "per_day", "per_month"), or None when one more may be sent."""
        if self.unlimited:
            return None
        counters = self.counters(now, today)
        if self._per_month is not None and counters.this_month >= self._per_month:
            return "per_month"
        if self._per_day is not None and counters.today >= self._per_day:
            return "per_day"
        if self._per_minute is not None and counters.last_minute >= self._per_minute:
            return "per_minute"
        return None

    def usage(self, now: float, today: date) -> LimitUsage:
        self._roll(now, today)
        return LimitUsage(today, self._day_count, self._month_count, tuple(now - sent for sent in self._recent))

    def restore(self, usage: LimitUsage, now: float, today: date, elapsed_s: float) -> None:
        """Add what an earlier run used, taken `elapsed_s` of wall time ago: its counts when they belong to this
        day and month, and its sends still inside the minute window."""
        self._roll(now, today)
        if usage.day == today:
            self._day_count += usage.today
        if (usage.day.year, usage.day.month) == (today.year, today.month):
            self._month_count += usage.this_month
        elapsed_s = max(elapsed_s, 0.0)  # a wall clock set back must not move sends into the future
        earlier = (now - age - elapsed_s for age in usage.recent_ages_s if age + elapsed_s < 60.0)
        self._recent = deque(sorted((*earlier, *self._recent)))

    def record(self, now: float, today: date) -> None:
        """Count one message handed to the network (a failed submission still used the SIM's quota)."""
        self._roll(now, today)
        self._recent.append(now)
        self._day_count += 1
        self._month_count += 1

    def _roll(self, now: float, today: date) -> None:
        while self._recent and self._recent[0] <= now - 60.0:
            self._recent.popleft()
        if self._day != today:
            self._day, self._day_count = today, 0
        month = (today.year, today.month)
        if self._month != month:
            self._month, self._month_count = month, 0


class SimLimits:
    """The `SendLimits` of whichever SIM is in a modem. Limits belong to a SIM, not to a port: another SIM in the
    modem (put in because the last one's bundle ran out, say) starts from zero."""

    def __init__(self, per_minute: int | None, per_day: int | None, per_month: int | None) -> None:
        self._per = (per_minute, per_day, per_month)
        self.limits = SendLimits(*self._per)
        self.imsi = ""  # the SIM the counters count for, once known

    def sim_found(self, imsi: str) -> str | None:
        """Start-up read `imsi` (maybe '': not told); the IMSI counted for before when it was another SIM, whose
        counts are then dropped."""
        previous = self.imsi
        if imsi and previous and imsi != previous:
            self.limits = SendLimits(*self._per)
            self.imsi = imsi
            return previous
        self.imsi = imsi or previous
        return None

    def restore(self, usage: LimitUsage, now: float, today: date, elapsed_s: float, imsi: str) -> None:
        """Count what SIM `imsi` used in an earlier run (see `SendLimits.restore`), until another SIM is found."""
        self.limits.restore(usage, now, today, elapsed_s)
        self.imsi = imsi
