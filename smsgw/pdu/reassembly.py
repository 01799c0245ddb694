"""Reassembly of concatenated SMS parts into one message (sans-IO: the caller passes `now` and asks for deadlines).

Parts are grouped by the caller's source key (the originator address, say), the concatenation scheme (8-bit UDH,
16-bit UDH and SAR references are separate number spaces), the reference and the announced total. Duplicates are
ignored, also when they arrive shortly after their message was completed (an SMSC retransmitting a part whose
acknowledgement it missed). A message whose parts stop arriving comes out of `expire` marked `incomplete`, with
the parts that did arrive: nothing received is ever dropped.

Times are seconds on the caller's monotonic clock (`trio.current_time()`).
"""

from __future__ import annotations

import enum
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from itertools import groupby
from typing import Final, TypeAlias

from .constants import CommandStatus
from .errors import PduError
from .gsm7 import DEFAULT_TABLES, NationalTables
from .segmentation import SarInfo
from .text import Encoding, decode_as
from .udh import Concatenation

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING: Final = 10_000


class ConcatScheme(enum.Enum):
    UDH8 = "udh8"
    UDH16 = "udh16"
    SAR = "sar"


_REFERENCE_LIMITS: Final = {ConcatScheme.UDH8: 0xFF, ConcatScheme.UDH16: 0xFFFF, ConcatScheme.SAR: 0xFFFF}


@dataclass(frozen=True, slots=True)
class PartInfo:
    """One received part: its concatenation fields and its user data without header (SMPP form: unpacked
    septets for GSM 7-bit, UTF-16BE for UCS-2) in `encoding`."""

    reference: int
    total: int
    sequence: int
    data: bytes
    encoding: Encoding = Encoding.GSM7
    scheme: ConcatScheme = ConcatScheme.UDH8
    # GSM 7-bit tables named by the part's national language shift elements (`Udh.national_tables`).
    tables: NationalTables = DEFAULT_TABLES

    def __post_init__(self) -> None:
        limit = _REFERENCE_LIMITS[self.scheme]
        if not 0 <= self.reference <= limit:
            raise PduError(
                f"{self.scheme.value} reference {self.reference} is outside 0..{limit}",
                command_status=CommandStatus.ESME_RINVOPTPARAMVAL,
            )
        if not 1 <= self.sequence <= self.total <= 0xFF:
            raise PduError(
                f"part {self.sequence} of {self.total}: need 1 <= sequence <= total <= 255",
                command_status=CommandStatus.ESME_RINVOPTPARAMVAL,
            )

    @classmethod
    def from_concatenation(
        cls, concatenation: Concatenation, data: bytes, encoding: Encoding, tables: NationalTables = DEFAULT_TABLES
    ) -> PartInfo:
        scheme = ConcatScheme.UDH8 if concatenation.reference_bits == 8 else ConcatScheme.UDH16
        return cls(
            concatenation.reference, concatenation.total, concatenation.sequence, data, encoding, scheme, tables
        )

    @classmethod
    def from_sar(
        cls, sar: SarInfo, data: bytes, encoding: Encoding, tables: NationalTables = DEFAULT_TABLES
    ) -> PartInfo:
        return cls(sar.msg_ref_num, sar.total_segments, sar.segment_seqnum, data, encoding, ConcatScheme.SAR, tables)


@dataclass(frozen=True, slots=True)
class Reassembled:
    """A whole message, or (`incomplete`) what arrived of one before its time ran out. `parts` in order."""

    key_source: str
    scheme: ConcatScheme
    reference: int
    total: int
    parts: tuple[PartInfo, ...]
    incomplete: bool
    first_received: float
    last_received: float

    @property
    def missing(self) -> tuple[int, ...]:
        present = {part.sequence for part in self.parts}
        return tuple(sequence for sequence in range(1, self.total + 1) if sequence not in present)

    @property
    def encoding(self) -> Encoding:
        return self.parts[0].encoding

    def text(self) -> str:
        """The text of the parts that arrived, in order.

        Adjacent parts in the same encoding (and GSM tables) are joined before decoding, so an escape sequence or
        a surrogate pair that a sender split between them is whole again. Where a missing part leaves half a
        surrogate pair, U+FFFD stands for it. PduError for binary parts or user data that is not valid in its encoding.
        """
        chunks: list[str] = []
        for (_, encoding, tables), run in groupby(enumerate(self.parts), key=self._run_key):
            data = b"".join(part.data for _, part in run)
            try:
                chunks.append(decode_as(data, encoding, tables))
            except PduError:
                if not (self.incomplete and encoding is Encoding.UCS2):
                    raise
                chunks.append(data.decode("utf-16-be", "replace"))
        return "".join(chunks)

    @staticmethod
    def _run_key(indexed: tuple[int, PartInfo]) -> tuple[int, Encoding, NationalTables]:
        # sequence - index is constant along a run of consecutive sequence numbers.
        index, part = indexed
        return part.sequence - index, part.encoding, part.tables


