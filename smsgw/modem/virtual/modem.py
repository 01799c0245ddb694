"""The modem side of AT: `ModemCore`, a sans-IO interpreter (bytes from the host in, bytes to the host out, with
`now` and a next deadline), and `VirtualModem`, its Trio shell over any `trio.abc.Stream`.

The core answers as a GSM modem does (3GPP TS 27.007 and 27.005, ITU-T V.250): echo, verbose or numeric result
codes, `+CME ERROR`/`+CMS ERROR` per `+CMEE`, SIM PIN/PUK, registration, PDU and text mode, SIM and ME message
storage with a capacity, `+CNMI` routing of received messages and status reports, and the `> ` prompt of
`+CMGS`. SMS go to and come from a `VirtualNetwork`, encoded with the smsgw.pdu codec.

Its rooms: `lineinput` (echo, editing, `> `), `output` (result codes, unsolicited result code spacing and
buffering), one table of command handlers below over `general` and `sms`, and `delivery` (MT messages, stored or
routed per `+CNMI`). The core itself holds the state they share, and powers the SIM and registers it.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable
from typing import Final

import trio

from smsgw.config import VirtualNetworkConfig
from smsgw.modem.virtual import general, sms
from smsgw.modem.virtual.atparse import Command, LineSyntaxError, Op, parse_line
from smsgw.modem.virtual.commands import (
    CME_INCORRECT_PARAMETERS,
    CME_SIM_BUSY,
    CME_SIM_PIN_REQUIRED,
    CME_SIM_PUK_REQUIRED,
    CMS_INVALID_PDU_PARAMETER,
    CMS_INVALID_TEXT_PARAMETER,
    CMS_SIM_BUSY,
    CMS_SIM_PIN_REQUIRED,
    CMS_SIM_PUK_REQUIRED,
    BadParameter,
    CmeError,
    CmsError,
    FinalText,
    Handler,
    Prompt,
    Settings,
)
from smsgw.modem.virtual.delivery import Storage, StoredSms, Unacknowledged, cnma_timed_out, receive_mt
from smsgw.modem.virtual.general import (
    DEFAULT_PIN_TRIES,
    DEFAULT_PUK_TRIES,
    ModemIdentity,
    Registration,
    SimState,
    creg_line,
)
from smsgw.modem.virtual.lineinput import LineInput
from smsgw.modem.virtual.network import Handset, Mt, MtResult, VirtualNetwork
from smsgw.modem.virtual.output import HostOutput
from smsgw.modem.virtual.persona import GENERIC_PERSONA, ModemPersona

log = logging.getLogger(__name__)
wire_log = logging.getLogger("smsgw.wire")


class ModemCore:
    """One virtual modem with its SIM (sans-IO). Feed it the host's bytes with `receive_data`, send what
    `data_to_send` returns, and call `handle_timers` at `next_deadline()`. The network calls `receive_mt`.

    The attributes without an underscore are the state the command handlers read and change."""

    def __init__(
        self,
        *,
        msisdn: str,
        network: VirtualNetwork,
        config: VirtualNetworkConfig,
        now: float,
        pin: str | None = None,
        puk: str = "12345678",
        persona: ModemPersona = GENERIC_PERSONA,
        on_output: Callable[[], None] = lambda: None,
        handset: Handset | None = None,
    ) -> None:
        """`handset`: what the network offers MT messages to once the modem registers; the core itself unless a
        shell runs it there (to send at once what the core makes of them)."""
        self.msisdn = msisdn
        self._handset: Handset = self if handset is None else handset
        self.persona = persona
        self.identity = ModemIdentity.for_msisdn(msisdn, persona)
        self.network = network
        self.config = config
        self.pin = pin
        self.puk = puk
        self.storages = {
            name: Storage(config.sim_capacity if name.startswith("SM") else config.me_capacity)
            for name in persona.storages
        }
        self.output = HostOutput(
            settings=lambda: self.settings,
            in_command=lambda: self._input.in_command(),
            gap_s=config.unsolicited_gap_s,
            now=now,
            on_output=on_output,
        )
        self._input = LineInput(
            msisdn=msisdn,
            settings=lambda: self.settings,
            output=self.output,
            execute=self._execute_line,
            submit_delay_s=config.submit_delay_s,
        )
        self.tp_mr = 0
        self.memory_exceeded = False
        # Each command name and operation's handler, found once: the persona is the modem's for life.
        self._handlers: dict[tuple[str, Op], Handler] = {}
        # Messages routed to the host with +CMT/+CDS under +CSMS=1, waiting for +CNMA, oldest first.
        self.unacknowledged: list[Unacknowledged] = []
        self.power_on(now)

    # --- the sans-IO interface ----------------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray, now: float) -> None:
        if data:
            wire_log.debug("virtual modem msisdn=%s host>modem %r", self.msisdn, data)
        self._input.receive(data)
        self.update(now)
        self._input.process(now)
        self.output.flush_urcs()

    def data_to_send(self) -> bytes:
        return self.output.take()

    def put_back(self, data: bytes) -> None:
        """What the link could not take yet goes back in front of what is still to be sent."""
        self.output.put_back(data)

    def next_deadline(self) -> float | None:
        earliest: float | None = None
        for deadline in (
            self._input.busy_until,
            self._sim_ready_at,
            self._registered_at,
            self.periodic_at,
            self.unacknowledged[0].deadline if self.unacknowledged else None,
            self.output.next_deadline(),
        ):
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        return earliest

    def handle_timers(self, now: float) -> None:
        self.update(now)
        self._input.handle_timers(now)
        self.output.flush_urcs()

    def receive_mt(self, now: float, message: Mt) -> MtResult:
        """The network delivers an SMS-DELIVER or SMS-STATUS-REPORT: store it or pass it on per +CNMI."""
        self.update(now)
        if self._registration is not Registration.HOME:
            return MtResult.ABSENT
        return receive_mt(self, now, message)

    @property
    def registration(self) -> Registration:
        return self._registration

    def stored(self, memory: str) -> dict[int, StoredSms]:
        return dict(self.storages[memory].slots)

    # --- power, SIM and registration ----------------------------------------------------------------------------

    def default_settings(self) -> Settings:
        first = self.persona.storages[0]
        return Settings(cpms=(first, first, first))

    def power_on(self, now: float) -> None:
        self.settings = self.default_settings()
        self.periodic_at: float | None = None
        self.set_periodic(now, on=True)
        self.cfun = 1
        self.sim_state = SimState.BUSY
        self._sim_ready_at: float | None = now + self.config.sim_ready_delay_s
        self.pin_tries = DEFAULT_PIN_TRIES
        self.puk_tries = DEFAULT_PUK_TRIES
        self._registration = Registration.NOT_REGISTERED
        self._registered_at: float | None = None
        self.update(now)

    def set_periodic(self, now: float, *, on: bool) -> None:
        interval = self.persona.periodic_interval_s
        self.periodic_at = now + interval if on and interval > 0 and self.persona.periodic_lines else None

    def rssi(self) -> int:
        """TS 27.007 8.5 <rssi>: 99 (not known) while the radio is off."""
        return self.config.signal_rssi if self.cfun == 1 else 99

    def update(self, now: float) -> None:
        """Move the modem's clock to `now`: the SIM, registration, +CNMA and periodic timers that fall due."""
        self.output.now = now
        if self.sim_state is SimState.BUSY and self._sim_ready_at is not None and now >= self._sim_ready_at:
            self._sim_ready_at = None
            self.sim_state = SimState.PIN if self.pin is not None else SimState.READY
            if self.persona.ready_lines and self.sim_state is SimState.READY:
                self.output.urc(list(self.persona.ready_lines))
            self.start_registration(now)
        if self._registered_at is not None and now >= self._registered_at:
            self._registered_at = None
            self._set_registration(now, Registration.HOME)
        if self.unacknowledged and now >= self.unacknowledged[0].deadline:
            cnma_timed_out(self)
        if self.periodic_at is not None and now >= self.periodic_at:
            self.periodic_at = now + self.persona.periodic_interval_s
            lines = [line.replace("{rssi}", str(self.rssi())) for line in self.persona.periodic_lines]
            if self.persona.lines_mid_command:
                self.output.emit_lines(lines)
            else:
                self.output.urc(lines)

    def start_registration(self, now: float) -> None:
        if (
            self.sim_state is SimState.READY
            and self.cfun == 1
            and self._registration is Registration.NOT_REGISTERED
        ):
            self._set_registration(now, Registration.SEARCHING)
            self._registered_at = now + self.config.registration_delay_s
            self.update(now)

    def _set_registration(self, now: float, registration: Registration) -> None:
        if registration is self._registration:
            return
        self._registration = registration
        if registration is Registration.HOME:
            self.network.attach(now, self.msisdn, self._handset)
        elif self.network.is_attached(self.msisdn):
            self.network.detach(now, self.msisdn)
        if self.settings.creg:
            self.output.urc([creg_line(self, "+CREG", self.settings.creg, unsolicited=True)])
        if self.settings.cgreg:
            self.output.urc([creg_line(self, "+CGREG", self.settings.cgreg, unsolicited=True)])

    def detach(self, now: float) -> None:
        self._registered_at = None
        self._set_registration(now, Registration.NOT_REGISTERED)

    def require_sim(self, family: str) -> None:
        """Raise the error a command of `family` ("cme" or "cms") answers while the SIM is not ready."""
        if self.sim_state is SimState.READY:
            return
        cme = {SimState.BUSY: CME_SIM_BUSY, SimState.PIN: CME_SIM_PIN_REQUIRED, SimState.PUK: CME_SIM_PUK_REQUIRED}
        cms = {SimState.BUSY: CMS_SIM_BUSY, SimState.PIN: CMS_SIM_PIN_REQUIRED, SimState.PUK: CMS_SIM_PUK_REQUIRED}
        raise CmsError(cms[self.sim_state]) if family == "cms" else CmeError(cme[self.sim_state])

    # --- commands -------------------------------------------------------------------------------------------------

    def _execute_line(self, now: float, line: str) -> Prompt | None:
        """Run a command line; its answer goes to the output, and a `Prompt` it ends in is returned."""
        output = self.output
        try:
            commands = _parsed(line)
        except LineSyntaxError:
            if line[:2].upper() == "AT":
                output.final_error(None, "cme")
            return None
        lines: list[str] = []
        for command in commands:
            handler = self._handler(command)
            family = "cms" if command.name in _SMS_COMMANDS else "cme"
            if handler is None:
                log.debug("virtual modem msisdn=%s unknown command=%s", self.msisdn, command.name)
                output.final_error(None, family)
                return None
            try:
                result = handler(self, now, command)
            except CmeError as error:
                output.final_error(error.code, "cme")
                return None
            except CmsError as error:
                output.final_error(error.code, "cms")
                return None
            except BadParameter:
                code = CMS_INVALID_TEXT_PARAMETER if self.settings.cmgf else CMS_INVALID_PDU_PARAMETER
                output.final_error(code if family == "cms" else CME_INCORRECT_PARAMETERS, family)
                return None
            if isinstance(result, Prompt):
                output.emit_lines(lines)
                output.emit_raw(b"\r\n> ")
                return result
            if isinstance(result, FinalText):
                output.emit_lines(lines)
                output.final(result.text, result.numeric)
                return None
            lines.extend(result)
        output.final_ok(lines)
        return None

    def _handler(self, command: Command) -> Handler | None:
        key = (command.name, command.op)
        handler = self._handlers.get(key)
        if handler is None:
            handler = self._find_handler(command)
            if handler is not None:  # unknown names are not kept: a host may type any number of them
                self._handlers[key] = handler
        return handler

    def _find_handler(self, command: Command) -> Handler | None:
        persona = self.persona
        if command.name == persona.periodic_switch:
            return general.cmd_periodic_switch
        answer = persona.answers.get(command.name + command.op.value)
        if answer is not None:
            return lambda modem, now, command: list(answer)
        return _COMMANDS.get(command.name)


