"""The receive path: what the modem reports (+CMTI/+CMT/+CDSI/+CDS) and what waits in its storage, read, handed
to the `ModemEventSink`, then deleted or acknowledged.

A stored message is deleted from the modem (and a direct one acknowledged with AT+CNMA) only after the sink
returned, so a crash in between leaves it on the SIM (or with the network) to be read again at the next start.
One worker task handles the codes in order, behind a queue the reader fills (`UrcQueue`); the start-up scan of
the storages runs in that task too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Final

import trio

from smsgw.modem.answers import first_int, storage_location
from smsgw.modem.at import Unsolicited
from smsgw.modem.exchange import CommandExchange, CommandTimeout
from smsgw.modem.receive import CompleteMessage, IncomingParts, StoredSlot
from smsgw.modem.seams import ModemEventSink, StatusReport
from smsgw.modem.startup import Storages
from smsgw.modem.status import ModemCounts, ModemInfo
from smsgw.pdu.errors import PduError
from smsgw.pdu.tpdu import SmsDeliver, SmsStatusReport, decode_tpdu, split_smsc

log = logging.getLogger(__name__)

# Received-message and status-report codes (+CMTI/+CMT/+CDSI/+CDS) queued for the URC worker before the reader
# stops reading. A gateway never drops what a modem reports: when the worker (that is, the store) cannot keep
# up, the reader stops taking bytes from the port and the modem and the kernel hold the rest. But the worker's
# own commands (AT+CMGR, AT+CMGD, AT+CNMA) and concurrent sends (AT+CMGS) are answered through the same reader,
# behind whatever codes the modem printed first; a reader that stopped while a command waits would deadlock with
# the worker. So the bound holds only while no command waits: with one outstanding the reader goes on reading
# and queueing, which adds at most what a modem can print within one command's timeout.
URC_QUEUE_LIMIT: Final = 256
RECEIVE_CODES: Final = frozenset({"+CMTI", "+CMT", "+CDSI", "+CDS"})


class UrcQueue:
    """The reader's codes for the worker, bounded by the reader itself (URC_QUEUE_LIMIT), not by the channel."""

    def __init__(self) -> None:
        # Unbounded as a channel: the reader enforces URC_QUEUE_LIMIT itself, see there.
        self._send, self._receive = trio.open_memory_channel[Unsolicited](math.inf)
        self._progress = trio.Event()  # the worker took a code or a command started: the reader may read

    def put(self, event: Unsolicited) -> None:
        self._send.send_nowait(event)  # never full: the reader bounds the queue before reading

    def wake(self) -> None:
        """The worker took a code, or a command is about to be written: a reader held back looks again."""
        self._progress.set()

    async def wait_for_room(self, command_waiting: Callable[[], bool]) -> None:
        """Stop reading while the URC queue is full and no command waits for its answer (URC_QUEUE_LIMIT)."""
        while self._receive.statistics().current_buffer_used >= URC_QUEUE_LIMIT and not command_waiting():
            progress = self._progress = trio.Event()
            await progress.wait()

    async def take(self) -> Unsolicited:
        event = await self._receive.receive()
        self.wake()
        return event


