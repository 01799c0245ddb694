"""3GPP TS 23.040 TPDUs for GSM modems in PDU mode: SMS-SUBMIT, SMS-DELIVER and SMS-STATUS-REPORT, both ways.

The host (our modem driver) encodes SMS-SUBMIT and decodes SMS-DELIVER and SMS-STATUS-REPORT; the virtual modem
does the reverse, so every type has `to_bytes` and `from_bytes`. The layouts are the construct declarations of
`_tpdu_schema`; this module turns their fields into typed values and checks what construct cannot (TP-UDL
against the octets present, semi-octet digits, timestamps).

User data is held as the UDH (its UDHL octet included, empty when TP-UDHI is 0) and the rest: for GSM 7-bit the
rest is *unpacked* septets, one per octet, as `segmentation` produces them; packing with the UDH fill bits happens
here. In PDU mode a modem prefixes the TPDU with the SMSC address (`encode_with_smsc`, `split_smsc`), and
`AT+CMGS=<length>` counts only the TPDU (`cmgs_length`).

Decoding untrusted bytes raises only `PduError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final, Literal, TypeAlias

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

Direction: TypeAlias = Literal["mt", "mo"]

# 9.2.3.16: TP-UD carries at most 140 octets, so at most 160 septets.
MAX_USER_DATA_OCTETS: Final = 140
MAX_USER_DATA_SEPTETS: Final = 160
# 9.1.2.5: an address value is at most 10 octets: 20 semi-octets, that is 20 digits or 11 packed GSM characters.
MAX_ADDRESS_SEMI_OCTETS: Final = 20
MAX_ALPHANUMERIC_SEPTETS: Final = 11
# TS 24.011 8.2.5.1: an RP address holds at most 11 octets after its length octet.
MAX_SMSC_OCTETS: Final = 11

# A structurally broken TPDU has no better SMPP answer than a system error: the network or modem sent it.
_MALFORMED: Final = CommandStatus.ESME_RSYSERR


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
    def _from_parsed(cls, parsed: Container, status: CommandStatus) -> Address:
        return cls._from_fields(parsed.toa.ton, parsed.toa.npi, parsed.length, parsed.value, status)

    @classmethod
    def _from_fields(cls, ton: int, npi: int, length: int, value: bytes, status: CommandStatus) -> Address:
        if length > MAX_ADDRESS_SEMI_OCTETS:
            raise PduError(f"address of {length} semi-octets, at most {MAX_ADDRESS_SEMI_OCTETS}", command_status=status)
        if ton == TypeOfNumber.ALPHANUMERIC:
            return cls(decode_gsm7(unpack_septets(value, length * 4 // 7)), ton, npi)
        return cls(_decode_semi_octets(value, length, status), ton, npi)

    @classmethod
    def from_bytes(cls, data: bytes) -> Address:
        """One address field exactly (no trailing octets)."""
        parsed = _parse(schema.AddressField, data, "address")
        if len(data) != 2 + len(parsed.value):
            raise PduError(f"{len(data) - 2 - len(parsed.value)} octets after the address", command_status=_MALFORMED)
        return cls._from_parsed(parsed, CommandStatus.ESME_RINVDSTADR)


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
        raise PduError(f"{what}: 0x{octet:02X} is not two semi-octet digits", command_status=_MALFORMED)
    return low * 10 + high


# 0-99 as two semi-octet digits, the tens in the low nibble.
_SEMI_OCTET_BCD: Final = bytes((number // 10) | (number % 10) << 4 for number in range(100))


def decode_timestamp(data: bytes, what: str = "timestamp") -> datetime:
    """Seven semi-octet pairs YYMMDDhhmmss + time zone in quarter hours; years are 2000-2099."""
    if len(data) != 7:
        raise PduError(f"{what} needs 7 octets, got {len(data)}", command_status=_MALFORMED)
    year, month, day, hour, minute, second = (_bcd(octet, what) for octet in data[:6])
    zone = data[6]
    quarters = _bcd(zone & 0xF7, what)
    if zone & 0x08:
        quarters = -quarters
    try:
        zone_offset = timezone(timedelta(minutes=15 * quarters))
        return datetime(2000 + year, month, day, hour, minute, second, tzinfo=zone_offset)
    except ValueError as error:
        raise PduError(f"{what} {data.hex().upper()}: {error}", command_status=_MALFORMED) from None


def encode_timestamp(moment: datetime) -> bytes:
    """`moment` (aware, 2000-2099, UTC offset a whole number of quarter hours) to 7 octets; seconds resolution."""
    offset = moment.utcoffset()
    if offset is None:
        raise PduError(f"timestamp {moment} has no time zone", command_status=_MALFORMED)
    quarters, rest = divmod(int(offset.total_seconds()), 15 * 60)
    if rest or abs(quarters) > _MAX_QUARTER_HOURS:
        raise PduError(
            f"UTC offset {offset} is not a whole number of quarter hours within ±19:45", command_status=_MALFORMED
        )
    if not 2000 <= moment.year <= 2099:
        raise PduError(f"year {moment.year} is outside 2000-2099", command_status=_MALFORMED)
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


def _encode_user_data(dcs: Dcs, udh: bytes, user_data: bytes) -> tuple[int, bytes]:
    """(TP-UDL, TP-UD) for `udh` (UDHL included) followed by `user_data` (septets when 7-bit)."""
    if udh and udh[0] != len(udh) - 1:
        raise PduError(f"UDH length octet {udh[0]} but {len(udh) - 1} octets follow", command_status=_MALFORMED)
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


def _decode_user_data(dcs: Dcs, udhi: bool, udl: int, ud: bytes) -> tuple[bytes, bytes]:
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
            raise PduError("TP-UDHI set but the user data header does not fit in TP-UD", command_status=_MALFORMED)
        udh = ud[: ud[0] + 1]
    if not septets:
        return udh, ud[len(udh) :]
    header_septets = septets_for_udh(len(udh)) if udh else 0
    if header_septets > udl:
        raise PduError(f"UDH of {len(udh)} octets is longer than TP-UDL {udl} septets", command_status=_MALFORMED)
    # unpack_septets reads the septets that follow the header's fill bits.
    return udh, unpack_septets(ud[len(udh) :], udl - header_septets, fill_bits_for_udh(len(udh)))


def _text(dcs: Dcs, user_data: bytes) -> str | None:
    if dcs.compressed or dcs.encoding is Encoding.BINARY:
        return None
    return decode_as(user_data, dcs.encoding)


class _ShortMessage:
    """What SMS-SUBMIT and SMS-DELIVER say alike about their user data."""

    __slots__ = ()
    dcs: Dcs
    user_data: bytes

    @property
    def message_class(self) -> int | None:
        """0 is "flash" (shown at once, not stored); None when the TP-DCS gives no class."""
        return self.dcs.message_class

    @property
    def text(self) -> str | None:
        """The user data as text (without the UDH); None for 8-bit data or compressed text."""
        return _text(self.dcs, self.user_data)


def _parse(layout: Any, data: bytes, what: str) -> Container:
    try:
        return layout.parse(data)
    except ConstructError as error:
        raise PduError(f"{what} truncated or malformed: {error}", command_status=_MALFORMED) from None


def _check_mti(data: bytes, accepted: tuple[int, ...], what: str) -> None:
    if not data:
        raise PduError(f"empty {what}", command_status=_MALFORMED)
    if data[0] & 0x03 not in accepted:
        raise PduError(f"TP-MTI {data[0] & 0x03} is not an {what}", command_status=_MALFORMED)


# --- the three TPDUs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmsSubmit(_ShortMessage):
    """SMS-SUBMIT (9.2.2.2), MS to SC. `validity` is relative (timedelta) or absolute (datetime) or absent."""

    destination: Address
    user_data: bytes = b""
    dcs: Dcs = Dcs()
    udh: bytes = b""
    tp_mr: int = 0
    tp_pid: int = 0
    validity: timedelta | datetime | None = None
    status_report_request: bool = False
    reject_duplicates: bool = False
    reply_path: bool = False

    def to_bytes(self) -> bytes:
        # Built by hand in the layout of schema.SmsSubmitLayout (a property test holds them equal): the modem
        # driver encodes one per segment, and the construct builder took a quarter of the driver's CPU.
        udl, ud = _encode_user_data(self.dcs, self.udh, self.user_data)
        if isinstance(self.validity, datetime):
            vpf, vp = schema.VPF_ABSOLUTE, encode_timestamp(self.validity)
        elif self.validity is not None:
            vpf, vp = schema.VPF_RELATIVE, bytes((encode_relative_validity(self.validity),))
        else:
            vpf, vp = schema.VPF_NONE, b""
        _check_octets(("TP-MR", self.tp_mr), ("TP-PID", self.tp_pid))
        first = (
            bool(self.reply_path) << 7
            | bool(self.udh) << 6
            | bool(self.status_report_request) << 5
            | vpf << 3
            | bool(self.reject_duplicates) << 2
            | schema.MTI_SUBMIT
        )
        return (
            bytes((first, self.tp_mr))
            + self.destination.to_bytes()
            + bytes((self.tp_pid, self.dcs.value))
            + vp
            + bytes((udl,))
            + ud
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SmsSubmit:
        _check_mti(data, (schema.MTI_SUBMIT,), "SMS-SUBMIT")
        fields = _submit_fields(data)
        first = fields.first
        vpf = first >> 3 & 0x03
        validity: timedelta | datetime | None = None
        if vpf == schema.VPF_RELATIVE:
            validity = decode_relative_validity(fields.tp_vp[0])
        elif vpf == schema.VPF_ABSOLUTE:
            validity = decode_timestamp(fields.tp_vp, "TP-VP")
        elif vpf == schema.VPF_ENHANCED:
            raise PduError(
                "enhanced TP-VP format (9.2.3.12.3) is not supported", command_status=CommandStatus.ESME_RINVEXPIRY
            )
        dcs = Dcs(fields.tp_dcs)
        udh, user_data = _decode_user_data(dcs, bool(first & 0x40), fields.tp_udl, fields.tp_ud)
        return cls(
            destination=Address._from_fields(
                *_ton_npi(fields.da_toa), fields.da_length, fields.da_value, CommandStatus.ESME_RINVDSTADR
            ),
            user_data=user_data,
            dcs=dcs,
            udh=udh,
            tp_mr=fields.tp_mr,
            tp_pid=fields.tp_pid,
            validity=validity,
            status_report_request=bool(first & 0x20),
            reject_duplicates=bool(first & 0x04),
            reply_path=bool(first & 0x80),
        )


@dataclass(frozen=True, slots=True)
class SmsDeliver(_ShortMessage):
    """SMS-DELIVER (9.2.2.1), SC to MS. `more_messages` is the inverse of TP-MMS (whose 1 means "no more")."""

    originator: Address
    scts: datetime
    user_data: bytes = b""
    dcs: Dcs = Dcs()
    udh: bytes = b""
    tp_pid: int = 0
    more_messages: bool = False
    loop_prevention: bool = False
    status_report_indication: bool = False
    reply_path: bool = False

    def to_bytes(self) -> bytes:
        # Built by hand in the layout of schema.SmsDeliverLayout (a property test holds them equal): the virtual
        # network encodes one per MT message, and the construct builder cost more than the rest of its handling.
        udl, ud = _encode_user_data(self.dcs, self.udh, self.user_data)
        originator = self.originator.to_bytes()
        scts = encode_timestamp(self.scts)
        _check_octets(("TP-PID", self.tp_pid))
        first = (
            bool(self.reply_path) << 7
            | bool(self.udh) << 6
            | bool(self.status_report_indication) << 5
            | bool(self.loop_prevention) << 3
            | (not self.more_messages) << 2
            | schema.MTI_DELIVER
        )
        return bytes((first,)) + originator + bytes((self.tp_pid, self.dcs.value)) + scts + bytes((udl,)) + ud

    @classmethod
    def from_bytes(cls, data: bytes) -> SmsDeliver:
        # 9.2.3.1: a mobile receiving the reserved TP-MTI value treats the TPDU as an SMS-DELIVER.
        _check_mti(data, (schema.MTI_DELIVER, schema.MTI_RESERVED), "SMS-DELIVER")
        parsed = _parse(schema.SmsDeliverLayout, data, "SMS-DELIVER")
        first = parsed.first
        dcs = Dcs(parsed.tp_dcs)
        udh, user_data = _decode_user_data(dcs, first.tp_udhi, parsed.tp_udl, parsed.tp_ud)
        return cls(
            originator=Address._from_parsed(parsed.tp_oa, CommandStatus.ESME_RINVSRCADR),
            scts=decode_timestamp(parsed.tp_scts, "TP-SCTS"),
            user_data=user_data,
            dcs=dcs,
            udh=udh,
            tp_pid=parsed.tp_pid,
            more_messages=not first.tp_mms,
            loop_prevention=first.tp_lp,
            status_report_indication=first.tp_sri,
            reply_path=first.tp_rp,
        )


class TpStatus(enum.IntEnum):
    """TS 23.040 9.2.3.15 TP-Status values that have a name."""

    RECEIVED_BY_SME = 0x00
    FORWARDED_UNCONFIRMED = 0x01
    REPLACED_BY_SC = 0x02
    CONGESTION = 0x20
    SME_BUSY = 0x21
    NO_RESPONSE_FROM_SME = 0x22
    SERVICE_REJECTED = 0x23
    QUALITY_OF_SERVICE_NOT_AVAILABLE = 0x24
    ERROR_IN_SME = 0x25
    REMOTE_PROCEDURE_ERROR = 0x40
    INCOMPATIBLE_DESTINATION = 0x41
    CONNECTION_REJECTED_BY_SME = 0x42
    NOT_OBTAINABLE = 0x43
    PERMANENT_QUALITY_OF_SERVICE_NOT_AVAILABLE = 0x44
    NO_INTERWORKING_AVAILABLE = 0x45
    VALIDITY_PERIOD_EXPIRED = 0x46
    DELETED_BY_ORIGINATING_SME = 0x47
    DELETED_BY_SC_ADMINISTRATION = 0x48
    SM_DOES_NOT_EXIST = 0x49
    CONGESTION_GAVE_UP = 0x60
    SME_BUSY_GAVE_UP = 0x61
    NO_RESPONSE_FROM_SME_GAVE_UP = 0x62
    SERVICE_REJECTED_GAVE_UP = 0x63
    QUALITY_OF_SERVICE_NOT_AVAILABLE_GAVE_UP = 0x64
    ERROR_IN_SME_GAVE_UP = 0x65


class StatusMeaning(enum.Enum):
    """What a TP-Status says about the message: final (delivered, permanent, expired, gave up) or still trying."""

    DELIVERED = "delivered"
    TEMPORARY_STILL_TRYING = "temporary_still_trying"
    PERMANENT = "permanent"
    EXPIRED = "expired"
    TEMPORARY_GAVE_UP = "temporary_gave_up"

    @property
    def is_final(self) -> bool:
        return self is not StatusMeaning.TEMPORARY_STILL_TRYING


# 9.2.3.15: values reserved within their range; "SC specific" values (0x10-0x1F, 0x30-0x3F, 0x50-0x5F,
# 0x70-0x7F) keep the meaning of their range.
_RESERVED_STATUS: Final = (
    range(0x03, 0x10),
    range(0x26, 0x30),
    range(0x4A, 0x50),
    range(0x66, 0x70),
    range(0x80, 0x100),
)


def status_meaning(tp_st: int) -> StatusMeaning:
    """The meaning of a TP-Status; reserved values are treated as 0x63 "service rejected", as 9.2.3.15 asks."""
    if any(tp_st in reserved for reserved in _RESERVED_STATUS):
        tp_st = TpStatus.SERVICE_REJECTED_GAVE_UP
    if tp_st == TpStatus.VALIDITY_PERIOD_EXPIRED:
        return StatusMeaning.EXPIRED
    return (
        StatusMeaning.DELIVERED,
        StatusMeaning.TEMPORARY_STILL_TRYING,
        StatusMeaning.PERMANENT,
        StatusMeaning.TEMPORARY_GAVE_UP,
    )[tp_st >> 5]


def status_name(tp_st: int) -> str:
    """The TP-Status value's name, `SC_SPECIFIC_0xNN` or `RESERVED_0xNN`."""
    try:
        return TpStatus(tp_st).name
    except ValueError:
        pass
    if any(tp_st in reserved for reserved in _RESERVED_STATUS):
        return f"RESERVED_0x{tp_st:02X}"
    return f"SC_SPECIFIC_0x{tp_st:02X}"


