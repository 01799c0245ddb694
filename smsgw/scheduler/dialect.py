"""What the store's jobs ask differently of SQLite and PostgreSQL, so one set of jobs serves both engines.

The jobs are written against `sqlite3.Connection`; the PostgreSQL engine gives them a connection of the same
interface (`smsgw.scheduler.postgres.connection`) that rewrites what is only spelled differently. What differs in
meaning is here: SQLite has one writer, so nothing it reads can change before its commit; PostgreSQL has one
writer per node, so rows several nodes compete for are locked when read (`for_update`), and due work another node
is claiming is skipped (`skip_locked`) rather than waited for.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Dialect:
    # Appended to a SELECT of rows the transaction will update (balances): held by it until commit.
    for_update: str = ""
    # Appended to a SELECT of due work to claim: of outbox items, and of segments joined to messages as `s`.
    skip_locked: str = ""
    skip_locked_segments: str = ""
    # New message ids come from the table's sequence, reserved at once by any number of writers; without one
    # (SQLite, one writer) they follow the highest id.
    sequences: bool = False
    # Other nodes learn of new due work and outbox items by NOTIFY on these channels, sent with the commit.
    notify: bool = False


# The NOTIFY channels: due work (no payload) and an account's outbox (payload: the account).
WORK_CHANNEL: Final = "smsgw_work"
OUTBOX_CHANNEL: Final = "smsgw_outbox"


SQLITE: Final = Dialect()
POSTGRES: Final = Dialect(
    for_update=" FOR UPDATE",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    skip_locked_segments=" FOR UPDATE OF s SKIP LOCKED",
    sequences=True,
    notify=True,
)


class Conflict(sqlite3.OperationalError):
    """Two nodes' transactions deadlocked, or one could not be serialised: the whole transaction may run again."""
