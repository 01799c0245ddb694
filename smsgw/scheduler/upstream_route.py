"""The scheduler's side of upstream SMPP routes: a claimed segment as the submit_sm an upstream SMSC gets, and the
deliver_sm it sends back (receipts to the store, MO to the same routing as modem MO).

The gateway's `Upstreams` (smpp_server/upstream.py) is reached through `UpstreamSubmitter`; the store commits a
receipt before `UpstreamReceiver.deliver` returns, and only then is deliver_sm_resp written.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Final, Protocol

from smsgw.modem.seams import IncomingSms
from smsgw.pdu.constants import CommandStatus, Npi, Ton
from smsgw.pdu.dlr import parse_receipt
from smsgw.pdu.errors import PduError
from smsgw.pdu.smpp import DataSm, DeliverSm, SubmitSm
from smsgw.pdu.smpp_time import format_absolute
from smsgw.pdu.text import decode_text
from smsgw.scheduler.model import Handoff
from smsgw.scheduler.store import MessageStore
from smsgw.scheduler.timing import WallClock
from smsgw.smpp_server.upstream import UpstreamOutcome

log = logging.getLogger(__name__)

_UDHI: Final = 0x40
_RECEIPT_TYPE_MASK: Final = 0x3C  # esm_class bits 2-5: message type
_DELIVERY_RECEIPT: Final = 0x04
_FLASH_DCS: Final = {0: 0x10, 4: 0x14, 8: 0x18}  # data_coding with message class 0, by alphabet
_MS: Final = 1000
# The modem name an MO from an upstream is recorded under (`smsgw modems`-style listings, reply lookups).
UPSTREAM_MO_PREFIX: Final = "upstream:"


class UpstreamSubmitter(Protocol):
    async def submit(self, upstream: str, pdu: SubmitSm) -> UpstreamOutcome:
        """The SMSC's verdict on `pdu`; an unknown upstream name is `NotSent`."""


def submit_sm_for(handoff: Handoff, *, receipts: bool) -> SubmitSm:
    """The claimed segment as a submit_sm: international destination, our sender, the segment's UDH in the short
    message, its expiry as the validity period, a receipt asked for unless the route wants none."""
    return SubmitSm(
        sequence_number=0,
        source_addr=handoff.source_addr,
        source_addr_ton=handoff.source_addr_ton,
        source_addr_npi=handoff.source_addr_npi,
        destination_addr=handoff.destination,
        dest_addr_ton=Ton.INTERNATIONAL,
        dest_addr_npi=Npi.ISDN,
        esm_class=_UDHI if handoff.udh else 0,
        registered_delivery=1 if receipts else 0,
        data_coding=_FLASH_DCS.get(handoff.data_coding, handoff.data_coding) if handoff.flash else handoff.data_coding,
        validity_period=format_absolute(datetime.fromtimestamp(handoff.expires_ms / _MS, timezone.utc)),
        short_message=handoff.udh + handoff.user_data,
    )


class UpstreamReceiver:
    """The upstreams' `UpstreamSink`: receipts matched to our segments, MO handed to `incoming_sms`."""

    def __init__(
        self, store: MessageStore, clock: WallClock, incoming_sms: Callable[[IncomingSms], Awaitable[None]]
    ) -> None:
        self._store = store
        self._clock = clock
        self._incoming_sms = incoming_sms

    async def deliver(self, upstream: str, pdu: DeliverSm | DataSm) -> int:
        if pdu.esm_class & _RECEIPT_TYPE_MASK == _DELIVERY_RECEIPT:
            return await self._receipt(upstream, pdu)
        if not isinstance(pdu, DeliverSm):
            return CommandStatus.ESME_RINVCMDID  # an MO as data_sm is not taken (no short_message to route)
        try:
            text = decode_text(pdu.short_message, pdu.data_coding)
        except PduError as exc:
            log.info("upstream mo not decodable upstream=%s error=%s", upstream, exc)
            return exc.command_status
        await self._incoming_sms(
            IncomingSms(
                modem=f"{UPSTREAM_MO_PREFIX}{upstream}",
                modem_msisdn=pdu.destination_addr,
                originator=pdu.source_addr,
                text=text,
                data_coding=pdu.data_coding,
                received_at=datetime.fromtimestamp(self._clock.now_ms() / _MS, timezone.utc),
                user_data=pdu.short_message,
            )
        )
        return CommandStatus.ESME_ROK

    async def _receipt(self, upstream: str, pdu: DeliverSm | DataSm) -> int:
        tlvs = pdu.tlvs
        try:
            receipt = parse_receipt(
                pdu.short_message if isinstance(pdu, DeliverSm) else tlvs.message_payload or b"",
                receipted_message_id=tlvs.receipted_message_id,
                message_state=tlvs.message_state,
                network_error_code=tlvs.network_error_code,
            )
        except PduError as exc:
            log.info("upstream receipt not readable upstream=%s error=%s", upstream, exc)
            return exc.command_status
        state = await self._store.apply_upstream_receipt(
            upstream, receipt.message_id, receipt.stat, receipt.err, self._clock.now_ms()
        )
        if state is None:
            # Usually one that overtook the write of its submit_sm_resp: kept, applied when that is written.
            log.info("upstream receipt not matched yet upstream=%s id=%s stat=%s", upstream, receipt.message_id,
                     receipt.stat)
        else:
            log.info("upstream receipt upstream=%s id=%s stat=%s state=%s", upstream, receipt.message_id,
                     receipt.stat, state.name)
        return CommandStatus.ESME_ROK
