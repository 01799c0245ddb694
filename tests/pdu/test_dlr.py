"""Delivery receipts: the exact Appendix B text, and receipts as real SMSCs and public test suites send them."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw.pdu.constants import MessageState
from smsgw.pdu.dlr import (
    STAT_BY_STATE,
    DeliveryReceipt,
    format_receipt,
    message_id_variants,
    parse_receipt,
    receipt_excerpt,
)
from smsgw.pdu.errors import PduError


def test_format_is_exact() -> None:
    receipt = DeliveryReceipt(
        message_id="0a1b2c",
        submitted=1,
        delivered=1,
        submit_date=datetime(2026, 11, 23, 9, 5, 59),
        done_date=datetime(2026, 11, 23, 9, 7),
        stat="DELIVRD",
        err="0",
        text="Your code is 1234, valid for 5 minutes",
    )
    assert format_receipt(receipt) == (
        "id:0a1b2c sub:001 dlvrd:001 submit date:2611230905 done date:2611230907 stat:DELIVRD err:000 "
        "text:Your code is 1234, v"
    )


def test_excerpt_survives_either_reading_of_data_coding_0() -> None:
    assert receipt_excerpt("line1\nline2 $5 @home") == "line1 line2 ?5 ?home"
    assert receipt_excerpt("Привет, мир") == "??????, ???"
    assert len(receipt_excerpt("x" * 50)) == 20


JASMIN = (
    "id:1891273321 sub:001 dlvrd:001 submit date:1305050826 done date:1305050826 stat:DELIVRD err:000 "
    "text:DLVRD TO MOBILE"
)


def test_jasmin_receipt() -> None:
    # jookies/jasmin tests (test_operations.py test_is_delivery_standard).
    receipt = parse_receipt(JASMIN)
    assert receipt == DeliveryReceipt(
        "1891273321", 1, 1, datetime(2013, 5, 5, 8, 26), datetime(2013, 5, 5, 8, 26), "DELIVRD", "000",
        "DLVRD TO MOBILE",
    )
    assert receipt.message_state is MessageState.DELIVERED and receipt.is_final
    assert format_receipt(receipt) == JASMIN


def test_smpp_pdu_receipt_prefers_tlvs() -> None:
    # jookies/smpp.pdu tests/test_pdu_encoding.py test_DeliverSM_sybase_conversion: a C-string short_message with
    # `Text:` and a hex receipted_message_id TLV next to the decimal id in the text.
    short_message = (
        b"id:1891273321 sub:001 dlvrd:001 submit date:1305050826 done date:1305050826 stat:DELIVRD err:000 "
        b"Text:DLVRD TO MOBILE\x00"
    )
    receipt = parse_receipt(
        short_message, receipted_message_id="70BA8A69", message_state=MessageState.DELIVERED
    )
    assert receipt.message_id == "70BA8A69"
    assert receipt.text == "DLVRD TO MOBILE"
    assert receipt.stat == "DELIVRD"


def test_kannel_receipt_with_seconds_and_uuid() -> None:
    # A Kannel receipt quoted in a public SMPP gateway test (12-digit done date, UUID id).
    receipt = parse_receipt(
        "id:5516a151-4970-45b6-b73e-95aefdb11cbf sub:001 dlvrd:001 submit date:2302231414 "
        "done date:230223194211 stat:DELIVRD err:000 text:Hello"
    )
    assert receipt.message_id == "5516a151-4970-45b6-b73e-95aefdb11cbf"
    assert receipt.done_date == datetime(2023, 2, 23, 19, 42, 11)
    assert receipt.text == "Hello"


@pytest.mark.parametrize(
    ("text", "stat", "err", "submitted", "delivered"),
    [
        # GoIP gateway receipts quoted in the same public test: one-digit counts and err, `Text:`.
        (
            "id:4791967 sub:0 dlvrd:1 submit date:2302281329 done date:2302281329 stat:ENROUTE err:0 "
            "Text:Hello World from out",
            "ENROUTE", "000", 0, 1,
        ),
        (
            "id:88316820 sub:0 dlvrd:0 submit date:2302281324 done date:2302281325 stat:UNDELIV err:500 "
            "Text:Hello World from out",
            "UNDELIV", "500", 0, 0,
        ),
    ],
)
def test_goip_receipts(text: str, stat: str, err: str, submitted: int, delivered: int) -> None:
    receipt = parse_receipt(text)
    assert (receipt.stat, receipt.err, receipt.submitted, receipt.delivered) == (stat, err, submitted, delivered)
    assert receipt.text == "Hello World from out"


def test_receipt_without_state_is_refused() -> None:
    # The same public test expects this GoIP receipt without stat: to be rejected.
    with pytest.raises(PduError, match="without a state"):
        parse_receipt(
            "id:88316820 sub:0 dlvrd:0 submit date:2302281324 done date:2302281325 err:500 Text:Hello World from out"
        )


def test_telestax_receipt_with_padding() -> None:
    # RestComm/Telestax DLR parser test: leading zeros in the id, text padded with spaces.
    receipt = parse_receipt(
        "id:0000058049 sub:001 dlvrd:001 submit date:1805170144 done date:1805170144 stat:DELIVRD err:000 "
        "text:none                "
    )
    assert receipt.message_id == "0000058049"
    assert receipt.text.rstrip() == "none"


def test_tolerates_spacing_case_order_and_missing_fields() -> None:
    receipt = parse_receipt("  ID: ab12  Stat: delivered   Err:1 submit_date:2401020304  garbage")
    assert receipt.message_id == "ab12"
    assert receipt.stat == "DELIVRD"
    assert receipt.err == "001"
    assert receipt.submit_date == datetime(2024, 1, 2, 3, 4)
    assert receipt.done_date is None and receipt.submitted == 0 and receipt.text == ""
    assert parse_receipt("id:1 stat:UNDELIVERABLE done date:2413999999").done_date is None  # impossible date


def test_text_field_ends_the_parse() -> None:
    receipt = parse_receipt("id:7 stat:DELIVRD err:000 text:stat:REJECTD id:9")
    assert (receipt.message_id, receipt.stat, receipt.text) == ("7", "DELIVRD", "stat:REJECTD id:9")


def test_tlvs_win() -> None:
    receipt = parse_receipt(
        "id:1 stat:DELIVRD err:000", message_state=5, network_error_code=bytes([3, 0x00, 0x22])
    )
    assert receipt.stat == "UNDELIV" and receipt.message_state is MessageState.UNDELIVERABLE
    assert receipt.err == "034"
    assert parse_receipt("id:1 stat:DELIVRD err:007", network_error_code=b"\x03").err == "007"  # bad TLV: text
    assert parse_receipt("stat:DELIVRD", receipted_message_id="abc").message_id == "abc"


@pytest.mark.parametrize("text", ["", "hello world", "stat:DELIVRD", "id: stat:DELIVRD"])
def test_unparsable_receipts(text: str) -> None:
    with pytest.raises(PduError):
        parse_receipt(text)


def test_unknown_message_state_tlv() -> None:
    with pytest.raises(PduError, match="message_state 9"):
        parse_receipt("id:1", message_state=9)


def test_unknown_stat_word_is_kept() -> None:
    receipt = parse_receipt("id:1 stat:SUBMITD")
    assert receipt.stat == "SUBMITD" and receipt.message_state is MessageState.UNKNOWN


def test_every_state_maps_both_ways() -> None:
    for state, stat in STAT_BY_STATE.items():
        assert parse_receipt(f"id:1 stat:{stat}").message_state is state
        assert parse_receipt("id:1", message_state=state).stat == stat
    assert not parse_receipt("id:1 stat:ACCEPTD").is_final


def test_message_id_variants() -> None:
    assert message_id_variants("70BA8A69") == ("70BA8A69", "1891273321")
    assert message_id_variants("1891273321") == ("1891273321", "70ba8a69", str(0x1891273321))
    assert message_id_variants("msg-1") == ("msg-1",)


dates = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2068, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0)
)


@given(
    st.text(alphabet="0123456789abcdefABCDEF-", min_size=1, max_size=64),
    st.integers(0, 999),
    st.integers(0, 999),
    st.none() | dates,
    st.none() | dates,
    st.sampled_from(sorted(STAT_BY_STATE.values())),
    st.integers(0, 999).map(lambda n: f"{n:03d}"),
    st.text(max_size=40),
)
def test_format_parse_round_trip(
    message_id: str,
    submitted: int,
    delivered: int,
    submit_date: datetime | None,
    done_date: datetime | None,
    stat: str,
    err: str,
    text: str,
) -> None:
    receipt = DeliveryReceipt(message_id, submitted, delivered, submit_date, done_date, stat, err, text)
    parsed = parse_receipt(format_receipt(receipt))
    assert parsed == DeliveryReceipt(
        message_id, submitted, delivered, submit_date, done_date, stat, err, receipt_excerpt(text)
    )


receipt_like = st.lists(
    st.sampled_from(
        ["id:", "sub:", "dlvrd:", "submit date:", "done date:", "stat:", "err:", "Text:"]
        + [" ", "  ", "1", "0", "00", "2401020304", "ab", "DELIVRD", "²", "٣", "\x00", "\n"]
    ),
    max_size=30,
).map("".join)


def test_unicode_digits_are_not_numbers() -> None:
    receipt = parse_receipt("id:² sub:² dlvrd:٣ stat:DELIVRD err:² submit date:٢٤٠١٠٢٠٣٠٤")
    assert (receipt.submitted, receipt.delivered, receipt.err, receipt.submit_date) == (0, 0, "²", None)
    assert message_id_variants(receipt.message_id) == ("²",)


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200), receipt_like))
def test_random_input_only_raises_pdu_error(text: str | bytes) -> None:
    try:
        receipt = parse_receipt(text)
    except PduError:
        return
    message_id_variants(receipt.message_id)
    format_receipt(receipt)