@functools.lru_cache(maxsize=1024)
def _parsed(line: str) -> tuple[Command, ...]:
    """`parse_line`, once per distinct line: a host sends the same few lines (AT+CMGS=<length>, AT+CMGR=<index>)
    over and over. Commands are frozen, so every modem may share them."""
    return tuple(parse_line(line))


def _cmd_clac(modem: ModemCore, now: float, command: Command) -> list[str]:
    vendor = {modem.persona.periodic_switch} | {name.rstrip("=?") for name in modem.persona.answers}
    return sorted("AT" + name for name in {*_COMMANDS, *vendor} if name.startswith(("+", "^")))


# The one table of commands: name as parsed (upper case, without AT) to its handler.
_COMMANDS: Final[dict[str, Handler]] = {
    "E": general.cmd_echo,
    "V": general.cmd_verbose,
    "Q": general.cmd_quiet,
    "Z": general.cmd_reset,
    "&F": general.cmd_reset,
    "&C": general.cmd_accept,
    "&D": general.cmd_accept,
    "&K": general.cmd_accept,
    "&W": general.cmd_accept,
    "X": general.cmd_accept,
    "I": general.cmd_info,
    "H": general.cmd_accept,
    "A": general.cmd_no_carrier,
    "D": general.cmd_no_carrier,
    **{f"S{n}": general.cmd_s_register for n in range(13)},
    "+CGMI": general.cmd_manufacturer,
    "+GMI": general.cmd_manufacturer,
    "+CGMM": general.cmd_model,
    "+GMM": general.cmd_model,
    "+CGMR": general.cmd_revision,
    "+GMR": general.cmd_revision,
    "+CGSN": general.cmd_imei,
    "+GSN": general.cmd_imei,
    "+CIMI": general.cmd_imsi,
    "+CCID": general.cmd_iccid,
    "+ICCID": general.cmd_iccid,
    "+CNUM": general.cmd_cnum,
    "+CLAC": _cmd_clac,
    "+CMEE": general.cmd_cmee,
    "+CPIN": general.cmd_cpin,
    "+CSQ": general.cmd_csq,
    "+CREG": general.cmd_creg,
    "+CGREG": general.cmd_cgreg,
    "+CGATT": general.cmd_cgatt,
    "+COPS": general.cmd_cops,
    "+CFUN": general.cmd_cfun,
    "+CLIP": general.cmd_clip,
    "+CUSD": general.cmd_cusd,
    "+CSMS": sms.cmd_csms,
    "+CMGF": sms.cmd_cmgf,
    "+CSCS": sms.cmd_cscs,
    "+CSCA": sms.cmd_csca,
    "+CSMP": sms.cmd_csmp,
    "+CSDH": sms.cmd_csdh,
    "+CNMI": sms.cmd_cnmi,
    "+CPMS": sms.cmd_cpms,
    "+CMGS": sms.cmd_cmgs,
    "+CMGR": sms.cmd_cmgr,
    "+CMGL": sms.cmd_cmgl,
    "+CMGD": sms.cmd_cmgd,
    "+CNMA": sms.cmd_cnma,
}
# Commands whose errors are +CMS ERROR (TS 27.005); everything else answers +CME ERROR.
_SMS_COMMANDS: Final = frozenset(
    {"+CSMS", "+CMGF", "+CSCA", "+CSMP", "+CSDH", "+CNMI", "+CPMS", "+CMGS", "+CMGR", "+CMGL", "+CMGD", "+CNMA"}
)


