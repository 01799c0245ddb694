"""Route lookup and prices: which modem group sends to a destination, and what a segment costs there.

Money is integer micro-units (1 unit = 1,000,000) in the store so sums never drift; config prices are decimals.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Final

from smsgw.config import RouteConfig
from smsgw.numbers import is_test_number
from smsgw.pdu.constants import vendor_status

MICRO: Final = 1_000_000
NO_ROUTE_STATUS: Final = vendor_status(4)  # err 804: no route / no modem available


class NoRoute(Exception):
    command_status = NO_ROUTE_STATUS


def find_route(routes: Sequence[RouteConfig], destination: str) -> RouteConfig:
    """The route with the longest prefix of `destination` (international digits); ties go to the first listed."""
    best: RouteConfig | None = None
    best_length = -1
    for route in routes:
        for prefix in route.prefixes:
            if len(prefix) > best_length and destination.startswith(prefix):
                best, best_length = route, len(prefix)
    if best is None:
        raise NoRoute(f"no route for destination {destination}")
    return best


def segment_price_micro(route: RouteConfig, destination: str) -> int:
    # The service's own test numbers (DESIGN.md virtual network) are never charged.
    if is_test_number(destination):
        return 0
    return _price_micro(route.price_per_segment)


@lru_cache(maxsize=256)
def _price_micro(price: float) -> int:
    # Once per configured price: a Decimal round trip for every message was a visible part of accepting one.
    return to_micro(str(price))


def to_micro(amount: str) -> int:
    """Parse a decimal amount ("12.5") to micro-units; ValueError for anything else."""
    try:
        value = Decimal(amount.strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal amount: {amount!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a decimal amount: {amount!r}")
    return int((value * MICRO).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_micro(micro: int) -> str:
    """Every amount in one form: at least two decimals (25.50), more only where a price has them (0.035)."""
    whole, _, fraction = f"{Decimal(micro) / MICRO:.6f}".partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"
