"""GSM 7-bit alphabet and septet packing: golden vectors from public sources, then properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw.pdu.errors import PduError
from smsgw.pdu.gsm7 import (
    DEFAULT_TABLES,
    ESCAPE,
    GSM7_BASIC,
    GSM7_EXTENSION,
    PORTUGUESE_LOCKING,
    PORTUGUESE_SINGLE,
    SPANISH_SINGLE,
    TURKISH_LOCKING,
    TURKISH_SINGLE,
    NationalLanguage,
    NationalTables,
    decode_gsm7,
    double_septet_characters,
    encode_gsm7,
    fill_bits_for_udh,
    gsm7_septet_count,
    is_gsm7,
    pack_septets,
    packed_length,
    septets_for_udh,
    _codec,
    unpack_septets,
)

GSM_CHARS = [c for c in GSM7_BASIC if c != "\x1b"] + list(GSM7_EXTENSION.values())
gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=400)


# --- golden vectors -------------------------------------------------------------------------------------------


def test_alphabet_matches_ts_23038_table() -> None:
    # 3GPP TS 23.038 section 6.2.1: spot checks of the cells that differ from ASCII.
    assert len(GSM7_BASIC) == 128
    assert GSM7_BASIC[0x00] == "@"
    assert GSM7_BASIC[0x02] == "$"
    assert GSM7_BASIC[0x09] == "Ç"  # capital C cedilla, as in the standard (not ç)
    assert GSM7_BASIC[0x11] == "_"
    assert GSM7_BASIC[0x24] == "¤"
    assert GSM7_BASIC[0x40] == "¡"
    assert GSM7_BASIC[0x5F] == "§"
    assert GSM7_BASIC[0x60] == "¿"
    assert GSM7_BASIC[0x7F] == "à"
    # Section 6.2.1.1: the extension table.
    assert encode_gsm7("€^{}[]~\\|\f") == bytes.fromhex("1b651b141b281b291b3c1b3e1b3d1b2f1b401b0a")


@pytest.mark.parametrize(
    ("text", "septets_hex", "packed_hex"),
    [
        # Perl Device::Gsm t/20pdu.t (cosimo/perl5-device-gsm), also smspdu's test suite.
        ("hellohello", "68656c6c6f68656c6c6f", "e8329bfd4697d9ec37"),
        (
            "The quick fox jumps over the lazy dog",
            "54686520717569636b20666f78206a756d7073206f76657220746865206c617a7920646f67",
            "54741914afa7c76b90f98d07a9eb6df81cf4b697e5203aba0c6287f57910f97d06",
        ),
        # python-gsmmodem test/test_pdu.py TestGsm7 (faucamp/python-gsmmodem).
        ("123", "313233", "31d90c"),
        ("12345678", "3132333435363738", "31d98c56b3dd70"),
        ("123456789", "313233343536373839", "31d98c56b3dd7039"),
        ("Hello World!", "48656c6c6f20576f726c6421", "c8329bfd065ddf72363904"),
        ("[{abc}]~", "1b3c1b286162631b291b3e1b3d", "1bde0615168f37a98d6fd303"),
        ("{åΦΓΛΩΠΨΣΘ€}", "1b280f12131415161718191b651b29", "1bd44332a1542c174c6653dea400"),
        ("a[]{}€", "611b3c1b3e1b281b291b65", "e10d6fe3dba036a94d19"),
    ],
)
def test_golden_vectors(text: str, septets_hex: str, packed_hex: str) -> None:
    septets = bytes.fromhex(septets_hex)
    packed = bytes.fromhex(packed_hex)
    assert encode_gsm7(text) == septets
    assert decode_gsm7(septets) == text
    assert gsm7_septet_count(text) == len(septets)
    assert pack_septets(septets) == packed
    assert unpack_septets(packed, len(septets)) == septets


# python-gsmmodem test_encodeSmsSubmit_concatenated, first PDU: TP-UD after TP-UDL 0xA0 (160 septets) is the UDH
# 050003000301 and 153 septets packed after one fill bit.
LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipisicing elit, sed do eiusmod tempor incididunt ut labore et dolore "
    "magna aliqua.Ut enim ad minim veniam, quinostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo "
    "consequat.Duis aute irure dolor in reprehenderit in voluptate velit esse cillum doloe eu fugiat nulla pariatur."
    "Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est laborum"
)
LOREM_PART1_UD = bytes.fromhex(
    "050003000301986F79B90D4AC3E7F53688FC66BFE5A0799A0E0AB7CB741668FC76CFCB637A995E9783C2E4343C3D4F8FD3EE33A8CC4E"
    "D359A079990C22BF41E5747DDE7E9341F4721BFE9683D2EE719A9C26D7DD74509D0E6287C56F791954A683C86FF65B5E06B5C36777181"
    "466A7E3F5B0AB4A0795DDE936284C06B5D3EE741B642FBBD3E1360B14AFA7DD"
)


def test_fill_bits_after_udh_golden() -> None:
    udh, packed = LOREM_PART1_UD[:6], LOREM_PART1_UD[6:]
    fill = fill_bits_for_udh(len(udh))
    assert fill == 1
    assert septets_for_udh(len(udh)) == 7
    assert decode_gsm7(unpack_septets(packed, 153, fill)) == LOREM[:153]
    assert pack_septets(encode_gsm7(LOREM[:153]), fill) == packed


def test_fill_bits_for_common_headers() -> None:
    # TS 23.040 9.2.3.24: 6-octet UDH (8-bit concatenation) -> 1 fill bit; 7 octets (16-bit) -> none.
    assert [fill_bits_for_udh(n) for n in (6, 7, 8, 12)] == [1, 0, 6, 2]
    assert [septets_for_udh(n) for n in (6, 7, 8, 12)] == [7, 8, 10, 14]


# --- escapes and errors ------------------------------------------------------------------------------------------


def test_escape_rules_of_ts_23038() -> None:
    assert decode_gsm7(bytes([ESCAPE, ESCAPE])) == " "  # reserved for another extension table: a space
    assert decode_gsm7(bytes([ESCAPE, 0x41])) == "A"  # no extension character: the default alphabet's one
    assert decode_gsm7(b"ab" + bytes([ESCAPE])) == "ab"  # an escape cut from its character shows as nothing


def test_septet_count_and_membership() -> None:
    assert gsm7_septet_count("€") == 2
    assert gsm7_septet_count("é") == 1
    assert gsm7_septet_count("ç") is None  # only the capital is in the alphabet
    assert gsm7_septet_count("hello 世界") is None
    assert gsm7_septet_count("`") is None  # ASCII, but not GSM
    assert is_gsm7("Ünïcödé?") is False
    assert is_gsm7("Ünicode?") is True


def test_encode_names_the_character() -> None:
    with pytest.raises(PduError, match=r"'世' \(U\+4E16\) at position 6") as caught:
        encode_gsm7("hello 世界")
    assert caught.value.command_status == 0x480  # ESME_RINVDCS, vendor range


def test_decode_refuses_octets_above_0x7f() -> None:
    with pytest.raises(PduError, match="0x80 at position 1"):
        decode_gsm7(b"a\x80")


def test_unpack_needs_enough_octets() -> None:
    with pytest.raises(PduError):
        unpack_septets(b"\x00", 2)
    assert unpack_septets(bytes.fromhex("e8329bfd4697d9ec37ff"), 10) == b"hellohello"  # modem padding ignored


def test_invalid_arguments_are_programming_errors() -> None:
    with pytest.raises(ValueError):
        pack_septets(b"\x80")
    with pytest.raises(ValueError):
        pack_septets(b"a", 7)
    with pytest.raises(ValueError):
        unpack_septets(b"a", -1)


# --- national language tables (TS 23.038 Annex A) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "cells"),
    [
        # Annex A.3.1 Turkish locking shift (cells as tabulated in ndf-zz/gsmcodecs lut/turkish_lock.csv).
        (TURKISH_LOCKING, {0x04: "€", 0x07: "ı", 0x0B: "Ğ", 0x0C: "ğ", 0x1C: "Ş", 0x1D: "ş", 0x40: "İ", 0x60: "ç"}),
        # Annex A.3.3 Portuguese locking shift (lut/portugese_lock.csv).
        (
            PORTUGUESE_LOCKING,
            {0x04: "ê", 0x12: "ª", 0x15: "∞", 0x17: "\\", 0x1A: "|", 0x24: "º", 0x60: "~", 0x7D: "`", 0x7F: "à"},
        ),
    ],
)
def test_locking_shift_tables(table: str, cells: dict[int, str]) -> None:
    assert len(table) == 128 and table[ESCAPE] == "\x1b"
    assert len(set(table)) == 128  # every character once
    for septet, char in cells.items():
        assert table[septet] == char


@pytest.mark.parametrize(
    ("table", "national"),
    [
        # Annex A.2.1-A.2.3 single shift tables: the extension table plus these cells.
        (TURKISH_SINGLE, {0x47: "Ğ", 0x49: "İ", 0x53: "Ş", 0x63: "ç", 0x67: "ğ", 0x69: "ı", 0x73: "ş"}),
        (SPANISH_SINGLE, {0x09: "ç", 0x41: "Á", 0x49: "Í", 0x4F: "Ó", 0x55: "Ú", 0x61: "á", 0x6F: "ó", 0x75: "ú"}),
        (PORTUGUESE_SINGLE, {0x05: "ê", 0x12: "Φ", 0x1F: "Ê", 0x41: "À", 0x5B: "Ã", 0x61: "Â", 0x7F: "â"}),
    ],
)
def test_single_shift_tables(table: dict[int, str], national: dict[int, str]) -> None:
    assert table.items() >= GSM7_EXTENSION.items()
    assert table.items() >= national.items()


def test_turkish_text_in_turkish_tables() -> None:
    turkish = NationalTables(NationalLanguage.TURKISH, NationalLanguage.TURKISH)
    assert gsm7_septet_count("Şişli", DEFAULT_TABLES) is None
    assert encode_gsm7("Şişli", turkish) == bytes([0x1C, 0x69, 0x1D, 0x6C, 0x69])
    assert decode_gsm7(bytes([0x1C, 0x69, 0x1D, 0x6C, 0x69]), turkish) == "Şişli"
    single_only = NationalTables(single=NationalLanguage.TURKISH)
    assert encode_gsm7("Ş", single_only) == bytes([ESCAPE, 0x53])
    assert decode_gsm7(bytes([ESCAPE, 0x53]), single_only) == "Ş"
    # ç is in the Turkish alphabet itself, so it costs one septet there, two with the single shift alone.
    assert "ç" in double_septet_characters(single_only)
    assert "ç" not in double_septet_characters(turkish)
    assert gsm7_septet_count("ç", turkish) == 1


def test_spanish_and_portuguese() -> None:
    spanish = NationalTables(single=NationalLanguage.SPANISH)
    assert gsm7_septet_count("Canción", spanish) == 8
    assert decode_gsm7(encode_gsm7("¿Qué tal, Álvaro?", spanish), spanish) == "¿Qué tal, Álvaro?"
    portuguese = NationalTables(NationalLanguage.PORTUGUESE, NationalLanguage.PORTUGUESE)
    assert decode_gsm7(encode_gsm7("Não, obrigação à vista", portuguese), portuguese) == "Não, obrigação à vista"


def test_unsupported_tables_are_pdu_errors() -> None:
    with pytest.raises(PduError, match="locking=4"):
        decode_gsm7(b"abc", NationalTables(locking=4))  # Bengali: no table here


def _table_chars(tables: NationalTables) -> list[str]:
    alphabet = {0: GSM7_BASIC, 1: TURKISH_LOCKING, 2: GSM7_BASIC, 3: PORTUGUESE_LOCKING}[tables.locking]
    single = {0: GSM7_EXTENSION, 1: TURKISH_SINGLE, 2: SPANISH_SINGLE, 3: PORTUGUESE_SINGLE}[tables.single]
    return sorted((set(alphabet) | set(single.values())) - {"\x1b"})


national_texts = st.builds(NationalTables, st.integers(0, 3), st.integers(0, 3)).flatmap(
    lambda tables: st.tuples(st.just(tables), st.text(alphabet=st.sampled_from(_table_chars(tables)), max_size=200))
)


@given(national_texts)
def test_national_round_trip(tables_and_text: tuple[NationalTables, str]) -> None:
    tables, text = tables_and_text
    septets = encode_gsm7(text, tables)
    assert decode_gsm7(septets, tables) == text
    assert gsm7_septet_count(text, tables) == len(septets)


# --- properties --------------------------------------------------------------------------------------------------


@given(gsm_text)
def test_text_round_trip(text: str) -> None:
    septets = encode_gsm7(text)
    assert decode_gsm7(septets) == text
    assert gsm7_septet_count(text) == len(septets)
    assert max(septets, default=0) < 0x80


@given(st.binary(max_size=300).map(lambda b: bytes(x & 0x7F for x in b)), st.integers(0, 6))
def test_pack_unpack_round_trip_every_fill(septets: bytes, fill_bits: int) -> None:
    packed = pack_septets(septets, fill_bits)
    assert len(packed) == packed_length(len(septets), fill_bits)
    assert unpack_septets(packed, len(septets), fill_bits) == septets
    if packed and fill_bits:
        assert packed[0] & ((1 << fill_bits) - 1) == 0  # fill bits are zero


@given(st.binary(max_size=300))
def test_random_bytes_only_raise_pdu_error(data: bytes) -> None:
    try:
        decode_gsm7(data)
    except PduError:
        pass


@given(st.binary(max_size=200), st.integers(0, 250), st.integers(0, 6))
def test_random_packed_only_raise_pdu_error(data: bytes, count: int, fill_bits: int) -> None:
    try:
        septets = unpack_septets(data, count, fill_bits)
    except PduError:
        return
    assert len(septets) == count
    decode_gsm7(septets)  # unpacked septets always decode


_ALL_TABLES = [NationalTables(locking, single) for locking in range(4) for single in range(4)]


@given(
    st.text(alphabet=st.sampled_from(GSM7_BASIC + TURKISH_LOCKING + PORTUGUESE_LOCKING + "€{çáÁ中😀\x1b")) | st.text(),
    st.sampled_from(_ALL_TABLES),
)
def test_membership_search_agrees_with_the_encoding_table(text: str, tables: NationalTables) -> None:
    # is_gsm7 stops at the first foreign character; gsm7_septet_count translates every character.
    assert is_gsm7(text, tables) == (gsm7_septet_count(text, tables) is not None)


@given(
    st.text(alphabet=st.characters(max_codepoint=0x7F)) | st.text(alphabet=st.sampled_from(GSM7_BASIC + "€{}[]~^|\\`")),
    st.sampled_from(_ALL_TABLES),
)
def test_ascii_table_agrees_with_the_translation(text: str, tables: NationalTables) -> None:
    # encode_gsm7 takes ASCII text through a byte table, and any text it cannot finish there through the
    # translation table of every character: both give the same septets, or the same refusal.
    translated = text.translate(_codec(tables).encode)
    if not translated.isascii():
        with pytest.raises(PduError):
            encode_gsm7(text, tables)
        return
    assert encode_gsm7(text, tables) == translated.encode("ascii")
    assert decode_gsm7(translated.encode("ascii"), tables) == text
