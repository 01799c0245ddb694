"""The PostgreSQL message store (`[store] url`): the SQLite engine's jobs over PostgreSQL connections, so several
nodes share one store (DESIGN.md, "Several nodes").

The jobs, their transaction steps and the migrations are the SQLite engine's (`sqlite_store`), run through
`postgres.connection.PgConnection`, which speaks the part of `sqlite3.Connection` they use and translates what is
only spelled differently; what differs in meaning between one writer and several is `dialect.POSTGRES` (balances
locked when read, due segments and outbox items claimed with `FOR UPDATE SKIP LOCKED`, message ids from a
sequence). Each node keeps SQLite's shape: one group-commit writer connection (a batch of operations is one
transaction, acknowledged only after its COMMIT) and one reader connection, each used from a worker thread.
A batch that deadlocks with another node's is run again (`writer.CONFLICT_RETRIES`).

Other nodes' commits wake this node's waiters through LISTEN/NOTIFY (`dialect.WORK_CHANNEL`, `OUTBOX_CHANNEL`)
on a third connection; the dispatcher's, the outbox's and the callbacks' polling (`foreign_writes_poll_s`) stays
the fallback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
import sqlite3
from typing import Final, cast

import trio

from smsgw.config import StoreConfig
from smsgw.scheduler.dialect import OUTBOX_CHANNEL, POSTGRES, WORK_CHANNEL
from smsgw.scheduler.policy_store import SqlitePolicyFacts
from smsgw.scheduler.postgres.connection import PgConnection
from smsgw.scheduler.postgres.schema import migrate
from smsgw.scheduler.sqlite_store import SqliteStore

__all__ = ["PostgresStore", "open_store"]


# How long the listener's thread waits for a notification before it looks whether the store is closing.
_LISTEN_WAIT_S: Final = 0.2


class PostgresStore(SqliteStore):
    """Use `async with open_store(config) as store:`, which migrates the schema and runs the writer task."""

    async def listen(self, connection: PgConnection) -> None:
        """Wake this node's waiters for what other nodes commit, until cancelled."""
        for channel in (WORK_CHANNEL, OUTBOX_CHANNEL):
            connection.execute(f"LISTEN {channel}")
        # A limiter of its own: the thread waiting here is not store work (the tests' clocks wait for that).
        limiter = trio.CapacityLimiter(1)
        while True:
            for channel, payload in await trio.to_thread.run_sync(_notifications, connection, limiter=limiter):
                if channel == OUTBOX_CHANNEL:
                    self.notify_outbox(payload)
                else:
                    self.notify_work()


def _notifications(connection: PgConnection) -> list[tuple[str, str]]:
    return [(n.channel, n.payload) for n in connection.raw.notifies(timeout=_LISTEN_WAIT_S, stop_after=1)]


def _connect(url: str) -> tuple[PgConnection, ...]:
    """Writer (which migrates first), reader, policy facts and listener; none left open if any fails."""
    opened: list[PgConnection] = []
    try:
        opened.append(PgConnection(url))
        migrate(opened[0])
        for _ in range(3):
            opened.append(PgConnection(url))
        return tuple(opened)
    except BaseException:
        for connection in opened:
            connection.close()
        raise


@asynccontextmanager
async def open_store(config: StoreConfig) -> AsyncIterator[PostgresStore]:
    """The store with its writer task running; closed (after pending writes finish) when the block exits."""
    writer, reader, facts, listener = await trio.to_thread.run_sync(_connect, config.url)
    # The jobs take a `sqlite3.Connection`: a PgConnection is one in every call they make (module docstring).
    connections = cast(tuple[sqlite3.Connection, sqlite3.Connection], (writer, reader))
    policy_facts = SqlitePolicyFacts(cast(sqlite3.Connection, facts), create_tables=False)
    store = PostgresStore(config.url, config, connections, policy_facts, POSTGRES)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            nursery.start_soon(store.listen, listener)
            yield store
            nursery.cancel_scope.cancel()
    finally:
        store.close()
        listener.close()
