"""`smsgw store copy`: a single box's SQLite store moved into PostgreSQL, to run it as one of several nodes.

Both engines have one schema history (`postgres.schema`), so the copy is table by table and column by column, in
one PostgreSQL transaction (all of it or nothing), from one SQLite read transaction (one consistent snapshot). The
source must be at this smsgw's schema version (tables and columns then match) and the target empty, so nothing is
merged. The serial columns' sequences continue after the copied ids, so new rows never collide with copied ones.

What the box held in flight needs nothing here: its hand-offs carry no node name, so the first node to start
recovers them (the restart rule), and its outbox claims end after `[smpp] outbox_claim_s`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg import sql

from smsgw.scheduler.migrations import MIGRATIONS
from smsgw.scheduler.postgres.connection import PgConnection
from smsgw.scheduler.postgres.schema import migrate

# Rows read from SQLite at once: bounds the memory a large history takes while it streams into COPY.
_FETCH_ROWS: Final = 1000


class CopyRefused(Exception):
    """The copy would not give the source's content as it is: the message says why, nothing was written."""


@dataclass(frozen=True, slots=True)
class Copied:
    version: int  # the schema version of both
    rows: dict[str, int]  # rows copied, by table


def copy_store(source: sqlite3.Connection, target: PgConnection) -> Copied:
    """Copy every table of `source` (autocommit mode: `isolation_level=None`) into `target`, migrated first."""
    version = int(source.execute("PRAGMA user_version").fetchone()[0])
    if version != len(MIGRATIONS):
        raise CopyRefused(f"the SQLite store is at schema version {version}, this smsgw's is {len(MIGRATIONS)}:"
                          " bring it to this version first (smsgw store migrate, with its config)")
    migrate(target)
    raw = target.raw
    rows: dict[str, int] = {}
    source.execute("BEGIN")  # one snapshot of every table
    try:
        (waiting,) = source.execute("SELECT COALESCE(SUM(messages), 0) FROM intake").fetchone()
        if waiting:  # PostgreSQL keeps no intake (`sqlite.accepting`): they would never be written in full there
            raise CopyRefused(
                f"the SQLite store holds {waiting} accepted messages not yet written in full: a gateway is still"
                " running on it (stop it first)"
            )
        tables = [name for (name,) in source.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )]
        with raw.transaction():
            for table in tables:
                _check_empty(raw, table)
            for table in tables:
                rows[table] = _copy_table(source, raw, table)
    finally:
        source.execute("ROLLBACK")
    return Copied(version, rows)


def _check_empty(raw: psycopg.Connection[Any], table: str) -> None:
    if _true(raw, sql.SQL("SELECT to_regclass(%s) IS NULL"), (table,)):
        raise CopyRefused(f"table {table} of the SQLite store is not in smsgw's schema: not copied")
    if _true(raw, sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table)), ()):
        raise CopyRefused(f"table {table} of the target already has rows: copy into a new, empty database")


def _true(raw: psycopg.Connection[Any], query: sql.SQL | sql.Composed, parameters: tuple[str, ...]) -> bool:
    row = raw.execute(query, parameters).fetchone()
    return row is not None and bool(row[0])


def _copy_table(source: sqlite3.Connection, raw: psycopg.Connection[Any], table: str) -> int:
    cursor = source.execute(f'SELECT * FROM "{table}"')
    columns = [description[0] for description in cursor.description]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    count = 0
    with raw.cursor() as pg, pg.copy(statement) as copy:
        while batch := cursor.fetchmany(_FETCH_ROWS):
            for row in batch:
                copy.write_row(row)
            count += len(batch)
    # A serial column's next value follows the highest copied one (or starts at 1 when none was copied).
    for column in columns:
        found = raw.execute("SELECT pg_get_serial_sequence(%s, %s)", (table, column)).fetchone()
        if found is None or found[0] is None:
            continue
        raw.execute(
            sql.SQL("SELECT setval(%s, COALESCE(MAX({column}), 1), MAX({column}) IS NOT NULL) FROM {table}").format(
                column=sql.Identifier(column), table=sql.Identifier(table)
            ),
            (found[0],),
        )
    return count
