"""Acceptance: a batch of submissions stored, charged and checked against the recipient rules in one transaction
of the group-commit writer. What is charged and what stays unpaid is `billing`'s decision; this writes the rows.

Messages with nothing to charge, on a store that keeps an intake (SQLite, `keep_intake`), are acknowledged after a
lighter commit: the writer's batch of them is committed as one `intake` row (the messages as plain tuples), and
their full rows (messages, segments, their indexes, the recipient rules' outcomes and receipts) are written by
`expand`, in a later transaction of the same writer (`writer.Backlog`: all of it before a write or read that may
read those rows, the rows due by then before a claim of due work, the rest when the writer is quiet). The intake
row alone is enough to finish the job after a kill -9: the store expands what is left when it opens. A charged message takes the full path at once, since its answer depends on the
balance, and so does every message while `INTAKE_LIMIT` messages wait in the intake.
"""

from __future__ import annotations

import functools
import logging
import pickle
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Final

from smsgw.pdu.constants import GatewayError
from smsgw.scheduler import billing
from smsgw.scheduler.ids import MessageIdGenerator
from smsgw.scheduler.model import Address, DlrRequest, NewMessage, NewSegment, StoreUnavailable
from smsgw.scheduler.policy import Rejection, check_recipients
from smsgw.scheduler.sqlite.base import SqliteBase, insert_ledger, insert_rows
from smsgw.scheduler.states import State

log = logging.getLogger(__name__)

INSUFFICIENT_BALANCE: Final = int(GatewayError.INSUFFICIENT_BALANCE)
RESENT: Final = "resent"  # audit event: a message re-submitted by `smsgw resend` (detail "as=<new id>")


