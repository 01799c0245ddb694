"""Plays every hw_fixtures/**/*.at transcript against ModemDriver (format: hw_fixtures/README.md)."""

from __future__ import annotations

import ast
import math
import shlex
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import trio
import trio.testing

from smsgw.config import ModemConfig
from smsgw.modem.driver import ModemDriver, ModemState
from smsgw.modem.quirks import DEFAULT_QUIRKS_DIR, load_quirks
from smsgw.modem.seams import OutgoingSms
from smsgw.pdu.text import Encoding, encode_text

from modem_fakes import RecordingSink

TRANSCRIPTS = sorted(DEFAULT_QUIRKS_DIR.glob("**/*.at"))


@dataclass
class Transcript:
    entries: list[tuple[float, str, bytes]] = field(default_factory=list)
    directives: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def all(self, name: str) -> list[dict[str, str]]:
        return [values for key, values in self.directives if key == name]


def parse_transcript(path: Path) -> Transcript:
    transcript = Transcript()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            key, colon, rest = line[1:].strip().partition(":")
            if colon and key in {"config", "send", "expect", "expect-sent", "expect-failed", "expect-incoming",
                                 "expect-report"}:
                transcript.directives.append((key, dict(item.split("=", 1) for item in shlex.split(rest))))
            continue
        time, direction, payload = line.strip().split(" ", 2) if line.strip().count(" ") >= 2 else (*line.split(), "")
        if direction not in "<>":
            raise ValueError(f"{path}:{number}: direction must be < or >")
        transcript.entries.append((float(time), direction, ast.literal_eval(f"b'{payload}'")))
    return transcript


class ReplayStream(trio.abc.Stream):
    """The modem side of a transcript: checks what the host writes, answers with the recorded bytes."""

    def __init__(self, entries: list[tuple[float, str, bytes]]) -> None:
        self._entries = list(entries)
        self._position = 0
        self._host = b""
        self._progress = trio.Event()
        self._to_host_send, self._to_host = trio.open_memory_channel[bytes](math.inf)
        self.mismatch: str | None = None
        self.finished = trio.Event()

    async def play(self) -> None:
        previous = 0.0
        while self._position < len(self._entries):
            time, direction, data = self._entries[self._position]
            if direction == ">":
                await self._progress.wait()
                self._progress = trio.Event()
                previous = time
                continue
            await trio.sleep(max(0.0, time - previous))
            previous = time
            self._to_host_send.send_nowait(data)
            self._position += 1
        self.finished.set()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        if self.mismatch is not None:
            raise trio.BrokenResourceError(self.mismatch)
        self._host += bytes(data)
        while self._host:
            if self._position >= len(self._entries) or self._entries[self._position][1] != ">":
                self.mismatch = f"host wrote {self._host!r} where the transcript has the modem speak or end"
                raise trio.BrokenResourceError(self.mismatch)
            expected = self._entries[self._position][2]
            if not (expected.startswith(self._host) or self._host.startswith(expected)):
                self.mismatch = f"entry {self._position}: host wrote {self._host!r}, transcript has {expected!r}"
                raise trio.BrokenResourceError(self.mismatch)
            if len(self._host) < len(expected):
                return
            self._host = self._host[len(expected) :]
            self._position += 1
            self._progress.set()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self._to_host.receive()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def _check(name: str, objects: list[object], expected: list[dict[str, str]]) -> None:
    assert len(objects) == len(expected), f"{name}: got {objects}"
    for got, values in zip(objects, expected, strict=True):
        for key, value in values.items():
            assert str(getattr(got, key)) == value, f"{name}.{key}: {getattr(got, key)!r} != {value!r}"


def test_every_model_directory_has_quirks_and_a_transcript() -> None:
    models = {path.parent.name for path in TRANSCRIPTS}
    quirks = {q.name for q in load_quirks()}
    assert len(quirks) >= 8
    assert models == quirks


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
async def test_replay(path: Path, autojump_clock: trio.testing.MockClock) -> None:
    transcript = parse_transcript(path)
    config = {key: value for values in transcript.all("config") for key, value in values.items()}
    sink = RecordingSink()
    replay = ReplayStream(transcript.entries)
    opened = 0

    async def opener() -> trio.abc.Stream:
        nonlocal opened
        opened += 1
        return replay

    outcomes: list[object] = []
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(replay.play)
            modem = ModemConfig(name=path.parent.name, port=str(path), msisdn="447700900001", **config)  # type: ignore[arg-type]
            driver = ModemDriver(modem, sink, opener=opener)
            nursery.start_soon(driver.run)
            assert await driver.wait_state(ModemState.READY, ModemState.DOWN) is ModemState.READY, replay.mismatch
            await trio.sleep(1)
            for send in transcript.all("send"):
                sms = OutgoingSms(
                    segment_id=path.name,
                    destination=send["destination"],
                    data_coding=0,
                    user_data=encode_text(send["text"], Encoding.GSM7),
                    status_report=send.get("status_report") == "True",
                    validity=timedelta(seconds=int(send["validity_s"])) if "validity_s" in send else None,
                )
                outcomes.append(await driver.send(sms))
            await replay.finished.wait()
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
    assert replay.mismatch is None, replay.mismatch
    assert opened == 1
    (expect,) = transcript.all("expect")
    _check("status", [driver.status()], [{k: v for k, v in expect.items() if k != "state"}])
    _check("sent", outcomes, transcript.all("expect-sent") + transcript.all("expect-failed"))
    _check("incoming", list(sink.incoming), transcript.all("expect-incoming"))
    _check("report", list(sink.reports), transcript.all("expect-report"))
