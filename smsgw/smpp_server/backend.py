"""The seam between SMPP sessions and whatever stores messages (the scheduler in production, a double in tests).

The session validates the PDU's wire-level fields before calling the backend; the backend applies business rules
and persistence and answers with values or raises `BackendError` carrying the `command_status` to answer with.
Every `submit*` returns only after the message is durable: its result is what `submit_sm_resp` acknowledges.
The server sends submit_sm/data_sm through `submit_many` (one call per read's worth); `submit` is the single form.
The server's throttle is charged by the backend, through the `Throttle` the server passes, with the segments the
backend prepared (its one count of them), before it stores anything: the session does not count segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from smsgw.pdu.smpp import CancelSm, DataSm, DeliverSm, ReplaceSm, SubmitMulti, SubmitSm
    from smsgw.smpp_server.throttle import Throttle


class BackendError(Exception):
    """A request the backend refuses; `command_status` is the SMPP status for the response PDU."""

    def __init__(self, message: str, *, command_status: int) -> None:
        super().__init__(message)
        self.command_status = command_status


@dataclass(frozen=True, slots=True)
class UnsuccessfulDestination:
    dest_addr_ton: int
    dest_addr_npi: int
    destination_addr: str
    error_status_code: int


@dataclass(frozen=True, slots=True)
class MultiResult:
    message_id: str
    unsuccessful: tuple[UnsuccessfulDestination, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageStatus:
    message_id: str
    message_state: int  # smsgw.pdu MessageState value (ENROUTE, DELIVERED, ...)
    final_date: datetime | None
    error_code: int  # the receipt's err: value (network TP-Status or 8xx)


@dataclass(frozen=True, slots=True)
class OutboundItem:
    """A receipt or MO waiting in the store for an ESME of `account`; the session assigns the sequence number."""

    item_id: str
    account: str
    pdu: DeliverSm


class SmppBackend(Protocol):
    async def submit(self, account: str, pdu: SubmitSm | DataSm) -> str:
        """Accept and persist one submission; returns its message_id. Raises BackendError."""

    async def submit_many(
        self, account: str, pdus: Sequence[SubmitSm | DataSm], throttle: Throttle
    ) -> Sequence[str | BackendError]:
        """Accept and persist the submissions of one read together (one durable commit), as `submit` would each.

        Before storing, `throttle` is called once with the segments of each submission the backend would store
        (0 for one it refuses anyway); one it holds back is refused ESME_RTHROTTLED and not stored.
        Returns one result per PDU, in the order given: its message_id, or the BackendError refusing that PDU
        (the others are still accepted). Every accepted one is durable before this returns. Raising (BackendError
        or anything else) refuses the whole batch: none of it may have been accepted then.
        """

    async def submit_multi(self, account: str, pdu: SubmitMulti, throttle: Throttle) -> MultiResult:
        """Accept a submit_multi; per-destination refusals go in `unsuccessful`. Raises BackendError if none.

        `throttle` is called once with one count, the segments of every destination the backend would store;
        held back, the submit_multi is refused ESME_RTHROTTLED (BackendError) and nothing is stored."""

    async def query(self, account: str, message_id: str, source_addr: str) -> MessageStatus:
        """Raises BackendError(ESME_RQUERYFAIL) for an unknown id or one owned by another account."""

    async def cancel(self, account: str, pdu: CancelSm) -> None:
        """Raises BackendError(ESME_RCANCELFAIL) when the message is already handed to a modem/route or final."""

    async def replace(self, account: str, pdu: ReplaceSm) -> None:
        """Raises BackendError(ESME_RREPLACEFAIL) when the message is already handed to a modem/route or final."""

    async def next_outbound(self, account: str) -> OutboundItem:
        """Wait for the next receipt/MO for `account` and reserve it for the caller until acknowledge/release.

        Cancellation leaves nothing reserved (a pusher is stopped by cancelling it). An item at hand is returned
        before any checkpoint: the server asks under a cancelled scope to take, without waiting, what is ready."""

    async def acknowledge(self, item_id: str) -> None:
        """The ESME answered deliver_sm_resp OK: the item is done and never offered again."""

    async def release(self, item_id: str) -> None:
        """Not delivered (error status, timeout, disconnect): offer the item again later, to any bind."""
