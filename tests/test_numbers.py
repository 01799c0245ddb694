"""Phone numbers (smsgw.numbers): parsed, validated and formatted with libphonenumber's data, never rewritten
into another number; the virtual network's block is the one exception (its numbers are unallocated)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata

from smsgw import numbers
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


# The fast paths (`_plain_international`, `_plain_national`, `_is_valid` from compiled metadata) must change no
# outcome: the same digits for every number accepted, the same refusal text for every number refused. The reference
# is smsgw.numbers with them replaced by what they stand for, libphonenumber's own `parse` and `is_valid_number`
# (as the module was before they were added), so nothing of the fast paths is in it.
@contextmanager
def _libphonenumber_only() -> Iterator[None]:
    def is_valid(number: phonenumbers.PhoneNumber) -> bool:
        return phonenumbers.is_valid_number(number) or is_test_number(numbers._digits(number))

    with mock.patch.object(numbers, "_plain_international", lambda digits: False), \
            mock.patch.object(numbers, "_plain_national", lambda digits, region: None), \
            mock.patch.object(numbers, "_is_valid", is_valid):
        yield


Written = tuple[str, str, bool]  # raw, region (as check_country_code gives it), international (TON 1)


def _outcomes(cases: list[Written]) -> list[str]:
    """Each case's normalised digits or refusal, past the cache."""

    def outcome(raw: str, region: str, international: bool) -> str:
        try:
            return numbers._normalise.__wrapped__(raw, region, international)
        except InvalidNumber as exc:
            return f"refused: {exc}"

    return [outcome(*case) for case in cases]


def _assert_as_libphonenumber(cases: list[Written]) -> None:
    fast = _outcomes(cases)
    with _libphonenumber_only():
        reference = _outcomes(cases)
    differences = [(case, got, want) for case, got, want in zip(cases, fast, reference, strict=True) if got != want]
    assert not differences, differences[:10]


def _national_significant_numbers() -> dict[int, list[str]]:
    """Each calling code's example numbers in libphonenumber's metadata (every region, every number type): valid
    numbers to vary, where random digits are mostly invalid."""
    examples: dict[int, list[str]] = {}
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        found = examples.setdefault(code, [])
        for region in regions:
            metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
            assert metadata is not None
            for desc in (metadata.general_desc, metadata.fixed_line, metadata.mobile, metadata.toll_free,
                         metadata.premium_rate, metadata.shared_cost, metadata.personal_number, metadata.voip,
                         metadata.pager, metadata.uan, metadata.voicemail, metadata.no_international_dialling):
                if desc is not None and desc.example_number:
                    found.append(desc.example_number)
    return examples


_EXAMPLES = _national_significant_numbers()
_CODES = sorted(_EXAMPLES)
# Regions national numbers are read in: GB, US, FR, DE, IT (numbers with a leading zero kept), NANP members beside
# the US, regions sharing a calling code (GG, KZ), national prefixes with carrier codes and transformations (AR,
# BR, MX, CO, JP), and none.
_REGIONS = ["", "GB", "US", "FR", "DE", "IT", "CA", "JM", "GG", "KZ", "RU", "AR", "BR", "MX", "CO", "JP", "IN", "CN"]


def _national_prefix(code: int) -> str:
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, phonenumbers.region_code_for_country_code(code))
    return (metadata.national_prefix or "") if metadata is not None else ""


def _random_number(rng: random.Random, code: int) -> Written:
    """A number of calling code `code` as someone might write it: an example number with its end (or all of it)
    changed and sometimes a digit more or fewer, with '+', an international prefix, the calling code only, or
    nationally with the national prefix, read with or without a default region, TON 1 or not."""
    examples = _EXAMPLES[code]
    if examples and rng.random() < 0.7:
        example = rng.choice(examples)
        keep = rng.randint(0, len(example))
        length = len(example) + rng.choice((0, 0, 0, 0, -1, 1, 2, -3))
        nsn = example[:keep] + "".join(rng.choice("0123456789") for _ in range(max(0, length - keep)))
    else:
        nsn = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 17)))
    region = rng.choice(_REGIONS)
    own = phonenumbers.region_code_for_country_code(code)
    form = rng.randrange(6)
    if form == 0:
        raw = f"+{code}{nsn}"
    elif form == 1:
        raw = f"{rng.choice(('00', '011', '0', '8', '810'))}{code}{nsn}"
    elif form in (2, 3):
        raw = f"{code}{nsn}"
    else:
        raw = rng.choice(("", _national_prefix(code))) + nsn
        if own in phonenumbers.SUPPORTED_REGIONS and rng.random() < 0.6:
            region = own
    if rng.random() < 0.1:
        raw = f" {raw[:3]} {raw[3:6]}-{raw[6:]}"
    return raw, region, rng.random() < 0.3


@pytest.mark.parametrize("seed", range(4))
def test_200000_random_numbers_of_every_calling_code_normalise_as_libphonenumber_says(seed: int) -> None:
    """The sweep: 50,000 numbers a seed, every calling code in turn; results and refusal texts."""
    rng = random.Random(seed)
    _assert_as_libphonenumber([_random_number(rng, _CODES[n % len(_CODES)]) for n in range(50_000)])


def test_validity_from_compiled_metadata_is_libphonenumber_s() -> None:
    """`_is_valid` against `is_valid_number` itself, for numbers of every calling code whichever way they parse."""
    rng = random.Random(7)
    for n in range(40_000):
        code = _CODES[n % len(_CODES)]
        raw, region, _ = _random_number(rng, code)
        try:
            number = phonenumbers.parse(raw, region or None)
        except phonenumbers.NumberParseException:
            continue
        expected = phonenumbers.is_valid_number(number) or is_test_number(numbers._digits(number))
        assert numbers._is_valid(number) == expected, (raw, region)


@st.composite
def _written_numbers_of_every_kind(draw: st.DrawFn) -> Written:
    """Like `_random_number`: an example number's start and random digits, or random digits only."""
    code = draw(st.sampled_from(_CODES))
    examples = _EXAMPLES[code]
    if draw(st.booleans()) and examples:
        example = draw(st.sampled_from(examples))
        keep = draw(st.integers(0, len(example)))
        tail = len(example) - keep
        nsn = example[:keep] + draw(st.text("0123456789", min_size=max(0, tail - 2), max_size=tail + 3))
    else:
        nsn = draw(st.text("0123456789", max_size=17))
    prefix = draw(st.sampled_from(["+", "", "00", "011", "national", "national prefix"]))
    if prefix == "national":
        raw = nsn
    elif prefix == "national prefix":
        raw = _national_prefix(code) + nsn
    else:
        raw = f"{prefix}{code}{nsn}"
    return raw, draw(st.sampled_from(_REGIONS)), draw(st.booleans())


@settings(max_examples=1000)
@given(cases=st.lists(_written_numbers_of_every_kind(), min_size=1, max_size=5))
def test_normalised_as_libphonenumber_says(cases: list[Written]) -> None:
    _assert_as_libphonenumber(cases)


def test_handset_keys() -> None:
    assert handset_key("+447700900001") == handset_key("447700900001") == "447700900001"
    assert same_handset("+447700900001", "447700900001")
    assert same_handset("07700900001", "447700900001")  # a network reporting the national form
    assert not same_handset("447700900001", "447700900002")
    assert not same_handset("12345", "912345")
