from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from smsgw.config import AccountConfig, Config, MessageConfig, NodeConfig, RouteConfig, StoreConfig
from smsgw.modem.seams import IncomingSms, OutgoingSms, SendFailed, SendOutcome, Sent, StatusReport
from smsgw.pdu.constants import CommandStatus, EsmClass, GatewayError, MessageState
from smsgw.pdu.dlr import parse_receipt
from smsgw.pdu.smpp import CancelSm, DeliverSm, DistributionList, ReplaceSm, SmeAddress, SubmitMulti, SubmitSm
from smsgw.pdu.smpp_time import format_relative
from smsgw.pdu.tlv import Tlvs
from smsgw.scheduler.model import Address, NewMessage, NewSegment
from smsgw.scheduler.service import Scheduler
from smsgw.scheduler.sqlite_store import SqliteStore, open_store
from smsgw.scheduler.timing import WallClock, from_ms
from smsgw.smpp_server.backend import BackendError
from tests.scheduler.conftest import outbox_items

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PAID = "441234567890"  # outside the free test range
FREE = "447700900123"


def allow_all(segments: Sequence[int]) -> list[bool]:
    """A throttle that lets every submission through."""
    return [True] * len(segments)


@dataclass
class FakeSender:
    """Answers each send with `decide(sms)` after half a second; records completed sends (Trio time, SMS, TP-MR)."""

    decide: Callable[[OutgoingSms], SendOutcome]
    sent: list[tuple[float, OutgoingSms, int]] = field(default_factory=list)
    tp_mr: int = 0
    _changed: trio.Event = field(default_factory=trio.Event)

    async def send(self, sms: OutgoingSms) -> SendOutcome:
        await trio.sleep(0.5)
        outcome = self.decide(sms)
        self.sent.append((trio.current_time(), sms, outcome.tp_mr if isinstance(outcome, Sent) else -1))
        self._changed.set()
        self._changed = trio.Event()
        return outcome

    async def wait_sent(self, count: int) -> None:
        while len(self.sent) < count:
            await self._changed.wait()

    def ok(self, sms: OutgoingSms) -> SendOutcome:
        self.tp_mr = (self.tp_mr + 1) % 256
        return Sent("m1", "447700900001", self.tp_mr, START)


@dataclass
class Gateway:
    scheduler: Scheduler
    store: SqliteStore
    sender: FakeSender
    clock: WallClock

    async def report(self, tp_st: int, index: int = -1) -> None:
        _, sms, tp_mr = self.sender.sent[index]
        await self.scheduler.dispatcher.status_report(StatusReport("m1", tp_mr, sms.destination, tp_st, START, START))


@pytest.fixture
def messages_config() -> MessageConfig:
    return MessageConfig()


@pytest.fixture
def accounts_config() -> tuple[AccountConfig, ...]:
    return ()


@pytest.fixture
def routes_config() -> tuple[RouteConfig, ...]:
    return (RouteConfig(name="uk", prefixes=("44",), price_per_segment=0.05),)


@pytest.fixture
async def gateway(
    tmp_path: Path,
    messages_config: MessageConfig,
    accounts_config: tuple[AccountConfig, ...],
    routes_config: tuple[RouteConfig, ...],
    db_clock: MockClock,
) -> AsyncIterator[Gateway]:
    config = Config(
        accounts=accounts_config,
        routes=routes_config,
        # One process: nothing else writes the store, and a poll would keep MockClock from jumping days at once.
        messages=replace(messages_config, foreign_writes_poll_s=0),
        store=StoreConfig(synchronous="NORMAL"),
    )
    sender = FakeSender(decide=lambda sms: SendFailed(temporary=True, reason="unset"))
    sender.decide = sender.ok
    async with open_store(tmp_path / "gw.db", config.store) as store:
        clock = WallClock(START)
        scheduler = Scheduler(store, config, clock)
        await store.topup("acme", 1_000_000, clock.now_ms())
        async with trio.open_nursery() as nursery:
            await nursery.start(scheduler.run, sender)
            yield Gateway(scheduler, store, sender, clock)
            nursery.cancel_scope.cancel()


async def eventually_state(gateway: Gateway, message_id: str, state: MessageState) -> None:
    while (await gateway.scheduler.smpp.query("acme", message_id, "")).message_state != state:
        await trio.sleep(60)


def submit_sm(to: str = PAID, text: bytes = b"hello", registered_delivery: int = 1, **fields: object) -> SubmitSm:
    return SubmitSm(
        sequence_number=1,
        source_addr="ACME",
        source_addr_ton=5,
        destination_addr=to,
        dest_addr_ton=1,
        dest_addr_npi=1,
        short_message=text,
        registered_delivery=registered_delivery,
        **fields,  # type: ignore[arg-type]
    )


async def test_submit_send_report_receipt(gateway: Gateway, db_clock: MockClock) -> None:
    message_id = await gateway.scheduler.smpp.submit("acme", submit_sm())
    assert len(message_id) <= 65
    await gateway.sender.wait_sent(1)
    ((_, sms, _),) = gateway.sender.sent
    assert sms.destination == PAID and sms.status_report and sms.user_data == b"hello"
    status = await gateway.scheduler.smpp.query("acme", message_id.upper(), "")
    assert status.message_state == MessageState.ENROUTE and status.final_date is None
    await gateway.report(0x00)
    item = await gateway.scheduler.smpp.next_outbound("acme")
    assert item.pdu.esm_class == EsmClass.DELIVERY_RECEIPT
    assert item.pdu.tlvs.receipted_message_id == message_id
    receipt = parse_receipt(item.pdu.short_message)
    assert receipt.message_id == message_id and receipt.stat == "DELIVRD" and receipt.err == "000"
    await gateway.scheduler.smpp.acknowledge(item.item_id)
    status = await gateway.scheduler.smpp.query("acme", message_id, "ACME")
    assert status.message_state == MessageState.DELIVERED and status.final_date is not None
    assert await gateway.store.balance("acme") == 1_000_000 - 50_000
    with trio.move_on_after(60) as scope:
        await gateway.scheduler.smpp.next_outbound("acme")
    assert scope.cancelled_caught  # acknowledged: never offered again


async def test_items_at_hand_are_taken_without_waiting_and_a_cancelled_ask_reserves_nothing(
    gateway: Gateway, db_clock: MockClock
) -> None:
    """The SMPP server's pusher asks under a cancelled scope for what is ready (backend.next_outbound): items
    already read are returned before any checkpoint; once none is at hand the ask is cancelled, holding none."""
    now = gateway.clock.now_ms()
    for text in ("one", "two", "three"):
        sms = IncomingSms("m1", "447700900001", "447700900555", text, 0, START)
        await gateway.store.store_mo(sms, "acme", "447700900001", now)
    first = await gateway.scheduler.smpp.next_outbound("acme")  # reads ahead what the outbox holds
    ready = []
    with trio.CancelScope() as probe:
        probe.cancel()
        while True:
            ready.append(await gateway.scheduler.smpp.next_outbound("acme"))
    assert probe.cancelled_caught
    assert [item.pdu.short_message for item in (first, *ready)] == [b"one", b"two", b"three"]
    for item in (first, *ready):
        await gateway.scheduler.smpp.acknowledge(item.item_id)
    await gateway.store.store_mo(IncomingSms("m1", "447700900001", "447700900555", "four", 0, START), "acme",
                                 "447700900001", now)
    with trio.CancelScope() as probe:
        probe.cancel()
        await gateway.scheduler.smpp.next_outbound("acme")  # nothing read ahead: cancelled at its first checkpoint
    assert probe.cancelled_caught
    fourth = await gateway.scheduler.smpp.next_outbound("acme")  # not reserved by the cancelled ask
    assert fourth.pdu.short_message == b"four"


