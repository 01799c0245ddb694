"""3GPP TS 23.040 TPDU field values: addresses (9.1.2.5) and the SMSC prefix of PDU mode, TP-DCS (TS 23.038),
timestamps (9.2.3.11), validity periods (9.2.3.12) and user data (9.2.3.16, 9.2.3.24).

`tpdu` assembles these into SMS-SUBMIT, SMS-DELIVER and SMS-STATUS-REPORT; the layouts are the construct
declarations of `_tpdu_schema`. Decoding untrusted bytes raises only `PduError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from construct import ConstructError, Container

from . import _tpdu_schema as schema
from .constants import CommandStatus
from .errors import PduError
from .gsm7 import (
    decode_gsm7,
    encode_gsm7,
    fill_bits_for_udh,
    pack_septets,
    packed_length,
    septets_for_udh,
    unpack_septets,
)
from .text import Encoding, decode_as


# 9.2.3.16: TP-UD carries at most 140 octets, so at most 160 septets.
MAX_USER_DATA_OCTETS: Final = 140
MAX_USER_DATA_SEPTETS: Final = 160
# 9.1.2.5: an address value is at most 10 octets: 20 semi-octets, that is 20 digits or 11 packed GSM characters.
MAX_ADDRESS_SEMI_OCTETS: Final = 20
MAX_ALPHANUMERIC_SEPTETS: Final = 11
# TS 24.011 8.2.5.1: an RP address holds at most 11 octets after its length octet.
MAX_SMSC_OCTETS: Final = 11

# A structurally broken TPDU has no better SMPP answer than a system error: the network or modem sent it.
MALFORMED_TPDU: Final = CommandStatus.ESME_RSYSERR


class TypeOfNumber(enum.IntEnum):
    """TS 23.040 9.1.2.5 type of number (TON)."""

    UNKNOWN = 0
    INTERNATIONAL = 1
    NATIONAL = 2
    NETWORK_SPECIFIC = 3
    SUBSCRIBER = 4
    ALPHANUMERIC = 5
    ABBREVIATED = 6
    RESERVED = 7


class NumberingPlan(enum.IntEnum):
    """TS 23.040 9.1.2.5 numbering plan identification (NPI); other values are reserved."""

    UNKNOWN = 0
    ISDN = 1
    DATA = 3
    TELEX = 4
    SC_SPECIFIC_1 = 5
    SC_SPECIFIC_2 = 6
    NATIONAL = 8
    PRIVATE = 9
    ERMES = 10
    RESERVED = 15


def type_of_address_octet(ton: int, npi: int = NumberingPlan.ISDN) -> int:
    """The type-of-address octet of 9.1.2.5 (`schema.TypeOfAddress`): the extension bit, TON and NPI. AT commands
    write it in decimal next to a number (TS 27.005 `<toda>`, `<tosca>`, `<tora>`): 145 for an international
    ISDN number, 129 for one of unknown type."""
    return 0x80 | ton << 4 | npi


def dialled_type_of_address(number: str) -> int:
    """The `<toda>`/`<tosca>` that goes with a number as AT commands' text parameters write it (TS 27.005 3.1,
    3.3.4): international when it starts with '+', else of unknown type (the network reads whatever prefix the
    digits have)."""
    ton = TypeOfNumber.INTERNATIONAL if number.startswith("+") else TypeOfNumber.UNKNOWN
    return type_of_address_octet(ton)


# 9.1.2.3: semi-octet values 0xA..0xE are '*', '#', 'a', 'b', 'c'; 0xF pads an odd count.
_SEMI_OCTET_DIGITS: Final = "0123456789*#abc"
_SEMI_OCTET_VALUES: Final = {char: value for value, char in enumerate(_SEMI_OCTET_DIGITS)}
_FILLER: Final = 0xF


# Semi-octet digits as the hex digits of their values, and every octet with its nibbles swapped: the digits
# are written as hex in reading order, then swapped to the low-nibble-first order of 9.1.2.3.
_SEMI_OCTET_AS_HEX: Final = str.maketrans("*#abc", "abcde")
_SWAPPED_NIBBLES: Final = bytes((octet & 0x0F) << 4 | octet >> 4 for octet in range(256))


def _encode_semi_octets(digits: str) -> bytes:
    """`digits` of `_SEMI_OCTET_DIGITS` only (an `Address` checks its number on construction)."""
    hex_digits = digits.translate(_SEMI_OCTET_AS_HEX) + ("f" if len(digits) % 2 else "")
    return bytes.fromhex(hex_digits).translate(_SWAPPED_NIBBLES)


# Each octet's two semi-octets as text, low nibble first; the filler shows as "F", which no digit is.
_SEMI_OCTET_PAIRS: Final = tuple(
    (_SEMI_OCTET_DIGITS + "F")[octet & 0x0F] + (_SEMI_OCTET_DIGITS + "F")[octet >> 4] for octet in range(256)
)


def _decode_semi_octets(value: bytes, count: int, status: CommandStatus) -> str:
    digits = "".join(map(_SEMI_OCTET_PAIRS.__getitem__, value))[:count]
    if "F" in digits:
        raise PduError(f"filler semi-octet inside the address {value.hex().upper()}", command_status=status)
    return digits


@dataclass(frozen=True, slots=True)
class Address:
    """A TP-OA/TP-DA/TP-RA address (9.1.2.5). `number` is the digits without '+', or the text when alphanumeric."""

    number: str
    ton: int = TypeOfNumber.UNKNOWN
    npi: int = NumberingPlan.ISDN

    def __post_init__(self) -> None:
        if not 0 <= self.ton <= 7 or not 0 <= self.npi <= 15:
            raise PduError(
                f"TON {self.ton} / NPI {self.npi} out of range", command_status=CommandStatus.ESME_RINVDSTADR
            )
        if self.ton == TypeOfNumber.ALPHANUMERIC:
            septets = len(encode_gsm7(self.number))
            if septets > MAX_ALPHANUMERIC_SEPTETS:
                raise PduError(
                    f"alphanumeric address {self.number!r} needs {septets} septets, at most {MAX_ALPHANUMERIC_SEPTETS}",
                    command_status=CommandStatus.ESME_RINVDSTADR,
                )
            return
        number = self.number
        # Plain digits (nearly every address) pass without the character-by-character check.
        if len(number) > MAX_ADDRESS_SEMI_OCTETS or not (
            (number.isascii() and number.isdigit()) or all(c in _SEMI_OCTET_VALUES for c in number)
        ):
            raise PduError(
                f"address {self.number!r} is not at most {MAX_ADDRESS_SEMI_OCTETS} of the characters 0-9 * # a b c",
                command_status=CommandStatus.ESME_RINVDSTADR,
            )

    @classmethod
    def international(cls, number: str) -> Address:
        return cls(number.removeprefix("+"), TypeOfNumber.INTERNATIONAL, NumberingPlan.ISDN)

    @classmethod
    def national(cls, number: str) -> Address:
        return cls(number, TypeOfNumber.NATIONAL, NumberingPlan.ISDN)

    @classmethod
    def alphanumeric(cls, text: str) -> Address:
        return cls(text, TypeOfNumber.ALPHANUMERIC, NumberingPlan.UNKNOWN)

    @classmethod
    def parse(cls, text: str) -> Address:
        """'+digits' is international, digits (with * #) of unknown type, anything else alphanumeric."""
        if text.startswith("+") and text[1:].isdigit():
            return cls.international(text)
        if text and all(c in "0123456789*#" for c in text):
            return cls(text, TypeOfNumber.UNKNOWN, NumberingPlan.ISDN)
        return cls.alphanumeric(text)

    def __str__(self) -> str:
        return f"+{self.number}" if self.ton == TypeOfNumber.INTERNATIONAL else self.number

    @property
    def type_of_address(self) -> int:
        """The type-of-address octet of this address (see `type_of_address_octet`; range-checked on construction)."""
        return type_of_address_octet(self.ton, self.npi)

    def _length_and_value(self) -> tuple[int, bytes]:
        if self.ton == TypeOfNumber.ALPHANUMERIC:
            septets = encode_gsm7(self.number)
            # 9.1.2.5: the useful semi-octets of the packed text, so the receiver knows the septet count exactly.
            return (len(septets) * 7 + 3) // 4, pack_septets(septets)
        return len(self.number), _encode_semi_octets(self.number)

    def to_bytes(self) -> bytes:
        # Built by hand in the layout of schema.AddressField (a property test holds the two equal), as the
        # TPDUs are.
        length, value = self._length_and_value()
        return bytes((length, self.type_of_address)) + value

    @classmethod
    def from_parsed(cls, parsed: Container, status: CommandStatus) -> Address:
        """From a parsed `schema.AddressField`; `status` is the SMPP answer when it is invalid (TP-OA or TP-DA)."""
        return cls.from_fields(parsed.toa.ton, parsed.toa.npi, parsed.length, parsed.value, status)

    @classmethod
    def from_fields(cls, ton: int, npi: int, length: int, value: bytes, status: CommandStatus) -> Address:
        """From the fields the TPDU fast paths read by hand (`length` in semi-octets), checked as `from_parsed`."""
        if length > MAX_ADDRESS_SEMI_OCTETS:
            raise PduError(f"address of {length} semi-octets, at most {MAX_ADDRESS_SEMI_OCTETS}", command_status=status)
        if ton == TypeOfNumber.ALPHANUMERIC:
            return cls(decode_gsm7(unpack_septets(value, length * 4 // 7)), ton, npi)
        return cls(_decode_semi_octets(value, length, status), ton, npi)

    @classmethod
    def from_bytes(cls, data: bytes) -> Address:
        """One address field exactly (no trailing octets)."""
        parsed = parse_layout(schema.AddressField, data, "address")
        if len(data) != 2 + len(parsed.value):
            raise PduError(f"{len(data) - 2 - len(parsed.value)} octets after the address", command_status=MALFORMED_TPDU)
        return cls.from_parsed(parsed, CommandStatus.ESME_RINVDSTADR)


class DcsGroup(enum.Enum):
    """TS 23.038 section 4 coding group: the high nibble of TP-DCS."""

    GENERAL = "general"
    AUTOMATIC_DELETION = "automatic_deletion"
    RESERVED = "reserved"
    MESSAGE_WAITING_DISCARD = "message_waiting_discard"
    MESSAGE_WAITING_STORE = "message_waiting_store"
    DATA_CODING_MESSAGE_CLASS = "data_coding_message_class"


@dataclass(frozen=True, slots=True)
class Dcs:
    """A TP-DCS octet (TS 23.038 section 4), kept as received so re-encoding is exact, with its meaning.

    The receiving rules of TS 23.038 apply: reserved alphabets and coding groups mean GSM 7-bit.
    """

    value: int = 0x00

    def __post_init__(self) -> None:
        if not 0 <= self.value <= 0xFF:
            raise PduError(f"TP-DCS {self.value} is not an octet", command_status=CommandStatus.ESME_RINVDCS)

    @classmethod
    def for_encoding(cls, encoding: Encoding, message_class: int | None = None) -> Dcs:
        """General coding group: GSM 7-bit, 8-bit data or UCS-2, with message class 0-3 (0 is "flash")."""
        alphabet = {Encoding.GSM7: 0b00, Encoding.BINARY: 0b01, Encoding.UCS2: 0b10}.get(encoding)
        if alphabet is None:
            raise PduError(f"{encoding.name} has no TP-DCS alphabet", command_status=CommandStatus.ESME_RINVDCS)
        if message_class is None:
            return cls(alphabet << 2)
        if not 0 <= message_class <= 3:
            raise PduError(f"message class {message_class} is not 0-3", command_status=CommandStatus.ESME_RINVDCS)
        return cls(0x10 | alphabet << 2 | message_class)

    @classmethod
    def gsm7(cls, message_class: int | None = None) -> Dcs:
        return cls.for_encoding(Encoding.GSM7, message_class)

    @classmethod
    def eight_bit(cls, message_class: int | None = None) -> Dcs:
        return cls.for_encoding(Encoding.BINARY, message_class)

    @classmethod
    def ucs2(cls, message_class: int | None = None) -> Dcs:
        return cls.for_encoding(Encoding.UCS2, message_class)

    @property
    def group(self) -> DcsGroup:
        high = self.value >> 4
        if high <= 0x3:
            return DcsGroup.GENERAL
        if high <= 0x7:
            return DcsGroup.AUTOMATIC_DELETION
        if high <= 0xB:
            return DcsGroup.RESERVED
        if high == 0xC:
            return DcsGroup.MESSAGE_WAITING_DISCARD
        if high in (0xD, 0xE):
            return DcsGroup.MESSAGE_WAITING_STORE
        return DcsGroup.DATA_CODING_MESSAGE_CLASS

    @property
    def _has_alphabet_bits(self) -> bool:
        return self.group in (DcsGroup.GENERAL, DcsGroup.AUTOMATIC_DELETION)

    @property
    def encoding(self) -> Encoding:
        """GSM7, BINARY (8-bit data) or UCS2."""
        if self._has_alphabet_bits:
            alphabet = (self.value >> 2) & 0b11
            return {0b01: Encoding.BINARY, 0b10: Encoding.UCS2}.get(alphabet, Encoding.GSM7)
        if self.value >> 4 == 0xE:
            return Encoding.UCS2
        if self.group is DcsGroup.DATA_CODING_MESSAGE_CLASS and self.value & 0x04:
            return Encoding.BINARY
        return Encoding.GSM7

    @property
    def message_class(self) -> int | None:
        """0 (flash: displayed, not stored), 1 (ME), 2 (SIM), 3 (TE), or None when the octet gives no class."""
        if (self._has_alphabet_bits and self.value & 0x10) or self.group is DcsGroup.DATA_CODING_MESSAGE_CLASS:
            return self.value & 0b11
        return None

    @property
    def compressed(self) -> bool:
        """TS 23.042 compression: TP-UDL then counts octets, and the text cannot be read here."""
        return self._has_alphabet_bits and bool(self.value & 0x20)

    @property
    def septet_user_data(self) -> bool:
        """Whether TP-UDL counts septets (uncompressed GSM 7-bit) rather than octets."""
        return self.encoding is Encoding.GSM7 and not self.compressed


# --- timestamps (9.2.3.11) and validity periods (9.2.3.12) ------------------------------------------------------

_MAX_QUARTER_HOURS: Final = 79  # two BCD digits, the top bit of the tens digit being the sign


def _bcd(octet: int, what: str) -> int:
    low, high = octet & 0x0F, octet >> 4
    if low > 9 or high > 9:
        raise PduError(f"{what}: 0x{octet:02X} is not two semi-octet digits", command_status=MALFORMED_TPDU)
    return low * 10 + high


# 0-99 as two semi-octet digits, the tens in the low nibble.
_SEMI_OCTET_BCD: Final = bytes((number // 10) | (number % 10) << 4 for number in range(100))


def decode_timestamp(data: bytes, what: str = "timestamp") -> datetime:
    """Seven semi-octet pairs YYMMDDhhmmss + time zone in quarter hours; years are 2000-2099."""
    if len(data) != 7:
        raise PduError(f"{what} needs 7 octets, got {len(data)}", command_status=MALFORMED_TPDU)
    year, month, day, hour, minute, second = (_bcd(octet, what) for octet in data[:6])
    zone = data[6]
    quarters = _bcd(zone & 0xF7, what)
    if zone & 0x08:
        quarters = -quarters
    try:
        zone_offset = timezone(timedelta(minutes=15 * quarters))
        return datetime(2000 + year, month, day, hour, minute, second, tzinfo=zone_offset)
    except ValueError as error:
        raise PduError(f"{what} {data.hex().upper()}: {error}", command_status=MALFORMED_TPDU) from None


def encode_timestamp(moment: datetime) -> bytes:
    """`moment` (aware, 2000-2099, UTC offset a whole number of quarter hours) to 7 octets; seconds resolution."""
    offset = moment.utcoffset()
    if offset is None:
        raise PduError(f"timestamp {moment} has no time zone", command_status=MALFORMED_TPDU)
    quarters, rest = divmod(int(offset.total_seconds()), 15 * 60)
    if rest or abs(quarters) > _MAX_QUARTER_HOURS:
        raise PduError(
            f"UTC offset {offset} is not a whole number of quarter hours within ±19:45", command_status=MALFORMED_TPDU
        )
    if not 2000 <= moment.year <= 2099:
        raise PduError(f"year {moment.year} is outside 2000-2099", command_status=MALFORMED_TPDU)
    bcd = _SEMI_OCTET_BCD
    zone = bcd[abs(quarters)] | (0x08 if quarters < 0 else 0)
    return bytes((
        bcd[moment.year - 2000], bcd[moment.month], bcd[moment.day], bcd[moment.hour], bcd[moment.minute],
        bcd[moment.second], zone,
    ))


def decode_relative_validity(tp_vp: int) -> timedelta:
    """TP-VP relative format (9.2.3.12.1) to the period it stands for."""
    if tp_vp <= 143:
        return timedelta(minutes=5 * (tp_vp + 1))
    if tp_vp <= 167:
        return timedelta(hours=12, minutes=30 * (tp_vp - 143))
    if tp_vp <= 196:
        return timedelta(days=tp_vp - 166)
    return timedelta(weeks=tp_vp - 192)


def encode_relative_validity(validity: timedelta) -> int:
    """The TP-VP of the shortest period at least as long as `validity`, so a message never expires early.

    Periods from 5 minutes to 63 weeks; 0 or less, or longer, raise PduError (ESME_RINVEXPIRY).
    """
    if validity <= timedelta(0) or validity > timedelta(weeks=63):
        raise PduError(f"validity {validity} is outside 0 to 63 weeks", command_status=CommandStatus.ESME_RINVEXPIRY)
    minutes = -(-validity // timedelta(minutes=1))
    if minutes <= 12 * 60:
        return max(0, -(-minutes // 5) - 1)
    if minutes <= 24 * 60:
        return 143 + -(-(minutes - 12 * 60) // 30)
    days = -(-minutes // (24 * 60))
    if days <= 30:
        return 166 + days
    return 192 + -(-days // 7)


# --- user data (9.2.3.16, 9.2.3.24) -------------------------------------------------------------------------------


def encode_user_data(dcs: Dcs, udh: bytes, user_data: bytes) -> tuple[int, bytes]:
    """(TP-UDL, TP-UD) for `udh` (UDHL included) followed by `user_data` (septets when 7-bit)."""
    if udh and udh[0] != len(udh) - 1:
        raise PduError(f"UDH length octet {udh[0]} but {len(udh) - 1} octets follow", command_status=MALFORMED_TPDU)
    if dcs.septet_user_data:
        if not user_data.isascii():
            raise PduError("GSM 7-bit user data holds an octet above 0x7F", command_status=CommandStatus.ESME_RINVDCS)
        udl = septets_for_udh(len(udh)) + len(user_data)
        if udl > MAX_USER_DATA_SEPTETS:
            raise PduError(
                f"user data of {udl} septets, at most {MAX_USER_DATA_SEPTETS}",
                command_status=CommandStatus.ESME_RINVMSGLEN,
            )
        return udl, udh + pack_septets(user_data, fill_bits_for_udh(len(udh)))
    udl = len(udh) + len(user_data)
    if udl > MAX_USER_DATA_OCTETS:
        raise PduError(
            f"user data of {udl} octets, at most {MAX_USER_DATA_OCTETS}", command_status=CommandStatus.ESME_RINVMSGLEN
        )
    return udl, udh + user_data


def decode_user_data(dcs: Dcs, udhi: bool, udl: int, ud: bytes) -> tuple[bytes, bytes]:
    """(UDH with its UDHL octet, the rest) of TP-UD; TP-UDL must account for the octets exactly."""
    septets = dcs.septet_user_data
    limit = MAX_USER_DATA_SEPTETS if septets else MAX_USER_DATA_OCTETS
    if udl > limit:
        raise PduError(f"TP-UDL {udl} exceeds {limit}", command_status=CommandStatus.ESME_RINVMSGLEN)
    expected = packed_length(udl) if septets else udl
    if len(ud) != expected:
        raise PduError(
            f"TP-UDL {udl} needs {expected} octets of TP-UD, got {len(ud)}",
            command_status=CommandStatus.ESME_RINVMSGLEN,
        )
    udh = b""
    if udhi:
        if not ud or ud[0] + 1 > len(ud):
            raise PduError("TP-UDHI set but the user data header does not fit in TP-UD", command_status=MALFORMED_TPDU)
        udh = ud[: ud[0] + 1]
    if not septets:
        return udh, ud[len(udh) :]
    header_septets = septets_for_udh(len(udh)) if udh else 0
    if header_septets > udl:
        raise PduError(f"UDH of {len(udh)} octets is longer than TP-UDL {udl} septets", command_status=MALFORMED_TPDU)
    # unpack_septets reads the septets that follow the header's fill bits.
    return udh, unpack_septets(ud[len(udh) :], udl - header_septets, fill_bits_for_udh(len(udh)))


def user_data_text(dcs: Dcs, user_data: bytes) -> str | None:
    """The user data (without the UDH) as text; None for 8-bit data or compressed text."""
    if dcs.compressed or dcs.encoding is Encoding.BINARY:
        return None
    return decode_as(user_data, dcs.encoding)


def parse_layout(layout: Any, data: bytes, what: str) -> Container:
    """`layout` parsed from `data`, construct's errors raised as `PduError` naming `what`."""
    try:
        return layout.parse(data)
    except ConstructError as error:
        raise PduError(f"{what} truncated or malformed: {error}", command_status=MALFORMED_TPDU) from None


def ton_npi(toa: int) -> tuple[int, int]:
    """TON and NPI of a type-of-address octet (the inverse of `type_of_address_octet`; the extension bit is not read,
    as the construct declaration does not)."""
    return toa >> 4 & 0x07, toa & 0x0F


# --- the SMSC prefix of PDU mode (TS 27.005 3.1, TS 24.011 8.2.5.1) ------------------------------------------------


def encode_with_smsc(tpdu: bytes, smsc: str | None = None) -> bytes:
    """The PDU `AT+CMGS` takes: the SMSC address ("00" = the one stored in the modem) then the TPDU."""
    if not smsc:
        return b"\x00" + tpdu
    address = Address.parse(smsc)
    if address.ton == TypeOfNumber.ALPHANUMERIC:
        raise PduError(f"SMSC {smsc!r} is not a number", command_status=CommandStatus.ESME_RINVDSTADR)
    # Built by hand in the layout of schema.SmscField (a property test holds them equal): at most 20 digits, so
    # the length octet is at most 11.
    value = _encode_semi_octets(address.number)
    return bytes((1 + len(value), address.type_of_address)) + value + tpdu


def split_smsc(data: bytes) -> tuple[str | None, bytes]:
    """(SMSC number, '+' prefixed when international, or None when absent; the TPDU) of a PDU-mode PDU."""
    # `schema.SmscField` read by hand, as every PDU a modem gives goes through here (a property test holds the
    # two equal).
    length = data[0] if data else None
    if length is None or len(data) < 1 + length:
        raise PduError(f"SMSC address truncated: {len(data)} octets", command_status=MALFORMED_TPDU)
    if length == 0:
        return None, data[1:]
    if length > MAX_SMSC_OCTETS:
        raise PduError(f"SMSC address of {length} octets, at most {MAX_SMSC_OCTETS}", command_status=MALFORMED_TPDU)
    toa, value = data[1], data[2 : length + 1]
    digits = len(value) * 2 - (1 if value and value[-1] >> 4 == _FILLER else 0)
    number = _decode_semi_octets(value, digits, MALFORMED_TPDU)
    return str(Address(number, *ton_npi(toa))), data[length + 1 :]


def cmgs_length(pdu: bytes) -> int:
    """The `<length>` of `AT+CMGS=<length>` for `pdu` as written after it: TPDU octets, the SMSC prefix excluded."""
    return len(split_smsc(pdu)[1])
