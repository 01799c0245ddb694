"""GSM 7-bit default alphabet (3GPP TS 23.038 section 6.2.1) and septet packing (TS 23.040 section 9.2.3.24).

Two forms of the same text exist on the wire: SMPP carries one septet per octet ("unpacked", data_coding 0),
a TPDU packs eight septets into seven octets, after fill bits that align the first septet on a septet boundary
following the user data header. `encode_gsm7`/`decode_gsm7` convert text to and from septets;
`pack_septets`/`unpack_septets` convert septets to and from the packed form.

Besides the default alphabet and its extension, the national language tables of TS 23.038 Annex A for Turkish,
Spanish and Portuguese: a UDH may name a locking shift table (a whole alphabet) and a single shift table (the
extension) that the text is written in (`NationalTables`).
"""

from __future__ import annotations

import codecs
import enum
import re
from dataclasses import dataclass
from functools import cache
from typing import Final

from .constants import CommandStatus
from .errors import PduError

ESCAPE: Final = 0x1B

# TS 23.038 table 6.2.1, indexed by septet value. 0x1B is the escape to the extension table, never a character.
GSM7_BASIC: Final[str] = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

# TS 23.038 table 6.2.1.1: the characters reached through ESCAPE; each costs two septets.
GSM7_EXTENSION: Final[dict[int, str]] = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

