"""Serial port as a Trio stream: pyserial opens and configures the port, Trio waits on its file descriptor.

No thread per port: the descriptor is non-blocking and `trio.lowlevel.wait_readable/wait_writable` park the task,
so a rack of modems costs one file descriptor each. A USB modem that is unplugged makes reads fail with EIO/ENXIO
or return end of file; both surface as `trio.BrokenResourceError`, and the driver re-opens the port later.
"""

from __future__ import annotations

import errno
import logging
import os
import termios
from typing import Final

import serial
import trio

log = logging.getLogger(__name__)

_READ_SIZE: Final = 4096
# errno values a vanished USB serial device (or a closed pty master) produces.
_GONE: Final = frozenset({errno.EIO, errno.ENXIO, errno.ENODEV, errno.EBADF})


class PortOpenError(Exception):
    """The device could not be opened or configured (missing, busy, permission denied)."""


class SerialStream(trio.abc.Stream):
    def __init__(self, port: serial.Serial) -> None:
        self._port = port
        self._fd: int = port.fileno()
        os.set_blocking(self._fd, False)
        # pyserial leaves VMIN=0 (it polls with select), which makes an empty tty read return b"" like a hang-up.
        # With VMIN=1 an empty non-blocking read raises EAGAIN, and b"" means the device really went away.
        attributes = termios.tcgetattr(self._fd)
        attributes[6][termios.VMIN] = 1
        attributes[6][termios.VTIME] = 0
        termios.tcsetattr(self._fd, termios.TCSANOW, attributes)
        self._closed = False

    @property
    def name(self) -> str:
        return str(self._port.port)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        # The driver has one writer per port (under its command lock) and one reader task.
        view = memoryview(data)
        while view:
            self._check_open()
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._fd)
                continue
            except OSError as exc:
                raise _broken(exc) from exc
            view = view[written:]
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        self._check_open()
        await trio.lowlevel.wait_writable(self._fd)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        # Wait first, then read: the driver's reader asks again as soon as it parsed the last chunk, when the modem
        # has almost never answered yet, so reading first cost a read that fails (EAGAIN) and, once data came, a
        # second scheduling round for the checkpoint. The wait is this call's checkpoint.
        while True:
            self._check_open()
            await trio.lowlevel.wait_readable(self._fd)
            try:
                data = os.read(self._fd, max_bytes or _READ_SIZE)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise _broken(exc) from exc
            if not data:
                # A tty returns end of file only when its device went away.
                raise trio.BrokenResourceError(f"serial port {self.name} closed by the device")
            return data

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self._fd)
            self._port.close()
        await trio.lowlevel.checkpoint()

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("serial port closed")


def _broken(exc: OSError) -> Exception:
    if exc.errno in _GONE:
        return trio.BrokenResourceError(f"serial device gone: {exc.strerror}")
    return exc


def open_serial(path: str, baudrate: int, rtscts: bool) -> SerialStream:
    """Open and configure `path` (8N1, raw); raises `PortOpenError` when the device is absent or busy."""
    try:
        port = serial.Serial(
            path,
            baudrate=baudrate,
            rtscts=rtscts,
            timeout=0,
            write_timeout=0,
            exclusive=True,
        )
    except (serial.SerialException, OSError, ValueError) as exc:
        raise PortOpenError(f"cannot open {path}: {exc}") from exc
    log.info("serial port opened port=%s baudrate=%d rtscts=%s", path, baudrate, rtscts)
    return SerialStream(port)
