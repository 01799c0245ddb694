"""What the virtual modem writes to the host: information and final result codes formatted per V.250 (`V`, `Q`,
S3/S4, `+CMEE`), and unsolicited result codes, spaced and held back while a command runs or +CNMI buffers them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from smsgw.modem.at import CME_ERRORS, CMS_ERRORS
from smsgw.modem.virtual.commands import Settings

_MAX_OUTPUT_BUFFER: Final = 64 * 1024
_MAX_FINALS_CACHED: Final = 64


class HostOutput:
    """The bytes for the host and the unsolicited result codes waiting to join them. `settings()` is the modem's
    current settings and `in_command()` whether the host is inside a command (running, at `> ` or waiting for its
    result); the modem sets `now` as its clock moves."""

    def __init__(
        self,
        *,
        settings: Callable[[], Settings],
        in_command: Callable[[], bool],
        gap_s: float,
        now: float,
        on_output: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._in_command = in_command
        self._gap_s = gap_s
        self._on_output = on_output
        self.now = now
        self._out = bytearray()
        # Unsolicited result codes waiting for the running command to end: (lines, governed by +CNMI mode).
        self._urc_queue: list[tuple[list[str], bool]] = []
        # No unsolicited result code before this time: one per `unsolicited_gap_s`, so a host that reads until the
        # line goes quiet sees each alone (python-gsmmodem handles only the first line of what arrives together).
        self._quiet_until = now
        # Final result codes as formatted for `_formatted_for`, the settings object they were made under (settings
        # are replaced, never changed, so a new object is the only sign to format them again).
        self._formatted_for: Settings | None = None
        self._crlf_bytes = b""
        self._finals: dict[tuple[str, int], bytes] = {}

    def take(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def put_back(self, data: bytes) -> None:
        self._out[:0] = data
        self._drop_beyond_buffer()

    def next_deadline(self) -> float | None:
        """When a waiting unsolicited result code may go out, if one may."""
        if not self._urc_queue:
            return None  # the usual case, asked after every command line: no settings or state to look at
        return self._quiet_until if self._next_urc() is not None else None

    # --- result codes ---------------------------------------------------------------------------------------------

    def emit_raw(self, data: bytes) -> None:
        if data:
            self._out += data
            self._drop_beyond_buffer()
            self._on_output()

    def _drop_beyond_buffer(self) -> None:
        if len(self._out) > _MAX_OUTPUT_BUFFER:
            # Nobody has read for a long while (no host on the port): a serial line drops, it does not queue.
            del self._out[: len(self._out) - _MAX_OUTPUT_BUFFER]

    def emit_lines(self, lines: list[str]) -> None:
        self.emit_raw(self._format_lines(lines))

    def format_ok(self, lines: list[str]) -> bytes:
        return self._format_lines(lines) + self._format_final("OK", 0)

    def final(self, text: str, numeric: int) -> None:
        self.emit_raw(self._format_final(text, numeric))
        self.flush_urcs()

    def final_ok(self, lines: list[str]) -> None:
        self.emit_raw(self.format_ok(lines))
        self.flush_urcs()

    def final_error(self, code: int | None, family: str) -> None:
        cmee = self._settings().cmee
        if code is None or (family == "cme" and cmee == 0):
            self.final("ERROR", 4)
            return
        table = CMS_ERRORS if family == "cms" else CME_ERRORS
        detail = table.get(code, "unknown error") if cmee == 2 else str(code)
        self.final(f"+{family.upper()} ERROR: {detail}", 4)

    def _current(self) -> Settings:
        """The modem's settings, with the formatting caches emptied when they changed."""
        settings = self._settings()
        if settings is not self._formatted_for:
            self._formatted_for = settings
            self._crlf_bytes = bytes([settings.s3, settings.s4])
            self._finals.clear()
        return settings

    def _format_lines(self, lines: list[str]) -> bytes:
        if not lines:
            return b""
        settings = self._current()
        crlf = self._crlf_bytes
        body = crlf.join(line.encode("latin-1", "replace") for line in lines)
        return (crlf + body + crlf) if settings.verbose else (body + crlf)

    def _format_final(self, text: str, numeric: int) -> bytes:
        settings = self._current()
        formatted = self._finals.get((text, numeric))
        if formatted is None:
            if settings.quiet:
                formatted = b""
            elif settings.verbose:
                formatted = self._crlf_bytes + text.encode("latin-1", "replace") + self._crlf_bytes
            else:
                formatted = str(numeric).encode() + bytes([settings.s3])
            if len(self._finals) < _MAX_FINALS_CACHED:  # error texts vary with their codes; OK and a few recur
                self._finals[text, numeric] = formatted
        return formatted

    # --- unsolicited result codes ---------------------------------------------------------------------------------

    def urc(self, lines: list[str], *, sms: bool = False) -> None:
        """An unsolicited result code: now when no command is running and the line has been quiet for
        `unsolicited_gap_s`, else later (`next_deadline`). SMS indications wait while +CNMI mode is 0, until the
        host chooses another mode (TS 27.005 3.4.1)."""
        self._urc_queue.append((lines, sms))
        self.flush_urcs()

    def drop_sms_urcs(self) -> None:
        """+CNMI <bfr>=1: the SMS indications buffered under mode 0 are cleared, not sent (TS 27.005 3.4.1)."""
        self._urc_queue = [(lines, sms) for lines, sms in self._urc_queue if not sms]

    def _next_urc(self) -> int | None:
        """Index of the unsolicited result code that may go out next, if the host is not in a command."""
        if self._in_command():
            return None
        buffering = self._settings().cnmi[0] == 0
        return next((i for i, (_, sms) in enumerate(self._urc_queue) if not (sms and buffering)), None)

    def flush_urcs(self) -> None:
        """Send what may go out now; unsolicited result codes held back while a command ran go out after its
        final result."""
        if not self._urc_queue:
            return  # the usual case: called after every command line and result
        while self.now >= self._quiet_until and (index := self._next_urc()) is not None:
            lines, _ = self._urc_queue.pop(index)
            self.emit_lines(lines)
            self._quiet_until = self.now + self._gap_s
        if self._urc_queue:
            self._on_output()  # the shell's next deadline may now be earlier than the one it sleeps towards
