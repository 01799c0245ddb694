"""What an upstream SMSC's answers mean for a segment: its refusals at submit and its receipts, as the segment
events and `err:` codes of DESIGN.md (pure rules; the store applies them in its transactions)."""

from __future__ import annotations

from typing import Final

from smsgw.pdu.constants import CommandStatus, GatewayError
from smsgw.scheduler.states import Event

# Refusals of the sender: the same outcome as our own sender rules (err 805).
_SENDER_REFUSALS: Final = frozenset(
    {CommandStatus.ESME_RINVSRCADR, CommandStatus.ESME_RINVSRCTON, CommandStatus.ESME_RINVSRCNPI}
)
# A receipt's stat: word -> what it does to the segment. ENROUTE/ACCEPTD are intermediate; UNKNOWN is final (the
# SMSC gave up knowing), as failures are.
_RECEIPT_EVENTS: Final[dict[str, Event]] = {
    "DELIVRD": Event.DELIVERED,
    "EXPIRED": Event.VALIDITY_ENDED,
    "UNDELIV": Event.PERMANENT_FAILURE,
    "REJECTD": Event.PERMANENT_FAILURE,
    "DELETED": Event.PERMANENT_FAILURE,
    "UNKNOWN": Event.PERMANENT_FAILURE,
    "ENROUTE": Event.NETWORK_ENROUTE,
    "ACCEPTD": Event.NETWORK_ENROUTE,
}
_MAX_ERR: Final = 999


def refusal_error(command_status: int) -> int:
    """The `err:` of a segment an upstream refused for good."""
    if command_status in _SENDER_REFUSALS:
        return int(GatewayError.SENDER_NOT_ALLOWED)
    return int(GatewayError.UPSTREAM_REFUSED)


def receipt_event(stat: str) -> Event:
    return _RECEIPT_EVENTS.get(stat, Event.PERMANENT_FAILURE)


def receipt_error(event: Event, err: str) -> int:
    """The upstream's `err:` (3 digits) as ours; 0 for a delivery, and for anything that is not a number."""
    if event is Event.DELIVERED or not err.isdigit():
        return 0
    return min(int(err), _MAX_ERR)
