"""The store contract: every test here takes `store` or `store_factory`, and so runs over every engine in
`conftest.ENGINES`, through the `MessageStore` Protocol only. What is particular to SQLite (its writer, its
files, its migrations) is tested in test_sqlite_store.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import trio

from smsgw.modem.seams import IncomingSms, Sent, StatusReport
from smsgw.scheduler.ids import MessageIdGenerator
from smsgw.scheduler.model import (
    Address,
    Claimant,
    InsufficientBalance,
    LatencyHistogram,
    MessageFilter,
    NewMessage,
    NewSegment,
    NotCancellable,
    OutboxClaim,
    ReceiptRecord,
    StoreUnavailable,
)
from smsgw.scheduler.states import State
from smsgw.scheduler.store import MessageStore
from smsgw.scheduler.timing import from_ms, to_ms
from smsgw.scheduler.writer import COMMIT_SECONDS_BUCKETS, CommitLatency
from tests.scheduler.conftest import StoreFactory, outbox_items

T0 = to_ms(datetime(2026, 1, 1, tzinfo=UTC))
_ids = MessageIdGenerator()


def new_message(
    *,
    account: str = "acme",
    destination: str = "447911000001",
    segments: int = 1,
    price: int = 0,
    start_ms: int = T0,
    registered_delivery: int = 1,
) -> NewMessage:
    return NewMessage(
        message_id=_ids.next(T0),
        dest_index=0,
        account=account,
        service_type="",
        source=Address("ACME", 5, 0),
        destination=Address(destination, 1, 1),
        route="default",
        modem_group="default",
        esm_class=0,
        registered_delivery=registered_delivery,
        data_coding=0,
        flash=False,
        gateway_split=segments > 1,
        text="hello world",
        submitted_ms=T0,
        start_ms=start_ms,
        expires_ms=start_ms + 7_200_000,
        price_per_segment_micro=price,
        segments=tuple(NewSegment(0, b"hello", b"") for _ in range(segments)),
    )


def sent(tp_mr: int) -> Sent:
    return Sent(modem="m1", modem_msisdn="447700900001", tp_mr=tp_mr, sent_at=from_ms(T0 + 1000))


async def test_accept_claim_send_report_delivers_and_queues_one_receipt(store: MessageStore) -> None:
    message = new_message(segments=2)
    assert await store.accept([message]) == (True,)
    assert await store.next_due_ms() == T0
    handoffs = await store.claim_due(T0, 10)
    assert [h.segment_id for h in handoffs] == [f"{message.message_id}.0.0", f"{message.message_id}.0.1"]
    assert await store.claim_due(T0, 10) == []  # on a modem: not due again
    for tp_mr, handoff in enumerate(handoffs):
        await store.record_sent(handoff.segment_rowid, sent(tp_mr), T0 + 10_000_000, T0 + 1000, T0)
    (stored,) = await store.find("acme", message.message_id)
    assert stored.state is State.PROCESSING
    report = StatusReport("m1", 0, "+447911000001", 0, from_ms(T0 + 2000), from_ms(T0 + 1000))
    assert await store.apply_status_report(report, T0 + 2000, 3_600_000, T0) is State.DELIVERED
    assert await outbox_items(store, "acme") == []  # one part is still open
    report = replace(report, tp_mr=1)
    assert await store.apply_status_report(report, T0 + 3000, 3_600_000, T0) is State.DELIVERED
    (entry,) = await outbox_items(store, "acme")
    assert isinstance(entry.record, ReceiptRecord)
    assert entry.record.state is State.DELIVERED and entry.record.delivered_segments == 2
    assert entry.record.message_id == message.message_id
    (stored,) = await store.find("acme", message.message_id)
    assert stored.state is State.DELIVERED and stored.final_ms == T0 + 3000
    assert await store.outbox_delete([entry.item_id, entry.item_id]) == [True, False]
    assert await outbox_items(store, "acme") == []


async def test_concurrent_sents_and_reports_share_commits_and_a_bad_one_fails_alone(store: MessageStore) -> None:
    messages = [new_message(destination=f"4479110000{i:02d}") for i in range(20)]
    await store.accept(messages)
    handoffs = await store.claim_due(T0, 20)
    delivered = handoffs[1:]
    states: dict[int, State] = {}
    errors: list[Exception] = []

    async def record(tp_mr: int, rowid: int) -> None:
        try:
            states[rowid] = await store.record_sent(rowid, sent(tp_mr), T0 + 10_000_000, T0 + 1000, T0)
        except Exception as exc:
            errors.append(exc)

    batches = store.commits()
    async with trio.open_nursery() as nursery:
        for tp_mr, handoff in enumerate(delivered):
            nursery.start_soon(record, tp_mr, handoff.segment_rowid)
        nursery.start_soon(record, 99, 10**9)  # no such segment: fails alone
    assert set(states.values()) == {State.PROCESSING} and len(states) == len(delivered)
    assert len(errors) == 1 and store.commits() - batches < len(delivered)

    results: list[State | None] = []

    async def report(tp_mr: int, recipient: str) -> None:
        report = StatusReport("m1", tp_mr, recipient, 0, from_ms(T0 + 2000), from_ms(T0 + 1000))
        results.append(await store.apply_status_report(report, T0 + 2000, 3_600_000, T0))

    batches = store.commits()
    async with trio.open_nursery() as nursery:
        for tp_mr, handoff in enumerate(delivered):
            nursery.start_soon(report, tp_mr, handoff.destination)
        nursery.start_soon(report, 200, "447911000000")  # matches nothing
    assert sorted(results, key=str) == [State.DELIVERED] * len(delivered) + [None]
    assert store.commits() - batches < len(delivered)
    receipts = await outbox_items(store, "acme")
    assert sorted(r.record.message_id for r in receipts) == sorted(  # type: ignore[union-attr]
        m.message_id for m in messages if m.destination.addr != handoffs[0].destination
    )
    (unsent,) = [m for m in messages if m.destination.addr == handoffs[0].destination]
    (stored,) = await store.find("acme", unsent.message_id)
    assert stored.state is State.PROCESSING  # its hand-off is still open: never sent


async def test_unmatched_report_is_kept_but_changes_nothing(store: MessageStore) -> None:
    report = StatusReport("m1", 7, "447911000001", 0, from_ms(T0), from_ms(T0))
    assert await store.apply_status_report(report, T0, 3_600_000, T0) is None


async def test_insufficient_balance_stores_and_charges_nothing(store: MessageStore) -> None:
    await store.topup("acme", 150, T0)
    results = await store.accept([new_message(price=100), new_message(price=100)])
    assert results == (True, False)
    assert await store.balance("acme") == 50
    kinds = [(e.kind, e.amount_micro, e.balance_after_micro) for e in await store.ledger("acme", 10)]
    assert kinds == [("topup", 150, 150), ("charge", -100, 50)]


async def test_concurrent_submissions_never_overdraw(store: MessageStore) -> None:
    await store.topup("acme", 1000, T0)
    accepted: list[bool] = []

    async def submit() -> None:
        accepted.extend(await store.accept([new_message(price=30, segments=1)]))

    async with trio.open_nursery() as nursery:
        for _ in range(60):
            nursery.start_soon(submit)
    assert accepted.count(True) == 33
    assert await store.balance("acme") == 10
    assert store.commits() < 60  # they shared commits


async def test_cancel_before_hand_off_refunds_and_queues_deleted_receipt(store: MessageStore) -> None:
    await store.topup("acme", 1000, T0)
    message = new_message(price=100, segments=3, start_ms=T0 + 3_600_000)
    await store.accept([message])
    (stored,) = await store.find("acme", message.message_id)
    assert stored.state is State.SCHEDULED
    assert await store.cancel("acme", message.message_id, "", "", T0 + 5) == 1
    assert await store.balance("acme") == 1000
    (entry,) = await outbox_items(store, "acme")
    assert isinstance(entry.record, ReceiptRecord) and entry.record.state is State.CANCELLED
    assert await store.next_due_ms() is None


async def test_cancel_after_hand_off_is_refused(store: MessageStore) -> None:
    message = new_message()
    await store.accept([message])
    await store.claim_due(T0, 10)
    try:
        await store.cancel("acme", message.message_id, "", "", T0)
    except NotCancellable:
        pass
    else:
        raise AssertionError("cancel after hand-off must fail")
    try:
        await store.cancel("other", message.message_id, "", "", T0)
    except NotCancellable:
        pass
    else:
        raise AssertionError("another account's message cannot be cancelled")


async def test_expiry_of_pending_and_of_unreported_segments(store: MessageStore) -> None:
    await store.topup("acme", 1000, T0)
    never_sent = new_message(price=100)
    unreported = new_message(price=100)
    await store.accept([never_sent])
    await store.accept([unreported])
    handoffs = await store.claim_due(T0, 10)
    await store.record_failure(handoffs[0].segment_rowid, temporary=True, error_code=0, retry_at_ms=T0 + 30_000,
                               now_ms=T0)
    await store.record_sent(handoffs[1].segment_rowid, sent(5), never_sent.expires_ms + 600_000, T0, T0)
    assert await store.next_due_ms() == T0 + 30_000
    assert len(await store.claim_due(T0 + 30_000, 10)) == 1  # retried
    await store.record_failure(handoffs[0].segment_rowid, temporary=True, error_code=0,
                               retry_at_ms=never_sent.expires_ms + 99, now_ms=T0 + 31_000)
    assert await store.next_due_ms() == never_sent.expires_ms  # never later than validity
    assert await store.claim_due(never_sent.expires_ms + 600_000, 10) == []
    for message in (never_sent, unreported):
        (stored,) = await store.find("acme", message.message_id)
        assert stored.state is State.EXPIRED
    assert await store.balance("acme") == 900  # the never-sent one is refunded, the sent one is not


async def test_recovery_resends_interrupted_hand_off_once(store_factory: StoreFactory) -> None:
    message = new_message()
    async with store_factory() as store:
        await store.accept([message])
        (handoff,) = await store.claim_due(T0, 10)
    async with store_factory() as store:
        recovery = await store.recover(T0 + 5)
        assert recovery.interrupted_handoffs == 1
        (again,) = await store.claim_due(T0 + 5, 10)
        assert again.segment_rowid == handoff.segment_rowid and again.attempts == 2
    async with store_factory() as store:
        await store.record_sent(handoff.segment_rowid, sent(1), T0 + 9_000_000, T0 + 6, T0)
    async with store_factory() as store:
        assert (await store.recover(T0 + 7)).interrupted_handoffs == 0


async def test_recovery_fails_interrupted_hand_off_with_err_807_when_asked(store_factory: StoreFactory) -> None:
    """`interrupted_handoff = "fail"`: no second send (no duplicate risk); UNDELIVERABLE, err 807, its receipt
    queued and the charge refunded (nothing proves it was sent)."""
    message = new_message(price=100)
    async with store_factory() as store:
        await store.topup("acme", 1000, T0)
        await store.accept([message])
        await store.claim_due(T0, 10)
    async with store_factory() as store:
        recovery = await store.recover(T0 + 5, fail_interrupted=True)
        assert (recovery.interrupted_handoffs, recovery.failed_handoffs) == (1, 1)
        assert await store.claim_due(T0 + 5, 10) == [] and await store.next_due_ms() is None
        (stored,) = await store.find("acme", message.message_id)
        assert stored.state is State.UNDELIVERABLE and stored.error_code == 807
        (entry,) = await outbox_items(store, "acme")
        assert isinstance(entry.record, ReceiptRecord) and entry.record.error_code == 807
        assert await store.balance("acme") == 1000


async def test_purge_removes_only_old_final_messages(store: MessageStore) -> None:
    old, fresh = new_message(), new_message()
    await store.accept([old, fresh])
    await store.cancel("acme", old.message_id, "", "", T0)
    assert await store.purge(T0 + 1, 1) == 1
    assert await store.find("acme", old.message_id) == []
    assert len(await store.find("acme", fresh.message_id)) == 1
    assert await store.purge(T0 + 1, 1) == 0


async def test_mo_waits_in_the_outbox_of_its_account(store: MessageStore) -> None:
    sms = IncomingSms("m1", "447700900001", "447911000001", "hi", 0, datetime(2026, 1, 1, tzinfo=UTC))
    await store.store_mo(sms, "acme", sms.modem_msisdn, T0)
    await store.store_mo(sms, None, sms.modem_msisdn, T0)
    (entry,) = await outbox_items(store, "acme")
    assert entry.record.text == "hi"
    assert await outbox_items(store, "other") == []


LEASE = 60_000


async def store_mos(store: MessageStore, count: int) -> None:
    for index in range(count):
        sms = IncomingSms("m1", "447700900001", "447911000001", f"mo {index}", 0, datetime(2026, 1, 1, tzinfo=UTC))
        await store.store_mo(sms, "acme", sms.modem_msisdn, T0)


def item_ids(claim: OutboxClaim) -> list[str]:
    return [entry.item_id for entry in claim.entries]


async def test_two_nodes_never_claim_the_same_item_until_the_claim_ends(store_factory: StoreFactory) -> None:
    """Two nodes: two stores on one database. A live claim keeps an item from the other node (and from a second
    claim of its own node: it is on a bind already); once it ends, either may claim it."""
    async with store_factory() as a, store_factory() as b:
        await store_mos(a, 3)
        claim = await a.outbox_claim("acme", "a", T0, T0 + LEASE, 2)
        assert [e.record.text for e in claim.entries] == ["mo 0", "mo 1"] and claim.until_ms == T0 + LEASE
        items = item_ids(claim) + item_ids(await b.outbox_claim("acme", "b", T0 + 1, T0 + 1 + LEASE, 10))
        assert len(set(items)) == 3
        for store, node in ((b, "b"), (a, "a")):
            nothing = await store.outbox_claim("acme", node, T0 + 2, T0 + 2 + LEASE, 10)
            assert nothing.entries == () and nothing.next_ms == T0 + LEASE  # the first claim to end
        assert (await b.outbox_claim("other", "b", T0 + 2, T0 + 2 + LEASE, 10)).next_ms is None
        # a died holding its two: when their claim ends they are b's (b's own is still live).
        assert (await b.outbox_claim("acme", "b", T0 + LEASE - 1, T0 + 2 * LEASE, 10)).entries == ()
        assert item_ids(await b.outbox_claim("acme", "b", T0 + LEASE, T0 + 2 * LEASE, 10)) == items[:2]
        assert (await a.outbox_claim("acme", "a", T0 + LEASE, T0 + 2 * LEASE, 10)).entries == ()


async def test_a_released_item_cools_down_then_any_node_claims_it(store_factory: StoreFactory) -> None:
    async with store_factory() as a, store_factory() as b:
        await store_mos(a, 2)
        first, second = item_ids(await a.outbox_claim("acme", "a", T0, T0 + LEASE, 10))
        assert await a.outbox_release("b", T0 + 5000, [first]) == 0  # only the node holding it releases it
        assert await a.outbox_release("a", T0 + 5000, [first]) == 1
        cooling = await b.outbox_claim("acme", "b", T0 + 4999, T0 + 4999 + LEASE, 10)
        assert cooling.entries == () and cooling.next_ms == T0 + 5000
        assert item_ids(await b.outbox_claim("acme", "b", T0 + 5000, T0 + 5000 + LEASE, 10)) == [first]
        assert await a.outbox_release("a", T0 + 6000, [first]) == 0  # b's now: a's late release leaves it alone
        assert await a.outbox_delete([second]) == [True]  # acknowledged: gone, whoever holds it
        assert item_ids(await b.outbox_claim("acme", "b", T0 + 10 * LEASE, T0 + 11 * LEASE, 10)) == [first]


async def test_a_node_restarting_releases_its_previous_runs_claims_at_once(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        await store_mos(store, 3)
        items = item_ids(await store.outbox_claim("acme", "a", T0, T0 + LEASE, 2))
        await store.outbox_claim("acme", "b", T0, T0 + LEASE, 1)
    async with store_factory() as store:  # a's restart: it lets go of its own, not of b's
        assert await store.outbox_release("a", T0 + 1, None) == 2
        assert item_ids(await store.outbox_claim("acme", "a", T0 + 1, T0 + 1 + LEASE, 10)) == items


async def test_outbox_ids_are_never_reused(store_factory: StoreFactory) -> None:
    """The scheduler keys reservations and acknowledgements by item id: an item stored after the newest one was
    deleted (or after a restart with an empty outbox) must not take its id."""
    sms = IncomingSms("m1", "447700900001", "447911000001", "hi", 0, datetime(2026, 1, 1, tzinfo=UTC))
    seen: list[str] = []
    for _ in range(2):
        async with store_factory() as store:
            for _ in range(2):
                await store.store_mo(sms, "acme", sms.modem_msisdn, T0)
                (entry,) = await outbox_items(store, "acme")
                assert await store.outbox_delete([entry.item_id]) == [True]
                seen.append(entry.item_id)
    assert len(set(seen)) == len(seen) == 4


async def test_notices_are_limited_per_handset_and_recognised_when_they_come_back(store: MessageStore) -> None:
    hour = 3600_000
    for at in (T0, T0 + 1):
        assert await store.record_notice("447700900002", "id", "mo-receipt", "Got it", at, at + 2 * hour,
                                         since_ms=at - hour, limit=2)
    assert not await store.record_notice("447700900002", "id", "mo-receipt", "Got it", T0 + 2, T0 + 2 * hour,
                                         since_ms=T0 + 2 - hour, limit=2)
    assert await store.record_notice("447700900003", "id", "toggle", "Got it", T0 + 2, T0 + 2 * hour,
                                     since_ms=T0 + 2 - hour, limit=2)  # per handset
    assert await store.record_notice("447700900002", "id", "mo-receipt", "Got it", T0 + hour + 1,
                                     T0 + 3 * hour, since_ms=T0 + 1, limit=2)  # the window moved on

    async def arrives(modem_msisdn: str, text: str, at_ms: int) -> bool:
        sms = IncomingSms("m2", modem_msisdn, "447700900001", text, 0, from_ms(at_ms))
        return await store.is_notice_echo(await store.store_mo(sms, "acme", modem_msisdn, at_ms), 60_000)

    assert await arrives("+447700900002", "Got it", T0 + hour)  # at the SIM it was sent to, while valid
    assert await arrives("447700900002", "Got it", T0 + 2 * hour + 60_000)  # within the grace
    assert not await arrives("447700900002", "Got it!", T0 + hour)
    assert not await arrives("447700900004", "Got it", T0 + hour)
    assert not await arrives("447700900002", "Got it", T0 - 1)  # before any notice
    assert not await arrives("447700900003", "Got it", T0 + 2 * hour + 60_003)  # long after it expired


async def test_replace_changes_text_and_charge(store: MessageStore) -> None:
    await store.topup("acme", 1000, T0)
    message = new_message(price=100, start_ms=T0 + timedelta(hours=1) // timedelta(milliseconds=1))
    await store.accept([message])
    await store.replace(
        "acme",
        message.message_id,
        segments=[NewSegment(0, b"a", b""), NewSegment(0, b"b", b"")],
        text="ab",
        window=(T0, T0 + 3_600_000),
        registered_delivery=None,
        price_per_segment_micro=100,
        now_ms=T0,
    )
    assert await store.balance("acme") == 800
    (stored,) = await store.find("acme", message.message_id)
    assert stored.segment_count == 2 and stored.state is State.ACCEPTED


async def test_recipient_rules_are_read_at_acceptance_for_each_account_of_a_combined_batch(
    store: MessageStore,
) -> None:
    facts = store.policy_facts()
    await trio.to_thread.run_sync(lambda: facts.add_dnc(["447911000001", "447911000002"], source="test"))
    await trio.to_thread.run_sync(lambda: facts.add_consent("acme", "447911000002"))
    await trio.to_thread.run_sync(lambda: facts.suppress("other", "447911000003"))
    for account in ("acme", "other"):
        await store.topup(account, 1000, T0)
    checked = {"check_recipient": True, "promotional": True}
    acme = [
        replace(new_message(destination=number, price=10), **checked)
        for number in ("447911000001", "447911000002", "447911000003")
    ]
    other = [replace(new_message(account="other", destination="447911000003", price=10), **checked),
             new_message(account="other", destination="447911000003", price=10)]  # a notice: no rules
    outcomes: dict[str, tuple[bool, ...]] = {}

    async def submit(name: str, messages: list[NewMessage]) -> None:
        outcomes[name] = await store.accept(messages)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(submit, "acme", acme)
        nursery.start_soon(submit, "other", other)
    assert outcomes == {"acme": (True, True, True), "other": (True, True)}
    found = [(await store.find(m.account, m.message_id))[0] for m in acme + other]
    assert [(m.state, m.error_code) for m in found] == [
        (State.REJECTED, 801),  # do-not-call, promotional, no consent
        (State.ACCEPTED, 0),  # on the register, but consented to acme
        (State.ACCEPTED, 0),  # opted out of "other" only
        (State.REJECTED, 803),
        (State.ACCEPTED, 0),
    ]
    assert await store.balance("acme") == 980 and await store.balance("other") == 990  # rejected: uncharged
    receipts = await outbox_items(store, "acme") + await outbox_items(store, "other")
    assert len(receipts) == 2  # the rejected messages' receipts


async def test_one_bad_submission_in_a_combined_batch_fails_alone(store: MessageStore) -> None:
    # Charged, so acceptance writes the full rows at once (an uncharged message's id is checked when its intake row
    # is expanded: test_sqlite_store.py).
    await store.topup("acme", 100, T0)
    existing = new_message(price=1)
    await store.accept([existing])
    outcomes: dict[str, object] = {}

    async def submit(name: str, message: NewMessage) -> None:
        try:
            outcomes[name] = await store.accept([message])
        except StoreUnavailable as exc:
            outcomes[name] = exc

    good = new_message(price=1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(submit, "duplicate", replace(existing, destination=Address("447911000002")))
        nursery.start_soon(submit, "good", good)
    assert isinstance(outcomes["duplicate"], StoreUnavailable)
    assert outcomes["good"] == (True,)
    assert len(await store.find("acme", good.message_id)) == 1
    assert len(await store.find("acme", existing.message_id)) == 1


async def test_report_that_overtakes_the_sent_record_is_applied_then(store: MessageStore) -> None:
    message = new_message()
    await store.accept([message])
    (handoff,) = await store.claim_due(T0, 10)
    report = StatusReport("m1", 9, "447911000001", 0, from_ms(T0 + 500), from_ms(T0 + 500))
    assert await store.apply_status_report(report, T0 + 500, 3_600_000, T0) is None
    assert await store.record_sent(handoff.segment_rowid, sent(9), T0 + 9_000_000, T0 + 600, T0) is State.DELIVERED
    (stored,) = await store.find("acme", message.message_id)
    assert stored.state is State.DELIVERED


async def test_intermediate_network_report_keeps_the_segment_waiting(store: MessageStore) -> None:
    message = new_message(registered_delivery=0x11)
    await store.accept([message])
    (handoff,) = await store.claim_due(T0, 10)
    await store.record_sent(handoff.segment_rowid, sent(3), T0 + 9_000_000, T0, T0)
    report = StatusReport("m1", 3, "447911000001", 0x21, from_ms(T0), from_ms(T0))  # SME busy, SC still trying
    assert await store.apply_status_report(report, T0 + 1, 3_600_000, T0) is State.PROCESSING
    (entry,) = await outbox_items(store, "acme")
    assert isinstance(entry.record, ReceiptRecord) and entry.record.state is State.PROCESSING
    assert await store.next_due_ms() == T0 + 9_000_000  # still expires if the final report never comes
    final = replace(report, tp_st=0x00)
    assert await store.apply_status_report(final, T0 + 2, 3_600_000, T0) is State.DELIVERED


async def test_transfer_is_one_ledger_row_on_each_side_and_never_overdraws(store: MessageStore) -> None:
    await store.topup("acme", 1_000_000, T0)
    assert await store.transfer("acme", "acme-sales", 400_000, T0 + 1, "march") == (600_000, 400_000)
    (out,) = [e for e in await store.ledger("acme", 10) if e.kind == "transfer_out"]
    (into,) = await store.ledger("acme-sales", 10)
    assert (out.amount_micro, out.balance_after_micro, out.note) == (-400_000, 600_000, "to acme-sales march")
    assert (into.kind, into.amount_micro, into.balance_after_micro) == ("transfer_in", 400_000, 400_000)
    with pytest.raises(InsufficientBalance):
        await store.transfer("acme-sales", "acme", 400_001, T0 + 2)
    with pytest.raises(ValueError):
        await store.transfer("acme", "acme-sales", 0, T0 + 2)
    assert (await store.balance("acme"), await store.balance("acme-sales")) == (600_000, 400_000)
    assert len(await store.ledger("acme-sales", 10)) == 1  # the refused transfer left no row




async def test_client_ref_is_kept_with_the_message(store: MessageStore) -> None:
    message = replace(new_message(), client_ref="order-17")
    await store.accept([message])
    (found,) = await store.find("acme", message.message_id)
    assert found.client_ref == "order-17"


async def test_messages_are_listed_in_keyset_pages_with_filters(store: MessageStore) -> None:
    messages = [
        replace(new_message(destination=f"44791100000{i % 2}"), submitted_ms=T0 + i // 2) for i in range(7)
    ]
    other = new_message(account="other")
    await store.accept([*messages, other])
    everything = MessageFilter(T0, T0 + 1000)
    pages: list[list[str]] = []
    after = None
    while page := await store.list_messages("acme", everything, after, 3):
        pages.append([listed.history.message_id for listed in page])
        after = page[-1].key
    # Oldest first (two share each millisecond: the row order breaks the tie), each once, nothing of "other".
    assert pages == [[m.message_id for m in messages][i : i + 3] for i in (0, 3, 6)]
    to_one = await store.list_messages("acme", MessageFilter(T0, T0 + 1000, number="447911000001"), None, 10)
    assert [listed.history.message_id for listed in to_one] == [m.message_id for m in messages[1::2]]
    assert await store.list_messages("acme", MessageFilter(T0, T0 + 1000, state=State.DELIVERED), None, 10) == []
    assert len(await store.list_messages("acme", MessageFilter(T0 + 1, T0 + 2), None, 10)) == 2
    (listed,) = await store.list_messages("other", everything, None, 10)
    assert listed.history.state == State.ACCEPTED and listed.start_ms == other.start_ms and listed.client_ref == ""


async def test_messages_are_listed_by_error_code(store: MessageStore) -> None:
    failed, fine = new_message(), new_message()
    await store.accept([failed, fine])
    handoffs = await store.claim_due(T0, 10)
    rowid = next(h.segment_rowid for h in handoffs if h.segment_id.startswith(failed.message_id))
    await store.record_failure(rowid, temporary=False, error_code=0x41, retry_at_ms=T0, now_ms=T0)
    listed = await store.list_messages("acme", MessageFilter(T0, T0 + 1000, error_code=0x41), None, 10)
    assert [m.history.message_id for m in listed] == [failed.message_id]
    assert await store.list_messages("acme", MessageFilter(T0, T0 + 1000, error_code=0x46), None, 10) == []


async def test_inbox_names_the_message_each_reply_answers(store: MessageStore) -> None:
    other_account = new_message(account="other")
    message = new_message()  # to 447911000001, sent below from modem m1 at T0 + 1000
    await store.accept([other_account, message])
    for handoff in await store.claim_due(T0, 10):
        await store.record_sent(handoff.segment_rowid, sent(handoff.segment_rowid), T0 + 10_000_000, T0 + 1000, T0)
    sms = IncomingSms("m1", "447700900001", "+447911000001", "yes", 0, datetime(2026, 1, 1, tzinfo=UTC))
    await store.store_mo(sms, "acme", sms.modem_msisdn, T0 + 500)  # before anything was sent: answers nothing
    await store.store_mo(sms, "acme", sms.modem_msisdn, T0 + 2000)
    await store.store_mo(replace(sms, modem="m2", modem_msisdn="447700900002"), "acme", "447700900002", T0 + 2000)
    early, reply, elsewhere = await store.inbox("acme", 0, 10)
    assert early.answers is None and elsewhere.answers is None  # another modem's SIM: not the same conversation
    assert reply.answers is not None
    assert (reply.answers.message_id, reply.answers.text, reply.answers.source_addr, reply.answers.sent_ms) == (
        message.message_id, "hello world", "ACME", T0 + 1000)


async def test_inbox_lists_the_accounts_mo_after_an_id(store: MessageStore) -> None:
    sms = IncomingSms("m1", "447700900001", "447911000001", "hi", 0, datetime(2026, 1, 1, tzinfo=UTC))
    first = await store.store_mo(sms, "acme", sms.modem_msisdn, T0)
    await store.store_mo(replace(sms, text="not routed"), None, sms.modem_msisdn, T0)
    second = await store.store_mo(replace(sms, text="again"), "acme", sms.modem_msisdn, T0 + 5)
    inbox = await store.inbox("acme", 0, 10)
    assert [(e.mo_id, e.text, e.originator, e.recipient) for e in inbox] == [
        (first, "hi", "447911000001", "447700900001"), (second, "again", "447911000001", "447700900001")
    ]
    assert [e.mo_id for e in await store.inbox("acme", first, 10)] == [second]
    assert await store.inbox("other", 0, 10) == []


async def test_api_keys_are_kept_by_hash_listed_touched_and_revoked(store: MessageStore) -> None:
    first = await store.api_key_add("acme", "shop", "a" * 64, T0)
    second = await store.api_key_add("acme", "", "b" * 64, T0 + 1)
    await store.api_key_add("other", "x", "c" * 64, T0 + 2)
    found = await store.api_key_find("b" * 64)
    assert found is not None and (found.key_id, found.account, found.last_used_ms) == (second, "acme", None)
    await store.api_key_used(second, T0 + 60_000)
    assert [(k.key_id, k.name, k.created_ms, k.last_used_ms) for k in await store.api_keys("acme")] == [
        (first, "shop", T0, None), (second, "", T0 + 1, T0 + 60_000)
    ]
    assert len(await store.api_keys(None)) == 3
    revoked = await store.api_key_revoke(first, T0 + 5)
    assert revoked is not None and revoked.name == "shop"
    assert await store.api_key_find("a" * 64) is None
    assert await store.api_key_revoke(first, T0 + 6) is None


def test_commit_latency_buckets_are_cumulative_with_count_and_sum() -> None:
    latency = CommitLatency((0.001, 0.01))
    for seconds in (0.0005, 0.001, 0.002, 0.5):
        latency.observe(seconds)
    assert latency.snapshot() == LatencyHistogram((0.001, 0.01), (2, 3), 4, pytest.approx(0.5035))


async def test_every_commit_is_timed(store: MessageStore) -> None:
    for _ in range(3):
        await store.check_writable()
    latency = store.commit_latency()
    assert latency.count == store.commits() >= 3
    assert latency.bounds == COMMIT_SECONDS_BUCKETS and len(latency.cumulative) == len(latency.bounds)
    assert list(latency.cumulative) == sorted(latency.cumulative) and latency.cumulative[-1] <= latency.count
    assert latency.sum_s > 0


async def test_a_claimant_takes_only_its_routes_and_another_takes_over_when_its_lease_ends(
    store: MessageStore,
) -> None:
    """Several nodes on one store (`Claimant`): a node without a connector for the route never claims its
    segments; a hand-off without an outcome when its lease ends is sent again by a node that serves the route."""
    a = Claimant("a", frozenset({"default"}), lease_ms=1000)
    b = Claimant("b", frozenset({"default", "other"}), lease_ms=1000)
    elsewhere = Claimant("c", frozenset({"other"}), lease_ms=1000)
    message = new_message()
    await store.accept([message])
    assert await store.next_due_ms(elsewhere) is None
    assert await store.claim_due(T0, 10, elsewhere) == []
    (first,) = await store.claim_due(T0, 10, a)
    assert await store.claim_due(T0 + 999, 10, b) == []  # a's lease holds
    assert await store.next_due_ms(b) == T0 + 1000
    (again,) = await store.claim_due(T0 + 1000, 10, b)  # a died inside the hand-off
    assert (again.segment_rowid, again.attempts) == (first.segment_rowid, 2)
    # a restarts: b's hand-off is live, not a's to recover.
    assert (await store.recover(T0 + 1001, claimant=a)).interrupted_handoffs == 0
    assert (await store.recover(T0 + 1001, claimant=b)).interrupted_handoffs == 1


async def test_a_node_renews_only_its_own_handoffs_still_in_progress(store: MessageStore) -> None:
    """`renew_handoffs` holds a node's hand-offs for another lease; a hand-off another node took over (its lease
    ended before the renewal) or one with an outcome is left alone."""
    a = Claimant("a", frozenset({"default"}), lease_ms=1000)
    b = Claimant("b", frozenset({"default"}), lease_ms=1000)
    await store.accept([new_message(segments=3)])
    first, second, third = await store.claim_due(T0, 10, a)
    assert await store.renew_handoffs("a", [first.segment_rowid], T0 + 1900) == 1
    await store.record_sent(second.segment_rowid, sent(1), T0 + 99_000, T0 + 500, T0 + 500)
    assert await store.next_due_ms(b) == T0 + 1000  # the third's lease
    (taken,) = await store.claim_due(T0 + 1000, 10, b)  # a stopped renewing the third
    assert taken.segment_rowid == third.segment_rowid
    rowids = [h.segment_rowid for h in (first, second, third)]
    assert await store.renew_handoffs("a", rowids, T0 + 2500) == 1  # the first only: sent, and b's
    assert await store.next_due_ms(b) == T0 + 2000  # b's lease on the third; the first's is held to T0 + 2500
    (again,) = await store.claim_due(T0 + 2400, 10, b)
    assert again.segment_rowid == third.segment_rowid
