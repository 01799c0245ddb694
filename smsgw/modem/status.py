"""What a modem is and has done: its state, what it told us about itself, its counters, and the status snapshot
the pool, the status file and `smsgw modems` read.

`ModemInfo` and `ModemCounts` are the driver's live records, written by the start-up script, the reader, the
poller and the receive path as answers and messages arrive (hence mutable); `ModemStatus` is the frozen value
made from them on request.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from smsgw.modem.quirks import GENERIC, ModemQuirks


class ModemState(enum.Enum):
    CLOSED = "closed"  # port not open (absent device, or waiting to re-open)
    INITIALISING = "initialising"
    REGISTERING = "registering"  # waiting for the network
    READY = "ready"
    RESETTING = "resetting"  # AT+CFUN=1,1 sent, waiting for the modem to come back
    DOWN = "down"  # given up on: needs an operator (SIM, PIN) or still hung after a reset


@dataclass(slots=True)
class ModemInfo:
    """What the modem told us about itself: identity at start-up, network as polled or announced."""

    manufacturer: str = ""
    model: str = ""
    imei: str = ""
    imsi: str = ""
    quirks: ModemQuirks = GENERIC
    signal_rssi: int | None = None  # +CSQ <rssi> 0-31; None when unknown
    registration: int | None = None  # +CREG <stat>
    operator: str = ""


@dataclass(slots=True)
class ModemCounts:
    sent: int = 0
    failed: int = 0
    received: int = 0
    status_reports: int = 0
    # Status reports found in modem storage by the start-up scans (they arrived while the gateway was away).
    stored_reports_at_start: int = 0


@dataclass(frozen=True, slots=True)
class ModemStatus:
    name: str
    port: str
    group: str
    msisdn: str
    state: ModemState
    manufacturer: str
    model: str
    imei: str
    imsi: str
    quirks: str
    signal_rssi: int | None  # +CSQ <rssi> 0-31; None when unknown
    registration: int | None  # +CREG <stat>
    operator: str
    sent: int
    failed: int
    received: int
    status_reports: int
    sent_last_minute: int
    sent_today: int
    sent_this_month: int
    limit_reached: str | None
    last_error: str
    # Status reports found in modem storage by the start-up scans (they arrived while the gateway was away).
    stored_reports_at_start: int = 0
