"""Phone numbers (smsgw.numbers): parsed, validated and formatted with libphonenumber's data, never rewritten
into another number; the virtual network's block is the one exception (its numbers are unallocated)."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.numbers import (
    InvalidNumber,
    check_country_code,
    handset_key,
    is_test_number,
    normalise_number,
    same_handset,
)
from smsgw.pdu.constants import CommandStatus


# The formats people write are also covered through `smsgw send` in tests/test_client.py.
@pytest.mark.parametrize(
    ("raw", "country_code", "expected"),
    [
        ("+886 912 345 678", "44", "886912345678"),
        ("0912\u00a0345\u00a0678", "886", "886912345678"),  # non-breaking spaces from spreadsheets
        ("011-886-912-345-678", "1", "886912345678"),
        ("(0)20 7946 0000", "44", "442079460000"),
        # issue 14: the trunk 0 in parentheses after the country code was kept (4407700900001).
        ("+44 (0)7700 900001", "", "447700900001"),
        ("+44 (0)7911 123456", "GB", "447911123456"),
        # issue 14: a French number written without '+' got the default country code in front (4433612345678).
        ("33612345678", "44", "33612345678"),
        ("33612345678", "GB", "33612345678"),
        ("07911 123456", "GB", "447911123456"),
        ("447911123456", "44", "447911123456"),
        ("0033 6 12 34 56 78", "44", "33612345678"),
        ("212-555-0100", "1", "12125550100"),
        ("0113 496 0000", "44", "441134960000"),  # a Leeds number: 011 is not the international prefix in GB
    ],
)
def test_normalise_number(raw: str, country_code: str, expected: str) -> None:
    assert normalise_number(raw, country_code) == expected


def test_international_address_keeps_its_country_code() -> None:
    """An SMPP destination with TON 1 is international even without '+': no default country code in front."""
    assert normalise_number("12125550100", "44", international=True) == "12125550100"
    with pytest.raises(InvalidNumber, match="no valid country code"):
        normalise_number("07700900001", "44", international=True)


@pytest.mark.parametrize(
    ("raw", "country_code", "reason"),
    [
        ("07700 900001", "", "'07700 900001' is a national number"),
        ("+44 7700 9000O1", "", "not a phone number"),
        ("+447911123456x", "", "not a phone number"),
        # issue 14: "'12' not sent: '12' has 4 digits" (the default country code had been put in front).
        ("12", "44", "'12' is too short for GB"),
        ("+44 123", "", r"'\+44 123' is too short"),
        ("+44 7911 12345", "", "is not a valid number in GB"),  # possible length, but no such UK number
        ("+999 1234567", "", "no valid country code"),
        ("7700900001", "+0", "country code"),
    ],
)
def test_invalid_number_says_why_and_carries_rinvdstadr(raw: str, country_code: str, reason: str) -> None:
    with pytest.raises(InvalidNumber, match=reason) as caught:
        normalise_number(raw, country_code)
    assert caught.value.command_status == CommandStatus.ESME_RINVDSTADR


def test_the_default_region_is_a_calling_code_or_a_country() -> None:
    assert check_country_code("44") == check_country_code("+44") == check_country_code(" gb ") == "GB"
    assert check_country_code("1") == "US"
    assert check_country_code("") == ""
    for bad in ("999", "XX", "0", "4x"):
        with pytest.raises(InvalidNumber, match="default country code"):
            check_country_code(bad)


def test_the_virtual_network_numbers_are_accepted_though_unallocated() -> None:
    """libphonenumber treats 07700 9xxxxx as unallocated (Ofcom keeps 07700 900xxx for drama): that is what makes
    the block safe for the virtual network, whose numbers (DESIGN.md) must keep working."""
    for digits in ("447700900001", "447700900999", "447700911000", "447700922500", "447700933999"):
        assert not phonenumbers.is_valid_number(phonenumbers.parse("+" + digits))
        assert is_test_number(digits)
        assert normalise_number(digits) == digits
        assert normalise_number("0" + digits[2:], "GB") == digits
    assert not is_test_number("447700800000")
    with pytest.raises(InvalidNumber):
        normalise_number("4477009000011")  # one digit more is not in the block


_written_numbers = st.builds(
    lambda prefix, digits, separators: prefix + "".join(d + s for d, s in zip(digits, separators, strict=False)),
    st.sampled_from(["", "+", "00", "0", "011", " "]),
    st.lists(st.sampled_from("0123456789"), min_size=1, max_size=18),
    st.lists(st.sampled_from(["", "", " ", "-", ".", "(", ")"]), min_size=18, max_size=18),
)


@settings(max_examples=200)
@given(raw=st.one_of(_written_numbers, st.text(max_size=20)), country_code=st.sampled_from(["", "1", "44", "886"]))
def test_normalised_numbers_are_valid_digits_and_normalising_again_changes_nothing(
    raw: str, country_code: str
) -> None:
    try:
        number = normalise_number(raw, country_code)
    except InvalidNumber:
        return
    assert number.isascii() and number.isdigit() and not number.startswith("0")
    assert phonenumbers.is_valid_number(phonenumbers.parse("+" + number)) or is_test_number(number)
    assert normalise_number(number, country_code, international=True) == number
    assert normalise_number("+" + number, country_code) == number
    assert normalise_number(number) == number


@given(
    raw=st.text(alphabet="0123456789\u0663\u00b2", min_size=1, max_size=18),
    country_code=st.sampled_from(["", "1", "44"]),
    international=st.booleans(),
)
def test_bare_digits_normalise_as_they_do_with_formatting_around_them(
    raw: str, country_code: str, international: bool
) -> None:
    def outcome(written: str) -> str:
        try:
            return normalise_number(written, country_code, international=international)
        except InvalidNumber:
            return "refused"

    assert outcome(raw) == outcome(f" {raw[:1]}-{raw[1:]} ")


def test_handset_keys() -> None:
    assert handset_key("+447700900001") == handset_key("447700900001") == "447700900001"
    assert same_handset("+447700900001", "447700900001")
    assert same_handset("07700900001", "447700900001")  # a network reporting the national form
    assert not same_handset("447700900001", "447700900002")
    assert not same_handset("12345", "912345")
