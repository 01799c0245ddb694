"""MO HTTP callbacks pending in the store (`smsgw.scheduler.callback`), and the operator's listing and requeue."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from smsgw.scheduler.model import CallbackRow, MoCallback
from smsgw.scheduler.sqlite.base import SqliteBase


class Callbacks(SqliteBase):
    async def mo_callbacks_due(
        self, now_ms: int, busy: frozenset[int], full_accounts: frozenset[str], limit: int
    ) -> list[MoCallback]:
        """Pending callbacks due by `now_ms`, earliest first, leaving out those in `busy` (rowids being posted)
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

        return await self._read(fn)

    async def mo_callback_next_ms(self, busy: frozenset[int], full_accounts: frozenset[str]) -> int | None:
        """When the next pending callback outside `busy` and `full_accounts` is due; None when there is none."""

        def fn(c: sqlite3.Connection) -> int | None:
            where, parameters = _pending_callbacks(busy, full_accounts)
            due = c.execute(
                f"SELECT MIN(cb.next_try_at) AS due FROM mo_callbacks cb WHERE {where}", parameters
            ).fetchone()["due"]
            return None if due is None else int(due)

        return await self._read(fn)

    async def mo_callback_delivered(self, rowid: int) -> None:
        def op(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM mo_callbacks WHERE id = ?", (rowid,))

        await self._writer.write(op)

    async def mo_callback_retry(self, rowid: int, attempts: int, next_try_ms: int, error: str) -> None:
        def op(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE mo_callbacks SET attempts = ?, next_try_at = ?, last_error = ? WHERE id = ?",
                (attempts, next_try_ms, error, rowid),
            )

        await self._writer.write(op)

    async def mo_callback_failed(self, rowid: int, attempts: int, error: str, now_ms: int) -> None:
        """Given up: kept as 'failed' with its last error, never tried again."""

        def op(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE mo_callbacks SET state = 'failed', attempts = ?, next_try_at = NULL, last_error = ?,"
                " failed_at = ? WHERE id = ?",
                (attempts, error, now_ms, rowid),
            )

        await self._writer.write(op)

    async def mo_callbacks_listing(self, state: str | None, account: str | None, limit: int) -> list[CallbackRow]:
        """Stored callbacks, oldest first, of one `state` and `account` when given."""

        def fn(c: sqlite3.Connection) -> list[CallbackRow]:
            rows = c.execute(
                "SELECT cb.id AS rowid, cb.mo AS mo_id, cb.account, mo.originator, cb.state, cb.attempts,"
                " cb.last_error, cb.created_at AS created_ms, cb.next_try_at AS next_try_ms"
                " FROM mo_callbacks cb JOIN mo_messages mo ON mo.id = cb.mo"
                " WHERE (?1 IS NULL OR cb.state = ?1) AND (?2 IS NULL OR cb.account = ?2) ORDER BY cb.id LIMIT ?3",
                (state, account, limit),
            )
            return [CallbackRow(**row) for row in rows]

        return await self._read(fn)

    async def mo_callbacks_requeue(self, rowids: Sequence[int] | None, account: str | None, now_ms: int) -> int:
        """Failed callbacks (those of `rowids`, or all of `account` or of every account when None) pending again,
        due now with their attempts and age counted afresh; how many. A running gateway picks them up within
        `foreign_writes_poll_s`."""

        def op(c: sqlite3.Connection) -> int:
            query = (
                "UPDATE mo_callbacks SET state = 'pending', attempts = 0, next_try_at = ?, created_at = ?,"
                " failed_at = NULL WHERE state = 'failed' AND (? IS NULL OR account = ?)"
            )
            parameters: tuple[Any, ...] = (now_ms, now_ms, account, account)
            if rowids is not None:
                query += f" AND id IN ({','.join('?' * len(rowids))})"
                parameters += tuple(rowids)
            return int(c.execute(query, parameters).rowcount)

        return await self._writer.write(op)


def _pending_callbacks(busy: frozenset[int], full_accounts: frozenset[str]) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause (on `mo_callbacks cb`) of pending callbacks outside `busy` rowids and `full_accounts`."""
    where = "cb.state = 'pending'"
    if busy:
        where += f" AND cb.id NOT IN ({','.join('?' * len(busy))})"
    if full_accounts:
        where += f" AND cb.account NOT IN ({','.join('?' * len(full_accounts))})"
    return where, (*busy, *full_accounts)