async def test_gateway_splits_long_text_and_charges_per_segment(gateway: Gateway, db_clock: MockClock) -> None:
    message_id = await gateway.scheduler.smpp.submit("acme", submit_sm(text=b"x" * 200))
    await gateway.sender.wait_sent(2)
    assert sorted(len(s.user_data) for _, s, _ in gateway.sender.sent) == [47, 153]
    assert all(s.udh for _, s, _ in gateway.sender.sent)
    assert await gateway.store.balance("acme") == 1_000_000 - 100_000
    await gateway.report(0, index=0)
    await gateway.report(0, index=1)
    item = await gateway.scheduler.smpp.next_outbound("acme")
    receipt = parse_receipt(item.pdu.short_message)
    assert (receipt.message_id, receipt.submitted, receipt.delivered) == (message_id, 2, 2)


async def test_free_range_is_not_charged(gateway: Gateway, db_clock: MockClock) -> None:
    await gateway.scheduler.smpp.submit("acme", submit_sm(to=FREE))
    assert await gateway.store.balance("acme") == 1_000_000


async def test_insufficient_balance_is_refused_uncharged_and_never_sent(gateway: Gateway, db_clock: MockClock) -> None:
    with pytest.raises(BackendError) as refused:
        await gateway.scheduler.smpp.submit("poor", submit_sm())
    assert refused.value.command_status == 0x400
    await trio.sleep(5)
    assert gateway.sender.sent == []
    assert await gateway.store.ledger("poor", 10) == []


async def test_no_route_and_too_many_segments(gateway: Gateway, db_clock: MockClock) -> None:
    with pytest.raises(BackendError) as refused:
        await gateway.scheduler.smpp.submit("acme", submit_sm(to="33612345678"))
    assert refused.value.command_status == 0x404
    with pytest.raises(BackendError) as refused:
        await gateway.scheduler.smpp.submit("acme", submit_sm(text=b"y" * 500))
    assert refused.value.command_status == 0x406


async def test_schedule_in_the_future_waits_and_in_the_past_sends_now(gateway: Gateway, db_clock: MockClock) -> None:
    await gateway.scheduler.smpp.submit("acme", submit_sm(text=b"past", schedule_delivery_time="250101000000000+"))
    submitted = trio.current_time()
    await gateway.scheduler.smpp.submit("acme", submit_sm(text=b"later", schedule_delivery_time=format_relative(timedelta(hours=3))))
    await gateway.sender.wait_sent(2)
    (_, past, _), (later_at, later, _) = gateway.sender.sent
    assert (past.user_data, later.user_data) == (b"past", b"later")
    assert later_at - submitted >= 3 * 3600


