"""The whole gateway as `smsgw demo` runs it (virtual modems on real ptys, the real driver, SQLite, the SMPP
server on a real socket on port 0), with the network's and the scheduler's delays shortened so a test takes
seconds, not hours."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import trio

from smsgw.app import GatewayStarted, run_demo
from smsgw.config import AccountConfig, Config, MessageConfig, SmppConfig, VirtualNetworkConfig
from smsgw.passwords import hash_password

from processes import Process

T = TypeVar("T")

SHOP_PASSWORD = "shop-pw"
FAST = Config(
    smpp=SmppConfig(bind_failure_delay_base_s=0.01, shutdown_grace_s=1.0),
    accounts=(AccountConfig(system_id="shop", password_hash=hash_password(SHOP_PASSWORD)),),
    messages=MessageConfig(
        min_validity_s=1.0,
        retry_backoff_base_s=0.2,
        retry_backoff_max_s=1.0,
        status_report_grace_s=1.0,
        outbox_redelivery_delay_s=0.3,
    ),
    virtual_network=VirtualNetworkConfig(delivery_delay_s=0.05, retry_interval_s=0.3),
)


@pytest.fixture
async def gateway(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[GatewayStarted]:
    stop = trio.Event()
    started: GatewayStarted = await nursery.start(
        functools.partial(run_demo, port=0, modems=4, db_path=str(tmp_path / "gateway.db"), base=FAST, stop=stop)
    )
    yield started
    stop.set()


async def in_thread(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run a blocking smpplib call; the thread is abandoned (not awaited) only if the test is cancelled."""
    return await trio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), abandon_on_cancel=True)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Child processes a test starts; stopped (SIGTERM, then SIGKILL) in reverse order afterwards."""
    started: list[Process] = []
    yield started
    for process in reversed(started):
        process.stop()
