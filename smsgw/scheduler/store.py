"""The message store as the scheduler sees it: a Protocol, so a PostgreSQL store (several gateway nodes) can
replace `SqliteStore` without touching the scheduler. Every write returns only after it is durable.

Refusals are exceptions the scheduler maps to SMPP statuses: `InsufficientBalance`, `NotCancellable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import trio

from smsgw.modem.seams import IncomingSms, Sent, StatusReport
from smsgw.scheduler.callback import CallbackStore
from smsgw.scheduler.model import (
    Handoff,
    InsufficientBalance,
    LastSent,
    LedgerEntry,
    NewMessage,
    NewSegment,
    NotCancellable,
    OutboxEntry,
    Recovery,
    StoredMessage,
    StoreUnavailable,
)
from smsgw.scheduler.policy import PolicyFacts
from smsgw.scheduler.states import State

__all__ = ["InsufficientBalance", "MessageStore", "NotCancellable", "StoreUnavailable"]


class MessageStore(CallbackStore, Protocol):
    def work_event(self) -> trio.Event: ...

    def notify_work(self) -> None: ...

    def outbox_event(self, account: str) -> trio.Event: ...

    def notify_outbox(self, account: str) -> None: ...

    def policy_facts(self) -> PolicyFacts: ...

    async def accept(self, messages: Sequence[NewMessage]) -> tuple[bool, ...]: ...

    async def recover(self, now_ms: int, *, fail_interrupted: bool = False) -> Recovery: ...

    async def next_due_ms(self) -> int | None: ...

    async def claim_due(self, now_ms: int, limit: int) -> list[Handoff]: ...

    async def record_sent(
        self, segment_rowid: int, sent: Sent, report_deadline_ms: int, now_ms: int, retry_at_ms: int
    ) -> State: ...

    async def record_failure(
        self, segment_rowid: int, *, temporary: bool, error_code: int, retry_at_ms: int, now_ms: int
    ) -> State: ...

    async def apply_status_report(
        self, report: StatusReport, now_ms: int, window_ms: int, retry_at_ms: int
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

    async def last_sent_to(self, handset: str, modem: str, modem_msisdn: str, since_ms: int) -> LastSent | None: ...

    async def store_mo(
        self, sms: IncomingSms, account: str | None, recipient: str, now_ms: int, *, callback: bool = False
    ) -> int: ...

    async def outbox_fetch(self, account: str, exclude: frozenset[str], limit: int) -> list[OutboxEntry]: ...

    async def outbox_delete(self, item_ids: Sequence[str]) -> list[bool]: ...

    async def handset_wants_normal_sms(self, number: str) -> bool: ...

    async def toggle_handset_notices(self, number: str, now_ms: int) -> bool: ...

    async def record_notice(
        self, handset: str, message_id: str, purpose: str, text: str, now_ms: int, expires_ms: int, *,
        since_ms: int, limit: int,
    ) -> bool: ...

    async def is_notice_echo(self, mo_rowid: int, grace_ms: int) -> bool: ...

    async def topup(self, account: str, amount_micro: int, now_ms: int, note: str = "") -> int: ...

    async def balance(self, account: str) -> int: ...

    async def ledger(self, account: str, limit: int) -> list[LedgerEntry]: ...

    async def purge(self, before_ms: int, batch: int) -> int: ...
