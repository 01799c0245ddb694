"""A psycopg 3 connection that speaks the part of `sqlite3.Connection` the store's jobs use, so the PostgreSQL
engine runs the same jobs (`smsgw.scheduler.sqlite`), the same transaction steps and the same migrations as SQLite
instead of a second copy of every statement.

What differs between the dialects is rewritten here, once per distinct statement (`translate`, cached):
placeholders (`?` and SQLite's numbered `?N`) into PostgreSQL's own `$n`, SQLite's planner hints (`INDEXED BY`),
its `BEGIN IMMEDIATE`, and in DDL its storage classes (`INTEGER` is 64-bit, so BIGINT; `BLOB`; rowid tables).
Statements go through psycopg's `RawCursor`, which sends `$n` as it is: its default cursor parses every `%s`
statement again on each call once it has more than 50 parameters (a multi-row INSERT of the accept path), which
cost more CPU than the rest of the transaction (BENCHMARKS.md, "PostgreSQL: pool, async and two nodes"). What no rewrite can say — row
locks for rows several nodes compete for — the jobs ask of `smsgw.scheduler.dialect`. Errors come out as
`sqlite3` exceptions of the same meaning (`IntegrityError`, `OperationalError`), with the psycopg error chained,
so the jobs' and the writer's handling is one; a deadlock or serialization failure between nodes is
`dialect.Conflict`, which the writer retries.

Calls block: run them in a worker thread, one thread at a time per connection (as with sqlite3).
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from smsgw.scheduler.dialect import Conflict


# Statements whose text does not repeat (IN lists of any length) also pass here: bounded.
_TRANSLATED_CACHE: Final = 2048

_DDL_RULES: Final = (
    (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bid INTEGER PRIMARY KEY\b"), "id BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\)\s*WITHOUT ROWID"), ")"),
    # SQLite never enforced these (no `PRAGMA foreign_keys`): the jobs delete in their own order.
    (re.compile(r"\s+REFERENCES \w+ \(\w+\)( ON DELETE CASCADE)?"), ""),
)
# A bare NULL parameter has no type PostgreSQL could infer; the ones tested for NULL are names.
_NULL_TEST: Final = re.compile(r"(\?\d*) IS NULL")
_INDEXED_BY: Final = re.compile(r"\s+INDEXED BY \w+")
_PLACEHOLDER: Final = re.compile(r"\?(\d*)")


@functools.lru_cache(maxsize=_TRANSLATED_CACHE)
def translate(sql: str) -> tuple[str, tuple[int, ...] | None]:
    """The PostgreSQL text of a statement written for SQLite, and for numbered placeholders (`?1`) the index of
    the parameter each `$n` takes (None: in order). Each placeholder is a parameter of its own, as in SQLite: a
    repeated `?1` tested for NULL and compared to a column would need two types of one `$1`."""
    if sql.lstrip().upper().startswith("BEGIN IMMEDIATE"):
        return "BEGIN", None
    for pattern, replacement in _DDL_RULES:
        sql = pattern.sub(replacement, sql)
    sql = _NULL_TEST.sub(r"CAST(\1 AS TEXT) IS NULL", _INDEXED_BY.sub("", sql))
    order: list[int] = []
    numbered = False

    def placeholder(match: re.Match[str]) -> str:
        nonlocal numbered
        if match.group(1):
            numbered = True
            order.append(int(match.group(1)) - 1)
        else:
            order.append(len(order))
        return f"${len(order)}"

    sql = _PLACEHOLDER.sub(placeholder, sql)
    return sql, tuple(order) if numbered else None


class Row(tuple[Any, ...]):
    """A row read by position or by column name, and a mapping for `**row`, as `sqlite3.Row`."""

    __slots__ = ()
    _index: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


@functools.lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"__slots__": (), "_index": {name: i for i, name in enumerate(names)}})


def _row_factory(cursor: psycopg.Cursor[Any]) -> Any:
    description = cursor.description
    if description is None:
        return tuple
    row_class = _row_class(tuple(column.name for column in description))
    return row_class


def _parameters(parameters: Sequence[Any], order: tuple[int, ...] | None) -> Sequence[Any]:
    return parameters if order is None else [parameters[i] for i in order]


def _as_sqlite_error(exc: psycopg.Error) -> sqlite3.Error:
    if isinstance(exc, pg_errors.DeadlockDetected | pg_errors.SerializationFailure):
        return Conflict(str(exc))
    if isinstance(exc, psycopg.IntegrityError):
        return sqlite3.IntegrityError(str(exc))
    return sqlite3.OperationalError(str(exc))


class Cursor:
    """The results of one statement; of none for an executemany of no rows (rowcount 0, as sqlite3's)."""

    def __init__(self, cursor: psycopg.Cursor[Any] | None) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return 0 if self._cursor is None else self._cursor.rowcount

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor is not None and self._cursor.description is not None else None

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall() if self._cursor is not None and self._cursor.description is not None else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


# How every connection of the store is opened (a pool's too): transactions are the statements the caller runs.
CONNECT_OPTIONS: Final[dict[str, Any]] = {"autocommit": True, "row_factory": _row_factory}


class PgConnection:
    """One psycopg connection in autocommit mode: transactions are the statements the caller runs (the writer's
    BEGIN, SAVEPOINTs and COMMIT), and a statement outside them commits alone (the readers)."""

    def __init__(self, target: str | psycopg.Connection[Any]) -> None:
        """`target`: a URL to connect to, or a connection opened with `CONNECT_OPTIONS` (a pool's) to speak
        through, which stays its owner's to close."""
        if not isinstance(target, str):
            self._connection = target
            return
        try:
            self._connection = psycopg.connect(target, **CONNECT_OPTIONS)
        except psycopg.Error as exc:
            raise _as_sqlite_error(exc) from exc

    @property
    def raw(self) -> psycopg.Connection[Any]:
        return self._connection

    @property
    def in_transaction(self) -> bool:
        return self._connection.info.transaction_status != TransactionStatus.IDLE

    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Cursor:
        text, order = translate(sql)
        cursor = psycopg.RawCursor(self._connection)
        try:
            cursor.execute(text, None if parameters is None else _parameters(parameters, order))
        except psycopg.Error as exc:
            raise _as_sqlite_error(exc) from exc
        return Cursor(cursor)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Cursor:
        text, order = translate(sql)
        parameters = [_parameters(row, order) for row in rows]
        if not parameters:  # psycopg would still sync an empty pipeline: a round trip for nothing
            return Cursor(None)
        cursor = psycopg.RawCursor(self._connection)
        try:
            cursor.executemany(text, parameters)
        except psycopg.Error as exc:
            raise _as_sqlite_error(exc) from exc
        return Cursor(cursor)

    def executescript(self, script: str) -> None:
        """Several statements without parameters, in one round trip (migrations)."""
        self.execute(script)

    def commit(self) -> None:
        if self.in_transaction:
            self.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self.execute("ROLLBACK")

    def __enter__(self) -> PgConnection:
        """As `with sqlite3_connection:`, a transaction committed at the end of the block, or rolled back."""
        self.execute("BEGIN")
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.rollback()

    def close(self) -> None:
        self._connection.close()