@dataclass(frozen=True, slots=True)
class SmsStatusReport:
    """SMS-STATUS-REPORT (9.2.2.3), SC to MS: what became of the SMS-SUBMIT whose TP-MR was `tp_mr`.

    The optional tail (TP-PI, then TP-PID / TP-DCS / TP-UDL + TP-UD) is present when any of `tp_pid`, `dcs`,
    `user_data` is not None.
    """

    tp_mr: int
    recipient: Address
    scts: datetime
    discharge_time: datetime
    tp_st: int
    more_messages: bool = False
    loop_prevention: bool = False
    # TP-SRQ: the report answers an SMS-COMMAND rather than an SMS-SUBMIT.
    status_report_qualifier: bool = False
    tp_pid: int | None = None
    dcs: Dcs | None = None
    user_data: bytes | None = None
    udh: bytes = b""

    @property
    def status_meaning(self) -> StatusMeaning:
        return status_meaning(self.tp_st)

    @property
    def status_name(self) -> str:
        return status_name(self.tp_st)

    @property
    def text(self) -> str | None:
        if self.user_data is None:
            return None
        return _text(self.dcs or Dcs(), self.user_data)

    def to_bytes(self) -> bytes:
        if self.udh and self.user_data is None:
            raise PduError("a status report UDH needs user data (TP-UDL)", command_status=_MALFORMED)
        # The head is built by hand in the layout of schema.SmsStatusReportLayout (a property test holds them
        # equal): the virtual network encodes one per report; the optional tail is rare and keeps construct.
        recipient = self.recipient.to_bytes()
        times = encode_timestamp(self.scts) + encode_timestamp(self.discharge_time)
        _check_octets(("TP-MR", self.tp_mr), ("TP-ST", self.tp_st))
        first = (
            bool(self.udh) << 6
            | bool(self.status_report_qualifier) << 5
            | bool(self.loop_prevention) << 3
            | (not self.more_messages) << 2
            | schema.MTI_STATUS_REPORT
        )
        head = bytes((first, self.tp_mr)) + recipient + times + bytes((self.tp_st,))
        if self.tp_pid is None and self.dcs is None and self.user_data is None:
            return head
        pi = (
            (schema.PI_PID if self.tp_pid is not None else 0)
            | (schema.PI_DCS if self.dcs is not None else 0)
            | (schema.PI_UDL if self.user_data is not None else 0)
        )
        udl, ud = (None, b"")
        if self.user_data is not None:
            udl, ud = _encode_user_data(self.dcs or Dcs(), self.udh, self.user_data)
        tail = _build(
            schema.StatusReportParameters,
            {
                "tp_pi": pi,
                "tp_pi_extension": None,
                "tp_pid": self.tp_pid,
                "tp_dcs": self.dcs.value if self.dcs is not None else None,
                "tp_udl": udl,
                "tp_ud": ud,
            },
        )
        return head + tail

    @classmethod
    def from_bytes(cls, data: bytes) -> SmsStatusReport:
        _check_mti(data, (schema.MTI_STATUS_REPORT,), "SMS-STATUS-REPORT")
        head = _status_report_head(data)
        first = head.first
        tp_pid: int | None = None
        dcs: Dcs | None = None
        user_data: bytes | None = None
        udh = b""
        if head.tail:
            tail = _parse(schema.StatusReportParameters, head.tail, "SMS-STATUS-REPORT parameters")
            tp_pid = tail.tp_pid
            dcs = Dcs(tail.tp_dcs) if tail.tp_dcs is not None else None
            if tail.tp_udl is not None:
                udh, user_data = _decode_user_data(dcs or Dcs(), bool(first & 0x40), tail.tp_udl, tail.tp_ud)
            elif tail.tp_ud:
                raise PduError(
                    f"{len(tail.tp_ud)} octets after the status report parameters", command_status=_MALFORMED
                )
        return cls(
            tp_mr=head.tp_mr,
            recipient=Address._from_fields(
                *_ton_npi(head.ra_toa), head.ra_length, head.ra_value, CommandStatus.ESME_RINVDSTADR
            ),
            scts=decode_timestamp(head.tp_scts, "TP-SCTS"),
            discharge_time=decode_timestamp(head.tp_dt, "TP-DT"),
            tp_st=head.tp_st,
            more_messages=not first & 0x04,
            loop_prevention=bool(first & 0x08),
            status_report_qualifier=bool(first & 0x20),
            tp_pid=tp_pid,
            dcs=dcs,
            user_data=user_data,
            udh=udh,
        )


