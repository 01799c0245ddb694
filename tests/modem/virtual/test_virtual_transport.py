"""The Trio shell over memory streams (modem-to-modem loopback) and over a real pty, read with pyserial."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import serial
import trio
import trio.testing

from smsgw.config import VirtualNetworkConfig
from smsgw.modem.virtual.modem import VirtualModem
from smsgw.modem.virtual.network import VirtualNetwork, serve_network
from smsgw.modem.virtual.pty import serve_pty
from smsgw.pdu.tpdu import Address, SmsDeliver, SmsSubmit, encode_with_smsc, split_smsc

CONFIG = VirtualNetworkConfig(delivery_delay_s=1.0)


class Host:
    """A minimal AT host for tests: writes a line, reads until a final result code."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = b""

    async def read_until(self, *endings: bytes) -> bytes:
        while not any(ending in self.buffer for ending in endings):
            data = await self.stream.receive_some(4096)
            assert data, "modem closed the stream"
            self.buffer += data
        end = min(self.buffer.index(e) + len(e) for e in endings if e in self.buffer)
        answer, self.buffer = self.buffer[:end], self.buffer[end:]
        return answer

    async def command(self, line: str) -> bytes:
        await self.stream.send_all(line.encode() + b"\r")
        return await self.read_until(b"OK\r\n", b"ERROR\r\n", b"ERROR: ", b"> ")


