"""Segmentation: the modelled service's part sizes, boundaries, forms, and a golden multipart from python-gsmmodem."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.pdu.gsm7 import (
    DEFAULT_TABLES,
    ESCAPE,
    GSM7_BASIC,
    GSM7_EXTENSION,
    NationalLanguage,
    NationalTables,
    fill_bits_for_udh,
    is_gsm7,
    pack_septets,
)
from smsgw.pdu.constants import GatewayError
from smsgw.pdu.errors import PduError
from smsgw.pdu.segmentation import (
    SarInfo,
    SegmentedText,
    TooManySegments,
    _encoded_pieces,
    _Plan,
    count_encoded,
    count_segments,
    part_capacity,
    sar_to_udh,
    segment_binary,
    segment_text,
    split_encoded,
    udh_to_sar,
)
from smsgw.pdu.text import Encoding, decode_as, encode_text, units
from smsgw.pdu.udh import Concatenation, PortAddressing, Udh

GSM_CHARS = [c for c in GSM7_BASIC if c != "\x1b"] + list(GSM7_EXTENSION.values())


def _sizes(segmented: SegmentedText) -> list[int]:
    return [units(part.text or "", segmented.encoding) for part in segmented.parts]


def test_part_capacities() -> None:
    assert [part_capacity(Encoding.GSM7, n) for n in (0, 6, 7)] == [160, 153, 152]
    assert [part_capacity(Encoding.UCS2, n) for n in (0, 6, 7)] == [70, 67, 66]
    assert [part_capacity(Encoding.BINARY, n) for n in (0, 6, 7)] == [140, 134, 133]


@pytest.mark.parametrize(
    ("length", "sizes"),
    [(0, [0]), (160, [160]), (161, [153, 8]), (306, [153, 153]), (307, [153, 153, 1]), (459, [153, 153, 153])],
)
def test_gsm_sizes_of_the_modelled_service(length: int, sizes: list[int]) -> None:
    segmented = segment_text("x" * length, reference=1)
    assert segmented.encoding is Encoding.GSM7 and segmented.data_coding == 0
    assert _sizes(segmented) == sizes


@pytest.mark.parametrize(
    ("length", "sizes"),
    [(70, [70]), (71, [67, 4]), (134, [67, 67]), (135, [67, 67, 1]), (201, [67, 67, 67])],
)
def test_ucs2_sizes_of_the_modelled_service(length: int, sizes: list[int]) -> None:
    segmented = segment_text("中" * length, reference=1)
    assert segmented.encoding is Encoding.UCS2 and segmented.data_coding == 8
    assert _sizes(segmented) == sizes


@pytest.mark.parametrize(("text", "needed"), [("x" * 460, 4), ("中" * 202, 4), ("x" * 1377, 9)])
def test_too_many_segments(text: str, needed: int) -> None:
    with pytest.raises(TooManySegments) as caught:
        segment_text(text, reference=1)
    assert caught.value.needed == needed and caught.value.max_segments == 3
    assert caught.value.command_status == GatewayError.TOO_MANY_SEGMENTS.command_status == 0x406
    assert f"needs {needed} segments" in str(caught.value)


def test_a_route_may_allow_eight() -> None:
    assert len(segment_text("x" * (153 * 8), reference=1, max_segments=8).parts) == 8
    with pytest.raises(TooManySegments):
        segment_text("x" * (153 * 8 + 1), reference=1, max_segments=8)


def test_escape_sequence_never_straddles() -> None:
    segmented = segment_text("a" * 152 + "€" + "b" * 10, reference=1)
    assert _sizes(segmented) == [152, 12]
    assert segmented.parts[0].user_data[-1] != ESCAPE
    assert segmented.parts[1].user_data[:2] == bytes([ESCAPE, 0x65])


def test_surrogate_pair_never_straddles() -> None:
    segmented = segment_text("a" * 66 + "😀" + "b" * 10, reference=1)
    assert [len(part.user_data) // 2 for part in segmented.parts] == [66, 12]
    for part in segmented.parts:
        decode_as(part.user_data, Encoding.UCS2)  # strict: no half pair


def test_first_part_reserve_models_a_signature_prefix() -> None:
    # DESIGN.md: the China route leaves 62 characters in the first part for its signature.
    segmented = segment_text("中" * 100, reference=1, max_segments=8, first_part_reserve=5)
    assert _sizes(segmented) == [62, 38]
    assert _sizes(segment_text("中" * 65, reference=1, first_part_reserve=5)) == [65]
    assert _sizes(segment_text("中" * 66, reference=1, first_part_reserve=5)) == [62, 4]
    with pytest.raises(ValueError):
        segment_text("x", reference=1, first_part_reserve=160)


def test_udh_of_each_part() -> None:
    segmented = segment_text("x" * 200, reference=0x42)
    assert [part.udh.hex() for part in segmented.parts] == ["050003420201", "050003420202"]
    assert segmented.parts[0].short_message == segmented.parts[0].udh + b"x" * 153
    single = segment_text("hi", reference=0x42)
    assert single.parts[0].udh == b"" and single.parts[0].short_message == b"hi"


def test_sixteen_bit_reference() -> None:
    segmented = segment_text("x" * 200, reference=0x1234, reference_bits=16)
    assert _sizes(segmented) == [152, 48]
    assert segmented.parts[1].udh.hex() == "06080412340202"
    with pytest.raises(ValueError):
        segment_text("x", reference=256)


def test_explicit_encodings() -> None:
    assert segment_text("hello", encoding=Encoding.UCS2, reference=1).parts[0].user_data == "hello".encode(
        "utf-16-be"
    )
    latin = segment_text("é" * 141, encoding=Encoding.LATIN1, reference=1)
    assert [len(part.user_data) for part in latin.parts] == [134, 7]
    with pytest.raises(ValueError):
        segment_text("x", encoding=Encoding.BINARY, reference=1)


@pytest.mark.parametrize(
    ("text", "encoding"), [("日本語のテキスト" * 40, Encoding.ISO_2022_JP), ("한국어 문자" * 60, Encoding.KS_C_5601)]
)
def test_multi_octet_encodings_never_overflow(text: str, encoding: Encoding) -> None:
    segmented = segment_text(text, encoding=encoding, reference=1, max_segments=20)
    assert segmented.text == text
    assert all(len(part.user_data) <= 134 for part in segmented.parts)
    assert all(decode_as(part.user_data, encoding) == part.text for part in segmented.parts)
    assert len(segment_text("日本", encoding=Encoding.ISO_2022_JP, reference=1).parts) == 1


def test_national_language_tables_when_they_save_segments() -> None:
    turkish_text = "Şişli'de buluşalım mı? Çarşamba öğleden sonra uygun. " * 2
    plain = segment_text(turkish_text, reference=1)
    assert plain.encoding is Encoding.UCS2 and len(plain.parts) == 2
    national = segment_text(turkish_text, reference=1, national_languages=(NationalLanguage.TURKISH,))
    assert national.encoding is Encoding.GSM7 and len(national.parts) == 1
    assert national.national_tables == NationalTables(NationalLanguage.TURKISH, NationalLanguage.DEFAULT)
    udh = Udh.from_bytes(national.parts[0].udh)
    assert udh.national_tables == national.national_tables
    assert decode_as(national.parts[0].user_data, Encoding.GSM7, udh.national_tables) == turkish_text
    # Text the default alphabet carries in as few segments keeps it, without any header.
    english = segment_text("See you at 5", reference=1, national_languages=(NationalLanguage.TURKISH,))
    assert english.national_tables == DEFAULT_TABLES and english.parts[0].udh == b""


def test_national_tables_shrink_parts_by_their_header() -> None:
    text = "ş" * 400
    segmented = segment_text(text, reference=1, national_languages=(NationalLanguage.TURKISH,), max_segments=8)
    # Locking shift element (3 octets) + 8-bit concatenation (5) + UDHL = 9 octets: 140 - 9 -> 149 septets.
    assert [len(part.user_data) for part in segmented.parts] == [149, 149, 102]
    assert segmented.parts[0].udh.hex() == "08" + "0003010301" + "250101"
    assert segmented.text == text


def test_port_addressing_in_every_part() -> None:
    ports = PortAddressing(2948, 9200)
    segmented = segment_binary(bytes(300), reference=7, udh_elements=(ports,))
    # 6-octet ports + 5-octet concatenation + UDHL: 128 octets per part.
    assert [len(part.user_data) for part in segmented.parts] == [128, 128, 44]
    assert segmented.parts[0].udh.hex() == "0b0003070301" + "05040b8423f0"
    assert segmented.text is None and segmented.parts[0].text is None
    single = segment_binary(bytes(10), reference=7, udh_elements=(ports,))
    assert single.parts[0].udh.hex() == "0605040b8423f0"


def test_binary_sizes() -> None:
    assert [len(p.user_data) for p in segment_binary(bytes(140), reference=1).parts] == [140]
    assert [len(p.user_data) for p in segment_binary(bytes(141), reference=1).parts] == [134, 7]
    with pytest.raises(TooManySegments):
        segment_binary(bytes(134 * 3 + 1), reference=1)


LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipisicing elit, sed do eiusmod tempor incididunt ut labore et dolore "
    "magna aliqua.Ut enim ad minim veniam, quinostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo "
    "consequat.Duis aute irure dolor in reprehenderit in voluptate velit esse cillum doloe eu fugiat nulla pariatur."
    "Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est laborum"
)
# python-gsmmodem test_encodeSmsSubmit_concatenated (faucamp/python-gsmmodem): TP-UD of the three SMS-SUBMITs.
LOREM_UD = [
    "050003000301986F79B90D4AC3E7F53688FC66BFE5A0799A0E0AB7CB741668FC76CFCB637A995E9783C2E4343C3D4F8FD3EE33A8CC4ED3"
    "59A079990C22BF41E5747DDE7E9341F4721BFE9683D2EE719A9C26D7DD74509D0E6287C56F791954A683C86FF65B5E06B5C36777181466"
    "A7E3F5B0AB4A0795DDE936284C06B5D3EE741B642FBBD3E1360B14AFA7DD",
    "050003000302DE73BABC4E0695F165F9384D0FD3D36F37A8CE6687DBE337881D16BFE5E939C89D9EA741753A28CC4EC7EB6938A88C0795"
    "C3A0F1BBDD7E93DFA0F1DB3D2FC7EB61BA8B584FCF41E13ABD0C4ACBEBF23288FC66BFE5A0B41B242FC3E56574D94D2ECBD37450DA0DB2"
    "BFD975383D4C2F83EC65769A0E2ACFE765D038CD66D7DB20F29BFD2E83CA",
    "050003000303EA2073FD9C0ED341EE3A9B1D06C1C3F274985E97BB8AF871194E2FD7E5A079DA4D07BDC7E370791CA683C675789A1CA687"
    "E920F7DB0D82CBDF6972D94D6781E675371D947683C675363C0C8AD7D3A0B7D99C1EA7C32072795E96D7DD7450FBCD66A7E9A0B03BDD06"
    "A5C9A0F29C0E6287C56F79BD0D",
]


def test_golden_three_part_message() -> None:
    segmented = segment_text(LOREM, reference=0)
    packed = [part.udh + pack_septets(part.user_data, fill_bits_for_udh(len(part.udh))) for part in segmented.parts]
    assert [p.hex().upper() for p in packed] == LOREM_UD


def test_sar_form() -> None:
    segmented = segment_text("x" * 200, reference=300, reference_bits=16)
    sar = segmented.to_sar()
    assert [s.sar for s in sar] == [SarInfo(300, 2, 1), SarInfo(300, 2, 2)]
    assert [s.short_message for s in sar] == [b"x" * 152, b"x" * 48]
    assert not any(s.udhi for s in sar)


def test_message_payload_form() -> None:
    text = "€" * 100
    assert segment_text(text, reference=1).message_payload() == b"\x1be" * 100


def test_udh_sar_conversion() -> None:
    ports = Udh((PortAddressing(2948, 9200),))
    short_message = ports.with_concatenation(Concatenation(5, 3, 2)).to_bytes() + b"data"
    sar, rest, udhi = udh_to_sar(short_message)
    assert sar == SarInfo(5, 3, 2)
    assert udhi and rest == ports.to_bytes() + b"data"
    assert sar_to_udh(sar, rest, udhi) == short_message
    plain = Udh((Concatenation(5, 3, 2),)).to_bytes() + b"data"
    assert udh_to_sar(plain) == (SarInfo(5, 3, 2), b"data", False)
    assert sar_to_udh(SarInfo(5, 3, 2), b"data", False) == plain
    assert sar_to_udh(SarInfo(300, 3, 2), b"", False).hex() == "06080401" + "2c0302"
    assert udh_to_sar(ports.to_bytes() + b"x") == (None, ports.to_bytes() + b"x", True)


# Long texts too: hypothesis favours short ones, and the boundaries are what is tested here.
gsm_texts = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=1200) | st.text(
    alphabet=st.sampled_from(["x", "€", "{"]), min_size=150, max_size=1200
)
ucs2_texts = st.text(
    alphabet=st.one_of(st.sampled_from("ab€中😀🎉"), st.characters(codec="utf-8")), max_size=500
) | st.text(alphabet=st.sampled_from("a中😀"), min_size=60, max_size=500)


def _check(text: str, segmented: SegmentedText, reference_bits: int) -> None:
    assert segmented.text == text
    total = len(segmented.parts)
    limit = 160 if segmented.encoding is Encoding.GSM7 else 70
    multi = {8: 153, 16: 152} if segmented.encoding is Encoding.GSM7 else {8: 67, 16: 66}
    for part in segmented.parts:
        assert part.total == total
        assert decode_as(part.user_data, segmented.encoding) == part.text  # whole characters only
        assert units(part.text or "", segmented.encoding) <= (limit if total == 1 else multi[reference_bits])
        if total > 1:
            concatenation = Udh.from_bytes(part.udh).concatenation
            assert concatenation == Concatenation(segmented.reference, total, part.sequence, reference_bits)
    assert [p.sequence for p in segmented.parts] == list(range(1, total + 1))


@settings(max_examples=60)
@given(gsm_texts, st.sampled_from([8, 16]))
def test_gsm_segments_join_back(text: str, reference_bits: int) -> None:
    segmented = segment_text(text, reference=200, reference_bits=reference_bits, max_segments=255)
    assert segmented.encoding is Encoding.GSM7
    for part in segmented.parts[:-1]:
        # Greedy: a part is only short of its limit when the next character would not fit.
        assert units(part.text or "", Encoding.GSM7) >= (152 if reference_bits == 8 else 151)
    _check(text, segmented, reference_bits)


@settings(max_examples=60)
@given(ucs2_texts, st.sampled_from([8, 16]))
def test_any_text_segments_join_back(text: str, reference_bits: int) -> None:
    segmented = segment_text(text, reference=200, reference_bits=reference_bits, max_segments=255)
    _check(text, segmented, reference_bits)


# The cut in the encoded text (`_encoded_pieces`) against a plain greedy cut by what each character costs:
# same parts, same bytes, for every alphabet it serves, national tables, surrogate pairs and odd capacities.
_NATIONAL = [NationalTables(locking, single) for locking in (0, 1, 3) for single in (0, 1, 2, 3)]


@st.composite
def _encodable(draw: st.DrawFn) -> tuple[str, Encoding, NationalTables]:
    encoding = draw(st.sampled_from([Encoding.GSM7, Encoding.UCS2, Encoding.LATIN1, Encoding.IA5]))
    tables = draw(st.sampled_from(_NATIONAL)) if encoding is Encoding.GSM7 else DEFAULT_TABLES
    if encoding is Encoding.GSM7:
        national = "ĞğİıŞşçÁÍÓÚáíóúêÔôÀÃÕÂâ"
        alphabet = st.sampled_from(sorted(c for c in GSM_CHARS + list(national) if is_gsm7(c, tables)))
    elif encoding is Encoding.UCS2:
        alphabet = st.one_of(st.sampled_from("a€中😀"), st.characters(exclude_categories=["Cs"]))
    else:
        alphabet = st.characters(max_codepoint=0x7F if encoding is Encoding.IA5 else 0xFF)
    return draw(st.text(alphabet=alphabet, max_size=700)), encoding, tables


@settings(max_examples=150)
@given(_encodable(), st.integers(2, 160), st.integers(2, 160))
def test_encoded_cut_matches_costed_cut(
    case: tuple[str, Encoding, NationalTables], first: int, following: int
) -> None:
    text, encoding, tables = case
    plan = _Plan(single=0, first=first, following=following, single_udh=b"", rest_udh=b"")
    whole = encode_text(text, encoding, tables)
    width = 2 if encoding is Encoding.UCS2 else 1
    expected: list[tuple[str | None, bytes]] = []
    piece, used, capacity = "", 0, first
    for char in text:
        cost = len(encode_text(char, encoding, tables)) // width
        if used + cost > capacity:
            expected.append((piece, encode_text(piece, encoding, tables)))
            piece, used, capacity = "", 0, following
        piece, used = piece + char, used + cost
    if piece:
        expected.append((piece, encode_text(piece, encoding, tables)))
    assert _encoded_pieces(text, whole, encoding, plan) == expected


@settings(max_examples=40)
@given(
    st.text(alphabet=st.sampled_from("ab€中"), min_size=1, max_size=300),
    st.sampled_from([(), (PortAddressing(2948, 9200),), (PortAddressing(5, 6, bits=8),)]),
    st.sampled_from([8, 16]),
    st.integers(0, 0xFF),
)
def test_part_headers_are_the_extra_header_with_concatenation_first(
    text: str, udh_elements: tuple[PortAddressing, ...], reference_bits: int, reference: int
) -> None:
    segmented = segment_text(
        text, reference=reference, reference_bits=reference_bits, udh_elements=udh_elements, max_segments=255
    )
    extra = Udh(udh_elements)
    for part in segmented.parts:
        if part.total == 1:
            assert part.udh == (extra.to_bytes() if udh_elements else b"")
        else:
            concatenation = Concatenation(reference, part.total, part.sequence, reference_bits)
            assert part.udh == extra.with_concatenation(concatenation).to_bytes()


# `count_segments` is the count of `segment_text` without building the parts: equal for every text encoding (the
# multi-octet ones are costed), headers, references and reserves, past the 255-part limit too.
@settings(max_examples=200)
@given(
    st.one_of(
        gsm_texts.map(lambda text: (text, Encoding.GSM7)),
        ucs2_texts.map(lambda text: (text, Encoding.UCS2)),
        st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=600).map(lambda text: (text, Encoding.LATIN1)),
        st.text(alphabet=st.sampled_from("aあ漢字"), max_size=400).map(lambda text: (text, Encoding.ISO_2022_JP)),
        st.text(alphabet=st.sampled_from("a한국"), max_size=400).map(lambda text: (text, Encoding.KS_C_5601)),
    ),
    st.sampled_from([8, 16]),
    st.integers(0, 60),
    st.sampled_from([(), (PortAddressing(2948, 9200),)]),
)
def test_count_segments_is_the_number_of_parts(
    case: tuple[str, Encoding], reference_bits: int, reserve: int, udh_elements: tuple[PortAddressing, ...]
) -> None:
    text, encoding = case
    options = dict(reference_bits=reference_bits, first_part_reserve=reserve, udh_elements=udh_elements)
    try:
        expected = len(segment_text(text, encoding=encoding, reference=0, max_segments=255, **options).parts)
    except TooManySegments as exc:
        expected = exc.needed
    assert count_segments(text, encoding=encoding, **options) == expected


def test_count_segments_of_text_the_encoding_lacks() -> None:
    with pytest.raises(PduError):
        count_segments("中", encoding=Encoding.GSM7)
    with pytest.raises(ValueError):
        count_segments("x", encoding=Encoding.BINARY)


@given(
    st.one_of(gsm_texts.map(lambda text: (text, Encoding.GSM7)), ucs2_texts.map(lambda text: (text, Encoding.UCS2))),
    st.integers(1, 8),
    st.integers(0, 255),
    st.integers(0, 60),
)
def test_splitting_the_bytes_is_segment_text(
    case: tuple[str, Encoding], max_segments: int, reference: int, reserve: int
) -> None:
    """`split_encoded` cuts the encoded text where `segment_text` cuts the text, with the same headers and the
    same refusal; `count_encoded` counts those parts."""
    text, encoding = case
    whole = encode_text(text, encoding)
    try:
        split = segment_text(text, encoding=encoding, max_segments=max_segments, reference=reference,
                             first_part_reserve=reserve)
        expected: object = [(part.udh, part.user_data) for part in split.parts]
    except TooManySegments as exc:
        expected = str(exc)
    try:
        got: object = split_encoded(whole, encoding, max_segments=max_segments, reference=reference,
                                    first_part_reserve=reserve)
    except TooManySegments as exc:
        got = str(exc)
    assert got == expected
    assert count_encoded(whole, encoding, first_part_reserve=reserve) == count_segments(
        text, encoding=encoding, first_part_reserve=reserve
    )
