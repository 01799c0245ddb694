"""Kannel's dlr-url escape codes, sans-IO: a report's URL as Kannel's smsbox would write it for the same report
(gw/urltrans.c `urltrans_fill_escape_codes`, gw/dlr.c, gwlib/octstr.c `octstr_url_encode`, read in the
pruiz/kannel mirror of Kannel's source)."""

from __future__ import annotations

from datetime import UTC, datetime

from smsgw.scheduler.dlr import BUFFERED, DELIVERED, SMSC_ACCEPTED, SMSC_REJECTED, kannel_url
from smsgw.scheduler.model import Address, ReceiptRecord
from smsgw.scheduler.states import State
from smsgw.scheduler.timing import to_ms

DONE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RECORD = ReceiptRecord(
    message_id="abc123",
    source=Address("447700900123"),  # the handset
    destination=Address("0044770090001"),  # the original sender
    state=State.DELIVERED,
    error_code=0,
    submitted_ms=to_ms(datetime(2026, 1, 2, 3, 4, tzinfo=UTC)),
    done_ms=to_ms(DONE),
    submitted_segments=1,
    delivered_segments=1,
    text="Hi *there* you",
    service_type="",
)
RECEIPT = "id:abc123 sub:001 dlvrd:001 submit date:2601020304 done date:2601020304 stat:DELIVRD err:000 text:Hi *there* you"


def test_p_is_the_handset_and_capital_p_the_original_sender_as_kannel_writes_them_in_a_report() -> None:
    assert kannel_url("http://h/r?to=%p&from=%P&q=%q&Q=%Q", RECORD, DELIVERED) == (
        "http://h/r?to=447700900123&from=0044770090001&q=447700900123&Q=%2B44770090001"
    )


def test_time_codes_type_ids_and_percent() -> None:
    url = kannel_url("t=%t&T=%T&d=%d&I=%I&F=%F&i=%i&B=%B&100%%", RECORD, DELIVERED)
    assert url == f"t=2026-01-02+03:04:05&T={int(DONE.timestamp())}&d=1&I=abc123&F=abc123&i=smsgw&B=000&100%"


def test_text_codes_show_the_reports_text_encoded_as_kannel_encodes() -> None:
    encoded = RECEIPT.replace(":", "%3A").replace(" ", "+")
    assert kannel_url("%A", RECORD, DELIVERED) == encoded
    assert kannel_url("%b", RECORD, DELIVERED) == encoded
    assert kannel_url("%a", RECORD, DELIVERED) == encoded  # words, spaces squeezed
    assert kannel_url("%k", RECORD, DELIVERED) == "id%3Aabc123"
    # %s takes the next word after the keyword, %S likewise unencoded with '*' as '~', %r the words not taken.
    assert kannel_url("%s|%S|%r", RECORD, DELIVERED).startswith("sub%3A001|dlvrd:001|submit+date%3A2601020304+")


def test_the_networks_events_carry_kannels_ack_and_nack_and_a_retry_no_text() -> None:
    assert kannel_url("%A-%d", RECORD, SMSC_ACCEPTED) == "ACK%2F-8"
    assert kannel_url("%A-%d", RECORD, SMSC_REJECTED) == "NACK%2F-16"
    assert kannel_url("%A-%d", RECORD, BUFFERED) == "-4"


def test_codes_of_fields_a_report_never_has_are_empty_and_unknown_codes_stay() -> None:
    assert kannel_url("u=%u&D=%D&f=%f&o=%o&z=%z&c=%c&end%", RECORD, DELIVERED) == "u=&D=&f=&o=&z=%z&c=%c&end%"
    assert kannel_url("r=%R", RECORD, DELIVERED) == "r=r%3D%25R"
