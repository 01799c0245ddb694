"""Outbox pushing: offers the receipts and MO waiting in the store to an account's receiver binds.

The outbox is shared by the nodes (DESIGN.md, "Several nodes") through claims in the store: this node claims a
batch of an account's items (one write for up to `_OUTBOX_READ_AHEAD`) and keeps them as its read-ahead, then
offers them one at a time. A claim lasts `smpp.outbox_claim_s`; no other node offers the item meanwhile. An item
the ESME acknowledges is deleted from the store; one a bind releases (error, timeout, unbind) loses its claim
and cools down for `outbox_redelivery_delay_s` before any node offers it again. A node that dies leaves its
claims to expire; its restart (same `[node] name`) releases them at once.

An MO taken by an account with `mo_receipts` is handed to `mo_taken` once its deletion is durable (the handset's
notice that its message was delivered).
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from smsgw.config import OUTBOX_ANSWER_MARGIN_S, Config, ConfigHolder, holding
from smsgw.pdu.smpp import DeliverSm
from smsgw.scheduler.accept import account_settings
from smsgw.scheduler.model import MoRecord, OutboxEntry, StoreUnavailable
from smsgw.scheduler.render import mo_pdu, receipt_pdu
from smsgw.scheduler.store import MessageStore
from smsgw.scheduler.timing import WallClock
from smsgw.smpp_server.backend import OutboundItem

log = logging.getLogger(__name__)

_OUTBOX_READ_AHEAD = 64  # outbox items claimed at once for one account's binds
_WRITE_RETRY_S = 1.0  # after the store refused to write acknowledgements or releases
_FLUSH_AT_STOP_S = 5.0  # at shutdown, for writing the last acknowledgements and releases


@dataclass(slots=True)
class _ReadAhead:
    """An account's items claimed by this node and not offered yet, and when their claim ends."""

    entries: collections.deque[OutboxEntry]
    until_ms: int


