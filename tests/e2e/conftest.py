"""The whole gateway as `smsgw demo` runs it (virtual modems on real ptys, the real driver, SQLite, the SMPP
server on a real socket on port 0), with the delays of `harness.FAST`; and the child processes of a test."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from harness import FAST
from smsgw.app import GatewayStarted, run_demo
from processes import Process


@pytest.fixture
async def gateway(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[GatewayStarted]:
    stop = trio.Event()
    started: GatewayStarted = await nursery.start(
        functools.partial(run_demo, port=0, modems=4, db_path=str(tmp_path / "gateway.db"), base=FAST, stop=stop)
    )
    yield started
    stop.set()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Child processes a test starts; stopped (SIGTERM, then SIGKILL) in reverse order afterwards."""
    started: list[Process] = []
    yield started
    for process in reversed(started):
        process.stop()
