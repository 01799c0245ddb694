"""Text encodings and data_coding: golden vectors from public sources, then properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw.pdu.errors import PduError
from smsgw.pdu.text import (
    DataCodingScheme,
    Encoding,
    choose_encoding,
    decode_as,
    decode_text,
    encode_text,
    parse_data_coding,
    units,
)


def test_choose_encoding() -> None:
    assert choose_encoding("Hello {world} €5") is Encoding.GSM7
    assert choose_encoding("Grüße, Ñandù!") is Encoding.GSM7
    assert choose_encoding("Привет") is Encoding.UCS2
    assert choose_encoding("ok 😀") is Encoding.UCS2
    assert choose_encoding("") is Encoding.GSM7


@pytest.mark.parametrize(
    ("text", "encoded_hex"),
    [
        # python-gsmmodem test/test_pdu.py TestUcs2 (faucamp/python-gsmmodem).
        ("あ叶葉", "304253f68449"),
        ("はい", "306f3044"),
        # Unicode 15 section 3.9 (D91): U+1F600 in UTF-16 is the surrogate pair D83D DE00; no byte order mark.
        ("😀", "d83dde00"),
    ],
)
def test_ucs2_golden(text: str, encoded_hex: str) -> None:
    assert encode_text(text, Encoding.UCS2).hex() == encoded_hex
    assert decode_text(bytes.fromhex(encoded_hex), 0x08) == text


def test_megafon_ucs2_user_data() -> None:
    # python-gsmmodem test_decode: the UCS-2 body of a Megafon SMS-DELIVER after its UDH 0500035602 01.
    body = bytes.fromhex("0053004D005300200063006F00640065003A00200034003800350036")
    assert decode_text(body, 0x08) == "SMS code: 4856"


@pytest.mark.parametrize(
    ("data_coding", "expected"),
    [
        (0x00, DataCodingScheme(Encoding.GSM7)),
        (0x01, DataCodingScheme(Encoding.IA5)),
        (0x02, DataCodingScheme(Encoding.BINARY)),
        (0x03, DataCodingScheme(Encoding.LATIN1)),
        (0x04, DataCodingScheme(Encoding.BINARY)),
        (0x06, DataCodingScheme(Encoding.CYRILLIC)),
        (0x07, DataCodingScheme(Encoding.LATIN_HEBREW)),
        (0x08, DataCodingScheme(Encoding.UCS2)),
        (0x0E, DataCodingScheme(Encoding.KS_C_5601)),
        # TS 23.038 section 4 coding groups an SMSC passes through.
        (0x10, DataCodingScheme(Encoding.GSM7, 0)),  # flash
        (0x11, DataCodingScheme(Encoding.GSM7, 1)),
        (0x18, DataCodingScheme(Encoding.UCS2, 0)),  # flash UCS-2
        (0x16, DataCodingScheme(Encoding.BINARY, 2)),  # SIM data download
        (0x48, DataCodingScheme(Encoding.UCS2)),  # automatic deletion group
        (0xC0, DataCodingScheme(Encoding.GSM7)),
        (0xD8, DataCodingScheme(Encoding.GSM7)),
        (0xE0, DataCodingScheme(Encoding.UCS2)),
        (0xF0, DataCodingScheme(Encoding.GSM7, 0)),
        (0xF2, DataCodingScheme(Encoding.GSM7, 2)),  # smpp.pdu's test submit_sm "HELLO" uses 0xF2
        (0xF5, DataCodingScheme(Encoding.BINARY, 1)),  # smpp.pdu's ringtone submit_sm uses 0xF5
    ],
)
def test_parse_data_coding(data_coding: int, expected: DataCodingScheme) -> None:
    assert parse_data_coding(data_coding) == expected


@pytest.mark.parametrize("data_coding", [0x05, 0x09, 0x0B, 0x0D, 0x0F, 0x1C, 0x24, 0x80, 0xB0, 0x100, -1])
def test_unknown_data_coding_is_esme_rinvdcs(data_coding: int) -> None:
    with pytest.raises(PduError) as caught:
        parse_data_coding(data_coding)
    assert caught.value.command_status == 0x480  # ESME_RINVDCS, vendor range


def test_decode_text_by_data_coding() -> None:
    assert decode_text(b"HELLO", 0xF2) == "HELLO"
    assert decode_text(b"\x00\x02", 0x00) == "@$"
    assert decode_text(b"caf\xe9", 0x03) == "café"
    assert decode_text(b"plain", 0x01) == "plain"
    assert decode_text("Привет".encode("iso8859-5"), 0x06) == "Привет"


@pytest.mark.parametrize(
    ("data", "data_coding"),
    [
        (b"\x00\x41\x00", 0x08),  # odd length
        (b"\xd8\x3d\x00\x41", 0x08),  # high surrogate without its low half
        (b"caf\xe9", 0x01),  # not ASCII
        (b"\x01\x02", 0x04),  # binary is not text
        (b"\x80", 0x00),  # not a septet
    ],
)
def test_decode_errors_are_pdu_errors(data: bytes, data_coding: int) -> None:
    with pytest.raises(PduError):
        decode_text(data, data_coding)


def test_encode_errors_name_the_character() -> None:
    with pytest.raises(PduError, match=r"'€' \(U\+20AC\) at position 2 cannot be encoded in LATIN1"):
        encode_text("5 €", Encoding.LATIN1)
    with pytest.raises(PduError):
        encode_text("\ud800", Encoding.UCS2)  # a lone surrogate cannot go on the wire
    with pytest.raises(ValueError):
        encode_text("x", Encoding.BINARY)


def test_units() -> None:
    assert units("a€", Encoding.GSM7) == 3
    assert units("a😀", Encoding.UCS2) == 3
    assert units("héllo", Encoding.LATIN1) == 5
    with pytest.raises(PduError):
        units("😀", Encoding.GSM7)


@given(st.text(max_size=300))
def test_any_text_round_trips_through_its_chosen_encoding(text: str) -> None:
    encoding = choose_encoding(text)
    assert decode_text(encode_text(text, encoding), encoding.data_coding) == text


@given(st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=200))
def test_latin1_round_trip(text: str) -> None:
    assert decode_as(encode_text(text, Encoding.LATIN1), Encoding.LATIN1) == text


@given(st.binary(max_size=200), st.integers(0, 0xFF))
def test_random_bytes_only_raise_pdu_error(data: bytes, data_coding: int) -> None:
    try:
        decode_text(data, data_coding)
    except PduError:
        pass