Tpdu: TypeAlias = SmsSubmit | SmsDeliver | SmsStatusReport


@dataclass(frozen=True, slots=True)
class _StatusReportHead:
    """The fields of `schema.SmsStatusReportLayout`, the first octet and the recipient's type octet as octets."""

    first: int
    tp_mr: int
    ra_length: int
    ra_toa: int
    ra_value: bytes
    tp_scts: bytes
    tp_dt: bytes
    tp_st: int
    tail: bytes


def _status_report_head(data: bytes) -> _StatusReportHead:
    """`schema.SmsStatusReportLayout` read by hand: every modem's status report goes through here, and the
    construct parse cost more than the rest of its handling (a property test holds the two equal)."""
    if len(data) >= 4:
        value_end = 4 + (data[2] + 1) // 2
        tail_start = value_end + 15
        if len(data) >= tail_start:
            return _StatusReportHead(
                data[0], data[1], data[2], data[3], data[4:value_end], data[value_end : value_end + 7],
                data[value_end + 7 : value_end + 14], data[value_end + 14], data[tail_start:],
            )
    raise PduError(f"SMS-STATUS-REPORT truncated: {len(data)} octets", command_status=_MALFORMED)


@dataclass(frozen=True, slots=True)
class _SubmitFields:
    """The fields of `schema.SmsSubmitLayout`, the first octet and the destination's type octet as octets, TP-VP
    as its octets (none, one when relative, seven when absolute or enhanced)."""

    first: int
    tp_mr: int
    da_length: int
    da_toa: int
    da_value: bytes
    tp_pid: int
    tp_dcs: int
    tp_vp: bytes
    tp_udl: int
    tp_ud: bytes


