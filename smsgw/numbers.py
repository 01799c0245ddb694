"""Phone numbers: the one home for parsing, validating and formatting them, and for the key a handset is known by.

Every number that enters the gateway (SMPP destination and source addresses, `smsgw send --to/--to-file`, DNC
import, config msisdns and sender IDs) goes through `normalise_number`, which reads it with libphonenumber's data
(the `phonenumbers` package) in the account's default region and returns international digits without '+', the
form the store, routes and receipts use. A number libphonenumber does not know as valid for its country is
refused with an `InvalidNumber` naming it, never rewritten into something else.

The one exception is `TEST_NUMBERS`, the virtual network's block 07700 9xxxxx (DESIGN.md): Ofcom keeps
07700 900000-900999 for drama and libphonenumber treats the whole 077009 block as unallocated, so no real
subscriber can have one of these numbers. The demo, the tests and an operator's own trials send to them; on a
real network they fail as unknown subscribers, and they are never charged (`smsgw.scheduler.routing`).

This module is below the config and the scheduler (it imports only the codec's constants), so every layer uses
the same rule.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final, NamedTuple

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberFormat, ValidationResult
from phonenumbers.phonenumberutil import (
    _MAX_LENGTH_FOR_NSN,
    _MIN_LENGTH_FOR_NSN,
    _match_national_number,
    _maybe_strip_national_prefix_carrier_code,
    _test_number_length,
)

from smsgw.pdu.constants import CommandStatus

# The virtual network's numbers (DESIGN.md): 447700900000-447700999999, twelve digits.
TEST_NUMBER_PREFIX: Final = "4477009"
TEST_NUMBER_DIGITS: Final = 12
# What people put between digits; anything else (letters, '*', '#', an extension) is not a phone number.
_SEPARATORS: Final = frozenset(" -.()/\t\u00a0")
_FORMATTING: Final = str.maketrans("", "", "".join(_SEPARATORS))
_NO_REGION: Final = "ZZ"  # libphonenumber's "unknown region"
# Submissions to the same numbers are common (alerts, a customer's list sent daily): a new number costs ~4-8 us
# written as digits only, ~20 with separators (`_plain_international`), a cache hit well under 1.
_CACHE_SIZE: Final = 65536
_WHY_NOT_POSSIBLE: Final = {
    ValidationResult.INVALID_COUNTRY_CODE: "has no valid country code",
    ValidationResult.TOO_SHORT: "is too short",
    ValidationResult.TOO_LONG: "is too long",
    ValidationResult.INVALID_LENGTH: "has the wrong number of digits",
}
_WHY_NOT_PARSED: Final = {
    NumberParseException.INVALID_COUNTRY_CODE: "has no valid country code",
    NumberParseException.TOO_SHORT_AFTER_IDD: "is too short",
    NumberParseException.TOO_SHORT_NSN: "is too short",
    NumberParseException.TOO_LONG: "is too long",
}


class InvalidNumber(ValueError):
    """A number that is not a valid phone number of its country; `reason` quotes it and says why. Refused at
    submit with `command_status` (ESME_RINVDSTADR)."""

    command_status: int = CommandStatus.ESME_RINVDSTADR

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_country_code(default_country_code: str) -> str:
    """The region national numbers are read in, from a setting that is a country calling code (`44`, `+44`) or
    an ISO 3166 country code (`GB`); '' for none. A calling code shared by several countries gives its main one
    (1 -> US, 7 -> RU), which reads the shared national numbering plan the same. InvalidNumber otherwise."""
    return _region(default_country_code.strip())


@lru_cache(maxsize=64)
def _region(setting: str) -> str:
    if not setting:
        return ""
    digits = setting.removeprefix("+")
    if digits.isascii() and digits.isdigit() and not digits.startswith("0") and len(digits) <= 3:
        region = phonenumbers.region_code_for_country_code(int(digits))
        if region == _NO_REGION:
            raise InvalidNumber(f"default country code {setting!r} is not a country's calling code")
        return str(region)
    if setting.upper() in phonenumbers.SUPPORTED_REGIONS:
        return setting.upper()
    raise InvalidNumber(f"default country code {setting!r} is neither a calling code (44) nor a country (GB)")


def is_test_number(digits: str) -> bool:
    """Whether international `digits` are one of the virtual network's numbers (`TEST_NUMBERS` above)."""
    return len(digits) == TEST_NUMBER_DIGITS and digits.startswith(TEST_NUMBER_PREFIX) and digits.isdigit()


