"""ModemDriver: one GSM modem on one port, the Trio shell around `AtChannel`.

One reader task feeds the channel; commands go out one at a time under a lock, their reply queue registered
before the bytes are written. A supervisor loop owns the port: it opens it, runs the start-up state machine, and
on trouble escalates — re-open the port, then `AT+CFUN=1,1`, then mark the modem down (still probing it slowly,
so a replugged or recovered modem comes back by itself). A wrong PIN is never retried: three tries lock the SIM.

Incoming messages and status reports go to a `ModemEventSink`; a stored message is deleted from the modem only
after the sink returned, so a crash in between leaves it on the SIM to be read again at the next start.
"""

from __future__ import annotations

import enum
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final, Literal

import trio

from smsgw.config import ModemConfig
from smsgw.modem.at import ESC, AtChannel, CommandTimedOut, Prompt, Response, Unsolicited
from smsgw.modem.limits import LimitUsage, SendLimits
from smsgw.modem.quirks import DEFAULT_QUIRKS_DIR, GENERIC, ModemQuirks, find_quirks, load_quirks
from smsgw.modem.receive import CompleteMessage, IncomingParts, StoredSlot
from smsgw.modem.seams import ModemEventSink, OutgoingSms, SendFailed, SendOutcome, Sent, StatusReport
from smsgw.modem.transport import open_serial
from smsgw.pdu.errors import PduError
from smsgw.pdu.text import parse_data_coding
from smsgw.pdu.tpdu import (
    Address,
    Dcs,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    TypeOfNumber,
    decode_tpdu,
    encode_with_smsc,
    split_smsc,
)

log = logging.getLogger(__name__)
wire_log = logging.getLogger("smsgw.wire")

StreamOpener = Callable[[], Awaitable[trio.abc.Stream]]

# +CMS ERROR codes after which the same message will never be accepted, whichever modem sends it: the
# destination does not exist or refuses it, or the TPDU itself is wrong. Everything else (network trouble, SIM
# barred, busy SC, unknown codes) is temporary: later or on another modem it may pass.
PERMANENT_CMS_ERRORS: Final = frozenset(
    {1, 21, 28, 30, 95, 96, 97, 99, 128, 129, 143, 144, 145, 159, 176, 195, 196, 198, 199, 304, 305}
)

# +CME ERROR codes of start-up that no waiting will cure; an operator has to act.
_SIM_FATAL_CME: Final = frozenset({10, 12, 13, 15, 16, 18})
_CME_SIM_BUSY: Final = 14
_CME_INCORRECT_PASSWORD: Final = 16
_REGISTERED: Final = frozenset({1, 5})  # +CREG <stat>: home network, roaming
# Lines with which a modem announces that it (re)booted: its settings (+CNMI, +CMGF) are gone.
_RESTART_INDICATIONS: Final = frozenset({"RDY", "^SYSSTART"})
_REPLY_BUFFER: Final = 2  # a command's prompt and its response
# Received-message and status-report codes (+CMTI/+CMT/+CDSI/+CDS) queued for the URC worker before the reader
# stops reading. A gateway never drops what a modem reports: when the worker (that is, the store) cannot keep
# up, the reader stops taking bytes from the port and the modem and the kernel hold the rest. But the worker's
# own commands (AT+CMGR, AT+CMGD, AT+CNMA) and concurrent sends (AT+CMGS) are answered through the same reader,
# behind whatever codes the modem printed first; a reader that stopped while a command waits would deadlock with
# the worker. So the bound holds only while no command waits: with one outstanding the reader goes on reading
# and queueing, which adds at most what a modem can print within one command's timeout.
URC_QUEUE_LIMIT: Final = 256
_SIM_POLL_S: Final = 1.0
_REGISTRATION_POLL_S: Final = 2.0
_QUOTED: Final = re.compile(r'"([^"]*)"')


class ModemState(enum.Enum):
    CLOSED = "closed"  # port not open (absent device, or waiting to re-open)
    INITIALISING = "initialising"
    REGISTERING = "registering"  # waiting for the network
    READY = "ready"
    RESETTING = "resetting"  # AT+CFUN=1,1 sent, waiting for the modem to come back
    DOWN = "down"  # given up on: needs an operator (SIM, PIN) or still hung after a reset


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


class CommandTimeout(Exception):
    def __init__(self, command: str) -> None:
        super().__init__(f"no answer to {command}")
        self.command = command


SessionEndKind = Literal["gone", "hung", "fatal", "restarted", "error"]


@dataclass(frozen=True, slots=True)
class _SessionEnd:
    kind: SessionEndKind
    reason: str


class _StartupFailed(Exception):
    def __init__(self, kind: SessionEndKind, reason: str) -> None:
        super().__init__(reason)
        self.kind: SessionEndKind = kind
        self.reason = reason


class _Stage(enum.Enum):
    NORMAL = "normal"
    REOPENED = "reopened"
    RESET = "reset"  # the next open sends AT+CFUN=1,1
    AFTER_RESET = "after_reset"
    DOWN = "down"


_NEXT_STAGE: Final = {
    _Stage.NORMAL: _Stage.REOPENED,
    _Stage.REOPENED: _Stage.RESET,
    _Stage.RESET: _Stage.RESET,
    _Stage.AFTER_RESET: _Stage.DOWN,
    _Stage.DOWN: _Stage.DOWN,
}


