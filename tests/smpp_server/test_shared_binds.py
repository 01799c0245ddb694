"""Two SMPP servers (nodes) on one store's bind registry, under MockClock: an account's `max_binds` counted over
both, a dead node's binds freed when their lease ends, each node's throughput its part of the account's binds."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Final

import pytest
import trio
from trio.testing import MockClock

from smsgw.config import AccountConfig, Config, StoreConfig
from smsgw.pdu.constants import CommandStatus
from smsgw.pdu.smpp import Unbind
from smsgw.scheduler.store import MessageStore, open_store
from smsgw.scheduler.timing import WallClock
from smsgw.smpp_server.binds import BindCounts, BindStore, SharedBinds
from smsgw.smpp_server.server import SmppServer

from smpp_backend_double import DoubleBackend
from smpp_harness import SUBMIT, Client, make_config, running_server

LEASE_S: Final = 30.0
# Long enough for the next heartbeat (every third of the lease) to have renewed and counted.
PAST_A_HEARTBEAT_S: Final = LEASE_S / 3 + 1.0
ACCOUNT: Final = make_config().accounts[0]


class FailingDeletes:
    """`store`'s registry, but every unbind's delete fails (the store unreachable for a moment)."""

    def __init__(self, store: MessageStore) -> None:
        self.bind_take = store.bind_take
        self.binds_renew = store.binds_renew
        self.binds_clear = store.binds_clear

    async def bind_drop(self, node: str, connection: int, now_ms: int) -> BindCounts | None:
        raise sqlite3.OperationalError("disk I/O error")


class Unreachable:
    """A registry in a store that cannot be reached once the node started."""

    async def binds_clear(self, node: str) -> int:
        return 0

    async def bind_take(
        self, node: str, account: str, connection: int, limit: int, now_ms: int, until_ms: int
    ) -> BindCounts | None:
        raise sqlite3.OperationalError("unable to open database file")

    async def bind_drop(self, node: str, connection: int, now_ms: int) -> BindCounts | None:
        raise sqlite3.OperationalError("unable to open database file")

    async def binds_renew(
        self, node: str, dropped: Sequence[int], now_ms: int, until_ms: int
    ) -> dict[str, BindCounts]:
        raise sqlite3.OperationalError("unable to open database file")


@asynccontextmanager
async def two_nodes(
    tmp_path: Path, account: AccountConfig, a_registry: Callable[[MessageStore], BindStore] = lambda store: store
) -> AsyncIterator[tuple[SmppServer, SmppServer, MessageStore, WallClock]]:
    """Nodes a and b on one store; a's registry is `a_registry` of it."""
    config = Config(smpp=make_config().smpp, accounts=(account,))
    clock = WallClock()
    async with open_store(StoreConfig(path=str(tmp_path / "store.db"), synchronous="NORMAL")) as store:
        a_binds = SharedBinds(a_registry(store), "a", LEASE_S, clock.now_ms)
        b_binds = SharedBinds(store, "b", LEASE_S, clock.now_ms)
        async with (
            running_server(config, DoubleBackend(), a_binds) as a,
            running_server(config, DoubleBackend(), b_binds) as b,
        ):
            yield a, b, store, clock


def client(server: SmppServer, nursery: trio.Nursery, n: int) -> Client:
    return Client(server, nursery, peer=(f"127.0.0.{n}", 40000))  # an address each: no refusal delays another


async def test_max_binds_holds_over_both_nodes_for_as_long_as_the_bind_lasts(
    tmp_path: Path, db_clock: MockClock
) -> None:
    async with two_nodes(tmp_path, replace(ACCOUNT, max_binds=1)) as (a, b, store, _), \
            trio.open_nursery() as nursery:
        first = client(a, nursery, 1)
        writes = store.operations()
        assert (await first.bind()).command_status == CommandStatus.ESME_ROK
        assert [(await first.request(SUBMIT)).command_status for _ in range(3)] == [CommandStatus.ESME_ROK] * 3
        assert store.operations() == writes + 1  # the bind's row; nothing per PDU
        second = client(b, nursery, 2)
        assert (await second.bind()).command_status == CommandStatus.ESME_RALYBND
        await second.wait_closed()
        refusal = b.audit.recent()[0]
        assert (refusal.event, refusal.outcome, refusal.command_status) == (
            "bind", "too many binds", CommandStatus.ESME_RALYBND
        )
        await trio.sleep(3 * LEASE_S)  # a's heartbeat holds its bind however long it lasts
        assert (await client(b, nursery, 3).bind()).command_status == CommandStatus.ESME_RALYBND
        assert (await first.request(Unbind(sequence_number=0))).command_status == CommandStatus.ESME_ROK
        await first.wait_closed()
        assert (await client(b, nursery, 4).bind()).command_status == CommandStatus.ESME_ROK
        nursery.cancel_scope.cancel()


