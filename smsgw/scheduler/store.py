"""The message store as the scheduler, the CLI and `smsgw resend` see it: a Protocol, so a PostgreSQL store
(several gateway nodes) can replace `SqliteStore` without touching them, and `open_store(config)`, the one place
that picks the engine. Every write returns only after it is durable.

An engine writes SQL only: the decisions are pure modules it calls inside its transactions (`billing`: charges,
err 800, refunds; `outcomes`: the message's state and the receipt that follow a segment's change; `outbox_codec`:
the outbox records), and `tests/scheduler/test_store.py` is the contract suite it must pass.

Refusals are exceptions the scheduler maps to SMPP statuses: `InsufficientBalance`, `NotCancellable`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import trio

from smsgw.config import StoreConfig
from smsgw.modem.seams import IncomingSms, Sent, StatusReport
from smsgw.scheduler.callback import CallbackStore
from smsgw.scheduler.model import (
    ApiKey,
    CallbackRow,
    Claimant,
    Handoff,
    HistoryRow,
    InboxEntry,
    InsufficientBalance,
    LastSent,
    LatencyHistogram,
    LedgerEntry,
    ListedMessage,
    MessageFilter,
    NewMessage,
    NewSegment,
    NotCancellable,
    NoticeRow,
    OutboxClaim,
    QueueCounts,
    Recovery,
    StoredMessage,
    StoreUnavailable,
)
from smsgw.scheduler.policy import PolicyFacts
from smsgw.scheduler.sqlite_store import open_store as open_sqlite_store
from smsgw.scheduler.states import State

__all__ = ["InsufficientBalance", "MessageStore", "NotCancellable", "StoreUnavailable", "open_store"]


class MessageStore(CallbackStore, Protocol):
    def work_event(self) -> trio.Event: ...

    def notify_work(self) -> None: ...

    def outbox_event(self, account: str) -> trio.Event: ...

    def notify_outbox(self, account: str) -> None: ...

    def policy_facts(self) -> PolicyFacts: ...

    async def accept(self, messages: Sequence[NewMessage]) -> tuple[bool, ...]: ...

    # `claimant`: this node's share of a store several nodes use; None (one node): every due segment, no lease.
    async def recover(
        self, now_ms: int, *, fail_interrupted: bool = False, claimant: Claimant | None = None
    ) -> Recovery: ...

    async def next_due_ms(self, claimant: Claimant | None = None) -> int | None: ...

    async def claim_due(self, now_ms: int, limit: int, claimant: Claimant | None = None) -> list[Handoff]: ...

    # A node's hand-offs still in progress, held for another lease (`Claimant.lease_ms`) while it waits on them.
    async def renew_handoffs(self, node: str, segment_rowids: Sequence[int], until_ms: int) -> int: ...

    async def record_sent(
        self, segment_rowid: int, sent: Sent, report_deadline_ms: int, now_ms: int, retry_at_ms: int
    ) -> State: ...

    async def record_failure(
        self, segment_rowid: int, *, temporary: bool, error_code: int, retry_at_ms: int, now_ms: int
    ) -> State: ...

    async def apply_status_report(
        self, report: StatusReport, now_ms: int, window_ms: int, retry_at_ms: int
    ) -> State | None: ...

    async def record_upstream_sent(
        self,
        segment_rowid: int,
        upstream: str,
        upstream_message_id: str,
        *,
        receipts: bool,
        report_deadline_ms: int,
        now_ms: int,
    ) -> State: ...

    async def apply_upstream_receipt(
        self, upstream: str, upstream_message_id: str, stat: str, err: str, now_ms: int
    ) -> State | None: ...

    async def find(self, account: str, message_id: str) -> list[StoredMessage]: ...

    async def cancel(
        self, account: str, message_id: str | None, source_addr: str, destination_addr: str, now_ms: int
    ) -> int: ...

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
    ) -> None: ...

    async def last_sent_to(
        self, handset: str, modem: str, modem_msisdn: str, since_ms: int, *, upstream: str | None = None
    ) -> LastSent | None: ...

    async def store_mo(
        self, sms: IncomingSms, account: str | None, recipient: str, now_ms: int, *, callback: bool = False
    ) -> int: ...

    # The outbox is shared by the nodes through claims: an item a node offers is claimed by it (`claimed_by`,
    # `claimed_until`), so no other node offers it until the node releases it or the claim ends.
    async def outbox_claim(self, account: str, node: str, now_ms: int, until_ms: int, limit: int) -> OutboxClaim:
        """Claim for `node` until `until_ms`, in one write, up to `limit` of the account's items, oldest first,
        that nobody holds at `now_ms`: never claimed, released and past their cool-down, or whose claim ended."""
        ...

    async def outbox_release(self, node: str, offer_at_ms: int, item_ids: Sequence[str] | None) -> int:
        """End `node`'s claims on the items (None: all its claims, its previous run's at start); any node may claim
        them from `offer_at_ms`. Items another node claimed meanwhile are left alone. How many were released."""
        ...

    async def outbox_delete(self, item_ids: Sequence[str]) -> list[bool]: ...

    async def handset_wants_normal_sms(self, number: str) -> bool: ...

    async def toggle_handset_notices(self, number: str, now_ms: int) -> bool: ...

    async def record_notice(
        self, handset: str, message_id: str, purpose: str, text: str, now_ms: int, expires_ms: int, *,
        since_ms: int, limit: int,
    ) -> bool: ...

    async def is_notice_echo(self, mo_rowid: int, grace_ms: int) -> bool: ...

    async def notices_listing(self, handset: str | None, limit: int) -> list[NoticeRow]: ...

    def on_dlr_callback(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each commit that queued delivery-report callbacks."""
        ...

    async def callbacks_listing(
        self, kind: str | None, state: str | None, account: str | None, limit: int
    ) -> list[CallbackRow]: ...

    async def callbacks_requeue(self, kind: str, rowids: Sequence[int] | None, account: str | None, now_ms: int) -> int: ...

    async def topup(self, account: str, amount_micro: int, now_ms: int, note: str = "") -> int: ...

    async def transfer(
        self, from_account: str, to_account: str, amount_micro: int, now_ms: int, note: str = ""
    ) -> tuple[int, int]: ...

    async def unpaid_messages(self, account: str, start_ms: int, end_ms: int) -> list[NewMessage]: ...

    async def balance(self, account: str) -> int: ...

    async def ledger(self, account: str, limit: int) -> list[LedgerEntry]: ...

    async def purge(self, before_ms: int, batch: int) -> int: ...

    def history_rows(self, from_ms: int, to_ms_: int, account: str | None) -> Iterator[HistoryRow]:
        """Streamed, oldest first, without Trio (the CLI writes them as they come)."""
        ...

    def commits(self) -> int:
        """Transactions committed so far: the benchmark reports operations per commit."""
        ...

    def operations(self) -> int:
        """Write operations committed so far, in all commits."""
        ...

    def commit_latency(self) -> LatencyHistogram:
        """How long the commits so far took (one observation per `commits()`), for /metrics."""
        ...

    async def check_writable(self) -> None:
        """Return once a write transaction committed; raise (any exception) when the store cannot write."""
        ...

    async def queue_counts(self, now_ms: int) -> QueueCounts:
        """The open work now (/metrics), read through the indexes of open work only."""
        ...

    # The HTTP API's reads and its keys.
    async def list_messages(
        self, account: str, where: MessageFilter, after: tuple[int, int] | None, limit: int
    ) -> list[ListedMessage]:
        """The account's messages matching `where`, oldest first: the `limit` after the `ListedMessage.key`
        `after` (keyset pagination through an index, never OFFSET)."""
        ...

    async def inbox(self, account: str, after: int, limit: int) -> list[InboxEntry]:
        """MO routed to `account` with ids above `after`, oldest first."""
        ...

    async def api_key_add(self, account: str, name: str, key_hash: str, now_ms: int) -> int: ...

    async def api_keys(self, account: str | None) -> list[ApiKey]: ...

    async def api_key_revoke(self, key_id: int, now_ms: int) -> ApiKey | None: ...

    async def api_key_find(self, key_hash: str) -> ApiKey | None: ...

    async def api_key_used(self, key_id: int, now_ms: int) -> None: ...


def open_store(config: StoreConfig) -> AbstractAsyncContextManager[MessageStore]:
    """The configured store, open with its tasks running, closed (after pending writes finish) when the block
    exits: `async with open_store(config.store) as store:`. `[store] url` set: PostgreSQL, else SQLite at `path`."""
    if config.url:
        # Imported here: psycopg is needed only by gateways that use PostgreSQL.
        from smsgw.scheduler.postgres_store import open_store as open_postgres_store

        return open_postgres_store(config)
    return open_sqlite_store(config.path, config)
