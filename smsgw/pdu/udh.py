"""User data header (3GPP TS 23.040 section 9.2.3.24): a length octet (UDHL) and information elements.

Typed values for the elements smsgw acts on: concatenation with 8-bit (IEI 0x00) and 16-bit (0x08) references,
application port addressing with 8-bit (0x04) and 16-bit (0x05) ports, and the national language single (0x24)
and locking (0x25) shifts that choose the GSM 7-bit tables. Every other element, and a known one
whose length or values TS 23.040 says to ignore, is kept as a raw `InformationElement` and re-encoded unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias

from construct import GreedyBytes, GreedyRange, Int8ub, Int16ub, Prefixed, Struct

from .constants import CommandStatus
from .errors import PduError
from .gsm7 import NationalLanguage, NationalTables

IEI_CONCATENATION_8: Final = 0x00
IEI_PORTS_8: Final = 0x04
IEI_PORTS_16: Final = 0x05
IEI_CONCATENATION_16: Final = 0x08
IEI_NATIONAL_SINGLE_SHIFT: Final = 0x24
IEI_NATIONAL_LOCKING_SHIFT: Final = 0x25

# 9.2.3.24: an element is IEI, IEDL, then IEDL octets; the header is UDHL, then UDHL octets of elements.
INFORMATION_ELEMENT: Final = Struct("iei" / Int8ub, "data" / Prefixed(Int8ub, GreedyBytes))
USER_DATA_HEADER: Final = Prefixed(Int8ub, GreedyRange(INFORMATION_ELEMENT))

# 9.2.3.24.1 and 9.2.3.24.8: the element data of concatenation; 9.2.3.24.3 and 9.2.3.24.4: port addressing.
CONCATENATION_8: Final = Struct("reference" / Int8ub, "total" / Int8ub, "sequence" / Int8ub)
CONCATENATION_16: Final = Struct("reference" / Int16ub, "total" / Int8ub, "sequence" / Int8ub)
PORTS_8: Final = Struct("destination_port" / Int8ub, "source_port" / Int8ub)
PORTS_16: Final = Struct("destination_port" / Int16ub, "source_port" / Int16ub)
# 9.2.3.24.15 and 9.2.3.24.16: national language single and locking shift, one octet naming the language.
NATIONAL_LANGUAGE_SHIFT: Final = Struct("language" / Int8ub)

# Compiled forms of the element layouts: the same declarations, several times faster to parse and build.
_CONCATENATION_8: Final = CONCATENATION_8.compile()
_CONCATENATION_16: Final = CONCATENATION_16.compile()
_PORTS_8: Final = PORTS_8.compile()
_PORTS_16: Final = PORTS_16.compile()
_NATIONAL_LANGUAGE_SHIFT: Final = NATIONAL_LANGUAGE_SHIFT.compile()


def _element_bytes(iei: int, data: bytes) -> bytes:
    return bytes((iei, len(data))) + data


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be {low}..{high}, got {value}")


@dataclass(frozen=True, slots=True)
class InformationElement:
    """An element kept as its IEI and data octets."""

    iei: int
    data: bytes

    def __post_init__(self) -> None:
        _check_range("iei", self.iei, 0, 0xFF)
        _check_range("element data length", len(self.data), 0, 0xFF)

    def to_bytes(self) -> bytes:
        return _element_bytes(self.iei, self.data)


@dataclass(frozen=True, slots=True)
class Concatenation:
    """Part `sequence` (1-based) of `total` of the concatenated message `reference`."""

    reference: int
    total: int
    sequence: int
    reference_bits: int = 8

    def __post_init__(self) -> None:
        if self.reference_bits not in (8, 16):
            raise ValueError(f"reference_bits must be 8 or 16, got {self.reference_bits}")
        _check_range("reference", self.reference, 0, (1 << self.reference_bits) - 1)
        _check_range("total", self.total, 1, 0xFF)
        _check_range("sequence", self.sequence, 1, self.total)

    @property
    def iei(self) -> int:
        return IEI_CONCATENATION_8 if self.reference_bits == 8 else IEI_CONCATENATION_16

    def to_bytes(self) -> bytes:
        # Built by hand (CONCATENATION_8/16 declare the same layout; a property test holds them equal): every
        # part the gateway splits carries one, and the construct builder cost more than the rest of the split.
        if self.reference_bits == 8:
            return bytes((IEI_CONCATENATION_8, 3, self.reference, self.total, self.sequence))
        return bytes((IEI_CONCATENATION_16, 4, self.reference >> 8, self.reference & 0xFF, self.total, self.sequence))


@dataclass(frozen=True, slots=True)
class PortAddressing:
    """Application port addressing (WAP push, vCard, ...): destination and source port."""

    destination_port: int
    source_port: int
    bits: int = 16

    def __post_init__(self) -> None:
        if self.bits not in (8, 16):
            raise ValueError(f"bits must be 8 or 16, got {self.bits}")
        _check_range("destination_port", self.destination_port, 0, (1 << self.bits) - 1)
        _check_range("source_port", self.source_port, 0, (1 << self.bits) - 1)

    @property
    def iei(self) -> int:
        return IEI_PORTS_8 if self.bits == 8 else IEI_PORTS_16

    def to_bytes(self) -> bytes:
        schema = _PORTS_8 if self.bits == 8 else _PORTS_16
        data: bytes = schema.build({"destination_port": self.destination_port, "source_port": self.source_port})
        return _element_bytes(self.iei, data)


@dataclass(frozen=True, slots=True)
class NationalLanguageShift:
    """Which TS 23.038 national language table replaces the default alphabet (`locking`) or extends it."""

    language: int
    locking: bool

    def __post_init__(self) -> None:
        _check_range("language", self.language, 0, 0xFF)

    @property
    def iei(self) -> int:
        return IEI_NATIONAL_LOCKING_SHIFT if self.locking else IEI_NATIONAL_SINGLE_SHIFT

    def to_bytes(self) -> bytes:
        data: bytes = _NATIONAL_LANGUAGE_SHIFT.build({"language": self.language})
        return _element_bytes(self.iei, data)


Element: TypeAlias = InformationElement | Concatenation | PortAddressing | NationalLanguageShift


def _typed(iei: int, data: bytes) -> Element:
    """The typed element for (iei, data), or the raw element when TS 23.040 says to ignore its content."""
    if iei == IEI_CONCATENATION_8 and len(data) == 3 or iei == IEI_CONCATENATION_16 and len(data) == 4:
        fields = (_CONCATENATION_8 if iei == IEI_CONCATENATION_8 else _CONCATENATION_16).parse(data)
        # 9.2.3.24.1: a total of 0, or a sequence of 0 or above the total, means "ignore the element".
        if 1 <= fields.sequence <= fields.total:
            return Concatenation(fields.reference, fields.total, fields.sequence, 8 if len(data) == 3 else 16)
    elif iei == IEI_PORTS_8 and len(data) == 2 or iei == IEI_PORTS_16 and len(data) == 4:
        fields = (_PORTS_8 if iei == IEI_PORTS_8 else _PORTS_16).parse(data)
        return PortAddressing(fields.destination_port, fields.source_port, 8 if len(data) == 2 else 16)
    elif iei in (IEI_NATIONAL_SINGLE_SHIFT, IEI_NATIONAL_LOCKING_SHIFT) and len(data) == 1:
        language = _NATIONAL_LANGUAGE_SHIFT.parse(data).language
        return NationalLanguageShift(language, locking=iei == IEI_NATIONAL_LOCKING_SHIFT)
    return InformationElement(iei, data)


def _malformed(why: str) -> PduError:
    return PduError(f"user data header: {why}", command_status=CommandStatus.ESME_RINVMSGLEN)


@dataclass(frozen=True, slots=True)
class Udh:
    """A user data header: its elements in wire order."""

    elements: tuple[Element, ...]

    def __post_init__(self) -> None:
        _check_range("UDHL", sum(2 + _data_length(element) for element in self.elements), 0, 0xFF)

    @classmethod
    def parse(cls, data: bytes) -> tuple[Udh, bytes]:
        """The header at the start of `data` (UDHL first) and the user data after it."""
        if not data:
            raise _malformed("missing UDHL octet")
        udhl = data[0]
        if len(data) < 1 + udhl:
            raise _malformed(f"UDHL {udhl} exceeds the {len(data) - 1} octets that follow it")
        # Framed by hand (USER_DATA_HEADER declares the same layout; a property test holds them equal): the
        # interpreted construct parser costs more than everything else an incoming part goes through.
        elements = []
        position, end = 1, 1 + udhl
        while position < end:
            if position + 2 > end:
                raise _malformed(f"an information element header runs past UDHL {udhl}")
            iei, start = data[position], position + 2
            position = start + data[position + 1]
            if position > end:
                raise _malformed(f"information element 0x{iei:02X} runs past UDHL {udhl}")
            elements.append(_typed(iei, data[start:position]))
        return cls(tuple(elements)), data[end:]

    @classmethod
    def from_bytes(cls, data: bytes) -> Udh:
        """The header that is exactly `data` (UDHL first)."""
        udh, rest = cls.parse(data)
        if rest:
            raise _malformed(f"{len(rest)} octets after UDHL {data[0]}")
        return udh

    def to_bytes(self) -> bytes:
        body = b"".join(element.to_bytes() for element in self.elements)
        return bytes((len(body),)) + body

    @property
    def length(self) -> int:
        """Octets of the header on the wire, UDHL included."""
        return 1 + sum(2 + _data_length(element) for element in self.elements)

    @property
    def concatenation(self) -> Concatenation | None:
        return next((e for e in self.elements if isinstance(e, Concatenation)), None)

    @property
    def port_addressing(self) -> PortAddressing | None:
        return next((e for e in self.elements if isinstance(e, PortAddressing)), None)

    @property
    def national_tables(self) -> NationalTables:
        """The GSM 7-bit tables the user data is written in (the defaults unless shift elements name others)."""
        locking: int = NationalLanguage.DEFAULT
        single: int = NationalLanguage.DEFAULT
        for element in self.elements:
            if isinstance(element, NationalLanguageShift):
                if element.locking:
                    locking = element.language
                else:
                    single = element.language
        return NationalTables(locking, single)

    def without_concatenation(self) -> Udh:
        return Udh(tuple(e for e in self.elements if not isinstance(e, Concatenation)))

    def with_concatenation(self, concatenation: Concatenation) -> Udh:
        """This header with `concatenation` as its first element, replacing any concatenation it had."""
        return Udh((concatenation, *self.without_concatenation().elements))


def _data_length(element: Element) -> int:
    if isinstance(element, InformationElement):
        return len(element.data)
    if isinstance(element, Concatenation):
        return 3 if element.reference_bits == 8 else 4
    if isinstance(element, NationalLanguageShift):
        return 1
    return 2 if element.bits == 8 else 4


def national_language_elements(tables: NationalTables) -> tuple[NationalLanguageShift, ...]:
    """The shift elements that announce `tables` (none for the defaults)."""
    elements = []
    if tables.locking != NationalLanguage.DEFAULT:
        elements.append(NationalLanguageShift(tables.locking, locking=True))
    if tables.single != NationalLanguage.DEFAULT:
        elements.append(NationalLanguageShift(tables.single, locking=False))
    return tuple(elements)


def concatenation_udh(concatenation: Concatenation) -> bytes:
    """The header octets of a part that carries only its concatenation element (what segmentation sends)."""
    return Udh((concatenation,)).to_bytes()


def split_user_data(short_message: bytes, udhi: bool) -> tuple[Udh | None, bytes]:
    """The header (when the UDHI flag of esm_class / TP-UDHI is set) and the user data after it."""
    if not udhi:
        return None, short_message
    return Udh.parse(short_message)
