"""A virtual modem on a real pseudo-terminal: the slave end, symlinked at a path, looks like a USB modem's serial
device to gammu, python-gsmmodem, Kannel or smsgw's own driver; the modem answers on the master end.

We keep our own descriptor of the slave open, so the master never sees a hang-up: the host may close the port
and open it again (as gammu does for every command) and finds the same modem, SIM storage and all.
"""

from __future__ import annotations

import logging
import os
import termios
import tty
from pathlib import Path

import trio

from smsgw.config import VirtualNetworkConfig
from smsgw.modem.virtual.modem import VirtualModem
from smsgw.modem.virtual.persona import GENERIC_PERSONA, ModemPersona
from smsgw.modem.virtual.network import VirtualNetwork, serve_network

log = logging.getLogger(__name__)


class LinkError(Exception):
    """The link path cannot be created (a regular file or directory is in the way, or no permission)."""


def _replace_link(link: Path, target: str) -> None:
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise LinkError(f"{link} exists and is not a symlink; refusing to replace it")
    try:
        link.symlink_to(target)
    except OSError as error:
        raise LinkError(f"cannot create {link}: {error.strerror}") from None


async def serve_pty(
    modem: VirtualModem, link: str | Path, *, task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve `modem` on a new pty whose slave is symlinked at `link` until cancelled; reports the link path
    through `task_status` once a host can open it. Removes the link on the way out if it still points at us."""
    link = Path(link)
    master, slave = os.openpty()
    slave_name = os.ttyname(slave)
    try:
        # Raw: no echo, no line editing, no CR/LF translation, 8 bits, as a serial modem line is.
        tty.setraw(slave, termios.TCSANOW)
        _replace_link(link, slave_name)
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    log.info("virtual modem on pty msisdn=%s link=%s device=%s", modem.msisdn, link, slave_name)
    os.set_blocking(master, False)
    try:
        task_status.started(link)
        await modem.serve_fd(master)
    finally:
        trio.lowlevel.notify_closing(master)
        os.close(master)
        os.close(slave)
        if link.is_symlink() and os.readlink(link) == slave_name:
            link.unlink()


async def run_standalone(
    link: str | Path,
    msisdn: str,
    config: VirtualNetworkConfig,
    *,
    pin: str | None = None,
    persona: ModemPersona = GENERIC_PERSONA,
    task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
) -> None:
    """One virtual modem on its own virtual network, on a pty at `link`, until cancelled."""
    network = VirtualNetwork(config, now=trio.current_time())
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_network, network)
        modem = VirtualModem(network, msisdn, config, pin=pin, persona=persona)
        path = await nursery.start(serve_pty, modem, link)
        task_status.started(path)
