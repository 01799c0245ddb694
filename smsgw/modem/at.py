"""AT command channel, sans-IO: bytes from the modem in, events out; commands in, bytes to write out.

One command is outstanding at a time (3GPP TS 27.007 section 5.1: a modem answers one command line with
intermediate lines and one final result code). Unsolicited result codes are recognised by a prefix table at any
moment, also while a command waits, so a `+CMTI` arriving during `AT+CMGS` is not mistaken for part of its
answer. A line that names another command (`+XXX:` / `^XXX:` while `AT+CMGR` waits) is unsolicited too, so vendor
lines nobody listed are passed on without breaking the command in progress.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

log = logging.getLogger(__name__)

CTRL_Z: Final = b"\x1a"
# Ends a `> ` prompt without sending (TS 27.005 3.5.1).
ESC: Final = b"\x1b"

# 3GPP TS 27.007 section 9.2 (+CME ERROR).
CME_ERRORS: Final[Mapping[int, str]] = {
    0: "phone failure",
    1: "no connection to phone",
    2: "phone-adaptor link reserved",
    3: "operation not allowed",
    4: "operation not supported",
    5: "PH-SIM PIN required",
    6: "PH-FSIM PIN required",
    7: "PH-FSIM PUK required",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    16: "incorrect password",
    17: "SIM PIN2 required",
    18: "SIM PUK2 required",
    20: "memory full",
    21: "invalid index",
    22: "not found",
    23: "memory failure",
    24: "text string too long",
    25: "invalid characters in text string",
    26: "dial string too long",
    27: "invalid characters in dial string",
    30: "no network service",
    31: "network timeout",
    32: "network not allowed - emergency calls only",
    40: "network personalisation PIN required",
    41: "network personalisation PUK required",
    42: "network subset personalisation PIN required",
    43: "network subset personalisation PUK required",
    44: "service provider personalisation PIN required",
    45: "service provider personalisation PUK required",
    46: "corporate personalisation PIN required",
    47: "corporate personalisation PUK required",
    50: "incorrect parameters",
    100: "unknown",
    103: "illegal MS",
    106: "illegal ME",
    107: "GPRS services not allowed",
    111: "PLMN not allowed",
    112: "location area not allowed",
    113: "roaming not allowed in this location area",
    132: "service option not supported",
    133: "requested service option not subscribed",
    134: "service option temporarily out of order",
    148: "unspecified GPRS error",
    149: "PDP authentication failure",
    150: "invalid mobile class",
}

# 3GPP TS 27.005 section 3.2.5 (+CMS ERROR): 0-127 are TS 24.011 RP causes, 128-255 TS 23.040 TP-FCS values.
CMS_ERRORS: Final[Mapping[int, str]] = {
    1: "unassigned (unallocated) number",
    8: "operator determined barring",
    10: "call barred",
    17: "network failure",
    21: "short message transfer rejected",
    22: "memory capacity exceeded",
    27: "destination out of service",
    28: "unidentified subscriber",
    29: "facility rejected",
    30: "unknown subscriber",
    38: "network out of order",
    41: "temporary failure",
    42: "congestion",
    47: "resources unavailable, unspecified",
    50: "requested facility not subscribed",
    69: "requested facility not implemented",
    81: "invalid short message transfer reference value",
    95: "invalid message, unspecified",
    96: "invalid mandatory information",
    97: "message type non-existent or not implemented",
    98: "message not compatible with short message protocol state",
    99: "information element non-existent or not implemented",
    111: "protocol error, unspecified",
    127: "interworking, unspecified",
    128: "telematic interworking not supported",
    129: "short message type 0 not supported",
    130: "cannot replace short message",
    143: "unspecified TP-PID error",
    144: "data coding scheme (alphabet) not supported",
    145: "message class not supported",
    159: "unspecified TP-DCS error",
    160: "command cannot be actioned",
    161: "command unsupported",
    175: "unspecified TP-Command error",
    176: "TPDU not supported",
    192: "SC busy",
    193: "no SC subscription",
    194: "SC system failure",
    195: "invalid SME address",
    196: "destination SME barred",
    197: "SM rejected - duplicate SM",
    198: "TP-VPF not supported",
    199: "TP-VP not supported",
    208: "SIM SMS storage full",
    209: "no SMS storage capability in SIM",
    210: "error in MS",
    211: "memory capacity exceeded",
    212: "SIM application toolkit busy",
    213: "SIM data download error",
    255: "unspecified error cause",
    300: "ME failure",
    301: "SMS service of ME reserved",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    312: "PH-SIM PIN required",
    313: "SIM failure",
    314: "SIM busy",
    315: "SIM wrong",
    316: "SIM PUK required",
    317: "SIM PIN2 required",
    318: "SIM PUK2 required",
    320: "memory failure",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
}

# Lines that end a command. "COMMAND NOT SUPPORT" and "TOO MANY PARAMETERS" are Huawei/ZTE spellings of ERROR.
_FINAL_OK: Final = frozenset({"OK"})
_FINAL_ERROR: Final = frozenset(
    {"ERROR", "NO CARRIER", "NO DIALTONE", "BUSY", "NO ANSWER", "COMMAND NOT SUPPORT", "TOO MANY PARAMETERS"}
)
_CME_PREFIX: Final = "+CME ERROR:"
_CMS_PREFIX: Final = "+CMS ERROR:"

# Unsolicited result codes: prefix -> number of lines that follow the header line (the PDU of +CMT/+CDS/+CBM).
# Prefixes ending in ':' carry parameters; the others are whole words. Quirks add vendor prefixes to this table.
UNSOLICITED_PREFIXES: Final[Mapping[str, int]] = {
    "+CMTI:": 0,
    "+CMT:": 1,
    "+CDSI:": 0,
    "+CDS:": 1,
    "+CBMI:": 0,
    "+CBM:": 1,
    "+CUSD:": 0,
    "+CREG:": 0,
    "+CGREG:": 0,
    "+CEREG:": 0,
    "+CPIN:": 0,
    "+CIEV:": 0,
    "+CTZV:": 0,
    "+CLIP:": 0,
    "+CRING:": 0,
    "RING": 0,
    "^RSSI:": 0,
    "^BOOT:": 0,
    "^MODE:": 0,
    "^SRVST:": 0,
    "^SIMST:": 0,
    "^HCSQ:": 0,
    "^DSFLOWRPT:": 0,
    "^SYSSTART": 0,
}

# The longest line kept, in bytes. A PDU-mode line is at most 2*(12+176) = 376 hex digits (SMSC address and the
# longest TPDU) and the longest answers (+COPS=? listing every operator in range, +CMGL headers) stay well under
# 1 KB; a longer "line" is noise on the wire or a modem gone mad, and buffering it without limit until a CR/LF
# would let one faulty device eat the gateway's memory. It is discarded and the channel resynchronises at the
# next CR/LF.
MAX_LINE_BYTES: Final = 4096
_LINE_END: Final = re.compile(rb"[\r\n]")
_CR: Final = 0x0D
_LF: Final = 0x0A
_COMMAND_NAME: Final = re.compile(r"^AT([+^$#*%!][A-Z0-9]+)", re.IGNORECASE)
_PREFIXED_LINE: Final = re.compile(r"^([+^$#*%!][A-Z0-9]+):")


@dataclass(frozen=True, slots=True)
class FinalResult:
    """The final result code of a command: OK, ERROR, `+CME ERROR: n` or `+CMS ERROR: n`."""

    line: str
    ok: bool
    cme_error: int | None = None
    cms_error: int | None = None

    @property
    def meaning(self) -> str:
        if self.cme_error is not None:
            return CME_ERRORS.get(self.cme_error, f"CME error {self.cme_error}")
        if self.cms_error is not None:
            return CMS_ERRORS.get(self.cms_error, f"CMS error {self.cms_error}")
        return self.line


@dataclass(frozen=True, slots=True)
class Response:
    """A command's complete answer: its intermediate lines and its final result code."""

    command: str
    lines: tuple[str, ...]
    result: FinalResult

    @property
    def ok(self) -> bool:
        return self.result.ok

    def values(self, prefix: str) -> tuple[str, ...]:
        """The parameter parts of the intermediate lines that start with `prefix` (e.g. "+CSQ:")."""
        return tuple(line[len(prefix) :].strip() for line in self.lines if line.startswith(prefix))