class Accepting(SqliteBase):
    def keep_intake(self) -> None:
        """Acknowledge uncharged messages after an `intake` row's commit (module docstring); before `run`, in a
        worker thread (it reads how many messages wait in the intake). One process writes an SQLite store, so it
        alone has an intake to expand (other nodes of a PostgreSQL store could not read this one's)."""
        self._intake_kept = True
        # What a kill -9 left (of this process's last run, or of a gateway beside a command opening its store).
        waiting = dict(self._writer_connection.execute("SELECT format, SUM(messages) FROM intake GROUP BY format"))
        if set(waiting) - {INTAKE_FORMAT}:
            raise sqlite3.DatabaseError(
                f"{self.path}: intake rows of layout {max(waiting)}, this smsgw reads {INTAKE_FORMAT}: start the"
                " smsgw that wrote them once, to store their messages in full"
            )
        self._unexpanded = waiting.get(INTAKE_FORMAT, 0)
        self._writer.keep_backlog(self)

    async def accept(self, messages: Sequence[NewMessage]) -> tuple[bool, ...]:
        """Store and charge each message in order; False for one the balance could not cover. Within a
        submission of several destinations that is otherwise accepted, that one is kept REJECTED with err 800,
        uncharged and without a receipt, for `smsgw resend`; a submission refused whole stores nothing. A
        submission is the messages sharing a message_id: `messages` may hold several.

        A message with `check_recipient` whose recipient opted out of its account, or (promotional) is on the
        do-not-call register without consent, is kept REJECTED with that err code, uncharged, its receipt queued
        if asked for.

        Concurrent calls are combined by the writer into one `_accept_batch` (executemany over all of them), or
        with nothing to charge and an intake kept, into one intake row.
        """
        accepted: tuple[bool, ...]
        try:
            if (self._intake_kept and self._unexpanded < INTAKE_LIMIT
                    and not any(message.charge_micro for message in messages)):
                accepted = await self._writer.write_combined(self._intake_batch, messages, reads_backlog=False)
            else:
                # Reads no intake row either: the message rows it numbers after are the ones in full, and the
                # intake's are numbered when they are expanded.
                accepted = await self._writer.write_combined(self._accept_batch, messages, reads_backlog=False)
        except sqlite3.Error as exc:  # e.g. a message_id collision: refuse the submission, keep serving
            raise StoreUnavailable(f"acceptance failed: {exc}") from exc
        return accepted

    def _intake_batch(
        self, c: sqlite3.Connection, requests: Sequence[Sequence[NewMessage]]
    ) -> list[tuple[bool, ...]]:
        count = sum(len(request) for request in requests)
        due_ms = min(message.start_ms for request in requests for message in request)
        c.execute(
            "INSERT INTO intake (messages, due_at, format, batch) VALUES (?, ?, ?, ?)",
            (count, due_ms, INTAKE_FORMAT, pickle.dumps([[_packed(m) for m in request] for request in requests], 5)),
        )
        # Due now, the dispatcher's claim expands them at once; scheduled ahead, they wait for a quiet writer.
        self._new_work(c, due_ms)
        self._writer.after_commit(functools.partial(self._intake_added, count))
        return [(True,) * len(request) for request in requests]

    def _intake_added(self, count: int) -> None:
        self._unexpanded += count

    def _intake_left(self, count: int) -> None:
        self._unexpanded = count

    def waiting(self) -> int:
        return self._unexpanded

    def expand(self, c: sqlite3.Connection, limit: int | None, due_by: int | None = None) -> None:
        """The oldest intake rows holding about `limit` messages (None: all), or with `due_by` those holding a
        message due by then, written in full and deleted, in the writer's transaction."""
        sizes = c.execute("SELECT id, messages, due_at FROM intake ORDER BY id").fetchall()
        taken, chosen = 0, []
        for row in sizes:
            if limit is not None and taken >= limit:
                break
            if due_by is None or row["due_at"] <= due_by:
                taken += row["messages"]
                chosen.append((row["id"],))
        if chosen:
            requests: list[list[NewMessage]] = []
            for (rowid,) in chosen:
                (batch,) = c.execute("SELECT batch FROM intake WHERE id = ?", (rowid,)).fetchone()
                requests.extend([_unpacked(fields) for fields in request] for request in pickle.loads(batch))
            self._expand_requests(c, requests)
            c.executemany("DELETE FROM intake WHERE id = ?", chosen)
        self._writer.after_commit(
            functools.partial(self._intake_left, sum(row["messages"] for row in sizes) - taken)
        )

    def _expand_requests(self, c: sqlite3.Connection, requests: list[list[NewMessage]]) -> None:
        try:
            with _savepoint(c):
                self._accept_batch(c, requests, announce=False)
            return
        except sqlite3.IntegrityError:
            pass  # a message_id taken already: find which submission's, below
        for request in requests:
            try:
                with _savepoint(c):
                    self._accept_batch(c, [request], announce=False)
            except sqlite3.IntegrityError as exc:
                # Acknowledged already, so it is kept under a new id rather than lost. Ids never repeat within a
                # process; this takes a clock set back across a restart and the same 31 random bits.
                renamed = [replace(m, message_id=_RENAMING.next(m.submitted_ms)) for m in request]
                log.error("accepted message_id taken, stored under a new one message_id=%s new_message_id=%s"
                          " error=%s", request[0].message_id, renamed[0].message_id, exc)
                self._accept_batch(c, [renamed], announce=False)

    def _accept_batch(
        self, c: sqlite3.Connection, requests: Sequence[Sequence[NewMessage]], *, announce: bool = True
    ) -> list[tuple[bool, ...]]:
        requests = self._apply_recipient_rules(requests)
        # Balances are read inside the writer's transaction: the single writer makes this the serial order, and
        # with several nodes the rows stay locked until commit, taken in a fixed order so no two nodes deadlock.
        balances = {
            account: self._locked_balance(c, account)
            for account in sorted({m.account for request in requests for m in request if m.charge_micro})
        }
        rowids = self._message_ids(c, sum(len(request) for request in requests))
        message_rows: list[tuple[Any, ...]] = []
        segment_rows: list[tuple[Any, ...]] = []
        ledger_rows: list[billing.LedgerRow] = []
        rejected: list[tuple[int, int]] = []  # (message rowid, submitted_ms)
        dlr_rows: list[tuple[Any, ...]] = []
        unpaid: list[tuple[int, int, int]] = []  # (error_code, final_at, message rowid)
        results: list[tuple[bool, ...]] = []
        due_at_ms: list[int] = []  # of the segments this batch queued
        for request in requests:
            paid = billing.charge_request(balances, request, ledger_rows)
            acknowledged = billing.acknowledged(request, paid)
            for message, is_paid in zip(request, paid):
                if not is_paid and not billing.keeps_unpaid(acknowledged, message):
                    continue
                rowid = next(rowids)
                if not is_paid:
                    message_rows.append(_message_row(rowid, message, int(State.REJECTED), charged=0))
                    segment_rows.extend(
                        (rowid, seq, message.destination.addr, segment.data_coding, segment.udh,
                         segment.user_data, int(State.REJECTED), None, 0, INSUFFICIENT_BALANCE,
                         message.submitted_ms)
                        for seq, segment in enumerate(message.segments)
                    )
                    unpaid.append((INSUFFICIENT_BALANCE, message.submitted_ms, rowid))
                    continue
                state = int(State.SCHEDULED if message.start_ms > message.submitted_ms else State.ACCEPTED)
                message_rows.append(_message_row(rowid, message, state))
                # A rejected message's segments are final at once; `_update_message` below derives its state.
                segment_state, due_at = (
                    (int(State.REJECTED), None) if message.rejected_error else (state, message.start_ms)
                )
                segment_rows.extend(
                    (rowid, seq, message.destination.addr, segment.data_coding, segment.udh, segment.user_data,
                     segment_state, due_at, message.price_per_segment_micro, message.rejected_error,
                     message.submitted_ms if message.rejected_error else None)
                    for seq, segment in enumerate(message.segments)
                )
                if message.dlr is not None:
                    dlr = message.dlr  # its client_ref is the message's own column
                    dlr_rows.append((rowid, dlr.url, dlr.format, dlr.method, dlr.mask))
                if message.rejected_error:
                    rejected.append((rowid, message.submitted_ms))
                else:
                    due_at_ms.append(message.start_ms)
                if message.resends is not None:
                    self._audit(c, message.submitted_ms, RESENT, message.account, message.resends,
                                f"as={message.message_id}")
            results.append(tuple(paid))
        insert_rows(c, _MESSAGE_INSERT, message_rows)
        insert_rows(c, _SEGMENT_INSERT, segment_rows)
        if dlr_rows:  # before the rejected ones' state change below, which reports to them
            c.executemany(
                "INSERT INTO dlr_requests (message, url, format, method, mask) VALUES (?,?,?,?,?)",
                dlr_rows,
            )
        for rowid, at_ms in rejected:
            self._update_message(c, rowid, at_ms, intermediate=False)
        c.executemany("UPDATE messages SET error_code = ?, final_at = ? WHERE id = ?", unpaid)
        insert_ledger(c, ledger_rows)
        c.executemany("UPDATE accounts SET balance = ? WHERE name = ?", [(b, a) for a, b in balances.items()])
        if due_at_ms and announce:  # an intake's expansion: its intake commit announced its work
            self._new_work(c, min(due_at_ms))
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


