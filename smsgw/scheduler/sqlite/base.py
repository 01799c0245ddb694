"""The SQLite store's connections and the transaction steps its jobs share: a segment's state change (with its
refund, its message's derived state and its receipt), ledger rows, audit rows, outbox items.

Rows are read by column name, never by position: `sqlite3.Row` on both connections, and on the hot paths (a
claim, a message's state after each change) a NamedTuple whose SELECT list `columns` writes from its fields, as
`sqlite3.Row`'s lookup by name costs about 0.1 us a column.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, NamedTuple, TypeVar

import trio

from smsgw.config import StoreConfig
from smsgw.scheduler import billing, dlr, outbox_codec, outcomes
from smsgw.scheduler.dialect import OUTBOX_CHANNEL, SQLITE, WORK_CHANNEL, Dialect
from smsgw.scheduler.migrations import migrate
from smsgw.scheduler.model import Address, DlrRequest, LatencyHistogram, MoRecord, ReceiptRecord
from smsgw.scheduler.policy_store import SqlitePolicyFacts
from smsgw.scheduler.states import FINAL, Event, State, transition
from smsgw.scheduler.writer import GroupCommitWriter

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SegmentRow:
    rowid: int
    message: int
    state: State
    sent_at: int | None
    charge: int

    @classmethod
    def of(cls, row: sqlite3.Row) -> SegmentRow:
        """From a row with the segment's `id, message, state, sent_at, charge` columns."""
        return cls(row["id"], row["message"], State(row["state"]), row["sent_at"], row["charge"])


SEGMENT_COLUMNS: Final = "id, message, state, sent_at, charge"


def columns(row_type: type[tuple[Any, ...]], **expressions: str) -> str:
    """The SELECT list that fills the NamedTuple `row_type` by name: its fields in order, each `expression AS
    field` where `expressions` names a table's column or an expression for it; `row_type._make(row)` reads it."""
    fields: tuple[str, ...] = getattr(row_type, "_fields")
    return ", ".join(f"{expressions[f]} AS {f}" if f in expressions else f for f in fields)


class _MessageRow(NamedTuple):
    """What a message's receipt and its state after a change need."""

    state: int
    registered_delivery: int
    account: str
    message_id: str
    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    destination_addr: str
    dest_addr_ton: int
    dest_addr_npi: int
    submitted_at: int
    segment_count: int
    text: str
    service_type: str


_MESSAGE_ROW_SQL: Final = f"SELECT {columns(_MessageRow)} FROM messages WHERE id = ?"


# A message after one of its segments changed, in one statement: `_MessageRow`'s columns, the caller's reference
# and its delivery-report request (`DlrRequest`'s other fields, all NULL without one), then one segment's state and
# error code, one row per segment in order.
_MESSAGE_FIELDS: Final = len(_MessageRow._fields)
_OUTCOME_SQL: Final = (
    "SELECT " + ", ".join(f"m.{field}" for field in _MessageRow._fields)
    + ", m.client_ref, d.url, d.format, d.method, d.mask, s.state, s.error_code"
    " FROM messages m JOIN segments s ON s.message = m.id LEFT JOIN dlr_requests d ON d.message = m.id"
    " WHERE m.id = ? ORDER BY s.seq"
)


# SQLite `synchronous` levels that fsync at every commit in WAL mode.
_SYNCING: Final = frozenset({"FULL", "EXTRA"})


