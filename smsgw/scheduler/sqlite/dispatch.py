"""The dispatcher's side: due segments claimed for modems, their outcomes (sent, failed, status reports) and the
hand-off recovery rule at start (`smsgw.scheduler.sqlite_store`'s docstring)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Final, NamedTuple

from smsgw.modem.seams import Sent, StatusReport
from smsgw.numbers import same_handset
from smsgw.pdu.constants import GatewayError
from smsgw.scheduler import outcomes
from smsgw.scheduler.model import Claimant, Handoff, Recovery
from smsgw.scheduler.sqlite.base import SEGMENT_COLUMNS, SegmentRow, SqliteBase, columns
from smsgw.scheduler.states import FINAL, Event, State, report_event
from smsgw.scheduler.timing import to_ms

log = logging.getLogger(__name__)

_HANDOFF_INTERRUPTED: Final = int(GatewayError.HANDOFF_INTERRUPTED)
# Segment ids per UPDATE of a lease renewal: far below SQLite's limit on bound parameters.
_RENEW_CHUNK: Final = 500


class _DueRow(NamedTuple):
    """A due segment with what its hand-off needs of its message."""

    id: int
    message: int
    state: int
    sent_at: int | None
    charge: int
    seq: int
    destination: str
    data_coding: int
    udh: bytes
    user_data: bytes
    attempts: int
    error_code: int
    message_id: str
    dest_index: int
    flash: int
    modem_group: str
    expires_at: int
    route: str
    source_addr: str
    source_addr_ton: int
    source_addr_npi: int


_DUE_SQL: Final = (
    f"SELECT {columns(_DueRow, id='s.id', state='s.state', data_coding='s.data_coding', error_code='s.error_code')}"
    " FROM segments s INDEXED BY segments_due JOIN messages m ON m.id = s.message"
    " WHERE s.due_at <= ?{routes} ORDER BY s.due_at LIMIT ?"
)


def _of_routes(claimant: Claimant | None) -> tuple[str, tuple[str, ...]]:
    """The condition (on messages as `m`) and parameters that keep a claimant to its routes; none without one."""
    if claimant is None:
        return "", ()
    routes = tuple(sorted(claimant.routes))
    return f" AND m.route IN ({','.join('?' * len(routes))})" if routes else " AND 0 = 1", routes


class Dispatch(SqliteBase):
    async def next_due_ms(self, claimant: Claimant | None = None) -> int | None:
        routes, parameters = _of_routes(claimant)

        def fn(c: sqlite3.Connection) -> int | None:
            # The first in due order, not MIN(): neither engine narrows an aggregate over this join to the index's
            # first entry, and PostgreSQL hash-joined every scheduled segment with every message on each call
            # (82 ms at 20,000 scheduled, after every commit; BENCHMARKS.md, "PostgreSQL: pool, async and two
            # nodes"). In order, the walk stops at the first segment of a route asked for.
            row = c.execute(
                "SELECT s.due_at AS due FROM segments s INDEXED BY segments_due JOIN messages m ON m.id = s.message"
                f" WHERE s.due_at IS NOT NULL{routes} ORDER BY s.due_at LIMIT 1", parameters
            ).fetchone()
            due = [] if row is None else [int(row["due"])]
            if claimant is None and self._unexpanded:  # messages not yet in full: `claim_due` expands the due
                (intake,) = c.execute("SELECT MIN(due_at) FROM intake").fetchone()
                due += [] if intake is None else [int(intake)]
            return min(due, default=None)

        # The intake does not say which routes its messages take: a claimant's read finds them in full.
        return await self._read(fn, reads_backlog=claimant is not None)

    async def claim_due(self, now_ms: int, limit: int, claimant: Claimant | None = None) -> list[Handoff]:
        """Expire what is past its validity and hand off up to `limit` due segments (committed before return)."""
        return await self._writer.write(
            lambda c: self._claim_due(c, now_ms, limit, claimant), reads_backlog=False, due_by=now_ms
        )

    def _claim_due(self, c: sqlite3.Connection, now_ms: int, limit: int, claimant: Claimant | None) -> list[Handoff]:
        handoffs: list[Handoff] = []
        routes, parameters = _of_routes(claimant)
        due = c.execute(
            _DUE_SQL.format(routes=routes) + self._dialect.skip_locked_segments, (now_ms, *parameters, limit)
        ).fetchall()
        lease_until = None if claimant is None else now_ms + claimant.lease_ms
        for row in map(_DueRow._make, due):
            segment = SegmentRow(row.id, row.message, State(row.state), row.sent_at, row.charge)
            if segment.state is State.PROCESSING and segment.sent_at is None:
                # A hand-off whose lease ended without an outcome: its node died (or hung) inside it. As after a
                # restart (`recover`), it is sent again, here by whichever node serves its route.
                self._change(c, segment, Event.INTERRUPTED, now_ms, due_at=now_ms)
                self._audit(c, now_ms, "handoff_interrupted", None, row.message_id,
                            f"segment={row.seq} resend=1 lease_ended=1")
                log.warning("hand-off lease ended, sending again message_id=%s segment=%d", row.message_id, row.seq)
                segment = self._segment(c, segment.rowid)
            if outcomes.expires_when_due(segment.state, now_ms, row.expires_at):
                self._change(c, segment, Event.VALIDITY_ENDED, now_ms, error_code=outcomes.expiry_error(row.error_code))
                continue
            self._change(c, segment, Event.HAND_OFF, now_ms, due_at=lease_until,
                         handoff=(now_ms, None if claimant is None else claimant.node))
            handoffs.append(
                Handoff(
                    segment_rowid=segment.rowid,
                    segment_id=f"{row.message_id}.{row.dest_index}.{row.seq}",
                    destination=row.destination,
                    data_coding=row.data_coding,
                    user_data=bytes(row.user_data),
                    udh=bytes(row.udh),
                    flash=bool(row.flash),
                    modem_group=row.modem_group,
                    expires_ms=row.expires_at,
                    attempts=row.attempts + 1,
                    route=row.route,
                    source_addr=row.source_addr,
                    source_addr_ton=row.source_addr_ton,
                    source_addr_npi=row.source_addr_npi,
                )
            )
        return handoffs

    async def renew_handoffs(self, node: str, segment_rowids: Sequence[int], until_ms: int) -> int:
        """Hold `node`'s hand-offs of these segments until `until_ms` (those still without an outcome and still its
        own: one whose lease ended and another node claimed is left alone). How many were renewed."""

        def op(c: sqlite3.Connection) -> int:
            renewed = 0
            for start in range(0, len(segment_rowids), _RENEW_CHUNK):
                chunk = segment_rowids[start:start + _RENEW_CHUNK]
                renewed += c.execute(
                    "UPDATE segments SET due_at = ? WHERE state = 4 AND sent_at IS NULL AND claimed_by = ?"
                    f" AND id IN ({','.join('?' * len(chunk))})", (until_ms, node, *chunk)
                ).rowcount
            return renewed

        return await self._writer.write(op)

    async def record_sent(
        self, segment_rowid: int, sent: Sent, report_deadline_ms: int, now_ms: int, retry_at_ms: int
    ) -> State:
        """Record the modem's TP-MR; a status report that overtook this write is applied now. Concurrent calls are
        written as one `_record_sent_batch`."""
        state: State = await self._writer.write_combined(
            self._record_sent_batch, (segment_rowid, sent, report_deadline_ms, now_ms, retry_at_ms)
        )
        return state

    def _record_sent_batch(
        self, c: sqlite3.Connection, items: Sequence[tuple[int, Sent, int, int, int]]
    ) -> list[State]:
        return [self._record_sent(c, *item) for item in items]

    def _record_sent(
        self, c: sqlite3.Connection, segment_rowid: int, sent: Sent, report_deadline_ms: int, now_ms: int,
        retry_at_ms: int,
    ) -> State:
        row = c.execute(
            f"SELECT {SEGMENT_COLUMNS}, handoff_at, destination FROM segments WHERE id = ?", (segment_rowid,)
        ).fetchone()
        segment = SegmentRow.of(row)
        state = self._change(c, segment, Event.SENT, now_ms, due_at=report_deadline_ms,
                             sent=(to_ms(sent.sent_at), sent.modem, sent.modem_msisdn, sent.tp_mr))
        self._writer.after_commit(self.notify_work)
        early = c.execute(
            "SELECT id, recipient, tp_st FROM status_reports INDEXED BY status_reports_unmatched"
            " WHERE segment IS NULL AND modem = ? AND tp_mr = ? AND received_at >= ? ORDER BY id",
            (sent.modem, sent.tp_mr, row["handoff_at"]),
        ).fetchall()
        for report in early:
            if state in FINAL or not same_handset(row["destination"], report["recipient"]):
                continue
            c.execute("UPDATE status_reports SET segment = ? WHERE id = ?", (segment_rowid, report["id"]))
            state = self._apply_report(c, self._segment(c, segment_rowid), report["tp_st"], now_ms, retry_at_ms)
        return state

    async def record_failure(
        self, segment_rowid: int, *, temporary: bool, error_code: int, retry_at_ms: int, now_ms: int
    ) -> State:
        """A temporary failure is due again at `retry_at_ms` (or at validity end, whichever is first)."""

        def op(c: sqlite3.Connection) -> State:
            segment = self._segment(c, segment_rowid)
            if not temporary:
                return self._change(c, segment, Event.PERMANENT_FAILURE, now_ms, error_code=error_code)
            due_at = outcomes.retry_due_ms(retry_at_ms, self._expires_at(c, segment))
            self._writer.after_commit(self.notify_work)
            return self._change(c, segment, Event.TEMPORARY_FAILURE, now_ms, due_at=due_at, error_code=error_code)

        return await self._writer.write(op)

    @staticmethod
    def _expires_at(c: sqlite3.Connection, segment: SegmentRow) -> int:
        expires_at: int = c.execute(
            "SELECT expires_at FROM messages WHERE id = ?", (segment.message,)
        ).fetchone()["expires_at"]
        return expires_at

    async def apply_status_report(
        self, report: StatusReport, now_ms: int, window_ms: int, retry_at_ms: int
    ) -> State | None:
        """Persist the report and apply it to the segment it matches; None when it matches none. Concurrent calls
        are written as one `_status_report_batch`."""
        state: State | None = await self._writer.write_combined(
            self._status_report_batch, (report, now_ms, window_ms, retry_at_ms)
        )
        return state

    def _status_report_batch(
        self, c: sqlite3.Connection, items: Sequence[tuple[StatusReport, int, int, int]]
    ) -> list[State | None]:
        return [self._status_report(c, *item) for item in items]

    def _status_report(
        self, c: sqlite3.Connection, report: StatusReport, now_ms: int, window_ms: int, retry_at_ms: int
    ) -> State | None:
        segment = self._match_report(c, report, now_ms - window_ms)
        c.execute(
            "INSERT INTO status_reports (received_at, modem, tp_mr, recipient, tp_st, discharge_time, segment)"
            " VALUES (?,?,?,?,?,?,?)",
            (
                now_ms,
                report.modem,
                report.tp_mr,
                report.recipient,
                report.tp_st,
                to_ms(report.discharge_time),
                None if segment is None else segment.rowid,
            ),
        )
        if segment is None:
            return None
        return self._apply_report(c, segment, report.tp_st, now_ms, retry_at_ms)

    def _apply_report(self, c: sqlite3.Connection, segment: SegmentRow, tp_st: int, now_ms: int, retry_at_ms: int) -> State:
        event = report_event(tp_st)
        due_at: int | None = None
        if event is Event.TEMPORARY_FAILURE:
            due_at = outcomes.retry_due_ms(retry_at_ms, self._expires_at(c, segment))
            self._writer.after_commit(self.notify_work)
        elif event is Event.NETWORK_ENROUTE:
            due_at = c.execute("SELECT due_at FROM segments WHERE id = ?", (segment.rowid,)).fetchone()["due_at"]
        return self._change(c, segment, event, now_ms, due_at=due_at, error_code=outcomes.report_error(event, tp_st))

    def _match_report(self, c: sqlite3.Connection, report: StatusReport, since_ms: int) -> SegmentRow | None:
        """The latest segment sent by that modem with that TP-MR to that recipient, still awaiting its report."""
        rows = c.execute(
            f"SELECT {SEGMENT_COLUMNS}, destination FROM segments INDEXED BY segments_awaiting_report"
            " WHERE modem = ? AND tp_mr = ? AND state = 4 AND sent_at IS NOT NULL AND sent_at >= ?"
            " ORDER BY sent_at DESC",
            (report.modem, report.tp_mr, since_ms),
        ).fetchall()
        for row in rows:
            if same_handset(row["destination"], report.recipient):
                return SegmentRow.of(row)
        return None

    async def recover(
        self, now_ms: int, *, fail_interrupted: bool = False, claimant: Claimant | None = None
    ) -> Recovery:
        """Apply the hand-off recovery rule (`sqlite_store`'s docstring); call once at start, before dispatching.
        `fail_interrupted`: end interrupted hand-offs UNDELIVERABLE (err 807) instead of sending them again.
        With a `claimant`, only its own hand-offs (and those of a run without one): other nodes' are still live."""
        own, parameters = ("", ()) if claimant is None else (
            " AND (s.claimed_by = ? OR s.claimed_by IS NULL)", (claimant.node,)
        )

        def op(c: sqlite3.Connection) -> Recovery:
            rows = c.execute(
                "SELECT s.id, s.message, s.state, s.sent_at, s.charge, m.account, m.message_id, s.seq"
                " FROM segments s INDEXED BY segments_in_flight JOIN messages m ON m.id = s.message"
                f" WHERE s.state = 4 AND s.sent_at IS NULL{own}", parameters
            ).fetchall()
            for row in rows:
                segment = SegmentRow.of(row)
                account, message_id, seq = row["account"], row["message_id"], row["seq"]
                if fail_interrupted:
                    self._change(c, segment, Event.PERMANENT_FAILURE, now_ms, error_code=_HANDOFF_INTERRUPTED)
                    self._audit(c, now_ms, "handoff_interrupted", account, message_id,
                                f"segment={seq} resend=0 error_code={_HANDOFF_INTERRUPTED}")
                    log.warning("hand-off interrupted by restart, failed without sending again message_id=%s"
                                " segment=%d error_code=%d", message_id, seq, _HANDOFF_INTERRUPTED)
                else:
                    self._change(c, segment, Event.INTERRUPTED, now_ms, due_at=now_ms)
                    self._audit(c, now_ms, "handoff_interrupted", account, message_id, f"segment={seq} resend=1")
                    log.warning("hand-off interrupted by restart, sending again message_id=%s segment=%d",
                                message_id, seq)
            if rows:
                self._new_work(c)
            open_segments: int = c.execute(
                "SELECT COUNT(*) AS open FROM segments WHERE due_at IS NOT NULL"
            ).fetchone()["open"]
            return Recovery(interrupted_handoffs=len(rows), failed_handoffs=len(rows) if fail_interrupted else 0,
                            open_segments=open_segments)

        return await self._writer.write(op)
