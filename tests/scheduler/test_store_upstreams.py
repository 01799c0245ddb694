"""The store's side of upstream routes (contract, every engine): the upstream's message_id per segment, receipts
matched by it in hex or decimal, a receipt that overtook its submit_sm_resp applied when that is recorded."""

from __future__ import annotations

import pytest

from smsgw.scheduler.model import ReceiptRecord
from smsgw.scheduler.states import State
from smsgw.scheduler.store import MessageStore
from tests.scheduler.conftest import outbox_items
from tests.scheduler.test_store import T0, new_message

DEADLINE = T0 + 10_000_000


async def _claimed(store: MessageStore) -> tuple[str, int]:
    message = new_message()
    assert await store.accept([message]) == (True,)
    (handoff,) = await store.claim_due(T0, 10)
    assert (handoff.route, handoff.source_addr, handoff.source_addr_ton) == ("default", "ACME", 5)
    return message.message_id, handoff.segment_rowid


@pytest.mark.parametrize(("answered", "quoted"), [("1f4", "500"), ("500", "1f4"), ("abc123", "abc123")])
async def test_a_receipt_quoting_the_upstream_id_in_hex_or_decimal_delivers_our_message(
    store: MessageStore, answered: str, quoted: str
) -> None:
    message_id, rowid = await _claimed(store)
    state = await store.record_upstream_sent(rowid, "opA", answered, receipts=True, report_deadline_ms=DEADLINE,
                                             now_ms=T0 + 100)
    assert state is State.PROCESSING
    assert await store.apply_upstream_receipt("opB", quoted, "DELIVRD", "000", T0 + 200) is None  # other upstream
    assert await store.apply_upstream_receipt("opA", quoted, "DELIVRD", "000", T0 + 300) is State.DELIVERED
    (entry,) = await outbox_items(store, "acme")
    assert isinstance(entry.record, ReceiptRecord)
    assert (entry.record.message_id, entry.record.state, entry.record.error_code) == (
        message_id, State.DELIVERED, 0)


async def test_a_receipt_before_the_submit_sm_resp_was_stored_is_applied_then(store: MessageStore) -> None:
    message_id, rowid = await _claimed(store)
    assert await store.apply_upstream_receipt("opA", "42", "UNDELIV", "011", T0 + 100) is None
    state = await store.record_upstream_sent(rowid, "opA", "2a", receipts=True, report_deadline_ms=DEADLINE,
                                             now_ms=T0 + 200)
    assert state is State.UNDELIVERABLE
    (stored,) = await store.find("acme", message_id)
    assert stored.state is State.UNDELIVERABLE and stored.error_code == 11


async def test_a_route_without_receipts_is_delivered_when_the_upstream_took_it(store: MessageStore) -> None:
    message_id, rowid = await _claimed(store)
    state = await store.record_upstream_sent(rowid, "opA", "7", receipts=False, report_deadline_ms=DEADLINE,
                                             now_ms=T0 + 100)
    assert state is State.DELIVERED


async def test_an_intermediate_receipt_keeps_the_segment_waiting(store: MessageStore) -> None:
    message_id, rowid = await _claimed(store)
    await store.record_upstream_sent(rowid, "opA", "7", receipts=True, report_deadline_ms=DEADLINE, now_ms=T0 + 100)
    assert await store.apply_upstream_receipt("opA", "7", "ENROUTE", "000", T0 + 200) is State.PROCESSING
    assert await store.apply_upstream_receipt("opA", "7", "DELIVRD", "000", T0 + 300) is State.DELIVERED
    # A repeated final receipt changes nothing.
    assert await store.apply_upstream_receipt("opA", "7", "UNDELIV", "001", T0 + 400) is State.DELIVERED