# TS 23.038 Annex A.3 locking shift tables: a whole alphabet in place of the default one (TP-UDH IEI 0x25).
# Spanish has no locking shift table; it keeps the default alphabet.
TURKISH_LOCKING: Final[str] = (
    "@£$¥€éùıòÇ\nĞğ\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bŞşßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "İABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "çabcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
PORTUGUESE_LOCKING: Final[str] = (
    "@£$¥êéúíóç\nÔô\rÁá"
    "Δ_ªÇÀ∞^\\€Ó|\x1bÂâÊÉ"
    " !\"#º%&'()*+,-./"
    "0123456789:;<=>?"
    "ÍABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÃÕÚÜ§"
    "~abcdefghijklmno"
    "pqrstuvwxyzãõ`üà"
)

# TS 23.038 Annex A.2 single shift tables (TP-UDH IEI 0x24): the extension table plus national characters.
TURKISH_SINGLE: Final[dict[int, str]] = GSM7_EXTENSION | {
    0x47: "Ğ", 0x49: "İ", 0x53: "Ş", 0x63: "ç", 0x67: "ğ", 0x69: "ı", 0x73: "ş",
}  # fmt: skip
SPANISH_SINGLE: Final[dict[int, str]] = GSM7_EXTENSION | {
    0x09: "ç", 0x41: "Á", 0x49: "Í", 0x4F: "Ó", 0x55: "Ú", 0x61: "á", 0x69: "í", 0x6F: "ó", 0x75: "ú",
}  # fmt: skip
PORTUGUESE_SINGLE: Final[dict[int, str]] = GSM7_EXTENSION | {
    0x05: "ê", 0x09: "ç", 0x0B: "Ô", 0x0C: "ô", 0x0E: "Á", 0x0F: "á", 0x12: "Φ", 0x13: "Γ", 0x15: "Ω",
    0x16: "Π", 0x17: "Ψ", 0x18: "Σ", 0x19: "Θ", 0x1F: "Ê", 0x41: "À", 0x49: "Í", 0x4F: "Ó", 0x55: "Ú",
    0x5B: "Ã", 0x5C: "Õ", 0x61: "Â", 0x69: "í", 0x6F: "ó", 0x75: "ú", 0x7B: "ã", 0x7C: "õ", 0x7F: "â",
}  # fmt: skip


class NationalLanguage(enum.IntEnum):
    """TS 23.038 section 6.2.1.2.4 national language identifiers that have tables here."""

    DEFAULT = 0
    TURKISH = 1
    SPANISH = 2
    PORTUGUESE = 3


_LOCKING_TABLES: Final[dict[int, str]] = {
    NationalLanguage.DEFAULT: GSM7_BASIC,
    NationalLanguage.TURKISH: TURKISH_LOCKING,
    NationalLanguage.SPANISH: GSM7_BASIC,
    NationalLanguage.PORTUGUESE: PORTUGUESE_LOCKING,
}
_SINGLE_TABLES: Final[dict[int, dict[int, str]]] = {
    NationalLanguage.DEFAULT: GSM7_EXTENSION,
    NationalLanguage.TURKISH: TURKISH_SINGLE,
    NationalLanguage.SPANISH: SPANISH_SINGLE,
    NationalLanguage.PORTUGUESE: PORTUGUESE_SINGLE,
}


@dataclass(frozen=True, slots=True)
class NationalTables:
    """The alphabet (locking shift) and extension (single shift) tables a text is written in; the default pair
    unless a UDH names others (IEI 0x25 and 0x24). Values are national language identifiers."""

    locking: int = NationalLanguage.DEFAULT
    single: int = NationalLanguage.DEFAULT


DEFAULT_TABLES: Final = NationalTables()

# Marks a character that has no GSM encoding after `str.translate`; it is not ASCII, so a translated string that
# is still ASCII consists only of septets.
_NOT_GSM: Final = "\uffff"
_NO_SEPTET: Final = 0xFF


@dataclass(frozen=True, slots=True)
class _Codec:
    # Text -> septets as a str of code points < 0x80. Every code point below 0x100 is listed, so a character
    # outside the tables either maps to _NOT_GSM or (above 0xFF) stays unchanged; both leave the result non-ASCII.
    encode: dict[int, str]
    # ASCII code -> its septet when the alphabet has the character, else _NO_SEPTET (an escape sequence or no GSM
    # character): most texts are ASCII, and `bytes.translate` encodes them in one pass without a lookup each.
    ascii_septets: bytes
    # Septet -> character (`codecs.charmap_decode` table; the escape's own entry is never reached).
    alphabet: str
    extension: dict[int, str]
    # The characters that cost two septets: in the extension, not in the alphabet.
    double: frozenset[str]
    # Finds the first character outside both tables; unlike `str.translate`, the search stops there.
    foreign: re.Pattern[str]


def _codec(tables: NationalTables) -> _Codec:
    # The default tables without the cache's lookup: hashing the dataclass key was a visible part of coding a text.
    return _DEFAULT_CODEC if tables is DEFAULT_TABLES else _build_codec(tables)


@cache
def _build_codec(tables: NationalTables) -> _Codec:
    alphabet = _LOCKING_TABLES.get(tables.locking)
    extension = _SINGLE_TABLES.get(tables.single)
    if alphabet is None or extension is None:
        raise PduError(
            f"national language tables locking={tables.locking} single={tables.single} are not supported",
            command_status=CommandStatus.ESME_RINVDCS,
        )
    encode: dict[int, str] = {code: _NOT_GSM for code in range(0x100)}
    for septet, char in extension.items():
        encode[ord(char)] = chr(ESCAPE) + chr(septet)
    for septet, char in enumerate(alphabet):  # after the extension: a character in both costs one septet
        if septet != ESCAPE:
            encode[ord(char)] = chr(septet)
    double = frozenset(char for char in extension.values() if len(encode[ord(char)]) == 2)
    encodable = sorted(chr(code) for code, septets in encode.items() if septets != _NOT_GSM)
    foreign = re.compile("[^" + "".join(re.escape(char) for char in encodable) + "]")
    ascii_septets = bytes(
        ord(encode[code]) if code < 0x80 and encode[code] != _NOT_GSM and len(encode[code]) == 1 else _NO_SEPTET
        for code in range(0x100)
    )
    return _Codec(encode, ascii_septets, alphabet, extension, double, foreign)


_DEFAULT_CODEC: Final = _build_codec(DEFAULT_TABLES)


def double_septet_characters(tables: NationalTables = DEFAULT_TABLES) -> frozenset[str]:
    """The characters that cost two septets (escape + code) with `tables`."""
    return _codec(tables).double


def _decode_escaped(codec: _Codec, septet: int) -> str:
    if septet == ESCAPE:
        # TS 23.038: escape-escape is reserved for another extension table; receivers display a space.
        return " "
    # TS 23.038: a code with no extension character is displayed as the alphabet's character.
    return codec.extension.get(septet, codec.alphabet[septet])


def gsm7_septet_count(text: str, tables: NationalTables = DEFAULT_TABLES) -> int | None:
    """Septets `text` needs in the alphabet (extension characters count 2), or None if not encodable."""
    septets = text.translate(_codec(tables).encode)
    return len(septets) if septets.isascii() else None


def is_gsm7(text: str, tables: NationalTables = DEFAULT_TABLES) -> bool:
    """Whether every character of `text` is in the alphabet or its extension table."""
    return _codec(tables).foreign.search(text) is None


def encode_gsm7(text: str, tables: NationalTables = DEFAULT_TABLES) -> bytes:
    """Text as unpacked septets, one per octet (SMPP data_coding 0); extension characters become ESC + code.

    Raises PduError (ESME_RINVDCS) naming the first character the alphabet lacks.
    """
    codec = _codec(tables)
    if text.isascii():
        encoded = text.encode("ascii").translate(codec.ascii_septets)
        if _NO_SEPTET not in encoded:
            return encoded
    table = codec.encode
    septets = text.translate(table)
    if not septets.isascii():
        position, char = next((i, c) for i, c in enumerate(text) if not c.translate(table).isascii())
        raise PduError(
            f"character {char!r} (U+{ord(char):04X}) at position {position} is not in the GSM 7-bit alphabet",
            command_status=CommandStatus.ESME_RINVDCS,
        )
    return septets.encode("ascii")


def decode_gsm7(data: bytes, tables: NationalTables = DEFAULT_TABLES) -> str:
    """Unpacked septets (one per octet) to text. An octet above 0x7F is not a septet: PduError."""
    if not data.isascii():
        position = next(i for i, octet in enumerate(data) if octet > 0x7F)
        raise PduError(
            f"octet 0x{data[position]:02X} at position {position} is not a GSM 7-bit septet",
            command_status=CommandStatus.ESME_RINVDCS,
        )
    codec = _codec(tables)
    if ESCAPE not in data:
        return codecs.charmap_decode(data, "strict", codec.alphabet)[0]
    chars: list[str] = []
    escaped = False
    for septet in data:
        if escaped:
            chars.append(_decode_escaped(codec, septet))
            escaped = False
        elif septet == ESCAPE:
            escaped = True
        else:
            chars.append(codec.alphabet[septet])
    # A trailing escape means a sender cut between the escape and its character (smpplib splits encoded bytes
    # this way); nothing of that character is here, so nothing is shown for it.
    return "".join(chars)


def fill_bits_for_udh(udh_octets: int) -> int:
    """Fill bits after a UDH of `udh_octets` octets (UDHL included) so the text starts on a septet boundary."""
    return (7 - (udh_octets * 8) % 7) % 7


def septets_for_udh(udh_octets: int) -> int:
    """Septets a UDH of `udh_octets` octets (UDHL included) occupies in TP-UDL, fill bits included."""
    return (udh_octets * 8 + 6) // 7


def packed_length(septet_count: int, fill_bits: int = 0) -> int:
    """Octets that `septet_count` septets take when packed after `fill_bits` fill bits."""
    return (fill_bits + 7 * septet_count + 7) // 8


def _check_fill_bits(fill_bits: int) -> None:
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, got {fill_bits}")


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets LSB first, eight into seven octets, after `fill_bits` zero bits (TS 23.038 6.1.2.1.1)."""
    _check_fill_bits(fill_bits)
    if not septets.isascii():
        raise ValueError("septets must be below 0x80")
    # Python's arbitrary-size int is the bit stream: septet i sits at bit fill_bits + 7 * i.
    value = 0
    for septet in reversed(septets):
        value = (value << 7) | septet
    return (value << fill_bits).to_bytes(packed_length(len(septets), fill_bits), "little")


def unpack_septets(data: bytes, septet_count: int, fill_bits: int = 0) -> bytes:
    """The `septet_count` septets packed in `data` after `fill_bits` fill bits, one per octet.

    Octets beyond those the septets need are ignored (some modems pad); too few octets raise PduError.
    """
    _check_fill_bits(fill_bits)
    if septet_count < 0:
        raise ValueError(f"septet_count must be >= 0, got {septet_count}")
    needed = packed_length(septet_count, fill_bits)
    if len(data) < needed:
        raise PduError(
            f"{septet_count} septets after {fill_bits} fill bits need {needed} octets, got {len(data)}",
            command_status=CommandStatus.ESME_RINVMSGLEN,
        )
    value = int.from_bytes(data[:needed], "little") >> fill_bits
    return bytes((value >> shift) & 0x7F for shift in range(0, 7 * septet_count, 7))
