"""A test double for `SmppBackend`: records what the sessions ask, answers from dictionaries, queues outbound items.

Only Trio tasks call it (smpplib clients in threads talk to it through the server).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from smsgw.pdu.constants import CommandStatus, MessageState
from smsgw.pdu.smpp import CancelSm, DataSm, ReplaceSm, SmeAddress, SubmitMulti, SubmitSm
from smsgw.smpp_server.backend import (
    BackendError,
    MessageStatus,
    MultiResult,
    OutboundItem,
    UnsuccessfulDestination,
)
from smsgw.smpp_server.throttle import Throttle


@dataclass
class DoubleBackend:
    submitted: list[tuple[str, SubmitSm | DataSm | SubmitMulti]] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)  # the size of each submit_many call
    owners: dict[str, str] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    refuse_destinations: set[str] = field(default_factory=set)
    segments: dict[str, int] = field(default_factory=dict)  # what a message to this destination counts, else 1
    fail_submits_with: int | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _queues: dict[str, deque[OutboundItem]] = field(default_factory=dict)
    _reserved: dict[str, OutboundItem] = field(default_factory=dict)
    _changed: trio.Event = field(default_factory=trio.Event)

    def _new_id(self, account: str) -> str:
        message_id = f"m{next(self._ids)}"
        self.owners[message_id] = account
        return message_id

    async def submit(self, account: str, pdu: SubmitSm | DataSm) -> str:
        if self.fail_submits_with is not None:
            raise BackendError("refused by test", command_status=self.fail_submits_with)
        if pdu.destination_addr in self.refuse_destinations:
            raise BackendError("refused destination", command_status=CommandStatus.ESME_RINVDSTADR)
        self.submitted.append((account, pdu))
        return self._new_id(account)

    async def submit_many(
        self, account: str, pdus: Sequence[SubmitSm | DataSm], throttle: Throttle
    ) -> list[str | BackendError]:
        """The throttle charged as the scheduler's backend charges it: each PDU with its segments (`segments`, 1
        unless set), one it refuses with 0."""
        self.batches.append(len(pdus))
        results: list[str | BackendError] = []
        allowed = throttle([self._segments(pdu.destination_addr) for pdu in pdus])
        for pdu, ok in zip(pdus, allowed, strict=True):
            if not ok:
                results.append(BackendError("throttled", command_status=CommandStatus.ESME_RTHROTTLED))
                continue
            try:
                results.append(await self.submit(account, pdu))
            except BackendError as exc:
                results.append(exc)
        return results

    async def submit_multi(self, account: str, pdu: SubmitMulti, throttle: Throttle) -> MultiResult:
        segments = [self._segments(d.destination_addr) for d in pdu.destinations if isinstance(d, SmeAddress)]
        if not throttle([sum(segments)])[0]:
            raise BackendError("throttled", command_status=CommandStatus.ESME_RTHROTTLED)
        self.submitted.append((account, pdu))
        unsuccessful = tuple(
            UnsuccessfulDestination(d.dest_addr_ton, d.dest_addr_npi, d.destination_addr, CommandStatus.ESME_RINVDSTADR)
            for d in pdu.destinations
            if isinstance(d, SmeAddress) and d.destination_addr in self.refuse_destinations
        )
        return MultiResult(self._new_id(account), unsuccessful)

    def _segments(self, destination: str) -> int:
        if self.fail_submits_with is not None or destination in self.refuse_destinations:
            return 0
        return self.segments.get(destination, 1)

    def _owned(self, account: str, message_id: str, status: int) -> None:
        if self.owners.get(message_id) != account:
            raise BackendError(f"unknown message_id {message_id}", command_status=status)

    async def query(self, account: str, message_id: str, source_addr: str) -> MessageStatus:
        self._owned(account, message_id, CommandStatus.ESME_RQUERYFAIL)
        state = MessageState.DELETED if message_id in self.cancelled else MessageState.ENROUTE
        return MessageStatus(message_id, state, None, 0)

    async def cancel(self, account: str, pdu: CancelSm) -> None:
        self._owned(account, pdu.message_id, CommandStatus.ESME_RCANCELFAIL)
        self.cancelled.append(pdu.message_id)

    async def replace(self, account: str, pdu: ReplaceSm) -> None:
        self._owned(account, pdu.message_id, CommandStatus.ESME_RREPLACEFAIL)
        self.replaced.append(pdu.message_id)

    # ---- outbound ----------------------------------------------------------------------------------------------

    def offer(self, item: OutboundItem) -> None:
        self._queues.setdefault(item.account, deque()).append(item)
        self._changed.set()

    def waiting(self, account: str) -> int:
        return len(self._queues.get(account, ()))

    async def next_outbound(self, account: str) -> OutboundItem:
        while not self._queues.get(account):
            self._changed = trio.Event() if self._changed.is_set() else self._changed
            await self._changed.wait()
        item = self._queues[account].popleft()
        self._reserved[item.item_id] = item
        return item

    async def acknowledge(self, item_id: str) -> None:
        del self._reserved[item_id]
        self.acknowledged.append(item_id)

    async def release(self, item_id: str) -> None:
        item = self._reserved.pop(item_id)
        self.released.append(item_id)
        self.offer(item)
