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

from functools import lru_cache
from typing import Final

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

from smsgw.pdu.constants import CommandStatus

# The virtual network's numbers (DESIGN.md): 447700900000-447700999999, twelve digits.
TEST_NUMBER_PREFIX: Final = "4477009"
TEST_NUMBER_DIGITS: Final = 12
# What people put between digits; anything else (letters, '*', '#', an extension) is not a phone number.
_SEPARATORS: Final = frozenset(" -.()/\t\u00a0")
_FORMATTING: Final = str.maketrans("", "", "".join(_SEPARATORS))
_NO_REGION: Final = "ZZ"  # libphonenumber's "unknown region"
# Submissions to the same numbers are common (alerts, a customer's list sent daily): a parse with validation
# costs ~25 us, a cache hit well under 1.
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
        return digits  # what libphonenumber would refuse (module docstring), without its ~25 us
    if plus or international:
        return _valid(raw, _parse(raw, "+" + body, None), "")
    if not region:
        if digits.startswith("00"):
            return _valid(raw, _parse(raw, "+" + digits[2:], None), "")
        if digits.startswith("011"):
            return _valid(raw, _parse(raw, "+" + digits[3:], None), "")
        if digits.startswith("0"):
            raise InvalidNumber(f"{raw!r} is a national number (leading 0) and there is no default country code")
        return _valid(raw, _parse(raw, "+" + digits, None), "")
    national = _parse(raw, text, region)
    if not _is_valid(national) and not digits.startswith("0"):
        # Digits that mean nothing in the default region may be a full international number written without '+'.
        try:
            abroad = phonenumbers.parse("+" + digits, None)
        except NumberParseException:
            pass
        else:
            if _is_valid(abroad):
                return _digits(abroad)
    return _valid(raw, national, region)


def _parse(raw: str, text: str, region: str | None) -> phonenumbers.PhoneNumber:
    try:
        return phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise InvalidNumber(f"{raw!r} {_WHY_NOT_PARSED.get(exc.error_type, 'is not a phone number')}") from None


def _is_valid(number: phonenumbers.PhoneNumber) -> bool:
    return phonenumbers.is_valid_number(number) or is_test_number(_digits(number))


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
