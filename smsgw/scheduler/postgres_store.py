"""The PostgreSQL message store (`[store] url`): the SQLite engine's jobs over PostgreSQL connections, so several
nodes share one store (DESIGN.md, "Several nodes").

The jobs, their transaction steps and the migrations are the SQLite engine's (`sqlite_store`), run through
`postgres.connection.PgConnection`, which speaks the part of `sqlite3.Connection` they use and translates what is
only spelled differently; what differs in meaning between one writer and several is `dialect.POSTGRES` (balances
locked when read, due segments and outbox items claimed with `FOR UPDATE SKIP LOCKED`, message ids from a
sequence). Each node keeps SQLite's shape: one group-commit writer connection (a batch of operations is one
transaction, acknowledged only after its COMMIT) and one reader connection, each used from a worker thread.
A batch that deadlocks with another node's is run again (`writer.CONFLICT_RETRIES`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast
import sqlite3

import trio

from smsgw.config import StoreConfig
from smsgw.scheduler.dialect import POSTGRES
from smsgw.scheduler.policy_store import SqlitePolicyFacts
from smsgw.scheduler.postgres.connection import PgConnection
from smsgw.scheduler.postgres.schema import migrate
from smsgw.scheduler.sqlite_store import SqliteStore

__all__ = ["PostgresStore", "open_store"]


class PostgresStore(SqliteStore):
    """Use `async with open_store(config) as store:`, which migrates the schema and runs the writer task."""


def _connect(url: str) -> tuple[PgConnection, PgConnection, PgConnection]:
    writer = PgConnection(url)
    try:
        migrate(writer)
        return writer, PgConnection(url), PgConnection(url)
    except BaseException:
        writer.close()
        raise


@asynccontextmanager
async def open_store(config: StoreConfig) -> AsyncIterator[PostgresStore]:
    """The store with its writer task running; closed (after pending writes finish) when the block exits."""
    writer, reader, facts = await trio.to_thread.run_sync(_connect, config.url)
    # The jobs take a `sqlite3.Connection`: a PgConnection is one in every call they make (module docstring).
    connections = cast(tuple[sqlite3.Connection, sqlite3.Connection], (writer, reader))
    policy_facts = SqlitePolicyFacts(cast(sqlite3.Connection, facts), create_tables=False)
    store = PostgresStore(config.url, config, connections, policy_facts, POSTGRES)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            yield store
            nursery.cancel_scope.cancel()
    finally:
        store.close()
