"""A scripted modem for driver tests: answers AT commands from a table over a memory stream, records what the
host sent, stores SMS in indexed slots, and can inject unsolicited lines or fall silent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import trio
import trio.testing

from smsgw.modem.driver import StreamOpener
from smsgw.modem.seams import IncomingSms, StatusReport
from smsgw.modem.virtual.modem import VirtualModem

Answer = str | Callable[[str], str | None] | None

OK = "\r\nOK\r\n"


def lines(*items: str) -> str:
    """Intermediate lines followed by OK, framed as a modem frames them."""
    return "".join(f"\r\n{item}\r\n" for item in items) + OK


def tpdu_length(pdu_hex: str) -> int:
    """The <length> a modem gives for a PDU-mode PDU: TPDU octets, the SMSC prefix excluded."""
    return len(pdu_hex) // 2 - 1 - int(pdu_hex[:2], 16)


DEFAULT_ANSWERS: dict[str, Answer] = {
    "ATE0": OK,
    "AT": OK,
    "AT+CMEE=1": OK,
    "AT+CGMI": lines("Fakecom"),
    "AT+CGMM": lines("FM1"),
    "AT+CGSN": lines("356938035643809"),
    "AT+CPIN?": lines("+CPIN: READY"),
    "AT+CIMI": lines("234150000000001"),
    "AT+CMGF=0": OK,
    "AT+CMGF?": lines("+CMGF: 0"),
    "AT+CPMS=?": lines('+CPMS: ("SM","ME","SR"),("SM","ME"),("SM","ME")'),
    "AT+CNMI=?": lines("+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)"),
    "AT+CNMI=2,1,0,2,0": OK,
    "AT+CNMI=2,1,0,1,0": OK,
    "AT+CSMS=1": lines("+CSMS: 1,1,1"),
    "AT+COPS=3,0": OK,
    "AT+CREG?": lines("+CREG: 0,1"),
    "AT+CSQ": lines("+CSQ: 20,99"),
    "AT+COPS?": lines('+COPS: 0,0,"Fake Net",2'),
    "AT+CNMA": OK,
    "AT+CFUN=1,1": OK,
}


@dataclass
class ScriptedModem:
    answers: dict[str, Answer] = field(default_factory=lambda: dict(DEFAULT_ANSWERS))
    echo: bool = False
    storage: dict[str, dict[int, str]] = field(default_factory=lambda: {"SM": {}, "ME": {}, "SR": {}})
    sent: list[str] = field(default_factory=list)
    pdus: list[str] = field(default_factory=list)
    cmgs_answer: Callable[[str], str] = lambda pdu: lines("+CMGS: 7")
    silent: bool = False
    memory: str = "SM"
    stream: trio.abc.Stream | None = None
    # A command line of several commands (`AT+CMGD=1;+CMGD=2`): None answers ERROR as for any unknown line;
    # "whole" runs them in turn up to the first error, as V.250 says; "first" runs the first and ignores the rest.
    concatenation: str | None = None
    longest_line: int = 1000  # a longer line fails after its first command, as a modem's full buffer would

    def answer(self, line: str) -> str | None:
        if ";" in line and self.concatenation is not None:
            return self._answer_line(line)
        upper = line.upper()
        if upper in self.answers:
            answer = self.answers[upper]
            return answer(line) if callable(answer) else answer
        if upper.startswith("AT+CPMS="):
            self.memory = line.split("=", 1)[1].split(",")[0].strip('"')
            return lines("+CPMS: 0,30,0,30,0,30")
        if upper.startswith("AT+CMGR="):
            pdu = self.storage[self.memory].get(int(line.split("=")[1]))
            return lines(f"+CMGR: 0,,{tpdu_length(pdu)}", pdu) if pdu else OK
        if upper.startswith("AT+CMGD="):
            self.storage[self.memory].pop(int(line.split("=")[1]), None)
            return OK
        if upper == "AT+CMGL=4":
            slots = self.storage[self.memory]
            body = [x for i, pdu in sorted(slots.items()) for x in (f"+CMGL: {i},0,,{tpdu_length(pdu)}", pdu)]
            return lines(*body)
        return "\r\nERROR\r\n"

    def _answer_line(self, line: str) -> str | None:
        first, *rest = line.split(";")
        commands = [first, *(f"AT{command}" for command in rest)]
        if self.concatenation == "first":
            commands = commands[:1]
        elif len(line) > self.longest_line:
            commands = [*commands[:1], "AT+OVERFLOW"]
        body = ""
        for command in commands:
            answer = self.answer(command) or ""
            if not answer.endswith(OK):
                return body + answer
            body += answer[: -len(OK)]
        return body + OK

    async def serve(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        buffer = b""
        awaiting_pdu = False
        while True:
            try:
                data = await stream.receive_some()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            buffer += data
            while True:
                if awaiting_pdu:
                    if b"\x1a" not in buffer:
                        break
                    pdu, _, buffer = buffer.partition(b"\x1a")
                    text = pdu.decode().strip()
                    self.pdus.append(text)
                    awaiting_pdu = False
                    await self._write((text + "\r\n" if self.echo else "") + self.cmgs_answer(text))
                    continue
                if b"\r" not in buffer:
                    break
                raw, _, buffer = buffer.partition(b"\r")
                line = raw.replace(b"\x1b", b"").decode().strip()  # in command mode a modem ignores ESC
                if not line:
                    continue
                self.sent.append(line)
                if self.silent:
                    continue
                if self.echo:
                    await self._write(line + "\r")
                if line.upper().startswith("AT+CMGS="):
                    awaiting_pdu = True
                    await self._write("\r\n> ")
                    continue
                answer = self.answer(line)
                if answer is not None:
                    await self._write(answer)

    async def inject(self, text: str) -> None:
        await self._write(text)

    async def _write(self, text: str) -> None:
        assert self.stream is not None
        try:
            await self.stream.send_all(text.encode())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


class RecordingSink:
    """A ModemEventSink that records what it gets, in order with the commands the modem saw."""

    def __init__(self, modem: ScriptedModem | None = None) -> None:
        self.incoming: list[IncomingSms] = []
        self.reports: list[StatusReport] = []
        self.modem = modem
        self.commands_seen_at_hand_over: list[int] = []
        self.release = trio.Event()
        self.release.set()
        self.commit_s = 0.0
        self.changed = trio.Event()

    async def incoming_sms(self, sms: IncomingSms) -> None:
        await self.release.wait()
        self.incoming.append(sms)
        if self.modem is not None:
            self.commands_seen_at_hand_over.append(len(self.modem.sent))
        self._notify()

    async def status_report(self, report: StatusReport) -> None:
        await self.release.wait()
        if self.commit_s:
            await trio.sleep(self.commit_s)  # a store slower than the modem
        self.reports.append(report)
        self._notify()

    def _notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self.changed.wait()


class SerialLikeStream(trio.abc.Stream):
    """The host end of a memory stream that hands out at most `read_size` bytes per read, as a serial port does,
    and counts what the host has read: what it did not read waits in the "port"."""

    def __init__(self, inner: trio.abc.Stream, read_size: int) -> None:
        self._inner = inner
        self._read_size = read_size
        self.bytes_read = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self._inner.receive_some(min(max_bytes or self._read_size, self._read_size))
        self.bytes_read += len(data)
        return data

    async def aclose(self) -> None:
        await self._inner.aclose()


def memory_opener(
    modem: ScriptedModem, nursery: trio.Nursery, opened: list[SerialLikeStream] | None = None, read_size: int = 4096
) -> Callable[[], trio.abc.Stream]:
    """An opener for ModemDriver that connects a fresh memory stream to `modem` on each open; the streams it
    opened are appended to `opened`."""

    async def open_stream() -> trio.abc.Stream:
        host, device = trio.testing.memory_stream_pair()
        nursery.start_soon(modem.serve, device)
        stream = SerialLikeStream(host, read_size)
        if opened is not None:
            opened.append(stream)
        return stream

    return open_stream  # type: ignore[return-value]


def virtual_opener(modem: VirtualModem, nursery: trio.Nursery) -> StreamOpener:
    """A driver's opener that connects it to `modem` over a memory stream, as if its port were opened."""

    async def open_stream() -> trio.abc.Stream:
        host, device = trio.testing.memory_stream_pair()
        nursery.start_soon(modem.serve, device)
        return host

    return open_stream
