"""Messages the network delivers to the virtual modem (MT): stored in SIM/ME storage with an indication, or routed
to the host as `+CMT`/`+CDS`, as `+CNMI` chooses (TS 27.005 3.4.1), and under `+CSMS=1` kept until `+CNMA`."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from smsgw.modem.virtual.network import Mt, MtResult
from smsgw.modem.virtual.textmode import csdh_fields, status_report_fields, text_body, text_time
from smsgw.pdu.tpdu import SmsDeliver, SmsStatusReport, encode_with_smsc

if TYPE_CHECKING:
    from smsgw.modem.virtual.modem import ModemCore

log = logging.getLogger(__name__)

# How long the modem waits for +CNMA under +CSMS=1 before giving up on the host: the network's TR2N
# relay timer (TS 24.011 10, 12 to 20 s) runs out at about this time.
CNMA_TIMEOUT_S: Final = 15.0


@dataclass(frozen=True, slots=True)
class StoredSms:
    """A message in SIM/ME storage: its <stat> and the PDU as `+CMGR` shows it (SMSC address first)."""

    stat: int
    pdu: bytes
    tpdu_length: int
    message: Mt


@dataclass(slots=True)
class Storage:
    capacity: int
    slots: dict[int, StoredSms] = dataclasses.field(default_factory=dict)

    def free_index(self) -> int | None:
        return next((index for index in range(1, self.capacity + 1) if index not in self.slots), None)


@dataclass(frozen=True, slots=True)
class Unacknowledged:
    """A message routed to the host under +CSMS=1, waiting for +CNMA until `deadline`."""

    deadline: float
    message: Mt
    pdu: bytes


def receive_mt(modem: ModemCore, now: float, message: Mt) -> MtResult:
    """Store the SMS-DELIVER or SMS-STATUS-REPORT or pass it on to the host, per +CNMI."""
    _, mt, _, ds, _ = modem.settings.cnmi
    pdu = encode_with_smsc(message.to_bytes(), "+" + modem.config.smsc)
    length = tpdu_length(pdu)
    if isinstance(message, SmsStatusReport):
        if ds == 1:
            _direct(modem, now, message, pdu, _cds_lines(modem, message, pdu, length))
            return MtResult.ACCEPTED
        # ds=0 routes nothing to the host, but the modem keeps the report as it keeps an SMS-DELIVER: listed by
        # +CMGL and read by +CMGR (hosts that never set +CNMI, such as gammu, find their reports there).
        return store_mt(modem, message, pdu, "+CDSI" if ds == 2 else None)
    message_class = message.message_class
    if (mt == 2 and message_class != 2) or (mt == 3 and message_class == 3):
        _direct(modem, now, message, pdu, _cmt_lines(modem, message, pdu, length))
        return MtResult.ACCEPTED
    return store_mt(modem, message, pdu, "+CMTI" if mt != 0 else None)


def store_mt(modem: ModemCore, message: Mt, pdu: bytes, indication: str | None) -> MtResult:
    """Keep the message in the +CPMS <mem3> storage (class 2 on the SIM), announced by `indication` if given."""
    memory = modem.settings.cpms[2]
    if isinstance(message, SmsDeliver) and message.message_class == 2:
        memory = "SM"  # class 2 is SIM-specific (TS 23.038 4)
    storage = modem.storages[memory]
    index = storage.free_index()
    if index is None:
        modem.memory_exceeded = True
        log.info("virtual modem msisdn=%s memory full memory=%s", modem.msisdn, memory)
        return MtResult.MEMORY_FULL
    storage.slots[index] = StoredSms(0, pdu, tpdu_length(pdu), message)
    if indication is not None:
        modem.output.urc([f'{indication}: "{memory}",{index}'], sms=True)
    return MtResult.ACCEPTED


def cnma_timed_out(modem: ModemCore) -> None:
    """TS 27.005 3.4.1: without +CNMA in time the ME stops routing to the TE (<mt> and <ds> to 0). The network
    retries the refused message and the modem stores it, which is what storing it here amounts to."""
    log.warning("virtual modem msisdn=%s no +CNMA in time; routing to the host disabled", modem.msisdn)
    mode, _, bm, _, bfr = modem.settings.cnmi
    modem.settings = dataclasses.replace(modem.settings, cnmi=(mode, 0, bm, 0, bfr))
    unacknowledged, modem.unacknowledged = modem.unacknowledged, []
    for waiting in unacknowledged:
        if store_mt(modem, waiting.message, waiting.pdu, None) is not MtResult.ACCEPTED:
            log.warning("virtual modem msisdn=%s unacknowledged message lost: memory full", modem.msisdn)


def tpdu_length(pdu: bytes) -> int:
    """TPDU octets of a PDU-mode PDU: the SMSC part (its length octet and what it counts) excluded."""
    return len(pdu) - pdu[0] - 1


def _direct(modem: ModemCore, now: float, message: Mt, pdu: bytes, lines: list[str]) -> None:
    if modem.settings.csms == 1:
        modem.unacknowledged.append(Unacknowledged(now + CNMA_TIMEOUT_S, message, pdu))
    modem.output.urc(lines, sms=True)


def _cmt_lines(modem: ModemCore, message: SmsDeliver, pdu: bytes, length: int) -> list[str]:
    settings = modem.settings
    if settings.cmgf == 0:
        return [f"+CMT: ,{length}", pdu.hex().upper()]
    header = f'+CMT: "{message.originator}",,"{text_time(message.scts)}"'
    if settings.csdh:
        header += csdh_fields(message, modem.config.smsc)
    return [header, text_body(message.dcs, message.user_data, settings.cscs)]


def _cds_lines(modem: ModemCore, report: SmsStatusReport, pdu: bytes, length: int) -> list[str]:
    if modem.settings.cmgf == 0:
        return [f"+CDS: {length}", pdu.hex().upper()]
    return [f"+CDS: {status_report_fields(report)}"]
