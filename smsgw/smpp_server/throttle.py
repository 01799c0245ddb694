"""Token bucket for an account's throughput limit (segments per second with a burst), and the `Throttle` seam."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeAlias

# What a front hands the accept path to charge its rate limit between preparing and storing submissions: given
# the segments each prepared submission will be stored as (0 for one refused already), whether each may go ahead.
# The accept path counts the segments once; the limit, the charge and the stored rows all use that count.
Throttle: TypeAlias = Callable[[Sequence[int]], Sequence[bool]]


class TokenBucket:
    """Starts full; refills continuously at `rate_per_s` up to `burst`. Time is whatever clock `now` comes from."""

    __slots__ = ("rate_per_s", "burst", "_tokens", "_updated")

    def __init__(self, rate_per_s: float, burst: float, now: float) -> None:
        _check_positive(rate_per_s, burst)
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._updated = now

    def try_take(self, amount: float, now: float) -> bool:
        """Take `amount` tokens if they are all there; a refused request takes nothing.

        A request larger than the burst needs a full bucket rather than being refused forever, and leaves the
        bucket in debt for the rest: it costs its whole amount, so a 1,000-number request waits as long as a
        thousand single ones would and the rate holds over time.
        """
        self._refill(now)
        if min(amount, self.burst) > self._tokens:
            return False
        self._tokens -= amount
        return True

    def take_each(self, amounts: Sequence[float], now: float) -> list[bool]:
        """`try_take` for each amount in turn (a batch of submissions): one step when the whole batch fits, which
        then needs no cap at `burst` since every amount is at most the tokens there are."""
        if not amounts:
            return []
        total = sum(amounts)
        self._refill(now)
        if total <= self._tokens:
            self._tokens -= total
            return [True] * len(amounts)
        return [self.try_take(amount, now) for amount in amounts]

    def wait_s(self, amount: float, now: float) -> float:
        """How long until `try_take(amount)` would succeed: 0 when it would now (an HTTP 429's Retry-After)."""
        self._refill(now)
        return max(0.0, (min(amount, self.burst) - self._tokens) / self.rate_per_s)

    def resize(self, rate_per_s: float, burst: float, now: float) -> None:
        """Refill at the old rate until `now`, go on at the new one; tokens beyond the new burst are dropped."""
        _check_positive(rate_per_s, burst)
        self._refill(now)
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = min(self._tokens, burst)

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_per_s)
            self._updated = now


def _check_positive(rate_per_s: float, burst: float) -> None:
    if rate_per_s <= 0 or burst <= 0:
        raise ValueError(f"rate_per_s and burst must be positive, got {rate_per_s} and {burst}")