_Key: TypeAlias = tuple[str, ConcatScheme, int, int]


@dataclass(slots=True)
class _Pending:
    parts: dict[int, PartInfo]
    first_received: float
    last_received: float


class Reassembler:
    """Collects parts until their message is whole or `timeout` passes without a new part for it.

    At most `max_pending` messages wait; beyond that the one idle longest comes out (incomplete) at the next
    `expire`, which `next_deadline` then asks for at once.
    """

    def __init__(self, timeout: timedelta | float, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        if self._timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self._max_pending = max_pending
        # Both ordered oldest first (by last part, by completion), so expiry only looks at the front.
        self._pending: OrderedDict[_Key, _Pending] = OrderedDict()
        # Completed messages remember (sequence, hash of data) per part, not the data, to recognise late duplicates.
        self._completed: OrderedDict[_Key, tuple[float, frozenset[tuple[int, int]]]] = OrderedDict()
        self._evicted: list[Reassembled] = []

    def __len__(self) -> int:
        """Messages waiting for parts."""
        return len(self._pending)

    def is_duplicate(self, key_source: str, part: PartInfo, now: float) -> bool:
        """Whether `add` would ignore `part`: its message holds that sequence already, or was completed within
        the timeout with the same part. A single part (total 1) is never a duplicate: it has no reference."""
        self._forget_completed(now)
        if part.total == 1:
            return False
        key = (key_source, part.scheme, part.reference, part.total)
        recent = self._completed.get(key)
        if recent is not None and (part.sequence, hash(part.data)) in recent[1]:
            return True
        pending = self._pending.get(key)
        return pending is not None and part.sequence in pending.parts

    def add(self, key_source: str, part: PartInfo, now: float) -> Reassembled | None:
        """Take one part; the whole message when this part completes it, else None."""
        if part.total == 1:
            return Reassembled(key_source, part.scheme, part.reference, 1, (part,), False, now, now)
        if self.is_duplicate(key_source, part, now):
            log.debug(
                "reassembly duplicate source=%s reference=%d sequence=%d", key_source, part.reference, part.sequence
            )
            return None
        key = (key_source, part.scheme, part.reference, part.total)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending({}, now, now)
            if len(self._pending) > self._max_pending:
                self._evict_oldest()
        pending.parts[part.sequence] = part
        pending.last_received = now
        self._pending.move_to_end(key)
        if len(pending.parts) < part.total:
            return None
        del self._pending[key]
        self._completed[key] = (now, frozenset((p.sequence, hash(p.data)) for p in pending.parts.values()))
        if len(self._completed) > self._max_pending:
            self._completed.popitem(last=False)
        return self._result(key, pending, incomplete=False)

    def expire(self, now: float) -> list[Reassembled]:
        """Messages whose time ran out (and any pushed out by `max_pending`), incomplete, oldest first."""
        expired, self._evicted = self._evicted, []
        while self._pending:
            key, pending = next(iter(self._pending.items()))
            if pending.last_received + self._timeout > now:
                break
            del self._pending[key]
            log.info(
                "reassembly timeout source=%s reference=%d received=%d total=%d",
                key[0], key[2], len(pending.parts), key[3],
            )
            expired.append(self._result(key, pending, incomplete=True))
        self._forget_completed(now)
        return expired

    def next_deadline(self) -> float | None:
        """When `expire` next has something to return; None when nothing waits."""
        if self._evicted:
            return float("-inf")
        for pending in self._pending.values():
            return pending.last_received + self._timeout
        return None

    def _evict_oldest(self) -> None:
        key, pending = self._pending.popitem(last=False)
        log.warning("reassembly evicted source=%s reference=%d max_pending=%d", key[0], key[2], self._max_pending)
        self._evicted.append(self._result(key, pending, incomplete=True))

    def _forget_completed(self, now: float) -> None:
        while self._completed:
            completed_at, _ = next(iter(self._completed.values()))
            if completed_at + self._timeout > now:
                break
            self._completed.popitem(last=False)

    @staticmethod
    def _result(key: _Key, pending: _Pending, *, incomplete: bool) -> Reassembled:
        source, scheme, reference, total = key
        parts = tuple(pending.parts[sequence] for sequence in sorted(pending.parts))
        return Reassembled(
            source, scheme, reference, total, parts, incomplete, pending.first_received, pending.last_received
        )