def normalise_number(raw: str, default_country_code: str = "", *, international: bool = False) -> str:
    """International digits without '+' of a number as people and ESMEs write it: `+44 (0)7700 900001`,
    `0044…`, `011…` (from NANP), `07700 900001` (national, in the default region), `447700900001`.

    `default_country_code` is the region national numbers are read in (see `check_country_code`); without one
    a number needs a '+', an international prefix, or its country code first. With one, digits that are not a
    valid national number there but are a valid international one are taken as that (`33612345678` in GB is
    French). `international` (an SMPP address with TON 1) says the digits start with a country code.
    InvalidNumber (ESME_RINVDSTADR) quotes the input and says what is wrong.
    """
    return _normalise(raw, check_country_code(default_country_code), international)


@lru_cache(maxsize=_CACHE_SIZE)
def _normalise(raw: str, region: str, international: bool) -> str:
    text = raw.strip()
    if not text:
        raise InvalidNumber("empty number")
    plus = text.startswith("+")
    body = text[1:] if plus else text
    digits = body.translate(_FORMATTING)
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidNumber(f"{raw!r} is not a phone number (only digits, spaces, dashes, dots and parentheses)")
    if (plus or international or not region) and is_test_number(digits):
        return digits  # what libphonenumber would refuse (module docstring), without asking it
    if plus or international:
        return _international(raw, body)
    if not region:
        if digits.startswith("00"):
            return _international(raw, digits[2:])
        if digits.startswith("011"):
            return _international(raw, digits[3:])
        if digits.startswith("0"):
            raise InvalidNumber(f"{raw!r} is a national number (leading 0) and there is no default country code")
        return _international(raw, digits)
    if text.isdigit():
        plain = _plain_national(digits, region)
        if plain is not None:
            number, valid = plain
            if valid:
                return number
            if not digits.startswith("0") and _plain_international(digits):
                return digits  # a valid international number, as below
    national = _parse(raw, text, region)
    if not _is_valid(national) and not digits.startswith("0"):
        # Digits that mean nothing in the default region may be a full international number written without '+'.
        if _plain_international(digits):
            return digits
        try:
            abroad = phonenumbers.parse("+" + digits, None)
        except NumberParseException:
            pass
        else:
            if _is_valid(abroad):
                return _digits(abroad)
    return _valid(raw, national, region)


def _international(raw: str, written: str) -> str:
    """The digits of `+written`, what follows a '+' or an international prefix (ASCII digits and separators)."""
    if written.isdigit() and _plain_international(written):
        return written
    return _valid(raw, _parse(raw, "+" + written, None), "")


def _parse(raw: str, text: str, region: str | None) -> phonenumbers.PhoneNumber:
    try:
        return phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise InvalidNumber(f"{raw!r} {_WHY_NOT_PARSED.get(exc.error_type, 'is not a phone number')}") from None


def _is_valid(number: phonenumbers.PhoneNumber) -> bool:
    calling_code = _calling_code(number.country_code)
    nsn = phonenumbers.national_significant_number(number)
    return (calling_code is not None and calling_code.is_valid(nsn)) or is_test_number(_digits(number))


def _digits(number: phonenumbers.PhoneNumber) -> str:
    return str(phonenumbers.format_number(number, PhoneNumberFormat.E164))[1:]


def _valid(raw: str, number: phonenumbers.PhoneNumber, region: str) -> str:
    if _is_valid(number):
        return _digits(number)
    calling_code = number.country_code or 0
    country = phonenumbers.region_code_for_number(number) or phonenumbers.region_code_for_country_code(calling_code)
    place = f"+{calling_code}" if country in (None, _NO_REGION) else str(country)
    why = _WHY_NOT_POSSIBLE.get(phonenumbers.is_possible_number_with_reason(number))
    if why is None:
        why = f"is not a valid number in {place}"
    elif region and calling_code == phonenumbers.country_code_for_region(region):
        why += f" for {region}"
    raise InvalidNumber(f"{raw!r} {why}")


# A new number cost ~30 us (327,000 instructions for an SMPP destination with TON 1), nearly all of it in
# libphonenumber's Python: `parse` looks for a number in free text (RFC 3966 contexts, extensions, a second
# number) with large expressions, and `is_valid_number` tries a region's dozen number-type patterns one call chain
# at a time. Numbers written as digits only are read here as `parse` would read them, from the same metadata and
# with its own helpers, and every number is validated with its region's patterns joined into one expression:
# ~29,000 instructions for that destination (BENCHMARKS.md). Anything less plain is still `parse`'s. That nothing
# changes (digits and refusals) is tests/test_numbers.py's to prove, over every calling code.
_CALLING_CODES: Final = {str(code): code for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}


