"""What the HTTP API reads and keeps beyond the ESME operations: an account's messages page by page, its inbox
(MO routed to it), and its API keys.

Pages are keyset pages: each starts after the (submitted_at, id) of the previous page's last row, through the
index on (account, submitted_at), so a deep page costs what the first does (no OFFSET that reads and skips).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from smsgw.numbers import handset_key
from smsgw.scheduler.model import (
    AnsweredMessage,
    ApiKey,
    HistoryRow,
    InboxEntry,
    ListedMessage,
    MessageFilter,
)
from smsgw.scheduler.sqlite.base import SqliteBase

_API_KEY_COLUMNS = "id AS key_id, account, name, created_at AS created_ms, last_used_at AS last_used_ms"


class Api(SqliteBase):
    async def list_messages(
        self, account: str, where: MessageFilter, after: tuple[int, int] | None, limit: int
    ) -> list[ListedMessage]:
        """The account's messages that match `where`, oldest first, the `limit` after the key `after`."""
        sql = (
            "SELECT id, message_id, dest_index, account, source_addr, destination_addr, submitted_at AS submitted_ms,"
            " state, final_at AS final_ms, error_code, segment_count, charged AS charged_micro, text, start_at,"
            " client_ref FROM messages WHERE account = ? AND submitted_at >= ? AND submitted_at < ?"
        )
        parameters: list[Any] = [account, where.from_ms, where.to_ms]
        if after is not None:
            # Spelled out, not as the row value (submitted_at, id) > (?, ?): SQLite then starts the index range at
            # the cursor's time instead of reading the period from its start (a middle page: 130 ms -> under 1).
            sql += " AND submitted_at >= ? AND (submitted_at > ? OR id > ?)"
            parameters += [after[0], after[0], after[1]]
        if where.state is not None:
            sql += " AND state = ?"
            parameters.append(int(where.state))
        if where.number is not None:
            sql += " AND destination_addr = ?"
            parameters.append(where.number)
        if where.error_code is not None:
            sql += " AND error_code = ?"
            parameters.append(where.error_code)
        sql += " ORDER BY submitted_at, id LIMIT ?"
        parameters.append(limit)

        def fn(c: sqlite3.Connection) -> list[ListedMessage]:
            return [
                ListedMessage(
                    HistoryRow(
                        row["message_id"], row["dest_index"], row["account"], row["source_addr"],
                        row["destination_addr"], row["submitted_ms"], row["state"], row["final_ms"],
                        row["error_code"], row["segment_count"], row["charged_micro"], row["text"],
                    ),
                    row["start_at"],
                    row["client_ref"],
                    (row["submitted_ms"], row["id"]),
                )
                for row in c.execute(sql, parameters)
            ]

        return await self._read(fn)

    async def inbox(self, account: str, after: int, limit: int) -> list[InboxEntry]:
        """MO routed to the account with ids above `after`, oldest first (an id is the inbox's cursor), each with
        the message it answers when the account sent that handset one from the same modem before it."""

        def fn(c: sqlite3.Connection) -> list[InboxEntry]:
            rows = c.execute(
                "SELECT id, originator, modem, modem_msisdn, text, received_at FROM mo_messages"
                " WHERE account = ? AND id > ? ORDER BY id LIMIT ?",
                (account, after, limit),
            ).fetchall()
            return [
                InboxEntry(row["id"], row["originator"], row["modem_msisdn"], row["text"], row["received_at"],
                           self._answered(c, account, row))
                for row in rows
            ]

        return await self._read(fn)

    @staticmethod
    def _answered(c: sqlite3.Connection, account: str, mo: sqlite3.Row) -> AnsweredMessage | None:
        # last_sent_to's query, from the MO's own time back (one index seek per inbox row).
        row = c.execute(
            "SELECT m.message_id, m.source_addr, m.text, s.sent_at"
            " FROM segments s INDEXED BY segments_sent_to JOIN messages m ON m.id = s.message"
            " WHERE s.destination = ? AND s.sent_at IS NOT NULL AND s.sent_at <= ? AND m.account = ?"
            " AND (s.modem = ? OR (s.modem_msisdn = ? AND s.modem_msisdn != ''))"
            " ORDER BY s.sent_at DESC, s.id DESC LIMIT 1",
            (handset_key(mo["originator"]), mo["received_at"], account, mo["modem"], mo["modem_msisdn"]),
        ).fetchone()
        return None if row is None else AnsweredMessage(row["message_id"], row["source_addr"], row["text"],
                                                        row["sent_at"])

    async def api_key_add(self, account: str, name: str, key_hash: str, now_ms: int) -> int:
        """Keep a new key's hash for `account`; its id."""

        def op(c: sqlite3.Connection) -> int:
            key_id = int(c.execute(
                "INSERT INTO api_keys (account, name, key_hash, created_at) VALUES (?,?,?,?) RETURNING id",
                (account, name, key_hash, now_ms),
            ).fetchone()["id"])
            self._audit(c, now_ms, "api_key_created", account, None, f"id={key_id} name={name}")
            return key_id

        return await self._writer.write(op)

    async def api_keys(self, account: str | None) -> list[ApiKey]:
        """The keys of `account` (None: of every account), oldest first."""
        sql = f"SELECT {_API_KEY_COLUMNS} FROM api_keys"
        parameters: tuple[str, ...] = ()
        if account is not None:
            sql += " WHERE account = ?"
            parameters = (account,)
        return await self._read(lambda c: [ApiKey(**row) for row in c.execute(sql + " ORDER BY id", parameters)])

    async def api_key_revoke(self, key_id: int, now_ms: int) -> ApiKey | None:
        """Delete key `key_id`; the key it was, or None when there is none."""

        def op(c: sqlite3.Connection) -> ApiKey | None:
            row = c.execute(f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
            if row is None:
                return None
            c.execute("DELETE FROM api_keys WHERE id = ?", (key_id,))
            self._audit(c, now_ms, "api_key_revoked", row["account"], None, f"id={key_id}")
            return ApiKey(**row)

        return await self._writer.write(op)

    async def api_key_find(self, key_hash: str) -> ApiKey | None:
        def fn(c: sqlite3.Connection) -> ApiKey | None:
            row = c.execute(f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,)).fetchone()
            return None if row is None else ApiKey(**row)

        return await self._read(fn)

    async def api_key_used(self, key_id: int, now_ms: int) -> None:
        def op(c: sqlite3.Connection) -> None:
            c.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now_ms, key_id))

        await self._writer.write(op)
