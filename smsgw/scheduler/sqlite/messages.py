"""ESME operations on stored messages: query_sm's find, cancel_sm and replace_sm."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from smsgw.numbers import same_handset
from smsgw.scheduler import billing
from smsgw.scheduler.model import Address, NewSegment, NotCancellable, StoredMessage
from smsgw.scheduler.sqlite.base import SEGMENT_COLUMNS, SegmentRow, SqliteBase
from smsgw.scheduler.states import PENDING, Event, State


class Messages(SqliteBase):
    async def find(self, account: str, message_id: str) -> list[StoredMessage]:
        return await self._read(lambda c: self._find(c, account, message_id))

    def _find(self, c: sqlite3.Connection, account: str, message_id: str) -> list[StoredMessage]:
        rows = c.execute(
            "SELECT id, message_id, dest_index, account, source_addr, source_addr_ton, source_addr_npi,"
            " destination_addr, dest_addr_ton, dest_addr_npi, state, submitted_at, final_at, error_code,"
            " segment_count, charged, route, data_coding, esm_class, start_at, expires_at, client_ref FROM messages"
            " WHERE message_id = ? AND account = ? ORDER BY dest_index",
            (message_id, account),
        ).fetchall()
        return [
            StoredMessage(
                message_id=row["message_id"],
                dest_index=row["dest_index"],
                account=row["account"],
                source=Address(row["source_addr"], row["source_addr_ton"], row["source_addr_npi"]),
                destination=Address(row["destination_addr"], row["dest_addr_ton"], row["dest_addr_npi"]),
                state=State(row["state"]),
                submitted_ms=row["submitted_at"],
                final_ms=row["final_at"],
                error_code=row["error_code"],
                segment_count=row["segment_count"],
                charged_micro=row["charged"],
                segment_states=tuple(
                    State(segment["state"])
                    for segment in c.execute("SELECT state FROM segments WHERE message = ? ORDER BY seq", (row["id"],))
                ),
                route=row["route"],
                data_coding=row["data_coding"],
                esm_class=row["esm_class"],
                start_ms=row["start_at"],
                expires_ms=row["expires_at"],
                client_ref=row["client_ref"],
            )
            for row in rows
        ]

    async def cancel(
        self, account: str, message_id: str | None, source_addr: str, destination_addr: str, now_ms: int
    ) -> int:
        """Cancel every matching message not yet handed off; NotCancellable if none matches or any is too late.

        With a message_id: that message (all its destinations, or the one `destination_addr` names). Without: every
        open message of the account from `source_addr` to `destination_addr` (SMPP 3.4 4.9.1).
        """

        def op(c: sqlite3.Connection) -> int:
            if message_id is not None:
                rowids = [
                    row["id"]
                    for row in c.execute(
                        "SELECT id, destination_addr FROM messages WHERE message_id = ? AND account = ?",
                        (message_id, account),
                    )
                    if not destination_addr or same_handset(row["destination_addr"], destination_addr)
                ]
            else:
                rowids = [
                    row["id"]
                    for row in c.execute(
                        "SELECT id FROM messages WHERE account = ? AND destination_addr = ? AND source_addr = ?"
                        " AND final_at IS NULL",
                        (account, destination_addr, source_addr),
                    )
                ]
            if not rowids:
                raise NotCancellable("no such message")
            segments = [
                SegmentRow.of(row)
                for rowid in rowids
                for row in c.execute(f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE message = ?", (rowid,))
            ]
            late = [s for s in segments if s.state not in PENDING or s.sent_at is not None]
            if late:
                raise NotCancellable(f"{len(late)} segment(s) already handed off or final")
            for segment in segments:
                self._change(c, segment, Event.CANCEL, now_ms)
            return len(rowids)

        return await self._writer.write(op)

    async def replace(
        self,
        account: str,
        message_id: str,
        *,
        segments: Sequence[NewSegment] | None,
        text: str | None,
        window: tuple[int, int] | None,
        registered_delivery: int | None,
        price_per_segment_micro: int,
        now_ms: int,
    ) -> None:
        """Replace text (already segmented), schedule/validity (start, expiry) and registered_delivery of a
        message no segment of which has been handed off. A different segment count is charged or refunded."""

        def op(c: sqlite3.Connection) -> None:
            found = c.execute(
                "SELECT id, destination_addr, charged, start_at, expires_at FROM messages"
                " WHERE message_id = ? AND account = ?",
                (message_id, account),
            ).fetchall()
            if len(found) != 1:
                raise NotCancellable("no such message" if not found else "submit_multi messages cannot be replaced")
            (row,) = found
            rowid, start_at, expires_at = row["id"], row["start_at"], row["expires_at"]
            states = c.execute("SELECT state, handoff_at FROM segments WHERE message = ?", (rowid,))
            if any(State(s["state"]) not in (State.ACCEPTED, State.SCHEDULED) or s["handoff_at"] is not None
                   for s in states):
                raise NotCancellable("already handed off or final")
            if window is not None:
                start_at, expires_at = window
            state = State.SCHEDULED if start_at > now_ms else State.ACCEPTED
            if segments is not None:
                new_charge = price_per_segment_micro * len(segments)
                difference = billing.replacement_difference(
                    row["charged"], new_charge, self._locked_balance(c, account)
                )
                if difference:
                    self._ledger(c, account, billing.replacement_kind(difference), -difference, now_ms, message_id,
                                 "replace_sm")
                c.execute("DELETE FROM segments WHERE message = ?", (rowid,))
                c.executemany(
                    "INSERT INTO segments (message, seq, destination, data_coding, udh, user_data, state, due_at,"
                    " charge) VALUES (?,?,?,?,?,?,?,?,?)",
                    [
                        (rowid, seq, row["destination_addr"], s.data_coding, s.udh, s.user_data, int(state), start_at,
                         price_per_segment_micro)
                        for seq, s in enumerate(segments)
                    ],
                )
                c.execute(
                    "UPDATE messages SET text = ?, segment_count = ?, charged = ? WHERE id = ?",
                    (text, len(segments), new_charge, rowid),
                )
            else:
                c.execute("UPDATE segments SET state = ?, due_at = ? WHERE message = ?", (int(state), start_at, rowid))
            c.execute(
                "UPDATE messages SET start_at = ?, expires_at = ?, state = ?,"
                " registered_delivery = COALESCE(?, registered_delivery) WHERE id = ?",
                (start_at, expires_at, int(state), registered_delivery, rowid),
            )
            self._audit(c, now_ms, "replace", account, message_id, "")
            self._new_work(c)

        await self._writer.write(op)