async def test_work_due_after_the_next_look_wakes_no_dispatch_and_earlier_work_does(
    gateway: Gateway, db_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await gateway.scheduler.smpp.submit("acme", submit_sm(schedule_delivery_time=format_relative(timedelta(hours=3))))
    await trio.sleep(60)  # the dispatcher has looked: nothing due for three hours
    claims: list[int] = []
    claim_due = gateway.store.claim_due

    async def counted(*args: Any, **kwargs: Any) -> Any:
        claims.append(trio.current_time())
        return await claim_due(*args, **kwargs)

    monkeypatch.setattr(gateway.store, "claim_due", counted)
    for _ in range(3):  # each intake commit used to cost the dispatcher a claim and a read
        await gateway.scheduler.smpp.submit("acme", submit_sm(schedule_delivery_time=format_relative(timedelta(hours=4))))
    await trio.sleep(60)
    assert claims == []
    submitted = trio.current_time()
    await gateway.scheduler.smpp.submit("acme", submit_sm(text=b"sooner", schedule_delivery_time=format_relative(timedelta(hours=1))))
    await gateway.sender.wait_sent(1)
    ((sent_at, sooner, _),) = gateway.sender.sent
    assert sooner.user_data == b"sooner"
    assert 3600 <= sent_at - submitted < 3 * 3600


async def test_schedule_more_than_five_years_ahead_is_refused(gateway: Gateway, db_clock: MockClock) -> None:
    with pytest.raises(BackendError) as refused:
        await gateway.scheduler.smpp.submit("acme", submit_sm(schedule_delivery_time="991201000000000+"))
    assert refused.value.command_status == CommandStatus.ESME_RINVSCHED
    with pytest.raises(BackendError) as refused:
        await gateway.scheduler.smpp.submit("acme", submit_sm(validity_period=format_relative(timedelta(minutes=1))))
    assert refused.value.command_status == CommandStatus.ESME_RINVEXPIRY


async def test_temporary_failures_back_off_with_jitter_until_expiry(gateway: Gateway, db_clock: MockClock) -> None:
    gateway.sender.decide = lambda sms: SendFailed(temporary=True, reason="no modem free")
    start = trio.current_time()
    message_id = await gateway.scheduler.smpp.submit(
        "acme", submit_sm(validity_period=format_relative(timedelta(minutes=30)), registered_delivery=0x11)
    )
    item = None
    intermediate = 0
    while True:
        item = await gateway.scheduler.smpp.next_outbound("acme")
        await gateway.scheduler.smpp.acknowledge(item.item_id)
        if item.pdu.esm_class != EsmClass.INTERMEDIATE_NOTIFICATION:
            break
        intermediate += 1
    receipt = parse_receipt(item.pdu.short_message)
    assert receipt.stat == "EXPIRED" and receipt.message_id == message_id
    times = [t - start for t, _, _ in gateway.sender.sent]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert intermediate == len(times)
    assert len(times) >= 4 and all(gap >= 15 for gap in gaps)
    assert max(gaps) > min(gaps)  # backoff grows
    assert max(times) < 30 * 60
    assert await gateway.store.balance("acme") == 1_000_000  # never sent: refunded


async def test_permanent_failure_is_undeliverable(gateway: Gateway, db_clock: MockClock) -> None:
    gateway.sender.decide = lambda sms: SendFailed(temporary=False, reason="unknown subscriber", cms_error=0x01)
    message_id = await gateway.scheduler.smpp.submit("acme", submit_sm())
    item = await gateway.scheduler.smpp.next_outbound("acme")
    receipt = parse_receipt(item.pdu.short_message)
    assert (receipt.message_id, receipt.stat, receipt.err) == (message_id, "UNDELIV", "001")
    assert len(gateway.sender.sent) == 1


async def test_network_report_expired_and_temporary(gateway: Gateway, db_clock: MockClock) -> None:
    first = await gateway.scheduler.smpp.submit("acme", submit_sm())
    await gateway.sender.wait_sent(1)
    await gateway.report(0x46)  # validity period expired
    item = await gateway.scheduler.smpp.next_outbound("acme")
    assert parse_receipt(item.pdu.short_message).stat == "EXPIRED"
    assert item.pdu.tlvs.network_error_code == bytes((3, 0, 0x46))
    await gateway.scheduler.smpp.acknowledge(item.item_id)
    await gateway.scheduler.smpp.submit("acme", submit_sm())
    await gateway.sender.wait_sent(2)
    await gateway.report(0x62)  # gave up after a temporary error: we retry
    await gateway.sender.wait_sent(3)
    assert (await gateway.scheduler.smpp.query("acme", first, "")).message_state == MessageState.EXPIRED


async def test_unreported_segment_expires_after_validity_and_grace(gateway: Gateway, db_clock: MockClock) -> None:
    start = trio.current_time()
    message_id = await gateway.scheduler.smpp.submit("acme", submit_sm())
    await eventually_state(gateway, message_id, MessageState.EXPIRED)
    assert trio.current_time() - start >= 2 * 3600 + 600


async def test_cancel_only_before_hand_off(gateway: Gateway, db_clock: MockClock) -> None:
    later = format_relative(timedelta(hours=1))
    scheduled = await gateway.scheduler.smpp.submit("acme", submit_sm(schedule_delivery_time=later))
    await gateway.scheduler.smpp.cancel("acme", CancelSm(sequence_number=2, message_id=scheduled.upper()))
    item = await gateway.scheduler.smpp.next_outbound("acme")
    assert parse_receipt(item.pdu.short_message).stat == "DELETED"
    assert await gateway.store.balance("acme") == 1_000_000
    sent = await gateway.scheduler.smpp.submit("acme", submit_sm())
    await gateway.sender.wait_sent(1)
    with pytest.raises(BackendError) as refused:
        await gateway.scheduler.smpp.cancel("acme", CancelSm(sequence_number=3, message_id=sent))
    assert refused.value.command_status == CommandStatus.ESME_RCANCELFAIL
    with pytest.raises(BackendError):
        await gateway.scheduler.smpp.cancel("other", CancelSm(sequence_number=3, message_id=scheduled))
    await trio.sleep(7200)
    assert len(gateway.sender.sent) == 1


async def test_replace_text_and_schedule(gateway: Gateway, db_clock: MockClock) -> None:
    later = format_relative(timedelta(hours=1))
    message_id = await gateway.scheduler.smpp.submit("acme", submit_sm(schedule_delivery_time=later))
    await gateway.scheduler.smpp.replace(
        "acme", ReplaceSm(sequence_number=2, message_id=message_id, short_message=b"z" * 200)
    )
    assert await gateway.store.balance("acme") == 1_000_000 - 100_000
    await gateway.sender.wait_sent(2)
    assert [s.user_data[:1] for _, s, _ in gateway.sender.sent] == [b"z", b"z"]
    with pytest.raises(BackendError) as refused:
        await gateway.scheduler.smpp.replace("acme", ReplaceSm(sequence_number=3, message_id=message_id))
    assert refused.value.command_status == CommandStatus.ESME_RREPLACEFAIL


async def test_query_unknown_or_foreign_message_fails(gateway: Gateway, db_clock: MockClock) -> None:
    message_id = await gateway.scheduler.smpp.submit("acme", submit_sm())
    for account, mid in (("other", message_id), ("acme", "nonsense"), ("acme", "0" * 20)):
        with pytest.raises(BackendError) as refused:
            await gateway.scheduler.smpp.query(account, mid, "")
        assert refused.value.command_status == CommandStatus.ESME_RQUERYFAIL


async def test_released_item_is_offered_again(gateway: Gateway, db_clock: MockClock) -> None:
    await gateway.scheduler.smpp.submit("acme", submit_sm())
    await gateway.sender.wait_sent(1)
    await gateway.report(0)
    item = await gateway.scheduler.smpp.next_outbound("acme")
    await gateway.scheduler.smpp.release(item.item_id)
    again = await gateway.scheduler.smpp.next_outbound("acme")
    assert again.item_id == item.item_id


async def test_a_read_ahead_too_old_to_be_answered_within_its_claim_is_claimed_afresh(
    gateway: Gateway, db_clock: MockClock
) -> None:
    """The binds had no room until the read-ahead's claim nearly ended: offered as it is, the item could still be
    on a bind when its claim ends and another node offers it too. It is released and claimed again instead."""
    for text in ("first", "second"):
        sms = IncomingSms("m1", MODEM_MSISDN, HANDSET, text, 0, START)
        await gateway.store.store_mo(sms, "acme", MODEM_MSISDN, gateway.clock.now_ms())
    first = await gateway.scheduler.smpp.next_outbound("acme")  # the second waits in the read-ahead
    await trio.sleep(Config().smpp.outbox_claim_s - 10)  # less than response_timeout_s + 5 left of the claim
    before = trio.current_time()
    second = await gateway.scheduler.smpp.next_outbound("acme")
    assert second.pdu.short_message == b"second" and second.item_id != first.item_id
    assert trio.current_time() - before >= MessageConfig().outbox_redelivery_delay_s  # released, cooled down
    now = gateway.clock.now_ms()
    assert (await gateway.store.outbox_claim("acme", "other", now, now + 1, 10)).entries == ()  # claimed afresh


async def test_submit_multi_reports_unsuccessful_destinations(gateway: Gateway, db_clock: MockClock) -> None:
    pdu = SubmitMulti(
        sequence_number=1,
        source_addr="ACME",
        short_message=b"hi all",
        destinations=(
            SmeAddress(1, 1, PAID),
            DistributionList("friends"),
            SmeAddress(1, 1, "33612345678"),
            SmeAddress(1, 1, FREE),
        ),
    )
    result = await gateway.scheduler.smpp.submit_multi("acme", pdu, allow_all)
    assert [(u.destination_addr, u.error_status_code) for u in result.unsuccessful] == [
        ("friends", CommandStatus.ESME_RCNTSUBDL),
        ("33612345678", 0x404),
    ]
    await gateway.sender.wait_sent(2)
    assert sorted(s.destination for _, s, _ in gateway.sender.sent) == [PAID, FREE]
    status = await gateway.scheduler.smpp.query("acme", result.message_id, "")
    assert status.message_state == MessageState.ENROUTE


@pytest.mark.parametrize("messages_config", [MessageConfig(mo_default_account="acme")])
async def test_mo_goes_to_the_default_account(gateway: Gateway, db_clock: MockClock) -> None:
    sms = IncomingSms("m1", "447700900001", "447911000001", "Ça va? 😀", 8, START)
    await gateway.scheduler.mo.incoming_sms(sms)
    item = await gateway.scheduler.smpp.next_outbound("acme")
    assert item.pdu.source_addr == "447911000001" and item.pdu.destination_addr == "447700900001"
    assert item.pdu.esm_class == 0 and item.pdu.data_coding == 8
    assert item.pdu.short_message.decode("utf-16-be") == "Ça va? 😀"


async def test_submit_many_refuses_per_pdu_and_accepts_the_rest(gateway: Gateway, db_clock: MockClock) -> None:
    results = await gateway.scheduler.smpp.submit_many(
        "acme", [submit_sm(), submit_sm(to="33612345678"), submit_sm(to=FREE)], allow_all
    )
    assert isinstance(results[0], str) and isinstance(results[2], str)
    assert isinstance(results[1], BackendError) and results[1].command_status == 0x404
    poor = await gateway.scheduler.smpp.submit_many("poor", [submit_sm(), submit_sm(to=FREE)], allow_all)
    assert isinstance(poor[0], BackendError) and poor[0].command_status == 0x400
    assert isinstance(poor[1], str)
    # Answered 0x400, so refused whole: not kept REJECTED err 800 beside the free one of the same read.
    assert await gateway.store.unpaid_messages("poor", 0, 1 << 60) == []
    await gateway.sender.wait_sent(3)


async def test_the_accepted_message_carries_each_field_of_the_submission(
    gateway: Gateway, db_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    accepted: list[NewMessage] = []
    accept = gateway.store.accept

    async def recorded(messages: Sequence[NewMessage]) -> tuple[bool, ...]:
        accepted.extend(messages)
        return await accept(messages)

    monkeypatch.setattr(gateway.store, "accept", recorded)
    now = gateway.clock.now_ms()
    pdu = submit_sm(
        service_type="CMT",
        esm_class=3,
        data_coding=0x10,  # GSM 7-bit, message class 0: flash
        schedule_delivery_time="000000010000000R",
        validity_period="000000020000000R",
    )
    message_id = await gateway.scheduler.smpp.submit("acme", pdu)
    assert accepted == [
        NewMessage(
            message_id=message_id,
            dest_index=0,
            account="acme",
            service_type="CMT",
            source=Address("ACME", 5, 0),
            destination=Address(PAID, 1, 1),
            route="uk",
            modem_group="default",
            esm_class=3,
            registered_delivery=1,
            data_coding=0x10,
            flash=True,
            gateway_split=False,
            text="hello",
            submitted_ms=now,
            start_ms=now + 3_600_000,
            expires_ms=now + 3 * 3_600_000,
            price_per_segment_micro=50_000,
            segments=(NewSegment(0, b"hello", b""),),
            check_recipient=True,
        )
    ]


async def test_split_messages_of_one_call_have_distinct_references(gateway: Gateway, db_clock: MockClock) -> None:
    # A handset reassembles parts by their concatenation reference: two split messages to it must not share one.
    texts = [letter * 200 for letter in (b"x", b"y", b"z")]
    results = await gateway.scheduler.smpp.submit_many("acme", [submit_sm(text=text) for text in texts], allow_all)
    assert all(isinstance(result, str) for result in results)
    await gateway.sender.wait_sent(6)
    references = {(sms.user_data[:1], sms.udh[3]) for _, sms, _ in gateway.sender.sent}  # 05 00 03 ref total seq
    assert len(references) == 3 and len({reference for _, reference in references}) == 3


HANDSET = "447700900555"
MODEM_MSISDN = "447700900001"
TWO_WAY = [
    pytest.param(
        MessageConfig(mo_default_account="fallback"),
        (AccountConfig("acme", "x"), AccountConfig("shop", "x", keywords=("Pizza",))),
        id="two-way",
    )
]


def sent_now(gateway: Gateway, modem: str = "m1") -> Callable[[OutgoingSms], SendOutcome]:
    """Sends that report the gateway's wall time, as a modem does, so the reply window is measured from them."""

    def decide(sms: OutgoingSms) -> SendOutcome:
        gateway.sender.tp_mr = (gateway.sender.tp_mr + 1) % 256
        return Sent(modem, MODEM_MSISDN, gateway.sender.tp_mr, from_ms(gateway.clock.now_ms()))

    return decide


async def send_from(gateway: Gateway, account: str, source: str, count: int) -> None:
    await gateway.store.topup(account, 1_000_000, gateway.clock.now_ms())
    pdu = replace(submit_sm(to=HANDSET, registered_delivery=0), source_addr=source)
    await gateway.scheduler.smpp.submit(account, pdu)
    await gateway.sender.wait_sent(count)
    await trio.sleep(1)  # the modem has answered; let the scheduler commit its Sent (no thread runs while asleep)


async def mo(gateway: Gateway, text: str, modem: str = "m1") -> None:
    await gateway.scheduler.mo.incoming_sms(IncomingSms(modem, MODEM_MSISDN, HANDSET, text, 0, START))


async def mo_for(gateway: Gateway, account: str) -> DeliverSm:
    with trio.fail_after(60):
        item = await gateway.scheduler.smpp.next_outbound(account)
    await gateway.scheduler.smpp.acknowledge(item.item_id)
    return item.pdu


async def nothing_for(gateway: Gateway, account: str) -> bool:
    with trio.move_on_after(60) as scope:
        await gateway.scheduler.smpp.next_outbound(account)
    return scope.cancelled_caught


@pytest.mark.parametrize(("messages_config", "accounts_config"), TWO_WAY)
async def test_reply_within_window_goes_to_the_account_that_wrote(gateway: Gateway, db_clock: MockClock) -> None:
    gateway.sender.decide = sent_now(gateway)
    await send_from(gateway, "acme", "ACME", 1)
    await trio.sleep(6 * 24 * 3600)
    await mo(gateway, "pizza please")  # a reply: shop's keyword does not take it
    pdu = await mo_for(gateway, "acme")
    assert (pdu.source_addr, pdu.destination_addr, pdu.esm_class) == (HANDSET, "ACME", 0)
    assert (pdu.dest_addr_ton, pdu.short_message) == (5, b"pizza please")
    assert await nothing_for(gateway, "shop") and await nothing_for(gateway, "fallback")


@pytest.mark.parametrize(("messages_config", "accounts_config"), TWO_WAY)
async def test_reply_from_another_modem_is_not_matched(gateway: Gateway, db_clock: MockClock) -> None:
    gateway.sender.decide = sent_now(gateway)
    await send_from(gateway, "acme", "ACME", 1)
    await gateway.scheduler.mo.incoming_sms(IncomingSms("m2", "447700900002", HANDSET, "hello", 0, START))
    pdu = await mo_for(gateway, "fallback")
    assert (pdu.source_addr, pdu.destination_addr, pdu.dest_addr_ton) == (HANDSET, "447700900002", 1)


@pytest.mark.parametrize(("messages_config", "accounts_config"), TWO_WAY)
async def test_after_the_window_keyword_then_default(gateway: Gateway, db_clock: MockClock) -> None:
    gateway.sender.decide = sent_now(gateway)
    await send_from(gateway, "acme", "ACME", 1)
    await trio.sleep(7 * 24 * 3600 + 60)
    await mo(gateway, "PIZZA large")
    pdu = await mo_for(gateway, "shop")
    assert (pdu.source_addr, pdu.destination_addr, pdu.short_message) == (HANDSET, MODEM_MSISDN, b"PIZZA large")
    await mo(gateway, "pizzas are great")  # the first word must be the keyword itself
    pdu = await mo_for(gateway, "fallback")
    assert pdu.short_message == b"pizzas are great"
    assert await nothing_for(gateway, "acme")


@pytest.mark.parametrize(("messages_config", "accounts_config"), TWO_WAY)
async def test_keyword_is_case_insensitive(gateway: Gateway, db_clock: MockClock) -> None:
    for text in ("pizza", "  PiZzA\nmargherita"):
        await mo(gateway, text)
        pdu = await mo_for(gateway, "shop")
        assert pdu.short_message == text.encode()


@pytest.mark.parametrize(("messages_config", "accounts_config"), TWO_WAY)
async def test_the_last_account_to_write_gets_the_reply(gateway: Gateway, db_clock: MockClock) -> None:
    gateway.sender.decide = sent_now(gateway)
    await send_from(gateway, "acme", "ACME", 1)
    await trio.sleep(3600)
    await send_from(gateway, "shop", "447700900777", 2)
    await mo(gateway, "yes")
    pdu = await mo_for(gateway, "shop")
    assert (pdu.destination_addr, pdu.dest_addr_ton) == ("447700900777", 1)
    assert await nothing_for(gateway, "acme")
    await trio.sleep(3600)
    await send_from(gateway, "acme", "ACME", 3)
    await mo(gateway, "no")
    assert (await mo_for(gateway, "acme")).short_message == b"no"


# -- message policy (issue 7) through the Scheduler ----------------------------------------------------------------

POLICY_ACCOUNTS = (
    AccountConfig("acme", "x", default_country_code="44", sender_ids=("ACME", "447700900777")),
    AccountConfig("promo", "x", promotional=True),
)


async def refused_status(gateway: Gateway, account: str, pdu: SubmitSm) -> int:
    with pytest.raises(BackendError) as refused:
        await gateway.scheduler.smpp.submit(account, pdu)
    return refused.value.command_status


async def receipt_for(gateway: Gateway, account: str, message_id: str) -> tuple[str, str]:
    pdu = await mo_for(gateway, account)
    receipt = parse_receipt(pdu.short_message)
    assert receipt.message_id == message_id
    return receipt.stat, receipt.err


@pytest.mark.parametrize("accounts_config", [POLICY_ACCOUNTS])
async def test_destinations_are_normalised_and_invalid_ones_refused(gateway: Gateway, db_clock: MockClock) -> None:
    national = replace(submit_sm(to="07700 900-123"), dest_addr_ton=0, dest_addr_npi=0)
    message_id = await gateway.scheduler.smpp.submit("acme", national)
    (stored,) = await gateway.store.find("acme", message_id)
    assert stored.destination.addr == FREE
    await gateway.sender.wait_sent(1)
    assert gateway.sender.sent[0][1].destination == FREE
    for bad in ("12ab34567", "0044", "+"):
        status = await refused_status(gateway, "acme", replace(submit_sm(to=bad), dest_addr_ton=0))
        assert status == CommandStatus.ESME_RINVDSTADR
    assert [entry.kind for entry in await gateway.store.ledger("acme", 10)] == ["topup"]  # nothing charged
    later = replace(national, schedule_delivery_time=format_relative(timedelta(hours=1)), destination_addr="07700900124")
    scheduled = await gateway.scheduler.smpp.submit("acme", later)
    await gateway.scheduler.smpp.cancel("acme", CancelSm(sequence_number=2, source_addr="ACME", destination_addr="07700900124"))
    assert (await gateway.scheduler.smpp.query("acme", scheduled, "")).message_state == MessageState.DELETED
    await trio.sleep(60)
    assert len(gateway.sender.sent) == 1


@pytest.mark.parametrize("accounts_config", [POLICY_ACCOUNTS])
async def test_sender_ids_are_checked_and_defaulted(gateway: Gateway, db_clock: MockClock) -> None:
    for source in ("TOO-LONG-SENDER", "07700900777"):
        status = await refused_status(gateway, "acme", replace(submit_sm(), source_addr=source))
        assert status == CommandStatus.ESME_RINVSRCADR
    status = await refused_status(gateway, "acme", replace(submit_sm(), source_addr="OTHER"))
    assert status == GatewayError.SENDER_NOT_ALLOWED.command_status
    defaulted = await gateway.scheduler.smpp.submit("acme", replace(submit_sm(), source_addr="", source_addr_ton=0))
    numeric = await gateway.scheduler.smpp.submit("acme", replace(submit_sm(), source_addr="447700900777"))
    senders = [(await gateway.store.find("acme", m))[0].source for m in (defaulted, numeric)]
    assert [(s.addr, s.ton) for s in senders] == [("ACME", 5), ("447700900777", 1)]


@pytest.mark.parametrize(
    "routes_config",
    [(RouteConfig(name="uk", prefixes=("44",), signature="Co: ", suffix=" Bye", sender_override="447700900001"),)],
)
async def test_route_signature_suffix_and_sender_override(gateway: Gateway, db_clock: MockClock) -> None:
    message_id = await gateway.scheduler.smpp.submit("acme", submit_sm(text=b"hello"))
    await gateway.sender.wait_sent(1)
    assert gateway.sender.sent[0][1].user_data == b"Co: hello Bye"
    (stored,) = await gateway.store.find("acme", message_id)
    assert (stored.source.addr, stored.source.ton) == ("447700900001", 1)


async def test_blocked_content_is_refused_at_submit(gateway: Gateway, tmp_path: Path, db_clock: MockClock) -> None:
    path = tmp_path / "blocked.txt"
    path.write_text("casino\nre:fr[e3]{2} money\n")
    scheduler = Scheduler(gateway.store, Config(routes=(RouteConfig(name="uk", prefixes=("44",),
                                                                    blocked_keywords_path=str(path)),)),
                          gateway.clock)
    for text in (b"Visit our CASINO today", b"get fr33 money now"):
        with pytest.raises(BackendError) as refused:
            await scheduler.smpp.submit("acme", submit_sm(text=text))
        assert refused.value.command_status == 0x402
    assert await scheduler.smpp.submit("acme", submit_sm(text=b"casinos are not whole-word matches"))


@pytest.mark.parametrize("accounts_config", [POLICY_ACCOUNTS])
async def test_do_not_call_rejects_promotional_messages_uncharged(gateway: Gateway, db_clock: MockClock) -> None:
    facts = gateway.store.policy_facts()
    await trio.to_thread.run_sync(lambda: facts.add_dnc([PAID, HANDSET], source="test"))
    await trio.to_thread.run_sync(facts.add_consent, "promo", HANDSET)
    await gateway.store.topup("promo", 1_000_000, gateway.clock.now_ms())
    blocked = await gateway.scheduler.smpp.submit("promo", submit_sm())
    assert await receipt_for(gateway, "promo", blocked) == ("REJECTD", "801")
    assert await gateway.store.balance("promo") == 1_000_000
    consented = await gateway.scheduler.smpp.submit("promo", submit_sm(to=HANDSET))
    per_message = await gateway.scheduler.smpp.submit("acme", submit_sm(service_type="promo"))
    transactional = await gateway.scheduler.smpp.submit("acme", submit_sm())
    assert await receipt_for(gateway, "acme", per_message) == ("REJECTD", "801")
    await gateway.sender.wait_sent(2)
    assert sorted(s.destination for _, s, _ in gateway.sender.sent) == [PAID, HANDSET]
    states = [(await gateway.scheduler.smpp.query(a, m, "")).message_state
              for a, m in (("promo", consented), ("acme", transactional), ("acme", per_message))]
    assert states == [MessageState.ENROUTE, MessageState.ENROUTE, MessageState.REJECTED]


@pytest.mark.parametrize(("messages_config", "accounts_config"), TWO_WAY)
async def test_opt_out_is_confirmed_once_and_later_messages_rejected(gateway: Gateway, db_clock: MockClock) -> None:
    gateway.sender.decide = sent_now(gateway)
    await send_from(gateway, "acme", "ACME", 1)
    balance = await gateway.store.balance("acme")
    await mo(gateway, " stop ")
    assert (await mo_for(gateway, "acme")).short_message == b" stop "
    await gateway.sender.wait_sent(2)
    confirmation = gateway.sender.sent[1][1]
    assert confirmation.destination == HANDSET and confirmation.user_data.startswith(b"You have been unsubscribed")
    await mo(gateway, "STOP")
    await mo_for(gateway, "acme")
    message_id = await gateway.scheduler.smpp.submit("acme", replace(submit_sm(to=HANDSET), source_addr="ACME"))
    assert await receipt_for(gateway, "acme", message_id) == ("REJECTD", "803")
    assert await gateway.store.balance("acme") == balance
    assert len(gateway.sender.sent) == 2  # one confirmation, nothing to the opted-out handset
    other = await gateway.scheduler.smpp.submit("shop", replace(submit_sm(to=HANDSET, registered_delivery=0)))
    await gateway.sender.wait_sent(3)  # the opt-out is per account
    assert (await gateway.store.find("shop", other))[0].state.name != "REJECTED"


SUB_ACCOUNTS = (
    AccountConfig("acme", "x"),
    AccountConfig("acme-sales", "x", parent="acme"),
    AccountConfig("acme-support", "x", parent="acme"),
)


@pytest.mark.parametrize("accounts_config", [SUB_ACCOUNTS])
async def test_sub_accounts_cannot_see_or_touch_each_others_messages(gateway: Gateway, db_clock: MockClock) -> None:
    await gateway.store.transfer("acme", "acme-sales", 500_000, gateway.clock.now_ms())
    later = submit_sm(schedule_delivery_time=format_relative(timedelta(hours=1)))
    message_id = await gateway.scheduler.smpp.submit("acme-sales", later)
    for other in ("acme-support", "acme"):  # a sibling, and the parent too: as for an unknown id
        with pytest.raises(BackendError) as caught:
            await gateway.scheduler.smpp.query(other, message_id, "")
        assert caught.value.command_status == CommandStatus.ESME_RQUERYFAIL
        with pytest.raises(BackendError) as caught:
            await gateway.scheduler.smpp.cancel(other, CancelSm(sequence_number=2, message_id=message_id))
        assert caught.value.command_status == CommandStatus.ESME_RCANCELFAIL
        with pytest.raises(BackendError) as caught:
            await gateway.scheduler.smpp.replace(other, ReplaceSm(sequence_number=3, message_id=message_id, short_message=b"x"))
        assert caught.value.command_status == CommandStatus.ESME_RREPLACEFAIL
    owner = await gateway.scheduler.smpp.query("acme-sales", message_id, "")
    assert owner.message_state == MessageState.ENROUTE
    assert await gateway.store.balance("acme-sales") == 500_000 - 50_000  # charged to the sub-account itself


# -- MO receipts to handsets ---------------------------------------------------------------------------------------

RECEIPTS = [
    pytest.param(
        MessageConfig(mo_default_account="acme"),
        (AccountConfig("acme", "x", mo_receipts=True), AccountConfig("shop", "x", keywords=("Pizza",))),
        id="mo-receipts",
    )
]


async def notice(gateway: Gateway, count: int) -> OutgoingSms:
    with trio.fail_after(60):
        await gateway.sender.wait_sent(count)
    sms = gateway.sender.sent[count - 1][1]
    assert sms.destination == HANDSET and sms.status_report  # the gateway still learns its fate
    return sms


@pytest.mark.parametrize(("messages_config", "accounts_config"), RECEIPTS)
async def test_mo_receipt_is_flash_until_the_handset_toggles_it(gateway: Gateway, db_clock: MockClock) -> None:
    balance = await gateway.store.balance("acme")
    await mo(gateway, "hello")
    assert not gateway.sender.sent  # nothing before the ESME takes it
    assert (await mo_for(gateway, "acme")).short_message == b"hello"
    first = await notice(gateway, 1)
    assert first.flash and first.user_data == b"Your message was delivered to acme"
    await mo(gateway, " pt\n")
    toggled = await notice(gateway, 2)
    assert not toggled.flash and toggled.user_data.startswith(b"Delivery notices will now come as normal SMS")
    assert await nothing_for(gateway, "acme")  # the toggle is the gateway's, not forwarded
    await mo(gateway, "again")
    await mo_for(gateway, "acme")
    assert not (await notice(gateway, 3)).flash
    await mo(gateway, "PT")
    assert (await notice(gateway, 4)).flash
    await mo(gateway, "and again")
    await mo_for(gateway, "acme")
    assert (await notice(gateway, 5)).flash
    await trio.sleep(60)
    assert len(gateway.sender.sent) == 5
    assert await gateway.store.balance("acme") == balance
    assert [entry.kind for entry in await gateway.store.ledger("acme", 10)] == ["topup"]
    assert await nothing_for(gateway, "acme")  # no receipt of the notices either


@pytest.mark.parametrize(("messages_config", "accounts_config"), RECEIPTS)
async def test_mo_receipt_only_for_accounts_that_want_it(gateway: Gateway, db_clock: MockClock) -> None:
    await mo(gateway, "pizza")
    item = await gateway.scheduler.smpp.next_outbound("shop")
    await gateway.scheduler.smpp.release(item.item_id)  # not taken: offered again, no notice either way
    await mo_for(gateway, "shop")
    await mo(gateway, "Pizza PT")
    await mo_for(gateway, "shop")
    await trio.sleep(60)
    assert not gateway.sender.sent


async def esme_takes_all(gateway: Gateway, account: str, taken: list[str]) -> None:
    while True:
        item = await gateway.scheduler.smpp.next_outbound(account)
        taken.append((item.pdu.short_message or b"").decode())
        await gateway.scheduler.smpp.acknowledge(item.item_id)


async def handset(gateway: Gateway, number: str, answer: Callable[[OutgoingSms], IncomingSms]) -> None:
    """The network side of `number`: whatever the gateway sends there is answered with an MO."""
    seen = 0
    while True:
        await gateway.sender.wait_sent(seen + 1)
        sms = gateway.sender.sent[seen][1]
        seen += 1
        if sms.destination == number:
            await gateway.scheduler.mo.incoming_sms(answer(sms))


OWN_SIM = "447700900002"  # the number of another modem of this gateway (m2)


@pytest.mark.parametrize(("messages_config", "accounts_config"), RECEIPTS)
async def test_the_gateways_own_notice_coming_back_gets_no_notice(
    gateway: Gateway, db_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "smsgw.scheduler.mo")
    taken: list[str] = []

    def arrives_at_m2(sms: OutgoingSms) -> IncomingSms:
        # What m1 sent to m2's number arrives at m2, from m1's number.
        return IncomingSms("m2", OWN_SIM, MODEM_MSISDN, sms.user_data.decode(), 0, START, flash=sms.flash)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(esme_takes_all, gateway, "acme", taken)
        nursery.start_soon(handset, gateway, OWN_SIM, arrives_at_m2)
        # m2 texted m1 (an e2e test does this): the account takes it, and m2 gets the notice...
        await gateway.scheduler.mo.incoming_sms(IncomingSms("m1", MODEM_MSISDN, OWN_SIM, "hello", 0, START))
        await trio.sleep(24 * 3600)
        nursery.cancel_scope.cancel()
    # ...which comes back as an MO the account takes too, and that one is noticed no further.
    assert taken == ["hello", "Your message was delivered to acme"]
    assert [sms.destination for _, sms, _ in gateway.sender.sent] == [OWN_SIM]
    assert "reason=own notice came back" in caplog.text


@pytest.mark.parametrize(
    ("messages_config", "accounts_config"),
    [(replace(MessageConfig(mo_default_account="acme"), notices_per_handset_max=3), RECEIPTS[0].values[1])],
)
async def test_notices_to_one_handset_are_limited(
    gateway: Gateway, db_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # A handset (or another gateway) that answers every SMS: notice, answer, notice... until the limit.
    taken: list[str] = []

    def auto_reply(sms: OutgoingSms) -> IncomingSms:
        return IncomingSms("m1", MODEM_MSISDN, HANDSET, "I am away", 0, START)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(esme_takes_all, gateway, "acme", taken)
        nursery.start_soon(handset, gateway, HANDSET, auto_reply)
        await mo(gateway, "hello")
        await trio.sleep(59 * 60)
        assert len(gateway.sender.sent) == 3 and taken == ["hello"] + ["I am away"] * 3
        assert "reason=limit of 3 per 3600 s reached" in caplog.text
        # A window later the handset gets notices again.
        await trio.sleep(3600)
        await mo(gateway, "back again")
        await gateway.sender.wait_sent(4)
        nursery.cancel_scope.cancel()
    assert [sms.user_data for _, sms, _ in gateway.sender.sent] == [b"Your message was delivered to acme"] * 4


async def receipts_for(gateway: Gateway, count: int) -> list[str]:
    """`count` delivered messages, their receipts taken (reserved) but not yet acknowledged."""
    for _ in range(count):
        await gateway.scheduler.smpp.submit("acme", submit_sm())
    await gateway.sender.wait_sent(count)
    for index in range(count):
        await gateway.report(0x00, index)
    return [(await gateway.scheduler.smpp.next_outbound("acme")).item_id for _ in range(count)]


async def test_acknowledgements_are_written_together_and_never_offered_again(
    gateway: Gateway, db_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    deletes: list[list[str]] = []
    delete = gateway.store.outbox_delete

    async def recording_delete(item_ids: list[str]) -> list[bool]:
        deletes.append(list(item_ids))
        return await delete(item_ids)

    monkeypatch.setattr(gateway.store, "outbox_delete", recording_delete)
    items = await receipts_for(gateway, 5)
    for item_id in items:  # as the SMPP reader does, one deliver_sm_resp after the other
        await gateway.scheduler.smpp.acknowledge(item_id)
    with trio.move_on_after(60) as waited:
        await gateway.scheduler.smpp.next_outbound("acme")  # acknowledged: not offered, written or not
    assert waited.cancelled_caught
    assert deletes == [items]  # one write for the five
    assert await outbox_items(gateway.store, "acme") == []


async def test_an_item_stored_in_the_commit_that_deletes_an_acknowledged_one_is_offered(
    gateway: Gateway, db_clock: MockClock
) -> None:
    """The deletion of the newest item and a new item in one commit: the new one gets an id of its own, so the
    acknowledged item's reservation (released only once its deletion is reported) does not hide it."""
    now = gateway.clock.now_ms()

    async def store_mo(text: str) -> None:
        await gateway.store.store_mo(IncomingSms("m1", MODEM_MSISDN, HANDSET, text, 0, START), "acme", MODEM_MSISDN, now)

    await store_mo("first")
    first = await gateway.scheduler.smpp.next_outbound("acme")
    held, release = trio.Event(), threading.Event()

    def hold(connection: object) -> None:
        trio.from_thread.run_sync(held.set)
        release.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(gateway.store.writer.write, hold)
        await held.wait()
        await gateway.scheduler.smpp.acknowledge(first.item_id)
        await trio.testing.wait_all_tasks_blocked()  # its deletion waits for the writer
        nursery.start_soon(store_mo, "second")
        await trio.testing.wait_all_tasks_blocked()  # and the new item right behind it
        release.set()
    with trio.fail_after(60):
        second = await gateway.scheduler.smpp.next_outbound("acme")
    assert second.pdu.short_message == b"second" and second.item_id != first.item_id


async def test_an_acknowledgement_is_in_the_next_commit_while_the_previous_one_commits(
    gateway: Gateway, db_clock: MockClock
) -> None:
    """Issue 13: the window in which a crash offers a taken receipt again is one commit. An acknowledgement that
    comes in while the previous one's commit runs is in the next commit, ahead of the writes queued before it
    (not held back until the previous deletion returns, nor behind the queue)."""
    first, second = await receipts_for(gateway, 2)
    writer = gateway.store.writer

    def holder() -> tuple[trio.Event, threading.Event, Callable[[object], None]]:
        held, release = trio.Event(), threading.Event()

        def hold(connection: object) -> None:
            trio.from_thread.run_sync(held.set)
            release.wait()

        return held, release, hold

    def second_is_deleted(connection: sqlite3.Connection, items: list[None]) -> list[bool]:
        # Combined like the deletion, so it runs after it when both are in one commit (plain ops run first).
        deleted = connection.execute("SELECT COUNT(*) FROM outbox WHERE id = ?", (int(second),)).fetchone()[0] == 0
        return [deleted for _ in items]

    held1, release1, hold1 = holder()
    held2, release2, hold2 = holder()
    seen: list[bool] = []

    async def queued_write() -> None:
        seen.append(await writer.write_combined(second_is_deleted, None))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.write, hold1)
        await held1.wait()
        await gateway.scheduler.smpp.acknowledge(first)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(writer.write, hold2)  # in the first deletion's commit, which it holds open
        await trio.testing.wait_all_tasks_blocked()
        release1.set()
        await held2.wait()
        await gateway.scheduler.smpp.acknowledge(second)
        nursery.start_soon(queued_write)
        await trio.testing.wait_all_tasks_blocked()
        release2.set()
    assert seen == [True]


async def test_acknowledgements_queued_at_stop_are_still_written(tmp_path: Path, db_clock: MockClock) -> None:
    config = Config(routes=(RouteConfig(name="uk", prefixes=("44",)),), store=StoreConfig(synchronous="NORMAL"),
                    messages=MessageConfig(foreign_writes_poll_s=0))
    sender = FakeSender(decide=lambda sms: SendFailed(True, "unused"))
    sender.decide = sender.ok
    async with open_store(tmp_path / "stop.db", config.store) as store:
        scheduler = Scheduler(store, config, WallClock(START))
        async with trio.open_nursery() as nursery:
            await nursery.start(scheduler.run, sender)
            items = await receipts_for(Gateway(scheduler, store, sender, WallClock(START)), 3)
            for item_id in items:
                await scheduler.smpp.acknowledge(item_id)
            nursery.cancel_scope.cancel()  # before the writer task ran
        assert await outbox_items(store, "acme") == []


@pytest.mark.parametrize(("node", "waits_for_the_claim"), [("n1", False), ("n2", True)])
async def test_an_item_on_a_bind_when_its_node_died_is_offered_at_its_restart_or_when_its_claim_ends(
    tmp_path: Path, db_clock: MockClock, node: str, waits_for_the_claim: bool
) -> None:
    """Node n1 stops with an MO on a bind (never acknowledged nor released: as if it died) and another read
    ahead. Its restart (same name) offers both at once; another node n2 on the same store gets the read-ahead
    at once (given back at the stop), the one on the bind only once n1's claim ends, and never before."""
    config = Config(routes=(RouteConfig(name="uk", prefixes=("44",)),), store=StoreConfig(synchronous="NORMAL"),
                    messages=MessageConfig(foreign_writes_poll_s=0), node=NodeConfig("n1"))
    sender = FakeSender(decide=lambda sms: SendFailed(True, "unused"))
    clock = WallClock(START)
    async with open_store(tmp_path / "nodes.db", config.store) as store:
        first = Scheduler(store, config, clock)
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run, sender)
            for text in ("held", "read ahead"):
                sms = IncomingSms("m1", MODEM_MSISDN, HANDSET, text, 0, START)
                await store.store_mo(sms, "acme", MODEM_MSISDN, clock.now_ms())
            held = await first.smpp.next_outbound("acme")
            nursery.cancel_scope.cancel()
        second = Scheduler(store, replace(config, node=NodeConfig(node)), clock)
        async with trio.open_nursery() as nursery:
            await nursery.start(second.run, sender)
            with trio.fail_after(2):
                offered = [await second.smpp.next_outbound("acme")]
            if waits_for_the_claim:
                with trio.move_on_after(config.smpp.outbox_claim_s - 1) as waited:
                    await second.smpp.next_outbound("acme")
                assert waited.cancelled_caught
            with trio.fail_after(2):
                offered.append(await second.smpp.next_outbound("acme"))
            texts = [item.pdu.short_message for item in offered]
            assert texts == ([b"read ahead", b"held"] if waits_for_the_claim else [b"held", b"read ahead"])
            assert held.item_id in [item.item_id for item in offered]
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize(("setting", "sends", "stat", "counts"), [
    ("resend", 1, "DELIVRD", "interrupted_handoffs=1 resent=1 failed=0"),
    ("fail", 0, "UNDELIV", "interrupted_handoffs=1 resent=0 failed=1"),
])
async def test_interrupted_handoff_is_resent_or_failed_as_configured(
    tmp_path: Path, db_clock: MockClock, caplog: pytest.LogCaptureFixture, setting: str, sends: int, stat: str,
    counts: str,
) -> None:
    """The process dies inside AT+CMGS; the next run sends the segment again ("resend", the default) or ends it
    UNDELIVERABLE with err 807 ("fail"), and logs how many went each way."""
    config = Config(
        routes=(RouteConfig(name="uk", prefixes=("44",)),), store=StoreConfig(synchronous="NORMAL"),
        messages=MessageConfig(foreign_writes_poll_s=0, interrupted_handoff=setting),  # type: ignore[arg-type]
    )
    path = tmp_path / "handoff.db"
    stuck = FakeSender(decide=lambda sms: SendFailed(True, "unused"))
    called = trio.Event()

    async def never_answers(sms: OutgoingSms) -> SendOutcome:
        called.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    stuck.send = never_answers  # type: ignore[method-assign]
    async with open_store(path, config.store) as store:
        scheduler = Scheduler(store, config, WallClock(START))
        async with trio.open_nursery() as nursery:
            await nursery.start(scheduler.run, stuck)
            message_id = await scheduler.smpp.submit("acme", submit_sm())
            await called.wait()
            nursery.cancel_scope.cancel()  # as kill -9 would: nothing recorded after the hand-off
    sender = FakeSender(decide=lambda sms: SendFailed(True, "unused"))
    sender.decide = sender.ok
    caplog.set_level(logging.INFO, logger="smsgw.scheduler")
    async with open_store(path, config.store) as store:
        gateway = Gateway(Scheduler(store, config, WallClock(START)), store, sender, WallClock(START))
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.scheduler.run, sender)
            await gateway.sender.wait_sent(sends)
            if sends:
                await gateway.report(0x00)
            receipt = await gateway.scheduler.smpp.next_outbound("acme")
            nursery.cancel_scope.cancel()
    assert len(sender.sent) == sends
    fields = parse_receipt(receipt.pdu.short_message.decode())
    assert fields.message_id == message_id and fields.stat == stat
    assert fields.err == ("807" if setting == "fail" else "000")
    assert f"scheduler started {counts} " in caplog.text


@pytest.mark.parametrize("messages_config", [MessageConfig(max_in_flight_segments=2)])
async def test_at_most_max_in_flight_segments_on_the_modems_and_the_rest_follows(
    gateway: Gateway, db_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sending = peak = 0
    send = gateway.sender.send

    async def counting_send(sms: OutgoingSms) -> SendOutcome:
        nonlocal sending, peak
        sending += 1
        peak = max(peak, sending)
        try:
            return await send(sms)
        finally:
            sending -= 1

    monkeypatch.setattr(gateway.sender, "send", counting_send)
    for _ in range(7):
        await gateway.scheduler.smpp.submit("acme", submit_sm())
    await gateway.sender.wait_sent(7)
    assert peak == 2


# -- numbers and segment limits (issue 14 items 2 and 3) -----------------------------------------------------------


@pytest.mark.parametrize("accounts_config", [POLICY_ACCOUNTS])
async def test_numbers_are_read_in_the_accounts_region_and_invalid_ones_named(
    gateway: Gateway, db_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    unknown_ton = {"dest_addr_ton": 0, "dest_addr_npi": 0}
    message_id = await gateway.scheduler.smpp.submit("acme", replace(submit_sm(to="+44 (0)7700 900123"), **unknown_ton))
    (stored,) = await gateway.store.find("acme", message_id)
    assert stored.destination.addr == FREE  # not 4407700900123
    with caplog.at_level(logging.INFO, logger="smsgw.scheduler.accept"):
        assert await refused_status(gateway, "acme", replace(submit_sm(to="12"), **unknown_ton)) == (
            CommandStatus.ESME_RINVDSTADR
        )
    assert "'12' is too short for GB" in caplog.text
    # TON 1 with digits no country has: refused, not sent somewhere else.
    assert await refused_status(gateway, "acme", submit_sm(to="4412345")) == CommandStatus.ESME_RINVDSTADR
    numeric_sender = replace(submit_sm(), source_addr="44791112345", source_addr_ton=1, source_addr_npi=1)
    assert await refused_status(gateway, "promo", numeric_sender) == CommandStatus.ESME_RINVSRCADR


def esme_part(total: int, sequence: int = 1, *, sar: bool = False) -> SubmitSm:
    """Part `sequence` of `total` of a message the ESME split, with a UDH or with SAR TLVs."""
    if sar:
        tlvs = Tlvs(sar_msg_ref_num=7, sar_total_segments=total, sar_segment_seqnum=sequence)
        return submit_sm(text=b"part", tlvs=tlvs)
    udh = bytes((5, 0, 3, 7, total, sequence))
    return submit_sm(text=udh + b"part", esm_class=EsmClass.UDHI)


@pytest.mark.parametrize("sar", [False, True], ids=["udh", "sar"])
async def test_the_routes_segment_limit_holds_for_messages_the_esme_split(
    gateway: Gateway, db_clock: MockClock, sar: bool
) -> None:
    """The route allows 3 segments: every part of a 4-part message is refused 0x406 (err 806), from the first;
    a 3-part message goes out."""
    for sequence in (1, 4):
        status = await refused_status(gateway, "acme", esme_part(4, sequence, sar=sar))
        assert status == GatewayError.TOO_MANY_SEGMENTS.command_status == 0x406
    for sequence in (1, 2, 3):
        await gateway.scheduler.smpp.submit("acme", esme_part(3, sequence, sar=sar))
    await gateway.sender.wait_sent(3)
    assert len(gateway.sender.sent) == 3
