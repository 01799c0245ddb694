"""The store's bind registry (`smsgw.smpp_server.binds.BindStore`) on every engine: an account's `max_binds`
counted over every node's binds, leases that free a dead node's binds, and the counts a node's throughput share
follows. Two opens of one database are two nodes."""

from __future__ import annotations

from typing import Final

import trio

from smsgw.smpp_server.binds import BindCounts
from smsgw.scheduler.store import MessageStore
from tests.scheduler.conftest import StoreFactory
from tests.scheduler.test_store import T0

LEASE: Final = 30_000


async def take(store: MessageStore, node: str, connection: int, *, limit: int = 2, at: int = T0,
               account: str = "acme") -> BindCounts | None:
    return await store.bind_take(node, account, connection, limit, at, at + LEASE)


async def test_max_binds_counts_every_nodes_binds_and_an_unbind_frees_one(store_factory: StoreFactory) -> None:
    async with store_factory() as a, store_factory() as b:
        assert await take(a, "a", 1) == BindCounts(1, 1)
        assert await take(b, "b", 1) == BindCounts(1, 2)  # the same connection number on another node: its own
        assert await take(a, "a", 2) is None  # refused: a holds one, b the other
        assert await take(a, "a", 3, account="other") == BindCounts(1, 1)  # other accounts count apart
        assert await b.bind_drop("b", 1, T0) == BindCounts(0, 1)  # the account's counts seen from b
        assert await b.bind_drop("b", 1, T0) is None  # gone already
        assert await take(a, "a", 2) == BindCounts(2, 2)


async def test_a_dead_nodes_binds_count_until_their_lease_ends(store_factory: StoreFactory) -> None:
    async with store_factory() as a, store_factory() as b:
        assert await take(a, "a", 1, limit=1) == BindCounts(1, 1)
        assert await take(b, "b", 1, limit=1, at=T0 + LEASE - 1) is None  # a's bind still counts
        assert await take(b, "b", 1, limit=1, at=T0 + LEASE) == BindCounts(1, 1)  # a went quiet a lease ago


async def test_the_heartbeat_keeps_a_nodes_binds_and_reports_each_accounts_counts(
    store_factory: StoreFactory,
) -> None:
    async with store_factory() as a, store_factory() as b:
        for connection in (1, 2):
            await take(a, "a", connection, limit=3)
        await take(b, "b", 1, limit=3)
        await take(b, "b", 2, limit=3, account="other")
        assert await a.binds_renew("a", [], T0 + LEASE - 1, T0 + 2 * LEASE) == {"acme": BindCounts(2, 3)}
        # b missed its heartbeat: its bind of acme stops counting, a's renewed ones still count.
        assert await take(b, "b", 3, limit=3, at=T0 + LEASE) == BindCounts(1, 3)
        # b is alive after all: its renewal holds every bind it has again.
        assert await b.binds_renew("b", [], T0 + LEASE, T0 + 2 * LEASE) == {
            "acme": BindCounts(1, 3), "other": BindCounts(1, 1),
        }
        # An unbind whose delete failed is done by the heartbeat; the node's other binds stay.
        assert await a.binds_renew("a", [2], T0 + LEASE, T0 + 2 * LEASE) == {"acme": BindCounts(1, 2)}
        assert await a.binds_renew("a", [1], T0 + LEASE, T0 + 2 * LEASE) == {}
        # A renewal deletes whatever lease ended on any node.
        assert await a.binds_renew("a", [], T0 + 2 * LEASE, T0 + 3 * LEASE) == {}
        assert await take(a, "a", 3, limit=1, at=T0 + 2 * LEASE) == BindCounts(1, 1)


async def test_a_node_starting_clears_its_previous_runs_binds_only(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        await take(store, "a", 1)
        await take(store, "a", 2, account="other")
        await take(store, "b", 1)
    async with store_factory() as store:
        assert await store.binds_clear("a") == 2
        assert await store.binds_clear("a") == 0
        assert await take(store, "a", 1, limit=2) == BindCounts(1, 2)  # b's bind still counts


async def test_binds_at_the_same_instant_on_two_nodes_never_pass_the_limit(store_factory: StoreFactory) -> None:
    """Each node's writer takes its binds in its own transactions while the other's do: the account's lock
    orders them, so of 17 binds exactly `limit` pass."""
    taken: list[str] = []

    async def bind(store: MessageStore, node: str, connection: int) -> None:
        if await take(store, node, connection, limit=3) is not None:
            taken.append(f"{node}{connection}")

    async with store_factory() as a, store_factory() as b, trio.open_nursery() as nursery:
        await bind(a, "a", 100)  # the account is known already: its row is there to lock
        for connection in range(8):
            nursery.start_soon(bind, a, "a", connection)
            nursery.start_soon(bind, b, "b", connection)
    assert len(taken) == 3
    async with store_factory() as store:
        assert await take(store, "c", 1, limit=3) is None
