"""The dispatcher on routes through upstream SMSCs (scripted verdicts, no sockets): failover in the route's order,
a permanent refusal ends the message without failover, and a handset's reply to a message sent through an upstream
comes back to the account that wrote."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from smsgw.config import AccountConfig, Config, MessageConfig, RouteConfig, StoreConfig
from smsgw.pdu.constants import CommandStatus, EsmClass, GatewayError
from smsgw.pdu.dlr import parse_receipt
from smsgw.pdu.smpp import DeliverSm, SubmitSm
from smsgw.scheduler.service import Scheduler
from smsgw.scheduler.sqlite_store import SqliteStore, open_store
from smsgw.scheduler.timing import WallClock
from smsgw.smpp_server.upstream import NotSent, Refused, Submitted, UpstreamOutcome

from test_scheduler import PAID, START, FakeSender, submit_sm

VIA = ("upstream:opA", "upstream:opB", "modems:uk")


@dataclass
class FakeUpstreams:
    """Each upstream answers with its scripted verdict; `calls` keeps the order they were asked in."""

    verdicts: dict[str, UpstreamOutcome]
    calls: list[tuple[str, SubmitSm]] = field(default_factory=list)

    async def submit(self, upstream: str, pdu: SubmitSm) -> UpstreamOutcome:
        self.calls.append((upstream, pdu))
        return self.verdicts.get(upstream, NotSent("no such upstream"))


@dataclass
class Gateway:
    scheduler: Scheduler
    store: SqliteStore
    sender: FakeSender
    upstreams: FakeUpstreams


@pytest.fixture
async def gateway(tmp_path: Path, db_clock: MockClock) -> AsyncIterator[Gateway]:
    config = Config(
        accounts=(AccountConfig("acme", "x"),),
        routes=(RouteConfig(name="uk", prefixes=("44",), modem_group="uk", via=VIA),),
        messages=MessageConfig(mo_default_account="fallback", foreign_writes_poll_s=0),
        store=StoreConfig(synchronous="NORMAL"),
    )
    upstreams = FakeUpstreams({})
    sender = FakeSender(decide=lambda sms: sender.ok(sms))
    async with open_store(tmp_path / "gw.db", config.store) as store:
        clock = WallClock(START)
        scheduler = Scheduler(store, config, clock, upstreams=upstreams)
        await store.topup("acme", 1_000_000, clock.now_ms())
        async with trio.open_nursery() as nursery:
            await nursery.start(scheduler.run, sender)
            yield Gateway(scheduler, store, sender, upstreams)
            nursery.cancel_scope.cancel()


async def handed_to_upstreams(gateway: Gateway, count: int) -> None:
    with trio.fail_after(60):
        while len(gateway.upstreams.calls) < count:
            await trio.sleep(0.1)
    await trio.sleep(1)  # the verdict is committed (no thread runs while asleep)


async def receipt_for(gateway: Gateway) -> DeliverSm:
    with trio.fail_after(60):
        item = await gateway.scheduler.smpp.next_outbound("acme")
    await gateway.scheduler.smpp.acknowledge(item.item_id)
    return item.pdu


async def test_a_connector_that_cannot_take_it_passes_it_to_the_next_in_order(
    gateway: Gateway, db_clock: MockClock
) -> None:
    gateway.upstreams.verdicts = {"opA": NotSent("not bound"), "opB": Submitted("b-7")}
    message_id = await gateway.scheduler.smpp.submit("acme", submit_sm())
    await handed_to_upstreams(gateway, 2)
    assert [name for name, _ in gateway.upstreams.calls] == ["opA", "opB"]
    assert gateway.sender.sent == []  # the modems, last in the route, were not needed
    # B's receipt quotes B's id; our ESME gets ours.
    await gateway.scheduler.upstream_receiver.deliver("opB", DeliverSm(
        sequence_number=1, esm_class=EsmClass.DELIVERY_RECEIPT,
        short_message=b"id:b-7 sub:001 dlvrd:001 submit date:2603011200 done date:2603011200 stat:DELIVRD err:000"))
    receipt = parse_receipt((await receipt_for(gateway)).short_message)
    assert (receipt.message_id, receipt.stat) == (message_id, "DELIVRD")


async def test_when_every_upstream_fails_for_now_the_modems_send_it(gateway: Gateway, db_clock: MockClock) -> None:
    gateway.upstreams.verdicts = {
        "opA": NotSent("no submit_sm_resp", maybe_sent=True),
        "opB": Refused(CommandStatus.ESME_RTHROTTLED),  # throttled beyond its wait: the next connector
    }
    await gateway.scheduler.smpp.submit("acme", submit_sm())
    with trio.fail_after(60):
        await gateway.sender.wait_sent(1)
    assert [name for name, _ in gateway.upstreams.calls] == ["opA", "opB"]


@pytest.mark.parametrize(
    ("command_status", "err"),
    [
        (CommandStatus.ESME_RINVDSTADR, GatewayError.UPSTREAM_REFUSED),
        (CommandStatus.ESME_RSUBMITFAIL, GatewayError.UPSTREAM_REFUSED),
        (CommandStatus.ESME_RINVSRCADR, GatewayError.SENDER_NOT_ALLOWED),
    ],
)
async def test_a_permanent_refusal_ends_the_message_without_failover(
    gateway: Gateway, db_clock: MockClock, command_status: int, err: int
) -> None:
    gateway.upstreams.verdicts = {"opA": Refused(command_status), "opB": Submitted("b-1")}
    message_id = await gateway.scheduler.smpp.submit("acme", submit_sm())
    receipt = parse_receipt((await receipt_for(gateway)).short_message)
    assert (receipt.message_id, receipt.stat, int(receipt.err)) == (message_id, "UNDELIV", err)
    assert [name for name, _ in gateway.upstreams.calls] == ["opA"]
    assert gateway.sender.sent == []


async def test_a_reply_through_the_upstream_goes_to_the_account_that_wrote(
    gateway: Gateway, db_clock: MockClock
) -> None:
    gateway.upstreams.verdicts = {"opA": Submitted("a-1")}
    await gateway.scheduler.smpp.submit("acme", submit_sm(registered_delivery=0))
    await handed_to_upstreams(gateway, 1)
    reply = DeliverSm(sequence_number=2, source_addr=PAID, destination_addr="ACME", short_message=b"yes please")
    assert await gateway.scheduler.upstream_receiver.deliver("opA", reply) == CommandStatus.ESME_ROK
    mo = await receipt_for(gateway)
    assert (mo.source_addr, mo.destination_addr, mo.short_message) == (PAID, "ACME", b"yes please")
    # The same handset writing in through another upstream is not a reply to it.
    assert await gateway.scheduler.upstream_receiver.deliver("opB", reply) == CommandStatus.ESME_ROK
    with trio.move_on_after(60) as scope:
        await gateway.scheduler.smpp.next_outbound("acme")
    assert scope.cancelled_caught
