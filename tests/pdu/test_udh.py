"""User data header: golden vectors from public test suites, then round trips and hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw.pdu.errors import PduError
from smsgw.pdu.gsm7 import DEFAULT_TABLES, NationalLanguage, NationalTables
from smsgw.pdu.udh import (
    CONCATENATION_8,
    CONCATENATION_16,
    USER_DATA_HEADER,
    Concatenation,
    Element,
    InformationElement,
    NationalLanguageShift,
    PortAddressing,
    Udh,
    concatenation_udh,
    national_language_elements,
    split_user_data,
)


def _with_udhl(elements_hex: str) -> bytes:
    body = bytes.fromhex(elements_hex)
    return bytes((len(body),)) + body


@pytest.mark.parametrize(
    ("elements_hex", "element"),
    [
        # python-gsmmodem test/test_pdu.py TestUdhConcatenation and TestUdhPortAddress.
        ("0003170301", Concatenation(reference=23, total=3, sequence=1)),
        ("080401800402", Concatenation(reference=384, total=4, sequence=2, reference_bits=16)),
        ("04026432", PortAddressing(destination_port=100, source_port=50, bits=8)),
        ("050404D21466", PortAddressing(destination_port=1234, source_port=5222, bits=16)),
    ],
)
def test_single_element_golden(elements_hex: str, element: Concatenation | PortAddressing) -> None:
    data = _with_udhl(elements_hex)
    assert Udh.from_bytes(data) == Udh((element,))
    assert Udh((element,)).to_bytes() == data


def test_python_messaging_wap_push_header() -> None:
    # python-messaging messaging/test/test_udh.py (pmarti/python-messaging): 16-bit concatenation + WAP ports.
    udh = Udh.from_bytes(_with_udhl("08049f8e020105040b8423f0"))
    assert udh.concatenation == Concatenation(40846, 2, 1, 16)
    assert udh.port_addressing == PortAddressing(2948, 9200, 16)
    assert udh.length == 13


def test_smpp_pdu_ringtone_short_message() -> None:
    # smpp.pdu tests/test_pdu_encoding.py test_SubmitSM_ringtone_conversion (jookies/smpp.pdu): esm_class UDHI.
    short_message = bytes.fromhex("06050415811581024a3a5db5a5cdcda5bdb8040084d8c5")
    udh, rest = split_user_data(short_message, udhi=True)
    assert udh == Udh((PortAddressing(5505, 5505, 16),))
    assert rest == bytes.fromhex("024a3a5db5a5cdcda5bdb8040084d8c5")
    assert split_user_data(short_message, udhi=False) == (None, short_message)


def test_gsmmodem_deliver_header() -> None:
    # python-gsmmodem test_decode: a multipart SMS-DELIVER from a South African SMSC, UDH 050003C30101.
    assert Udh.from_bytes(bytes.fromhex("050003C30101")).concatenation == Concatenation(0xC3, 1, 1)


def test_unknown_elements_kept_unchanged() -> None:
    # IEI 0x0A (EMS text formatting) and 0x70 (SIM toolkit security header) around a concatenation.
    data = _with_udhl("700100" + "0003aa0201" + "0a0400058203")
    udh = Udh.from_bytes(data)
    assert udh.elements == (
        InformationElement(0x70, b"\x00"),
        Concatenation(0xAA, 2, 1),
        InformationElement(0x0A, bytes.fromhex("00058203")),
    )
    assert udh.to_bytes() == data


def test_national_language_shifts() -> None:
    # TS 23.040 9.2.3.24.15/16: IEI 0x24 single shift, 0x25 locking shift, one octet each (1 = Turkish).
    data = _with_udhl("250101" + "240101" + "0003aa0201")
    udh = Udh.from_bytes(data)
    assert udh.elements[:2] == (NationalLanguageShift(1, locking=True), NationalLanguageShift(1, locking=False))
    assert udh.national_tables == NationalTables(NationalLanguage.TURKISH, NationalLanguage.TURKISH)
    assert udh.to_bytes() == data
    assert Udh(()).national_tables == DEFAULT_TABLES
    assert national_language_elements(NationalTables(single=NationalLanguage.SPANISH)) == (
        NationalLanguageShift(2, locking=False),
    )
    assert national_language_elements(DEFAULT_TABLES) == ()


@pytest.mark.parametrize(
    "elements_hex",
    [
        "0003170003",  # sequence 0: TS 23.040 9.2.3.24.1 says ignore the element
        "0003170304",  # sequence beyond total
        "0003170000",  # total 0
        "000417030100",  # wrong length for an 8-bit concatenation
        "0503123456",  # wrong length for 16-bit ports
        "24020101",  # wrong length for a national language shift
    ],
)
def test_elements_to_ignore_stay_raw(elements_hex: str) -> None:
    data = _with_udhl(elements_hex)
    udh = Udh.from_bytes(data)
    assert isinstance(udh.elements[0], InformationElement)
    assert udh.concatenation is None and udh.port_addressing is None
    assert udh.to_bytes() == data


@pytest.mark.parametrize(
    "data_hex",
    [
        "",  # no UDHL
        "05000302",  # UDHL beyond the data
        "0400050102",  # element length beyond UDHL
        "0100",  # element header cut in half
    ],
)
def test_malformed_headers_raise(data_hex: str) -> None:
    with pytest.raises(PduError, match="user data header"):
        split_user_data(bytes.fromhex(data_hex), udhi=True)


def test_from_bytes_refuses_trailing_data() -> None:
    with pytest.raises(PduError, match="after UDHL"):
        Udh.from_bytes(bytes.fromhex("050003010101ff"))


def test_concatenation_helpers() -> None:
    assert concatenation_udh(Concatenation(7, 3, 2)).hex() == "050003070302"
    with_ports = Udh((PortAddressing(2948, 9200), Concatenation(1, 2, 1)))
    replaced = with_ports.with_concatenation(Concatenation(9, 2, 2))
    assert replaced.elements == (Concatenation(9, 2, 2), PortAddressing(2948, 9200))
    assert replaced.without_concatenation().elements == (PortAddressing(2948, 9200),)


def test_invalid_values_are_programming_errors() -> None:
    for build in (
        lambda: Concatenation(256, 2, 1),
        lambda: Concatenation(1, 2, 3),
        lambda: Concatenation(1, 0, 0),
        lambda: Concatenation(1, 2, 1, reference_bits=12),
        lambda: PortAddressing(256, 1, bits=8),
        lambda: InformationElement(0x70, bytes(256)),
        lambda: Udh(tuple(InformationElement(0x70, bytes(200)) for _ in range(2))),
    ):
        with pytest.raises(ValueError):
            build()


elements = st.one_of(
    st.builds(
        lambda bits, data: Concatenation(data[0] % (1 << bits), data[1], data[2] % data[1] + 1, bits),
        st.sampled_from([8, 16]),
        st.tuples(st.integers(0, 0xFFFF), st.integers(1, 255), st.integers(0, 254)),
    ),
    st.builds(
        lambda bits, d, s: PortAddressing(d % (1 << bits), s % (1 << bits), bits),
        st.sampled_from([8, 16]),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
    ),
    st.builds(NationalLanguageShift, st.integers(0, 13), st.booleans()),
    st.builds(InformationElement, st.integers(0, 0xFF), st.binary(max_size=12)),
)


@given(st.lists(elements, max_size=8))
def test_bytes_round_trip(element_list: list[Element]) -> None:
    data = Udh(tuple(element_list)).to_bytes()
    udh = Udh.from_bytes(data)
    assert udh.to_bytes() == data
    assert udh.length == len(data)
    # The typed reading agrees with the construct declaration element by element.
    raw = USER_DATA_HEADER.parse(data)
    assert [(e.iei, bytes(e.data)) for e in raw] == [(e.iei, e.to_bytes()[2:]) for e in udh.elements]


@given(st.lists(elements, max_size=8))
def test_typed_elements_survive(element_list: list[Element]) -> None:
    typed = [e for e in element_list if not isinstance(e, InformationElement)]
    assert list(Udh.from_bytes(Udh(tuple(typed)).to_bytes()).elements) == typed


@given(st.binary(max_size=40))
def test_hand_framing_agrees_with_the_construct_declaration(data: bytes) -> None:
    declared_ok = bool(data) and len(data) > data[0]
    if declared_ok:
        raw = USER_DATA_HEADER.parse(data)
        declared_ok = sum(2 + len(e.data) for e in raw) == data[0]
    try:
        udh, rest = Udh.parse(data)
    except PduError:
        assert not declared_ok
        return
    assert declared_ok
    assert [(e.iei, bytes(e.data)) for e in raw] == [(e.iei, e.to_bytes()[2:]) for e in udh.elements]
    assert rest == data[1 + data[0] :]


@given(st.binary(max_size=300), st.booleans())
def test_random_bytes_only_raise_pdu_error(data: bytes, udhi: bool) -> None:
    try:
        udh, rest = split_user_data(data, udhi)
    except PduError:
        return
    if udh is not None:
        assert udh.to_bytes() + rest == data


@given(st.integers(0, 0xFFFF), st.integers(1, 0xFF), st.data(), st.sampled_from([8, 16]))
def test_concatenation_bytes_agree_with_the_construct_declaration(
    reference: int, total: int, data: st.DataObject, bits: int
) -> None:
    reference &= (1 << bits) - 1
    sequence = data.draw(st.integers(1, total))
    schema = CONCATENATION_8 if bits == 8 else CONCATENATION_16
    declared = schema.build({"reference": reference, "total": total, "sequence": sequence})
    element = Concatenation(reference, total, sequence, bits)
    assert element.to_bytes() == bytes((element.iei, len(declared))) + declared
