"""SMPP binds across the nodes sharing one store (DESIGN.md, "Several nodes"): an account's `max_binds` counts
every node's binds, exactly, and its throughput is divided between the nodes by the binds each holds.

Each bind takes a row in the store's bind registry (`BindStore.bind_take`, one write, refused when the account
has `max_binds` live rows on all nodes) and its unbind deletes it; nothing per PDU. The node's heartbeat renews
its rows' lease every third of `[node] bind_lease_s`, so the binds of a node killed with -9 stop counting once
their lease ends; a node clears its own rows when it stops, and those a kill left when it starts again.

Throughput (approximate): a node holding some of an account's binds gets the account's rate (and burst) times
its part of the account's live binds (`BindCounts.share`): with two binds on node A and one on node B, A allows
2/3 of the rate and B 1/3, so an ESME spreading its traffic over its binds is held near the account's rate. The
shares are learnt at each bind and unbind of this node and at the heartbeat, so another node's binds and unbinds
reach this node's bucket within a third of the lease; until then the sum over the nodes may be off by those
binds' part. A node with none of the account's binds (what it accepts for the account comes over HTTP) allows
the whole rate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import trio

log = logging.getLogger(__name__)

# An unbind's row is deleted even while its connection is being cancelled, but not waited on forever: a delete
# that did not happen is done by the next heartbeat.
_DROP_TIMEOUT_S: Final = 5.0
# Renewals per lease: two may fail (the store busy, a connection lost) before the rows stop counting.
_RENEWALS_PER_LEASE: Final = 3


@dataclass(frozen=True, slots=True)
class BindCounts:
    """An account's live binds in the registry: this node's and all nodes'."""

    node: int
    all: int

    @property
    def share(self) -> float:
        """This node's part of the account's binds, and so of its throughput. 1 when this node holds none: what
        it accepts for the account then comes over HTTP, which the binds on other nodes say nothing about."""
        return self.node / self.all if self.node else 1.0


class BindStore(Protocol):
    """The bind registry in the store (both engines: `smsgw.scheduler.sqlite.binds`). Times are epoch ms."""

    async def bind_take(
        self, node: str, account: str, connection: int, limit: int, now_ms: int, until_ms: int
    ) -> BindCounts | None:
        """Record `node`'s bind `connection` of `account`, held until `until_ms`, unless the account has `limit`
        live binds on all nodes already (None: refused, nothing written); the account's counts with it. Binds of
        one account are counted one after the other, whichever nodes take them at the same instant."""
        ...

    async def bind_drop(self, node: str, connection: int, now_ms: int) -> BindCounts | None:
        """Forget `node`'s bind `connection`; its account's counts after (None: there was no such bind)."""
        ...

    async def binds_renew(
        self, node: str, dropped: Sequence[int], now_ms: int, until_ms: int
    ) -> dict[str, BindCounts]:
        """The heartbeat: forget `node`'s binds `dropped` (unbinds whose `bind_drop` failed), hold its others
        until `until_ms`, delete every node's binds whose lease ended; the counts of each account `node` holds
        binds of."""
        ...

    async def binds_clear(self, node: str) -> int:
        """Forget every bind of `node` (its previous run's, at start); how many there were."""
        ...


class SharedBinds:
    """This node's binds in the store's registry, and its share of each account's throughput that follows.

    `now_ms`: wall time in epoch ms (leases are compared between nodes), following `trio.current_time()` so
    that tests drive the heartbeat with `MockClock` (`smsgw.scheduler.timing.WallClock`)."""

    def __init__(self, store: BindStore, node: str, lease_s: float, now_ms: Callable[[], int]) -> None:
        self._store = store
        self._node = node
        self._lease_s = lease_s
        self._now_ms = now_ms
        self._shares: dict[str, float] = {}  # accounts this node holds binds of, when its share is below 1
        self._dropped: list[int] = []  # unbinds whose row is still to be deleted

    def share(self, account: str) -> float:
        """This node's part of the account's throughput, as last learnt from the registry."""
        return self._shares.get(account, 1.0)

    def _learn(self, account: str, counts: BindCounts) -> None:
        if counts.share < 1.0:
            self._shares[account] = counts.share
        else:
            self._shares.pop(account, None)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Clear this node's rows of its previous run, then renew its rows until cancelled (the server stopped,
        its binds ended): then clear them again, so that no unbind whose delete failed outlives the node."""
        cleared = await self._store.binds_clear(self._node)
        if cleared:
            log.info("binds of the previous run cleared node=%s binds=%d", self._node, cleared)
        task_status.started()
        try:
            while True:
                await trio.sleep(self._lease_s / _RENEWALS_PER_LEASE)
                try:
                    await self._renew()
                except Exception as exc:  # the next heartbeat tries again; the lease allows two to fail
                    log.warning("bind lease renewal failed node=%s error=%r", self._node, exc)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(_DROP_TIMEOUT_S):
                try:
                    await self._store.binds_clear(self._node)
                except Exception as exc:  # their lease ends them
                    log.warning("binds not cleared node=%s error=%r", self._node, exc)

    async def _renew(self) -> None:
        dropped, self._dropped = self._dropped, []
        now = self._now_ms()
        try:
            counts = await self._store.binds_renew(self._node, dropped, now, now + self._lease_ms)
        except BaseException:
            self._dropped.extend(dropped)
            raise
        self._shares = {}
        for account, account_counts in counts.items():
            self._learn(account, account_counts)

    @property
    def _lease_ms(self) -> int:
        return int(self._lease_s * 1000)

    async def take(self, account: str, connection: int, limit: int) -> bool:
        """Whether the bind may be: the account has fewer than `limit` binds on all nodes (it holds one now)."""
        now = self._now_ms()
        counts = await self._store.bind_take(self._node, account, connection, limit, now, now + self._lease_ms)
        if counts is None:
            return False
        self._learn(account, counts)
        return True

    async def drop(self, account: str, connection: int) -> None:
        """The bind ended: its row goes, even while the caller is cancelled; one that could not be deleted now is
        deleted by the next heartbeat."""
        counts: BindCounts | None = None
        with trio.CancelScope(shield=True), trio.move_on_after(_DROP_TIMEOUT_S):
            try:
                counts = await self._store.bind_drop(self._node, connection, self._now_ms())
            except Exception as exc:
                log.warning("bind not removed node=%s connection=%d error=%r", self._node, connection, exc)
            else:
                if counts is not None:
                    self._learn(account, counts)
                return
        self._dropped.append(connection)