class ModemDriver:
    def __init__(
        self,
        config: ModemConfig,
        sink: ModemEventSink,
        *,
        opener: StreamOpener | None = None,
        quirks_table: tuple[ModemQuirks, ...] | None = None,
        reassembly_timeout_s: float = 30 * 60,
    ) -> None:
        self.config = config
        self.name = config.name
        self._sink = sink
        self._opener = opener or self._open_serial
        if quirks_table is None:
            quirks_table = load_quirks(Path(config.quirks_dir) if config.quirks_dir else DEFAULT_QUIRKS_DIR)
        self._quirks_table = quirks_table
        self.quirks: ModemQuirks = GENERIC
        self._limits = _send_limits(config)
        self._limits_imsi = ""  # the SIM the limit counters count for, once known
        self._parts = IncomingParts(reassembly_timeout_s)
        self._lock = trio.Lock()
        self._state = ModemState.CLOSED
        self._state_changed = trio.Event()
        self._stream: trio.abc.Stream | None = None
        self._at = AtChannel()
        self._replies_send, self._replies = trio.open_memory_channel[Response | Prompt](_REPLY_BUFFER)
        # Unbounded as a channel: the reader enforces URC_QUEUE_LIMIT itself, see there.
        self._urc_send, self._urc_receive = trio.open_memory_channel[Unsolicited](math.inf)
        self._urc_progress = trio.Event()  # the worker took a code or a command started: the reader may read
        self._session_scope: trio.CancelScope | None = None
        self._end: _SessionEnd | None = None
        self._timeouts_in_a_row = 0
        self._last_activity = 0.0
        self._read_storage = ""
        self._report_storages: tuple[str, ...] = ()  # the quirk's report storages this modem offers
        self._scanning_storage = False  # reports handed over now were stored while we were away
        self._sending = 0
        self._partial_answer: tuple[str, ...] = ()  # what a timed-out command got before its deadline
        self._reached_ready = False
        self.failures_in_a_row = 0  # temporary send failures since the last success: the pool prefers others
        # What the modem told us about itself.
        self.manufacturer = ""
        self.model = ""
        self.imei = ""
        self.imsi = ""
        self.signal_rssi: int | None = None
        self.registration: int | None = None
        self.operator = ""
        self._counts = {"sent": 0, "failed": 0, "received": 0, "status_reports": 0, "stored_reports_at_start": 0}
        self._last_error = ""

    # -- what the pool asks -------------------------------------------------------------------------------

    @property
    def state(self) -> ModemState:
        return self._state

    @property
    def busy(self) -> bool:
        return self._sending > 0 or self._lock.locked()

    @property
    def sent_count(self) -> int:
        return self._counts["sent"]

    def limit_reached(self) -> str | None:
        if self._limits.unlimited:  # the common case, asked for every modem on every send
            return None
        return self._limits.exhausted(trio.current_time(), _today())

    def can_send(self) -> bool:
        return self._state is ModemState.READY and self.limit_reached() is None

    def status(self) -> ModemStatus:
        counters = self._limits.counters(trio.current_time(), _today())
        return ModemStatus(
            name=self.name,
            port=self.config.port,
            group=self.config.group,
            msisdn=self.config.msisdn,
            state=self._state,
            manufacturer=self.manufacturer,
            model=self.model,
            imei=self.imei,
            imsi=self.imsi,
            quirks=self.quirks.name,
            signal_rssi=self.signal_rssi,
            registration=self.registration,
            operator=self.operator,
            sent=self._counts["sent"],
            failed=self._counts["failed"],
            received=self._counts["received"],
            status_reports=self._counts["status_reports"],
            sent_last_minute=counters.last_minute,
            sent_today=counters.today,
            sent_this_month=counters.this_month,
            limit_reached=self.limit_reached(),
            last_error=self._last_error,
            stored_reports_at_start=self._counts["stored_reports_at_start"],
        )

    def limit_usage(self) -> LimitUsage:
        return self._limits.usage(trio.current_time(), _today())

    @property
    def limits_imsi(self) -> str:
        return self._limits_imsi

    def restore_limit_usage(self, usage: LimitUsage, elapsed_s: float, imsi: str) -> None:
        """Count what SIM `imsi` sent in an earlier run, `elapsed_s` of wall time ago, against its limits (until
        start-up finds another SIM in the modem)."""
        self._limits.restore(usage, trio.current_time(), _today(), elapsed_s)
        self._limits_imsi = imsi

    async def wait_state(self, *states: ModemState) -> ModemState:
        """Wait until the modem is in one of `states` (for start-up and for tests of escalation)."""
        while self._state not in states:
            await self._state_changed.wait()
        return self._state

    # -- sending ------------------------------------------------------------------------------------------

    async def send(self, sms: OutgoingSms) -> SendOutcome:
        """Send one segment with AT+CMGS; never raises for modem or network problems."""
        if self._state is not ModemState.READY:
            return SendFailed(temporary=True, reason=f"modem {self.name} is {self._state.value}")
        limit = self.limit_reached()
        if limit is not None:
            return SendFailed(temporary=True, reason=f"modem {self.name} reached its {limit} limit")
        try:
            tpdu = _submit_tpdu(sms).to_bytes()
        except PduError as exc:
            return SendFailed(temporary=False, reason=f"cannot encode: {exc.message}")
        self._sending += 1
        try:
            outcome = await self._submit(tpdu)
        finally:
            self._sending -= 1
        if isinstance(outcome, Sent):
            self._counts["sent"] += 1
            self.failures_in_a_row = 0
            log.info("sms sent modem=%s segment=%s tp_mr=%d", self.name, sms.segment_id, outcome.tp_mr)
        else:
            self._counts["failed"] += 1
            self.failures_in_a_row += int(outcome.temporary)
            self._last_error = outcome.reason
            log.warning(
                "sms not sent modem=%s segment=%s temporary=%s cms_error=%s reason=%s",
                self.name,
                sms.segment_id,
                outcome.temporary,
                outcome.cms_error,
                outcome.reason,
            )
        return outcome

    async def _submit(self, tpdu: bytes) -> SendOutcome:
        # No SMSC prefix given ("00": the modem's own +CSCA), so <length> is the TPDU's, as TS 27.005 counts it.
        pdu = encode_with_smsc(tpdu)
        command = f"AT+CMGS={len(tpdu)}"
        try:
            async with self._lock:
                self._limits.record(trio.current_time(), _today())
                reply = await self._exchange(command, expects_prompt=True)
                if isinstance(reply, Prompt):
                    body = self._at.pdu_body(pdu.hex().upper(), trio.current_time(), self.config.send_timeout_s)
                    reply = await self._write_and_wait(command, body)
        except CommandTimeout:
            # The modem may still have sent it; a retry risks a duplicate, which beats losing the message.
            return SendFailed(temporary=True, reason=f"no answer to {command} within the send timeout")
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            return SendFailed(temporary=True, reason=f"port lost while sending: {exc}")
        if not isinstance(reply, Response):
            return SendFailed(temporary=True, reason=f"unexpected second prompt after {command}")
        if reply.ok:
            values = reply.values("+CMGS:")
            try:
                tp_mr = int(values[0].split(",")[0])
            except (IndexError, ValueError):
                return SendFailed(temporary=True, reason=f"answer to {command} without +CMGS: <mr>")
            return Sent(modem=self.name, modem_msisdn=self.config.msisdn, tp_mr=tp_mr, sent_at=datetime.now(UTC))
        cms = reply.result.cms_error
        return SendFailed(
            temporary=cms not in PERMANENT_CMS_ERRORS,
            reason=reply.result.meaning,
            cms_error=cms,
        )

    # -- commands -----------------------------------------------------------------------------------------

    async def command(self, command: str, timeout_s: float | None = None) -> Response:
        """Run one AT command; raises `CommandTimeout`. The answer may be an error: check `Response.ok`."""
        async with self._lock:
            reply = await self._exchange(command, timeout_s=timeout_s)
        if isinstance(reply, Prompt):
            raise CommandTimeout(command)  # a prompt nobody asked for: the channel is out of step
        return reply

    async def _exchange(
        self, command: str, *, timeout_s: float | None = None, expects_prompt: bool = False
    ) -> Response | Prompt:
        """Under the lock: write `command`, wait for its prompt or response."""
        data = self._at.command(
            command,
            trio.current_time(),
            timeout_s if timeout_s is not None else self.config.command_timeout_s,
            expects_prompt=expects_prompt,
        )
        self._urc_progress.set()  # a reader held back by a full URC queue must read the answer
        return await self._write_and_wait(command, data)

    async def _write_and_wait(self, command: str, data: bytes) -> Response | Prompt:
        stream = self._stream
        if stream is None:
            self._at.abandon()
            raise trio.ClosedResourceError("modem port is not open")
        # The reply queue exists before the write, so an answer however fast is never missed.
        if wire_log.isEnabledFor(logging.DEBUG):
            wire_log.debug("tx modem=%s data=%r", self.name, data)
        # Read before writing: a fast modem's answer may be parsed (and the deadline cleared) during send_all.
        deadline = self._at.deadline
        assert deadline is not None
        try:
            await stream.send_all(data)
            with trio.move_on_at(deadline):
                reply = await self._replies.receive()
                self._timeouts_in_a_row = 0
                return reply
        except BaseException:
            self._at.abandon()
            raise
        try:
            # It may have arrived between the deadline and now.
            reply = self._replies.receive_nowait()
        except trio.WouldBlock:
            pass
        else:
            self._timeouts_in_a_row = 0
            return reply
        for event in self._at.expire(trio.current_time()):
            if isinstance(event, CommandTimedOut) and event.lines:
                log.debug("timed out with partial answer modem=%s lines=%r", self.name, event.lines)
                self._partial_answer = event.lines
        self._timeouts_in_a_row += 1
        log.warning("command timed out modem=%s command=%s in_a_row=%d", self.name, command, self._timeouts_in_a_row)
        if self._timeouts_in_a_row >= self.config.watchdog_failures:
            self._fail("hung", f"{self._timeouts_in_a_row} commands in a row unanswered, last {command}")
        raise CommandTimeout(command)

    async def _require(self, command: str, timeout_s: float | None = None) -> Response:
        response = await self.command(command, timeout_s)
        if not response.ok:
            raise _StartupFailed("fatal", f"{command} failed: {response.result.meaning}")
        return response

    # -- supervisor ---------------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the port until cancelled (or a fatal SIM problem): open, start up, serve, escalate, re-open.

        Escalation of a hung modem, one step per session that ends hung: re-open the port; send AT+CFUN=1,1 and
        wait for the reboot; one more try; then DOWN, probed at the slowest re-open pace until it answers."""
        task_status.started()
        delay = self.config.reopen_delay_s
        stage = _Stage.NORMAL
        while True:
            try:
                stream = await self._opener()
            except Exception as exc:  # task boundary: any failure to open means "try again later"
                error = f"cannot open port: {exc}"
                # Said once per cause, so a misspelled or unplugged port is visible at once without a line per retry.
                level = logging.DEBUG if error == self._last_error else logging.WARNING
                log.log(level, "modem port cannot be opened modem=%s port=%s error=%s retry_in_s=%.1f", self.name,
                        self.config.port, exc, delay)
                self._last_error = error
                self._set_state(ModemState.DOWN if stage is _Stage.DOWN else ModemState.CLOSED)
                await trio.sleep(delay)
                delay = min(delay * 2, self.config.reopen_delay_max_s)
                continue
            if stage is _Stage.RESET:
                await self._session(stream, reset=True)
                await trio.sleep(self.config.reset_settle_s)
                stage = _Stage.AFTER_RESET
                continue
            self._reached_ready = False
            end = await self._session(stream, reset=False)
            self._last_error = f"{end.kind}: {end.reason}"
            log.warning("modem session ended modem=%s kind=%s reason=%s", self.name, end.kind, end.reason)
            if end.kind == "fatal":
                self._set_state(ModemState.DOWN)
                log.error("modem down until an operator acts modem=%s reason=%s", self.name, end.reason)
                return
            if self._reached_ready or end.kind == "restarted":
                stage, delay = _Stage.NORMAL, self.config.reopen_delay_s
            if end.kind == "hung":
                stage = _NEXT_STAGE[stage]
            if stage is _Stage.DOWN:
                log.error("modem still hung after a reset, marked down modem=%s", self.name)
                delay = self.config.reopen_delay_max_s
            self._set_state(ModemState.DOWN if stage is _Stage.DOWN else ModemState.CLOSED)
            if end.kind != "restarted":
                await trio.sleep(delay)
                delay = min(delay * 2, self.config.reopen_delay_max_s)

    async def _open_serial(self) -> trio.abc.Stream:
        return open_serial(self.config.port, self.config.baudrate, self.config.rtscts)

    async def _session(self, stream: trio.abc.Stream, *, reset: bool) -> _SessionEnd:
        self._stream = stream
        self._end = None
        self._at.reset()
        while True:  # answers that arrived after their command was abandoned in the previous session
            try:
                self._replies.receive_nowait()
            except trio.WouldBlock:
                break
        self._timeouts_in_a_row = 0
        self._last_activity = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                self._session_scope = nursery.cancel_scope
                nursery.start_soon(self._reader, stream)
                await self._guarded(self._start_session, nursery, reset)
        finally:
            self._session_scope = None
            self._stream = None
            self._at.reset()
            with trio.CancelScope(shield=True):
                await stream.aclose()
        return self._end or _SessionEnd("gone", "session ended")

    async def _start_session(self, nursery: trio.Nursery, reset: bool) -> None:
        if reset:
            await self._reset_modem()
            self._fail("hung", "reset with AT+CFUN=1,1")
            return
        try:
            await self._start_up()
        except _StartupFailed as exc:
            self._fail(exc.kind, exc.reason)
            return
        except CommandTimeout as exc:
            self._fail("hung", f"start-up: {exc}")
            return
        self._set_state(ModemState.READY)
        self._reached_ready = True
        nursery.start_soon(self._guarded, self._urc_worker)
        nursery.start_soon(self._guarded, self._poller)
        nursery.start_soon(self._guarded, self._watchdog)

    async def _guarded(self, work: Callable[..., Awaitable[None]], *args: object) -> None:
        """Task boundary of the session's tasks: a lost port or a bug ends the session, which re-opens."""
        try:
            await work(*args)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._fail("gone", f"port lost: {exc}")
        except Exception as exc:
            log.exception("modem task failed modem=%s task=%s", self.name, getattr(work, "__name__", work))
            self._fail("error", f"internal error: {exc!r}")

    def _fail(self, kind: SessionEndKind, reason: str) -> None:
        if self._end is None:
            self._end = _SessionEnd(kind, reason)
        if self._session_scope is not None:
            self._session_scope.cancel()

    def _set_state(self, state: ModemState) -> None:
        if state is not self._state:
            log.info("modem state modem=%s from=%s to=%s", self.name, self._state.value, state.value)
            self._state = state
            self._state_changed.set()
            self._state_changed = trio.Event()

    async def _reset_modem(self) -> None:
        log.warning("resetting hung modem modem=%s command=AT+CFUN=1,1", self.name)
        try:
            await self.command("AT+CFUN=1,1", self.config.watchdog_timeout_s)
        except CommandTimeout:
            pass  # expected from a hung modem; the power cycle may still happen
        self._set_state(ModemState.RESETTING)

    # -- reader and unsolicited codes ---------------------------------------------------------------------

    async def _reader(self, stream: trio.abc.Stream) -> None:
        try:
            while True:
                await self._wait_for_urc_room()
                data = await stream.receive_some()
                if not data:
                    self._fail("gone", "port closed by the device")
                    return
                self._last_activity = trio.current_time()
                if wire_log.isEnabledFor(logging.DEBUG):
                    wire_log.debug("rx modem=%s data=%r", self.name, data)
                for event in self._at.receive_data(data):
                    if isinstance(event, Unsolicited):
                        self._on_unsolicited(event)
                    elif isinstance(event, Response | Prompt):
                        self._replies_send.send_nowait(event)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._fail("gone", f"port lost: {exc}")

    async def _wait_for_urc_room(self) -> None:
        """Stop reading while the URC queue is full and no command waits for its answer (URC_QUEUE_LIMIT)."""
        while self._urc_receive.statistics().current_buffer_used >= URC_QUEUE_LIMIT and not self._at.busy:
            progress = self._urc_progress = trio.Event()
            await progress.wait()

    def _on_unsolicited(self, event: Unsolicited) -> None:
        """In the reader task: cheap state updates here, anything needing commands to the URC worker."""
        name = event.name
        if name in ("+CMTI", "+CMT", "+CDSI", "+CDS"):
            self._urc_send.send_nowait(event)  # never full: the reader bounds the queue before reading
        elif name == "^RSSI":
            self.signal_rssi = _rssi(event.params)
        elif name == "+CREG":
            self.registration = _creg_stat(event.params)
        elif name in _RESTART_INDICATIONS and self._state is ModemState.READY:
            self._fail("restarted", f"modem announced a restart ({event.line})")
        else:
            log.debug("unsolicited modem=%s line=%r", self.name, event.line)

    async def _urc_worker(self) -> None:
        # The scan runs in this task so a +CMTI for a message the scan already handled finds an empty slot
        # instead of delivering it twice.
        try:
            await self._scan_storage()
        except CommandTimeout as exc:
            log.warning("storage scan failed modem=%s error=%s", self.name, exc)
        async for event in self._urc_receive:
            self._urc_progress.set()
            try:
                await self._handle_urc(event)
            except CommandTimeout as exc:
                log.warning("unsolicited code not handled modem=%s code=%s error=%s", self.name, event.name, exc)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise
            except Exception:
                # The sink failed (store down?): nothing was deleted or acknowledged, so nothing is lost.
                log.exception("unsolicited code not handled modem=%s code=%s", self.name, event.name)

    async def _handle_urc(self, event: Unsolicited) -> None:
        if event.name in ("+CMTI", "+CDSI"):
            location = _storage_location(event.params)
            if location is None:
                log.warning("unreadable storage notification modem=%s line=%r", self.name, event.line)
                return
            await self._read_stored(*location)
        elif event.data is not None:  # +CMT / +CDS: the PDU came with the code
            handed_over = await self._handle_pdu(event.data, slot=None)
            if self.quirks.needs_cnma and handed_over:
                response = await self.command("AT+CNMA")
                if not response.ok:
                    log.warning("AT+CNMA refused modem=%s error=%s", self.name, response.result.meaning)

    # -- receiving ----------------------------------------------------------------------------------------

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
        response = await self.command("AT+CMGL=4")
        if not response.ok:
            log.warning("AT+CMGL=4 failed modem=%s error=%s", self.name, response.result.meaning)
            return
        stored: list[tuple[int, str]] = []
        lines = list(response.lines)
        for header, pdu in zip(lines, lines[1:], strict=False):
            if header.startswith("+CMGL:"):
                index = _first_int(header[len("+CMGL:") :])
                if index is not None:
                    stored.append((index, pdu))
        if stored:
            log.info("stored messages found modem=%s storage=%s count=%d", self.name, self._read_storage, len(stored))
        for index, pdu in stored:
            await self._handle_pdu(pdu, slot=StoredSlot(self._read_storage, index))

    async def _read_stored(self, storage: str, index: int) -> None:
        if storage and storage != self._read_storage:
            await self._select_read_storage(storage)
        response = await self.command(f"AT+CMGR={index}")
        if not response.ok:
            log.warning("AT+CMGR failed modem=%s index=%d error=%s", self.name, index, response.result.meaning)
            return
        if len(response.lines) < 2:
            log.warning("empty storage slot modem=%s storage=%s index=%d", self.name, storage, index)
            return
        await self._handle_pdu(response.lines[1], slot=StoredSlot(self._read_storage, index))

    async def _select_read_storage(self, storage: str) -> None:
        response = await self.command(f'AT+CPMS="{storage}"')
        if response.ok:
            self._read_storage = storage
        else:
            log.warning("cannot select storage modem=%s storage=%s error=%s", self.name, storage, response.result.meaning)

    async def _handle_pdu(self, pdu_hex: str, slot: StoredSlot | None) -> bool:
        """Decode one PDU-mode PDU and hand it over; True once the sink has it (or it is a part held for
        reassembly), so the caller may acknowledge it."""
        try:
            _smsc, tpdu = split_smsc(bytes.fromhex(pdu_hex))
            decoded = decode_tpdu(tpdu, "mt")
        except (ValueError, PduError) as exc:
            # Kept in storage: nothing is deleted that was not handed over.
            log.warning("undecodable PDU modem=%s slot=%s error=%s pdu=%s", self.name, slot, exc, pdu_hex)
            return False
        if isinstance(decoded, SmsStatusReport):
            await self._deliver_report(decoded)
            if slot is not None:
                await self._delete((slot,))
            return True
        if isinstance(decoded, SmsDeliver):
            accepted = self._parts.add(decoded, slot, trio.current_time(), self.name, self.config.msisdn)
            await self._delete(accepted.discard)
            await self._hand_over(accepted.messages)
            return True
        return False

    async def _hand_over(self, messages: tuple[CompleteMessage, ...]) -> None:
        for message in messages:
            await self._sink.incoming_sms(message.sms)
            self._counts["received"] += 1
            log.info(
                "sms received modem=%s originator=%s parts=%d incomplete=%s flash=%s",
                self.name,
                message.sms.originator,
                message.parts,
                message.sms.incomplete,
                message.sms.flash,
            )
            await self._delete(message.slots)

    async def _deliver_report(self, report: SmsStatusReport) -> None:
        await self._sink.status_report(
            StatusReport(
                modem=self.name,
                tp_mr=report.tp_mr,
                recipient=report.recipient.number,
                tp_st=report.tp_st,
                discharge_time=report.discharge_time,
                service_centre_time=report.scts,
            )
        )
        self._counts["status_reports"] += 1
        if self._scanning_storage:
            self._counts["stored_reports_at_start"] += 1
        log.info(
            "status report modem=%s tp_mr=%d tp_st=%d from_storage_at_start=%s",
            self.name,
            report.tp_mr,
            report.tp_st,
            self._scanning_storage,
        )

    async def _delete(self, slots: tuple[StoredSlot, ...]) -> None:
        for slot in slots:
            if slot.storage and slot.storage != self._read_storage:
                await self._select_read_storage(slot.storage)
            response = await self.command(f"AT+CMGD={slot.index}")
            if not response.ok:
                log.warning("AT+CMGD failed modem=%s slot=%s error=%s", self.name, slot, response.result.meaning)

    async def _expire_parts(self) -> None:
        await self._hand_over(self._parts.expire(trio.current_time(), self.name, self.config.msisdn))

    # -- periodic work ------------------------------------------------------------------------------------

    async def _poller(self) -> None:
        while True:
            deadline = trio.current_time() + self.config.poll_interval_s
            next_expiry = self._parts.next_deadline()
            await trio.sleep_until(min(deadline, next_expiry) if next_expiry is not None else deadline)
            try:
                await self._expire_parts()
                if trio.current_time() >= deadline:
                    await self._poll_network()
            except CommandTimeout as exc:
                log.warning("poll failed modem=%s error=%s", self.name, exc)

    async def _poll_network(self) -> None:
        csq = await self.command("AT+CSQ")
        if csq.ok and csq.values("+CSQ:"):
            self.signal_rssi = _rssi(csq.values("+CSQ:")[0])
        creg = await self.command("AT+CREG?")
        if creg.ok and creg.values("+CREG:"):
            self.registration = _creg_stat(creg.values("+CREG:")[0])
        cops = await self.command("AT+COPS?")
        if cops.ok and cops.values("+COPS:"):
            quoted = _QUOTED.search(cops.values("+COPS:")[0])
            self.operator = quoted.group(1) if quoted else ""
        if self.registration is not None and self.registration not in _REGISTERED:
            log.warning("modem lost the network modem=%s creg=%s", self.name, self.registration)

    async def _watchdog(self) -> None:
        while True:
            idle_from = self._last_activity + self.config.watchdog_interval_s
            if trio.current_time() < idle_from:
                await trio.sleep_until(idle_from)
                continue
            try:
                await self.command("AT", self.config.watchdog_timeout_s)
            except CommandTimeout:
                pass  # counted by _write_and_wait, which declares the modem hung
            self._last_activity = max(self._last_activity, trio.current_time())

    # -- start-up -----------------------------------------------------------------------------------------

    def _count_for_sim(self) -> None:
        """Limits belong to a SIM, not to a port: another SIM in this modem (put in because the last one's bundle
        ran out, say) starts from zero."""
        if self.imsi and self._limits_imsi and self.imsi != self._limits_imsi:
            log.warning(
                "another SIM, limit counters start at zero modem=%s imsi=%s previous_imsi=%s",
                self.name,
                self.imsi,
                self._limits_imsi,
            )
            self._limits = _send_limits(self.config)
        self._limits_imsi = self.imsi or self._limits_imsi

    async def _start_up(self) -> None:
        self._set_state(ModemState.INITIALISING)
        await self._sync()
        await self.command("AT+CMEE=1")  # numeric +CME ERROR codes; a modem without it still works
        await self._identify()
        await self._unlock_sim()
        imsi = await self.command("AT+CIMI")
        self.imsi = _digits(imsi.lines)
        self._count_for_sim()
        await self._require("AT+CMGF=0")
        for extra in self.quirks.init_commands:
            response = await self.command(extra)
            if not response.ok:
                log.warning("quirk init command failed modem=%s command=%s", self.name, extra)
        if self.config.smsc:
            await self._require(f'AT+CSCA="{self.config.smsc}",{_toa(self.config.smsc)}')
        await self._choose_storage()
        await self._choose_indications()
        await self.command("AT+COPS=3,0")  # long alphanumeric operator names in +COPS?
        self._set_state(ModemState.REGISTERING)
        await self._wait_registration()
        await self._poll_network()
        log.info(
            "modem ready modem=%s manufacturer=%s model=%s imei=%s quirks=%s operator=%s rssi=%s",
            self.name,
            self.manufacturer,
            self.model,
            self.imei,
            self.quirks.name,
            self.operator,
            self.signal_rssi,
        )

    async def _sync(self) -> None:
        """ESC, then ATE0 until the modem answers: it may still be booting, or left with echo on (which ATE0
        handles). A `> ` prompt left open by a crash (ours, or a previous process's between AT+CMGS and the PDU)
        takes every command as PDU input until Ctrl-Z; ESC ends it without sending, and a modem in command mode
        ignores it. The modem's answer to that ESC, if any, arrives before ATE0 is asked and passes as
        unsolicited."""
        stream = self._stream
        if stream is not None:
            await stream.send_all(ESC)
            await trio.sleep(self.config.escape_settle_s)
        for _attempt in range(3):
            try:
                response = await self.command("ATE0", self.config.watchdog_timeout_s)
            except CommandTimeout:
                self._timeouts_in_a_row = 0  # three tries here, not the watchdog's count
                continue
            if response.ok:
                self._timeouts_in_a_row = 0
                return
        raise _StartupFailed("hung", "no answer to ATE0")

    async def _identify(self) -> None:
        self.manufacturer = _text_answer(await self.command("AT+CGMI"), "+CGMI:")
        self.model = _text_answer(await self.command("AT+CGMM"), "+CGMM:")
        self.imei = _digits((await self.command("AT+CGSN")).lines)
        self.quirks = find_quirks(self._quirks_table, self.manufacturer, self.model)
        self._at.add_unsolicited(self.quirks.unsolicited_table())
        log.info(
            "modem identified modem=%s manufacturer=%s model=%s imei=%s quirks=%s",
            self.name,
            self.manufacturer,
            self.model,
            self.imei,
            self.quirks.name,
        )

    async def _unlock_sim(self) -> None:
        pin_sent = False
        give_up = trio.current_time() + max(self.config.sim_ready_timeout_s, self.quirks.sim_busy_timeout_s)
        while True:
            state, error = await self._sim_state()
            if state == "READY":
                return
            if state == "SIM PIN":
                if pin_sent:
                    raise _StartupFailed("fatal", "SIM still asks for its PIN after the configured PIN: wrong PIN")
                if not self.config.pin:
                    raise _StartupFailed("fatal", "SIM needs a PIN and none is configured")
                pin_sent = True
                await self._enter_pin(self.config.pin)
                continue
            if state is not None:
                raise _StartupFailed("fatal", f"SIM needs {state}")
            if error is not None and error in _SIM_FATAL_CME:
                raise _StartupFailed("fatal", f"SIM problem: +CME ERROR: {error}")
            if trio.current_time() >= give_up:
                raise _StartupFailed("hung", f"SIM not ready after {self.config.sim_ready_timeout_s} s")
            await trio.sleep(_SIM_POLL_S)

    async def _sim_state(self) -> tuple[str | None, int | None]:
        """("READY" / "SIM PIN" / other +CPIN state, None) or (None, CME error) while the SIM is busy."""
        self._partial_answer = ()
        try:
            response = await self.command("AT+CPIN?")
        except CommandTimeout:
            # Some modems print "+CPIN: READY" and never the OK: the partial answer is enough.
            partial: tuple[str, ...] = self._partial_answer
            values = [line[len("+CPIN:") :].strip() for line in partial if line.startswith("+CPIN:")]
            self._timeouts_in_a_row = 0
            if values:
                return values[0], None
            return None, None
        if response.ok and response.values("+CPIN:"):
            return response.values("+CPIN:")[0], None
        return None, response.result.cme_error

    async def _enter_pin(self, pin: str) -> None:
        try:
            response = await self.command(f'AT+CPIN="{pin}"')
        except CommandTimeout:
            # The OK may never come; the next AT+CPIN? tells what happened. The PIN is not sent again.
            self._timeouts_in_a_row = 0
            return
        if not response.ok and response.result.cme_error in (_CME_INCORRECT_PASSWORD, 12):
            raise _StartupFailed("fatal", f"PIN rejected ({response.result.meaning}); not retried")

    async def _choose_storage(self) -> None:
        test = await self.command("AT+CPMS=?")
        lists = _parenthesised_lists(test.values("+CPMS:")[0]) if test.ok and test.values("+CPMS:") else []
        receive_lists = [lists[0], lists[-1]] if lists else []
        storage = next(
            (s for s in self.quirks.storages if all(s in options for options in receive_lists)),
            self.quirks.storages[0],
        )
        response = await self.command(f'AT+CPMS="{storage}","{storage}","{storage}"')
        if not response.ok:
            response = await self.command(f'AT+CPMS="{storage}"')
        if response.ok:
            self._read_storage = storage
        else:
            log.warning("storage not selected modem=%s storage=%s", self.name, storage)
        offered = lists[0] if lists else []
        self._report_storages = tuple(s for s in self.quirks.report_storages if s in offered and s != storage)

    async def _choose_indications(self) -> None:
        if self.quirks.needs_cnma:
            # Before +CNMI: phase 2+ makes the network wait for our AT+CNMA, sent only after the store has it.
            response = await self.command("AT+CSMS=1")
            if not response.ok:
                log.warning("AT+CSMS=1 refused modem=%s error=%s", self.name, response.result.meaning)
        test = await self.command("AT+CNMI=?")
        supported = _parenthesised_lists(test.values("+CNMI:")[0]) if test.ok and test.values("+CNMI:") else []
        values = choose_cnmi(self.quirks.cnmi, [[int(v) for v in options if v.isdigit()] for options in supported])
        await self._require("AT+CNMI=" + ",".join(str(v) for v in values))

    async def _wait_registration(self) -> None:
        give_up = trio.current_time() + self.config.registration_timeout_s
        while True:
            response = await self.command("AT+CREG?")
            if response.ok and response.values("+CREG:"):
                self.registration = _creg_stat(response.values("+CREG:")[0])
                if self.registration in _REGISTERED:
                    return
            if trio.current_time() >= give_up:
                raise _StartupFailed("hung", f"not registered after {self.config.registration_timeout_s} s")
            await trio.sleep(_REGISTRATION_POLL_S)


