"""The SQLite message store: one file in WAL mode, one group-commit writer, a separate reader connection.

Every state change of a segment goes through `_change`, which applies the transition table, refunds what was
never sent, re-derives the message state and queues the receipts the ESME asked for, all inside the writer's
transaction, so a crash can never leave a state change without its receipt or its refund.

Recovery rule for hand-offs (DESIGN.md, issue 4): a hand-off is committed (PROCESSING, `handoff_at`, no
`sent_at`) before the modem gets the segment. If the process stops before the outcome is committed, the modem may
or may not have sent it, and without its TP-MR there is no way to ask. On start such segments go back to RETRY,
due at once, with an `handoff_interrupted` audit row and a warning: an acknowledged message is never lost, and a
duplicate is possible only for a segment that was inside one AT+CMGS exchange when the process died. With
`[messages] interrupted_handoff = "fail"` they end UNDELIVERABLE with err 807 instead (refunded, as nothing proves
they were sent): never a duplicate, but perhaps a message the handset did get reported as failed.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, TypeVar

import trio

from smsgw.config import StoreConfig
from smsgw.modem.seams import IncomingSms, Sent, StatusReport
from smsgw.numbers import handset_key, same_handset
from smsgw.pdu.constants import GatewayError
from smsgw.pdu.dlr import EXCERPT_LENGTH
from smsgw.scheduler.migrations import migrate
from smsgw.scheduler.policy import Rejection, check_recipients
from smsgw.scheduler.policy_store import SqlitePolicyFacts
from smsgw.scheduler.routing import format_micro
from smsgw.scheduler.model import (
    Address,
    CallbackRow,
    Handoff,
    InsufficientBalance,
    LastSent,
    LedgerEntry,
    MoCallback,
    MoRecord,
    NewMessage,
    NewSegment,
    NotCancellable,
    NoticeRow,
    OutboxEntry,
    ReceiptRecord,
    Recovery,
    StoredMessage,
    StoreUnavailable,
)
from smsgw.scheduler.states import (
    FINAL,
    PENDING,
    Event,
    State,
    message_state,
    report_event,
    transition,
    wants_final_receipt,
    wants_intermediate_receipt,
)
from smsgw.scheduler.timing import to_ms
from smsgw.scheduler.writer import GroupCommitWriter

log = logging.getLogger(__name__)

T = TypeVar("T")

EXPIRED_ERROR: Final = 0x46  # TP-Status "validity period expired"
_SYNCHRONOUS: Final = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
_INSUFFICIENT_BALANCE: Final = int(GatewayError.INSUFFICIENT_BALANCE)
_HANDOFF_INTERRUPTED: Final = int(GatewayError.HANDOFF_INTERRUPTED)
_RESENT: Final = "resent"  # audit event: a message re-submitted by `smsgw resend` (detail "as=<new id>")
_PENDING_SQL: Final = ",".join(str(int(s)) for s in PENDING)


@dataclass(frozen=True, slots=True)
class SegmentRow:
    rowid: int
    message: int
    state: State
    sent_at: int | None
    charge: int


class SqliteStore:
    """Use `async with open_store(path, config) as store:`, which runs migrations and the writer task."""

    def __init__(
        self,
        path: str,
        config: StoreConfig,
        connections: tuple[sqlite3.Connection, sqlite3.Connection],
        policy_facts: SqlitePolicyFacts,
    ):
        self.path = path
        self._writer_connection, self._reader = connections
        self._policy_facts = policy_facts
        # The recipient rules of `accept`, read in the writer's own transaction.
        self._accept_facts = SqlitePolicyFacts.reading(self._writer_connection)
        self._read_lock = trio.Lock()
        self._writer = GroupCommitWriter(
            self._writer_connection, max_batch=config.writer_max_batch, queue_size=config.writer_queue_size
        )
        self._outbox_events: dict[str, trio.Event] = {}
        self._work_event = trio.Event()

    @property
    def writer(self) -> GroupCommitWriter:
        return self._writer

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self._writer.run(task_status=task_status)

    def close(self) -> None:
        self._writer_connection.close()
        self._reader.close()
        self._policy_facts.close()

    def policy_facts(self) -> SqlitePolicyFacts:
        """The message policy's recipient facts, in tables of their own in the same database file."""
        return self._policy_facts

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        async with self._read_lock:
            return await trio.to_thread.run_sync(fn, self._reader)

    # -- wake-ups ---------------------------------------------------------------------------------------------

    def work_event(self) -> trio.Event:
        """Set after a commit that made some segment due earlier than before; take it before looking."""
        return self._work_event

    def notify_work(self) -> None:
        self._work_event.set()
        self._work_event = trio.Event()

    def outbox_event(self, account: str) -> trio.Event:
        """Set when something may be offered to `account`; take it before fetching so no wake-up is lost."""
        return self._outbox_events.setdefault(account, trio.Event())

    def notify_outbox(self, account: str) -> None:
        event = self._outbox_events.pop(account, None)
        if event is not None:
            event.set()

    # -- acceptance -------------------------------------------------------------------------------------------

    async def accept(self, messages: Sequence[NewMessage]) -> tuple[bool, ...]:
        """Store and charge each message in order; False for one the balance could not cover. Within a
        submission of several destinations that is otherwise accepted, that one is kept REJECTED with err 800,
        uncharged and without a receipt, for `smsgw resend`; a submission refused whole stores nothing.

        A message with `check_recipient` whose recipient opted out of its account, or (promotional) is on the
        do-not-call register without consent, is kept REJECTED with that err code, uncharged, its receipt queued
        if asked for.

        Concurrent calls are combined by the writer into one `_accept_batch` (executemany over all of them).
        """
        try:
            accepted: tuple[bool, ...] = await self._writer.write_combined(self._accept_batch, messages)
        except sqlite3.Error as exc:  # e.g. a message_id collision: refuse the submission, keep serving
            raise StoreUnavailable(f"acceptance failed: {exc}") from exc
        return accepted

    def _accept_batch(
        self, c: sqlite3.Connection, requests: Sequence[Sequence[NewMessage]]
    ) -> list[tuple[bool, ...]]:
        requests = self._apply_recipient_rules(requests)
        # Balances are checked and debited in memory inside the writer's transaction: the single writer makes
        # this the serial order, so concurrent submissions can never overdraw.
        balances = {
            account: self._balance(c, account)
            for account in {m.account for request in requests for m in request if m.charge_micro}
        }
        # Explicit rowids let segments reference their message without a round trip per message.
        (next_rowid,) = c.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM messages").fetchone()
        message_rows: list[tuple[Any, ...]] = []
        segment_rows: list[tuple[Any, ...]] = []
        ledger_rows: list[tuple[Any, ...]] = []
        rejected: list[tuple[int, int]] = []  # (message rowid, submitted_ms)
        unpaid: list[tuple[int, int, int]] = []  # (error_code, final_at, message rowid)
        results: list[tuple[bool, ...]] = []
        for request in requests:
            flags: list[bool] = []
            paid: list[bool] = []
            for message in request:
                charge = message.charge_micro
                if not charge:
                    paid.append(True)
                    continue
                is_paid = balances[message.account] >= charge
                paid.append(is_paid)
                if is_paid:
                    balances[message.account] -= charge
                    ledger_rows.append(
                        (message.account, message.submitted_ms, -charge, balances[message.account], message.message_id)
                    )
            # A refused submission leaves nothing stored (DESIGN.md). In a submit_multi that is acknowledged, a
            # destination the balance could not cover belongs to that message: it is kept REJECTED err 800,
            # uncharged and without a receipt, for `smsgw resend` (a resend's own unpaid copy is not kept twice).
            acknowledged = any(paid)
            for message, is_paid in zip(request, paid):
                if not is_paid:
                    if acknowledged and message.resends is None:
                        message_rows.append(_message_row(next_rowid, message, int(State.REJECTED), charged=0))
                        segment_rows.extend(
                            (next_rowid, seq, message.destination.addr, segment.data_coding, segment.udh,
                             segment.user_data, int(State.REJECTED), None, 0, _INSUFFICIENT_BALANCE,
                             message.submitted_ms)
                            for seq, segment in enumerate(message.segments)
                        )
                        unpaid.append((_INSUFFICIENT_BALANCE, message.submitted_ms, next_rowid))
                        next_rowid += 1
                    flags.append(False)
                    continue
                state = int(State.SCHEDULED if message.start_ms > message.submitted_ms else State.ACCEPTED)
                message_rows.append(_message_row(next_rowid, message, state))
                # A rejected message's segments are final at once; `_update_message` below derives its state.
                segment_state, due_at = (
                    (int(State.REJECTED), None) if message.rejected_error else (state, message.start_ms)
                )
                segment_rows.extend(
                    (next_rowid, seq, message.destination.addr, segment.data_coding, segment.udh, segment.user_data,
                     segment_state, due_at, message.price_per_segment_micro, message.rejected_error,
                     message.submitted_ms if message.rejected_error else None)
                    for seq, segment in enumerate(message.segments)
                )
                if message.rejected_error:
                    rejected.append((next_rowid, message.submitted_ms))
                if message.resends is not None:
                    self._audit(c, message.submitted_ms, _RESENT, message.account, message.resends,
                                f"as={message.message_id}")
                next_rowid += 1
                flags.append(True)
            results.append(tuple(flags))
        _insert_rows(c, _MESSAGE_INSERT, message_rows)
        _insert_rows(c, _SEGMENT_INSERT, segment_rows)
        for rowid, at_ms in rejected:
            self._update_message(c, rowid, at_ms, intermediate=False)
        c.executemany("UPDATE messages SET error_code = ?, final_at = ? WHERE id = ?", unpaid)
        c.executemany(
            "INSERT INTO ledger (account, at, kind, amount, balance_after, message_id)"
            " VALUES (?, ?, 'charge', ?, ?, ?)",
            ledger_rows,
        )
        c.executemany("UPDATE accounts SET balance = ? WHERE name = ?", [(b, a) for a, b in balances.items()])
        if message_rows:
            self._writer.after_commit(self.notify_work)
        return results

    def _apply_recipient_rules(self, requests: Sequence[Sequence[NewMessage]]) -> Sequence[Sequence[NewMessage]]:
        """`requests` with each refused recipient's message priced at 0 and carrying its rule's err code: one
        query per kind of fact and account for the whole batch, in the acceptance transaction, so no rule change
        (a do-not-call import, an opt-out) lands between the check and the store."""
        checked: dict[str, list[NewMessage]] = {}
        for request in requests:
            for message in request:
                if message.check_recipient:
                    checked.setdefault(message.account, []).append(message)
        refused: dict[tuple[str, int], Rejection] = {}
        for account, messages in checked.items():
            recipients = [(m.destination.addr, m.promotional) for m in messages]
            for message, rejection in zip(
                messages, check_recipients(self._accept_facts, account, recipients), strict=True
            ):
                if rejection is not None:
                    log.info("rejected by policy message_id=%s account=%s err=%d reason=%s", message.message_id,
                             account, rejection.error_code, rejection.reason)
                    refused[message.message_id, message.dest_index] = rejection
        if not refused:
            return requests
        return [
            [
                replace(m, price_per_segment_micro=0, rejected_error=int(rejection.error_code))
                if (rejection := refused.get((m.message_id, m.dest_index))) is not None
                else m
                for m in request
            ]
            for request in requests
        ]

    # -- billing ----------------------------------------------------------------------------------------------

    @staticmethod
    def _balance(c: sqlite3.Connection, account: str) -> int:
        row = c.execute("SELECT balance FROM accounts WHERE name = ?", (account,)).fetchone()
        return 0 if row is None else int(row[0])

    def _ledger(
        self, c: sqlite3.Connection, account: str, kind: str, amount: int, now_ms: int, message_id: str | None, note: str
    ) -> int:
        c.execute(
            "INSERT INTO accounts (name, balance) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET balance = balance + excluded.balance",
            (account, amount),
        )
        balance = self._balance(c, account)
        c.execute(
            "INSERT INTO ledger (account, at, kind, amount, balance_after, message_id, note) VALUES (?,?,?,?,?,?,?)",
            (account, now_ms, kind, amount, balance, message_id, note),
        )
        return balance

    async def topup(self, account: str, amount_micro: int, now_ms: int, note: str = "") -> int:
        """Credit (or, negative, debit) an account as an operator; returns the new balance."""
        kind = "topup" if amount_micro >= 0 else "adjust"

        def op(c: sqlite3.Connection) -> int:
            balance = self._ledger(c, account, kind, amount_micro, now_ms, None, note)
            self._audit(c, now_ms, kind, account, None, f"amount={amount_micro} note={note}")
            return balance

        return await self._writer.write(op)

    async def transfer(
        self, from_account: str, to_account: str, amount_micro: int, now_ms: int, note: str = ""
    ) -> tuple[int, int]:
        """Move a positive amount between two accounts as an operator: a `transfer_out` row on one side and a
        `transfer_in` row on the other in one transaction; InsufficientBalance (nothing written) when it would
        overdraw `from_account`. Returns both new balances. Who may transfer to whom is `policy.check_transfer`."""
        if amount_micro <= 0:
            raise ValueError(f"a transfer moves a positive amount, got {format_micro(amount_micro)}")

        def op(c: sqlite3.Connection) -> tuple[int, int]:
            if self._balance(c, from_account) < amount_micro:
                raise InsufficientBalance(f"{from_account} has less than the {format_micro(amount_micro)} to transfer")
            sent = self._ledger(
                c, from_account, "transfer_out", -amount_micro, now_ms, None, f"to {to_account} {note}".rstrip()
            )
            received = self._ledger(
                c, to_account, "transfer_in", amount_micro, now_ms, None, f"from {from_account} {note}".rstrip()
            )
            self._audit(c, now_ms, "transfer", from_account, None, f"to={to_account} amount={amount_micro} note={note}")
            return sent, received

        return await self._writer.write(op)

    async def unpaid_messages(self, account: str, start_ms: int, end_ms: int) -> list[NewMessage]:
        """The account's messages submitted in [start_ms, end_ms) that the balance could not cover (REJECTED,
        err 800) and that no `smsgw resend` re-submitted yet, oldest first, as they were submitted."""

        def fn(c: sqlite3.Connection) -> list[NewMessage]:
            resent = {
                row[0]
                for row in c.execute(
                    "SELECT message_id FROM audit WHERE at >= ? AND event = ? AND account = ?",
                    (start_ms, _RESENT, account),
                )
            }
            rows = c.execute(
                "SELECT id, message_id, dest_index, service_type, source_addr, source_addr_ton, source_addr_npi,"
                " destination_addr, dest_addr_ton, dest_addr_npi, route, modem_group, esm_class, registered_delivery,"
                " data_coding, flash, gateway_split, text, submitted_at, start_at, expires_at FROM messages"
                " WHERE account = ? AND submitted_at >= ? AND submitted_at < ? AND state = ? AND error_code = ?"
                " ORDER BY id",
                (account, start_ms, end_ms, int(State.REJECTED), _INSUFFICIENT_BALANCE),
            ).fetchall()
            return [
                NewMessage(
                    message_id=row[1],
                    dest_index=row[2],
                    account=account,
                    service_type=row[3],
                    source=Address(row[4], row[5], row[6]),
                    destination=Address(row[7], row[8], row[9]),
                    route=row[10],
                    modem_group=row[11],
                    esm_class=row[12],
                    registered_delivery=row[13],
                    data_coding=row[14],
                    flash=bool(row[15]),
                    gateway_split=bool(row[16]),
                    text=row[17],
                    submitted_ms=row[18],
                    start_ms=row[19],
                    expires_ms=row[20],
                    price_per_segment_micro=0,
                    segments=tuple(
                        NewSegment(data_coding, bytes(user_data), bytes(udh))
                        for data_coding, user_data, udh in c.execute(
                            "SELECT data_coding, user_data, udh FROM segments WHERE message = ? ORDER BY seq",
                            (row[0],),
                        )
                    ),
                )
                for row in rows
                if row[1] not in resent
            ]

        return await self._read(fn)

    async def balance(self, account: str) -> int:
        return await self._read(lambda c: self._balance(c, account))

    async def ledger(self, account: str, limit: int) -> list[LedgerEntry]:
        def fn(c: sqlite3.Connection) -> list[LedgerEntry]:
            rows = c.execute(
                "SELECT at, kind, amount, balance_after, message_id, note FROM ledger WHERE account = ?"
                " ORDER BY id DESC LIMIT ?",
                (account, limit),
            ).fetchall()
            return [LedgerEntry(*row) for row in reversed(rows)]

        return await self._read(fn)

    @staticmethod
    def _audit(
        c: sqlite3.Connection, now_ms: int, event: str, account: str | None, message_id: str | None, detail: str
    ) -> None:
        c.execute(
            "INSERT INTO audit (at, event, account, message_id, detail) VALUES (?,?,?,?,?)",
            (now_ms, event, account, message_id, detail),
        )

    # -- state changes ----------------------------------------------------------------------------------------

    def _segment(self, c: sqlite3.Connection, rowid: int) -> SegmentRow:
        row = c.execute("SELECT id, message, state, sent_at, charge FROM segments WHERE id = ?", (rowid,)).fetchone()
        return SegmentRow(row[0], row[1], State(row[2]), row[3], row[4])

    def _change(
        self,
        c: sqlite3.Connection,
        segment: SegmentRow,
        event: Event,
        now_ms: int,
        *,
        due_at: int | None = None,
        error_code: int | None = None,
    ) -> State:
        new = transition(segment.state, event)
        final = new in FINAL
        c.execute(
            "UPDATE segments SET state = ?, due_at = ?, error_code = COALESCE(?, error_code), final_at = ?"
            " WHERE id = ?",
            (int(new), None if final else due_at, error_code, now_ms if final else None, segment.rowid),
        )
        if final and new is not State.DELIVERED and segment.sent_at is None and segment.charge:
            account, message_id = c.execute(
                "SELECT account, message_id FROM messages WHERE id = ?", (segment.message,)
            ).fetchone()
            self._ledger(c, account, "refund", segment.charge, now_ms, message_id, f"segment not sent: {new.name}")
        intermediate = event in (Event.TEMPORARY_FAILURE, Event.NETWORK_ENROUTE)
        if new is not segment.state or intermediate:  # the message's state follows only a segment's change
            self._update_message(c, segment.message, now_ms, intermediate=intermediate)
        return new

    def _update_message(self, c: sqlite3.Connection, rowid: int, now_ms: int, *, intermediate: bool) -> None:
        segments = c.execute(
            "SELECT state, error_code FROM segments WHERE message = ? ORDER BY seq", (rowid,)
        ).fetchall()
        derived = message_state(State(s) for s, _ in segments)
        row = c.execute(
            "SELECT state, registered_delivery, account, message_id, source_addr, source_addr_ton, source_addr_npi,"
            " destination_addr, dest_addr_ton, dest_addr_npi, submitted_at, segment_count, text, service_type"
            " FROM messages WHERE id = ?",
            (rowid,),
        ).fetchone()
        previous = State(row[0])
        registered_delivery = row[1]
        final = derived in FINAL
        error_code = next((e for s, e in segments if State(s) is derived and e), 0) if final else 0
        if derived is not previous:
            c.execute(
                "UPDATE messages SET state = ?, final_at = ?, error_code = ? WHERE id = ?",
                (int(derived), now_ms if final else None, error_code, rowid),
            )
        if final and derived is not previous:
            if not wants_final_receipt(registered_delivery, derived):
                return
        elif not (intermediate and wants_intermediate_receipt(registered_delivery)):
            return
        record = ReceiptRecord(
            message_id=row[3],
            source=Address(row[7], row[8], row[9]),
            destination=Address(row[4], row[5], row[6]),
            state=derived,
            error_code=error_code,
            submitted_ms=row[10],
            done_ms=now_ms,
            submitted_segments=row[11],
            delivered_segments=sum(1 for s, _ in segments if s == State.DELIVERED),
            text=row[12][:EXCERPT_LENGTH],  # all the receipt quotes: the outbox row stays small
            service_type=row[13],
        )
        self._outbox_add(c, row[2], "receipt", _encode_receipt(record), now_ms)

    def _outbox_add(self, c: sqlite3.Connection, account: str, kind: str, record: str, now_ms: int) -> None:
        c.execute(
            "INSERT INTO outbox (account, kind, record, created_at) VALUES (?,?,?,?)", (account, kind, record, now_ms)
        )
        self._writer.after_commit(lambda: self.notify_outbox(account))

    # -- the dispatcher's side --------------------------------------------------------------------------------

    async def next_due_ms(self) -> int | None:
        def fn(c: sqlite3.Connection) -> int | None:
            row = c.execute("SELECT MIN(due_at) FROM segments WHERE due_at IS NOT NULL").fetchone()
            return None if row[0] is None else int(row[0])

        return await self._read(fn)

    async def claim_due(self, now_ms: int, limit: int) -> list[Handoff]:
        """Expire what is past its validity and hand off up to `limit` due segments (committed before return)."""
        return await self._writer.write(lambda c: self._claim_due(c, now_ms, limit))

    def _claim_due(self, c: sqlite3.Connection, now_ms: int, limit: int) -> list[Handoff]:
        rows = c.execute(
            "SELECT s.id, s.message, s.state, s.sent_at, s.charge, s.seq, s.destination, s.data_coding, s.udh,"
            " s.user_data, s.attempts, s.error_code, m.message_id, m.dest_index, m.flash, m.modem_group,"
            " m.expires_at FROM segments s INDEXED BY segments_due JOIN messages m ON m.id = s.message"
            " WHERE s.due_at <= ? ORDER BY s.due_at LIMIT ?",
            (now_ms, limit),
        ).fetchall()
        handoffs: list[Handoff] = []
        for row in rows:
            segment = SegmentRow(row[0], row[1], State(row[2]), row[3], row[4])
            expires_at = row[16]
            if segment.state is State.PROCESSING or now_ms >= expires_at:
                self._change(c, segment, Event.VALIDITY_ENDED, now_ms, error_code=row[11] or EXPIRED_ERROR)
                continue
            self._change(c, segment, Event.HAND_OFF, now_ms)
            c.execute(
                "UPDATE segments SET handoff_at = ?, attempts = attempts + 1 WHERE id = ?", (now_ms, segment.rowid)
            )
            handoffs.append(
                Handoff(
                    segment_rowid=segment.rowid,
                    segment_id=f"{row[12]}.{row[13]}.{row[5]}",
                    destination=row[6],
                    data_coding=row[7],
                    user_data=bytes(row[9]),
                    udh=bytes(row[8]),
                    flash=bool(row[14]),
                    modem_group=row[15],
                    expires_ms=expires_at,
                    attempts=row[10] + 1,
                )
            )
        return handoffs

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
        rowid, message, old_state, sent_at, charge, handoff_at, destination = c.execute(
            "SELECT id, message, state, sent_at, charge, handoff_at, destination FROM segments WHERE id = ?",
            (segment_rowid,),
        ).fetchone()
        segment = SegmentRow(rowid, message, State(old_state), sent_at, charge)
        c.execute(
            "UPDATE segments SET sent_at = ?, modem = ?, modem_msisdn = ?, tp_mr = ? WHERE id = ?",
            (to_ms(sent.sent_at), sent.modem, sent.modem_msisdn, sent.tp_mr, segment_rowid),
        )
        state = self._change(c, segment, Event.SENT, now_ms, due_at=report_deadline_ms)
        self._writer.after_commit(self.notify_work)
        early = c.execute(
            "SELECT id, recipient, tp_st FROM status_reports INDEXED BY status_reports_unmatched"
            " WHERE segment IS NULL AND modem = ? AND tp_mr = ? AND received_at >= ? ORDER BY id",
            (sent.modem, sent.tp_mr, handoff_at),
        ).fetchall()
        for report_id, recipient, tp_st in early:
            if state in FINAL or not same_handset(destination, recipient):
                continue
            c.execute("UPDATE status_reports SET segment = ? WHERE id = ?", (segment_rowid, report_id))
            state = self._apply_report(c, self._segment(c, segment_rowid), tp_st, now_ms, retry_at_ms)
        return state

    async def record_failure(
        self, segment_rowid: int, *, temporary: bool, error_code: int, retry_at_ms: int, now_ms: int
    ) -> State:
        """A temporary failure is due again at `retry_at_ms` (or at validity end, whichever is first)."""

        def op(c: sqlite3.Connection) -> State:
            segment = self._segment(c, segment_rowid)
            if not temporary:
                return self._change(c, segment, Event.PERMANENT_FAILURE, now_ms, error_code=error_code)
            (expires_at,) = c.execute("SELECT expires_at FROM messages WHERE id = ?", (segment.message,)).fetchone()
            self._writer.after_commit(self.notify_work)
            return self._change(
                c, segment, Event.TEMPORARY_FAILURE, now_ms, due_at=min(retry_at_ms, expires_at), error_code=error_code
            )

        return await self._writer.write(op)

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
            (expires_at,) = c.execute("SELECT expires_at FROM messages WHERE id = ?", (segment.message,)).fetchone()
            due_at = min(retry_at_ms, expires_at)
            self._writer.after_commit(self.notify_work)
        elif event is Event.NETWORK_ENROUTE:
            due_at = c.execute("SELECT due_at FROM segments WHERE id = ?", (segment.rowid,)).fetchone()[0]
        error = 0 if event is Event.DELIVERED else tp_st
        return self._change(c, segment, event, now_ms, due_at=due_at, error_code=error)

    def _match_report(self, c: sqlite3.Connection, report: StatusReport, since_ms: int) -> SegmentRow | None:
        """The latest segment sent by that modem with that TP-MR to that recipient, still awaiting its report."""
        rows = c.execute(
            "SELECT id, message, state, sent_at, charge, destination FROM segments INDEXED BY segments_awaiting_report"
            " WHERE modem = ? AND tp_mr = ? AND state = 4 AND sent_at IS NOT NULL AND sent_at >= ?"
            " ORDER BY sent_at DESC",
            (report.modem, report.tp_mr, since_ms),
        ).fetchall()
        for row in rows:
            if same_handset(row[5], report.recipient):
                return SegmentRow(row[0], row[1], State(row[2]), row[3], row[4])
        return None

    async def recover(self, now_ms: int, *, fail_interrupted: bool = False) -> Recovery:
        """Apply the hand-off recovery rule (module docstring); call once at start, before dispatching.
        `fail_interrupted`: end interrupted hand-offs UNDELIVERABLE (err 807) instead of sending them again."""

        def op(c: sqlite3.Connection) -> Recovery:
            rows = c.execute(
                "SELECT s.id, s.message, s.state, s.sent_at, s.charge, m.account, m.message_id, s.seq"
                " FROM segments s INDEXED BY segments_in_flight JOIN messages m ON m.id = s.message"
                " WHERE s.state = 4 AND s.sent_at IS NULL"
            ).fetchall()
            for row in rows:
                segment = SegmentRow(row[0], row[1], State(row[2]), row[3], row[4])
                if fail_interrupted:
                    self._change(c, segment, Event.PERMANENT_FAILURE, now_ms, error_code=_HANDOFF_INTERRUPTED)
                    self._audit(c, now_ms, "handoff_interrupted", row[5], row[6],
                                f"segment={row[7]} resend=0 error_code={_HANDOFF_INTERRUPTED}")
                    log.warning("hand-off interrupted by restart, failed without sending again message_id=%s"
                                " segment=%d error_code=%d", row[6], row[7], _HANDOFF_INTERRUPTED)
                else:
                    self._change(c, segment, Event.INTERRUPTED, now_ms, due_at=now_ms)
                    self._audit(c, now_ms, "handoff_interrupted", row[5], row[6], f"segment={row[7]} resend=1")
                    log.warning("hand-off interrupted by restart, sending again message_id=%s segment=%d",
                                row[6], row[7])
            if rows:
                self._writer.after_commit(self.notify_work)
            (open_segments,) = c.execute("SELECT COUNT(*) FROM segments WHERE due_at IS NOT NULL").fetchone()
            return Recovery(interrupted_handoffs=len(rows), failed_handoffs=len(rows) if fail_interrupted else 0,
                            open_segments=open_segments)

        return await self._writer.write(op)

    # -- ESME operations on stored messages -------------------------------------------------------------------

    async def find(self, account: str, message_id: str) -> list[StoredMessage]:
        return await self._read(lambda c: self._find(c, account, message_id))

    def _find(self, c: sqlite3.Connection, account: str, message_id: str) -> list[StoredMessage]:
        rows = c.execute(
            "SELECT id, message_id, dest_index, account, source_addr, source_addr_ton, source_addr_npi,"
            " destination_addr, dest_addr_ton, dest_addr_npi, state, submitted_at, final_at, error_code,"
            " segment_count, charged, route, data_coding, esm_class, start_at, expires_at FROM messages"
            " WHERE message_id = ? AND account = ? ORDER BY dest_index",
            (message_id, account),
        ).fetchall()
        found = []
        for row in rows:
            states = tuple(
                State(s) for (s,) in c.execute("SELECT state FROM segments WHERE message = ? ORDER BY seq", (row[0],))
            )
            found.append(
                StoredMessage(
                    message_id=row[1],
                    dest_index=row[2],
                    account=row[3],
                    source=Address(row[4], row[5], row[6]),
                    destination=Address(row[7], row[8], row[9]),
                    state=State(row[10]),
                    submitted_ms=row[11],
                    final_ms=row[12],
                    error_code=row[13],
                    segment_count=row[14],
                    charged_micro=row[15],
                    segment_states=states,
                    route=row[16],
                    data_coding=row[17],
                    esm_class=row[18],
                    start_ms=row[19],
                    expires_ms=row[20],
                )
            )
        return found

    async def cancel(
        self, account: str, message_id: str | None, source_addr: str, destination_addr: str, now_ms: int
    ) -> int:
        """Cancel every matching message not yet handed off; NotCancellable if none matches or any is too late.

        With a message_id: that message (all its destinations, or the one `destination_addr` names). Without: every
        open message of the account from `source_addr` to `destination_addr` (SMPP 3.4 4.9.1).
        """

        def op(c: sqlite3.Connection) -> int:
            if message_id is not None:
                rows = c.execute(
                    "SELECT id, destination_addr FROM messages WHERE message_id = ? AND account = ?",
                    (message_id, account),
                ).fetchall()
                rowids = [r for r, dest in rows if not destination_addr or same_handset(dest, destination_addr)]
            else:
                rowids = [
                    r
                    for (r,) in c.execute(
                        "SELECT id FROM messages WHERE account = ? AND destination_addr = ? AND source_addr = ?"
                        " AND final_at IS NULL",
                        (account, destination_addr, source_addr),
                    )
                ]
            if not rowids:
                raise NotCancellable("no such message")
            segments = [
                SegmentRow(r[0], r[1], State(r[2]), r[3], r[4])
                for rowid in rowids
                for r in c.execute(
                    "SELECT id, message, state, sent_at, charge FROM segments WHERE message = ?", (rowid,)
                )
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
            row = c.execute(
                "SELECT id, destination_addr, charged, start_at, expires_at FROM messages"
                " WHERE message_id = ? AND account = ?",
                (message_id, account),
            ).fetchall()
            if len(row) != 1:
                raise NotCancellable("no such message" if not row else "submit_multi messages cannot be replaced")
            rowid, destination, charged, start_at, expires_at = row[0]
            states = c.execute("SELECT state, handoff_at FROM segments WHERE message = ?", (rowid,)).fetchall()
            if any(State(s) not in (State.ACCEPTED, State.SCHEDULED) or h is not None for s, h in states):
                raise NotCancellable("already handed off or final")
            if window is not None:
                start_at, expires_at = window
            state = State.SCHEDULED if start_at > now_ms else State.ACCEPTED
            if segments is not None:
                new_charge = price_per_segment_micro * len(segments)
                difference = new_charge - charged
                if difference > 0 and self._balance(c, account) < difference:
                    raise InsufficientBalance("balance does not cover the replacement")
                if difference:
                    kind = "charge" if difference > 0 else "refund"
                    self._ledger(c, account, kind, -difference, now_ms, message_id, "replace_sm")
                c.execute("DELETE FROM segments WHERE message = ?", (rowid,))
                c.executemany(
                    "INSERT INTO segments (message, seq, destination, data_coding, udh, user_data, state, due_at,"
                    " charge) VALUES (?,?,?,?,?,?,?,?,?)",
                    [
                        (rowid, seq, destination, s.data_coding, s.udh, s.user_data, int(state), start_at,
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
            self._writer.after_commit(self.notify_work)

        await self._writer.write(op)

    # -- MO and the outbox ------------------------------------------------------------------------------------

    async def last_sent_to(self, handset: str, modem: str, modem_msisdn: str, since_ms: int) -> LastSent | None:
        """Who last sent a segment to `handset` from that modem (by name, or by its SIM's number) since `since_ms`."""

        def fn(c: sqlite3.Connection) -> LastSent | None:
            row = c.execute(
                "SELECT m.account, m.source_addr, m.source_addr_ton, m.source_addr_npi, s.sent_at"
                " FROM segments s INDEXED BY segments_sent_to JOIN messages m ON m.id = s.message"
                " WHERE s.destination = ? AND s.sent_at IS NOT NULL AND s.sent_at >= ?"
                " AND (s.modem = ? OR (s.modem_msisdn = ? AND s.modem_msisdn != ''))"
                " ORDER BY s.sent_at DESC, s.id DESC LIMIT 1",
                (handset_key(handset), since_ms, modem, modem_msisdn),
            ).fetchone()
            return None if row is None else LastSent(row[0], Address(row[1], row[2], row[3]), row[4])

        return await self._read(fn)

    async def store_mo(
        self, sms: IncomingSms, account: str | None, recipient: str, now_ms: int, *, callback: bool = False
    ) -> int:
        """Persist an incoming SMS; with an account it also waits in that account's outbox, addressed to
        `recipient` (the sender ID the handset answered, or the modem's MSISDN), and with `callback` its HTTP
        callback is pending, due at once (same transaction: a crash loses neither without the other)."""

        def op(c: sqlite3.Connection) -> int:
            received_ms = to_ms(sms.received_at)
            cursor = c.execute(
                "INSERT INTO mo_messages (received_at, modem, modem_msisdn, originator, data_coding, text, user_data,"
                " flash, incomplete, account) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    now_ms,
                    sms.modem,
                    sms.modem_msisdn,
                    sms.originator,
                    sms.data_coding,
                    sms.text,
                    sms.user_data,
                    int(sms.flash),
                    int(sms.incomplete),
                    account,
                ),
            )
            rowid = int(cursor.lastrowid or 0)
            if account is not None:
                record = MoRecord(
                    mo_rowid=rowid,
                    originator=sms.originator,
                    recipient=recipient,
                    text=sms.text,
                    data_coding=sms.data_coding,
                    user_data=sms.user_data,
                    received_ms=received_ms,
                    flash=sms.flash,
                )
                self._outbox_add(c, account, "mo", _encode_mo(record), now_ms)
                if callback:
                    c.execute(
                        "INSERT INTO mo_callbacks (mo, account, recipient, received_at, state, created_at,"
                        " next_try_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                        (rowid, account, recipient, received_ms, now_ms, now_ms),
                    )
            return rowid

        return await self._writer.write(op)

    async def outbox_fetch(self, account: str, exclude: frozenset[str], limit: int) -> list[OutboxEntry]:
        def fn(c: sqlite3.Connection) -> list[OutboxEntry]:
            entries: list[OutboxEntry] = []
            for rowid, kind, record in c.execute(
                "SELECT id, kind, record FROM outbox WHERE account = ? ORDER BY id", (account,)
            ):
                if str(rowid) in exclude:
                    continue
                entries.append(OutboxEntry(str(rowid), account, _decode(kind, record)))
                if len(entries) >= limit:
                    break
            return entries

        return await self._read(fn)

    async def outbox_delete(self, item_ids: Sequence[str]) -> list[bool]:
        """Delete taken items in the writer's next commit, ahead of queued writes (a crash before it commits
        offers them again); for each, whether it was still there."""
        try:
            deleted: list[bool] = await self._writer.write_first(_outbox_delete_batch, item_ids)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"outbox delete failed: {exc}") from exc
        return deleted

    async def handset_wants_normal_sms(self, number: str) -> bool:
        """Whether `number` switched its MO notices from flash to normal SMS."""

        def fn(c: sqlite3.Connection) -> bool:
            row = c.execute("SELECT normal_sms FROM handset_notices WHERE number = ?", (number,)).fetchone()
            return row is not None and bool(row[0])

        return await self._read(fn)

    async def toggle_handset_notices(self, number: str, now_ms: int) -> bool:
        """Switch `number`'s MO notices between flash and normal SMS; True when they are now normal SMS."""

        def op(c: sqlite3.Connection) -> bool:
            (normal,) = c.execute(
                "INSERT INTO handset_notices (number, normal_sms, changed_at) VALUES (?, 1, ?)"
                " ON CONFLICT (number) DO UPDATE SET normal_sms = 1 - normal_sms, changed_at = excluded.changed_at"
                " RETURNING normal_sms",
                (number, now_ms),
            ).fetchone()
            return bool(normal)

        return await self._writer.write(op)

    # -- MO callbacks and handset notices ---------------------------------------------------------------------

    async def mo_callbacks_due(
        self, now_ms: int, busy: frozenset[int], full_accounts: frozenset[str], limit: int
    ) -> list[MoCallback]:
        """Pending callbacks due by `now_ms`, earliest first, leaving out those in `busy` (rowids being posted)
        and those of `full_accounts` (accounts with as many posts in flight as they may have)."""

        def fn(c: sqlite3.Connection) -> list[MoCallback]:
            where, parameters = _pending_callbacks(busy, full_accounts)
            rows = c.execute(
                "SELECT cb.id, cb.account, cb.mo, mo.originator, cb.recipient, mo.text, mo.data_coding,"
                " cb.received_at, cb.created_at, cb.attempts FROM mo_callbacks cb JOIN mo_messages mo ON mo.id = cb.mo"
                f" WHERE {where} AND cb.next_try_at <= ? ORDER BY cb.next_try_at, cb.id LIMIT ?",
                (*parameters, now_ms, limit),
            )
            return [MoCallback(*row) for row in rows]

        return await self._read(fn)

    async def mo_callback_next_ms(self, busy: frozenset[int], full_accounts: frozenset[str]) -> int | None:
        """When the next pending callback outside `busy` and `full_accounts` is due; None when there is none."""

        def fn(c: sqlite3.Connection) -> int | None:
            where, parameters = _pending_callbacks(busy, full_accounts)
            (due,) = c.execute(f"SELECT MIN(cb.next_try_at) FROM mo_callbacks cb WHERE {where}", parameters).fetchone()
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
                "SELECT cb.id, cb.mo, cb.account, mo.originator, cb.state, cb.attempts, cb.last_error, cb.created_at,"
                " cb.next_try_at FROM mo_callbacks cb JOIN mo_messages mo ON mo.id = cb.mo"
                " WHERE (?1 IS NULL OR cb.state = ?1) AND (?2 IS NULL OR cb.account = ?2) ORDER BY cb.id LIMIT ?3",
                (state, account, limit),
            )
            return [CallbackRow(*row) for row in rows]

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

    async def record_notice(
        self, handset: str, message_id: str, purpose: str, text: str, now_ms: int, expires_ms: int, *,
        since_ms: int, limit: int,
    ) -> bool:
        """Record a notice about to be sent to `handset`, unless `limit` (0: none) notices went to it since
        `since_ms`; False (nothing written) when the limit is reached."""

        def op(c: sqlite3.Connection) -> bool:
            if limit > 0:
                (count,) = c.execute(
                    "SELECT COUNT(*) FROM notices_sent WHERE handset = ? AND at > ?", (handset, since_ms)
                ).fetchone()
                if count >= limit:
                    return False
            c.execute(
                "INSERT INTO notices_sent (handset, message_id, purpose, text, at, expires_at) VALUES (?,?,?,?,?,?)",
                (handset, message_id, purpose, text, now_ms, expires_ms),
            )
            return True

        return await self._writer.write(op)

    async def notices_listing(self, handset: str | None, limit: int) -> list[NoticeRow]:
        """The latest `limit` notices (to `handset` when given, in international digits), oldest first."""

        def fn(c: sqlite3.Connection) -> list[NoticeRow]:
            rows = c.execute(
                "SELECT * FROM (SELECT n.id, n.handset, n.at, n.purpose, n.message_id, m.account, m.state, n.text,"
                " COALESCE(h.normal_sms, 0) FROM notices_sent n"
                " LEFT JOIN messages m ON m.message_id = n.message_id AND m.dest_index = 0"
                " LEFT JOIN handset_notices h ON h.number = n.handset"
                " WHERE ?1 IS NULL OR n.handset = ?1 ORDER BY n.id DESC LIMIT ?2) ORDER BY id",
                (handset, limit),
            )
            return [
                NoticeRow(rowid, handset_, at, purpose, message_id, account, state, text, bool(normal_sms))
                for rowid, handset_, at, purpose, message_id, account, state, text, normal_sms in rows
            ]

        return await self._read(fn)

    async def is_notice_echo(self, mo_rowid: int, grace_ms: int) -> bool:
        """Whether MO `mo_rowid` is one of the gateway's own notices come back: the modem that received it has the
        number a notice with the same text went to, and that notice was still valid (`grace_ms` allowed)."""

        def fn(c: sqlite3.Connection) -> bool:
            row = c.execute(
                "SELECT 1 FROM mo_messages mo JOIN notices_sent n"
                " ON n.handset = handset_key(mo.modem_msisdn) AND n.text = mo.text"
                " WHERE mo.id = ? AND n.at <= mo.received_at AND n.expires_at + ? >= mo.received_at LIMIT 1",
                (mo_rowid, grace_ms),
            ).fetchone()
            return row is not None

        return await self._read(fn)

    # -- retention and export ---------------------------------------------------------------------------------

    async def purge(self, before_ms: int, batch: int) -> int:
        """Delete one batch of messages final before `before_ms` (with their segments and old reports)."""

        def op(c: sqlite3.Connection) -> int:
            rowids = [
                (r,)
                for (r,) in c.execute(
                    "SELECT id FROM messages INDEXED BY messages_final WHERE final_at < ? LIMIT ?", (before_ms, batch)
                )
            ]
            c.executemany("DELETE FROM segments WHERE message = ?", rowids)
            c.executemany("DELETE FROM messages WHERE id = ?", rowids)
            for table, column in (
                ("status_reports", "received_at"),
                ("mo_messages", "received_at"),
                ("audit", "at"),
                ("mo_callbacks", "created_at"),
                ("notices_sent", "at"),
            ):
                c.execute(
                    f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {column} < ? LIMIT ?)",
                    (before_ms, batch),
                )
            return len(rowids)

        return await self._writer.write(op)

    def history_rows(self, from_ms: int, to_ms_: int, account: str | None) -> Iterator[tuple[Any, ...]]:
        """Messages submitted in [from, to), oldest first, streamed from the reader connection (no Trio needed)."""
        sql = (
            "SELECT message_id, dest_index, account, source_addr, destination_addr, submitted_at, state, final_at,"
            " error_code, segment_count, charged, text FROM messages WHERE submitted_at >= ? AND submitted_at < ?"
        )
        parameters: tuple[Any, ...] = (from_ms, to_ms_)
        if account is not None:
            sql += " AND account = ?"
            parameters += (account,)
        yield from self._reader.execute(sql + " ORDER BY submitted_at, id", parameters)