async def test_modem_to_modem_loopback_over_memory_streams(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        await _loopback()


async def _loopback() -> None:
    async with trio.open_nursery() as nursery:
        network = VirtualNetwork(CONFIG, now=trio.current_time())
        await nursery.start(serve_network, network)
        hosts = []
        for msisdn in ("447700900001", "447700900002"):
            modem = VirtualModem(network, msisdn, CONFIG)
            host_side, modem_side = trio.testing.memory_stream_pair()
            nursery.start_soon(modem.serve, modem_side)
            host = Host(host_side)
            assert (await host.command("ATE0")).endswith(b"OK\r\n")
            assert await host.command("AT+CMEE=1;+CNMI=2,1,0,2,0") == b"\r\nOK\r\n"
            hosts.append(host)
        a, b = hosts
        tpdu = SmsSubmit(
            destination=Address.international("447700900002"), user_data=b"loop", status_report_request=True
        ).to_bytes()
        assert await a.command(f"AT+CMGS={len(tpdu)}") == b"\r\n> "
        await a.stream.send_all(encode_with_smsc(tpdu).hex().encode() + b"\x1a")
        assert await a.read_until(b"OK\r\n") == b"\r\n+CMGS: 0\r\n\r\nOK\r\n"
        assert await b.read_until(b"\r\n+CMTI: \"SM\",1\r\n") == b'\r\n+CMTI: "SM",1\r\n'
        assert await a.read_until(b"\r\n+CDSI: \"SM\",1\r\n")
        answer = await b.command("AT+CMGR=1")
        _, tpdu_in = split_smsc(bytes.fromhex(answer.split(b"\r\n")[2].decode()))
        message = SmsDeliver.from_bytes(tpdu_in)
        assert message.originator.number == "447700900001"
        nursery.cancel_scope.cancel()


def _talk_over_serial(path: str) -> list[bytes]:
    """Open the pty link as a host would, twice (close and reopen), and collect the answers."""
    answers = []
    for _ in range(2):
        with serial.Serial(path, 115200, timeout=5) as port:
            port.write(b"ATE0\r")
            answers.append(port.read_until(b"OK\r\n"))
            port.write(b"AT+CGMI\r")
            answers.append(port.read_until(b"OK\r\n"))
    return answers


async def test_pty_link_survives_reopen(tmp_path: Path) -> None:
    link = tmp_path / "modem0"
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            network = VirtualNetwork(CONFIG, now=trio.current_time())
            await nursery.start(serve_network, network)
            modem = VirtualModem(network, "447700900001", CONFIG)
            path = await nursery.start(serve_pty, modem, link)
            assert path == link and os.path.realpath(link).startswith("/dev/pts/")
            answers = await trio.to_thread.run_sync(_talk_over_serial, str(link))
            assert answers[1] == b"\r\nsmsgw\r\n\r\nOK\r\n"
            assert answers[3] == b"\r\nsmsgw\r\n\r\nOK\r\n"
            nursery.cancel_scope.cancel()
    assert not link.exists() and not link.is_symlink()


def test_cli_virtual_modem_prints_link_answers_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    link = tmp_path / "modem"
    process = subprocess.Popen(
        [sys.executable, "-m", "smsgw", "--log-level", "WARNING", "virtual-modem", "--link", str(link)]
        + ["--persona", "sim800"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"virtual modem 447700900001 on {link} (Ctrl-C stops)"
        with serial.Serial(str(link), 115200, timeout=5) as port:
            port.write(b"ATE0;+CGMM\r")
            assert port.read_until(b"OK\r\n").endswith(b"\r\nSIMCOM_SIM800\r\n\r\nOK\r\n")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        assert not link.is_symlink()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


class _FdHost:
    """The host end of a pty, as `Host` reads a stream."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def send_all(self, data: bytes) -> None:
        await trio.to_thread.run_sync(os.write, self._fd, data)

    async def receive_some(self, max_bytes: int) -> bytes:
        return await trio.to_thread.run_sync(os.read, self._fd, max_bytes)


async def _submit_with_echo_off_and_delay(host: Host) -> None:
    """With echo off nothing goes out when the PDU is typed; the result, held back `submit_delay_s`, must still come
    when its timer fires, and what follows the held result is answered after it."""
    assert await host.command("ATE0") == b"ATE0\r\r\nOK\r\n"
    tpdu = SmsSubmit(destination=Address.international("447700900123"), user_data=b"late").to_bytes()
    assert await host.command(f"AT+CMGS={len(tpdu)}") == b"\r\n> "
    started = trio.current_time()
    await host.stream.send_all(encode_with_smsc(tpdu).hex().encode() + b"\x1aAT\r")
    assert await host.read_until(b"OK\r\n") == b"\r\n+CMGS: 0\r\n\r\nOK\r\n"
    assert trio.current_time() - started >= DELAYED.submit_delay_s
    assert await host.read_until(b"OK\r\n") == b"\r\nOK\r\n"


DELAYED = VirtualNetworkConfig(delivery_delay_s=0.0, sim_ready_delay_s=0.0, registration_delay_s=0.0,
                               submit_delay_s=0.2)


async def test_held_result_with_echo_off_goes_out_over_a_stream(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            network = VirtualNetwork(DELAYED, now=trio.current_time())
            await nursery.start(serve_network, network)
            host_side, modem_side = trio.testing.memory_stream_pair()
            nursery.start_soon(VirtualModem(network, "447700900001", DELAYED).serve, modem_side)
            await _submit_with_echo_off_and_delay(Host(host_side))
            nursery.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def _host_on_a_pty(tmp_path: Path, config: VirtualNetworkConfig) -> AsyncIterator[Host]:
    """A virtual modem on its own network and pty, and a host that opened the pty's device."""
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            network = VirtualNetwork(config, now=trio.current_time())
            await nursery.start(serve_network, network)
            link = await nursery.start(serve_pty, VirtualModem(network, "447700900001", config), tmp_path / "m")
            fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
            try:
                yield Host(_FdHost(fd))  # type: ignore[arg-type]
            finally:
                os.close(fd)
            nursery.cancel_scope.cancel()


async def test_held_result_with_echo_off_goes_out_over_a_pty(tmp_path: Path) -> None:
    async with _host_on_a_pty(tmp_path, DELAYED) as host:
        await _submit_with_echo_off_and_delay(host)


async def test_answers_the_pty_cannot_take_at_once_follow_in_order(tmp_path: Path) -> None:
    """A host that types many commands before it reads: the pty's buffer fills, the rest of the answers waits for
    room and nothing is lost or reordered (as long as it fits the modem's output buffer)."""
    config = VirtualNetworkConfig(sim_ready_delay_s=0.0, registration_delay_s=0.0)
    async with _host_on_a_pty(tmp_path, config) as host:
        assert (await host.command("ATE0")).endswith(b"OK\r\n")
        one = await host.command("AT+CLAC")
        commands = [f"AT+CLAC;+CMGD=?;S0={n % 10}".encode() + b"\r" for n in range(60_000 // len(one))]
        for batch in (commands[: len(commands) // 2], commands[len(commands) // 2 :]):
            await host.stream.send_all(b"".join(batch))
            await trio.sleep(0.2)  # the modem answers while the host does not read
        expected = len(commands) * (one[: -len(b"\r\nOK\r\n")] + b"+CMGD: (),(0-4)\r\n\r\nOK\r\n")
        received = b""
        while len(received) < len(expected):
            received += await host.stream.receive_some(65536)
        assert received == expected