async def test_a_dead_nodes_bind_is_free_once_its_lease_ends(tmp_path: Path, db_clock: MockClock) -> None:
    async with two_nodes(tmp_path, replace(ACCOUNT, max_binds=1)) as (a, _, store, clock), \
            trio.open_nursery() as nursery:
        now = clock.now_ms()
        # Node c bound, then was killed: its row is there, and no heartbeat renews it.
        assert await store.bind_take("c", ACCOUNT.system_id, 1, 1, now, now + int(LEASE_S * 1000)) is not None
        assert (await client(a, nursery, 1).bind()).command_status == CommandStatus.ESME_RALYBND
        await trio.sleep(LEASE_S)
        assert (await client(a, nursery, 2).bind()).command_status == CommandStatus.ESME_ROK
        nursery.cancel_scope.cancel()


async def test_each_node_allows_its_part_of_the_binds_of_the_rate(tmp_path: Path, db_clock: MockClock) -> None:
    account = replace(ACCOUNT, max_binds=3, throughput_per_s=9.0, throughput_burst=9)
    async with two_nodes(tmp_path, account) as (a, b, _, _), trio.open_nursery() as nursery:
        for n in (1, 2):
            assert (await client(a, nursery, n).bind()).command_status == CommandStatus.ESME_ROK
        assert a.bucket(account).rate_per_s == 9.0  # a holds every bind there is
        on_b = client(b, nursery, 3)
        assert (await on_b.bind()).command_status == CommandStatus.ESME_ROK
        assert (b.bucket(account).rate_per_s, b.bucket(account).burst) == pytest.approx((3.0, 3.0))  # at its bind
        await trio.sleep(PAST_A_HEARTBEAT_S)  # a learns of b's bind at its heartbeat
        assert (a.bucket(account).rate_per_s, a.bucket(account).burst) == pytest.approx((6.0, 6.0))
        statuses = [(await on_b.request(SUBMIT)).command_status for _ in range(4)]
        assert statuses == [CommandStatus.ESME_ROK] * 3 + [CommandStatus.ESME_RTHROTTLED]
        assert (await on_b.request(Unbind(sequence_number=0))).command_status == CommandStatus.ESME_ROK
        await on_b.wait_closed()
        await trio.sleep(PAST_A_HEARTBEAT_S)
        assert a.bucket(account).rate_per_s == 9.0
        assert b.bucket(account).rate_per_s == 9.0  # no binds of the account: its HTTP traffic is not divided
        nursery.cancel_scope.cancel()


async def test_an_unbind_the_store_could_not_record_is_recorded_by_the_next_heartbeat(
    tmp_path: Path, db_clock: MockClock
) -> None:
    async with two_nodes(tmp_path, replace(ACCOUNT, max_binds=1), FailingDeletes) as (a, b, _, _), \
            trio.open_nursery() as nursery:
        first = client(a, nursery, 1)
        assert (await first.bind()).command_status == CommandStatus.ESME_ROK
        assert (await first.request(Unbind(sequence_number=0))).command_status == CommandStatus.ESME_ROK
        await first.wait_closed()
        assert (await client(b, nursery, 2).bind()).command_status == CommandStatus.ESME_RALYBND  # its row stays
        await trio.sleep(PAST_A_HEARTBEAT_S)  # not its lease: a's heartbeat deletes it
        assert (await client(b, nursery, 3).bind()).command_status == CommandStatus.ESME_ROK
        nursery.cancel_scope.cancel()


async def test_a_bind_the_registry_cannot_count_is_refused_and_the_node_lives_on(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config(smpp=make_config().smpp, accounts=(ACCOUNT,))
    binds = SharedBinds(Unreachable(), "a", LEASE_S, WallClock().now_ms)
    async with running_server(config, DoubleBackend(), binds) as server, trio.open_nursery() as nursery:
        assert (await client(server, nursery, 1).bind()).command_status == CommandStatus.ESME_RBINDFAIL
        assert server.audit.recent()[0].outcome == "bind registry unavailable"
        assert not server.sessions()
        await trio.sleep(2 * PAST_A_HEARTBEAT_S)  # failing heartbeats are logged, and the next one tried
        assert sum("bind lease renewal failed" in r.getMessage() for r in caplog.records) == 2
        assert (await client(server, nursery, 2).bind()).command_status == CommandStatus.ESME_RBINDFAIL
        nursery.cancel_scope.cancel()


async def test_a_node_that_stops_leaves_no_bind_behind(tmp_path: Path, db_clock: MockClock) -> None:
    config = Config(smpp=make_config().smpp, accounts=(replace(ACCOUNT, max_binds=1),))
    clock = WallClock()
    async with open_store(StoreConfig(path=str(tmp_path / "store.db"), synchronous="NORMAL")) as store:
        binds = SharedBinds(FailingDeletes(store), "a", LEASE_S, clock.now_ms)
        async with running_server(config, DoubleBackend(), binds) as a, trio.open_nursery() as nursery:
            first = client(a, nursery, 1)
            assert (await first.bind()).command_status == CommandStatus.ESME_ROK
            assert (await first.request(Unbind(sequence_number=0))).command_status == CommandStatus.ESME_ROK
            await first.wait_closed()  # its delete failed: the row is still there
            nursery.cancel_scope.cancel()
        now = clock.now_ms()
        assert await store.bind_take("b", ACCOUNT.system_id, 1, 1, now, now + 1) is not None
