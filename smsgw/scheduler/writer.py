"""Group commit: one Trio task owns the write connection and commits whatever is pending as one transaction.

Callers `await writer.write(op)`; `op(connection)` runs in a worker thread inside the batch's transaction, within
its own SAVEPOINT, so one refused operation (an exception it raises) is rolled back alone and raised to its caller
while the rest of the batch commits. `write` returns only after COMMIT: a result the caller sees is durable.
Many concurrent submissions therefore cost one fsync, and the SQLite calls never block the Trio thread.
`write_first` jumps the queue: its item is in the next batch that starts, however many writes wait.

A batch made only of writes whose loss on a power failure harms nothing (`durable=False`: outbox claims and
deletions, which at worst offer a receipt again) commits without its own fsync when the writer is given the
`synchronous` levels to switch between (SQLite: `synchronous = NORMAL` for that commit). A kill -9 loses no
commit either way (the data is in the operating system's cache), and in WAL mode the next full commit's fsync
makes the relaxed ones before it durable.

A store may keep a backlog (`Backlog`): writes committed in a compact form now (`write_combined(...,
reads_backlog=False)`: a batch of accepted messages as one row), whose full rows it writes later in this writer's
own transactions. Nothing reads the compact form, so before any write that may read those rows the batch expands
the whole backlog first, and a store's reads wait for that (`expanded`); otherwise the backlog is expanded a chunk
at a time when the writer has been quiet for `EXPAND_WHEN_QUIET_S` (the store bounds how much it lets wait).
Expansion replaces committed rows by their expansion in one transaction, so it needs no fsync of its own (a
crash before the next full commit leaves the compact rows to expand again).
"""

from __future__ import annotations

import bisect
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Final, Generic, Protocol, TypeVar

import trio

from smsgw.scheduler.dialect import Conflict
from smsgw.scheduler.model import LatencyHistogram, StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

# A batch that lost a deadlock or serialisation conflict to another node's writer (PostgreSQL) runs again whole,
# this many times at most; SQLite's one writer never conflicts.
CONFLICT_RETRIES: Final = 3
WriteOp = Callable[[sqlite3.Connection], T]


class StoreClosed(StoreUnavailable):
    """The writer is not running (not started yet, or shut down)."""


# Runs many callers' items as one operation: results in the order of the items.
CombinedOp = Callable[[sqlite3.Connection, list[Any]], list[Any]]


class Backlog(Protocol):
    """Compact writes whose full rows the store writes later, in the writer's transactions (module docstring)."""

    def waiting(self) -> int:
        """Units (messages) committed compactly and not yet expanded; read in the Trio thread and, while a batch
        runs, in the writer's (the batch's own after-commit callbacks update it, so it holds still meanwhile)."""
        ...

    def expand(self, connection: sqlite3.Connection, limit: int | None, due_by: int | None = None) -> None:
        """Inside the writer's transaction: expand the oldest compact rows, about `limit` units (None: all); with
        `due_by` (epoch ms), only rows holding work due by then."""
        ...


# A quiet writer expands this much of the backlog per transaction: about 3 ms of the writer's time for messages,
# which is what a submission arriving just then waits at most.
EXPAND_CHUNK: Final = 128
# After this long without a write the writer expands the backlog on its own, so that a burst of submissions is
# answered first and its full rows are written once it is over.
EXPAND_WHEN_QUIET_S: Final = 0.02
_ALL: Final = -1  # `_Pending.expand_first`: the whole backlog


@dataclass(slots=True)
class _Pending(Generic[T]):
    op: WriteOp[T] | None
    combined: CombinedOp | None = None
    item: Any = None
    durable: bool = True  # False: losing it to a power failure harms nothing, so it need not wait for an fsync
    # How much of the backlog must be expanded before the batch runs this item: all of it (a write that may read
    # the rows it stands for), none (a compact write adds to it; some writes read other rows), or a chunk (the
    # quiet writer's own expansion); and what is due by `due_by` (a dispatcher's claim of due work).
    expand_first: int = _ALL
    due_by: int | None = None
    done: trio.Event = field(default_factory=trio.Event)
    result: T | None = None
    error: BaseException | None = None


# Upper bounds (seconds) of the commit latency histogram: an fsync takes well under a millisecond to a few on an
# SSD, tens of milliseconds on a disk or a busy VM, and a full batch adds its statements; beyond a second the
# store is in trouble whatever the exact figure.
COMMIT_SECONDS_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class CommitLatency:
    """How long each batch took, in buckets: one bisect and two additions per commit, read at scrape time."""

    def __init__(self, bounds: tuple[float, ...] = COMMIT_SECONDS_BUCKETS) -> None:
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # per bucket; the last is above every bound
        self._sum_s = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, seconds)] += 1
        self._sum_s += seconds

    def snapshot(self) -> LatencyHistogram:
        cumulative = tuple(accumulate(self._counts))
        return LatencyHistogram(self._bounds, cumulative[:-1], cumulative[-1], self._sum_s)


