"""Reassembly: completion in any order, duplicates, separate number spaces, timeouts that lose nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.pdu.errors import PduError
from smsgw.pdu.gsm7 import GSM7_BASIC, GSM7_EXTENSION, NationalLanguage
from smsgw.pdu.reassembly import ConcatScheme, PartInfo, Reassembler
from smsgw.pdu.segmentation import SarInfo, segment_text
from smsgw.pdu.text import Encoding
from smsgw.pdu.udh import Concatenation, Udh

GSM_CHARS = [c for c in GSM7_BASIC if c != "\x1b"] + list(GSM7_EXTENSION.values())


def _parts(text: str, reference: int = 9, reference_bits: int = 8) -> list[PartInfo]:
    segmented = segment_text(text, reference=reference, reference_bits=reference_bits, max_segments=255)
    result = []
    for part in segmented.parts:
        concatenation = Udh.from_bytes(part.udh).concatenation if part.udh else Concatenation(reference, 1, 1)
        assert concatenation is not None
        result.append(PartInfo.from_concatenation(concatenation, part.user_data, segmented.encoding))
    return result


def test_parts_in_any_order_complete_the_message() -> None:
    text = "x" * 153 + "y" * 153 + "z" * 10
    third, first, second = _parts(text)[2], _parts(text)[0], _parts(text)[1]
    reassembler = Reassembler(timedelta(minutes=10))
    assert reassembler.add("447700900001", third, 0.0) is None
    assert reassembler.add("447700900001", first, 1.0) is None
    assert len(reassembler) == 1
    whole = reassembler.add("447700900001", second, 2.0)
    assert whole is not None and not whole.incomplete
    assert whole.text() == text
    assert whole.missing == () and whole.total == 3 and whole.reference == 9
    assert (whole.first_received, whole.last_received) == (0.0, 2.0)
    assert len(reassembler) == 0 and reassembler.next_deadline() is None


def test_single_part_passes_straight_through() -> None:
    reassembler = Reassembler(60)
    whole = reassembler.add("a", PartInfo(0, 1, 1, b"hi"), 5.0)
    assert whole is not None and whole.text() == "hi" and not whole.incomplete


def test_duplicates_are_ignored_also_after_completion() -> None:
    first, second = _parts("x" * 200)
    reassembler = Reassembler(60)
    assert not reassembler.is_duplicate("a", first, 0.0)
    assert reassembler.add("a", first, 0.0) is None
    assert reassembler.is_duplicate("a", first, 1.0)
    assert reassembler.add("a", first, 1.0) is None
    assert reassembler.add("a", second, 2.0) is not None
    assert reassembler.is_duplicate("a", second, 3.0)
    # The SMSC retransmits a part whose acknowledgement it missed: no second, incomplete message appears.
    assert reassembler.add("a", second, 3.0) is None
    assert len(reassembler) == 0 and reassembler.expire(1000.0) == []
    # Later, the reference is reused by a new message: that is not a duplicate.
    assert not reassembler.is_duplicate("a", second, 100.0)
    assert reassembler.add("a", second, 100.0) is None
    assert len(reassembler) == 1


def test_number_spaces_and_sources_are_separate() -> None:
    reassembler = Reassembler(60)
    data = b"abc"
    schemes = [
        PartInfo(5, 2, 1, data, Encoding.GSM7, ConcatScheme.UDH8),
        PartInfo(5, 2, 1, data, Encoding.GSM7, ConcatScheme.UDH16),
        PartInfo.from_sar(SarInfo(5, 2, 1), data, Encoding.GSM7),
    ]
    for part in schemes:
        assert reassembler.add("a", part, 0.0) is None
    assert reassembler.add("b", schemes[0], 0.0) is None
    assert len(reassembler) == 4
    # Same reference, different total: another message.
    assert reassembler.add("a", PartInfo(5, 3, 2, data), 0.0) is None
    assert len(reassembler) == 5


def test_timeout_emits_what_arrived() -> None:
    first, _, third = _parts("x" * 400)
    reassembler = Reassembler(timedelta(seconds=60))
    reassembler.add("a", first, 10.0)
    reassembler.add("a", third, 20.0)
    assert reassembler.next_deadline() == 80.0  # measured from the latest part
    assert reassembler.expire(79.9) == []
    [partial] = reassembler.expire(80.0)
    assert partial.incomplete and partial.missing == (2,)
    assert [p.sequence for p in partial.parts] == [1, 3]
    assert partial.text() == "x" * 153 + "x" * 94
    assert reassembler.next_deadline() is None


def test_sender_split_escape_and_surrogate_are_rejoined() -> None:
    # smpplib splits encoded bytes, so an escape or a surrogate pair can straddle its parts.
    reassembler = Reassembler(60)
    reassembler.add("a", PartInfo(1, 2, 1, b"ab\x1b"), 0.0)
    whole = reassembler.add("a", PartInfo(1, 2, 2, b"ec"), 0.0)
    assert whole is not None and whole.text() == "ab€c"
    emoji = "😀".encode("utf-16-be")
    reassembler.add("a", PartInfo(2, 2, 1, b"\x00a" + emoji[:2], Encoding.UCS2), 0.0)
    whole = reassembler.add("a", PartInfo(2, 2, 2, emoji[2:], Encoding.UCS2), 0.0)
    assert whole is not None and whole.text() == "a😀"


def test_incomplete_half_pair_becomes_replacement_character() -> None:
    emoji = "😀".encode("utf-16-be")
    reassembler = Reassembler(60)
    reassembler.add("a", PartInfo(3, 3, 1, b"\x00a" + emoji[:2], Encoding.UCS2), 0.0)
    reassembler.add("a", PartInfo(3, 3, 3, b"\x00b", Encoding.UCS2), 0.0)
    [partial] = reassembler.expire(60.0)
    assert partial.text() == "a\ufffdb"


def test_national_language_parts() -> None:
    text = "Çarşamba öğleden sonra buluşalım, İstanbul'da. " * 8
    segmented = segment_text(text, reference=5, national_languages=(NationalLanguage.TURKISH,), max_segments=8)
    assert segmented.encoding is Encoding.GSM7 and len(segmented.parts) > 1
    reassembler = Reassembler(60)
    results = []
    for part in reversed(segmented.parts):
        udh = Udh.from_bytes(part.udh)
        assert udh.concatenation is not None
        info = PartInfo.from_concatenation(udh.concatenation, part.user_data, Encoding.GSM7, udh.national_tables)
        results.append(reassembler.add("a", info, 0.0))
    whole = results[-1]
    assert whole is not None and whole.text() == text


def test_mixed_encodings_decode_per_run() -> None:
    reassembler = Reassembler(60)
    reassembler.add("a", PartInfo(4, 2, 1, b"Hi ", Encoding.GSM7), 0.0)
    whole = reassembler.add("a", PartInfo(4, 2, 2, "Мир".encode("utf-16-be"), Encoding.UCS2), 0.0)
    assert whole is not None and whole.text() == "Hi Мир"


def test_binary_and_broken_parts_raise_on_text() -> None:
    reassembler = Reassembler(60)
    whole = reassembler.add("a", PartInfo(0, 1, 1, b"\x01\x02", Encoding.BINARY), 0.0)
    assert whole is not None
    with pytest.raises(PduError):
        whole.text()
    assert whole.parts[0].data == b"\x01\x02"  # the data is still there


def test_max_pending_pushes_out_the_oldest() -> None:
    reassembler = Reassembler(60, max_pending=2)
    for reference in range(3):
        reassembler.add("a", PartInfo(reference, 2, 1, b"x"), float(reference))
    assert len(reassembler) == 2
    assert reassembler.next_deadline() == float("-inf")
    [evicted] = reassembler.expire(3.0)
    assert evicted.reference == 0 and evicted.incomplete
    assert reassembler.next_deadline() == 61.0


@pytest.mark.parametrize(
    ("reference", "total", "sequence", "scheme"),
    [
        (256, 2, 1, ConcatScheme.UDH8),
        (70000, 2, 1, ConcatScheme.SAR),
        (1, 2, 3, ConcatScheme.UDH8),
        (1, 0, 0, ConcatScheme.SAR),
    ],
)
def test_invalid_parts_from_the_wire_raise_pdu_error(
    reference: int, total: int, sequence: int, scheme: ConcatScheme
) -> None:
    with pytest.raises(PduError):
        PartInfo(reference, total, sequence, b"", Encoding.GSM7, scheme)


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError):
        Reassembler(0)
    with pytest.raises(ValueError):
        Reassembler(60, max_pending=0)


@settings(max_examples=50)
@given(
    st.one_of(
        st.text(alphabet=st.sampled_from(GSM_CHARS), min_size=161, max_size=1000),
        st.text(alphabet=st.sampled_from("aé€中😀🎉"), min_size=71, max_size=400),
    ),
    st.sampled_from([8, 16]),
    st.randoms(use_true_random=False),
)
def test_segments_reassemble_to_the_text(text: str, reference_bits: int, random: object) -> None:
    parts = _parts(text, reference=77, reference_bits=reference_bits)
    if len(parts) > 1:
        parts = parts + parts[:2]  # duplicates (a single part has no reference to recognise one by)
    random.shuffle(parts)  # type: ignore[attr-defined]
    reassembler = Reassembler(60)
    results = [r for r in (reassembler.add("src", part, 0.0) for part in parts) if r is not None]
    assert len(results) == 1
    assert results[0].text() == text
    assert results[0].reference == 77 and not results[0].incomplete