def _plain_international(digits: str) -> bool:
    """Whether `+digits` (ASCII digits) is a valid number read plainly, as `phonenumbers.parse` reads it when all it
    does is split off the calling code: the rest a possible length for a national significant number and no
    national prefix at its start for `parse` to consider stripping. False says only that the number is not
    valid this simply: whether it is at all, and why not, is libphonenumber's to say."""
    for size in range(1, 4):  # as parse does: the shortest calling code the digits start with
        country_code = _CALLING_CODES.get(digits[:size])
        if country_code is not None:
            break
    else:
        return False
    nsn = digits[size:]
    if not _MIN_LENGTH_FOR_NSN <= len(nsn) <= _MAX_LENGTH_FOR_NSN:
        return False
    calling_code = _calling_code(country_code)
    assert calling_code is not None  # a key of COUNTRY_CODE_TO_REGION_CODE
    if calling_code.national_prefix is not None and calling_code.national_prefix.match(nsn):
        return False
    return calling_code.is_valid(nsn)


# Lengths at which `parse` keeps a national number as it was written rather than with its national prefix stripped.
_KEEPS_UNSTRIPPED: Final = (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
                            ValidationResult.INVALID_LENGTH)


def _plain_national(digits: str, region: str) -> tuple[str, bool] | None:
    """The international digits of `digits` (ASCII, no '+') and whether they are valid (`_is_valid`), read as
    `phonenumbers.parse` reads them in `region` when they start with no international prefix: as a national
    number, or after the region's calling code if parse takes them so, with a national prefix stripped as
    libphonenumber strips it. None when parse might read them otherwise or refuse them: ask it."""
    reading = _national_reading(region)
    if reading is None or len(digits) < _MIN_LENGTH_FOR_NSN or reading.international_prefix.match(digits):
        return None
    metadata, national = reading.metadata, digits
    if digits.startswith(reading.country_code):  # parse's `_maybe_extract_country_code`, the calling code of region
        general = metadata.general_desc
        _, after, _ = _maybe_strip_national_prefix_carrier_code(digits[len(reading.country_code):], metadata)
        if (not _match_national_number(digits, general, False) and _match_national_number(after, general, False)) \
                or _test_number_length(digits, metadata) == ValidationResult.TOO_LONG:
            metadata, national = reading.main_metadata, after
    if len(national) < _MIN_LENGTH_FOR_NSN:
        return None
    _, stripped, _ = _maybe_strip_national_prefix_carrier_code(national, metadata)
    nsn = national if _test_number_length(stripped, metadata) in _KEEPS_UNSTRIPPED else stripped
    if not _MIN_LENGTH_FOR_NSN <= len(nsn) <= _MAX_LENGTH_FOR_NSN:
        return None
    international = reading.country_code + nsn
    return international, reading.calling_code.is_valid(nsn) or is_test_number(international)


class _NationalReading(NamedTuple):
    """What `parse` reads a number written in a region without '+' with."""

    metadata: PhoneMetadata  # the region's
    main_metadata: PhoneMetadata  # its calling code's main region's, for a number parse finds that code in
    international_prefix: re.Pattern[str]  # the region's (none: an expression that never matches digits)
    country_code: str
    calling_code: _CallingCode


@lru_cache(maxsize=None)
def _national_reading(region: str) -> _NationalReading | None:
    """None for a region `parse` takes no national numbers in (001, the non-geographic entities)."""
    metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
    if metadata is None or metadata.country_code is None:
        return None
    main_region = phonenumbers.region_code_for_country_code(metadata.country_code)
    main_metadata = PhoneMetadata.metadata_for_region_or_calling_code(metadata.country_code, main_region)
    calling_code = _calling_code(metadata.country_code)
    if main_metadata is None or calling_code is None:  # not in libphonenumber's data: parse fails on it
        return None
    international_prefix = "(?!)" if metadata.international_prefix is None else metadata.international_prefix
    return _NationalReading(metadata, main_metadata if main_region != region else metadata,
                            re.compile(international_prefix), str(metadata.country_code), calling_code)


