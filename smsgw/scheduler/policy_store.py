"""The recipient facts of the message policy in SQLite: do-not-call register, consents, suppression lists.

`SqlitePolicyFacts` implements `smsgw.scheduler.policy.PolicyFacts` on the store's database file, in tables of
its own created idempotently on open. Calls block (SQLite); from Trio, run them in a worker thread. One
connection is shared under a lock, so any thread may call. The store's writer reads the recipient facts of the
messages it accepts through its own connection (`reading`), inside the acceptance transaction.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS policy_dnc (
        number TEXT PRIMARY KEY,
        added_ms INTEGER NOT NULL,
        source TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS policy_consent (
        account TEXT NOT NULL,
        number TEXT NOT NULL,
        added_ms INTEGER NOT NULL,
        PRIMARY KEY (account, number)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS policy_suppression (
        account TEXT NOT NULL,
        number TEXT NOT NULL,
        added_ms INTEGER NOT NULL,
        PRIMARY KEY (account, number)
    ) WITHOUT ROWID""",
)


# Numbers per `IN (...)` query: well below SQLite's oldest limit of 999 parameters.
_IN_CHUNK: Final = 500


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class SqlitePolicyFacts:
    def __init__(self, connection: sqlite3.Connection, *, create_tables: bool = True) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        if create_tables:
            with self._lock, self._connection:
                for statement in SCHEMA:
                    self._connection.execute(statement)

    @classmethod
    def reading(cls, connection: sqlite3.Connection) -> SqlitePolicyFacts:
        """The facts read through a connection another part owns (the store's writer, inside its transaction),
        whose tables an `open` already created; only its owner closes it."""
        return cls(connection, create_tables=False)

    @classmethod
    def open(cls, path: str | Path, busy_timeout_s: float = 10.0) -> SqlitePolicyFacts:
        connection = sqlite3.connect(str(path), check_same_thread=False, timeout=busy_timeout_s)
        connection.execute("PRAGMA journal_mode = WAL")
        return cls(connection)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def _exists(self, query: str, parameters: tuple[str, ...]) -> bool:
        with self._lock:
            return self._connection.execute(query, parameters).fetchone() is not None

    def is_on_dnc(self, number: str) -> bool:
        return self._exists("SELECT 1 FROM policy_dnc WHERE number = ?", (number,))

    def has_consent(self, account: str, number: str) -> bool:
        return self._exists("SELECT 1 FROM policy_consent WHERE account = ? AND number = ?", (account, number))

    def is_suppressed(self, account: str, number: str) -> bool:
        return self._exists("SELECT 1 FROM policy_suppression WHERE account = ? AND number = ?", (account, number))

    def _among(self, query: str, prefix: tuple[str, ...], numbers: Collection[str]) -> set[str]:
        """The `numbers` for which `query` (ending in `IN (`) finds a row, a chunk of parameters at a time."""
        found: set[str] = set()
        with self._lock:
            for chunk in _batches(numbers, _IN_CHUNK):
                marks = ",".join("?" * len(chunk))
                found.update(row[0] for row in self._connection.execute(f"{query}{marks})", (*prefix, *chunk)))
        return found

    def dnc_among(self, numbers: Collection[str]) -> set[str]:
        return self._among("SELECT number FROM policy_dnc WHERE number IN (", (), numbers)

    def consented_among(self, account: str, numbers: Collection[str]) -> set[str]:
        return self._among("SELECT number FROM policy_consent WHERE account = ? AND number IN (", (account,), numbers)

    def suppressed_among(self, account: str, numbers: Collection[str]) -> set[str]:
        return self._among(
            "SELECT number FROM policy_suppression WHERE account = ? AND number IN (", (account,), numbers
        )

    def _insert(self, table: str, account: str, number: str) -> bool:
        with self._lock, self._connection:
            cursor = self._connection.execute(
                f"INSERT INTO {table} (account, number, added_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (account, number, _now_ms()),
            )
            return cursor.rowcount == 1

    def suppress(self, account: str, number: str) -> bool:
        """True when `number` was not on the account's suppression list yet."""
        return self._insert("policy_suppression", account, number)

    def add_consent(self, account: str, number: str) -> bool:
        """The number agreed to promotional messages of this account despite the do-not-call register."""
        return self._insert("policy_consent", account, number)

    def remove_consent(self, account: str, number: str) -> bool:
        """True when there was a consent to remove."""
        with self._lock, self._connection:
            cursor = self._connection.execute(
                "DELETE FROM policy_consent WHERE account = ? AND number = ?", (account, number)
            )
            return cursor.rowcount == 1

    def add_dnc(self, numbers: Iterable[str], *, source: str, batch_size: int = 1000) -> int:
        """Add normalised numbers to the register, one transaction per `batch_size`; returns how many were new.
        A failure keeps the batches committed before it: importing the same file again adds the rest."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        added = 0
        for batch in _batches(numbers, batch_size):
            added_ms = _now_ms()
            with self._lock, self._connection:
                added += self._connection.executemany(
                    "INSERT INTO policy_dnc (number, added_ms, source) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    ((number, added_ms, source) for number in batch),
                ).rowcount
        log.info("dnc import source=%s added=%d", source, added)
        return added
