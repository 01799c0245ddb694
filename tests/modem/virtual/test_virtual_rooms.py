"""The virtual modem's line input and host output alone, without a modem core: bytes in, calls and bytes out."""

from __future__ import annotations

import dataclasses

from smsgw.modem.virtual.commands import Prompt, Settings
from smsgw.modem.virtual.lineinput import LineInput
from smsgw.modem.virtual.output import HostOutput


class _Host:
    """One line input and output pair; `lines` records what reached `execute`, `typed` what reached the prompt."""

    def __init__(self, *, in_command: bool = False, submit_delay_s: float = 0.0) -> None:
        self.settings = Settings()
        self.lines: list[str] = []
        self.typed: list[bytes] = []
        self.busy = in_command
        self.output = HostOutput(
            settings=lambda: self.settings,
            in_command=lambda: self.busy or self.input.in_command(),
            gap_s=1.0,
            now=0.0,
            on_output=lambda: None,
        )
        self.input = LineInput(
            msisdn="447700900001",
            settings=lambda: self.settings,
            output=self.output,
            execute=self._execute,
            submit_delay_s=submit_delay_s,
        )

    def _execute(self, now: float, line: str) -> Prompt | None:
        self.lines.append(line)
        if line.upper().startswith("AT+CMGS"):
            self.output.emit_raw(b"\r\n> ")
            return Prompt(self._typed)
        self.output.final_ok([])
        return None

    def _typed(self, now: float, data: bytes) -> list[str]:
        self.typed.append(data)
        return ["+CMGS: 7"]

    def feed(self, data: bytes, now: float = 0.0) -> bytes:
        self.input.receive(data)
        self.input.process(now)
        return self.output.take()


def test_line_input_edits_echoes_and_collects_the_prompt() -> None:
    host = _Host()
    out = host.feed(b"ATX\x08E0\rAT+CMGS=1")
    assert host.lines == ["ATE0"]
    assert out == b"ATX\x08E0\r\r\nOK\r\n"
    host.settings = dataclasses.replace(host.settings, echo=False)
    out = host.feed(b"2\rAB") + host.feed(b"CD\x1aAT\r")
    assert host.typed == [b"ABCD"]
    assert host.lines == ["ATE0", "AT+CMGS=12", "AT"]
    assert out == b"\r\n> \r\n+CMGS: 7\r\n\r\nOK\r\n\r\nOK\r\n"


def test_line_input_holds_the_result_and_later_lines_while_the_submission_takes_time() -> None:
    host = _Host(submit_delay_s=2.0)
    host.settings = dataclasses.replace(host.settings, echo=False)
    assert host.feed(b"AT+CMGS=5\rAB\x1aAT\r", now=1.0) == b"\r\n> "
    assert host.input.busy_until == 3.0
    assert host.lines == ["AT+CMGS=5"]  # the AT behind it waits for the result
    host.input.handle_timers(3.0)
    assert host.output.take() == b"\r\n+CMGS: 7\r\n\r\nOK\r\n\r\nOK\r\n"
    assert host.lines == ["AT+CMGS=5", "AT"]


def test_output_spaces_unsolicited_codes_and_holds_them_during_a_command() -> None:
    host = _Host(in_command=True)
    host.settings = dataclasses.replace(host.settings, cnmi=(2, 1, 0, 0, 0))
    host.output.urc(["+CMTI: \"SM\",1"], sms=True)
    host.output.urc(["RING"])
    assert host.output.take() == b""
    assert host.output.next_deadline() is None  # nothing may go out while the host is in a command
    host.busy = False
    host.output.flush_urcs()
    assert host.output.take() == b'\r\n+CMTI: "SM",1\r\n'
    assert host.output.next_deadline() == 1.0  # one per gap
    host.output.now = 1.0
    host.output.flush_urcs()
    assert host.output.take() == b"\r\nRING\r\n"


def test_output_buffers_sms_indications_under_cnmi_mode_0() -> None:
    host = _Host()
    host.output.urc(["+CMTI: \"SM\",1"], sms=True)
    assert host.output.take() == b""
    host.settings = dataclasses.replace(host.settings, cnmi=(2, 1, 0, 0, 0))
    host.output.flush_urcs()
    assert host.output.take() == b'\r\n+CMTI: "SM",1\r\n'
