"""The receive path: what the modem reports (+CMTI/+CMT/+CDSI/+CDS) and what waits in its storage, read, handed
to the `ModemEventSink`, then deleted or acknowledged.

A stored message is deleted from the modem (and a direct one acknowledged with AT+CNMA) only after the sink
returned, so a crash in between leaves it on the SIM (or with the network) to be read again at the next start.
One worker task handles the codes in order, behind a queue the reader fills (`UrcQueue`); the start-up scan of
the storages runs in that task too. A status report stored after the start is the exception to "in order": its
hand-over (a store commit) and its AT+CMGD run in a task of their own, up to REPORTS_IN_FLIGHT at once, so the
worker reads the next report while the store commits the last one instead of waiting for each commit in turn.
Reports announced together are read with one command line, and those committed together deleted with one, where
the modem runs a line of several commands whole.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

import trio

from smsgw.modem.answers import first_int, storage_location
from smsgw.modem.at import Response, Unsolicited
from smsgw.modem.exchange import CommandExchange, CommandTimeout, acquire_at_once
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
# Stored status reports handed over and not yet deleted, per modem. A commit takes one fsync whatever it holds, so
# several reports in flight share it; the bound keeps the worker from reading the SIM far ahead of the store.
REPORTS_IN_FLIGHT: Final = 16
RECEIVE_CODES: Final = frozenset({"+CMTI", "+CMT", "+CDSI", "+CDS"})
# Stored reports announced together are read with one command line (`AT+CMGR=3;+CMGR=5`) and those committed
# together deleted with one (`AT+CMGD=3;+CMGD=5`): one exchange with the modem instead of one each. V.250 promises
# a command line of 40 characters only; a modem that cannot take this many fails the line, and the session falls
# back to one command a slot.
COMMAND_LINE_MAX_CHARS: Final = 120


class _LineCheck(enum.Enum):
    """Whether this modem runs a command line of several commands (V.250 5.2.1 concatenation) as a whole."""

    UNKNOWN = enum.auto()
    WHOLE = enum.auto()
    ONE_BY_ONE = enum.auto()


def _command_line(command: str, indexes: list[int]) -> str:
    """`AT+CMGD=3;+CMGD=5` for command "+CMGD" and indexes [5, 3]."""
    return "AT" + ";".join(f"{command}={index}" for index in sorted(indexes))


def _has_room(command: str, indexes: list[int]) -> bool:
    """Whether one more index (up to 3 digits) fits on the command line."""
    return len(_command_line(command, indexes)) + len(f";{command}=999") <= COMMAND_LINE_MAX_CHARS


@dataclass(eq=False)
class _DeleteLine:
    """Stored reports' slots in one storage deleted by one command line, sent by the task that opened it."""

    storage: str
    indexes: list[int]
    sent: bool = False
    deleted: bool = False
    done: trio.Event = field(default_factory=trio.Event)

    def command(self) -> str:
        return _command_line("+CMGD", self.indexes)

    def has_room(self) -> bool:
        return not self.sent and _has_room("+CMGD", self.indexes)


