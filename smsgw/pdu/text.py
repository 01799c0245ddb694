"""Text encodings of SMS user data and the SMPP `data_coding` values that name them (SMPP 3.4 section 5.2.19,
3GPP TS 23.038 section 4 for the GSM coding groups an SMSC may pass through).

UCS-2 is sent as UTF-16BE without a byte order mark, so characters beyond the BMP (emoji) travel as surrogate
pairs, as handsets do. The automatic choice is GSM 7-bit when every character fits, else UCS-2.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from .constants import CommandStatus
from .errors import PduError
from .gsm7 import DEFAULT_TABLES, ESCAPE, NationalTables, decode_gsm7, encode_gsm7, is_gsm7


class Encoding(enum.Enum):
    """An alphabet of SMS user data; the value is its SMPP 3.4 `data_coding`."""

    GSM7 = 0x00
    IA5 = 0x01
    LATIN1 = 0x03
    BINARY = 0x04
    CYRILLIC = 0x06
    LATIN_HEBREW = 0x07
    UCS2 = 0x08
    ISO_2022_JP = 0x0A
    KS_C_5601 = 0x0E

    _value_: int
    # Members are singletons compared by identity: an identity hash is as good as Enum's hash of the name, and
    # it costs a C call instead of a Python one wherever an encoding is a key (sets, caches, codec tables).
    __hash__ = object.__hash__

    @property
    def data_coding(self) -> int:
        return self._value_  # not `value`, Enum's descriptor: this is read for every segment built

    @property
    def is_text(self) -> bool:
        return self is not Encoding.BINARY


# Members read per message: an enum member's lookup through its class costs more than a module global's.
_GSM7: Final = Encoding.GSM7
_UCS2: Final = Encoding.UCS2

# Python codecs for the byte-per-character (or multi-byte) alphabets; GSM7 and BINARY are handled apart.
_CODECS: Final[dict[Encoding, str]] = {
    Encoding.IA5: "ascii",
    Encoding.LATIN1: "latin-1",
    Encoding.CYRILLIC: "iso8859-5",
    Encoding.LATIN_HEBREW: "iso8859-8",
    Encoding.UCS2: "utf-16-be",
    Encoding.ISO_2022_JP: "iso2022-jp",
    Encoding.KS_C_5601: "euc-kr",
}

# SMPP 3.4 values 0x00-0x0F other than these are reserved or (0x05 JIS, 0x09 pictogram, 0x0D JIS X 0212) have
# no faithful codec here; they are refused rather than guessed.
_SMPP_DATA_CODINGS: Final[dict[int, Encoding]] = {e.value: e for e in Encoding} | {0x02: Encoding.BINARY}

# TS 23.038 alphabet bits (bits 3..2) of the general and automatic-deletion coding groups.
_GSM_ALPHABETS: Final[dict[int, Encoding]] = {0b00: Encoding.GSM7, 0b01: Encoding.BINARY, 0b10: Encoding.UCS2}


@dataclass(frozen=True, slots=True)
class DataCodingScheme:
    """What an SMPP `data_coding` octet says: the alphabet and, when given, the TS 23.038 message class."""

    encoding: Encoding
    message_class: int | None = None


def _unknown(data_coding: int, why: str) -> PduError:
    return PduError(f"data_coding 0x{data_coding:02X}: {why}", command_status=CommandStatus.ESME_RINVDCS)


def parse_data_coding(data_coding: int) -> DataCodingScheme:
    """Interpret `data_coding`: SMPP 3.4 values 0x00-0x0F, then TS 23.038 coding groups above them.

    An SMSC may pass a GSM TP-DCS through (0x10-0x1F with a message class, 0xC0-0xEF message waiting,
    0xF0-0xFF data coding/message class). Compressed text, reserved groups and reserved values raise PduError
    with ESME_RINVDCS.
    """
    if not 0 <= data_coding <= 0xFF:
        raise _unknown(data_coding, "not an octet")
    if data_coding <= 0x0F:
        encoding = _SMPP_DATA_CODINGS.get(data_coding)
        if encoding is None:
            raise _unknown(data_coding, "reserved or unsupported SMPP data coding")
        return DataCodingScheme(encoding)
    group = data_coding >> 4
    if group <= 0x7:  # 00xx general data coding, 01xx automatic deletion: bit 5 compressed, bit 4 class valid
        if data_coding & 0x20:
            raise _unknown(data_coding, "compressed text (TS 23.042) is not supported")
        encoding = _GSM_ALPHABETS.get((data_coding >> 2) & 0b11)
        if encoding is None:
            raise _unknown(data_coding, "reserved alphabet")
        return DataCodingScheme(encoding, data_coding & 0b11 if data_coding & 0x10 else None)
    if group in (0xC, 0xD):  # message waiting indication, discard or store: GSM 7-bit text
        return DataCodingScheme(Encoding.GSM7)
    if group == 0xE:  # message waiting indication, store: UCS-2 text
        return DataCodingScheme(Encoding.UCS2)
    if group == 0xF:  # data coding/message class: bit 2 chooses 8-bit data over GSM 7-bit
        return DataCodingScheme(Encoding.BINARY if data_coding & 0x04 else Encoding.GSM7, data_coding & 0b11)
    raise _unknown(data_coding, "reserved coding group")


def choose_encoding(text: str, tables: NationalTables = DEFAULT_TABLES) -> Encoding:
    """GSM 7-bit when every character of `text` is in the alphabet or its extension (`tables`), else UCS-2."""
    return Encoding.GSM7 if is_gsm7(text, tables) else Encoding.UCS2


def encode_text(text: str, encoding: Encoding, tables: NationalTables = DEFAULT_TABLES) -> bytes:
    """`text` in `encoding`, as SMPP carries it (GSM 7-bit unpacked). PduError (ESME_RINVDCS) if it does not fit."""
    if encoding is Encoding.GSM7:
        return encode_gsm7(text, tables)
    codec = _CODECS.get(encoding)
    if codec is None:
        raise ValueError(f"{encoding.name} is not a text encoding")
    try:
        return text.encode(codec)
    except UnicodeEncodeError as error:
        raise PduError(
            f"character {text[error.start]!r} (U+{ord(text[error.start]):04X}) at position {error.start} "
            f"cannot be encoded in {encoding.name}",
            command_status=CommandStatus.ESME_RINVDCS,
        ) from None


def decode_as(data: bytes, encoding: Encoding, tables: NationalTables = DEFAULT_TABLES) -> str:
    """`data` in `encoding` back to text (GSM 7-bit in `tables`); PduError for bytes that are not valid in it."""
    if encoding is _GSM7:
        return decode_gsm7(data, tables)
    codec = _CODECS.get(encoding)
    if codec is None:
        raise PduError(f"{encoding.name} user data is not text", command_status=CommandStatus.ESME_RINVDCS)
    try:
        return data.decode(codec)
    except UnicodeDecodeError as error:
        raise PduError(
            f"user data is not valid {encoding.name} at octet {error.start}: {error.reason}",
            command_status=CommandStatus.ESME_RINVDCS,
        ) from None


_ESCAPE: Final = bytes((ESCAPE,))


def decodes_one_to_one(data: bytes, encoding: Encoding) -> bool:
    """Whether `data`, valid in `encoding`, is exactly what encoding its text gives back (default GSM tables), so
    it can stand for the text: UCS-2 always, GSM 7-bit without escapes (an escape before a code the extension
    table lacks, or a trailing one, does not come back)."""
    return encoding is _UCS2 or (encoding is _GSM7 and _ESCAPE not in data)


def decode_text(data: bytes, data_coding: int) -> str:
    """User data with SMPP `data_coding` to text. Binary data and unknown codings raise PduError."""
    return decode_as(data, parse_data_coding(data_coding).encoding)


def units(text: str, encoding: Encoding) -> int:
    """Length of `text` in the units SMS limits count: septets for GSM 7-bit (extension characters count 2),
    UTF-16 code units for UCS-2 (an emoji counts 2), octets otherwise. PduError if `text` does not fit."""
    return units_in(len(encode_text(text, encoding)), encoding)


def units_in(octets: int, encoding: Encoding) -> int:
    """How many units (septets, UTF-16 code units or octets) `octets` of SMPP user data in `encoding` hold: GSM
    7-bit is carried unpacked, a septet an octet."""
    return octets // 2 if encoding is Encoding.UCS2 else octets
