"""Message and segment states (DESIGN.md "Message states"): one transition table, and a message's state derived
from its segments.

A segment is what one modem sends; a message is what one ESME submitted to one destination. Every state change
of a segment goes through `transition`, which refuses anything not in `TRANSITIONS`, naming state and event.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Final

from smsgw.pdu.constants import MessageState, RegisteredDelivery, smsc_receipt_requested
from smsgw.pdu.tpdu import StatusMeaning, status_meaning


class State(enum.IntEnum):
    """Values are the seed service's codes where it has one; the others sit above its range."""

    ACCEPTED = 2
    SCHEDULED = 3
    PROCESSING = 4
    RETRY = 19
    EXPIRED = 20
    UNDELIVERABLE = 21
    DELIVERED = 22
    CANCELLED = 30
    REJECTED = 31


class Event(enum.Enum):
    HAND_OFF = "hand_off"  # claimed for a modem, recorded before the AT command
    SENT = "sent"  # the modem reports the network accepted it (TP-MR known)
    TEMPORARY_FAILURE = "temporary_failure"  # modem error, no modem free, network temporary TP-ST
    PERMANENT_FAILURE = "permanent_failure"
    NETWORK_ENROUTE = "network_enroute"  # status report: SC still trying
    DELIVERED = "delivered"
    VALIDITY_ENDED = "validity_ended"
    CANCEL = "cancel"
    REJECT = "reject"  # policy outcome after acceptance
    INTERRUPTED = "interrupted"  # restart found a hand-off without outcome (see recovery in sqlite_store)
    RESCHEDULE = "reschedule"  # replace_sm with a new schedule


PENDING: Final = frozenset({State.ACCEPTED, State.SCHEDULED, State.RETRY})
FINAL: Final = frozenset(
    {State.EXPIRED, State.UNDELIVERABLE, State.DELIVERED, State.CANCELLED, State.REJECTED}
)
FAILED: Final = FINAL - {State.DELIVERED}

_FROM_PENDING: Final[Mapping[Event, State]] = {
    Event.HAND_OFF: State.PROCESSING,
    Event.PERMANENT_FAILURE: State.UNDELIVERABLE,  # the route disappeared before hand-off (err 804)
    Event.VALIDITY_ENDED: State.EXPIRED,
    Event.CANCEL: State.CANCELLED,
    Event.REJECT: State.REJECTED,
}

TRANSITIONS: Final[Mapping[tuple[State, Event], State]] = {
    **{(state, event): target for state in PENDING for event, target in _FROM_PENDING.items()},
    (State.ACCEPTED, Event.RESCHEDULE): State.SCHEDULED,
    (State.SCHEDULED, Event.RESCHEDULE): State.SCHEDULED,
    (State.PROCESSING, Event.SENT): State.PROCESSING,
    (State.PROCESSING, Event.NETWORK_ENROUTE): State.PROCESSING,
    (State.PROCESSING, Event.TEMPORARY_FAILURE): State.RETRY,
    (State.PROCESSING, Event.PERMANENT_FAILURE): State.UNDELIVERABLE,
    (State.PROCESSING, Event.DELIVERED): State.DELIVERED,
    (State.PROCESSING, Event.VALIDITY_ENDED): State.EXPIRED,
    (State.PROCESSING, Event.INTERRUPTED): State.RETRY,
}


class IllegalTransition(Exception):
    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"segment in state {state.name} cannot take event {event.value}")
        self.state = state
        self.event = event


def transition(state: State, event: Event) -> State:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(state, event) from None


_SMPP_STATE: Final[Mapping[State, MessageState]] = {
    State.ACCEPTED: MessageState.ENROUTE,
    State.SCHEDULED: MessageState.ENROUTE,
    State.PROCESSING: MessageState.ENROUTE,
    State.RETRY: MessageState.ENROUTE,
    State.DELIVERED: MessageState.DELIVERED,
    State.EXPIRED: MessageState.EXPIRED,
    State.CANCELLED: MessageState.DELETED,
    State.UNDELIVERABLE: MessageState.UNDELIVERABLE,
    State.REJECTED: MessageState.REJECTED,
}
_RECEIPT_STAT: Final[Mapping[State, str]] = {
    State.PROCESSING: "ENROUTE",
    State.RETRY: "ENROUTE",
    State.DELIVERED: "DELIVRD",
    State.EXPIRED: "EXPIRED",
    State.CANCELLED: "DELETED",
    State.UNDELIVERABLE: "UNDELIV",
    State.REJECTED: "REJECTD",
}


def smpp_message_state(state: State) -> MessageState:
    return _SMPP_STATE[state]


def receipt_stat(state: State) -> str:
    return _RECEIPT_STAT.get(state, "ENROUTE")


# When several parts failed differently, the message reports the most operator-relevant one.
_FAILURE_PRIORITY: Final = (State.REJECTED, State.CANCELLED, State.UNDELIVERABLE, State.EXPIRED)
_PROGRESS_PRIORITY: Final = (State.PROCESSING, State.RETRY, State.ACCEPTED, State.SCHEDULED)


def message_state(segment_states: Iterable[State]) -> State:
    """A message is final when every segment is; then DELIVERED only if all were, else its worst failure.

    While some segment is still open the message shows the most advanced open state (a part on a modem makes the
    whole message PROCESSING).
    """
    states = set(segment_states)
    if not states:
        raise ValueError("a message has at least one segment")
    open_states = states - FINAL
    if open_states:
        return next(s for s in _PROGRESS_PRIORITY if s in open_states)
    if states == {State.DELIVERED}:
        return State.DELIVERED
    return next(s for s in _FAILURE_PRIORITY if s in states)


def wants_final_receipt(registered_delivery: int, state: State) -> bool:
    requested = smsc_receipt_requested(registered_delivery)
    if requested == RegisteredDelivery.RECEIPT_ALWAYS:
        return True
    if requested == RegisteredDelivery.RECEIPT_ON_FAILURE:
        return state in FAILED
    # 3 is reserved in SMPP 3.4; SMPP 5.0 and common SMSCs read it as "on success only".
    return requested == RegisteredDelivery.SMSC_RECEIPT_MASK and state is State.DELIVERED


def wants_intermediate_receipt(registered_delivery: int) -> bool:
    return bool(registered_delivery & RegisteredDelivery.INTERMEDIATE_NOTIFICATION)


_REPORT_EVENTS: Final[Mapping[StatusMeaning, Event]] = {
    StatusMeaning.DELIVERED: Event.DELIVERED,
    StatusMeaning.TEMPORARY_STILL_TRYING: Event.NETWORK_ENROUTE,
    StatusMeaning.PERMANENT: Event.PERMANENT_FAILURE,
    StatusMeaning.EXPIRED: Event.VALIDITY_ENDED,
    # The network stopped trying after a temporary error: we try again ourselves until validity ends.
    StatusMeaning.TEMPORARY_GAVE_UP: Event.TEMPORARY_FAILURE,
}


def report_event(tp_st: int) -> Event:
    """What a TS 23.040 TP-Status means for the segment it reports on."""
    return _REPORT_EVENTS[status_meaning(tp_st)]