class Outbox:
    def __init__(
        self,
        store: MessageStore,
        config: Config | ConfigHolder,
        clock: WallClock,
        mo_taken: Callable[[str, MoRecord], Awaitable[None]],
    ) -> None:
        self._store = store
        self._holder = holding(config)
        self._clock = clock
        self._mo_taken = mo_taken
        self._read_ahead: dict[str, _ReadAhead] = {}
        self._acknowledged: dict[str, None] = {}  # items the ESME took (in order), their deletion not yet written
        self._released: dict[str, None] = {}  # items the binds gave back, their release not yet written
        self._queued = trio.Event()  # set when either of them got an item
        # MO offered to an account with `mo_receipts`, by outbox item: its handset is notified when it is taken.
        self._noticed: dict[str, tuple[str, MoRecord]] = {}

    @property
    def _node(self) -> str:
        return self._holder.current.node.name

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Releases the claims this node's previous run left (it died holding them), then writes acknowledgements
        and releases until cancelled; then what is queued still, and the read-ahead goes back to the other nodes."""
        released = await self._store.outbox_release(self._node, self._clock.now_ms(), None)
        if released:
            log.info("outbox claims of a previous run released node=%s count=%d", self._node, released)
        task_status.started()
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    await self._queued.wait()
                    self._queued = trio.Event()
                    # At once, without waiting for the previous write to commit: the store puts a deletion in its
                    # next commit, so a crash offers again only what was acknowledged during one commit (issue 13).
                    if self._acknowledged:
                        nursery.start_soon(self._delete_acknowledged, _take(self._acknowledged))
                    if self._released:
                        nursery.start_soon(self._write_releases, _take(self._released))
        finally:
            unoffered = [entry.item_id for read_ahead in self._read_ahead.values() for entry in read_ahead.entries]
            self._read_ahead.clear()
            with trio.CancelScope(shield=True), trio.move_on_after(_FLUSH_AT_STOP_S):
                await self._delete_acknowledged(_take(self._acknowledged))
                await self._write_releases(_take(self._released))
                await self._write_releases(unoffered, cool_down=False)

    async def next_outbound(self, account: str) -> OutboundItem:
        while True:
            wake = self._store.outbox_event(account)
            read_ahead = self._read_ahead.get(account)
            if read_ahead is not None:
                if read_ahead.entries and self._clock.now_ms() + self._answer_ms() < read_ahead.until_ms:
                    return self._offer(account, read_ahead.entries.popleft())
                del self._read_ahead[account]
                if read_ahead.entries:
                    # Claimed too long ago to be answered before the claim ends (the binds had no room for a
                    # while): released as a bind would, and claimed again after the cool-down.
                    self._released |= {entry.item_id: None for entry in read_ahead.entries}
                    self._queued.set()
            # Nothing at hand: asked under a cancelled scope (the pusher taking what is ready), claim nothing.
            await trio.lowlevel.checkpoint_if_cancelled()
            now_ms = self._clock.now_ms()
            lease_ms = int(self._holder.current.smpp.outbox_claim_s * 1000)
            # Once asked, what the store claims ends up in the read-ahead whatever cancels us meanwhile.
            with trio.CancelScope(shield=True):
                claim = await self._store.outbox_claim(account, self._node, now_ms, now_ms + lease_ms,
                                                       _OUTBOX_READ_AHEAD)
            if claim.entries:
                # Joined to what a concurrent caller claimed meanwhile (a pusher replacing a stopped one), if any.
                read_ahead = self._read_ahead.setdefault(account, _ReadAhead(collections.deque(), claim.until_ms))
                read_ahead.until_ms = min(read_ahead.until_ms, claim.until_ms)
                read_ahead.entries.extend(claim.entries[1:])
                return self._offer(account, claim.entries[0])
            retry = math.inf if claim.next_ms is None else self._clock.trio_deadline(claim.next_ms)
            # Items another node (or process) wrote wake `wake` by NOTIFY, which a dropped listener connection
            # loses: look again now and then, as the dispatcher does for due work.
            poll_s = self._holder.current.messages.foreign_writes_poll_s
            if poll_s > 0:
                retry = min(retry, trio.current_time() + poll_s)
            with trio.move_on_at(retry):
                await wake.wait()

    def _answer_ms(self) -> int:
        """How long an item offered now may take until its deliver_sm_resp and deletion: it must stay claimed."""
        return int((self._holder.current.smpp.response_timeout_s + OUTBOX_ANSWER_MARGIN_S) * 1000)

    def _offer(self, account: str, entry: OutboxEntry) -> OutboundItem:
        if isinstance(entry.record, MoRecord) and account_settings(self._holder, account).mo_receipts:
            self._noticed[entry.item_id] = (account, entry.record)
        return OutboundItem(entry.item_id, account, _render(entry))

    async def acknowledge(self, item_id: str) -> None:
        """Queue the item's deletion for `run` and return: the SMPP reader calls this per deliver_sm_resp, in turn,
        and a durable write each would cap receipts at one commit apiece. The item stays claimed by this node
        until its deletion commits; if the process dies before that, it is offered again after the restart, as
        it would be had the deliver_sm_resp arrived a moment later."""
        self._acknowledged[item_id] = None
        self._queued.set()

    async def release(self, item_id: str) -> None:
        """Queue the item's release for `run` and return: a bind that drops gives back its whole window, and the
        item stays claimed by this node (offered to no one) until the release commits and its cool-down ends."""
        self._noticed.pop(item_id, None)
        self._released[item_id] = None
        self._queued.set()

    async def _delete_acknowledged(self, items: list[str]) -> None:
        if not items:
            return
        try:
            with trio.CancelScope(shield=True):  # taken out of the queue: written even if the scheduler stops now
                deleted = await self._store.outbox_delete(items)
        except StoreUnavailable as exc:
            # Still claimed, so not offered again meanwhile; the next batch tries again (or the next run offers them).
            log.error("acknowledgements not written count=%d error=%s", len(items), exc)
            self._acknowledged = dict.fromkeys(items) | self._acknowledged
            await trio.sleep(_WRITE_RETRY_S)
            self._queued.set()
            return
        for item_id, was_deleted in zip(items, deleted, strict=True):
            noticed = self._noticed.pop(item_id, None)
            if was_deleted and noticed is not None:
                account, record = noticed
                try:
                    await self._mo_taken(account, record)
                except Exception:  # a task boundary: one notice must not stop the acknowledgements
                    log.exception("mo receipt failed item_id=%s account=%s", item_id, account)

    async def _write_releases(self, items: Sequence[str], *, cool_down: bool = True) -> None:
        """A released item is offered again after `outbox_redelivery_delay_s` (an ESME that refused it is not
        asked again at once), to any bind on any node: so its claim is cleared, and the delay is `claimed_until`.
        At shutdown (`cool_down` False) they are left to the other nodes at once."""
        if not items:
            return
        delay_ms = int(self._holder.current.messages.outbox_redelivery_delay_s * 1000) if cool_down else 0
        try:
            with trio.CancelScope(shield=True):
                await self._store.outbox_release(self._node, self._clock.now_ms() + delay_ms, items)
        except StoreUnavailable as exc:
            # Still claimed by this node: offered again when the claim ends, if not by a later try.
            log.error("releases not written count=%d error=%s", len(items), exc)
            self._released = dict.fromkeys(items) | self._released
            await trio.sleep(_WRITE_RETRY_S)
            self._queued.set()


def _take(queued: dict[str, None]) -> list[str]:
    items = list(queued)
    queued.clear()
    return items


def _render(entry: OutboxEntry) -> DeliverSm:
    if isinstance(entry.record, MoRecord):
        return mo_pdu(entry.record)
    return receipt_pdu(entry.record)