_MESSAGE_INSERT: Final = (
    "INSERT INTO messages (id, message_id, dest_index, account, service_type, source_addr, source_addr_ton,"
    " source_addr_npi, destination_addr, dest_addr_ton, dest_addr_npi, route, modem_group, esm_class,"
    " registered_delivery, data_coding, flash, gateway_split, text, submitted_at, start_at, expires_at,"
    " state, segment_count, charged, client_ref) VALUES "
)
_SEGMENT_INSERT: Final = (
    "INSERT INTO segments (message, seq, destination, data_coding, udh, user_data, state, due_at, charge,"
    " error_code, final_at) VALUES "
)
# Above this many messages waiting in the intake, submissions are stored in full at once until a quiet writer has
# expanded it: a sustained load then runs at the rate of full rows (the intake's own row would only add to it),
# and a read that must expand the whole intake first waits at most about 20,000 x 20 us (~0.4 s).
INTAKE_LIMIT: Final = 20_000
# The layout of an intake row's messages (`_packed`); a store holding rows of another layout refuses to open
# (`keep_intake`), so a change of `NewMessage` that changes it must raise this.
INTAKE_FORMAT: Final = 1
_RENAMING: Final = MessageIdGenerator()


def _packed(m: NewMessage) -> tuple[Any, ...]:
    """A message as plain values in `NewMessage`'s field order: what pickle writes fastest and reads back without
    this module's classes, so a stored row does not depend on them."""
    return (
        m.message_id, m.dest_index, m.account, m.service_type, tuple(m.source), tuple(m.destination), m.route,
        m.modem_group, m.esm_class, m.registered_delivery, m.data_coding, m.flash, m.gateway_split, m.text,
        m.submitted_ms, m.start_ms, m.expires_ms, m.price_per_segment_micro, [tuple(s) for s in m.segments],
        m.rejected_error, m.resends, m.check_recipient, m.promotional, m.client_ref,
        None if m.dlr is None else tuple(m.dlr),
    )


def _unpacked(fields: tuple[Any, ...]) -> NewMessage:
    (message_id, dest_index, account, service_type, source, destination, route, modem_group, esm_class,
     registered_delivery, data_coding, flash, gateway_split, text, submitted_ms, start_ms, expires_ms, price,
     segments, rejected_error, resends, check_recipient, promotional, client_ref, dlr) = fields
    return NewMessage(
        message_id, dest_index, account, service_type, Address(*source), Address(*destination), route, modem_group,
        esm_class, registered_delivery, data_coding, flash, gateway_split, text, submitted_ms, start_ms, expires_ms,
        price, tuple(NewSegment(*s) for s in segments), rejected_error, resends, check_recipient, promotional,
        client_ref, None if dlr is None else DlrRequest(*dlr),
    )


@contextmanager
def _savepoint(c: sqlite3.Connection) -> Iterator[None]:
    """The block's writes rolled back alone when it raises."""
    c.execute("SAVEPOINT expand")
    try:
        yield
    except BaseException:
        c.execute("ROLLBACK TO expand")
        c.execute("RELEASE expand")
        raise
    c.execute("RELEASE expand")


def _message_row(rowid: int, message: NewMessage, state: int, *, charged: int | None = None) -> tuple[Any, ...]:
    """The `_MESSAGE_INSERT` parameters of one message, in its column order."""
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
        message.client_ref,
    )
