"""What the host types, as a modem's line layer takes it (ITU-T V.250 5.2): echo, lines ended by S3 and edited
with S5, and the text typed after `> ` up to Ctrl-Z (send) or ESC (cancel). A command line goes to `execute`; a
`> ` answer goes to the prompt's handler, its result held back `submit_delay_s` as a radio submission is."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Final

from smsgw.modem.virtual.commands import CmsError, Prompt, Settings
from smsgw.modem.virtual.output import HostOutput

log = logging.getLogger(__name__)

CTRL_Z: Final = 0x1A
ESC: Final = 0x1B
_MAX_LINE: Final = 1024
# An SMSC address (12 octets) and the longest TPDU (164 octets), in hex.
_MAX_PROMPT_INPUT: Final = 2 * (12 + 164)


class LineInput:
    """The host's bytes in, commands and prompt answers out. `execute(now, line)` runs a command line and returns
    the `Prompt` it ends in, if any; `settings()` is the modem's current settings (echo, S3, S4, S5)."""

    def __init__(
        self,
        *,
        msisdn: str,
        settings: Callable[[], Settings],
        output: HostOutput,
        execute: Callable[[float, str], Prompt | None],
        submit_delay_s: float,
    ) -> None:
        self._msisdn = msisdn
        self._settings = settings
        self._output = output
        self._execute = execute
        self._submit_delay_s = submit_delay_s
        self._in = bytearray()
        self._prompt: tuple[Prompt, bytes] | None = None
        self.busy_until: float | None = None
        self._pending_result = b""
        self._executing = False

    def in_command(self) -> bool:
        """The host is inside a command: it runs, waits at `> ` or waits for its result."""
        return self._executing or self._prompt is not None or self.busy_until is not None

    def receive(self, data: bytes | bytearray) -> None:
        self._in += data

    def handle_timers(self, now: float) -> None:
        if self.busy_until is not None and now >= self.busy_until:
            self.busy_until = None
            self._output.emit_raw(self._pending_result)
            self._pending_result = b""
            self._output.flush_urcs()
            self.process(now)

    def process(self, now: float) -> None:
        """Run what the host has typed, up to a command that keeps the modem busy."""
        while self._in and self.busy_until is None:
            if self._prompt is not None:
                if not self._prompt_input(now):
                    return
                continue
            settings = self._settings()
            terminator = self._in.find(settings.s3)
            if terminator < 0:
                if len(self._in) > _MAX_LINE:
                    self._echo(bytes(self._in))
                    self._in.clear()
                    self._output.final_error(None, "cme")
                return
            raw = bytes(self._in[:terminator])
            del self._in[: terminator + 1]
            if settings.echo:  # asked first: the echo is not built for a host that turned it off (most do)
                self._output.emit_raw(raw + bytes([settings.s3]))
            line = edit_line(raw, settings.s4, settings.s5)
            if line:
                self._executing = True
                try:
                    prompt = self._execute(now, line)
                finally:
                    self._executing = False
                if prompt is not None:
                    self._prompt = (prompt, b"")
                self._output.flush_urcs()

    def _echo(self, data: bytes) -> None:
        if self._settings().echo:
            self._output.emit_raw(data)

    def _prompt_input(self, now: float) -> bool:
        """Collect what the host types after `> `; False when the terminating Ctrl-Z/ESC has not come yet."""
        assert self._prompt is not None
        prompt, collected = self._prompt
        end = min((i for i in (self._in.find(CTRL_Z), self._in.find(ESC)) if i >= 0), default=-1)
        chunk = bytes(self._in if end < 0 else self._in[:end])
        self._echo(chunk)
        if end < 0:
            self._in.clear()
            self._prompt = (prompt, (collected + chunk)[: _MAX_PROMPT_INPUT + 2])
            return False
        terminator = self._in[end]
        del self._in[: end + 1]
        self._prompt = None
        data = collected + chunk
        if terminator == ESC:
            log.info("virtual modem msisdn=%s message cancelled with ESC", self._msisdn)
            self._output.final_ok([])
            return True
        self._executing = True
        try:
            lines = prompt.handler(now, data)
        except CmsError as error:
            self._output.final_error(error.code, "cms")
            return True
        finally:
            self._executing = False
        if self._submit_delay_s > 0:
            self._pending_result = self._output.format_ok(lines)
            self.busy_until = now + self._submit_delay_s
        else:
            self._output.final_ok(lines)
        return True


@functools.lru_cache(maxsize=8)
def _dropped(line_feed: int) -> bytes:
    """The octets `edit_line` drops from a line, for S4 `line_feed`."""
    return bytes((line_feed, CTRL_Z, ESC, 0))


def edit_line(raw: bytes, line_feed: int, backspace: int) -> str:
    """The line as typed: backspaces (S5) applied, line feeds (S4) and stray Ctrl-Z/ESC/NUL dropped."""
    dropped = _dropped(line_feed)
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
