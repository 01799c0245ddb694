"""HTTP callbacks pending in the store (`smsgw.scheduler.callback`), both kinds: MO callbacks in `mo_callbacks`
(their body comes from the MO row), delivery reports in `dlr_callbacks` (rendered when queued); and the operator's
listing and requeue of both. Every operation but `*_due` is the same SQL over the kind's table."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Final

from smsgw.scheduler.model import CallbackRow, DlrCallback, MoCallback
from smsgw.scheduler.sqlite.base import SqliteBase

_TABLES: Final = {"mo": "mo_callbacks", "dlr": "dlr_callbacks"}
KINDS: Final = tuple(_TABLES)


def _table(kind: str) -> str:
    table = _TABLES.get(kind)
    if table is None:
        raise ValueError(f"unknown callback kind {kind!r}, expected one of {KINDS}")
    return table


class Callbacks(SqliteBase):
    async def mo_callbacks_due(
        self, now_ms: int, busy: frozenset[int], full_accounts: frozenset[str], limit: int
    ) -> list[MoCallback]:
        """Pending MO callbacks due by `now_ms`, earliest first, leaving out those in `busy` (rowids being posted)
        and those of `full_accounts` (accounts with as many posts in flight as they may have)."""

        def fn(c: sqlite3.Connection) -> list[MoCallback]:
            where, parameters = _pending_callbacks(busy, full_accounts)
            rows = c.execute(
                "SELECT cb.id AS rowid, cb.account, cb.mo AS mo_id, mo.originator, cb.recipient, mo.text,"
                " mo.data_coding, cb.received_at AS received_ms, cb.created_at AS created_ms, cb.attempts"
                " FROM mo_callbacks cb JOIN mo_messages mo ON mo.id = cb.mo"
                f" WHERE {where} AND cb.next_try_at <= ? ORDER BY cb.next_try_at, cb.id LIMIT ?",
                (*parameters, now_ms, limit),
            )
            return [MoCallback(**row) for row in rows]

        return await self._read(fn, reads_backlog=False)

    async def dlr_callbacks_due(
        self, now_ms: int, busy: frozenset[int], full_accounts: frozenset[str], limit: int
    ) -> list[DlrCallback]:
        """As `mo_callbacks_due`, for delivery reports."""

        def fn(c: sqlite3.Connection) -> list[DlrCallback]:
            where, parameters = _pending_callbacks(busy, full_accounts)
            rows = c.execute(
                "SELECT cb.id AS rowid, cb.account, cb.message_id, cb.url, cb.method, cb.format, cb.body,"
                " cb.created_at AS created_ms, cb.attempts FROM dlr_callbacks cb"
                f" WHERE {where} AND cb.next_try_at <= ? ORDER BY cb.next_try_at, cb.id LIMIT ?",
                (*parameters, now_ms, limit),
            )
            return [DlrCallback(**row) for row in rows]

        return await self._read(fn, reads_backlog=False)

    async def callback_next_ms(self, kind: str, busy: frozenset[int], full_accounts: frozenset[str]) -> int | None:
        """When the next pending callback of `kind` outside `busy` and `full_accounts` is due; None for none."""
        table = _table(kind)

        def fn(c: sqlite3.Connection) -> int | None:
            where, parameters = _pending_callbacks(busy, full_accounts)
            due = c.execute(f"SELECT MIN(cb.next_try_at) AS due FROM {table} cb WHERE {where}", parameters).fetchone()
            return None if due["due"] is None else int(due["due"])

        return await self._read(fn, reads_backlog=False)

    async def callback_delivered(self, kind: str, rowid: int) -> None:
        table = _table(kind)

        def op(c: sqlite3.Connection) -> None:
            c.execute(f"DELETE FROM {table} WHERE id = ?", (rowid,))

        await self._writer.write(op)

    async def callback_retry(self, kind: str, rowid: int, attempts: int, next_try_ms: int, error: str) -> None:
        table = _table(kind)

        def op(c: sqlite3.Connection) -> None:
            c.execute(
                f"UPDATE {table} SET attempts = ?, next_try_at = ?, last_error = ? WHERE id = ?",
                (attempts, next_try_ms, error, rowid),
            )

        await self._writer.write(op)

    async def callback_failed(self, kind: str, rowid: int, attempts: int, error: str, now_ms: int) -> None:
        """Given up: kept as 'failed' with its last error, never tried again."""
        table = _table(kind)

        def op(c: sqlite3.Connection) -> None:
            c.execute(
                f"UPDATE {table} SET state = 'failed', attempts = ?, next_try_at = NULL, last_error = ?,"
                " failed_at = ? WHERE id = ?",
                (attempts, error, now_ms, rowid),
            )

        await self._writer.write(op)

    async def callbacks_listing(
        self, kind: str | None, state: str | None, account: str | None, limit: int
    ) -> list[CallbackRow]:
        """Stored callbacks of `kind` (both when None, MO ones first), oldest first, of one `state` and
        `account` when given; at most `limit` of each kind."""
        selects = {
            "mo": "SELECT 'mo' AS kind, cb.id AS rowid, CAST(cb.mo AS TEXT) AS subject, cb.account,"
            " mo.originator AS party, cb.state, cb.attempts, cb.last_error, cb.created_at AS created_ms,"
            " cb.next_try_at AS next_try_ms FROM mo_callbacks cb JOIN mo_messages mo ON mo.id = cb.mo",
            "dlr": "SELECT 'dlr' AS kind, cb.id AS rowid, cb.message_id AS subject, cb.account,"
            " cb.recipient AS party, cb.state, cb.attempts, cb.last_error, cb.created_at AS created_ms,"
            " cb.next_try_at AS next_try_ms FROM dlr_callbacks cb",
        }
        kinds = KINDS if kind is None else (kind,)

        def fn(c: sqlite3.Connection) -> list[CallbackRow]:
            return [
                CallbackRow(**row)
                for k in kinds
                for row in c.execute(
                    selects[k] + " WHERE (?1 IS NULL OR cb.state = ?1) AND (?2 IS NULL OR cb.account = ?2)"
                    " ORDER BY cb.id LIMIT ?3",
                    (state, account, limit),
                )
            ]

        return await self._read(fn)

    async def callbacks_requeue(
        self, kind: str, rowids: Sequence[int] | None, account: str | None, now_ms: int
    ) -> int:
        """Failed callbacks of `kind` (those of `rowids`, or all of `account` or of every account when None)
        pending again, due now with their attempts and age counted afresh; how many. A running gateway picks
        them up within `foreign_writes_poll_s`."""
        table = _table(kind)

        def op(c: sqlite3.Connection) -> int:
            query = (
                f"UPDATE {table} SET state = 'pending', attempts = 0, next_try_at = ?, created_at = ?,"
                " failed_at = NULL WHERE state = 'failed' AND (? IS NULL OR account = ?)"
            )
            parameters: tuple[Any, ...] = (now_ms, now_ms, account, account)
            if rowids is not None:
                query += f" AND id IN ({','.join('?' * len(rowids))})"
                parameters += tuple(rowids)
            return int(c.execute(query, parameters).rowcount)

        return await self._writer.write(op)


def _pending_callbacks(busy: frozenset[int], full_accounts: frozenset[str]) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause (on a callbacks table as `cb`) of pending callbacks outside `busy` rowids and
    `full_accounts`."""
    where = "cb.state = 'pending'"
    if busy:
        where += f" AND cb.id NOT IN ({','.join('?' * len(busy))})"
    if full_accounts:
        where += f" AND cb.account NOT IN ({','.join('?' * len(full_accounts))})"
    return where, (*busy, *full_accounts)
