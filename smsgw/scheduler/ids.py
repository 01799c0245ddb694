"""message_id: one format everywhere (submit_sm_resp, receipts, query_sm, logs, CSV export).

20 lowercase hex digits: 48 bits of milliseconds since the epoch, then 32 bits that start random each millisecond
and count up within it, so ids sort by acceptance time, never repeat within a process, and do not collide across
restarts or gateway nodes in practice (the store's UNIQUE constraint is the final guard). Lookups accept any case.
"""

from __future__ import annotations

import re
import secrets
from typing import Final

MESSAGE_ID_LENGTH: Final = 20
_PATTERN: Final = re.compile(r"[0-9a-f]{20}")
_RANDOM_BITS: Final = 32


class MessageIdGenerator:
    def __init__(self) -> None:
        self._last_ms = -1
        self._counter = 0

    def next(self, now_ms: int) -> str:
        if now_ms > self._last_ms:
            self._last_ms = now_ms
            # Top bit clear leaves 2**31 ids of headroom in one millisecond before borrowing the next one.
            self._counter = secrets.randbits(_RANDOM_BITS - 1)
        else:
            self._counter += 1
            if self._counter >> _RANDOM_BITS:
                self._last_ms += 1
                self._counter = 0
        # One 20-digit number instead of two formatted fields: the same digits (the counter stays below 2**32,
        # the milliseconds below 2**48), a third cheaper per message.
        return f"{self._last_ms << _RANDOM_BITS | self._counter:020x}"


def normalize_message_id(text: str) -> str | None:
    """The stored form of an id an ESME sent us, or None when it cannot be one of ours."""
    candidate = text.strip().lower()
    return candidate if _PATTERN.fullmatch(candidate) else None