class _RegionNumbers:
    """A region's valid national significant numbers (libphonenumber's `_number_type_helper` not UNKNOWN): of
    the general description's pattern and lengths, and of a number type's. One expression per length, compiled
    when first needed: the patterns of the types that have the length, tried by one `fullmatch`."""

    __slots__ = ("_metadata", "_by_length")

    def __init__(self, metadata: PhoneMetadata) -> None:
        self._metadata = metadata
        self._by_length: dict[int, re.Pattern[str] | None] = {}

    def knows(self, nsn: str) -> bool:
        try:
            pattern = self._by_length[len(nsn)]
        except KeyError:
            pattern = self._by_length[len(nsn)] = self._compile(len(nsn))
        return pattern is not None and pattern.fullmatch(nsn) is not None

    def _compile(self, length: int) -> re.Pattern[str] | None:
        metadata = self._metadata
        general = _pattern_for_length(metadata.general_desc, length)
        if general is None:
            return None
        types = [metadata.premium_rate, metadata.toll_free, metadata.shared_cost, metadata.voip,
                 metadata.personal_number, metadata.pager, metadata.uan, metadata.voicemail, metadata.fixed_line]
        if not metadata.same_mobile_and_fixed_line_pattern:  # otherwise libphonenumber never asks mobile's
            types.append(metadata.mobile)
        alternatives = [pattern for pattern in (_pattern_for_length(desc, length) for desc in types) if pattern]
        if not alternatives:
            return None
        return re.compile(f"(?=(?:{general})\\Z)(?:{'|'.join(f'(?:{pattern})' for pattern in alternatives)})")


def _pattern_for_length(desc: phonenumbers.PhoneNumberDesc | None, length: int) -> str | None:
    """A description's pattern if numbers of `length` can match it (`_is_number_matching_desc`: no lengths
    given means any), None if none can."""
    if desc is None or not desc.national_number_pattern:
        return None
    if desc.possible_length and length not in desc.possible_length:
        return None
    return desc.national_number_pattern


class _CallingCode:
    """What reading and validating the numbers of one calling code take from libphonenumber's metadata."""

    __slots__ = ("national_prefix", "_regions")

    def __init__(self, country_code: int, regions: tuple[str, ...]) -> None:
        # `parse` reads the national significant number with the calling code's main region.
        main = PhoneMetadata.metadata_for_region_or_calling_code(country_code, regions[0])
        # No metadata to read with (not in libphonenumber's data): an expression that matches always, so every
        # number goes to `parse`.
        prefix = "" if main is None else main.national_prefix_for_parsing
        self.national_prefix = re.compile(prefix) if prefix is not None else None
        # `is_valid_number`: the only region, or the first of several whose leading digits the number starts with
        # or, for a region without leading digits, which knows it; then whether that region knows it and has
        # this calling code.
        self._regions: list[tuple[re.Pattern[str] | None, _RegionNumbers, bool]] = []
        for region in regions:
            metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region.upper())
            if metadata is None:
                continue
            leading = metadata.leading_digits if len(regions) > 1 else None
            ours = region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY or metadata.country_code == country_code
            self._regions.append((None if leading is None else re.compile(leading), _RegionNumbers(metadata), ours))

    def is_valid(self, nsn: str) -> bool:
        """`phonenumbers.is_valid_number` of a number of this calling code with national significant `nsn`."""
        for leading, numbers, ours in self._regions:
            if leading is None:
                if numbers.knows(nsn):
                    return ours
            elif leading.match(nsn):
                return ours and numbers.knows(nsn)
        return False


@lru_cache(maxsize=None)
def _calling_code(country_code: int | None) -> _CallingCode | None:
    """None for a calling code libphonenumber does not know: none of its numbers is valid."""
    if country_code not in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        return None
    return _CallingCode(country_code, phonenumbers.COUNTRY_CODE_TO_REGION_CODE[country_code])


def handset_key(address: str) -> str:
    """The key a handset is known by across messages, MO and notices: its international digits without '+'.

    Destinations are stored normalised; the numbers modems and networks report (an MO's originator, a modem's
    msisdn from the config) may carry a '+'. The store compares and indexes handsets by this key only."""
    return address.removeprefix("+")


# National and international renderings of one number share the subscriber number; 9 digits is the shortest
# length at which they are taken as the same (a network may report `07700900001` for `447700900001`).
_SUBSCRIBER_DIGITS: Final = 9


def same_handset(a: str, b: str) -> bool:
    """Whether two renderings of a number (`+44…`, `44…`, national `07…`) as a network reports them name the
    same handset: equal keys, or the same last nine digits where one side is national."""
    a, b = handset_key(a), handset_key(b)
    if a == b:
        return True
    shortest = min(len(a), len(b))
    return shortest >= _SUBSCRIBER_DIGITS and a.isdigit() and b.isdigit() and a[-9:] == b[-9:]
