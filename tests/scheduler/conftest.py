from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from pathlib import Path
from typing import Final

import pytest

from smsgw.config import StoreConfig
from smsgw.scheduler.model import OutboxEntry
from smsgw.scheduler.store import MessageStore, open_store

# Opens the one database of a test, as often as the test asks (a reopen is a restart of the gateway).
StoreFactory = Callable[[], AbstractAsyncContextManager[MessageStore]]

# The engines the store contract (test_store.py, and every test taking `store`) runs over, each on a fresh
# database per test (`store_factory`). PostgreSQL's tests skip when no server is reachable (tests/conftest.py
# `require_postgres`), and fail instead in CI.
ENGINES: Final = ("sqlite", "postgresql")


# Later than any test's clock: every claim has ended by then.
_AFTER_EVERY_CLAIM_MS: Final = 1 << 60


async def outbox_items(store: MessageStore, account: str) -> list[OutboxEntry]:
    """What waits in the account's outbox, whoever held it: claimed for a node no test runs, when all claims ended."""
    claim = await store.outbox_claim(account, "inspector", _AFTER_EVERY_CLAIM_MS, _AFTER_EVERY_CLAIM_MS + 1, 1000)
    return list(claim.entries)


@pytest.fixture
def store_config() -> StoreConfig:
    # NORMAL keeps the tests off fsync; durability under kill -9 is the same in WAL mode.
    return StoreConfig(synchronous="NORMAL")


@pytest.fixture(params=ENGINES)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path, store_config: StoreConfig) -> StoreFactory:
    config = replace(store_config, path=str(tmp_path / "store.db"))
    if request.param == "postgresql":
        config = replace(config, url=request.getfixturevalue("postgres_url"))
    return lambda: open_store(config)


@pytest.fixture
async def store(store_factory: StoreFactory) -> AsyncIterator[MessageStore]:
    async with store_factory() as opened:
        yield opened
