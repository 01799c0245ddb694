"""What follows a segment's state change, pure: whether its message's state is derived again, the message's
outcome (state and err code) from its segments, whether a receipt follows and what it says; and the dispatcher's
rules for a segment found due (expire or hand off), a retry's due time and a status report's err code.

A store engine applies these inside the transaction that changes the segment, so a crash can never leave a state
change without its receipt; it only reads and writes the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from smsgw.pdu.dlr import EXCERPT_LENGTH
from smsgw.scheduler.model import Address, ReceiptRecord
from smsgw.scheduler.states import (
    FINAL,
    Event,
    State,
    message_state,
    wants_final_receipt,
    wants_intermediate_receipt,
)

EXPIRED_ERROR: Final = 0x46  # TP-Status "validity period expired"
_INTERMEDIATE: Final = frozenset({Event.TEMPORARY_FAILURE, Event.NETWORK_ENROUTE})


def is_intermediate(event: Event) -> bool:
    """An event that leaves the segment on its way (a retry, the network still trying): worth an intermediate
    receipt even when the state does not change."""
    return event in _INTERMEDIATE


def message_follows(old: State, new: State, event: Event) -> bool:
    """Whether the message's state is derived again: only a segment's change (or an intermediate event) moves it."""
    return new is not old or is_intermediate(event)


def message_outcome(segments: Sequence[tuple[State, int]]) -> tuple[State, int]:
    """The message's state derived from its segments' (state, err code) in order, and its err code: once final,
    that of its first segment in the derived state that has one."""
    derived = message_state(state for state, _ in segments)
    if derived not in FINAL:
        return derived, 0
    return derived, next((error for state, error in segments if state is derived and error), 0)


def receipt_follows(previous: State, derived: State, registered_delivery: int, *, intermediate: bool) -> bool:
    """Whether the message's change from `previous` to `derived` queues a receipt, as `registered_delivery` asks:
    a final one when it has just become final, an intermediate one for an intermediate event."""
    if derived in FINAL and derived is not previous:
        return wants_final_receipt(registered_delivery, derived)
    return intermediate and wants_intermediate_receipt(registered_delivery)


def make_receipt(
    *,
    message_id: str,
    esme_source: Address,
    handset: Address,
    state: State,
    error_code: int,
    submitted_ms: int,
    done_ms: int,
    segment_count: int,
    delivered_segments: int,
    text: str,
    service_type: str,
) -> ReceiptRecord:
    """The receipt of a message: from the handset (the original destination) to the ESME's original source,
    quoting the start of its text."""
    return ReceiptRecord(
        message_id=message_id,
        source=handset,
        destination=esme_source,
        state=state,
        error_code=error_code,
        submitted_ms=submitted_ms,
        done_ms=done_ms,
        submitted_segments=segment_count,
        delivered_segments=delivered_segments,
        text=text[:EXCERPT_LENGTH],  # what the receipt's `text:` can carry
        service_type=service_type,
    )


def expires_when_due(state: State, now_ms: int, expires_ms: int) -> bool:
    """A segment found due ends EXPIRED instead of being handed off when its validity is over, or when it is
    PROCESSING: then it was sent, and what came due is its report deadline."""
    return state is State.PROCESSING or now_ms >= expires_ms


def expiry_error(error_code: int) -> int:
    """An expired segment keeps the err code of its last failure, else TP-Status "validity period expired"."""
    return error_code or EXPIRED_ERROR


def retry_due_ms(retry_at_ms: int, expires_ms: int) -> int:
    """A temporary failure is due again at its retry time, or at validity end when that comes first."""
    return min(retry_at_ms, expires_ms)


def report_error(event: Event, tp_st: int) -> int:
    """A status report's err code: 000 for delivered, else its TP-Status."""
    return 0 if event is Event.DELIVERED else tp_st