class UrcQueue:
    """The reader's codes for the worker, bounded by the reader itself (URC_QUEUE_LIMIT), not by the channel."""

    def __init__(self) -> None:
        # Unbounded as a channel: the reader enforces URC_QUEUE_LIMIT itself, see there.
        self._send, self._receive = trio.open_memory_channel[Unsolicited](math.inf)
        # Counted here rather than asked of the channel, whose statistics() builds an object on every read.
        self._queued = 0
        self._progress = trio.Event()  # the worker took a code or a command started: the reader may read

    def put(self, event: Unsolicited) -> None:
        self._send.send_nowait(event)  # never full: the reader bounds the queue before reading
        self._queued += 1

    def wake(self) -> None:
        """The worker took a code, or a command is about to be written: a reader held back looks again."""
        self._progress.set()

    async def wait_for_room(self, command_waiting: Callable[[], bool]) -> None:
        """Stop reading while the URC queue is full and no command waits for its answer (URC_QUEUE_LIMIT)."""
        while self._queued >= URC_QUEUE_LIMIT and not command_waiting():
            progress = self._progress = trio.Event()
            await progress.wait()

    async def take(self) -> Unsolicited:
        event = await self._receive.receive()
        self._queued -= 1
        self.wake()
        return event

    def take_waiting(self) -> Unsolicited | None:
        """The next code if one is queued already."""
        try:
            event = self._receive.receive_nowait()
        except trio.WouldBlock:
            return None
        self._queued -= 1
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
        # A command that needs a storage selected (AT+CPMS, then AT+CMGR/AT+CMGL/AT+CMGD) holds this across both,
        # so a report task's delete cannot switch the storage between the worker's selection and its read.
        self._storage_lock = trio.Lock()
        self._reports_room = trio.Semaphore(REPORTS_IN_FLIGHT)
        self._slots_in_flight: set[StoredSlot] = set()  # reports read, handed over or deleted in a task
        # Codes naming a slot in flight, read again once its task ends: the modem may store a new report in a slot
        # as soon as AT+CMGD freed it and announce it before the task has left, so such a code is no duplicate.
        self._codes_for_slots_in_flight: dict[StoredSlot, Unsolicited] = {}
        self._line_check = _LineCheck.UNKNOWN
        self._open_delete_line: _DeleteLine | None = None
        # Codes taken from the queue with a report code and handled one at a time before the next is taken: one
        # that did not join the report code's read line, or the line's own codes when the line failed.
        self._one_by_one: deque[Unsolicited] = deque()
        self._report_tasks: trio.Nursery | None = None

    def use_storages(self, storages: Storages) -> None:
        """What start-up selected; a storage it could not select leaves the previous choice in place."""
        if storages.read is not None:
            self._read_storage = storages.read
        self._report_storages = storages.reports
        self._line_check = _LineCheck.UNKNOWN  # asked again of the modem this session opened

    def next_deadline(self) -> float | None:
        """When `expire_parts` has a message to hand over whose parts stopped arriving."""
        return self._parts.next_deadline()

    # -- the URC worker -----------------------------------------------------------------------------------

    async def worker(self) -> None:
        async with trio.open_nursery() as report_tasks:
            self._report_tasks = report_tasks
            # The scan runs in this task so a +CMTI for a message the scan already handled finds an empty slot
            # instead of delivering it twice.
            with self._surviving("storage scan"):
                await self._scan_storage()
            while True:
                if self._one_by_one:
                    event = self._one_by_one.popleft()
                    with self._surviving(event.name):
                        await self._handle_urc(event)
                    continue
                event = await self._urc.take()
                with self._surviving(event.name):
                    if event.name == "+CDSI":
                        await self._read_reports_announced_with(event)
                    else:
                        await self._handle_urc(event)

    @contextlib.contextmanager
    def _surviving(self, what: str) -> Iterator[None]:
        """Log what failed and go on: a command timed out, or the sink failed (store down?), in which case nothing
        was deleted or acknowledged, so nothing is lost. A modem that went away ends the worker."""
        try:
            yield
        except CommandTimeout as exc:
            log.warning("%s not handled modem=%s error=%s", what, self._name, exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise
        except Exception:
            log.exception("%s not handled modem=%s", what, self._name)

    async def _handle_urc(self, event: Unsolicited) -> None:
        if event.name in ("+CMTI", "+CDSI"):
            location = storage_location(event.params)
            if location is None:
                log.warning("unreadable storage notification modem=%s line=%r", self._name, event.line)
                return
            await self._read_stored(event, *location)
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
                await self._scan_one_storage(storage)
        finally:
            self._scanning_storage = False

    async def _scan_one_storage(self, storage: str) -> None:
        """AT+CMGL=4 in `storage`; each PDU handed over, then deleted."""
        response = await self._in_storage(storage, "AT+CMGL=4")
        if response is None:
            return
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
            log.info("stored messages found modem=%s storage=%s count=%d", self._name, storage, len(stored))
        for index, pdu in stored:
            await self._handle_pdu(pdu, slot=StoredSlot(storage, index))

    async def _read_reports_announced_with(self, first: Unsolicited) -> None:
        """Read the report `first` announces and those announced in the same storage right behind it, with one
        command line where the modem runs one whole; the codes are handled one by one where it cannot."""
        location = storage_location(first.params)
        if location is None:
            await self._handle_urc(first)  # logged there
            return
        storage = location[0] or self._read_storage
        codes: list[Unsolicited] = []
        slots: list[StoredSlot] = []
        code: Unsolicited | None = first
        while code is not None:
            location = storage_location(code.params) if code.name == "+CDSI" else None
            slot = None if location is None else StoredSlot(location[0] or self._read_storage, location[1])
            if slot is None or slot.storage != storage or slot in slots:
                self._one_by_one.append(code)  # handled after these, in the order it came
                break
            if slot in self._slots_in_flight:
                self._defer(code, slot)
            else:
                codes.append(code)
                slots.append(slot)
            if len(slots) == REPORTS_IN_FLIGHT or not _has_room("+CMGR", [slot.index for slot in slots]):
                break
            code = self._urc.take_waiting()
        if not slots:
            return  # each in flight: read once its task ends
        if len(slots) == 1:  # the usual case: nothing queued behind it
            await self._read_stored(codes[0], storage, slots[0].index)
            return
        try:
            read = await self._read_line(storage, slots)
        except CommandTimeout:
            self._one_by_one.extendleft(reversed(codes))  # read again one by one
            raise
        if read is None:
            self._one_by_one.extendleft(reversed(codes))
            return
        for slot, pdu in zip(slots, read, strict=True):
            await self._handle_pdu(pdu, slot=slot)

    async def _read_line(self, storage: str, slots: list[StoredSlot]) -> list[str] | None:
        """Each slot's PDU read with one `AT+CMGR=a;+CMGR=b` line, or None to read them one by one: a modem that
        does not run lines whole, a slot found empty (its error ends the line)."""
        if not await self._runs_lines_whole():
            return None
        response = await self._in_storage(storage, _command_line("+CMGR", [slot.index for slot in slots]))
        if response is None or not response.ok:
            return None
        lines = response.lines
        headers = [n for n, line in enumerate(lines) if line.startswith("+CMGR:")]
        if len(headers) != len(slots) or any(n + 1 >= len(lines) or n + 1 in headers for n in headers):
            return None
        by_index = dict(zip(sorted(slot.index for slot in slots), (lines[n + 1] for n in headers), strict=True))
        return [by_index[slot.index] for slot in slots]

    def _defer(self, code: Unsolicited, slot: StoredSlot) -> None:
        # The same code twice, or a newcomer in the slot just deleted: read once the slot's task has ended.
        self._codes_for_slots_in_flight[slot] = Unsolicited(code.name, code.line, f'"{slot.storage}",{slot.index}')

    async def _runs_lines_whole(self) -> bool:
        """Whether this modem runs a command line of several commands whole; asked once a session."""
        if self._line_check is _LineCheck.UNKNOWN:
            # A modem that ignores what follows the first command answers one +CMGF line, not two.
            probe = await self._exchange.command("AT+CMGF?;+CMGF?")
            whole = probe.ok and sum(text.startswith("+CMGF:") for text in probe.lines) == 2
            self._line_check = _LineCheck.WHOLE if whole else _LineCheck.ONE_BY_ONE
            log.info("command lines modem=%s whole=%s", self._name, whole)
        return self._line_check is _LineCheck.WHOLE

    async def _read_stored(self, code: Unsolicited, storage: str, index: int) -> None:
        # A code without a storage name means the one selected now: named here, before a report task's delete
        # selects another, so the read and the slot's later delete both go to it.
        slot = StoredSlot(storage or self._read_storage, index)
        if slot in self._slots_in_flight:
            self._defer(code, slot)
            return
        response = await self._in_storage(slot.storage, f"AT+CMGR={index}")
        if response is None:
            return
        if not response.ok:
            log.warning("AT+CMGR failed modem=%s index=%d error=%s", self._name, index, response.result.meaning)
            return
        if len(response.lines) < 2:
            log.warning("empty storage slot modem=%s storage=%s index=%d", self._name, slot.storage, index)
            return
        await self._handle_pdu(response.lines[1], slot=slot)

    async def _in_storage(self, storage: str, command: str) -> Response | None:
        """`command` with `storage` selected first if it is not (an empty name: the one selected); None when it
        cannot be selected, so nothing is read or deleted in another storage by mistake."""
        # Free (the usual case), the lock is taken without a scheduling point, so the command is written at once
        # as before there was a lock: an AT+CMGD follows its hand-over even when the gateway stops right then.
        try:
            self._storage_lock.acquire_nowait()
        except trio.WouldBlock:
            await self._storage_lock.acquire()
        try:
            if storage and storage != self._read_storage:
                await self._select_read_storage(storage)
                if storage != self._read_storage:
                    return None
            return await self._exchange.command(command)
        finally:
            self._storage_lock.release()

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
            if slot is None or self._scanning_storage:
                # A direct report's AT+CNMA follows at once; the start-up scan deletes what it read before the
                # worker takes a code that may name the same slot.
                await self._deliver_report(decoded, at_start=self._scanning_storage)
                if slot is not None:
                    await self._delete((slot,))
            else:
                await acquire_at_once(self._reports_room)
                self._slots_in_flight.add(slot)
                assert self._report_tasks is not None  # the worker's: only the worker reads stored PDUs
                self._report_tasks.start_soon(self._report_then_delete, decoded, slot, pdu_hex)
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

    async def _report_then_delete(self, report: SmsStatusReport, slot: StoredSlot, pdu_hex: str) -> None:
        try:
            with self._surviving("status report"):
                await self._deliver_report(report, at_start=False)
                await self._delete_report(slot, pdu_hex)
        finally:
            self._slots_in_flight.discard(slot)
            self._reports_room.release()
            code = self._codes_for_slots_in_flight.pop(slot, None)
            if code is not None:
                self._urc.put(code)

    async def _deliver_report(self, report: SmsStatusReport, *, at_start: bool) -> None:
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
        if at_start:
            self._counts.stored_reports_at_start += 1
        log.info(
            "status report modem=%s tp_mr=%d tp_st=%d from_storage_at_start=%s",
            self._name,
            report.tp_mr,
            report.tp_st,
            at_start,
        )

    async def _delete_report(self, slot: StoredSlot, pdu_hex: str) -> None:
        """Delete a handed-over report's slot, on one command line with the other reports committed with it."""
        line = self._open_delete_line
        if line is not None and line.storage == slot.storage and line.has_room():
            line.indexes.append(slot.index)
            await line.done.wait()
        else:
            line = self._open_delete_line = _DeleteLine(slot.storage, [slot.index])
            try:
                # One round of the run loop: the report tasks whose commit ended with this one join the line.
                await trio.lowlevel.cancel_shielded_checkpoint()
                line.sent = True
                if self._open_delete_line is line:
                    self._open_delete_line = None
                line.deleted = await self._send_delete_line(line)
            finally:
                line.done.set()
        if not line.deleted:
            # Which commands of a failed line ran is unknown, and a slot it freed may hold a newcomer by now.
            if await self._holds(slot, pdu_hex):
                await self._delete((slot,))

    async def _send_delete_line(self, line: _DeleteLine) -> bool:
        """True once the line's slots were deleted, or failed to delete one by one (logged there; such a slot is
        read again at the next start); False when a line of several failed."""
        if len(line.indexes) == 1 or not await self._runs_lines_whole():
            await self._delete(tuple(StoredSlot(line.storage, index) for index in line.indexes))
            return True
        response = await self._in_storage(line.storage, line.command())
        if response is None or response.ok:
            return True  # None: kept, read again at the next start rather than a wrong slot deleted
        self._line_check = _LineCheck.ONE_BY_ONE
        log.warning(
            "delete line failed, one delete a command from now on modem=%s line=%s error=%s",
            self._name,
            line.command(),
            response.result.meaning,
        )
        return False

    async def _holds(self, slot: StoredSlot, pdu_hex: str) -> bool:
        """Whether `slot` still holds the report read from it (not deleted, not replaced by a newcomer)."""
        response = await self._in_storage(slot.storage, f"AT+CMGR={slot.index}")
        return response is not None and response.ok and len(response.lines) >= 2 and response.lines[1] == pdu_hex

    async def _delete(self, slots: tuple[StoredSlot, ...]) -> None:
        for slot in slots:
            response = await self._in_storage(slot.storage, f"AT+CMGD={slot.index}")
            if response is None:
                continue  # kept: read again at the next start rather than a wrong slot deleted
            if not response.ok:
                log.warning("AT+CMGD failed modem=%s slot=%s error=%s", self._name, slot, response.result.meaning)

    async def expire_parts(self) -> None:
        """Hand over the messages whose parts stopped arriving, marked incomplete."""
        await self._hand_over(self._parts.expire(trio.current_time(), self._name, self._msisdn))
