"""The rules every store engine applies, tested without a store: `billing`, `outcomes`, `outbox_codec`; and the
seam itself: outside `smsgw/scheduler/` the store is reached only through `store.MessageStore`/`open_store`."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest

import smsgw
from smsgw.pdu.dlr import EXCERPT_LENGTH
from smsgw.scheduler import billing, outbox_codec, outcomes
from smsgw.scheduler.model import Address, InsufficientBalance, MoRecord, ReceiptRecord
from smsgw.scheduler.states import Event, State
from tests.scheduler.test_store import T0, new_message


def test_a_submission_is_charged_in_order_and_what_the_balance_cannot_cover_goes_unpaid() -> None:
    balances = {"acme": 150}
    ledger: list[billing.LedgerRow] = []
    request = [new_message(price=100), new_message(price=100), new_message(price=40), new_message(price=0)]
    assert billing.charge_request(balances, request, ledger) == [True, False, True, True]
    assert balances == {"acme": 10}
    assert ledger == [
        billing.LedgerRow("acme", T0, billing.CHARGE, -100, 50, request[0].message_id),
        billing.LedgerRow("acme", T0, billing.CHARGE, -40, 10, request[2].message_id),
    ]


def test_an_unpaid_message_is_kept_only_in_an_acknowledged_submission_and_never_twice_for_a_resend() -> None:
    paid = new_message(price=100)
    unpaid = replace(paid, dest_index=1)  # another destination of the same submission
    other = new_message(price=100)  # another submission of the same request
    assert billing.keeps_unpaid(billing.acknowledged([paid, unpaid], [True, False]), unpaid)
    assert not billing.keeps_unpaid(billing.acknowledged([paid, unpaid], [False, False]), unpaid)  # refused whole
    assert not billing.keeps_unpaid(billing.acknowledged([paid, other], [True, False]), other)  # refused whole too
    resend = replace(unpaid, resends="old-id")
    assert not billing.keeps_unpaid(billing.acknowledged([paid, resend], [True, False]), resend)


@pytest.mark.parametrize(
    ("new", "sent_at", "charge", "refunded"),
    [
        (State.EXPIRED, None, 100, 100),
        (State.CANCELLED, None, 100, 100),
        (State.REJECTED, None, 100, 100),
        (State.EXPIRED, T0, 100, 0),  # sent: the network had it
        (State.DELIVERED, None, 100, 0),
        (State.RETRY, None, 100, 0),  # not final
        (State.UNDELIVERABLE, None, 0, 0),  # nothing was charged
    ],
)
def test_a_segment_is_refunded_when_it_ends_undelivered_without_having_been_sent(
    new: State, sent_at: int | None, charge: int, refunded: int
) -> None:
    refund = billing.refund(new, sent_at, charge)
    assert (0 if refund is None else refund.amount_micro) == refunded
    assert refund is None or refund.note == f"segment not sent: {new.name}"


def test_a_replacement_costs_its_difference_and_never_overdraws() -> None:
    assert billing.replacement_difference(100, 300, 200) == 200
    assert billing.replacement_difference(300, 100, 0) == -200
    assert (billing.replacement_kind(200), billing.replacement_kind(-200)) == (billing.CHARGE, billing.REFUND)
    with pytest.raises(InsufficientBalance):
        billing.replacement_difference(100, 300, 199)


def test_a_transfer_moves_a_positive_amount_it_does_not_overdraw() -> None:
    with pytest.raises(ValueError):
        billing.check_transfer_amount(0)
    with pytest.raises(InsufficientBalance):
        billing.check_transfer_cover("acme", 101, 100)
    billing.check_transfer_cover("acme", 100, 100)
    assert billing.transfer_notes("acme", "sales", "") == ("to sales", "from acme")
    assert (billing.topup_kind(5), billing.topup_kind(-5)) == (billing.TOPUP, billing.ADJUST)


def test_a_message_outcome_is_its_worst_failure_with_that_segment_s_err_code() -> None:
    assert outcomes.message_outcome([(State.DELIVERED, 0), (State.UNDELIVERABLE, 0x41)]) == (State.UNDELIVERABLE, 0x41)
    assert outcomes.message_outcome([(State.DELIVERED, 0), (State.PROCESSING, 0x21)]) == (State.PROCESSING, 0)
    assert outcomes.message_outcome([(State.DELIVERED, 0), (State.DELIVERED, 0)]) == (State.DELIVERED, 0)


@pytest.mark.parametrize(
    ("previous", "derived", "registered_delivery", "intermediate", "follows"),
    [
        (State.PROCESSING, State.DELIVERED, 1, False, True),
        (State.PROCESSING, State.DELIVERED, 0, False, False),  # none asked for
        (State.PROCESSING, State.DELIVERED, 2, False, False),  # on failure only
        (State.PROCESSING, State.EXPIRED, 2, False, True),
        (State.DELIVERED, State.DELIVERED, 1, False, False),  # no change, no second receipt
        (State.PROCESSING, State.RETRY, 0x10, True, True),  # intermediate, asked for
        (State.PROCESSING, State.RETRY, 1, True, False),
        (State.ACCEPTED, State.PROCESSING, 0x11, False, False),  # a hand-off is not worth a receipt
    ],
)
def test_which_receipt_follows_a_change(
    previous: State, derived: State, registered_delivery: int, intermediate: bool, follows: bool
) -> None:
    assert outcomes.receipt_follows(previous, derived, registered_delivery, intermediate=intermediate) is follows


def test_only_a_change_or_an_intermediate_event_moves_the_message() -> None:
    assert outcomes.message_follows(State.PROCESSING, State.DELIVERED, Event.DELIVERED)
    assert outcomes.message_follows(State.PROCESSING, State.PROCESSING, Event.NETWORK_ENROUTE)
    assert not outcomes.message_follows(State.PROCESSING, State.PROCESSING, Event.SENT)


def test_a_receipt_goes_from_the_handset_to_the_esme_and_quotes_the_start_of_the_text() -> None:
    receipt = outcomes.make_receipt(
        message_id="m1", esme_source=Address("ACME", 5, 0), handset=Address("447911000001", 1, 1),
        state=State.DELIVERED, error_code=0, submitted_ms=T0, done_ms=T0 + 1, segment_count=2,
        delivered_segments=2, text="x" * 30, service_type="",
    )
    assert (receipt.source.addr, receipt.destination.addr) == ("447911000001", "ACME")
    assert receipt.text == "x" * EXCERPT_LENGTH


def test_a_due_segment_expires_when_its_validity_is_over_or_its_report_deadline_passed() -> None:
    assert not outcomes.expires_when_due(State.RETRY, T0, T0 + 1)
    assert outcomes.expires_when_due(State.RETRY, T0 + 1, T0 + 1)
    assert outcomes.expires_when_due(State.PROCESSING, T0, T0 + 1)
    assert (outcomes.expiry_error(0), outcomes.expiry_error(0x45)) == (outcomes.EXPIRED_ERROR, 0x45)
    assert outcomes.retry_due_ms(T0 + 5, T0 + 3) == T0 + 3


@pytest.mark.parametrize(
    "record",
    [
        ReceiptRecord("m1", Address("447911000001", 1, 1), Address("ACME", 5, 0), State.EXPIRED, 0x46, T0, T0 + 1,
                      3, 1, "héllo", "CMT"),
        MoRecord(7, "447911000001", "447700900001", "hi ✓", 8, "hi ✓".encode("utf-16-be"), T0, True),
    ],
)
def test_outbox_records_round_trip_through_their_json(record: ReceiptRecord | MoRecord) -> None:
    assert outbox_codec.decode(outbox_codec.kind(record), outbox_codec.encode(record)) == record


def test_nothing_outside_the_scheduler_imports_the_sqlite_engine() -> None:
    package = Path(smsgw.__file__).parent
    importers = []
    for path in package.rglob("*.py"):
        if path.is_relative_to(package / "scheduler"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""] if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names] if isinstance(node, ast.Import)
                else []
            )
            if any(name.startswith(("smsgw.scheduler.sqlite", "smsgw.scheduler.sqlite_store")) for name in names):
                importers.append(str(path.relative_to(package)))
    assert importers == []
