"""Shared by the end-to-end tests: the shortened timings of a test gateway, and a way to call blocking smpplib
code from Trio. (Test modules import this, not conftest, whose module name other test directories share.)"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import trio

from smsgw.config import AccountConfig, Config, MessageConfig, SmppConfig, VirtualNetworkConfig
from smsgw.passwords import hash_password

T = TypeVar("T")

SHOP_PASSWORD = "shop-pw"
# The demo's configuration with a second account and delays cut from seconds and minutes to tenths of a second.
FAST = Config(
    smpp=SmppConfig(bind_failure_delay_base_s=0.01, shutdown_grace_s=1.0),
    accounts=(AccountConfig(system_id="shop", password_hash=hash_password(SHOP_PASSWORD), keywords=("SHOP",)),),
    messages=MessageConfig(
        min_validity_s=1.0,
        retry_backoff_base_s=0.2,
        retry_backoff_max_s=1.0,
        status_report_grace_s=1.0,
        outbox_redelivery_delay_s=0.3,
    ),
    virtual_network=VirtualNetworkConfig(delivery_delay_s=0.05, retry_interval_s=0.3, mt_interval_s=0.05),
)


async def in_thread(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run a blocking smpplib call; the thread is abandoned (not awaited) only if the test is cancelled."""
    return await trio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), abandon_on_cancel=True)


async def read_store(db: str, query: str, *parameters: object) -> tuple[Any, ...] | None:
    """The first row of `query` on a running gateway's SQLite file, read as an outsider (read-only), once the
    gateway has written its accepted messages in full: it acknowledges uncharged ones after a compact intake row
    and writes their message rows within moments (`smsgw.scheduler.sqlite.accepting`)."""

    def intake_empty() -> bool:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            return not connection.execute("SELECT EXISTS (SELECT 1 FROM intake)").fetchone()[0]

    def read() -> tuple[Any, ...] | None:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            row: tuple[Any, ...] | None = connection.execute(query, parameters).fetchone()
            return row

    with trio.fail_after(10):  # a bound on a hang, not a timing assertion
        while not await trio.to_thread.run_sync(intake_empty):
            await trio.sleep(0.01)
    return await trio.to_thread.run_sync(read)
