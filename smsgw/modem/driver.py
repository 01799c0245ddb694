"""ModemDriver: one GSM modem on one port, the Trio shell that wires its parts and supervises the port.

The parts, split the way zigpy-znp splits request/response, transport and start-up:
- `exchange.CommandExchange`: commands one at a time under a lock, the reply queue registered before the write,
  timeouts, the count of unanswered commands, the watchdog;
- `startup.StartUp`: identify, SIM and PIN, storage, +CNMI choice, registration;
- `incoming.ReceivePath`: storage scans, stored reads, status reports, the URC worker and its backpressure queue;
- `submit`: the SMS-SUBMIT for a segment and what the answer to AT+CMGS means;
- `status` and `limits.SimLimits`: what the modem is, has done, and may still send.

This module keeps the public API the pool and the app use, the reader task, and the supervisor. The supervisor
owns the port: it opens it, runs the start-up script, and on trouble escalates — re-open the port, then
`AT+CFUN=1,1`, then mark the modem down (still probing it slowly, so a replugged or recovered modem comes back by
itself). A wrong PIN is never retried: three tries lock the SIM.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final

import trio

from smsgw.config import ModemConfig
from smsgw.modem.answers import creg_stat, rssi
from smsgw.modem.at import Prompt, Response, Unsolicited
from smsgw.modem.exchange import CommandExchange, CommandTimeout, acquire_at_once
from smsgw.modem.incoming import RECEIVE_CODES, ReceivePath, UrcQueue
from smsgw.modem.limits import LimitUsage, SimLimits
from smsgw.modem.quirks import DEFAULT_QUIRKS_DIR, ModemQuirks, load_quirks
from smsgw.modem.seams import ModemEventSink, OutgoingSms, SendFailed, SendOutcome, Sent
from smsgw.modem.startup import SessionEndKind, StartUp, StartupFailed, poll_network
from smsgw.modem.status import ModemCounts, ModemInfo, ModemState, ModemStatus
from smsgw.modem.submit import send_outcome, submit_tpdu
from smsgw.modem.transport import open_serial
from smsgw.pdu.errors import PduError
from smsgw.pdu.tpdu import encode_with_smsc

# What the pool, the app, the status file and the tests import with the driver.
__all__ = ["CommandTimeout", "ModemDriver", "ModemState", "ModemStatus", "StreamOpener"]

log = logging.getLogger(__name__)

StreamOpener = Callable[[], Awaitable[trio.abc.Stream]]

# Lines with which a modem announces that it (re)booted: its settings (+CNMI, +CMGF) are gone.
_RESTART_INDICATIONS: Final = frozenset({"RDY", "^SYSSTART"})


@dataclass(frozen=True, slots=True)
class _SessionEnd:
    kind: SessionEndKind
    reason: str


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
        self._opener = opener or self._open_serial
        if quirks_table is None:
            quirks_table = load_quirks(Path(config.quirks_dir) if config.quirks_dir else DEFAULT_QUIRKS_DIR)
        self._limits = SimLimits(config.messages_per_minute, config.messages_per_day, config.messages_per_month)
        self._state = ModemState.CLOSED
        self._state_changed = trio.Event()
        self._session_scope: trio.CancelScope | None = None
        self._end: _SessionEnd | None = None
        self._sending = 0
        self._reached_ready = False
        self._reset_wanted = False
        self.failures_in_a_row = 0  # temporary send failures since the last success: the pool prefers others
        self._info = ModemInfo()
        self._counts = ModemCounts()
        self._last_error = ""
        self._urc = UrcQueue()
        self._exchange = CommandExchange(
            self.name, config, on_hung=lambda reason: self._fail("hung", reason), on_command=self._urc.wake
        )
        self._startup = StartUp(self.name, config, self._exchange, self._info, quirks_table)
        self._incoming = ReceivePath(
            self.name, config.msisdn, self._exchange, self._urc, sink, self._info, self._counts, reassembly_timeout_s
        )

    # -- what the pool asks -------------------------------------------------------------------------------

    @property
    def state(self) -> ModemState:
        return self._state

    # What the modem told us about itself.
    @property
    def quirks(self) -> ModemQuirks:
        return self._info.quirks

    @property
    def manufacturer(self) -> str:
        return self._info.manufacturer

    @property
    def model(self) -> str:
        return self._info.model

    @property
    def imei(self) -> str:
        return self._info.imei

    @property
    def imsi(self) -> str:
        return self._info.imsi

    @property
    def signal_rssi(self) -> int | None:
        return self._info.signal_rssi

    @property
    def registration(self) -> int | None:
        return self._info.registration

    @property
    def operator(self) -> str:
        return self._info.operator

    def limit_reached(self) -> str | None:
        if self._limits.limits.unlimited:  # the common case, asked for every modem on every send
            return None
        return self._limits.limits.exhausted(trio.current_time(), _today())

    def can_send(self) -> bool:
        return self._state is ModemState.READY and self.limit_reached() is None

    def send_rank(self) -> tuple[bool, int, int] | None:
        """How the pool ranks this modem for the next send, lower first: idle before busy, then fewer temporary
        failures in a row, then fewer sent; None when it cannot send. One call per modem, since the pool asks every
        modem of the group on every send."""
        if self._state is not ModemState.READY or self.limit_reached() is not None:
            return None
        return (self._sending > 0 or self._exchange.lock.locked(), self.failures_in_a_row, self._counts.sent)

    def status(self) -> ModemStatus:
        counters = self._limits.limits.counters(trio.current_time(), _today())
        info = self._info
        return ModemStatus(
            name=self.name,
            port=self.config.port,
            group=self.config.group,
            msisdn=self.config.msisdn,
            state=self._state,
            manufacturer=info.manufacturer,
            model=info.model,
            imei=info.imei,
            imsi=info.imsi,
            quirks=info.quirks.name,
            signal_rssi=info.signal_rssi,
            registration=info.registration,
            operator=info.operator,
            sent=self._counts.sent,
            failed=self._counts.failed,
            received=self._counts.received,
            status_reports=self._counts.status_reports,
            sent_last_minute=counters.last_minute,
            sent_today=counters.today,
            sent_this_month=counters.this_month,
            limit_reached=self.limit_reached(),
            last_error=self._last_error,
            stored_reports_at_start=self._counts.stored_reports_at_start,
        )

    def limit_usage(self) -> LimitUsage:
        return self._limits.limits.usage(trio.current_time(), _today())

    @property
    def limits_imsi(self) -> str:
        return self._limits.imsi

    def restore_limit_usage(self, usage: LimitUsage, elapsed_s: float, imsi: str) -> None:
        """Count what SIM `imsi` sent in an earlier run, `elapsed_s` of wall time ago, against its limits (until
        start-up finds another SIM in the modem)."""
        self._limits.restore(usage, trio.current_time(), _today(), elapsed_s, imsi)

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
            tpdu = submit_tpdu(sms).to_bytes()
        except PduError as exc:
            return SendFailed(temporary=False, reason=f"cannot encode: {exc.message}")
        self._sending += 1
        try:
            outcome = await self._submit(tpdu)
        finally:
            self._sending -= 1
        if isinstance(outcome, Sent):
            self._counts.sent += 1
            self.failures_in_a_row = 0
            log.info("sms sent modem=%s segment=%s tp_mr=%d", self.name, sms.segment_id, outcome.tp_mr)
        else:
            self._counts.failed += 1
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
        exchange = self._exchange
        try:
            await acquire_at_once(exchange.lock)
            try:
                self._limits.limits.record(trio.current_time(), _today())
                reply = await exchange.exchange(command, expects_prompt=True)
                if isinstance(reply, Prompt):
                    reply = await exchange.send_pdu(command, pdu.hex().upper(), self.config.send_timeout_s)
            finally:
                exchange.lock.release()
        except CommandTimeout:
            # The modem may still have sent it; a retry risks a duplicate, which beats losing the message.
            return SendFailed(temporary=True, reason=f"no answer to {command} within the send timeout")
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            return SendFailed(temporary=True, reason=f"port lost while sending: {exc}")
        if not isinstance(reply, Response):
            return SendFailed(temporary=True, reason=f"unexpected second prompt after {command}")
        return send_outcome(command, reply, self.name, self.config.msisdn)

    # -- commands -----------------------------------------------------------------------------------------

    async def command(self, command: str, timeout_s: float | None = None) -> Response:
        """Run one AT command; raises `CommandTimeout`. The answer may be an error: check `Response.ok`."""
        return await self._exchange.command(command, timeout_s)

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
            if self._reset_wanted:
                self._reset_wanted = False
                stage = _Stage.RESET  # AT+CFUN=1,1 now, then a start-up as after any reset
            if stage is _Stage.RESET:
                await self._session(stream, reset=True)
                await trio.sleep(self.config.reset_settle_s)
                stage = _Stage.AFTER_RESET
                continue
            self._reached_ready = False
            end = await self._session(stream, reset=False)
            self._last_error = f"{end.kind}: {end.reason}"
            log.warning("modem session ended modem=%s kind=%s reason=%s", self.name, end.kind, end.reason)
            if self._reset_wanted:
                self._set_state(ModemState.CLOSED)
                continue  # re-open at once for the reset
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

    def reset(self) -> None:
        """An operator's reset: end the session now and power-cycle the modem (AT+CFUN=1,1) at the next open, as
        for a modem that hung twice. A modem between sessions is reset when its port next opens."""
        log.warning("modem reset requested by an operator modem=%s", self.name)
        self._reset_wanted = True
        self._fail("restarted", "reset by an operator")

    async def _open_serial(self) -> trio.abc.Stream:
        return open_serial(self.config.port, self.config.baudrate, self.config.rtscts)

    async def _session(self, stream: trio.abc.Stream, *, reset: bool) -> _SessionEnd:
        self._end = None
        self._exchange.open(stream)
        try:
            async with trio.open_nursery() as nursery:
                self._session_scope = nursery.cancel_scope
                nursery.start_soon(self._reader, stream)
                nursery.start_soon(self._exchange.end_waits_at_deadlines)
                await self._guarded(self._start_session, nursery, reset)
        finally:
            self._session_scope = None
            self._exchange.close()
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
        except StartupFailed as exc:
            self._fail(exc.kind, exc.reason)
            return
        except CommandTimeout as exc:
            self._fail("hung", f"start-up: {exc}")
            return
        self._set_state(ModemState.READY)
        self._reached_ready = True
        nursery.start_soon(self._guarded, self._incoming.worker)
        nursery.start_soon(self._guarded, self._poller)
        nursery.start_soon(self._guarded, self._exchange.watchdog)

    async def _start_up(self) -> None:
        self._set_state(ModemState.INITIALISING)
        await self._startup.identify()
        previous_imsi = self._limits.sim_found(self._info.imsi)
        if previous_imsi is not None:
            log.warning(
                "another SIM, limit counters start at zero modem=%s imsi=%s previous_imsi=%s",
                self.name,
                self._info.imsi,
                previous_imsi,
            )
        self._incoming.use_storages(await self._startup.configure())
        self._set_state(ModemState.REGISTERING)
        await self._startup.register()
        info = self._info
        log.info(
            "modem ready modem=%s manufacturer=%s model=%s imei=%s quirks=%s operator=%s rssi=%s",
            self.name,
            info.manufacturer,
            info.model,
            info.imei,
            info.quirks.name,
            info.operator,
            info.signal_rssi,
        )

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
            # The steps of a start-up that goes well are DEBUG ("modem ready" says it at INFO, once); a modem that
            # leaves READY, or never reaches it, is what an operator needs to see.
            starting = state in (ModemState.INITIALISING, ModemState.REGISTERING, ModemState.READY)
            log.log(
                logging.DEBUG if starting else logging.INFO,
                "modem state modem=%s from=%s to=%s", self.name, self._state.value, state.value,
            )
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

    # -- the session's other tasks ------------------------------------------------------------------------

    async def _reader(self, stream: trio.abc.Stream) -> None:
        try:
            while True:
                await self._urc.wait_for_room(lambda: self._exchange.command_waiting)
                data = await stream.receive_some()
                if not data:
                    self._fail("gone", "port closed by the device")
                    return
                for event in self._exchange.receive_data(data):
                    self._on_unsolicited(event)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._fail("gone", f"port lost: {exc}")

    def _on_unsolicited(self, event: Unsolicited) -> None:
        """In the reader task: cheap state updates here, anything needing commands to the URC worker."""
        name = event.name
        if name in RECEIVE_CODES:
            self._urc.put(event)
        elif name == "^RSSI":
            self._info.signal_rssi = rssi(event.params)
        elif name == "+CREG":
            self._info.registration = creg_stat(event.params)
        elif name in _RESTART_INDICATIONS and self._state is ModemState.READY:
            self._fail("restarted", f"modem announced a restart ({event.line})")
        else:
            log.debug("unsolicited modem=%s line=%r", self.name, event.line)

    async def _poller(self) -> None:
        while True:
            deadline = trio.current_time() + self.config.poll_interval_s
            next_expiry = self._incoming.next_deadline()
            await trio.sleep_until(min(deadline, next_expiry) if next_expiry is not None else deadline)
            try:
                await self._incoming.expire_parts()
                if trio.current_time() >= deadline:
                    await poll_network(self._exchange, self._info)
            except CommandTimeout as exc:
                log.warning("poll failed modem=%s error=%s", self.name, exc)


def _today() -> date:
    return datetime.now(UTC).date()