class ReceivePath:
    def __init__(
        self,
        name: str,
        msisdn: str,
        exchange: CommandExchange,
        urc: UrcQueue,
        sink: ModemEventSink,
        info: ModemInfo,
        counts: ModemCounts,
        reassembly_timeout_s: float,
    ) -> None:
        self._name = name
        self._msisdn = msisdn
        self._exchange = exchange
        self._sink = sink
        self._info = info
        self._counts = counts
        self._urc = urc
        self._parts = IncomingParts(reassembly_timeout_s)
        self._read_storage = ""
        self._report_storages: tuple[str, ...] = ()  # the quirk's report storages this modem offers
        self._scanning_storage = False  # reports handed over now were stored while we were away

    def use_storages(self, storages: Storages) -> None:
        """What start-up selected; a storage it could not select leaves the previous choice in place."""
        if storages.read is not None:
            self._read_storage = storages.read
        self._report_storages = storages.reports

    def next_deadline(self) -> float | None:
        """When `expire_parts` has a message to hand over whose parts stopped arriving."""
        return self._parts.next_deadline()

    # -- the URC worker -----------------------------------------------------------------------------------

    async def worker(self) -> None:
        # The scan runs in this task so a +CMTI for a message the scan already handled finds an empty slot
        # instead of delivering it twice.
        try:
            await self._scan_storage()
        except CommandTimeout as exc:
            log.warning("storage scan failed modem=%s error=%s", self._name, exc)
        while True:
            event = await self._urc.take()
            try:
                await self._handle_urc(event)
            except CommandTimeout as exc:
                log.warning("unsolicited code not handled modem=%s code=%s error=%s", self._name, event.name, exc)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise
            except Exception:
                # The sink failed (store down?): nothing was deleted or acknowledged, so nothing is lost.
                log.exception("unsolicited code not handled modem=%s code=%s", self._name, event.name)

    async def _handle_urc(self, event: Unsolicited) -> None:
        if event.name in ("+CMTI", "+CDSI"):
            location = storage_location(event.params)
            if location is None:
                log.warning("unreadable storage notification modem=%s line=%r", self._name, event.line)
                return
            await self._read_stored(*location)
        elif event.data is not None:  # +CMT / +CDS: the PDU came with the code
            handed_over = await self._handle_pdu(event.data, slot=None)
            if self._info.quirks.needs_cnma and handed_over:
                response = await self._exchange.command("AT+CNMA")
                if not response.ok:
                    log.warning("AT+CNMA refused modem=%s error=%s", self._name, response.result.meaning)

    # -- reading storage ----------------------------------------------------------------------------------

    async def _scan_storage(self) -> None:
        """Read every message and status report already stored: what arrived while we were away or was not
        deleted. The report storages first, the receive storage last, so it stays selected for reading."""
        self._scanning_storage = True
        try:
            for storage in (*self._report_storages, self._read_storage):
                if storage != self._read_storage:
                    await self._select_read_storage(storage)
                    if storage != self._read_storage:
                        continue
                await self._scan_one_storage()
        finally:
            self._scanning_storage = False

    async def _scan_one_storage(self) -> None:
        """AT+CMGL=4 in the selected storage; each PDU handed over, then deleted."""
        response = await self._exchange.command("AT+CMGL=4")
        if not response.ok:
            log.warning("AT+CMGL=4 failed modem=%s error=%s", self._name, response.result.meaning)
            return
        stored: list[tuple[int, str]] = []
        lines = list(response.lines)
        for header, pdu in zip(lines, lines[1:], strict=False):
            if header.startswith("+CMGL:"):
                index = first_int(header[len("+CMGL:") :])
                if index is not None:
                    stored.append((index, pdu))
        if stored:
            log.info("stored messages found modem=%s storage=%s count=%d", self._name, self._read_storage, len(stored))
        for index, pdu in stored:
            await self._handle_pdu(pdu, slot=StoredSlot(self._read_storage, index))

    async def _read_stored(self, storage: str, index: int) -> None:
        if storage and storage != self._read_storage:
            await self._select_read_storage(storage)
        response = await self._exchange.command(f"AT+CMGR={index}")
        if not response.ok:
            log.warning("AT+CMGR failed modem=%s index=%d error=%s", self._name, index, response.result.meaning)
            return
        if len(response.lines) < 2:
            log.warning("empty storage slot modem=%s storage=%s index=%d", self._name, storage, index)
            return
        await self._handle_pdu(response.lines[1], slot=StoredSlot(self._read_storage, index))

    async def _select_read_storage(self, storage: str) -> None:
        response = await self._exchange.command(f'AT+CPMS="{storage}"')
        if response.ok:
            self._read_storage = storage
        else:
            log.warning(
                "cannot select storage modem=%s storage=%s error=%s", self._name, storage, response.result.meaning
            )

    # -- handing over -------------------------------------------------------------------------------------

    async def _handle_pdu(self, pdu_hex: str, slot: StoredSlot | None) -> bool:
        """Decode one PDU-mode PDU and hand it over; True once the sink has it (or it is a part held for
        reassembly), so the caller may acknowledge it."""
        try:
            _smsc, tpdu = split_smsc(bytes.fromhex(pdu_hex))
            decoded = decode_tpdu(tpdu, "mt")
        except (ValueError, PduError) as exc:
            # Kept in storage: nothing is deleted that was not handed over.
            log.warning("undecodable PDU modem=%s slot=%s error=%s pdu=%s", self._name, slot, exc, pdu_hex)
            return False
        if isinstance(decoded, SmsStatusReport):
            await self._deliver_report(decoded)
            if slot is not None:
                await self._delete((slot,))
            return True
        if isinstance(decoded, SmsDeliver):
            accepted = self._parts.add(decoded, slot, trio.current_time(), self._name, self._msisdn)
            await self._delete(accepted.discard)
            await self._hand_over(accepted.messages)
            return True
        return False

    async def _hand_over(self, messages: tuple[CompleteMessage, ...]) -> None:
        for message in messages:
            await self._sink.incoming_sms(message.sms)
            self._counts.received += 1
            log.info(
                "sms received modem=%s originator=%s parts=%d incomplete=%s flash=%s",
                self._name,
                message.sms.originator,
                message.parts,
                message.sms.incomplete,
                message.sms.flash,
            )
            await self._delete(message.slots)

    async def _deliver_report(self, report: SmsStatusReport) -> None:
        await self._sink.status_report(
            StatusReport(
                modem=self._name,
                tp_mr=report.tp_mr,
                recipient=report.recipient.number,
                tp_st=report.tp_st,
                discharge_time=report.discharge_time,
                service_centre_time=report.scts,
            )
        )
        self._counts.status_reports += 1
        if self._scanning_storage:
            self._counts.stored_reports_at_start += 1
        log.info(
            "status report modem=%s tp_mr=%d tp_st=%d from_storage_at_start=%s",
            self._name,
            report.tp_mr,
            report.tp_st,
            self._scanning_storage,
        )

    async def _delete(self, slots: tuple[StoredSlot, ...]) -> None:
        for slot in slots:
            if slot.storage and slot.storage != self._read_storage:
                await self._select_read_storage(slot.storage)
            response = await self._exchange.command(f"AT+CMGD={slot.index}")
            if not response.ok:
                log.warning("AT+CMGD failed modem=%s slot=%s error=%s", self._name, slot, response.result.meaning)

    async def expire_parts(self) -> None:
        """Hand over the messages whose parts stopped arriving, marked incomplete."""
        await self._hand_over(self._parts.expire(trio.current_time(), self._name, self._msisdn))