class GroupCommitWriter:
    def __init__(
        self, connection: sqlite3.Connection, *, max_batch: int, queue_size: int,
        synchronous: tuple[str, str] | None = None,
    ) -> None:
        """`synchronous`: SQLite's configured level and the relaxed one for batches of `durable=False` writes
        (None: every batch commits alike, as on PostgreSQL or when the configured level is already relaxed)."""
        self._connection = connection
        self._synchronous = synchronous
        self._max_batch = max_batch
        self._send, self._receive = trio.open_memory_channel[_Pending[Any]](queue_size)
        self._first: list[_Pending[Any]] = []  # `write_first` items, ahead of the channel's
        self._ready = trio.Event()  # set when something was queued since the writer last looked
        self._closed = False
        self._after_commit: list[Callable[[], None]] = []
        self._backlog: Backlog | None = None
        self.batches = 0
        self.relaxed_batches = 0
        self.operations = 0
        self.latency = CommitLatency()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` in the Trio thread after the current batch commits (e.g. to wake waiters).

        Call it from inside an op; callbacks of a batch that rolled back are dropped.
        """
        self._after_commit.append(callback)

    def keep_backlog(self, backlog: Backlog) -> None:
        """Expand `backlog` as the module's docstring says; call before `run`."""
        self._backlog = backlog

    async def write(self, op: WriteOp[T], *, reads_backlog: bool = True, due_by: int | None = None) -> T:
        """`op` in the next batch. `reads_backlog=False` for an op that reads none of the rows a backlog's expansion
        writes (an SMPP bind's registry row), so a burst's backlog is not expanded before it; `due_by` for one
        that reads only those due by then (a claim of due work)."""
        return await self._submit(_Pending(op, expand_first=_ALL if reads_backlog else 0, due_by=due_by))

    async def write_combined(self, combined: CombinedOp, item: Any, *, reads_backlog: bool = True) -> Any:
        """Like `write`, but the items of all pending callers of the same `combined` run as one call of it (one
        executemany instead of one statement per caller); if that call raises, each item is retried alone so only
        the offending caller gets the error. A compact write adds to the backlog: `reads_backlog=False`."""
        return await self._submit(_Pending(None, combined, item, expand_first=_ALL if reads_backlog else 0))

    async def expanded(self) -> None:
        """Returns once the backlog waiting at the call is expanded: the store's reads call it first, as they read
        only full rows. At once (no checkpoint) when nothing waits."""
        if self._backlog is not None and self._backlog.waiting():
            await self._submit_first(_Pending(_nothing, durable=False))

    async def write_first(self, combined: CombinedOp, item: Any, *, durable: bool = True) -> Any:
        """Like `write_combined`, but into the very next batch, ahead of every queued write: for what must be
        written as soon as possible and costs little (an ESME's acknowledgement, whose delay is the window in
        which a crash makes the gateway offer it again). Not bounded by `queue_size`: use it only for work the
        caller bounds itself. `durable=False`: see the module's docstring."""
        return await self._submit_first(_Pending(None, combined, item, durable))

    async def _submit_first(self, pending: _Pending[T]) -> T:
        if self._closed:
            raise StoreClosed("store writer is not running")
        self._first.append(pending)
        self._ready.set()
        return await self._wait(pending)

    async def _submit(self, pending: _Pending[T]) -> T:
        try:
            await self._send.send(pending)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StoreClosed("store writer is not running") from None
        self._ready.set()
        return await self._wait(pending)

    async def _wait(self, pending: _Pending[T]) -> T:
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[return-value]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve writes until cancelled; the connection stays open for its owner to close."""
        task_status.started()
        try:
            while True:
                batch = self._take_batch()
                if batch:
                    await self._commit(batch)
                    continue
                # No checkpoint since `_take_batch` found nothing: whatever is queued from now on sets this.
                self._ready = trio.Event()
                if self._backlog is None or not self._backlog.waiting():
                    await self._ready.wait()
                    continue
                with trio.move_on_after(EXPAND_WHEN_QUIET_S):
                    await self._ready.wait()
                if not self._ready.is_set():
                    await self._commit([_Pending(_nothing, durable=False, expand_first=EXPAND_CHUNK)])
        finally:
            self._closed = True
            self._send.close()
            self._fail_queued(StoreClosed("store closed before the write ran"))

    def _take_batch(self) -> list[_Pending[Any]]:
        """All `write_first` items, then queued writes up to `max_batch` in all."""
        batch, self._first = self._first, []
        while len(batch) < self._max_batch:
            try:
                batch.append(self._receive.receive_nowait())
            except trio.WouldBlock:
                break
        return batch

    def _fail_queued(self, error: BaseException) -> None:
        for pending in self._first:
            pending.error = error
            pending.done.set()
        self._first = []
        while True:
            try:
                pending = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return
            pending.error = error
            pending.done.set()

    async def _commit(self, batch: list[_Pending[Any]]) -> None:
        callbacks: list[Callable[[], None]] = []
        # What the batch's callers wait for once it starts: BEGIN to COMMIT (the fsync) in the worker thread, the
        # hop there and back included.
        started = time.perf_counter()
        try:
            # Shielded: once a batch is in a transaction it must finish, or callers would wait forever.
            with trio.CancelScope(shield=True):
                callbacks = await self._run_with_retries(batch)
        except sqlite3.Error as exc:
            log.error("group commit failed batch=%d error=%s", len(batch), exc)
            for pending in batch:
                if pending.error is None:
                    pending.error = StoreUnavailable(f"commit failed: {exc}")
        self.latency.observe(time.perf_counter() - started)
        self.batches += 1
        self.operations += len(batch)
        for pending in batch:
            pending.done.set()
        for callback in callbacks:
            callback()

    async def _run_with_retries(self, batch: list[_Pending[Any]]) -> list[Callable[[], None]]:
        for attempt in range(CONFLICT_RETRIES):
            try:
                return await trio.to_thread.run_sync(self._run_batch, batch)
            except Conflict as exc:
                log.warning("group commit conflict, retrying batch=%d attempt=%d error=%s", len(batch), attempt + 1,
                            exc)
                for pending in batch:  # what the rolled-back attempt handed its callers is undone
                    pending.result, pending.error = None, None
        return await trio.to_thread.run_sync(self._run_batch, batch)

    def _run_batch(self, batch: list[_Pending[Any]]) -> list[Callable[[], None]]:
        connection = self._connection
        if self._synchronous is not None and not any(pending.durable for pending in batch):
            configured, relaxed = self._synchronous
            # SQLite sets the level between transactions only.
            connection.execute(f"PRAGMA synchronous = {relaxed}")
            self.relaxed_batches += 1
            try:
                return self._run_transaction(batch)
            finally:
                connection.execute(f"PRAGMA synchronous = {configured}")
        return self._run_transaction(batch)

    def _run_transaction(self, batch: list[_Pending[Any]]) -> list[Callable[[], None]]:
        connection = self._connection
        committed: list[Callable[[], None]] = []
        groups: dict[CombinedOp, list[_Pending[Any]]] = {}
        connection.execute("BEGIN IMMEDIATE")
        try:
            if self._backlog is not None:
                self._expand_backlog(self._backlog, batch)
            for pending in batch:
                if pending.combined is not None:
                    groups.setdefault(pending.combined, []).append(pending)
                else:
                    assert pending.op is not None
                    self._isolated(pending, pending.op, connection)
            for combined, members in groups.items():
                if not self._isolated_group(combined, members):
                    for member in members:
                        self._isolated(member, _alone, combined, connection, member.item)
            connection.execute("COMMIT")
            committed, self._after_commit = self._after_commit, []
        except BaseException:
            self._after_commit = []
            if connection.in_transaction:
                connection.rollback()
            raise
        return committed

    def _expand_backlog(self, backlog: Backlog, batch: list[_Pending[Any]]) -> None:
        waiting = backlog.waiting()
        if not waiting:
            return
        needs = [pending.expand_first for pending in batch]
        if _ALL in needs:
            backlog.expand(self._connection, None)
            return
        if due := [pending.due_by for pending in batch if pending.due_by is not None]:
            backlog.expand(self._connection, None, max(due))
        if limit := max(needs):
            backlog.expand(self._connection, limit)

    def _isolated(self, pending: _Pending[Any], call: Callable[..., Any], *args: Any) -> None:
        """Run one caller's work in a SAVEPOINT: its own refusal undoes only its writes and goes back to it."""
        connection = self._connection
        connection.execute("SAVEPOINT op")
        mark = len(self._after_commit)
        try:
            pending.result = call(*args)
        except Conflict:  # not this op's refusal: the whole batch runs again
            raise
        except Exception as exc:  # the op's own refusal: undo just this op and hand the error back
            connection.execute("ROLLBACK TO op")
            del self._after_commit[mark:]
            pending.error = exc
        connection.execute("RELEASE op")

    def _isolated_group(self, combined: CombinedOp, members: list[_Pending[Any]]) -> bool:
        connection = self._connection
        connection.execute("SAVEPOINT op")
        mark = len(self._after_commit)
        try:
            results = combined(connection, [m.item for m in members])
        except Conflict:
            raise
        except Exception:  # one item is bad: the caller retries them one by one
            connection.execute("ROLLBACK TO op")
            connection.execute("RELEASE op")
            del self._after_commit[mark:]
            return False
        connection.execute("RELEASE op")
        for member, result in zip(members, results, strict=True):
            member.result = result
        return True


def _alone(combined: CombinedOp, connection: sqlite3.Connection, item: Any) -> Any:
    return combined(connection, [item])[0]


def _nothing(connection: sqlite3.Connection) -> None:
    """An item that only makes its batch expand the backlog first (`_Pending.expand_first`)."""
