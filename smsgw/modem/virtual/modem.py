"""The modem side of AT: `ModemCore`, a sans-IO interpreter (bytes from the host in, bytes to the host out, with
`now` and a next deadline), and `VirtualModem`, its Trio shell over any `trio.abc.Stream`.

The core answers as a GSM modem does (3GPP TS 27.007 and 27.005, ITU-T V.250): echo, verbose or numeric result
codes, `+CME ERROR`/`+CMS ERROR` per `+CMEE`, SIM PIN/PUK, registration, PDU and text mode, SIM and ME message
storage with a capacity, `+CNMI` routing of received messages and status reports, and the `> ` prompt of
`+CMGS`. SMS go to and come from a `VirtualNetwork`, encoded with the smsgw.pdu codec.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import trio

from smsgw.config import VirtualNetworkConfig
from smsgw.modem.at import CME_ERRORS, CMS_ERRORS
from smsgw.modem.virtual.atparse import Command, LineSyntaxError, Op, parse_line, split_args
from smsgw.modem.virtual.network import Mt, MtResult, SubmitRejected, VirtualNetwork
from smsgw.modem.virtual.persona import GENERIC_PERSONA, ModemPersona
from smsgw.pdu.errors import PduError
from smsgw.pdu.gsm7 import decode_gsm7, encode_gsm7
from smsgw.pdu.text import Encoding
from smsgw.pdu.tpdu import (
    Address,
    Dcs,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    TypeOfNumber,
    decode_relative_validity,
    dialled_type_of_address,
    encode_with_smsc,
    split_smsc,
)

log = logging.getLogger(__name__)
wire_log = logging.getLogger("smsgw.wire")

CTRL_Z: Final = 0x1A
ESC: Final = 0x1B
_MAX_LINE: Final = 1024
_MAX_OUTPUT_BUFFER: Final = 64 * 1024
# An SMSC address (12 octets) and the longest TPDU (164 octets), in hex.
_MAX_PROMPT_INPUT: Final = 2 * (12 + 164)
_DEFAULT_PIN_TRIES: Final = 3
_DEFAULT_PUK_TRIES: Final = 10
_OPERATOR_LONG: Final = "smsgw virtual"
_OPERATOR_SHORT: Final = "smsgw"
_OPERATOR_NUMERIC: Final = "00101"  # MCC 001 MNC 01: the ITU test network
_ACCESS_TECHNOLOGY: Final = 0  # GSM
_LAC: Final = "00A1"
_CELL_ID: Final = "1B2C"

# TS 27.005 3.1 <stat> in PDU mode and its text mode name.
STAT_NAMES: Final = ("REC UNREAD", "REC READ", "STO UNSENT", "STO SENT", "ALL")
_STAT_ALL: Final = 4

# TS 27.007 9.2 / 27.005 3.2.5 codes the modem uses.
CME_OPERATION_NOT_ALLOWED: Final = 3
CME_OPERATION_NOT_SUPPORTED: Final = 4
CME_SIM_PIN_REQUIRED: Final = 11
CME_SIM_PUK_REQUIRED: Final = 12
CME_SIM_BUSY: Final = 14
CME_INCORRECT_PASSWORD: Final = 16
CME_NO_NETWORK_SERVICE: Final = 30
CME_INCORRECT_PARAMETERS: Final = 50
CMS_OPERATION_NOT_ALLOWED: Final = 302
CMS_OPERATION_NOT_SUPPORTED: Final = 303
CMS_INVALID_PDU_PARAMETER: Final = 304
CMS_INVALID_TEXT_PARAMETER: Final = 305
CMS_SIM_PIN_REQUIRED: Final = 311
CMS_SIM_BUSY: Final = 314
CMS_SIM_PUK_REQUIRED: Final = 316
CMS_INVALID_MEMORY_INDEX: Final = 321
CMS_NO_NETWORK_SERVICE: Final = 331
CMS_NO_CNMA_EXPECTED: Final = 340
# How long the modem waits for +CNMA under +CSMS=1 before giving up on the host: the network's TR2N
# relay timer (TS 24.011 10, 12 to 20 s) runs out at about this time.
CNMA_TIMEOUT_S: Final = 15.0


class CmeError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"+CME ERROR: {code}")
        self.code = code


class CmsError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"+CMS ERROR: {code}")
        self.code = code


class _BadParameter(Exception):
    """An argument the command does not accept; answered per command family (+CME 50 or +CMS 304/305)."""


class SimState(enum.Enum):
    BUSY = "SIM BUSY"  # still initialising after power-on
    PIN = "SIM PIN"
    PUK = "SIM PUK"
    READY = "READY"


class Registration(enum.IntEnum):
    """TS 27.007 7.2 `+CREG` <stat>."""

    NOT_REGISTERED = 0
    HOME = 1
    SEARCHING = 2


@dataclass(frozen=True, slots=True)
class ModemIdentity:
    manufacturer: str
    model: str
    revision: str
    imei: str
    imsi: str
    iccid: str

    @classmethod
    def for_msisdn(cls, msisdn: str, persona: ModemPersona = GENERIC_PERSONA) -> ModemIdentity:
        """Stable identifiers derived from the MSISDN, so one number is always the same SIM in the same modem."""
        digits = "".join(c for c in msisdn if c.isdigit()).rjust(10, "0")[-10:]
        return cls(
            manufacturer=persona.manufacturer,
            model=persona.model,
            revision=persona.revision,
            imei=_with_luhn("35" + digits[-12:].rjust(12, "0")),
            imsi=_OPERATOR_NUMERIC + digits,
            iccid=_with_luhn("8900101" + digits.rjust(11, "0")),
        )


def _with_luhn(digits: str) -> str:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            value -= 9 if value > 9 else 0
        total += value
    return digits + str((10 - total % 10) % 10)


@dataclass(frozen=True, slots=True)
class StoredSms:
    """A message in SIM/ME storage: its <stat> and the PDU as `+CMGR` shows it (SMSC address first)."""

    stat: int
    pdu: bytes
    tpdu_length: int
    message: Mt


@dataclass(slots=True)
class _Storage:
    capacity: int
    slots: dict[int, StoredSms] = dataclasses.field(default_factory=dict)

    def free_index(self) -> int | None:
        return next((index for index in range(1, self.capacity + 1) if index not in self.slots), None)


@dataclass(frozen=True, slots=True)
class _Settings:
    """What ATZ / AT&F restore (V.250 6.1.1); storage, SIM and registration are not settings."""

    echo: bool = True
    verbose: bool = True
    quiet: bool = False
    cmee: int = 0
    cmgf: int = 0
    cscs: str = "IRA"
    csdh: int = 0
    # +CSMP <fo>,<vp>,<pid>,<dcs>: SMS-SUBMIT, relative TP-VP 167 (24 h), as TS 27.005 3.3.2 suggests.
    csmp: tuple[int, int, int, int] = (17, 167, 0, 0)
    cnmi: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    cpms: tuple[str, str, str] = ("SM", "SM", "SM")
    csms: int = 0
    creg: int = 0
    cgreg: int = 0
    clip: int = 0
    cops_format: int = 0
    s3: int = 13
    s4: int = 10
    s5: int = 8


_CHARSETS: Final = ("GSM", "IRA", "UCS2")


class ModemCore:
    """One virtual modem with its SIM (sans-IO). Feed it the host's bytes with `receive_data`, send what
    `data_to_send` returns, and call `handle_timers` at `next_deadline()`. The network calls `receive_mt`."""

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
    ) -> None:
        self.msisdn = msisdn
        self.persona = persona
        self.identity = ModemIdentity.for_msisdn(msisdn, persona)
        self._network = network
        self._config = config
        self._pin = pin
        self._puk = puk
        self._on_output = on_output
        self._storages = {
            name: _Storage(config.sim_capacity if name.startswith("SM") else config.me_capacity)
            for name in persona.storages
        }
        self._out = bytearray()
        self._in = bytearray()
        self._prompt: tuple[Callable[[float, bytes], list[str]], bytes] | None = None
        self._busy_until: float | None = None
        self._pending_result = b""
        # Unsolicited result codes waiting for the running command to end: (lines, governed by +CNMI mode).
        self._urc_queue: list[tuple[list[str], bool]] = []
        # No unsolicited result code before this time: one per `unsolicited_gap_s`, so a host that reads until the
        # line goes quiet sees each alone (python-gsmmodem handles only the first line of what arrives together).
        self._quiet_until = now
        self._now = now
        self._executing = False
        self._tp_mr = 0
        self._memory_exceeded = False
        # Messages routed to the host with +CMT/+CDS under +CSMS=1, waiting for +CNMA: (deadline, message, pdu).
        self._unacknowledged: list[tuple[float, Mt, bytes]] = []
        self._power_on(now)

    # --- the sans-IO interface ----------------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray, now: float) -> None:
        if data:
            wire_log.debug("virtual modem msisdn=%s host>modem %r", self.msisdn, data)
        self._in += data
        self._update(now)
        self._process_input(now)
        self._flush_urcs()

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def next_deadline(self) -> float | None:
        cnma = self._unacknowledged[0][0] if self._unacknowledged else None
        urc = self._quiet_until if self._next_urc() is not None else None
        candidates = [self._busy_until, self._sim_ready_at, self._registered_at, self._periodic_at, cnma, urc]
        return min((t for t in candidates if t is not None), default=None)

    def handle_timers(self, now: float) -> None:
        self._update(now)
        if self._busy_until is not None and now >= self._busy_until:
            self._busy_until = None
            self._emit_raw(self._pending_result)
            self._pending_result = b""
            self._after_command()
            self._process_input(now)
        self._flush_urcs()

    def receive_mt(self, now: float, message: Mt) -> MtResult:
        """The network delivers an SMS-DELIVER or SMS-STATUS-REPORT: store it or pass it on per +CNMI."""
        self._update(now)
        if self._registration is not Registration.HOME:
            return MtResult.ABSENT
        _, mt, _, ds, _ = self._settings.cnmi
        pdu = encode_with_smsc(message.to_bytes(), "+" + self._config.smsc)
        tpdu_length = _tpdu_length(pdu)
        if isinstance(message, SmsStatusReport):
            if ds == 1:
                self._direct(now, message, pdu, self._cds_lines(message, pdu, tpdu_length))
                return MtResult.ACCEPTED
            # ds=0 routes nothing to the host, but the modem keeps the report as it keeps an SMS-DELIVER: listed by
            # +CMGL and read by +CMGR (hosts that never set +CNMI, such as gammu, find their reports there).
            return self._store_mt(message, pdu, tpdu_length, "+CDSI" if ds == 2 else None)
        message_class = message.message_class
        if (mt == 2 and message_class != 2) or (mt == 3 and message_class == 3):
            self._direct(now, message, pdu, self._cmt_lines(message, pdu, tpdu_length))
            return MtResult.ACCEPTED
        return self._store_mt(message, pdu, tpdu_length, "+CMTI" if mt != 0 else None)

    @property
    def registration(self) -> Registration:
        return self._registration

    @property
    def sim_state(self) -> SimState:
        return self._sim

    def stored(self, memory: str) -> dict[int, StoredSms]:
        return dict(self._storages[memory].slots)

    # --- power, SIM and registration ----------------------------------------------------------------------------

    def _default_settings(self) -> _Settings:
        first = self.persona.storages[0]
        return _Settings(cpms=(first, first, first))

    def _power_on(self, now: float) -> None:
        self._settings = self._default_settings()
        self._periodic_at: float | None = None
        self._set_periodic(now, on=True)
        self._cfun = 1
        self._sim = SimState.BUSY
        self._sim_ready_at: float | None = now + self._config.sim_ready_delay_s
        self._pin_tries = _DEFAULT_PIN_TRIES
        self._puk_tries = _DEFAULT_PUK_TRIES
        self._registration = Registration.NOT_REGISTERED
        self._registered_at: float | None = None
        self._update(now)

    def _set_periodic(self, now: float, *, on: bool) -> None:
        interval = self.persona.periodic_interval_s
        self._periodic_at = now + interval if on and interval > 0 and self.persona.periodic_lines else None

    def _update(self, now: float) -> None:
        self._now = now
        if self._sim is SimState.BUSY and self._sim_ready_at is not None and now >= self._sim_ready_at:
            self._sim_ready_at = None
            self._sim = SimState.PIN if self._pin is not None else SimState.READY
            if self.persona.ready_lines and self._sim is SimState.READY:
                self._urc(list(self.persona.ready_lines))
            self._start_registration(now)
        if self._registered_at is not None and now >= self._registered_at:
            self._registered_at = None
            self._set_registration(now, Registration.HOME)
        if self._unacknowledged and now >= self._unacknowledged[0][0]:
            self._cnma_timed_out()
        if self._periodic_at is not None and now >= self._periodic_at:
            self._periodic_at = now + self.persona.periodic_interval_s
            rssi = self._config.signal_rssi if self._cfun == 1 else 99
            lines = [line.replace("{rssi}", str(rssi)) for line in self.persona.periodic_lines]
            if self.persona.lines_mid_command:
                self._emit_lines(lines)
            else:
                self._urc(lines)

    def _start_registration(self, now: float) -> None:
        if self._sim is SimState.READY and self._cfun == 1 and self._registration is Registration.NOT_REGISTERED:
            self._set_registration(now, Registration.SEARCHING)
            self._registered_at = now + self._config.registration_delay_s
            self._update(now)

    def _set_registration(self, now: float, registration: Registration) -> None:
        if registration is self._registration:
            return
        self._registration = registration
        if registration is Registration.HOME:
            self._network.attach(now, self.msisdn, self)
        elif self._network.is_attached(self.msisdn):
            self._network.detach(now, self.msisdn)
        if self._settings.creg:
            self._urc([self._creg_line("+CREG", self._settings.creg, unsolicited=True)])
        if self._settings.cgreg:
            self._urc([self._creg_line("+CGREG", self._settings.cgreg, unsolicited=True)])

    def _detach(self, now: float) -> None:
        self._registered_at = None
        self._set_registration(now, Registration.NOT_REGISTERED)

    def _require_sim(self, family: str) -> None:
        if self._sim is SimState.READY:
            return
        cme = {SimState.BUSY: CME_SIM_BUSY, SimState.PIN: CME_SIM_PIN_REQUIRED, SimState.PUK: CME_SIM_PUK_REQUIRED}
        cms = {SimState.BUSY: CMS_SIM_BUSY, SimState.PIN: CMS_SIM_PIN_REQUIRED, SimState.PUK: CMS_SIM_PUK_REQUIRED}
        raise CmsError(cms[self._sim]) if family == "cms" else CmeError(cme[self._sim])

    # --- input ----------------------------------------------------------------------------------------------------

    def _process_input(self, now: float) -> None:
        while self._in and self._busy_until is None:
            if self._prompt is not None:
                if not self._prompt_input(now):
                    return
                continue
            terminator = self._in.find(self._settings.s3)
            if terminator < 0:
                if len(self._in) > _MAX_LINE:
                    self._echo(bytes(self._in))
                    self._in.clear()
                    self._final_error(None, "cme")
                return
            raw = bytes(self._in[:terminator])
            del self._in[: terminator + 1]
            self._echo(raw + bytes([self._settings.s3]))
            line = _edit(raw, self._settings.s4, self._settings.s5)
            if line:
                self._executing = True
                try:
                    self._execute_line(now, line)
                finally:
                    self._executing = False
                self._after_command()

    def _echo(self, data: bytes) -> None:
        if self._settings.echo:
            self._emit_raw(data)

    def _prompt_input(self, now: float) -> bool:
        """Collect what the host types after `> `; False when the terminating Ctrl-Z/ESC has not come yet."""
        assert self._prompt is not None
        handler, collected = self._prompt
        end = min((i for i in (self._in.find(CTRL_Z), self._in.find(ESC)) if i >= 0), default=-1)
        chunk = bytes(self._in if end < 0 else self._in[:end])
        self._echo(chunk)
        if end < 0:
            self._in.clear()
            self._prompt = (handler, (collected + chunk)[: _MAX_PROMPT_INPUT + 2])
            return False
        terminator = self._in[end]
        del self._in[: end + 1]
        self._prompt = None
        data = collected + chunk
        if terminator == ESC:
            log.info("virtual modem msisdn=%s message cancelled with ESC", self.msisdn)
            self._final_ok([])
            return True
        self._executing = True
        try:
            lines = handler(now, data)
        except CmsError as error:
            self._final_error(error.code, "cms")
            return True
        finally:
            self._executing = False
        delay = self._config.submit_delay_s
        if delay > 0:
            self._pending_result = self._format_ok(lines)
            self._busy_until = now + delay
        else:
            self._final_ok(lines)
        return True

    def _execute_line(self, now: float, line: str) -> None:
        try:
            commands = parse_line(line)
        except LineSyntaxError:
            if line[:2].upper() == "AT":
                self._final_error(None, "cme")
            return
        lines: list[str] = []
        for command in commands:
            handler = self._handler(command)
            family = "cms" if command.name in _SMS_COMMANDS else "cme"
            if handler is None:
                log.debug("virtual modem msisdn=%s unknown command=%s", self.msisdn, command.name)
                self._final_error(None, family)
                return
            try:
                result = handler(now, command)
            except CmeError as error:
                self._final_error(error.code, "cme")
                return
            except CmsError as error:
                self._final_error(error.code, "cms")
                return
            except _BadParameter:
                code = CMS_INVALID_TEXT_PARAMETER if self._settings.cmgf else CMS_INVALID_PDU_PARAMETER
                self._final_error(code if family == "cms" else CME_INCORRECT_PARAMETERS, family)
                return
            if isinstance(result, _Prompt):
                self._emit_lines(lines)
                self._emit_raw(b"\r\n> ")
                self._prompt = (result.handler, b"")
                return
            if isinstance(result, _FinalText):
                self._emit_lines(lines)
                self._final(result.text, result.numeric)
                return
            lines.extend(result)
        self._final_ok(lines)

    # --- output ---------------------------------------------------------------------------------------------------

    def _emit_raw(self, data: bytes) -> None:
        if data:
            self._out += data
            if len(self._out) > _MAX_OUTPUT_BUFFER:
                # Nobody has read for a long while (no host on the port): a serial line drops, it does not queue.
                del self._out[: len(self._out) - _MAX_OUTPUT_BUFFER]
            self._on_output()

    def _crlf(self) -> bytes:
        return bytes([self._settings.s3, self._settings.s4])

    def _format_lines(self, lines: list[str]) -> bytes:
        if not lines:
            return b""
        crlf = self._crlf()
        body = crlf.join(line.encode("latin-1", "replace") for line in lines)
        return (crlf + body + crlf) if self._settings.verbose else (body + crlf)

    def _format_final(self, text: str, numeric: int) -> bytes:
        if self._settings.quiet:
            return b""
        if self._settings.verbose:
            return self._crlf() + text.encode("latin-1", "replace") + self._crlf()
        return str(numeric).encode() + bytes([self._settings.s3])

    def _format_ok(self, lines: list[str]) -> bytes:
        return self._format_lines(lines) + self._format_final("OK", 0)

    def _emit_lines(self, lines: list[str]) -> None:
        self._emit_raw(self._format_lines(lines))

    def _final(self, text: str, numeric: int) -> None:
        self._emit_raw(self._format_final(text, numeric))
        self._after_command()

    def _final_ok(self, lines: list[str]) -> None:
        self._emit_raw(self._format_ok(lines))
        self._after_command()

    def _final_error(self, code: int | None, family: str) -> None:
        cmee = self._settings.cmee
        if code is None or (family == "cme" and cmee == 0):
            self._final("ERROR", 4)
            return
        table = CMS_ERRORS if family == "cms" else CME_ERRORS
        detail = table.get(code, "unknown error") if cmee == 2 else str(code)
        self._final(f"+{family.upper()} ERROR: {detail}", 4)

    def _after_command(self) -> None:
        """Unsolicited result codes held back while a command ran go out after its final result."""
        self._flush_urcs()

    def _urc(self, lines: list[str], *, sms: bool = False) -> None:
        """An unsolicited result code: now when no command is running and the line has been quiet for
        `unsolicited_gap_s`, else later (`next_deadline`). SMS indications wait while +CNMI mode is 0, until the
        host chooses another mode (TS 27.005 3.4.1)."""
        self._urc_queue.append((lines, sms))
        self._flush_urcs()

    def _next_urc(self) -> int | None:
        """Index of the unsolicited result code that may go out next, if the host is not in a command."""
        if self._executing or self._prompt is not None or self._busy_until is not None:
            return None
        buffering = self._settings.cnmi[0] == 0
        return next((i for i, (_, sms) in enumerate(self._urc_queue) if not (sms and buffering)), None)

    def _flush_urcs(self) -> None:
        gap = self._config.unsolicited_gap_s
        while self._now >= self._quiet_until and (index := self._next_urc()) is not None:
            lines, _ = self._urc_queue.pop(index)
            self._emit_lines(lines)
            self._quiet_until = self._now + gap
        if self._urc_queue:
            self._on_output()  # the shell's next deadline may now be earlier than the one it sleeps towards

    def _direct(self, now: float, message: Mt, pdu: bytes, lines: list[str]) -> None:
        if self._settings.csms == 1:
            self._unacknowledged.append((now + CNMA_TIMEOUT_S, message, pdu))
        self._urc(lines, sms=True)

    def _cnma_timed_out(self) -> None:
        """TS 27.005 3.4.1: without +CNMA in time the ME stops routing to the TE (<mt> and <ds> to 0). The network
        retries the refused message and the modem stores it, which is what storing it here amounts to."""
        log.warning("virtual modem msisdn=%s no +CNMA in time; routing to the host disabled", self.msisdn)
        mode, _, bm, _, bfr = self._settings.cnmi
        self._settings = dataclasses.replace(self._settings, cnmi=(mode, 0, bm, 0, bfr))
        unacknowledged, self._unacknowledged = self._unacknowledged, []
        for _, message, pdu in unacknowledged:
            if self._store_mt(message, pdu, _tpdu_length(pdu), None) is not MtResult.ACCEPTED:
                log.warning("virtual modem msisdn=%s unacknowledged message lost: memory full", self.msisdn)

    # --- received messages ----------------------------------------------------------------------------------------

    def _store_mt(self, message: Mt, pdu: bytes, tpdu_length: int, indication: str | None) -> MtResult:
        memory = self._settings.cpms[2]
        if isinstance(message, SmsDeliver) and message.message_class == 2:
            memory = "SM"  # class 2 is SIM-specific (TS 23.038 4)
        storage = self._storages[memory]
        index = storage.free_index()
        if index is None:
            self._memory_exceeded = True
            log.info("virtual modem msisdn=%s memory full memory=%s", self.msisdn, memory)
            return MtResult.MEMORY_FULL
        storage.slots[index] = StoredSms(0, pdu, tpdu_length, message)
        if indication is not None:
            self._urc([f'{indication}: "{memory}",{index}'], sms=True)
        return MtResult.ACCEPTED

    def _cmt_lines(self, message: SmsDeliver, pdu: bytes, tpdu_length: int) -> list[str]:
        if self._settings.cmgf == 0:
            return [f"+CMT: ,{tpdu_length}", pdu.hex().upper()]
        header = f'+CMT: "{message.originator}",,"{_text_time(message.scts)}"'
        if self._settings.csdh:
            header += self._csdh_fields(message)
        return [header, self._text_body(message.dcs, message.user_data)]

    def _cds_lines(self, report: SmsStatusReport, pdu: bytes, tpdu_length: int) -> list[str]:
        if self._settings.cmgf == 0:
            return [f"+CDS: {tpdu_length}", pdu.hex().upper()]
        return [f"+CDS: {_status_report_fields(report)}"]

    def _csdh_fields(self, message: SmsDeliver) -> str:
        tpdu = message.to_bytes()
        return (
            f",{message.originator.type_of_address},{tpdu[0]},{message.tp_pid},{message.dcs.value},"
            f'"+{self._config.smsc}",145,{len(message.user_data)}'
        )

    def _text_body(self, dcs: Dcs, user_data: bytes) -> str:
        """User data as text mode shows it: in the +CSCS character set, or hex for 8-bit and UCS-2 data."""
        if dcs.encoding is Encoding.GSM7:
            return self._to_charset(decode_gsm7(user_data))
        return user_data.hex().upper()

    def _to_charset(self, text: str) -> str:
        charset = self._settings.cscs
        if charset == "UCS2":
            return text.encode("utf-16-be").hex().upper()
        if charset == "GSM":
            return encode_gsm7(text.encode("ascii", "replace").decode()).decode("latin-1")
        return text.encode("ascii", "replace").decode("ascii")

    def _from_charset(self, data: bytes) -> str:
        charset = self._settings.cscs
        if charset == "UCS2":
            try:
                return bytes.fromhex(data.decode("ascii")).decode("utf-16-be")
            except (ValueError, UnicodeDecodeError):
                raise CmsError(CMS_INVALID_TEXT_PARAMETER) from None
        if charset == "GSM":
            try:
                return decode_gsm7(data)
            except PduError:
                raise CmsError(CMS_INVALID_TEXT_PARAMETER) from None
        return data.decode("latin-1")

    # --- command table --------------------------------------------------------------------------------------------

    def _handler(self, command: Command) -> Callable[[float, Command], list[str] | _Prompt | _FinalText] | None:
        persona = self.persona
        if command.name == persona.periodic_switch:
            return self._cmd_periodic_switch
        answer = persona.answers.get(command.name + command.op.value)
        if answer is not None:
            return lambda now, command: list(answer)
        method = _COMMANDS.get(command.name)
        return None if method is None else getattr(self, method)

    def _args(self, command: Command, count_max: int) -> list[str | None]:
        try:
            args = split_args(command.args)
        except LineSyntaxError:
            raise _BadParameter from None
        if len(args) > count_max:
            raise _BadParameter
        return args + [None] * (count_max - len(args))

    # basic commands (V.250)

    def _cmd_echo(self, now: float, command: Command) -> list[str]:
        self._settings = dataclasses.replace(self._settings, echo=_flag(command))
        return []

    def _cmd_verbose(self, now: float, command: Command) -> list[str]:
        self._settings = dataclasses.replace(self._settings, verbose=_flag(command))
        return []

    def _cmd_quiet(self, now: float, command: Command) -> list[str]:
        self._settings = dataclasses.replace(self._settings, quiet=_flag(command))
        return []

    def _cmd_reset(self, now: float, command: Command) -> list[str]:
        self._settings = self._default_settings()
        return []

    def _cmd_accept(self, now: float, command: Command) -> list[str]:
        """Settings a virtual line does not have (&C, &D, &K flow control, &W profile store, X): accepted."""
        return []

    def _cmd_info(self, now: float, command: Command) -> list[str]:
        return [self.identity.manufacturer, self.identity.model, f"Revision: {self.identity.revision}"]

    def _cmd_s_register(self, now: float, command: Command) -> list[str]:
        register = int(command.name[1:])
        field_name = {3: "s3", 4: "s4", 5: "s5"}.get(register)
        if command.op is Op.READ:
            value = getattr(self._settings, field_name) if field_name else 0
            return [f"{value:03d}"]
        if not command.args.isdigit() or not 0 <= int(command.args) <= 255:
            raise _BadParameter
        if field_name:
            changes: dict[str, Any] = {field_name: int(command.args)}
            self._settings = dataclasses.replace(self._settings, **changes)
        elif register != 0:  # S0 (auto-answer) is accepted: no calls ever ring here
            raise _BadParameter
        return []

    def _cmd_hangup(self, now: float, command: Command) -> list[str]:
        return []

    def _cmd_no_carrier(self, now: float, command: Command) -> _FinalText:
        return _FinalText("NO CARRIER", 3)

    # identification (TS 27.007 5)

    def _cmd_manufacturer(self, now: float, command: Command) -> list[str]:
        return [] if command.op is Op.TEST else [self.identity.manufacturer]

    def _cmd_model(self, now: float, command: Command) -> list[str]:
        return [] if command.op is Op.TEST else [self.identity.model]

    def _cmd_revision(self, now: float, command: Command) -> list[str]:
        return [] if command.op is Op.TEST else [self.identity.revision]

    def _cmd_imei(self, now: float, command: Command) -> list[str]:
        return [] if command.op is Op.TEST else [self.identity.imei]

    def _cmd_imsi(self, now: float, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return []
        self._require_sim("cme")
        return [self.identity.imsi]

    def _cmd_iccid(self, now: float, command: Command) -> list[str]:
        if self._sim is SimState.BUSY:
            raise CmeError(CME_SIM_BUSY)
        return [f"{command.name}: {self.identity.iccid}"] if command.op is not Op.TEST else []

    def _cmd_cnum(self, now: float, command: Command) -> list[str]:
        self._require_sim("cme")
        return [f'+CNUM: "","+{self.msisdn}",145']

    def _cmd_clac(self, now: float, command: Command) -> list[str]:
        vendor = {self.persona.periodic_switch} | {name.rstrip("=?") for name in self.persona.answers}
        return sorted("AT" + name for name in {*_COMMANDS, *vendor} if name.startswith(("+", "^")))

    def _cmd_periodic_switch(self, now: float, command: Command) -> list[str]:
        """The vendor's switch for its periodic status lines (Huawei `^CURC`): 0 off, 1 on."""
        name = self.persona.periodic_switch
        if command.op is Op.TEST:
            return [f"{name}: (0-1)"]
        if command.op is Op.READ:
            return [f"{name}: {int(self._periodic_at is not None)}"]
        self._set_periodic(now, on=_flag(command))
        return []

    def _cmd_cmee(self, now: float, command: Command) -> list[str]:
        return self._setting_int(command, "cmee", "+CMEE", range(3))

    def _setting_int(self, command: Command, field_name: str, label: str, allowed: range) -> list[str]:
        if command.op is Op.READ:
            return [f"{label}: {getattr(self._settings, field_name)}"]
        if command.op is Op.TEST:
            return [f"{label}: ({allowed.start}-{allowed.stop - 1})"]
        value = _int(self._args(command, 1)[0], 0)
        if value not in allowed:
            raise _BadParameter
        changes: dict[str, Any] = {field_name: value}
        self._settings = dataclasses.replace(self._settings, **changes)
        return []

    # SIM (TS 27.007 8.3)

    def _cmd_cpin(self, now: float, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return []
        if self._sim is SimState.BUSY:
            raise CmeError(CME_SIM_BUSY)
        if command.op is Op.READ:
            return [f"+CPIN: {self._sim.value}"]
        code, new_pin = self._args(command, 2)
        if self._sim is SimState.PIN:
            if code == self._pin:
                self._sim = SimState.READY
                self._pin_tries = _DEFAULT_PIN_TRIES
                log.info("virtual modem msisdn=%s SIM PIN accepted", self.msisdn)
                self._start_registration(now)
                return []
            self._pin_tries -= 1
            log.info("virtual modem msisdn=%s wrong SIM PIN tries_left=%d", self.msisdn, self._pin_tries)
            if self._pin_tries == 0:
                self._sim = SimState.PUK
            raise CmeError(CME_INCORRECT_PASSWORD)
        if self._sim is SimState.PUK:
            if self._puk_tries == 0:
                raise CmeError(CME_OPERATION_NOT_ALLOWED)  # the SIM is blocked for good
            if code != self._puk or not new_pin:
                self._puk_tries -= 1
                raise CmeError(CME_INCORRECT_PASSWORD)
            self._pin, self._sim, self._pin_tries = new_pin, SimState.READY, _DEFAULT_PIN_TRIES
            self._start_registration(now)
            return []
        raise CmeError(CME_OPERATION_NOT_ALLOWED)

    # network (TS 27.007 7 and 8)

    def _cmd_csq(self, now: float, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return ["+CSQ: (0-31,99),(0-7,99)"]
        rssi = self._config.signal_rssi if self._cfun == 1 else 99
        return [f"+CSQ: {rssi},99"]

    def _creg_line(self, label: str, n: int, *, unsolicited: bool) -> str:
        """`+CREG`/`+CGREG` `[<n>,]<stat>[,<lac>,<ci>]`: the virtual network gives packet service with the circuit one."""
        prefix = f"{label}: " if unsolicited else f"{label}: {n},"
        line = f"{prefix}{int(self._registration)}"
        if n == 2 and self._registration is Registration.HOME:
            line += f',"{_LAC}","{_CELL_ID}"'
        return line

    def _cmd_creg(self, now: float, command: Command) -> list[str]:
        if command.op is Op.READ:
            return [self._creg_line("+CREG", self._settings.creg, unsolicited=False)]
        return self._setting_int(command, "creg", "+CREG", range(3))

    def _cmd_cgreg(self, now: float, command: Command) -> list[str]:
        if command.op is Op.READ:
            return [self._creg_line("+CGREG", self._settings.cgreg, unsolicited=False)]
        return self._setting_int(command, "cgreg", "+CGREG", range(3))

    def _cmd_cgatt(self, now: float, command: Command) -> list[str]:
        """TS 27.007 10.1.9: packet service follows registration on the virtual network; detaching is accepted."""
        if command.op is Op.TEST:
            return ["+CGATT: (0,1)"]
        if command.op is Op.READ:
            return [f"+CGATT: {int(self._registration is Registration.HOME)}"]
        if _int(self._args(command, 1)[0], -1) not in (0, 1):
            raise _BadParameter
        return []

    def _cmd_cops(self, now: float, command: Command) -> list[str]:
        if command.op is Op.TEST:
            operator = f'"{_OPERATOR_LONG}","{_OPERATOR_SHORT}","{_OPERATOR_NUMERIC}"'
            return [f"+COPS: (2,{operator},{_ACCESS_TECHNOLOGY}),,(0-4),(0-2)"]
        if command.op is Op.READ:
            if self._registration is not Registration.HOME:
                return ["+COPS: 0"]
            current = self._settings.cops_format
            name = (_OPERATOR_LONG, _OPERATOR_SHORT, _OPERATOR_NUMERIC)[current]
            return [f'+COPS: 0,{current},"{name}",{_ACCESS_TECHNOLOGY}']
        mode, fmt, oper, _ = self._args(command, 4)
        mode_value = _int(mode, 0)
        if mode_value not in range(5) or (fmt is not None and _int(fmt, 0) not in range(3)):
            raise _BadParameter
        if fmt is not None:
            self._settings = dataclasses.replace(self._settings, cops_format=_int(fmt, 0))
        if mode_value == 1 and oper not in (_OPERATOR_LONG, _OPERATOR_SHORT, _OPERATOR_NUMERIC):
            raise CmeError(CME_NO_NETWORK_SERVICE)
        if mode_value == 2:
            self._detach(now)
        elif mode_value in (0, 1, 4):
            self._start_registration(now)
        return []

    def _cmd_cfun(self, now: float, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return ["+CFUN: (0,1,4),(0-1)"]
        if command.op is Op.READ:
            return [f"+CFUN: {self._cfun}"]
        fun, reset = self._args(command, 2)
        level, reset_value = _int(fun, 1), _int(reset, 0)
        if level not in (0, 1, 4) or reset_value not in (0, 1):
            raise _BadParameter
        if reset_value == 1:
            log.info("virtual modem msisdn=%s reset by AT+CFUN", self.msisdn)
            self._detach(now)
            self._power_on(now)
            self._cfun = level
            return []
        self._cfun = level
        if level == 1:
            self._start_registration(now)
        else:
            self._detach(now)
        return []

    def _cmd_clip(self, now: float, command: Command) -> list[str]:
        if command.op is Op.READ:
            return [f"+CLIP: {self._settings.clip},1"]
        return self._setting_int(command, "clip", "+CLIP", range(2))

    def _cmd_cusd(self, now: float, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return ["+CUSD: (0-2)"]
        if command.op is Op.READ:
            return ["+CUSD: 0"]
        n, request, dcs = self._args(command, 3)
        if _int(n, 0) not in (0, 1, 2):
            raise _BadParameter
        if request is None:
            return []
        if self._registration is not Registration.HOME:
            raise CmeError(CME_NO_NETWORK_SERVICE)
        answer = self._network.ussd(self.msisdn, request)
        if answer is None:
            self._urc(["+CUSD: 4"])
        else:
            self._urc([f'+CUSD: 0,"{answer}",{_int(dcs, 15)}'])
        return []

    # SMS (TS 27.005 3)

    def _cmd_csms(self, now: float, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return ["+CSMS: (0,1)"]
        if command.op is Op.READ:
            return [f"+CSMS: {self._settings.csms},1,1,1"]
        service = _int(self._args(command, 1)[0], 0)
        if service not in (0, 1):
            raise CmsError(CMS_OPERATION_NOT_SUPPORTED)
        self._settings = dataclasses.replace(self._settings, csms=service)
        return ["+CSMS: 1,1,1"]

    def _cmd_cmgf(self, now: float, command: Command) -> list[str]:
        return self._setting_int(command, "cmgf", "+CMGF", range(2))

    def _cmd_cscs(self, now: float, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return ["+CSCS: (" + ",".join(f'"{c}"' for c in _CHARSETS) + ")"]
        if command.op is Op.READ:
            return [f'+CSCS: "{self._settings.cscs}"']
        charset = (self._args(command, 1)[0] or "").upper()
        if charset not in _CHARSETS:
            raise CmeError(CME_OPERATION_NOT_SUPPORTED)
        self._settings = dataclasses.replace(self._settings, cscs=charset)
        return []

    def _cmd_csca(self, now: float, command: Command) -> list[str]:
        self._require_sim("cms")
        if command.op is Op.TEST:
            return []
        if command.op is Op.READ:
            return [f'+CSCA: "+{self._config.smsc}",145']
        number, _ = self._args(command, 2)
        if not number or not number.removeprefix("+").isdigit():
            raise _BadParameter
        # The network has one SMSC; a modem takes any address but the virtual SIM keeps routing to it.
        return []

    def _cmd_csmp(self, now: float, command: Command) -> list[str]:
        if command.op is Op.READ:
            return ["+CSMP: " + ",".join(str(v) for v in self._settings.csmp)]
        if command.op is Op.TEST:
            return []
        args = self._args(command, 4)
        values = tuple(_int(arg, current) for arg, current in zip(args, self._settings.csmp, strict=True))
        if any(not 0 <= value <= 255 for value in values):
            raise _BadParameter
        self._settings = dataclasses.replace(self._settings, csmp=values)  # type: ignore[arg-type]
        return []

    def _cmd_csdh(self, now: float, command: Command) -> list[str]:
        return self._setting_int(command, "csdh", "+CSDH", range(2))

    def _cmd_cnmi(self, now: float, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return [f"+CNMI: {self.persona.cnmi_test}"]
        if command.op is Op.READ:
            return ["+CNMI: " + ",".join(str(v) for v in self._settings.cnmi)]
        args = self._args(command, 5)
        values = tuple(_int(arg, 0) for arg in args)
        mode, _, _, _, bfr = values
        if any(value not in allowed for value, allowed in zip(values, self.persona.cnmi_allowed, strict=True)):
            raise CmsError(CMS_OPERATION_NOT_SUPPORTED)
        self._settings = dataclasses.replace(self._settings, cnmi=values)  # type: ignore[arg-type]
        if mode != 0 and bfr == 1:
            self._urc_queue = [(lines, sms) for lines, sms in self._urc_queue if not sms]
        return []

    def _cmd_cpms(self, now: float, command: Command) -> list[str]:
        names = tuple(self._storages)
        if command.op is Op.TEST:
            choice = "(" + ",".join(f'"{n}"' for n in names) + ")"
            return [f"+CPMS: {choice},{choice},{choice}"]
        self._require_sim("cms")
        if command.op is Op.READ:
            parts = [f'"{m}",{len(self._storages[m].slots)},{self._storages[m].capacity}' for m in self._settings.cpms]
            return ["+CPMS: " + ",".join(parts)]
        args = self._args(command, 3)
        chosen = tuple((arg or current).upper() for arg, current in zip(args, self._settings.cpms, strict=True))
        if args[0] is None or any(m not in self._storages for m in chosen):
            raise CmsError(CMS_OPERATION_NOT_SUPPORTED)
        self._settings = dataclasses.replace(self._settings, cpms=chosen)  # type: ignore[arg-type]
        counts = [f"{len(self._storages[m].slots)},{self._storages[m].capacity}" for m in chosen]
        return ["+CPMS: " + ",".join(counts)]

    def _cmd_cmgs(self, now: float, command: Command) -> list[str] | _Prompt:
        if command.op is Op.TEST:
            return []
        if command.op is not Op.SET:
            raise _BadParameter
        self._require_sim("cms")
        if self._settings.cmgf == 0:
            length = _int(self._args(command, 1)[0], -1)
            if not 7 <= length <= 164:
                raise _BadParameter
            return _Prompt(lambda when, data: self._send_pdu(when, data, length))
        destination, toda = self._args(command, 2)
        if not destination:
            raise _BadParameter
        address = _address(destination, _int(toda, dialled_type_of_address(destination)))
        return _Prompt(lambda when, data: self._send_text(when, data, address))

    def _send_pdu(self, now: float, data: bytes, length: int) -> list[str]:
        try:
            pdu = bytes.fromhex(data.decode("ascii").replace("\r", "").replace("\n", "").replace(" ", ""))
            _, tpdu = split_smsc(pdu)
            if len(tpdu) != length:
                raise CmsError(CMS_INVALID_PDU_PARAMETER)
            submit = SmsSubmit.from_bytes(tpdu)
        except (ValueError, UnicodeDecodeError, PduError) as error:
            log.info("virtual modem msisdn=%s bad PDU in AT+CMGS error=%s", self.msisdn, error)
            raise CmsError(CMS_INVALID_PDU_PARAMETER) from None
        return self._submit(now, submit)

    def _send_text(self, now: float, data: bytes, destination: Address) -> list[str]:
        fo, vp, pid, dcs_value = self._settings.csmp
        try:
            dcs = Dcs(dcs_value)
            if dcs.encoding is Encoding.GSM7:
                user_data = encode_gsm7(self._from_charset(data))
            else:
                user_data = bytes.fromhex(data.decode("ascii"))
            validity = decode_relative_validity(vp) if (fo >> 3) & 0b11 == 0b10 else None
            submit = SmsSubmit(
                destination=destination,
                user_data=user_data,
                dcs=dcs,
                tp_pid=pid,
                validity=validity,
                status_report_request=bool(fo & 0x20),
            )
            submit.to_bytes()  # the limits of one TPDU (140 octets of user data) apply in text mode too
        except (ValueError, PduError) as error:
            log.info("virtual modem msisdn=%s bad text in AT+CMGS error=%s", self.msisdn, error)
            raise CmsError(CMS_INVALID_TEXT_PARAMETER) from None
        return self._submit(now, submit)

    def _submit(self, now: float, submit: SmsSubmit) -> list[str]:
        self._update(now)
        if self._registration is not Registration.HOME:
            raise CmsError(CMS_NO_NETWORK_SERVICE)
        # The MS, not the host, numbers its SMS-SUBMITs (TS 23.040 9.2.3.6).
        tp_mr = self._tp_mr
        self._tp_mr = (self._tp_mr + 1) % 256
        result = self._network.submit(now, self.msisdn, dataclasses.replace(submit, tp_mr=tp_mr))
        if isinstance(result, SubmitRejected):
            raise CmsError(result.rp_cause)
        return [f"+CMGS: {tp_mr}"]

    def _read_memory(self) -> _Storage:
        return self._storages[self._settings.cpms[0]]

    def _cmd_cmgr(self, now: float, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return []
        self._require_sim("cms")
        index = _int(self._args(command, 1)[0], -1)
        storage = self._read_memory()
        stored = storage.slots.get(index)
        if stored is None:
            raise CmsError(CMS_INVALID_MEMORY_INDEX)
        if stored.stat == 0:
            storage.slots[index] = dataclasses.replace(stored, stat=1)
        return self._listing("+CMGR: ", None, stored)

    def _listing(self, prefix: str, index: int | None, stored: StoredSms) -> list[str]:
        """The header line and body of one stored message, as +CMGR (index None) or +CMGL show it."""
        head = f"{prefix}{index}," if index is not None else prefix
        if self._settings.cmgf == 0:
            return [f"{head}{stored.stat},,{stored.tpdu_length}", stored.pdu.hex().upper()]
        stat = f'"{STAT_NAMES[stored.stat]}"'
        message = stored.message
        if isinstance(message, SmsStatusReport):
            return [f"{head}{stat},{_status_report_fields(message)}"]
        header = f'{head}{stat},"{message.originator}",,"{_text_time(message.scts)}"'
        if self._settings.csdh:
            header += self._csdh_fields(message)
        return [header, self._text_body(message.dcs, message.user_data)]

    def _cmd_cmgl(self, now: float, command: Command) -> list[str]:
        if command.op is Op.TEST:
            if self._settings.cmgf == 0:
                return ["+CMGL: (0-4)"]
            return ["+CMGL: (" + ",".join(f'"{name}"' for name in STAT_NAMES) + ")"]
        self._require_sim("cms")
        arg = self._args(command, 1)[0] if command.op is Op.SET else None
        if self._settings.cmgf == 0:
            wanted = _int(arg, 0)
        else:
            if arg is not None and arg.upper() not in STAT_NAMES:
                raise _BadParameter
            wanted = STAT_NAMES.index(arg.upper()) if arg is not None else 0
        if wanted not in range(5):
            raise _BadParameter
        storage = self._read_memory()
        lines: list[str] = []
        for index in sorted(storage.slots):
            stored = storage.slots[index]
            if wanted == _STAT_ALL or stored.stat == wanted:
                lines.extend(self._listing("+CMGL: ", index, stored))
                if stored.stat == 0:
                    storage.slots[index] = dataclasses.replace(stored, stat=1)
        return lines

    def _cmd_cmgd(self, now: float, command: Command) -> list[str]:
        storage = self._read_memory()
        if command.op is Op.TEST:
            return [f"+CMGD: ({','.join(str(i) for i in sorted(storage.slots))}),(0-4)"]
        self._require_sim("cms")
        index_arg, flag_arg = self._args(command, 2)
        flag = _int(flag_arg, 0)
        if flag not in range(5):
            raise _BadParameter
        if flag == 0:
            index = _int(index_arg, -1)
            if not 1 <= index <= storage.capacity:
                raise CmsError(CMS_INVALID_MEMORY_INDEX)
            storage.slots.pop(index, None)
        else:
            # delflag 1: read; 2: read and sent; 3: read, sent and unsent; 4: all (TS 27.005 3.5.4)
            doomed = {1: {1}, 2: {1, 3}, 3: {1, 2, 3}, 4: {0, 1, 2, 3}}[flag]
            for index in [i for i, stored in storage.slots.items() if stored.stat in doomed]:
                del storage.slots[index]
        if self._memory_exceeded and storage.free_index() is not None:
            self._memory_exceeded = False
            self._network.memory_available(now, self.msisdn)
        return []

    def _cmd_cnma(self, now: float, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return ["+CNMA: (0-2)"] if self._settings.cmgf == 0 else []
        reply = _int(self._args(command, 2)[0], 0) if command.op is Op.SET else 0
        if reply not in (0, 1, 2):
            raise _BadParameter
        if not self._unacknowledged:
            raise CmsError(CMS_NO_CNMA_EXPECTED)
        _, message, pdu = self._unacknowledged.pop(0)
        if reply == 2:
            # RP-ERROR: the host refused it; the network would send it again and the modem keep it, as here.
            self._store_mt(message, pdu, _tpdu_length(pdu), None)
        return []


@dataclass(frozen=True, slots=True)
class _Prompt:
    """The command continues after `> `: `handler(now, typed bytes)` runs at Ctrl-Z."""

    handler: Callable[[float, bytes], list[str]]


@dataclass(frozen=True, slots=True)
class _FinalText:
    """A final result code other than OK/ERROR (V.250 5.7.1), with its numeric form."""

    text: str
    numeric: int


_COMMANDS: Final = {
    "E": "_cmd_echo",
    "V": "_cmd_verbose",
    "Q": "_cmd_quiet",
    "Z": "_cmd_reset",
    "&F": "_cmd_reset",
    "&C": "_cmd_accept",
    "&D": "_cmd_accept",
    "&K": "_cmd_accept",
    "&W": "_cmd_accept",
    "X": "_cmd_accept",
    "I": "_cmd_info",
    "H": "_cmd_hangup",
    "A": "_cmd_no_carrier",
    "D": "_cmd_no_carrier",
    **{f"S{n}": "_cmd_s_register" for n in range(13)},
    "+CGMI": "_cmd_manufacturer",
    "+GMI": "_cmd_manufacturer",
    "+CGMM": "_cmd_model",
    "+GMM": "_cmd_model",
    "+CGMR": "_cmd_revision",
    "+GMR": "_cmd_revision",
    "+CGSN": "_cmd_imei",
    "+GSN": "_cmd_imei",
    "+CIMI": "_cmd_imsi",
    "+CCID": "_cmd_iccid",
    "+ICCID": "_cmd_iccid",
    "+CNUM": "_cmd_cnum",
    "+CLAC": "_cmd_clac",
    "+CMEE": "_cmd_cmee",
    "+CPIN": "_cmd_cpin",
    "+CSQ": "_cmd_csq",
    "+CREG": "_cmd_creg",
    "+CGREG": "_cmd_cgreg",
    "+CGATT": "_cmd_cgatt",
    "+COPS": "_cmd_cops",
    "+CFUN": "_cmd_cfun",
    "+CLIP": "_cmd_clip",
    "+CUSD": "_cmd_cusd",
    "+CSMS": "_cmd_csms",
    "+CMGF": "_cmd_cmgf",
    "+CSCS": "_cmd_cscs",
    "+CSCA": "_cmd_csca",
    "+CSMP": "_cmd_csmp",
    "+CSDH": "_cmd_csdh",
    "+CNMI": "_cmd_cnmi",
    "+CPMS": "_cmd_cpms",
    "+CMGS": "_cmd_cmgs",
    "+CMGR": "_cmd_cmgr",
    "+CMGL": "_cmd_cmgl",
    "+CMGD": "_cmd_cmgd",
    "+CNMA": "_cmd_cnma",
}
_SMS_COMMANDS: Final = frozenset(
    {"+CSMS", "+CMGF", "+CSCA", "+CSMP", "+CSDH", "+CNMI", "+CPMS", "+CMGS", "+CMGR", "+CMGL", "+CMGD", "+CNMA"}
)


def _tpdu_length(pdu: bytes) -> int:
    """TPDU octets of a PDU-mode PDU: the SMSC part (its length octet and what it counts) excluded."""
    return len(pdu) - pdu[0] - 1


def _edit(raw: bytes, line_feed: int, backspace: int) -> str:
    """The line as typed: backspaces (S5) applied, line feeds (S4) and stray Ctrl-Z/ESC/NUL dropped."""
    dropped = bytes((line_feed, CTRL_Z, ESC, 0))
    if backspace not in raw:
        # The usual line (a host program does not backspace): the dropping is all the editing, in C.
        return raw.translate(None, dropped).decode("latin-1").strip()
    chars: list[str] = []
    for octet in raw:
        if octet == backspace:
            if chars:
                chars.pop()
        elif octet not in dropped:
            chars.append(chr(octet))
    return "".join(chars).strip()


def _flag(command: Command) -> bool:
    if command.args not in ("", "0", "1"):
        raise _BadParameter
    return command.args == "1"


def _int(arg: str | None, default: int) -> int:
    if arg is None or arg == "":
        return default
    try:
        return int(arg)
    except ValueError:
        raise _BadParameter from None


def _address(number: str, type_of_address: int) -> Address:
    try:
        if (type_of_address >> 4) & 0b111 == TypeOfNumber.INTERNATIONAL or number.startswith("+"):
            return Address.international(number)
        return Address(number, (type_of_address >> 4) & 0b111)
    except PduError:
        raise _BadParameter from None


def _text_time(moment: datetime) -> str:
    """TS 27.005 3.3.4 `yy/MM/dd,hh:mm:ss±zz` (zz in quarter hours)."""
    offset = moment.utcoffset() or timedelta(0)
    quarters = int(offset.total_seconds() // 900)
    return moment.strftime("%y/%m/%d,%H:%M:%S") + f"{'+' if quarters >= 0 else '-'}{abs(quarters):02d}"


def _status_report_fields(report: SmsStatusReport) -> str:
    """`<fo>,<mr>,"<ra>",<tora>,"<scts>","<dt>",<st>` of a status report in text mode (TS 27.005 3.4.1)."""
    return (
        f'{report.to_bytes()[0]},{report.tp_mr},"{report.recipient}",{report.recipient.type_of_address},'
        f'"{_text_time(report.scts)}","{_text_time(report.discharge_time)}",{report.tp_st}'
    )


class VirtualModem:
    """A `ModemCore` served over Trio streams. The modem (its SIM, storage and registration) outlives a
    connection, as a real modem outlives the host closing its serial port; it is powered while `serve` runs."""

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
        self.core = ModemCore(
            msisdn=msisdn,
            network=network,
            config=config,
            now=trio.current_time(),
            pin=pin,
            persona=persona,
            on_output=self._wake,
        )

    @property
    def msisdn(self) -> str:
        return self.core.msisdn

    def _wake(self) -> None:
        self._wakeup.set()

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
            deadline = self.core.next_deadline()
            if deadline is None:
                # The usual case between SMS: no cancel scope to open and close for a timer that is not there.
                await self._wakeup.wait()
            else:
                with trio.move_on_at(deadline):
                    await self._wakeup.wait()