_VP_OCTETS: Final = {schema.VPF_NONE: 0, schema.VPF_RELATIVE: 1, schema.VPF_ENHANCED: 7, schema.VPF_ABSOLUTE: 7}


def _submit_fields(data: bytes) -> _SubmitFields:
    """`schema.SmsSubmitLayout` read by hand: every SMS-SUBMIT a virtual modem takes goes through here, and the
    construct parse cost more than the rest of its handling (a property test holds the two equal)."""
    if len(data) >= 4:
        value_end = 4 + (data[2] + 1) // 2
        vp_start = value_end + 2
        udl_at = vp_start + _VP_OCTETS[data[0] >> 3 & 0x03]
        if len(data) > udl_at:
            return _SubmitFields(
                data[0], data[1], data[2], data[3], data[4:value_end], data[value_end], data[value_end + 1],
                data[vp_start:udl_at], data[udl_at], data[udl_at + 1 :],
            )
    raise PduError(f"SMS-SUBMIT truncated: {len(data)} octets", command_status=_MALFORMED)


def _ton_npi(toa: int) -> tuple[int, int]:
    """TON and NPI of a type-of-address octet (the inverse of `type_of_address_octet`; the extension bit is not read,
    as the construct declaration does not)."""
    return toa >> 4 & 0x07, toa & 0x0F


