"""Dispatchers of several nodes on one store (DESIGN.md, "Several nodes"), on every engine (`store_factory`),
under `MockClock`: what the store's claim rules (test_store.py) become once nodes run them over time."""

from __future__ import annotations

import logging
import random
from dataclasses import replace

import pytest
import trio
from trio.testing import MockClock

from smsgw.config import Config, MessageConfig, ModemConfig, NodeConfig, StoreConfig
from smsgw.modem.seams import IncomingSms, OutgoingSms, SendOutcome, Sent
from smsgw.scheduler.dispatch import Dispatcher
from smsgw.scheduler.service import Scheduler
from smsgw.scheduler.states import State
from smsgw.scheduler.timing import WallClock, from_ms
from tests.scheduler.conftest import StoreFactory
from tests.scheduler.test_store import T0, new_message

LEASE_S = 10.0

# Each node's dispatcher takes the store for a shared one (a `[store] url`), on SQLite too: the claim rules are
# the store's, the same on both engines. Node b looks for work often, as a node whose NOTIFY was lost would.
SHARED = Config(
    modems=(ModemConfig("m1", "/dev/null"),),
    store=StoreConfig(url="postgresql://shared"),
    node=NodeConfig("a", handoff_lease_s=LEASE_S),
    messages=MessageConfig(foreign_writes_poll_s=1.0),
)


class Sender:
    """Answers Sent after `takes_s`; records the segments it was asked to send."""

    def __init__(self, takes_s: float) -> None:
        self.takes_s = takes_s
        self.asked: list[str] = []
        self.called = trio.Event()

    async def send(self, sms: OutgoingSms) -> SendOutcome:
        self.asked.append(sms.segment_id)
        self.called.set()
        await trio.sleep(self.takes_s)
        return Sent("m1", "447700900001", len(self.asked), from_ms(T0))


async def test_a_live_nodes_handoff_longer_than_the_lease_is_not_sent_again_by_another_node(
    store_factory: StoreFactory, db_clock: MockClock
) -> None:
    """Node a's modem takes five leases to answer; node b serves the same route and looks for due work all along.
    a renews its lease while the hand-off is in progress, so b never sends the segment (a duplicate SMS)."""
    slow, other = Sender(takes_s=5 * LEASE_S), Sender(takes_s=0)
    clock = WallClock(from_ms(T0))
    message = new_message()
    async with store_factory() as store:
        await store.accept([message])
        a = Dispatcher(store, SHARED, clock, random.Random(1))
        b = Dispatcher(store, replace(SHARED, node=NodeConfig("b", handoff_lease_s=LEASE_S)), clock, random.Random(2))
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run, slow)
            await slow.called.wait()
            await nursery.start(b.run, other)
            await trio.sleep(slow.takes_s + LEASE_S)
            (stored,) = await store.find("acme", message.message_id)
            nursery.cancel_scope.cancel()
    assert slow.asked == [f"{message.message_id}.0.0"]
    assert other.asked == []
    assert stored.state is State.PROCESSING  # sent, awaiting its status report


async def test_a_node_warns_of_a_route_whose_segments_no_node_claims(
    store_factory: StoreFactory, db_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Node b has no connector for route "default" and no node that has runs: its segment stays due. b says so,
    naming the route, once its segment waited a lease unclaimed."""
    clock = WallClock(from_ms(T0))
    async with store_factory() as store:
        await store.accept([new_message()])
        binds_only = Dispatcher(store, replace(SHARED, modems=(), node=NodeConfig("b", handoff_lease_s=LEASE_S)),
                                clock, random.Random(2))
        async with trio.open_nursery() as nursery:
            await nursery.start(binds_only.run, Sender(takes_s=0))
            await trio.sleep(LEASE_S / 2)
            assert "route=default" not in caplog.text  # not a lease yet: a serving node may be about to claim it
            await trio.sleep(LEASE_S)
            counts = await store.queue_counts(clock.now_ms())
            nursery.cancel_scope.cancel()
    (warning,) = [r for r in caplog.records if "route=default" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert "due=1" in warning.getMessage() and "node=b" in warning.getMessage()
    assert counts.due_by_route == {"default": 1}
    assert counts.oldest_due_ms == {"default": T0}


async def test_an_outbox_item_whose_wake_up_was_lost_is_offered_within_the_poll(
    store_factory: StoreFactory, db_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another node wrote an MO for acme and its NOTIFY never arrived (a dropped listener connection): the bind
    waiting here still gets it, within `foreign_writes_poll_s`."""
    config = replace(SHARED, messages=MessageConfig(foreign_writes_poll_s=30.0))
    clock = WallClock(from_ms(T0))
    async with store_factory() as store:
        scheduler = Scheduler(store, config, clock)
        async with trio.open_nursery() as nursery:
            await nursery.start(scheduler.run, Sender(takes_s=0))
            offered: list[bytes] = []

            async def bind() -> None:
                offered.append((await scheduler.smpp.next_outbound("acme")).pdu.short_message)

            nursery.start_soon(bind)
            await trio.sleep(1)  # the bind waits, nothing claimed
            monkeypatch.setattr(store, "notify_outbox", lambda account: None)  # every wake-up lost
            sms = IncomingSms("m1", "447700900001", "447700900555", "from elsewhere", 0, from_ms(T0))
            await store.store_mo(sms, "acme", "447700900001", clock.now_ms())
            with trio.fail_after(config.messages.foreign_writes_poll_s + 1):
                while not offered:
                    await trio.sleep(1)
            nursery.cancel_scope.cancel()
    assert offered == [b"from elsewhere"]
