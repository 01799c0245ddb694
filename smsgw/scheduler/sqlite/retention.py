"""Retention and export: final messages purged after the retention period, delivery records streamed out."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from smsgw.scheduler.model import HistoryRow
from smsgw.scheduler.sqlite.base import SqliteBase


class Retention(SqliteBase):
    async def purge(self, before_ms: int, batch: int) -> int:
        """Delete one batch of messages final before `before_ms` (with their segments and old reports)."""

        def op(c: sqlite3.Connection) -> int:
            rowids = [
                (row["id"],)
                for row in c.execute(
                    "SELECT id FROM messages INDEXED BY messages_final WHERE final_at < ? LIMIT ?", (before_ms, batch)
                )
            ]
            c.executemany("DELETE FROM segments WHERE message = ?", rowids)
            c.executemany("DELETE FROM messages WHERE id = ?", rowids)
            c.executemany("DELETE FROM dlr_requests WHERE message = ?", rowids)
            for table, column in (
                ("status_reports", "received_at"),
                ("mo_messages", "received_at"),
                ("audit", "at"),
                ("mo_callbacks", "created_at"),
                ("dlr_callbacks", "created_at"),
                ("notices_sent", "at"),
            ):
                c.execute(
                    f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {column} < ? LIMIT ?)",
                    (before_ms, batch),
                )
            return len(rowids)

        return await self._writer.write(op)

    def history_rows(self, from_ms: int, to_ms_: int, account: str | None) -> Iterator[HistoryRow]:
        """Messages submitted in [from, to), oldest first, streamed from the reader connection (no Trio needed)."""
        sql = (
            "SELECT message_id, dest_index, account, source_addr, destination_addr, submitted_at AS submitted_ms,"
            " state, final_at AS final_ms, error_code, segment_count, charged AS charged_micro, text FROM messages"
            " WHERE submitted_at >= ? AND submitted_at < ?"
        )
        parameters: tuple[Any, ...] = (from_ms, to_ms_)
        if account is not None:
            sql += " AND account = ?"
            parameters += (account,)
        for row in self._reader.execute(sql + " ORDER BY submitted_at, id", parameters):
            yield HistoryRow(**row)