_MESSAGE_INSERT: Final = (
    "INSERT INTO messages (id, message_id, dest_index, account, service_type, source_addr, source_addr_ton,"
    " source_addr_npi, destination_addr, dest_addr_ton, dest_addr_npi, route, modem_group, esm_class,"
    " registered_delivery, data_coding, flash, gateway_split, text, submitted_at, start_at, expires_at,"
    " state, segment_count, charged) VALUES "
)
_SEGMENT_INSERT: Final = (
    "INSERT INTO segments (message, seq, destination, data_coding, udh, user_data, state, due_at, charge,"
    " error_code, final_at) VALUES "
)
_INSERT_CHUNKS: Final = (256, 64, 16, 4, 1)


def _insert_rows(c: sqlite3.Connection, insert: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """`rows` inserted with multi-row VALUES statements: one sqlite3_step (which runs without the GIL) per chunk
    instead of one per row as `executemany` does, and a few fixed chunk sizes so the statements stay cached."""
    start = 0
    for chunk in _INSERT_CHUNKS:
        while len(rows) - start >= chunk:
            part = rows[start : start + chunk]
            c.execute(_values_statement(insert, chunk, len(part[0])), list(itertools.chain.from_iterable(part)))
            start += chunk


@functools.lru_cache(maxsize=32)
def _values_statement(insert: str, rows: int, columns: int) -> str:
    one = "(" + ",".join("?" * columns) + ")"
    return insert + ",".join([one] * rows)


def _message_row(rowid: int, message: NewMessage, state: int, *, charged: int | None = None) -> tuple[Any, ...]:
    return (
        rowid,
        message.message_id,
        message.dest_index,
        message.account,
        message.service_type,
        message.source.addr,
        # Plain ints: sqlite3 binds exact int/str/float without its adapter lookup, which an IntEnum costs ~1 us.
        int(message.source.ton),
        int(message.source.npi),
        message.destination.addr,
        int(message.destination.ton),
        int(message.destination.npi),
        message.route,
        message.modem_group,
        message.esm_class,
        message.registered_delivery,
        message.data_coding,
        int(message.flash),
        int(message.gateway_split),
        message.text,
        message.submitted_ms,
        message.start_ms,
        message.expires_ms,
        state,
        len(message.segments),
        message.charge_micro if charged is None else charged,
    )


def _pending_callbacks(busy: frozenset[int], full_accounts: frozenset[str]) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause (on `mo_callbacks cb`) of pending callbacks outside `busy` rowids and `full_accounts`."""
    where = "cb.state = 'pending'"
    if busy:
        where += f" AND cb.id NOT IN ({','.join('?' * len(busy))})"
    if full_accounts:
        where += f" AND cb.account NOT IN ({','.join('?' * len(full_accounts))})"
    return where, (*busy, *full_accounts)


def _encode_receipt(record: ReceiptRecord) -> str:
    return json.dumps(
        {
            "message_id": record.message_id,
            "source": [record.source.addr, record.source.ton, record.source.npi],
            "destination": [record.destination.addr, record.destination.ton, record.destination.npi],
            "state": int(record.state),
            "error_code": record.error_code,
            "submitted_ms": record.submitted_ms,
            "done_ms": record.done_ms,
            "submitted_segments": record.submitted_segments,
            "delivered_segments": record.delivered_segments,
            "text": record.text,
            "service_type": record.service_type,
        }
    )


def _encode_mo(record: MoRecord) -> str:
    return json.dumps(
        {
            "mo_rowid": record.mo_rowid,
            "originator": record.originator,
            "recipient": record.recipient,
            "text": record.text,
            "data_coding": record.data_coding,
            "user_data": record.user_data.hex(),
            "received_ms": record.received_ms,
            "flash": record.flash,
        }
    )


def _decode(kind: str, text: str) -> ReceiptRecord | MoRecord:
    data = json.loads(text)
    if kind == "mo":
        return MoRecord(**{**data, "user_data": bytes.fromhex(data["user_data"])})
    return ReceiptRecord(
        **{
            **data,
            "source": Address(*data["source"]),
            "destination": Address(*data["destination"]),
            "state": State(data["state"]),
        }
    )


def _sql_handset_key(address: str | None) -> str | None:
    return None if address is None else handset_key(address)


def connect(path: str, config: StoreConfig) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """Open the writer and reader connections and bring the schema up to date (blocking: call in a thread)."""
    synchronous = config.synchronous.upper()
    if synchronous not in _SYNCHRONOUS:
        raise ValueError(f"store.synchronous must be one of {sorted(_SYNCHRONOUS)}, got {config.synchronous!r}")

    def open_one() -> sqlite3.Connection:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=config.busy_timeout_s)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {synchronous}")
        # Each batch's SAVEPOINTs need a statement journal: in memory, not a temporary file created per batch.
        connection.execute("PRAGMA temp_store = MEMORY")
        # Queries that match a handset use the numbers module's key, not an SQL copy of the rule.
        connection.create_function("handset_key", 1, _sql_handset_key, deterministic=True)
        return connection

    writer = open_one()
    migrate(writer)
    return writer, open_one()


def _outbox_delete_batch(c: sqlite3.Connection, batches: list[Sequence[str]]) -> list[list[bool]]:
    return [[c.execute("DELETE FROM outbox WHERE id = ?", (int(i),)).rowcount > 0 for i in ids] for ids in batches]


@asynccontextmanager
async def open_store(path: str | Path, config: StoreConfig) -> AsyncIterator[SqliteStore]:
    """The store with its writer task running; closed (after pending writes finish) when the block exits."""
    connections = await trio.to_thread.run_sync(connect, str(path), config)
    facts = await trio.to_thread.run_sync(SqlitePolicyFacts.open, str(path), config.busy_timeout_s)
    store = SqliteStore(str(path), config, connections, facts)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            yield store
            nursery.cancel_scope.cancel()
    finally:
        store.close()