# -- pure helpers --------------------------------------------------------------------------------------------


def choose_cnmi(preferred: tuple[int, ...], supported: list[list[int]]) -> tuple[int, ...]:
    """+CNMI values: the quirk's preference where the modem supports it (AT+CNMI=? lists), else a fallback.

    mode 2 (buffer while the link is busy) before 1 and 3; mt 1 (store, +CMTI) before 2 (+CMT) and ds 2 (store,
    +CDSI) before 1 (+CDS), because a stored message or report survives our crash and waits on the modem until
    the store has it; a model that can only deliver reports directly is run with +CSMS=1 (quirk `needs_cnma`)."""
    fallbacks = ((2, 1, 3, 0), (1, 2, 3, 0), (0, 2), (2, 1, 0), (0, 1))
    if not supported:
        return tuple(preferred)
    chosen: list[int] = []
    for position, options in enumerate(supported[:5]):
        candidates = (preferred[position], *fallbacks[position])
        value = next((c for c in candidates if c in options), options[0] if options else preferred[position])
        chosen.append(value)
    return tuple(chosen)


def _submit_tpdu(sms: OutgoingSms) -> SmsSubmit:
    encoding = parse_data_coding(sms.data_coding).encoding
    return SmsSubmit(
        destination=_destination(sms.destination),
        user_data=sms.user_data,
        dcs=Dcs.for_encoding(encoding, 0 if sms.flash else None),
        udh=sms.udh,
        validity=sms.validity,
        status_report_request=sms.status_report,
    )


