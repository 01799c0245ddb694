"""SMPP 3.4 bind states (section 2.2) as one transition table, and which operations each side may send when.

Both roles live here because the same core runs on either end of a connection: `Role.SMSC` for our server
(and for outbind connections we open), `Role.ESME` for a client core (the tests join one to a server core).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from smsgw.pdu.constants import CommandId


# StrEnum rather than Enum: its members hash at C speed, and these are looked up per PDU.
class Role(enum.StrEnum):
    SMSC = "smsc"
    ESME = "esme"

    @property
    def peer(self) -> Role:
        return Role.ESME if self is Role.SMSC else Role.SMSC


class BindState(enum.StrEnum):
    OPEN = "open"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBOUND = "unbound"
    CLOSED = "closed"


class Transition(enum.StrEnum):
    """What moves a session between states; the side that sends/receives the PDU does not matter."""

    BIND_TX_OK = "bind_transmitter_resp ok"
    BIND_RX_OK = "bind_receiver_resp ok"
    BIND_TRX_OK = "bind_transceiver_resp ok"
    UNBIND = "unbind"
    CLOSE = "close"


class BindStateError(Exception):
    """A transition that is not in the table: a bug in the caller, never a peer's fault."""

    def __init__(self, state: BindState, transition: Transition) -> None:
        super().__init__(f"no transition {transition.value!r} from state {state.value}")
        self.state = state
        self.transition = transition


BOUND: Final = frozenset({BindState.BOUND_TX, BindState.BOUND_RX, BindState.BOUND_TRX})
_TRANSMIT: Final = frozenset({BindState.BOUND_TX, BindState.BOUND_TRX})
_RECEIVE: Final = frozenset({BindState.BOUND_RX, BindState.BOUND_TRX})

TRANSITIONS: Final[Mapping[tuple[BindState, Transition], BindState]] = {
    (BindState.OPEN, Transition.BIND_TX_OK): BindState.BOUND_TX,
    (BindState.OPEN, Transition.BIND_RX_OK): BindState.BOUND_RX,
    (BindState.OPEN, Transition.BIND_TRX_OK): BindState.BOUND_TRX,
    **{(state, Transition.UNBIND): BindState.UNBOUND for state in BOUND},
    **{(state, Transition.CLOSE): BindState.CLOSED for state in BindState},
}

BIND_TRANSITIONS: Final[Mapping[int, Transition]] = {
    CommandId.BIND_TRANSMITTER_RESP: Transition.BIND_TX_OK,
    CommandId.BIND_RECEIVER_RESP: Transition.BIND_RX_OK,
    CommandId.BIND_TRANSCEIVER_RESP: Transition.BIND_TRX_OK,
}
BIND_RESPONSES: Final = frozenset(BIND_TRANSITIONS)

# Requests only: who may originate each one, and in which states (SMPP 3.4 table 2-1). Responses are allowed
# whenever their request is outstanding, which the session checks by sequence number instead.
_ANY_BOUND_OR_OPEN: Final = BOUND | {BindState.OPEN}
ALLOWED: Final[Mapping[tuple[Role, int], frozenset[BindState]]] = {
    (Role.ESME, CommandId.BIND_TRANSMITTER): frozenset({BindState.OPEN}),
    (Role.ESME, CommandId.BIND_RECEIVER): frozenset({BindState.OPEN}),
    (Role.ESME, CommandId.BIND_TRANSCEIVER): frozenset({BindState.OPEN}),
    (Role.SMSC, CommandId.OUTBIND): frozenset({BindState.OPEN}),
    (Role.ESME, CommandId.UNBIND): BOUND,
    (Role.SMSC, CommandId.UNBIND): BOUND,
    # SMPP 3.4 lists enquire_link for bound states only; many ESMEs probe before binding, so OPEN is allowed.
    (Role.ESME, CommandId.ENQUIRE_LINK): _ANY_BOUND_OR_OPEN,
    (Role.SMSC, CommandId.ENQUIRE_LINK): _ANY_BOUND_OR_OPEN,
    (Role.ESME, CommandId.SUBMIT_SM): _TRANSMIT,
    (Role.ESME, CommandId.SUBMIT_MULTI): _TRANSMIT,
    (Role.ESME, CommandId.DATA_SM): _TRANSMIT,
    (Role.ESME, CommandId.QUERY_SM): _TRANSMIT,
    (Role.ESME, CommandId.CANCEL_SM): _TRANSMIT,
    (Role.ESME, CommandId.REPLACE_SM): _TRANSMIT,
    (Role.SMSC, CommandId.DELIVER_SM): _RECEIVE,
    (Role.SMSC, CommandId.DATA_SM): _RECEIVE,
    (Role.SMSC, CommandId.ALERT_NOTIFICATION): _RECEIVE,
}


def next_state(state: BindState, transition: Transition) -> BindState:
    try:
        return TRANSITIONS[(state, transition)]
    except KeyError:
        raise BindStateError(state, transition) from None


_ALLOWED_BY_ROLE: Final[Mapping[Role, Mapping[int, frozenset[BindState]]]] = {
    role: {command_id: states for (r, command_id), states in ALLOWED.items() if r is role} for role in Role
}
# No state: what a command_id missing from a role's `allowed_requests` is allowed in.
NOWHERE: Final[frozenset[BindState]] = frozenset()


def allowed_requests(role: Role) -> Mapping[int, frozenset[BindState]]:
    """command_id -> the states in which `role` may originate that request (what `may_send` looks up; a per-PDU
    caller keeps it instead of calling, with NOWHERE for a command_id it lacks)."""
    return _ALLOWED_BY_ROLE[role]


def may_send(role: Role, command_id: int, state: BindState) -> bool:
    """Whether `role` may originate request `command_id` in `state`."""
    return state in _ALLOWED_BY_ROLE[role].get(command_id, NOWHERE)


def originates(role: Role, command_id: int) -> bool:
    """Whether `role` may send request `command_id` in some state."""
    return command_id in _ALLOWED_BY_ROLE[role]