class SqliteBase:
    """Connections, writer, wake-ups and the shared transaction steps; `SqliteStore` adds the jobs."""

    def __init__(
        self,
        path: str,
        config: StoreConfig,
        connections: tuple[sqlite3.Connection, sqlite3.Connection],
        policy_facts: SqlitePolicyFacts,
        dialect: Dialect = SQLITE,
    ):
        self.path = path
        self._dialect = dialect
        self._writer_connection, self._reader = connections
        self._policy_facts = policy_facts
        # The recipient rules of `accept`, read in the writer's own transaction.
        self._accept_facts = SqlitePolicyFacts.reading(self._writer_connection)
        self._read_lock = trio.Lock()
        synchronous = config.synchronous.upper()
        self._writer = GroupCommitWriter(
            self._writer_connection, max_batch=config.writer_max_batch, queue_size=config.writer_queue_size,
            # Only an SQLite level that syncs every commit has anything to relax (PostgreSQL commits alike).
            synchronous=(synchronous, "NORMAL") if dialect is SQLITE and synchronous in _SYNCING else None,
        )
        # `Accepting.keep_intake`: uncharged messages are committed as intake rows first, expanded later.
        self._intake_kept = False
        self._unexpanded = 0  # messages in intake rows, as far as this process knows
        self._outbox_events: dict[str, trio.Event] = {}
        self._dlr_listeners: list[Callable[[], None]] = []
        self._work_event = trio.Event()
        # New work due at or after this needs no wake-up: the dispatcher looks then anyway (None: any work wakes).
        self._work_watched_before_ms: int | None = None

    @property
    def writer(self) -> GroupCommitWriter:
        return self._writer

    def commits(self) -> int:
        return self._writer.batches

    def commit_latency(self) -> LatencyHistogram:
        return self._writer.latency.snapshot()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self._writer.run(task_status=task_status)

    def close(self) -> None:
        self._writer_connection.close()
        self._reader.close()
        self._policy_facts.close()

    def policy_facts(self) -> SqlitePolicyFacts:
        """The message policy's recipient facts, in tables of their own in the same database file."""
        return self._policy_facts

    async def _read(self, fn: Callable[[sqlite3.Connection], T], *, reads_backlog: bool = True) -> T:
        """`fn` on the reader connection, after the intake is written in full (`Accepting`) unless it reads none of
        the rows that writes (`reads_backlog=False`: a callback queue's)."""
        if reads_backlog:
            await self._writer.expanded()
        async with self._read_lock:
            return await trio.to_thread.run_sync(fn, self._reader)

    # -- wake-ups ---------------------------------------------------------------------------------------------

    def work_event(self) -> trio.Event:
        """Set after a commit that made some segment due earlier than before; take it before looking. Until
        `watch_work_before` narrows it, any new work sets it."""
        self._work_watched_before_ms = None
        return self._work_event

    def watch_work_before(self, due_ms: int) -> None:
        """The dispatcher looks again at `due_ms` whatever happens: work accepted from now on that is due no
        earlier (a message scheduled ahead) does not wake it. Call it only after the read that found `due_ms`,
        so work committed before that read was seen by it or has already set the event."""
        self._work_watched_before_ms = due_ms

    def notify_work(self) -> None:
        self._work_event.set()
        self._work_event = trio.Event()

    def _work_due(self, due_ms: int) -> None:
        if self._work_watched_before_ms is None or due_ms < self._work_watched_before_ms:
            self.notify_work()

    def outbox_event(self, account: str) -> trio.Event:
        """Set when something may be offered to `account`; take it before fetching so no wake-up is lost."""
        return self._outbox_events.setdefault(account, trio.Event())

    def notify_outbox(self, account: str) -> None:
        event = self._outbox_events.pop(account, None)
        if event is not None:
            event.set()

    def on_dlr_callback(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each commit that queued delivery-report callbacks."""
        self._dlr_listeners.append(listener)

    def _new_work(self, c: sqlite3.Connection, due_ms: int = 0) -> None:
        """After this commit, the dispatchers look for work due from `due_ms` on (0: at once) when that is earlier
        than they look anyway: this node's at once, other nodes' by a NOTIFY carrying `due_ms` (sent with the
        commit); what else makes work due they find by polling."""
        self._writer.after_commit(functools.partial(self._work_due, due_ms))
        if self._dialect.notify:
            c.execute("SELECT pg_notify(?, ?)", (WORK_CHANNEL, str(due_ms)))

    def _notify_dlr(self) -> None:
        for listener in self._dlr_listeners:
            listener()

    # -- shared transaction steps -----------------------------------------------------------------------------

    @staticmethod
    def _balance(c: sqlite3.Connection, account: str) -> int:
        row = c.execute("SELECT balance FROM accounts WHERE name = ?", (account,)).fetchone()
        return 0 if row is None else int(row["balance"])

    def _locked_balance(self, c: sqlite3.Connection, account: str) -> int:
        """The balance a charge or transfer decides on, locked until commit against other nodes' writers."""
        row = c.execute(f"SELECT balance FROM accounts WHERE name = ?{self._dialect.for_update}", (account,)).fetchone()
        return 0 if row is None else int(row["balance"])

    def _message_ids(self, c: sqlite3.Connection, count: int) -> Iterator[int]:
        """`count` ids for new messages, so their segments reference them without a round trip per message."""
        if self._dialect.sequences:
            return iter([int(row[0]) for row in c.execute(
                "SELECT nextval('messages_id_seq') FROM generate_series(1, ?)", (count,)
            )])
        return itertools.count(c.execute("SELECT COALESCE(MAX(id), 0) + 1 AS next FROM messages").fetchone()["next"])

    def _ledger(
        self, c: sqlite3.Connection, account: str, kind: str, amount: int, now_ms: int, message_id: str | None, note: str
    ) -> int:
        """Add `amount` to the account's balance and write its ledger row; the new balance."""
        c.execute(
            "INSERT INTO accounts (name, balance) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET balance = accounts.balance + excluded.balance",
            (account, amount),
        )
        balance = self._balance(c, account)
        insert_ledger(c, [billing.LedgerRow(account, now_ms, kind, amount, balance, message_id, note)])
        return balance

    @staticmethod
    def _audit(
        c: sqlite3.Connection, now_ms: int, event: str, account: str | None, message_id: str | None, detail: str
    ) -> None:
        c.execute(
            "INSERT INTO audit (at, event, account, message_id, detail) VALUES (?,?,?,?,?)",
            (now_ms, event, account, message_id, detail),
        )

    def _segment(self, c: sqlite3.Connection, rowid: int) -> SegmentRow:
        return SegmentRow.of(c.execute(f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE id = ?", (rowid,)).fetchone())

    def _change(
        self,
        c: sqlite3.Connection,
        segment: SegmentRow,
        event: Event,
        now_ms: int,
        *,
        due_at: int | None = None,
        error_code: int | None = None,
        sent: tuple[int, str, str, int] | None = None,
        handoff: tuple[int, str | None] | None = None,
    ) -> State:
        """Apply `event` to the segment by the transition table, with the refund, the message's derived state and
        the receipt that follow it (`billing`, `outcomes`), all in this transaction. `sent`: the segment's
        `sent_at, modem, modem_msisdn, tp_mr`, written in the same statement; `handoff`: its `handoff_at,
        claimed_by` and one more attempt, likewise."""
        new = transition(segment.state, event)
        final = new in FINAL
        state = (int(new), None if final else due_at, error_code, now_ms if final else None)
        if handoff is not None:
            c.execute(
                "UPDATE segments SET state = ?, due_at = ?, error_code = COALESCE(?, error_code), final_at = ?,"
                " handoff_at = ?, attempts = attempts + 1, claimed_by = ? WHERE id = ?",
                (*state, *handoff, segment.rowid),
            )
        elif sent is None:
            c.execute(
                "UPDATE segments SET state = ?, due_at = ?, error_code = COALESCE(?, error_code), final_at = ?"
                " WHERE id = ?",
                (*state, segment.rowid),
            )
        else:
            c.execute(
                "UPDATE segments SET state = ?, due_at = ?, error_code = COALESCE(?, error_code), final_at = ?,"
                " sent_at = ?, modem = ?, modem_msisdn = ?, tp_mr = ? WHERE id = ?",
                (*state, *sent, segment.rowid),
            )
            segment = replace(segment, sent_at=sent[0])
        refund = billing.refund(new, segment.sent_at, segment.charge)
        if refund is not None:
            message = c.execute("SELECT account, message_id FROM messages WHERE id = ?", (segment.message,)).fetchone()
            self._ledger(c, message["account"], billing.REFUND, refund.amount_micro, now_ms, message["message_id"],
                         refund.note)
        if outcomes.message_follows(segment.state, new, event):
            self._update_message(c, segment.message, now_ms, intermediate=outcomes.is_intermediate(event))
        elif event is Event.SENT:
            self._smsc_accepted(c, segment.message, now_ms)
        return new

    def _update_message(self, c: sqlite3.Connection, rowid: int, now_ms: int, *, intermediate: bool) -> None:
        rows = c.execute(_OUTCOME_SQL, (rowid,)).fetchall()
        segments = [(State(found[-2]), int(found[-1])) for found in rows]
        derived, error_code = outcomes.message_outcome(segments)
        row = _MessageRow._make(rows[0][:_MESSAGE_FIELDS])
        client_ref, url, dlr_format, method, mask = rows[0][_MESSAGE_FIELDS:-2]
        previous = State(row.state)
        if derived is not previous:
            c.execute(
                "UPDATE messages SET state = ?, final_at = ?, error_code = ? WHERE id = ?",
                (int(derived), now_ms if derived in FINAL else None, error_code, rowid),
            )
        receipt = outcomes.receipt_follows(previous, derived, row.registered_delivery, intermediate=intermediate)
        event = dlr.event_of(previous, derived, intermediate=intermediate)
        if not receipt and not event:
            return
        delivered = sum(1 for state, _ in segments if state is State.DELIVERED)
        record = _receipt(row, derived, error_code, now_ms, delivered)
        if receipt:
            self._outbox_add(c, row.account, record, now_ms)
        if event and url is not None:
            self._queue_dlr(c, DlrRequest(url, dlr_format, method, mask, client_ref), row.account, record, event,
                            now_ms)

    def _smsc_accepted(self, c: sqlite3.Connection, rowid: int, now_ms: int) -> None:
        """A segment handed to the network: the SMSC-level report (Kannel's 8, Jasmin's level 1) when asked."""
        found = c.execute(
            "SELECT d.url, d.format, d.method, d.mask, m.client_ref FROM dlr_requests d"
            " JOIN messages m ON m.id = d.message WHERE d.message = ?", (rowid,)
        ).fetchone()
        if found is None:
            return
        row = _MessageRow._make(c.execute(_MESSAGE_ROW_SQL, (rowid,)).fetchone())
        record = _receipt(row, State(row.state), 0, now_ms, 0)
        self._queue_dlr(c, DlrRequest(*found), row.account, record, dlr.SMSC_ACCEPTED, now_ms)

    def _queue_dlr(
        self, c: sqlite3.Connection, request: DlrRequest, account: str, record: ReceiptRecord, event: int,
        now_ms: int,
    ) -> None:
        """Render and queue the message's delivery-report callback of `event`, if its request wants that event."""
        rendered = dlr.render(request, record, event)
        if rendered is None:
            return
        url, body = rendered
        c.execute(
            "INSERT INTO dlr_callbacks (message_id, account, recipient, url, method, format, body, state, created_at,"
            " next_try_at) VALUES (?,?,?,?,?,?,?,'pending',?,?)",
            (record.message_id, account, record.source.addr, url, request.method, request.format, body, now_ms,
             now_ms),
        )
        self._writer.after_commit(self._notify_dlr)

    def _outbox_add(self, c: sqlite3.Connection, account: str, record: ReceiptRecord | MoRecord, now_ms: int) -> None:
        c.execute(
            "INSERT INTO outbox (account, kind, record, created_at) VALUES (?,?,?,?)",
            (account, outbox_codec.kind(record), outbox_codec.encode(record), now_ms),
        )
        self._writer.after_commit(lambda: self.notify_outbox(account))
        if self._dialect.notify:  # the node the account is bound to may be another
            c.execute("SELECT pg_notify(?, ?)", (OUTBOX_CHANNEL, account))


def _receipt(row: _MessageRow, state: State, error_code: int, now_ms: int, delivered: int) -> ReceiptRecord:
    return outcomes.make_receipt(
        message_id=row.message_id,
        esme_source=Address(row.source_addr, row.source_addr_ton, row.source_addr_npi),
        handset=Address(row.destination_addr, row.dest_addr_ton, row.dest_addr_npi),
        state=state,
        error_code=error_code,
        submitted_ms=row.submitted_at,
        done_ms=now_ms,
        segment_count=row.segment_count,
        delivered_segments=delivered,
        text=row.text,
        service_type=row.service_type,
    )


_LEDGER_INSERT: Final = (
    "INSERT INTO ledger (account, at, kind, amount, balance_after, message_id, note) VALUES "
)


def insert_ledger(c: sqlite3.Connection, rows: Sequence[billing.LedgerRow]) -> None:
    # Multi-row VALUES (`insert_rows`): on the accept path each charged message writes a row, and one step per
    # chunk instead of `executemany`'s step per row is ~29,000 instructions less a charged message (callgrind,
    # BENCHMARKS.md, issue 20 item 2).
    insert_rows(c, _LEDGER_INSERT, rows)


_INSERT_CHUNKS: Final = (256, 64, 16, 4, 1)


def insert_rows(c: sqlite3.Connection, insert: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """`rows` inserted with multi-row VALUES statements: one sqlite3_step (which runs without the GIL) per chunk
    instead of one per row as `executemany` does, and a few fixed chunk sizes so the statements stay cached. The
    rows are flattened into one parameter list, so a NamedTuple row binds as cheaply as a plain tuple."""
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


def connect(path: str, config: StoreConfig) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """Open the writer and reader connections and bring the schema up to date (blocking: call in a thread)."""
    synchronous = config.synchronous.upper()  # one of config.SQLITE_SYNCHRONOUS, checked at load

    def open_one() -> sqlite3.Connection:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=config.busy_timeout_s)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {synchronous}")
        # Each batch's SAVEPOINTs need a statement journal: in memory, not a temporary file created per batch.
        connection.execute("PRAGMA temp_store = MEMORY")
        return connection

    writer = open_one()
    migrate(writer)
    return writer, open_one()