def _check_octets(*fields: tuple[str, int]) -> None:
    """The range check construct's Int8ub made when building: the caller's values, reported as such."""
    for name, value in fields:
        if not 0 <= value <= 0xFF:
            raise PduError(f"cannot encode: {name} {value} is not an octet", command_status=_MALFORMED)


def _build(layout: Any, values: dict[str, Any]) -> bytes:
    try:
        built: bytes = layout.build(values)
    except ConstructError as error:
        # Out-of-range integers (TP-MR 300, TP-PID -1) are the caller's values, reported as such.
        raise PduError(f"cannot encode: {error}", command_status=_MALFORMED) from None
    return built


def decode_tpdu(data: bytes, direction: Direction = "mt") -> Tpdu:
    """The TPDU by its TP-MTI (9.2.3.1). `direction` is "mt" (SC to MS: SMS-DELIVER, SMS-STATUS-REPORT) or "mo"
    (MS to SC: SMS-SUBMIT). SMS-DELIVER-REPORT, SMS-SUBMIT-REPORT and SMS-COMMAND are refused with PduError."""
    if not data:
        raise PduError("empty TPDU", command_status=_MALFORMED)
    mti = data[0] & 0x03
    if direction == "mt":
        if mti in (schema.MTI_DELIVER, schema.MTI_RESERVED):
            return SmsDeliver.from_bytes(data)
        if mti == schema.MTI_STATUS_REPORT:
            return SmsStatusReport.from_bytes(data)
        raise PduError("SMS-SUBMIT-REPORT TPDUs are not supported", command_status=_MALFORMED)
    if mti == schema.MTI_SUBMIT:
        return SmsSubmit.from_bytes(data)
    names = {schema.MTI_DELIVER: "SMS-DELIVER-REPORT", schema.MTI_STATUS_REPORT: "SMS-COMMAND"}
    raise PduError(f"{names.get(mti, 'reserved TP-MTI')} TPDUs are not supported", command_status=_MALFORMED)


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
        raise PduError(f"SMSC address truncated: {len(data)} octets", command_status=_MALFORMED)
    if length == 0:
        return None, data[1:]
    if length > MAX_SMSC_OCTETS:
        raise PduError(f"SMSC address of {length} octets, at most {MAX_SMSC_OCTETS}", command_status=_MALFORMED)
    toa, value = data[1], data[2 : length + 1]
    digits = len(value) * 2 - (1 if value and value[-1] >> 4 == _FILLER else 0)
    number = _decode_semi_octets(value, digits, _MALFORMED)
    return str(Address(number, *_ton_npi(toa))), data[length + 1 :]


def cmgs_length(pdu: bytes) -> int:
    """The `<length>` of `AT+CMGS=<length>` for `pdu` as written after it: TPDU octets, the SMSC prefix excluded."""
    return len(split_smsc(pdu)[1])