def _destination(number: str) -> Address:
    """International digits (the seam's contract), '+digits', or national digits with their trunk prefix '0'."""
    digits = number.removeprefix("+")
    if digits.startswith("0") and not number.startswith("+"):
        return Address(digits, TypeOfNumber.UNKNOWN)
    return Address.international(digits)


def _toa(number: str) -> int:
    return 145 if number.startswith("+") else 129


def _send_limits(config: ModemConfig) -> SendLimits:
    return SendLimits(config.messages_per_minute, config.messages_per_day, config.messages_per_month)


def _today() -> date:
    return datetime.now(UTC).date()


def _text_answer(response: Response, prefix: str) -> str:
    if not response.ok or not response.lines:
        return ""
    return response.lines[0].removeprefix(prefix).strip().strip('"')


def _digits(lines: tuple[str, ...]) -> str:
    for line in lines:
        digits = "".join(c for c in line if c.isdigit())
        if len(digits) >= 6:
            return digits
    return ""


def _first_int(text: str) -> int | None:
    head = text.split(",")[0].strip()
    return int(head) if head.isdigit() else None


def _rssi(params: str) -> int | None:
    value = _first_int(params)
    return None if value is None or value == 99 else value


def _creg_stat(params: str) -> int | None:
    """<stat> of '+CREG: <n>,<stat>[,...]' (answer) or '+CREG: <stat>[,...]' (unsolicited)."""
    fields = [f.strip() for f in params.split(",")]
    if len(fields) >= 2 and fields[1].isdigit() and not fields[1].startswith('"'):
        return int(fields[1])
    return int(fields[0]) if fields and fields[0].isdigit() else None


def _storage_location(params: str) -> tuple[str, int] | None:
    """('SM', 3) from '"SM",3'."""
    storage, _, index = params.partition(",")
    index = index.strip()
    if not index.isdigit():
        return None
    return storage.strip().strip('"'), int(index)


def _parenthesised_lists(text: str) -> list[list[str]]:
    """'("SM","ME"),(0-2),1' -> [['SM','ME'], ['0','1','2'], ['1']]; ranges are expanded."""
    groups: list[list[str]] = []
    for match in re.finditer(r"\(([^)]*)\)|([^,()]+)", text):
        body = match.group(1) if match.group(1) is not None else match.group(2)
        values: list[str] = []
        for item in body.split(","):
            item = item.strip().strip('"')
            if re.fullmatch(r"\d+-\d+", item):
                low, high = (int(v) for v in item.split("-"))
                values.extend(str(v) for v in range(low, high + 1))
            elif item:
                values.append(item)
        groups.append(values)
    return groups
