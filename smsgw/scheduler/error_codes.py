"""The `err:` codes of receipts (DESIGN.md "Error codes in receipts") explained in words, for people: the portal's
message detail says what went wrong with this table, and docs/states.md lists the same 8xx meanings (a test keeps
the two the same).

`000` is no error; `001`-`255` a network's TS 23.040 TP-Status (named by `pdu.tpdu`); `8xx` the gateway's own
outcomes (`GatewayError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from smsgw.pdu.constants import GatewayError
from smsgw.pdu.tpdu import StatusMeaning, status_meaning, status_name

_MAX_TP_STATUS: Final = 0xFF


def is_tp_status(code: int) -> bool:
    """Whether `code` (a receipt's `err:`, a send's CMS error) is a network's TP-Status, not 0 or a gateway 8xx."""
    return 0 < code <= _MAX_TP_STATUS

GATEWAY_ERROR_MEANINGS: Final[Mapping[GatewayError, str]] = {
    GatewayError.INSUFFICIENT_BALANCE: "insufficient balance (in a submit_multi that was accepted for the other "
                                       "destinations)",
    GatewayError.DO_NOT_CALL: "promotional message to a number on the do-not-call register, without the account's "
                              "consent",
    GatewayError.BLOCKED_CONTENT: "the text matches a blocked keyword or pattern of the route",
    GatewayError.OPTED_OUT: "the handset opted out (texted STOP or another opt-out word) of this account",
    GatewayError.NO_ROUTE: "no route matches the destination, or no modem of its group is available",
    GatewayError.SENDER_NOT_ALLOWED: "a sender ID the account has not registered or the route does not carry",
    GatewayError.TOO_MANY_SEGMENTS: "more segments than the route's `max_segments`, however the text was split",
    GatewayError.HANDOFF_INTERRUPTED: "a restart found it handed to a modem or an upstream without an outcome "
                                      '(`interrupted_handoff = "fail"`); it may or may not have been sent, and was '
                                      "not sent again",
    GatewayError.UPSTREAM_REFUSED: "the upstream SMSC refused it for good (not throttling, not the sender: that is "
                                   "805); no failover",
}

_NETWORK_MEANINGS: Final[Mapping[StatusMeaning, str]] = {
    StatusMeaning.DELIVERED: "the network reports it delivered",
    StatusMeaning.TEMPORARY_STILL_TRYING: "a temporary network error; the network was still trying",
    StatusMeaning.PERMANENT: "a permanent network error",
    StatusMeaning.EXPIRED: "the network gave up when its validity period ended",
    StatusMeaning.TEMPORARY_GAVE_UP: "a temporary network error the network gave up on",
}


def explain_error(code: int) -> str:
    """`code` (a receipt's `err:` as a number) in words."""
    if code == 0:
        return "no error"
    if is_tp_status(code):
        name = status_name(code).lower().replace("_", " ")
        return f"{_NETWORK_MEANINGS[status_meaning(code)]}: {name} (TP-Status 0x{code:02X})"
    try:
        return GATEWAY_ERROR_MEANINGS[GatewayError(code)]
    except ValueError:
        return "an error code this gateway does not know"
