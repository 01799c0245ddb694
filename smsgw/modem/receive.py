"""Incoming SMS-DELIVERs to `IncomingSms`, sans-IO: concatenated parts reassembled with `smsgw.pdu.reassembly`.

Besides the reassembler this remembers where each part is stored in the modem, so the driver deletes a part
only together with the message it belongs to, after the sink took that message. A part that is a duplicate
of one already held is discarded at once (its storage slot may be freed).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from smsgw.modem.seams import IncomingSms
from smsgw.pdu.errors import PduError
from smsgw.pdu.reassembly import PartInfo, Reassembled, Reassembler
from smsgw.pdu.text import Encoding
from smsgw.pdu.tpdu import SmsDeliver
from smsgw.pdu.udh import Udh

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredSlot:
    """Where a message sits in the modem: the +CPMS storage name and the index for AT+CMGR/AT+CMGD."""

    storage: str
    index: int


@dataclass(frozen=True, slots=True)
class CompleteMessage:
    sms: IncomingSms
    parts: int
    slots: tuple[StoredSlot, ...]  # to delete once the sink has `sms`


@dataclass(frozen=True, slots=True)
class Accepted:
    messages: tuple[CompleteMessage, ...] = ()
    discard: tuple[StoredSlot, ...] = ()  # duplicates: nothing depends on them


@dataclass(slots=True)
class _Held:
    """What the reassembler does not keep: storage slots and the first part's metadata."""

    slots: list[StoredSlot] = field(default_factory=list)
    received_at: datetime | None = None
    flash: bool = False


class IncomingParts:
    def __init__(self, reassembly_timeout_s: float) -> None:
        self._reassembler = Reassembler(reassembly_timeout_s)
        self._held: dict[tuple[str, object, int, int], _Held] = {}

    def next_deadline(self) -> float | None:
        return self._reassembler.next_deadline()

    def add(self, deliver: SmsDeliver, slot: StoredSlot | None, now: float, modem: str, msisdn: str) -> Accepted:
        slots = (slot,) if slot is not None else ()
        encoding = deliver.dcs.encoding
        flash = deliver.message_class == 0
        originator = deliver.originator.number
        part = _part(deliver, encoding)
        if part is None:
            sms = _incoming(modem, msisdn, originator, deliver.scts, flash, encoding, deliver.user_data, deliver.text)
            return Accepted((CompleteMessage(sms, 1, slots),))
        if self._reassembler.is_duplicate(originator, part, now):
            log.info("duplicate part ignored modem=%s originator=%s sequence=%d", modem, originator, part.sequence)
            return Accepted(discard=slots)
        result = self._reassembler.add(originator, part, now)
        key = (originator, part.scheme, part.reference, part.total)
        held = self._held.setdefault(key, _Held(flash=flash))
        held.slots.extend(slots)
        if held.received_at is None or deliver.scts < held.received_at:
            held.received_at = deliver.scts
        if result is None:
            return Accepted(self._take_evicted(now, modem, msisdn))
        return Accepted((self._complete(result, modem, msisdn),))

    def expire(self, now: float, modem: str, msisdn: str) -> tuple[CompleteMessage, ...]:
        """Messages whose parts stopped arriving: delivered with what came, marked incomplete."""
        return tuple(self._complete(result, modem, msisdn) for result in self._reassembler.expire(now))

    def _take_evicted(self, now: float, modem: str, msisdn: str) -> tuple[CompleteMessage, ...]:
        deadline = self._reassembler.next_deadline()
        if deadline is None or deadline > now:
            return ()
        return self.expire(now, modem, msisdn)

    def _complete(self, result: Reassembled, modem: str, msisdn: str) -> CompleteMessage:
        key = (result.key_source, result.scheme, result.reference, result.total)
        held = self._held.pop(key, None) or _Held()
        data = b"".join(part.data for part in result.parts)
        text: str | None = None
        if result.encoding is not Encoding.BINARY:
            try:
                text = result.text()
            except PduError as exc:
                log.warning("undecodable text modem=%s originator=%s error=%s", modem, result.key_source, exc)
        received_at = held.received_at or datetime.fromtimestamp(0, UTC)
        sms = _incoming(modem, msisdn, result.key_source, received_at, held.flash, result.encoding, data, text)
        if result.incomplete:
            sms = dataclasses.replace(sms, incomplete=True)
        return CompleteMessage(sms, len(result.parts), tuple(held.slots))


def _part(deliver: SmsDeliver, encoding: Encoding) -> PartInfo | None:
    if not deliver.udh:
        return None
    try:
        concatenation = Udh.from_bytes(deliver.udh).concatenation
        if concatenation is None:
            return None
        return PartInfo.from_concatenation(concatenation, deliver.user_data, encoding)
    except PduError as exc:
        log.warning("bad concatenation header, taken as a single message error=%s", exc)
        return None


def _incoming(
    modem: str,
    msisdn: str,
    originator: str,
    received_at: datetime,
    flash: bool,
    encoding: Encoding,
    data: bytes,
    text: str | None,
) -> IncomingSms:
    binary = encoding is Encoding.BINARY or text is None
    return IncomingSms(
        modem=modem,
        modem_msisdn=msisdn,
        originator=originator,
        text="" if text is None else text,
        data_coding=encoding.data_coding,
        received_at=received_at,
        flash=flash,
        user_data=data if binary else b"",
    )

