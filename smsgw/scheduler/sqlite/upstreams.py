"""Segments sent through upstream SMSCs: the upstream's message_id recorded with the hand-off's outcome, and its
receipts matched to the segment by (upstream, message_id), hex or decimal. A receipt that overtook the write of
its submit_sm_resp is kept unmatched in `upstream_receipts` and applied by `record_upstream_sent`."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from smsgw.pdu.dlr import message_id_variants
from smsgw.scheduler import upstream_outcomes
from smsgw.scheduler.sqlite.base import SEGMENT_COLUMNS, SegmentRow, SqliteBase
from smsgw.scheduler.states import FINAL, Event, State


def _in(values: Sequence[str]) -> str:
    return ",".join("?" * len(values))


class Upstreams(SqliteBase):
    async def record_upstream_sent(
        self,
        segment_rowid: int,
        upstream: str,
        upstream_message_id: str,
        *,
        receipts: bool,
        report_deadline_ms: int,
        now_ms: int,
    ) -> State:
        """The upstream took the segment: keep its message_id; without `receipts` (an economic route) the segment is
        DELIVERED now, else a receipt that came first is applied."""

        def op(c: sqlite3.Connection) -> State:
            segment = self._segment(c, segment_rowid)
            c.execute(
                "UPDATE segments SET sent_at = ?, upstream = ?, upstream_message_id = ? WHERE id = ?",
                (now_ms, upstream, upstream_message_id, segment_rowid),
            )
            state = self._change(c, segment, Event.SENT, now_ms, due_at=report_deadline_ms)
            self._writer.after_commit(self.notify_work)
            if not receipts:
                return self._change(c, self._segment(c, segment_rowid), Event.DELIVERED, now_ms, error_code=0)
            variants = message_id_variants(upstream_message_id)
            early = c.execute(
                "SELECT id, stat, err FROM upstream_receipts INDEXED BY upstream_receipts_unmatched"
                f" WHERE segment IS NULL AND upstream = ? AND upstream_message_id IN ({_in(variants)}) ORDER BY id",
                (upstream, *variants),
            ).fetchall()
            for receipt in early:
                if state in FINAL:
                    break
                c.execute("UPDATE upstream_receipts SET segment = ? WHERE id = ?", (segment_rowid, receipt["id"]))
                state = self._apply_upstream_receipt(c, self._segment(c, segment_rowid), receipt["stat"],
                                                     receipt["err"], now_ms)
            return state

        return await self._writer.write(op)

    async def apply_upstream_receipt(
        self, upstream: str, upstream_message_id: str, stat: str, err: str, now_ms: int
    ) -> State | None:
        """Persist the receipt and apply it to its segment; None when no segment has that id (yet). Concurrent
        calls are written in one transaction."""
        state: State | None = await self._writer.write_combined(
            self._upstream_receipt_batch, (upstream, upstream_message_id, stat, err, now_ms)
        )
        return state

    def _upstream_receipt_batch(
        self, c: sqlite3.Connection, items: Sequence[tuple[str, str, str, str, int]]
    ) -> list[State | None]:
        return [self._upstream_receipt(c, *item) for item in items]

    def _upstream_receipt(
        self, c: sqlite3.Connection, upstream: str, upstream_message_id: str, stat: str, err: str, now_ms: int
    ) -> State | None:
        variants = message_id_variants(upstream_message_id)
        row = c.execute(
            f"SELECT {SEGMENT_COLUMNS} FROM segments INDEXED BY segments_upstream_id"
            f" WHERE upstream = ? AND upstream_message_id IN ({_in(variants)}) ORDER BY sent_at DESC LIMIT 1",
            (upstream, *variants),
        ).fetchone()
        c.execute(
            "INSERT INTO upstream_receipts (received_at, upstream, upstream_message_id, stat, err, segment)"
            " VALUES (?,?,?,?,?,?)",
            (now_ms, upstream, upstream_message_id, stat, err, None if row is None else row["id"]),
        )
        if row is None:
            return None
        segment = SegmentRow.of(row)
        if segment.state is not State.PROCESSING:
            return segment.state  # a repeated receipt, or one after the segment's report deadline: kept, no change
        return self._apply_upstream_receipt(c, segment, stat, err, now_ms)

    def _apply_upstream_receipt(
        self, c: sqlite3.Connection, segment: SegmentRow, stat: str, err: str, now_ms: int
    ) -> State:
        event = upstream_outcomes.receipt_event(stat)
        due_at: int | None = None
        if event is Event.NETWORK_ENROUTE:  # the report deadline stays
            due_at = c.execute("SELECT due_at FROM segments WHERE id = ?", (segment.rowid,)).fetchone()["due_at"]
        return self._change(c, segment, event, now_ms, due_at=due_at,
                            error_code=upstream_outcomes.receipt_error(event, err))
