"""The seam between the modem pool and the scheduler: what goes out, what comes back, and who hears it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    """One segment as a modem sends it: the driver builds the SMS-SUBMIT TPDU and chooses TP-MR."""

    segment_id: str  # for logs and hand-off records; opaque to the modem
    destination: str  # international digits without '+', or national digits
    data_coding: int  # TP-DCS alphabet as SMPP data_coding: 0 GSM 7-bit, 4 8-bit, 8 UCS-2
    user_data: bytes  # GSM: unpacked septets (one per byte); UCS-2: UTF-16BE; 8-bit: raw. UDH excluded.
    udh: bytes = b""  # the user data header including its length octet, or empty
    status_report: bool = False  # TP-SRR
    validity: timedelta | None = None  # TP-VP (relative); None: no TP-VP
    flash: bool = False  # message class 0
    modem_group: str = "default"


@dataclass(frozen=True, slots=True)
class Sent:
    modem: str
    modem_msisdn: str
    tp_mr: int
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class SendFailed:
    temporary: bool  # True: try again later (or on another modem); False: the destination will never accept it
    reason: str
    cms_error: int | None = None


SendOutcome = Sent | SendFailed


@dataclass(frozen=True, slots=True)
class IncomingSms:
    """An SMS received by a modem (reassembled when it had several parts)."""

    modem: str
    modem_msisdn: str
    originator: str  # digits, or alphanumeric sender
    text: str
    data_coding: int
    received_at: datetime  # TP-SCTS of the first part
    flash: bool = False
    incomplete: bool = False  # some parts never arrived before the reassembly timeout
    user_data: bytes = b""  # raw payload for 8-bit messages


@dataclass(frozen=True, slots=True)
class StatusReport:
    modem: str
    tp_mr: int
    recipient: str
    tp_st: int  # TS 23.040 TP-Status
    discharge_time: datetime
    service_centre_time: datetime


class SmsSender(Protocol):
    async def send(self, sms: OutgoingSms) -> SendOutcome:
        """Send through any healthy modem of `sms.modem_group` with capacity; never raises for modem problems."""


class ModemEventSink(Protocol):
    async def incoming_sms(self, sms: IncomingSms) -> None:
        """Persist the MO; the modem deletes it from SIM storage only after this returns."""

    async def status_report(self, report: StatusReport) -> None:
        """Persist and match the status report to its segment."""
