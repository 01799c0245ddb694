"""Outbox pushing: offers the receipts and MO waiting in the store to an account's receiver binds.

An item offered to a bind is reserved for it (never offered to another) until the ESME acknowledges it (deleted
from the store) or the bind releases it (offered again after `outbox_redelivery_delay_s`, to any bind). The
reservations live in this process's memory; the interface stays `next_outbound` / `acknowledge` / `release` so
that they can move into the store (a claimed-by/claimed-until column) for several nodes.

An MO taken by an account with `mo_receipts` is handed to `mo_taken` once its deletion is durable (the handset's
notice that its message was delivered).
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Awaitable, Callable

import trio

from smsgw.config import Config, ConfigHolder, holding
from smsgw.pdu.smpp import DeliverSm
from smsgw.scheduler.accept import account_settings
from smsgw.scheduler.model import MoRecord, OutboxEntry, StoreUnavailable
from smsgw.scheduler.render import mo_pdu, receipt_pdu
from smsgw.scheduler.store import MessageStore
from smsgw.smpp_server.backend import OutboundItem

log = logging.getLogger(__name__)

_OUTBOX_READ_AHEAD = 64  # outbox items read at once for one account's binds
_ACK_RETRY_S = 1.0  # after the store refused to write acknowledgements
_ACK_FLUSH_AT_STOP_S = 5.0  # at shutdown, for writing the last acknowledgements


class Outbox:
    def __init__(
        self,
        store: MessageStore,
        config: Config | ConfigHolder,
        mo_taken: Callable[[str, MoRecord], Awaitable[None]],
    ) -> None:
        self._store = store
        self._holder = holding(config)
        self._mo_taken = mo_taken
        self._reserved: dict[str, str] = {}  # outbox item_id -> account, offered and not yet answered
        self._cooling: dict[str, tuple[str, float]] = {}  # released item_id -> (account, trio time to re-offer)
        self._offers: dict[str, collections.deque[OutboxEntry]] = {}  # read ahead per account, not yet reserved
        self._acknowledged: dict[str, None] = {}  # items the ESME took (in order), their deletion not yet written
        self._acknowledgements = trio.Event()
        # MO offered to an account with `mo_receipts`, by outbox item: its handset is notified when it is taken.
        self._noticed: dict[str, MoRecord] = {}

    async def run(self) -> None:
        """Writes the acknowledgements until cancelled (then what is queued still)."""
        await self._write_acknowledgements()

    async def next_outbound(self, account: str) -> OutboundItem:
        while True:
            wake = self._store.outbox_event(account)
            now = trio.current_time()
            cooling = {i: until for i, (a, until) in self._cooling.items() if a == account}
            for item_id in [i for i, until in cooling.items() if until <= now]:
                del self._cooling[item_id]
            offers = self._offers.setdefault(account, collections.deque())
            if not offers:
                # One read for a window's worth: a receipt stream would otherwise cost a read (and a worker
                # thread hop) per deliver_sm. Only `acknowledge` deletes outbox rows, and only reserved ones, so
                # what was read stays valid while it waits here.
                exclude = frozenset(self._reserved) | frozenset(i for i, until in cooling.items() if until > now)
                offers.extend(await self._store.outbox_fetch(account, exclude, _OUTBOX_READ_AHEAD))
            while offers:
                entry = offers.popleft()
                if entry.item_id in self._reserved or entry.item_id in self._cooling:
                    continue  # another bind took it while we read, or it came back and cools down
                self._reserved[entry.item_id] = account
                if isinstance(entry.record, MoRecord) and account_settings(self._holder, account).mo_receipts:
                    self._noticed[entry.item_id] = entry.record
                return OutboundItem(entry.item_id, account, _render(entry))
            next_offer = min((u for u in cooling.values() if u > now), default=math.inf)
            with trio.move_on_at(next_offer):
                await wake.wait()

    async def acknowledge(self, item_id: str) -> None:
        """Queue the item's deletion for `_write_acknowledgements` and return: the SMPP reader calls this per
        deliver_sm_resp, in turn, and a durable write each would cap receipts at one commit apiece. The item
        stays reserved (never offered again) until its deletion commits; if the process dies before that, it is
        offered again after the restart, as it would be had the deliver_sm_resp arrived a moment later."""
        self._acknowledged[item_id] = None
        self._acknowledgements.set()

    async def _write_acknowledgements(self) -> None:
        """Hand what was acknowledged meanwhile to the store as one deletion, at once, without waiting for the
        previous deletion to commit: the store puts it in its next commit, so a crash offers again only what
        was acknowledged during one commit (issue 13). On cancellation what is queued is still written."""
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    await self._acknowledgements.wait()
                    self._acknowledgements = trio.Event()
                    items = list(self._acknowledged)
                    self._acknowledged.clear()
                    nursery.start_soon(self._delete_acknowledged, items)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(_ACK_FLUSH_AT_STOP_S):
                await self._delete_acknowledged(list(self._acknowledged))

    async def _delete_acknowledged(self, items: list[str]) -> None:
        if not items:
            return
        try:
            with trio.CancelScope(shield=True):  # taken out of the queue: written even if the scheduler stops now
                deleted = await self._store.outbox_delete(items)
        except StoreUnavailable as exc:
            # Still reserved, so not offered again; the next batch tries again (or the next run offers them).
            log.error("acknowledgements not written count=%d error=%s", len(items), exc)
            self._acknowledged = dict.fromkeys(items) | self._acknowledged
            await trio.sleep(_ACK_RETRY_S)
            self._acknowledgements.set()
            return
        for item_id, was_deleted in zip(items, deleted, strict=True):
            account = self._reserved.pop(item_id, None)
            record = self._noticed.pop(item_id, None)
            if was_deleted and account is not None and record is not None:
                try:
                    await self._mo_taken(account, record)
                except Exception:  # a task boundary: one notice must not stop the acknowledgements
                    log.exception("mo receipt failed item_id=%s account=%s", item_id, account)

    async def release(self, item_id: str) -> None:
        self._noticed.pop(item_id, None)
        account = self._reserved.pop(item_id, None)
        if account is None:
            return
        self._cooling[item_id] = (account, trio.current_time() + self._holder.current.messages.outbox_redelivery_delay_s)
        self._store.notify_outbox(account)



def _render(entry: OutboxEntry) -> DeliverSm:
    if isinstance(entry.record, MoRecord):
        return mo_pdu(entry.record)
    return receipt_pdu(entry.record)
