"""What is particular to the PostgreSQL engine: several nodes (stores) on one database at once, the schema
version a node refuses, and the statement translation. The Protocol itself is test_store.py's, on both engines."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import trio

from smsgw.config import StoreConfig
from smsgw.scheduler.migrations import MIGRATIONS, SchemaTooNew
from smsgw.scheduler.postgres.connection import translate
from smsgw.scheduler.store import MessageStore, open_store
from tests.scheduler.test_store import T0, new_message

Node = Callable[[], AbstractAsyncContextManager[MessageStore]]


@pytest.fixture
def node(postgres_url: str, tmp_path: Path) -> Node:
    """Opens one more node's store on the test's database."""
    config = StoreConfig(path=str(tmp_path / "status"), url=postgres_url)
    return lambda: open_store(config)


async def test_two_nodes_never_claim_the_same_segment(node: Node) -> None:
    async with node() as a, node() as b:
        for _ in range(40):
            await a.accept([new_message(segments=2)])
        claimed: list[list[int]] = [[], []]

        async def claim(index: int, store: MessageStore) -> None:
            while handoffs := await store.claim_due(T0, 3):
                claimed[index].extend(h.segment_rowid for h in handoffs)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(claim, 0, a)
            nursery.start_soon(claim, 1, b)
        assert len(claimed[0]) + len(claimed[1]) == 80
        assert len(set(claimed[0]) | set(claimed[1])) == 80


async def test_two_nodes_charging_one_account_never_overdraw(node: Node) -> None:
    async with node() as a, node() as b:
        await a.topup("acme", 1000, T0)
        accepted: list[bool] = []

        async def submit(store: MessageStore) -> None:
            accepted.extend(await store.accept([new_message(price=30)]))

        async with trio.open_nursery() as nursery:
            for i in range(60):
                nursery.start_soon(submit, (a, b)[i % 2])
        assert accepted.count(True) == 33
        assert await b.balance("acme") == 10
        charges = [e for e in await a.ledger("acme", 100) if e.kind == "charge"]
        # Every ledger row's balance is the one before it less its charge: no two nodes charged from one reading.
        assert sorted(e.balance_after_micro for e in charges) == list(range(10, 1000, 30))


async def test_two_nodes_claim_disjoint_outbox_items(node: Node) -> None:
    async with node() as a, node() as b:
        for _ in range(10):
            message = new_message()
            await a.accept([message])
            (handoff,) = await a.claim_due(T0, 1)
            await a.record_failure(handoff.segment_rowid, temporary=False, error_code=1, retry_at_ms=T0,
                                   now_ms=T0 + 1)
        ids: list[set[str]] = []

        async def claim(store: MessageStore, name: str) -> None:
            claimed = await store.outbox_claim("acme", name, T0 + 2, T0 + 60_000, 6)
            ids.append({entry.item_id for entry in claimed.entries})

        async with trio.open_nursery() as nursery:  # at once: each node's claim skips the items the other holds
            nursery.start_soon(claim, a, "a")
            nursery.start_soon(claim, b, "b")
        assert sorted(map(len, ids)) == [4, 6]
        assert not ids[0] & ids[1]


async def test_another_nodes_work_wakes_this_node_only_when_due_before_it_looks_anyway(node: Node) -> None:
    """Another node's NOTIFY carries the earliest due time of what it committed: later work (a message scheduled
    ahead) does not wake this node's dispatcher, which looks at its own next due time anyway; earlier work does."""
    async with node() as a, node() as b:
        woken = b.work_event()
        b.watch_work_before(T0 + 3_600_000)
        await a.accept([new_message(start_ms=T0 + 7_200_000)])
        with trio.move_on_after(2):  # ten times the listener's wait for a notification
            await woken.wait()
        assert not woken.is_set()
        await a.accept([new_message(start_ms=T0 + 60_000)])
        with trio.fail_after(30):
            await woken.wait()


async def test_a_node_refuses_a_schema_newer_than_it_knows(node: Node, postgres_url: str) -> None:
    async with node():
        pass
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("UPDATE schema_version SET version = %s", (len(MIGRATIONS) + 1,))
    with pytest.raises(SchemaTooNew):
        async with node():
            pass


def test_translate_placeholders_hints_and_types() -> None:
    assert translate("SELECT a FROM t INDEXED BY t_due WHERE b = ? AND c > ?") == (
        "SELECT a FROM t WHERE b = $1 AND c > $2", None
    )
    # Numbered parameters are repeated in order; a bare NULL test gets a type PostgreSQL can infer.
    assert translate("SELECT 1 WHERE ?1 IS NULL OR x = ?1 LIMIT ?2") == (
        "SELECT 1 WHERE CAST($1 AS TEXT) IS NULL OR x = $2 LIMIT $3", (0, 0, 1)
    )
    assert translate("SELECT '5%' || ?") == ("SELECT '5%' || $1", None)
    assert translate("BEGIN IMMEDIATE") == ("BEGIN", None)
    ddl, _ = translate(
        "CREATE TABLE s (id INTEGER PRIMARY KEY, m INTEGER NOT NULL REFERENCES m (id) ON DELETE CASCADE, b BLOB)"
    )
    assert ddl == "CREATE TABLE s (id BIGSERIAL PRIMARY KEY, m BIGINT NOT NULL, b BYTEA)"
    assert translate("CREATE TABLE k (n TEXT PRIMARY KEY) WITHOUT ROWID")[0] == "CREATE TABLE k (n TEXT PRIMARY KEY)"

