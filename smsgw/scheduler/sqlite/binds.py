"""The SMPP binds of every node sharing the store (`smsgw.smpp_server.binds`): a row per bind, so an account's
`max_binds` holds across nodes and each node knows its share of the account's binds (and so of its throughput).

A bind's row is taken under the account's row lock (PostgreSQL; SQLite has one writer), so two nodes binding at
the same instant are counted one after the other. Each node's heartbeat (`binds_renew`) holds its rows for
another lease; the rows of a node that died without unbinding stop counting when their lease ends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from smsgw.scheduler.sqlite.base import SqliteBase
from smsgw.smpp_server.binds import BindCounts

# The account's live binds: this node's and all nodes'.
_COUNTS_SQL = (
    "SELECT COALESCE(SUM(CASE WHEN node = ? THEN 1 ELSE 0 END), 0) AS mine, COUNT(*) AS total FROM binds"
    " WHERE account = ? AND expires_at > ?"
)


class Binds(SqliteBase):
    """`smsgw.smpp_server.binds.BindStore`, where each method says what it does. Its writes read no message rows,
    so a bind does not wait for the accepted messages' intake to be written in full (`writer.Backlog`)."""

    async def bind_take(
        self, node: str, account: str, connection: int, limit: int, now_ms: int, until_ms: int
    ) -> BindCounts | None:
        def op(c: sqlite3.Connection) -> BindCounts | None:
            # The account's row, locked until commit, serialises its binds on every node: the count below sees
            # each bind committed before this one, and none commits between the count and the insert.
            c.execute("INSERT INTO accounts (name, balance) VALUES (?, 0) ON CONFLICT (name) DO NOTHING", (account,))
            c.execute(f"SELECT name FROM accounts WHERE name = ?{self._dialect.for_update}", (account,))
            c.execute("DELETE FROM binds WHERE account = ? AND expires_at <= ?", (account, now_ms))
            counts = _counts(c, node, account, now_ms)
            if counts.all >= limit:
                return None
            c.execute(
                "INSERT INTO binds (node, connection, account, expires_at) VALUES (?, ?, ?, ?)",
                (node, connection, account, until_ms),
            )
            return BindCounts(counts.node + 1, counts.all + 1)

        return await self._writer.write(op, reads_backlog=False)

    async def bind_drop(self, node: str, connection: int, now_ms: int) -> BindCounts | None:
        def op(c: sqlite3.Connection) -> BindCounts | None:
            row = c.execute(
                "DELETE FROM binds WHERE node = ? AND connection = ? RETURNING account", (node, connection)
            ).fetchone()
            return None if row is None else _counts(c, node, row["account"], now_ms)

        return await self._writer.write(op, reads_backlog=False)

    async def binds_renew(
        self, node: str, dropped: Sequence[int], now_ms: int, until_ms: int
    ) -> dict[str, BindCounts]:
        def op(c: sqlite3.Connection) -> dict[str, BindCounts]:
            c.executemany("DELETE FROM binds WHERE node = ? AND connection = ?", [(node, i) for i in dropped])
            c.execute("UPDATE binds SET expires_at = ? WHERE node = ?", (until_ms, node))
            c.execute("DELETE FROM binds WHERE expires_at <= ?", (now_ms,))
            rows = c.execute(
                "SELECT account, SUM(CASE WHEN node = ? THEN 1 ELSE 0 END) AS mine, COUNT(*) AS total FROM binds"
                " WHERE account IN (SELECT account FROM binds WHERE node = ?) GROUP BY account",
                (node, node),
            )
            return {row["account"]: BindCounts(int(row["mine"]), int(row["total"])) for row in rows}

        return await self._writer.write(op, reads_backlog=False)

    async def binds_clear(self, node: str) -> int:
        def op(c: sqlite3.Connection) -> int:
            return c.execute("DELETE FROM binds WHERE node = ?", (node,)).rowcount

        return await self._writer.write(op, reads_backlog=False)


def _counts(c: sqlite3.Connection, node: str, account: str, now_ms: int) -> BindCounts:
    row = c.execute(_COUNTS_SQL, (node, account, now_ms)).fetchone()
    return BindCounts(int(row["mine"]), int(row["total"]))