@dataclass(frozen=True, slots=True)
class Prompt:
    """The `> ` prompt of `AT+CMGS`/`AT+CMGW`: the modem waits for the PDU and Ctrl-Z."""


@dataclass(frozen=True, slots=True)
class Unsolicited:
    """An unsolicited result code. `name` is its prefix without the colon (`+CMTI`, `RING`, `^RSSI`); `params` is
    what follows the colon; `data` is the second line of two-line codes (the PDU of `+CMT`/`+CDS`)."""

    name: str
    line: str
    params: str = ""
    data: str | None = None


@dataclass(frozen=True, slots=True)
class CommandTimedOut:
    command: str
    lines: tuple[str, ...]


AtEvent = Response | Prompt | Unsolicited | CommandTimedOut


class AtChannelError(Exception):
    """The caller broke the one-command-at-a-time rule."""


@dataclass(slots=True)
class _Pending:
    command: str
    name: str
    deadline: float
    expects_prompt: bool
    echo: str | None  # the text whose echo is still expected (the command, then a PDU body)
    lines: list[str]


class AtChannel:
    def __init__(self, extra_unsolicited: Mapping[str, int] | Iterable[str] = ()) -> None:
        self._table = dict(UNSOLICITED_PREFIXES)
        self._prefixes: tuple[tuple[str, int], ...] = ()
        self.add_unsolicited(extra_unsolicited)
        self._buffer = bytearray()
        self._pending: _Pending | None = None
        self._header: Unsolicited | None = None  # a two-line code waiting for its data line
        self._skip_prompt_space = False
        self._discarding = False  # inside an over-long line: drop bytes up to the next CR/LF

    def add_unsolicited(self, prefixes: Mapping[str, int] | Iterable[str]) -> None:
        """More unsolicited codes (a model's vendor lines): prefix -> lines of data after it, or bare prefixes."""
        if isinstance(prefixes, Mapping):
            self._table.update(prefixes)
        else:
            self._table.update({prefix: 0 for prefix in prefixes})
        # Longest first: a vendor word such as "RING BACK" must win over "RING".
        self._prefixes = tuple(sorted(self._table.items(), key=lambda item: len(item[0]), reverse=True))
        # The same table for a yes/no question in one call each (`_is_unsolicited`, asked of every answer line
        # that names no command, such as the PDU line of +CMGR): what `_matches` says of each prefix.
        self._colon_prefixes = tuple(prefix for prefix in self._table if prefix.endswith(":"))
        self._words = frozenset(prefix for prefix in self._table if not prefix.endswith(":"))
        self._spaced_words = tuple(word + " " for word in self._words)

    # -- commands -----------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._pending is not None

    @property
    def deadline(self) -> float | None:
        return self._pending.deadline if self._pending else None

    def command(self, command: str, now: float, timeout_s: float, *, expects_prompt: bool = False) -> bytes:
        """Start `command` (e.g. "AT+CMGS=23"); returns the bytes to write."""
        if self._pending is not None:
            raise AtChannelError(f"command {command!r} while {self._pending.command!r} is outstanding")
        match = _COMMAND_NAME.match(command)
        self._pending = _Pending(
            command=command,
            name=match.group(1).upper() if match else "",
            deadline=now + timeout_s,
            expects_prompt=expects_prompt,
            echo=command.upper(),
            lines=[],
        )
        return command.encode("ascii") + b"\r"

    def pdu_body(self, hex_pdu: str, now: float, timeout_s: float) -> bytes:
        """After a `Prompt`: the PDU in hex and Ctrl-Z; the final result follows."""
        pending = self._pending
        if pending is None or not pending.expects_prompt:
            raise AtChannelError("PDU body without a command waiting for the prompt")
        pending.expects_prompt = False
        pending.echo = hex_pdu.upper()
        pending.deadline = now + timeout_s
        return hex_pdu.encode("ascii") + CTRL_Z

    def expire(self, now: float) -> list[AtEvent]:
        """A `CommandTimedOut` when the outstanding command's deadline has passed; its late answer becomes
        unsolicited lines."""
        pending = self._pending
        if pending is None or now < pending.deadline:
            return []
        self._pending = None
        return [CommandTimedOut(pending.command, tuple(pending.lines))]

    def abandon(self) -> None:
        """Give up the outstanding command (its task was cancelled); a late answer becomes unsolicited lines."""
        self._pending = None

    def reset(self) -> None:
        """Forget buffered bytes and the outstanding command (after the port was re-opened)."""
        self._buffer.clear()
        self._pending = None
        self._header = None
        self._skip_prompt_space = False
        self._discarding = False

    # -- bytes in -----------------------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray) -> list[AtEvent]:
        self._buffer += data
        events: list[AtEvent] = []
        while self._buffer:
            if self._discarding:  # the rest of an over-long line, up to its CR/LF
                match = _LINE_END.search(self._buffer)
                if match is None:
                    self._buffer.clear()
                    break
                self._discarding = False
                del self._buffer[: match.start()]
                continue
            if self._skip_prompt_space:
                self._skip_prompt_space = False
                if self._buffer[:1] == b" ":
                    del self._buffer[:1]
                    continue
            pending = self._pending
            if pending is not None and pending.expects_prompt and self._buffer[:1] == b">":
                del self._buffer[:1]
                self._skip_prompt_space = True
                events.append(Prompt())
                continue
            first = self._buffer[0]
            if first == _CR or first == _LF:  # the empty line between "\r" and "\n", or before a line
                del self._buffer[:1]
                continue
            match = _LINE_END.search(self._buffer)
            if match is None:
                if len(self._buffer) > MAX_LINE_BYTES:
                    self._discard_line(len(self._buffer))
                    self._discarding = True
                    self._buffer.clear()
                break
            end = match.start()
            if end > MAX_LINE_BYTES:
                self._discard_line(end)
                del self._buffer[:end]
                continue
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            line = raw.replace(CTRL_Z, b"").decode("utf-8", errors="replace").strip()
            if line:
                event = self._line(line)
                if event is not None:
                    events.append(event)
        return events

    def _discard_line(self, length: int) -> None:
        log.warning("over-long modem line discarded length_at_least=%d limit=%d", length, MAX_LINE_BYTES)
        if self._header is not None:
            # The two-line code's data line may be the one discarded: the next line must not be taken for it.
            log.warning("unsolicited code dropped without its data line code=%s", self._header.name)
            self._header = None

    def _line(self, line: str) -> AtEvent | None:
        if self._header is not None:
            header, self._header = self._header, None
            return Unsolicited(header.name, header.line, header.params, line)
        pending = self._pending
        if pending is not None:
            if pending.echo is not None and line.upper() == pending.echo:
                pending.echo = None
                return None
            final = _final_result(line)
            if final is not None:
                self._pending = None
                return Response(pending.command, tuple(pending.lines), final)
            if not self._is_unsolicited(line, pending.name):
                pending.lines.append(line)
                return None
        return self._unsolicited(line)

    def _is_unsolicited(self, line: str, command_name: str) -> bool:
        prefixed = _PREFIXED_LINE.match(line)
        if prefixed is not None:
            # Another command's name: a URC whether listed or not; the command's own name: its answer.
            return prefixed.group(1).upper() != command_name
        return line.startswith(self._colon_prefixes) or line in self._words or line.startswith(self._spaced_words)

    def _unsolicited(self, line: str) -> Unsolicited | None:
        for prefix, extra_lines in self._prefixes:
            if _matches(line, prefix):
                name = prefix.rstrip(":")
                event = Unsolicited(name, line, line[len(prefix) :].strip() if prefix.endswith(":") else "")
                if extra_lines:
                    self._header = event
                    return None
                return event
        prefixed = _PREFIXED_LINE.match(line)
        if prefixed is not None:
            return Unsolicited(prefixed.group(1), line, line[prefixed.end() :].strip())
        return Unsolicited(line, line)


def _matches(line: str, prefix: str) -> bool:
    if prefix.endswith(":"):
        return line.startswith(prefix)
    return line == prefix or line.startswith(prefix + " ")


def _final_result(line: str) -> FinalResult | None:
    if line in _FINAL_OK:
        return FinalResult(line, ok=True)
    if line in _FINAL_ERROR:
        return FinalResult(line, ok=False)
    if line.startswith(_CME_PREFIX):
        return FinalResult(line, ok=False, cme_error=_error_code(line[len(_CME_PREFIX) :], CME_ERRORS))
    if line.startswith(_CMS_PREFIX):
        return FinalResult(line, ok=False, cms_error=_error_code(line[len(_CMS_PREFIX) :], CMS_ERRORS))
    return None


def _error_code(text: str, table: Mapping[int, str]) -> int | None:
    """The numeric code, also from the verbose form (`+CMEE=2`: "+CME ERROR: SIM busy")."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    lowered = text.lower()
    for code, meaning in table.items():
        if meaning.lower() == lowered:
            return code
    return None