class VirtualModem:
    """A `ModemCore` served over Trio streams or a pty's master descriptor. The modem (its SIM, storage and
    registration) outlives a connection, as a real modem outlives the host closing its serial port; it is powered
    while `serve` or `serve_fd` runs."""

    def __init__(
        self,
        network: VirtualNetwork,
        msisdn: str,
        config: VirtualNetworkConfig,
        *,
        pin: str | None = None,
        persona: ModemPersona = GENERIC_PERSONA,
    ) -> None:
        self._wakeup = trio.Event()
        # The pty's master while `serve_fd` runs: what the core makes of the host's lines and the network's
        # messages is sent on it at once, by whoever ran the core, and output made meanwhile needs no wake-up.
        self._fd: int | None = None
        self._running_core = False
        # The deadline the timer task sleeps towards: inf while it waits for output alone, -inf while it runs (it
        # looks at the deadline again before it sleeps).
        self._sleeping_until = -math.inf
        self.core = ModemCore(
            msisdn=msisdn,
            network=network,
            config=config,
            now=trio.current_time(),
            pin=pin,
            persona=persona,
            on_output=self._wake,
            handset=self,
        )

    @property
    def msisdn(self) -> str:
        return self.core.msisdn

    def _wake(self) -> None:
        if not self._running_core:
            self._wakeup.set()

    def receive_mt(self, now: float, message: Mt) -> MtResult:
        """The network's MT message, for the core (see `ModemCore.receive_mt`)."""
        fd = self._fd
        if fd is None:
            return self.core.receive_mt(now, message)  # the writer task, woken by the output, sends it
        self._running_core = True
        try:
            result = self.core.receive_mt(now, message)
        finally:
            self._running_core = False
        self._send_after_core(fd)
        return result

    async def serve(self, stream: trio.abc.Stream) -> None:
        """Answer the host on `stream` until it closes: one reader task, one writer task that also runs the
        modem's timers."""
        self.core.data_to_send()  # what nobody was connected to read is gone, as on a real serial line
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write_loop, stream)
            while True:
                data = await stream.receive_some(4096)
                if not data:
                    break
                self.core.receive_data(data, trio.current_time())
                # Also when nothing is to be sent: the line may have started a timer (a held +CMGS result).
                self._wakeup.set()
            nursery.cancel_scope.cancel()

    async def _write_loop(self, stream: trio.abc.Stream) -> None:
        while True:
            self._wakeup = trio.Event()
            self.core.handle_timers(trio.current_time())
            data = self.core.data_to_send()
            if data:
                wire_log.debug("virtual modem msisdn=%s modem>host %r", self.msisdn, data)
                await stream.send_all(data)
                continue
            await self._sleep_until_woken()

    async def serve_fd(self, fd: int) -> None:
        """Answer the host on the non-blocking descriptor `fd` (a pty's master) until cancelled or the host's end
        closes. The reader writes each answer itself, right after the line that asked for it, and the network's
        task what the modem makes of an MT message (`receive_mt`): a rack of modems on one CPU spent most of its
        time on task switches otherwise. A second task runs the timers, writes what they produce, and what the
        pty could not take at once after waiting for room."""
        self.core.data_to_send()  # what nobody was connected to read is gone, as on a real serial line
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._timer_loop, fd)
                self._fd = fd
                while True:
                    await trio.lowlevel.wait_readable(fd)
                    try:
                        data = os.read(fd, 4096)
                    except BlockingIOError:
                        continue
                    if not data:
                        break
                    self._running_core = True
                    try:
                        self.core.receive_data(data, trio.current_time())
                    finally:
                        self._running_core = False
                    self._send_after_core(fd)
                nursery.cancel_scope.cancel()
        finally:
            self._fd = None

    def _send_after_core(self, fd: int) -> None:
        """After the core ran outside the timer task: send what it made, and wake the timer task when the pty
        could not take it all or the core's next deadline comes before the one the task sleeps towards."""
        if not self._send_now(fd):
            self._wakeup.set()  # the timer task waits until the pty takes the rest
            return
        deadline = self.core.next_deadline()
        if deadline is not None and deadline < self._sleeping_until:
            self._wakeup.set()

    def _send_now(self, fd: int) -> bool:
        """Write what the modem has for the host, as much as the pty takes without waiting; False when some is
        left, back in front of the modem's output."""
        data = self.core.data_to_send()
        if not data:
            return True
        wire_log.debug("virtual modem msisdn=%s modem>host %r", self.msisdn, data)
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return True
        self.core.put_back(data[sent:])
        return False

    async def _timer_loop(self, fd: int) -> None:
        while True:
            self.core.handle_timers(trio.current_time())
            if not self._send_now(fd):
                await trio.lowlevel.wait_writable(fd)
                continue
            # After the send: what the timers and the send made is done, so only later output wakes us.
            self._wakeup = trio.Event()
            await self._sleep_until_woken()

    async def _sleep_until_woken(self) -> None:
        """Until output waits (`_wake`) or the modem's next deadline."""
        deadline = self.core.next_deadline()
        try:
            if deadline is None:
                # The usual case between SMS: no cancel scope to open and close for a timer that is not there.
                self._sleeping_until = math.inf
                await self._wakeup.wait()
            else:
                self._sleeping_until = deadline
                with trio.move_on_at(deadline):
                    await self._wakeup.wait()
        finally:
            self._sleeping_until = -math.inf
