"""Probes of the store for operations (/readyz, /metrics): a write round trip and the queues' sizes.

Counts come only through the partial indexes of open work (due, in flight, open messages, outbox, callbacks),
never the history, so a scrape costs the same with a full store.
"""

from __future__ import annotations

import sqlite3

from smsgw.scheduler.model import QueueCounts
from smsgw.scheduler.sqlite.base import SqliteBase
from smsgw.scheduler.states import State


class Stats(SqliteBase):
    async def check_writable(self) -> None:
        # An empty transaction through the group-commit writer: BEGIN IMMEDIATE takes the write lock and COMMIT
        # ends it, so this proves the writer task runs and the database accepts writers, at the cost of one batch.
        await self._writer.write(_nothing)

    async def queue_counts(self, now_ms: int) -> QueueCounts:
        return await self._read(lambda c: _counts(c, now_ms))

    def operations(self) -> int:
        return self._writer.operations


def _nothing(connection: sqlite3.Connection) -> None:
    return None


def _counts(c: sqlite3.Connection, now_ms: int) -> QueueCounts:
    counts = QueueCounts()
    for state, n in c.execute("SELECT state, count(*) FROM messages WHERE final_at IS NULL GROUP BY state"):
        counts.open_messages[State(state)] = n
    for account, due, scheduled in c.execute(
        "SELECT m.account, SUM(CASE WHEN s.due_at <= ? THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN s.due_at > ? THEN 1 ELSE 0 END) FROM segments s JOIN messages m "
        "ON m.id = s.message WHERE s.due_at IS NOT NULL GROUP BY m.account", (now_ms, now_ms)
    ):
        counts.due[account] = int(due)
        counts.scheduled[account] = int(scheduled)
    for route, due, oldest in c.execute(
        "SELECT m.route, count(*), MIN(s.due_at) FROM segments s JOIN messages m ON m.id = s.message"
        " WHERE s.due_at <= ? GROUP BY m.route", (now_ms,)
    ):
        counts.due_by_route[route] = int(due)
        counts.oldest_due_ms[route] = int(oldest)
    # The literal 4 (PROCESSING) matches the partial index segments_in_flight, which a bound parameter would not.
    for account, n in c.execute(
        "SELECT m.account, count(*) FROM segments s JOIN messages m ON m.id = s.message "
        "WHERE s.state = 4 AND s.sent_at IS NULL GROUP BY m.account"
    ):
        counts.in_flight[account] = n
    for account, n in c.execute("SELECT account, count(*) FROM outbox GROUP BY account"):
        counts.outbox[account] = n
    for table in ("mo_callbacks", "dlr_callbacks"):  # both kinds of HTTP callback are the one backlog
        for account, state, n in c.execute(f"SELECT account, state, count(*) FROM {table} GROUP BY account, state"):
            counts.callbacks[account, state] = counts.callbacks.get((account, state), 0) + n
    return counts
