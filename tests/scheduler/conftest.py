from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

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
