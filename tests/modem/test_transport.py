"""SerialStream on a real pty: Trio I/O on the descriptor, a vanished device, a missing one."""

from __future__ import annotations

import os
import tty
from pathlib import Path

import pytest
import trio

from smsgw.modem.transport import PortOpenError, open_serial


async def test_pty_round_trip_and_hang_up() -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    try:
        stream = open_serial(os.ttyname(slave), 115200, rtscts=False)
        with trio.fail_after(10):
            await stream.send_all(b"AT\r")
            await trio.lowlevel.wait_readable(master)
            assert os.read(master, 100) == b"AT\r"

            async def answer_later() -> None:
                await trio.sleep(0.01)
                os.write(master, b"\r\nOK\r\n")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(answer_later)
                received = b""
                while not received.endswith(b"OK\r\n"):
                    received += await stream.receive_some()
            assert received == b"\r\nOK\r\n"
            os.close(master)
            master = -1
            with pytest.raises(trio.BrokenResourceError):
                await stream.receive_some()
        await stream.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await stream.send_all(b"AT\r")
    finally:
        if master >= 0:
            os.close(master)
        os.close(slave)


def test_missing_device_is_a_port_open_error(tmp_path: Path) -> None:
    with pytest.raises(PortOpenError, match="ttyUSB9"):
        open_serial(str(tmp_path / "ttyUSB9"), 115200, rtscts=False)
