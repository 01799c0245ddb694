"""`python -m smsgw.bench modem [--json] [--messages N] [--rounds R]`: SMS/s through ModemPool + ModemDriver into 16 virtual modems.

The virtual network runs with zero delivery delay, so what is measured is the host side (pool, driver, AT channel,
TPDU encoding) and the virtual modems answering. Over Trio memory streams the modems run in the same thread as the
driver, sharing its CPU; over real ptys (through `SerialStream`) they run in a child process, as real modems are
separate hardware. The baseline, measured in the same run on the same modems and transport, is a minimal
host: a loop that writes `AT+CMGS=<n>`, waits for `> `, writes a prepared PDU and waits for `OK`, with no
channel, driver or pool. Target: at least 500 messages/s across the 16 modems (a real modem sends about 10 a
minute, so a rack of 16 needs under 3/s). A third pair of rows replaces the virtual modems by a minimal responder
(canned answers, no decoding) to show what the host side alone can do. A last line gives the CPU per SMS of one
virtual modem core and its network alone, sans-IO (SMS-SUBMIT with TP-SRR in, `+CDS` status report out).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Final

import trio
import trio.testing

from smsgw.bench import cpu_model
from smsgw.config import ModemConfig, VirtualNetworkConfig
from smsgw.modem.driver import ModemDriver, ModemState
from smsgw.modem.pool import ModemPool
from smsgw.modem.seams import IncomingSms, OutgoingSms, Sent, StatusReport
from smsgw.modem.transport import open_serial
from smsgw.modem.virtual.modem import ModemCore, VirtualModem
from smsgw.modem.virtual.network import VirtualNetwork, serve_network
from smsgw.modem.virtual.pty import serve_pty
from smsgw.pdu.text import Encoding, encode_text
from smsgw.pdu.tpdu import Address, SmsSubmit, cmgs_length, encode_with_smsc

_TARGET_PER_S: Final = 500.0
_MODEMS: Final = 16
_SENDERS_PER_MODEM: Final = 2
_READY_TIMEOUT_S: Final = 60.0

Opener = Callable[[], Awaitable[trio.abc.Stream]]
RESPONDER: Final = "responder"


@dataclass(frozen=True, slots=True)
class Row:
    setup: str
    modems: int
    messages: int
    driver_per_s: float
    baseline_per_s: float
    ratio: float
    meets_target: bool


class _CountingSink:
    def __init__(self) -> None:
        self.incoming = 0
        self.reports = 0

    async def incoming_sms(self, sms: IncomingSms) -> None:
        self.incoming += 1

    async def status_report(self, report: StatusReport) -> None:
        self.reports += 1


def _msisdn(index: int) -> str:
    return f"4477009{index + 1:05d}"


def _destination(index: int) -> str:
    # "Any other valid number" on the virtual network: accepted and delivered, no handset answers back.
    return f"4477005{index % 1000:05d}"


class _Responder(trio.abc.Stream):
    """The cheapest modem that satisfies the driver: canned answers, no PDU decoding, in-process. It shows the
    ceiling of the host side alone."""

    _ANSWERS: Final = {
        b"AT+CPIN?": b"\r\n+CPIN: READY\r\n\r\nOK\r\n",
        b"AT+CREG?": b"\r\n+CREG: 0,1\r\n\r\nOK\r\n",
        b"AT+CSQ": b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n",
    }

    def __init__(self) -> None:
        self._out = bytearray()
        self._in = bytearray()
        self._readable = trio.Event()
        self._mr = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        self._in += data
        while True:
            end = self._in.find(b"\x1a")
            if end >= 0:
                self._mr = (self._mr + 1) % 256
                self._out += b"\r\n+CMGS: %d\r\n\r\nOK\r\n" % self._mr
            else:
                end = self._in.find(b"\r")
                if end < 0:
                    break
                line = bytes(self._in[:end])
                self._out += b"\r\n> " if line.startswith(b"AT+CMGS=") else self._ANSWERS.get(line, b"\r\nOK\r\n")
            del self._in[: end + 1]
        self._readable.set()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        while not self._out:
            await self._readable.wait()
            self._readable = trio.Event()
        data, self._out = bytes(self._out), bytearray()
        await trio.lowlevel.checkpoint()
        return data

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def _responder_openers() -> list[Opener]:
    async def open_responder() -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        return _Responder()

    return [open_responder] * _MODEMS


def _serve_modems(directory: str, ready: Connection, stop: Connection) -> None:
    """Child process: the virtual network and its modems on ptys linked in `directory`, until told to stop."""

    async def serve() -> None:
        config = VirtualNetworkConfig(delivery_delay_s=0.0, mt_interval_s=0.0, unsolicited_gap_s=0.0)
        async with trio.open_nursery() as nursery:
            network = VirtualNetwork(config, now=trio.current_time())
            await nursery.start(serve_network, network)
            for index in range(_MODEMS):
                modem = VirtualModem(network, _msisdn(index), config)
                await nursery.start(serve_pty, modem, Path(directory) / f"modem{index}")
            ready.send(True)
            await trio.to_thread.run_sync(stop.recv)
            nursery.cancel_scope.cancel()

    logging.getLogger("smsgw").setLevel(logging.ERROR)
    trio.run(serve)


def _pty_openers(directory: str) -> list[Opener]:
    openers: list[Opener] = []
    for index in range(_MODEMS):

        async def open_pty(link: Path = Path(directory) / f"modem{index}") -> trio.abc.Stream:
            return open_serial(str(link), 115200, rtscts=False)

        openers.append(open_pty)
    return openers


async def _memory_openers(nursery: trio.Nursery) -> list[Opener]:
    """Virtual modems in this thread; each opener gives a fresh host-side memory stream to one of them."""
    config = VirtualNetworkConfig(delivery_delay_s=0.0, mt_interval_s=0.0, unsolicited_gap_s=0.0)
    network = VirtualNetwork(config, now=trio.current_time())
    await nursery.start(serve_network, network)
    openers: list[Opener] = []
    for index in range(_MODEMS):

        async def open_memory(modem: VirtualModem = VirtualModem(network, _msisdn(index), config)) -> trio.abc.Stream:
            host, device = trio.testing.memory_stream_pair()
            nursery.start_soon(modem.serve, device)
            return host

        openers.append(open_memory)
    return openers


async def _openers(nursery: trio.Nursery, where: str | None) -> list[Opener]:
    """`where`: None for virtual modems on memory streams, RESPONDER for the minimal responder, else the
    directory of the pty links."""
    if where is None:
        return await _memory_openers(nursery)
    if where == RESPONDER:
        return _responder_openers()
    return _pty_openers(where)


async def _through_driver(where: str | None, messages: int) -> float:
    sink = _CountingSink()
    async with trio.open_nursery() as nursery:
        openers = await _openers(nursery, where)
        drivers = [
            ModemDriver(
                ModemConfig(name=f"m{i}", port=f"virtual:{_msisdn(i)}", msisdn=_msisdn(i)),
                sink,
                opener=opener,
                quirks_table=(),
            )
            for i, opener in enumerate(openers)
        ]
        pool = ModemPool(drivers)
        await nursery.start(pool.run)
        with trio.fail_after(_READY_TIMEOUT_S):
            for driver in drivers:
                if await driver.wait_state(ModemState.READY, ModemState.DOWN) is not ModemState.READY:
                    raise RuntimeError(f"{driver.name} did not start: {driver.status().last_error}")
        await trio.sleep(0.2)  # the start-up storage scans are done
        text = encode_text("Benchmark message through the modem pool", Encoding.GSM7)
        counter = iter(range(messages))
        failures: list[str] = []

        async def sender() -> None:
            for index in counter:
                sms = OutgoingSms(segment_id=str(index), destination=_destination(index), data_coding=0,
                                  user_data=text)  # fmt: skip
                outcome = await pool.send(sms)
                if not isinstance(outcome, Sent):
                    failures.append(outcome.reason)

        start = time.perf_counter()
        async with trio.open_nursery() as senders:
            for _ in range(_MODEMS * _SENDERS_PER_MODEM):
                senders.start_soon(sender)
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    if failures:
        raise RuntimeError(f"{len(failures)} sends failed, first: {failures[0]}")
    return messages / elapsed


async def _read_until(stream: trio.abc.Stream, buffer: bytearray, marker: bytes) -> None:
    while marker not in buffer:
        data = await stream.receive_some()
        if not data:
            raise RuntimeError("virtual modem closed the stream")
        buffer += data
    del buffer[: buffer.index(marker) + len(marker)]


async def _baseline(where: str | None, messages: int) -> float:
    """The minimal host: no AtChannel, driver or pool; one loop per modem over the same transport."""
    async with trio.open_nursery() as nursery:
        openers = await _openers(nursery, where)
        streams = [await opener() for opener in openers]
        buffers = [bytearray() for _ in streams]
        for stream, buffer in zip(streams, buffers, strict=True):
            await stream.send_all(b"ATE0;+CMGF=0\r")
            await _read_until(stream, buffer, b"OK\r\n")
        commands = _prepared_commands(status_report_request=False)
        counter = iter(range(messages))

        async def host(stream: trio.abc.Stream, buffer: bytearray) -> None:
            for index in counter:
                command, body = commands[index % len(commands)]
                await stream.send_all(command)
                await _read_until(stream, buffer, b"> ")
                await stream.send_all(body)
                await _read_until(stream, buffer, b"OK\r\n")

        start = time.perf_counter()
        async with trio.open_nursery() as hosts:
            for stream, buffer in zip(streams, buffers, strict=True):
                hosts.start_soon(host, stream, buffer)
        elapsed = time.perf_counter() - start
        for stream in streams:
            await stream.aclose()
        nursery.cancel_scope.cancel()
    return messages / elapsed


def _prepared_commands(*, status_report_request: bool) -> list[tuple[bytes, bytes]]:
    """(`AT+CMGS=<n>` line, PDU in hex + Ctrl-Z) for 1,000 one-part SMS-SUBMITs, as a minimal host writes them."""
    text = encode_text("Benchmark message through the modem pool", Encoding.GSM7)
    pdus = [
        encode_with_smsc(
            SmsSubmit(Address.international(_destination(i)), text, status_report_request=status_report_request)
            .to_bytes()
        )
        for i in range(1000)
    ]
    return [(f"AT+CMGS={cmgs_length(pdu)}\r".encode(), pdu.hex().upper().encode() + b"\x1a") for pdu in pdus]


def _modem_core_cpu_us(messages: int) -> float:
    """Process CPU per SMS of one virtual modem core and its network, sans-IO (no streams, no Trio): `AT+CMGS`,
    the PDU with TP-SRR set, the delivery and the `+CDS` status report back to the modem."""
    config = VirtualNetworkConfig(delivery_delay_s=0.0, mt_interval_s=0.0, unsolicited_gap_s=0.0)
    network = VirtualNetwork(config, now=0.0)
    modem = ModemCore(msisdn=_msisdn(0), network=network, config=config, now=0.0)
    modem.receive_data(b"ATE0;+CMGF=0;+CNMI=2,1,0,1,0\r", 0.0)
    if not modem.data_to_send().endswith(b"OK\r\n"):
        raise RuntimeError("virtual modem refused its set-up")
    commands = _prepared_commands(status_report_request=True)
    reports = 0
    start = time.process_time()
    for index in range(messages):
        now = index * 0.001
        command, body = commands[index % len(commands)]
        modem.receive_data(command, now)
        modem.receive_data(body, now)
        network.advance(now)  # the delivery, which queues the status report
        network.advance(now)  # the status report to the modem
        reports += modem.data_to_send().count(b"+CDS:")
    elapsed = time.process_time() - start
    if reports != messages:
        raise RuntimeError(f"{reports} status reports for {messages} messages")
    return elapsed / messages * 1e6


def _best(where: str | None, messages: int, rounds: int) -> tuple[float, float]:
    """Best of `rounds` for the driver and the baseline, alternating so load from other processes hits both."""
    driver = baseline = 0.0
    for _ in range(rounds):
        driver = max(driver, trio.run(_through_driver, where, messages))
        baseline = max(baseline, trio.run(_baseline, where, messages))
    return driver, baseline


def measure(messages: int, rounds: int) -> list[Row]:
    results = {
        "minimal responder (host side alone)": _best(RESPONDER, messages, rounds),
        "memory (virtual modems in the same thread)": _best(None, messages, rounds),
    }
    with tempfile.TemporaryDirectory(prefix="smsgw-bench-") as directory:
        context = multiprocessing.get_context("spawn")
        ready_receive, ready_send = context.Pipe(duplex=False)
        stop_receive, stop_send = context.Pipe(duplex=False)
        child = context.Process(target=_serve_modems, args=(directory, ready_send, stop_receive), daemon=True)
        child.start()
        try:
            if not ready_receive.poll(_READY_TIMEOUT_S):
                raise RuntimeError("virtual modems on ptys did not start")
            ready_receive.recv()
            results["pty (virtual modems in a child process)"] = _best(directory, messages, rounds)
        finally:
            stop_send.send(True)
            child.join(10)
            if child.is_alive():
                child.kill()
    return [
        Row(name, _MODEMS, messages, driver, baseline, driver / baseline, driver >= _TARGET_PER_S)
        for name, (driver, baseline) in results.items()
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m smsgw.bench modem", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--messages", type=int, default=3000, help="messages per measurement (default 3000)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each, best kept (default 3)")
    args = parser.parse_args(argv)
    logging.getLogger("smsgw").setLevel(logging.ERROR)  # per-message INFO lines would measure the logger
    rows = measure(args.messages, args.rounds)
    core_us = min(_modem_core_cpu_us(args.messages) for _ in range(args.rounds))
    if args.json:
        json.dump(
            {"benchmark": "modem", "target_per_s": _TARGET_PER_S, "python": platform.python_version(),
             "cpu": cpu_model(), "rows": [asdict(r) for r in rows], "modem_core_cpu_us_per_sms": core_us},
            sys.stdout,
            indent=2,
        )  # fmt: skip
        print()
    else:
        print(f"| setup | modems | messages | driver msg/s (target >= {_TARGET_PER_S:.0f}) | minimal host msg/s | ratio |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in rows:
            mark = "" if r.meets_target else " (below target)"
            print(f"| {r.setup} | {r.modems} | {r.messages} | {r.driver_per_s:,.0f}{mark} "
                  f"| {r.baseline_per_s:,.0f} | {r.ratio:.2f} |")  # fmt: skip
        print(f"\nvirtual modem core (sans-IO, SMS-SUBMIT with TP-SRR to +CDS): {core_us:.0f} us CPU per SMS")
    return 0 if all(r.meets_target for r in rows) else 1
