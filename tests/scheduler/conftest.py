from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from smsgw.config import StoreConfig
from smsgw.scheduler.sqlite_store import SqliteStore, open_store


@pytest.fixture
def store_config() -> StoreConfig:
    # NORMAL keeps the tests off fsync; durability under kill -9 is the same in WAL mode.
    return StoreConfig(synchronous="NORMAL")


@pytest.fixture
async def store(tmp_path: Path, store_config: StoreConfig) -> AsyncIterator[SqliteStore]:
    async with open_store(tmp_path / "store.db", store_config) as opened:
        yield opened


@pytest.fixture
def db_clock() -> MockClock:
    """`MockClock(autojump_threshold=0)` that does not jump while a worker thread runs.

    The store runs SQLite in `trio.to_thread`; to plain autojump a task waiting for its thread looks idle, so the
    clock would leap to the next deadline (a retry, a purge tick) in the middle of a commit.
    """
    clock = MockClock(autojump_threshold=0)
    jump = clock._autojump

    def jump_when_idle() -> None:
        if not trio.to_thread.current_default_thread_limiter().borrowed_tokens:
            jump()

    clock._autojump = jump_when_idle  # type: ignore[method-assign]
    return clock
