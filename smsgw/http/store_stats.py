"""What /readyz and /metrics need from the store that the `MessageStore` seam does not offer yet: a write round
trip, and counts of the queues. SQLite-specific, kept in this one module on purpose: once the store seam has
such methods (a PostgreSQL store would need its own SQL), `StoreOps` is what it implements and this goes.

Counts are read at scrape time on a read-only connection of their own, in a worker thread, and only through
the store's partial indexes of open work (due, in flight, open messages, outbox, callbacks), never the history.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import trio

from smsgw.scheduler.states import State
from smsgw.scheduler.writer import GroupCommitWriter

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class QueueCounts:
    open_messages: dict[State, int] = field(default_factory=dict)  # messages not final, by state
    due: dict[str, int] = field(default_factory=dict)  # segments by account: due now
    scheduled: dict[str, int] = field(default_factory=dict)  # segments waiting for a later time
    in_flight: dict[str, int] = field(default_factory=dict)  # handed to a modem, no answer yet
    outbox: dict[str, int] = field(default_factory=dict)  # receipts and MO waiting for the account's ESME
    callbacks: dict[tuple[str, str], int] = field(default_factory=dict)  # MO callbacks by (account, state)


class StoreOps(Protocol):
    async def check_writable(self) -> None:
        """Return once a write transaction committed; raise (any exception) when the store cannot write."""

    async def queue_counts(self, now_ms: int) -> QueueCounts: ...


class SqliteStoreOps:
    def __init__(self, path: str, writer: GroupCommitWriter) -> None:
        self._uri = Path(path).resolve().as_uri() + "?mode=ro"
        self._writer = writer
        self._connection: sqlite3.Connection | None = None
        self._lock = trio.Lock()  # one query at a time on the one connection

    async def check_writable(self) -> None:
        # An empty transaction through the group-commit writer: BEGIN IMMEDIATE takes the write lock and COMMIT
        # ends it, so this proves the writer task runs and the database accepts writers, at the cost of one batch.
        await self._writer.write(_nothing)

    async def queue_counts(self, now_ms: int) -> QueueCounts:
        return await self._read(lambda c: _counts(c, now_ms))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        async with self._lock:
            if self._connection is None:
                self._connection = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
            return await trio.to_thread.run_sync(fn, self._connection)


def _nothing(connection: sqlite3.Connection) -> None:
    return None


def _counts(c: sqlite3.Connection, now_ms: int) -> QueueCounts:
    counts = QueueCounts()
    for state, n in c.execute("SELECT state, count(*) FROM messages WHERE final_at IS NULL GROUP BY state"):
        counts.open_messages[State(state)] = n
    for account, due, scheduled in c.execute(
        "SELECT m.account, total(s.due_at <= ?), total(s.due_at > ?) FROM segments s JOIN messages m "
        "ON m.id = s.message WHERE s.due_at IS NOT NULL GROUP BY m.account", (now_ms, now_ms)
    ):
        counts.due[account] = int(due)
        counts.scheduled[account] = int(scheduled)
    # The literal 4 (PROCESSING) matches the partial index segments_in_flight, which a bound parameter would not.
    for account, n in c.execute(
        "SELECT m.account, count(*) FROM segments s JOIN messages m ON m.id = s.message "
        "WHERE s.state = 4 AND s.sent_at IS NULL GROUP BY m.account"
    ):
        counts.in_flight[account] = n
    for account, n in c.execute("SELECT account, count(*) FROM outbox GROUP BY account"):
        counts.outbox[account] = n
    for account, state, n in c.execute("SELECT account, state, count(*) FROM mo_callbacks GROUP BY account, state"):
        counts.callbacks[account, state] = n
    return counts
