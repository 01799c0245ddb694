"""The PostgreSQL message store (`[store] url`): the SQLite engine's jobs over PostgreSQL connections, so several
nodes share one store (DESIGN.md, "Several nodes").

The jobs, their transaction steps and the migrations are the SQLite engine's (`sqlite_store`), run through
`postgres.connection.PgConnection`, which speaks the part of `sqlite3.Connection` they use and translates what is
only spelled differently; what differs in meaning between one writer and several is `dialect.POSTGRES` (balances
locked when read, due segments and outbox items claimed with `FOR UPDATE SKIP LOCKED`, message ids from a
sequence). Each node keeps SQLite's group-commit writer: one connection (a batch of operations is one
transaction, acknowledged only after its COMMIT), used from a worker thread. A batch that deadlocks with another
node's is run again (`writer.CONFLICT_RETRIES`). Reads take a connection of a `psycopg_pool.ConnectionPool`, also
in worker threads, so reads run side by side where SQLite's one reader takes them in turn (a dispatcher's due
read need not wait for a portal page), and a reader connection that broke is replaced. Measured against the one
reader and against psycopg's async API (which needs asyncio: an event loop in a thread of its own), the pool in
threads read fastest (BENCHMARKS.md, "PostgreSQL: pool, async and two nodes").

Other nodes' commits wake this node's waiters through LISTEN/NOTIFY (`dialect.WORK_CHANNEL`, `OUTBOX_CHANNEL`)
on a third connection; the dispatcher's, the outbox's and the callbacks' polling (`foreign_writes_poll_s`) stays
the fallback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
import sqlite3
from typing import Any, Final, TypeVar, cast

import trio
from psycopg_pool import ConnectionPool, PoolTimeout

from smsgw.config import StoreConfig
from smsgw.scheduler.dialect import OUTBOX_CHANNEL, POSTGRES, WORK_CHANNEL
from smsgw.scheduler.policy_store import SqlitePolicyFacts
from smsgw.scheduler.postgres.connection import CONNECT_OPTIONS, PgConnection
from smsgw.scheduler.postgres.schema import migrate
from smsgw.scheduler.sqlite_store import SqliteStore

__all__ = ["PostgresStore", "open_store"]

T = TypeVar("T")

# How long the listener's thread waits for a notification before it looks whether the store is closing.
_LISTEN_WAIT_S: Final = 0.2
# Reader connections of a node at most: reads wait on the server, not on this process's CPU, so a few more than
# the cores; one is kept open.
_READERS: Final = 4
# How long opening the store waits for the pool's first reader connection.
_POOL_OPEN_S: Final = 30.0


class PostgresStore(SqliteStore):
    """Use `async with open_store(config) as store:`, which migrates the schema and runs the writer task."""

    def use_readers(self, pool: ConnectionPool[Any]) -> None:
        self._readers = pool
        self._reading = trio.Semaphore(_READERS)  # a read waits here, not in a worker thread blocked on the pool

    async def _read(self, fn: Callable[[sqlite3.Connection], T], *, reads_backlog: bool = True) -> T:
        # No intake on PostgreSQL (`Accepting.keep_intake`): every read sees the rows.
        async with self._reading:
            return await trio.to_thread.run_sync(self._read_pooled, fn)

    def _read_pooled(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            with self._readers.connection() as raw:
                return fn(cast(sqlite3.Connection, PgConnection(raw)))
        except PoolTimeout as exc:
            raise sqlite3.OperationalError(f"no PostgreSQL reader connection: {exc}") from exc

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
                    # The earliest due time of what the other node committed: later work wakes no claim here.
                    self._work_due(int(payload) if payload.isdigit() else 0)


def _notifications(connection: PgConnection) -> list[tuple[str, str]]:
    return [(n.channel, n.payload) for n in connection.raw.notifies(timeout=_LISTEN_WAIT_S, stop_after=1)]


def _connect(url: str) -> tuple[tuple[PgConnection, ...], ConnectionPool[Any]]:
    """Writer (which migrates first), the one reader that `history_rows` streams from, policy facts, listener, and
    the readers' pool; none left open if any fails."""
    opened: list[PgConnection] = []
    try:
        opened.append(PgConnection(url))
        migrate(opened[0])
        for _ in range(3):
            opened.append(PgConnection(url))
        pool: ConnectionPool[Any] = ConnectionPool(
            url, min_size=1, max_size=_READERS, kwargs=CONNECT_OPTIONS, open=False, name="smsgw-readers"
        )
        try:
            pool.open(wait=True, timeout=_POOL_OPEN_S)
        except BaseException:
            pool.close()
            raise
        return tuple(opened), pool
    except BaseException:
        for connection in opened:
            connection.close()
        raise


@asynccontextmanager
async def open_store(config: StoreConfig) -> AsyncIterator[PostgresStore]:
    """The store with its writer task running; closed (after pending writes finish) when the block exits."""
    (writer, reader, facts, listener), readers = await trio.to_thread.run_sync(_connect, config.url)
    # The jobs take a `sqlite3.Connection`: a PgConnection is one in every call they make (module docstring).
    connections = cast(tuple[sqlite3.Connection, sqlite3.Connection], (writer, reader))
    policy_facts = SqlitePolicyFacts(cast(sqlite3.Connection, facts), create_tables=False)
    store = PostgresStore(config.url, config, connections, policy_facts, POSTGRES)
    store.use_readers(readers)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            nursery.start_soon(store.listen, listener)
            yield store
            nursery.cancel_scope.cancel()
    finally:
        store.close()
        listener.close()
        readers.close()
