"""Splitting a long text into SMS segments, and the three ways SMPP carries them.

Part sizes are those of the service smsgw models: one GSM 7-bit part holds 160 septets, parts of a
concatenated message 153 each (a 6-octet UDH with an 8-bit reference), so two parts hold 306 and three 459;
UCS-2 holds 70, then 67 per part (134, 201). A 16-bit reference costs one more octet per part (152 / 66).
Text is split between characters, so a GSM escape sequence or a UTF-16 surrogate pair never straddles parts.

Forms: UDH in each part's short_message (`Segment.udh`), SAR TLVs (`SegmentedText.to_sar`), or the whole text in
one message_payload TLV (`SegmentedText.message_payload`). `udh_to_sar` / `sar_to_udh` convert a part between
the first two.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Final, NamedTuple

from .constants import GatewayError
from .errors import PduError
from .gsm7 import (
    DEFAULT_TABLES,
    ESCAPE,
    NationalLanguage,
    NationalTables,
    is_gsm7,
    septets_for_udh,
)
from .text import Encoding, encode_text, units_in
from .udh import Concatenation, Element, Udh, national_language_elements, split_user_data

# TS 23.040 9.2.3.16: TP-User-Data holds at most 140 octets, header included.
MAX_USER_DATA_OCTETS: Final = 140
MAX_SEGMENTS_LIMIT: Final = 255


class TooManySegments(PduError):
    """The text needs more segments than the route allows."""

    def __init__(self, needed: int, max_segments: int) -> None:
        super().__init__(
            f"message needs {needed} segments, at most {max_segments} allowed",
            command_status=GatewayError.TOO_MANY_SEGMENTS.command_status,
        )
        self.needed = needed
        self.max_segments = max_segments


def part_capacity(encoding: Encoding, udh_octets: int) -> int:
    """Units (septets, UTF-16 code units or octets) one part holds after a UDH of `udh_octets` (UDHL included)."""
    if encoding is Encoding.GSM7:
        return MAX_USER_DATA_OCTETS * 8 // 7 - (septets_for_udh(udh_octets) if udh_octets else 0)
    octets = MAX_USER_DATA_OCTETS - udh_octets
    return units_in(octets, encoding)


@dataclass(frozen=True, slots=True)
class SarInfo:
    """The SAR TLVs of one part: sar_msg_ref_num (16-bit), sar_total_segments, sar_segment_seqnum (1-based)."""

    msg_ref_num: int
    total_segments: int
    segment_seqnum: int

    def __post_init__(self) -> None:
        if not 0 <= self.msg_ref_num <= 0xFFFF:
            raise ValueError(f"sar_msg_ref_num must be 0..65535, got {self.msg_ref_num}")
        if not 1 <= self.segment_seqnum <= self.total_segments <= 0xFF:
            raise ValueError(
                f"need 1 <= sar_segment_seqnum ({self.segment_seqnum}) <= sar_total_segments "
                f"({self.total_segments}) <= 255"
            )

    @classmethod
    def from_concatenation(cls, concatenation: Concatenation) -> SarInfo:
        return cls(concatenation.reference, concatenation.total, concatenation.sequence)

    def to_concatenation(self, reference_bits: int | None = None) -> Concatenation:
        """The UDH element; by default an 8-bit reference when it fits, which keeps the part's UDH at 6 octets."""
        bits = reference_bits if reference_bits is not None else (8 if self.msg_ref_num <= 0xFF else 16)
        return Concatenation(self.msg_ref_num, self.total_segments, self.segment_seqnum, bits)


class Segment(NamedTuple):  # NamedTuples, not frozen dataclasses: built per part of every message sent
    """Part `sequence` of `total`: `user_data` in SMPP form (unpacked septets for GSM 7-bit, UTF-16BE for UCS-2),
    `udh` with its UDHL (empty when the part needs no header). `text` is None for binary data."""

    sequence: int
    total: int
    text: str | None
    user_data: bytes
    udh: bytes

    @property
    def short_message(self) -> bytes:
        """The SMPP short_message; esm_class needs UDHI (0x40) when `udh` is not empty."""
        return self.udh + self.user_data


@dataclass(frozen=True, slots=True)
class SarSegment:
    """A part in SAR form: its TLVs and a short_message without the concatenation header."""

    sar: SarInfo
    short_message: bytes
    udhi: bool
    text: str | None


class SegmentedText(NamedTuple):
    encoding: Encoding
    reference: int
    reference_bits: int
    parts: tuple[Segment, ...]
    # The GSM 7-bit tables of the parts; not the defaults only when national language shifts were chosen.
    national_tables: NationalTables = DEFAULT_TABLES

    @property
    def data_coding(self) -> int:
        return self.encoding.data_coding

    @property
    def text(self) -> str | None:
        """The whole text again (None for binary data)."""
        if not self.encoding.is_text:
            return None
        return "".join(part.text or "" for part in self.parts)

    def message_payload(self) -> bytes:
        """The whole message for one message_payload TLV; the SMSC splits it, so no header is needed."""
        return b"".join(part.user_data for part in self.parts)

    def to_sar(self) -> tuple[SarSegment, ...]:
        """The parts in SAR form; each part's size already leaves room for the header the SMSC will add."""
        result = []
        for part in self.parts:
            udh = Udh.from_bytes(part.udh) if part.udh else Udh(())
            rest = udh.without_concatenation()
            result.append(
                SarSegment(
                    SarInfo(self.reference, part.total, part.sequence),
                    (rest.to_bytes() if rest.elements else b"") + part.user_data,
                    bool(rest.elements),
                    part.text,
                )
            )
        return tuple(result)


def _check_options(max_segments: int, reference: int, reference_bits: int, first_part_reserve: int) -> None:
    if not 1 <= max_segments <= MAX_SEGMENTS_LIMIT:
        raise ValueError(f"max_segments must be 1..{MAX_SEGMENTS_LIMIT}, got {max_segments}")
    if reference_bits not in (8, 16):
        raise ValueError(f"reference_bits must be 8 or 16, got {reference_bits}")
    if not 0 <= reference < 1 << reference_bits:
        raise ValueError(f"reference must fit {reference_bits} bits, got {reference}")
    if first_part_reserve < 0:
        raise ValueError(f"first_part_reserve must be >= 0, got {first_part_reserve}")


_SINGLE_OCTET: Final = frozenset((Encoding.IA5, Encoding.LATIN1, Encoding.CYRILLIC, Encoding.LATIN_HEBREW))
_NO_UDH: Final = Udh(())


def _cut(costs: Sequence[int], capacities: Sequence[int]) -> list[tuple[int, int]]:
    """Greedy (start, end) ranges of `costs`: the first part holds capacities[0] units, later ones
    capacities[1]. Every capacity holds at least one character (checked by `_plan`)."""
    # cumulative[i] is the units of the first i characters, so the longest part from `start` ends at the last
    # index whose total stays within the capacity: a binary search instead of a walk over every character.
    cumulative = list(accumulate(costs, initial=0))
    ranges: list[tuple[int, int]] = []
    start = 0
    capacity = capacities[0]
    while start < len(costs):
        end = bisect_right(cumulative, cumulative[start] + capacity, lo=start) - 1
        ranges.append((start, end))
        start, capacity = end, capacities[1]
    return ranges


@dataclass(frozen=True, slots=True)
class _Plan:
    """Capacities of the first and the following parts when the message is split, and of a single part; the
    header (UDHL included) of a part that is sent alone, empty when it needs none; the header elements that
    follow the concatenation element in each part of a split message."""

    single: int
    first: int
    following: int
    single_udh: bytes
    rest_udh: bytes


@lru_cache(maxsize=256)
def _plan(encoding: Encoding, elements: tuple[Element, ...], reference_bits: int, first_part_reserve: int) -> _Plan:
    # Cached: a route sends the same few layouts over and over, and this is most of a one-part message's cost.
    # Keyed by the elements, not a Udh: hashing a dataclass key costs more than the lookup.
    extra = Udh(elements) if elements else _NO_UDH
    extra_octets = extra.length if extra.elements else 0
    concatenated_octets = extra.length + (5 if reference_bits == 8 else 6)
    following = part_capacity(encoding, concatenated_octets)
    # Two units hold any one character (a GSM escape sequence, a surrogate pair, a KS C 5601 character).
    if following - first_part_reserve < 2:
        raise ValueError(
            f"first_part_reserve {first_part_reserve} and a {concatenated_octets}-octet header leave "
            f"{following - first_part_reserve} units in the first part"
        )
    return _Plan(
        single=part_capacity(encoding, extra_octets) - first_part_reserve,
        first=following - first_part_reserve,
        following=following,
        single_udh=extra.to_bytes() if extra.elements else b"",
        # What `extra.with_concatenation(...).to_bytes()` gives after the concatenation element and the UDHL, so
        # a split message's headers are built without a Udh per part.
        rest_udh=extra.without_concatenation().to_bytes()[1:],
    )


def _segments(
    pieces: list[tuple[str | None, bytes]], plan: _Plan, reference: int, reference_bits: int
) -> tuple[Segment, ...]:
    total = len(pieces)
    if total == 1:
        text, data = pieces[0]
        return (Segment(1, 1, text, data, plan.single_udh),)
    rest = plan.rest_udh
    segments = []
    for sequence, (text, data) in enumerate(pieces, start=1):
        element = Concatenation(reference, total, sequence, reference_bits).to_bytes()
        segments.append(Segment(sequence, total, text, data, bytes((len(element) + len(rest),)) + element + rest))
    return tuple(segments)


def _unit_cuts(whole: bytes, encoding: Encoding, plan: _Plan) -> Iterator[tuple[int, int]]:
    """The greedy parts of encoded text `whole` as (start, end) unit ranges, each as long as its capacity allows:
    in GSM 7-bit (any tables) every character is one septet or ESC + code, in UCS-2 one code unit or a surrogate
    pair, in the single-octet alphabets one octet, so a cut only has to step back off an escape or a high
    surrogate."""
    total_units = units_in(len(whole), encoding)
    start = 0
    capacity = plan.first
    while start < total_units:
        end = min(start + capacity, total_units)
        if end < total_units and _opens_pair(whole, end - 1, encoding):
            end -= 1
        yield start, end
        start, capacity = end, plan.following


def _encoded_pieces(text: str, whole: bytes, encoding: Encoding, plan: _Plan) -> list[tuple[str | None, bytes]]:
    """The greedy parts found in the encoded text itself (`_unit_cuts`), so a part's characters are counted in C
    instead of costed one by one."""
    width = 2 if encoding is Encoding.UCS2 else 1
    pieces: list[tuple[str | None, bytes]] = []
    first_char = 0
    for start, end in _unit_cuts(whole, encoding, plan):
        data = whole[start * width : end * width]
        if encoding is Encoding.GSM7:
            chars = len(data) - data.count(ESCAPE)
        elif encoding is Encoding.UCS2:
            chars = len(data.decode("utf-16-be"))
        else:
            chars = len(data)
        pieces.append((text[first_char : first_char + chars], data))
        first_char += chars
    return pieces


def _opens_pair(whole: bytes, unit: int, encoding: Encoding) -> bool:
    """Whether unit `unit` of `whole` is the first half of a two-unit character."""
    if encoding is Encoding.GSM7:
        return whole[unit] == ESCAPE  # an extension code is never 0x1B, so every escape opens a pair
    return encoding is Encoding.UCS2 and 0xD8 <= whole[2 * unit] <= 0xDB


# The encodings `_encoded_pieces` can cut; the multi-octet ones (ISO-2022-JP, KS C 5601) are costed.
_ENCODED_CUT: Final = frozenset({Encoding.GSM7, Encoding.UCS2}) | _SINGLE_OCTET


def _costed_pieces(text: str, encoding: Encoding, plan: _Plan) -> list[tuple[str | None, bytes]]:
    """The parts of a text in a multi-octet alphabet (ISO-2022-JP, KS C 5601), cut by what each character costs
    alone, each piece encoded on its own. A character alone costs at least what it adds to a run (ISO-2022-JP wraps
    it in shift sequences that neighbours share), so a part cut by these costs never overflows."""
    costs = [len(encode_text(char, encoding)) for char in text]
    pieces: list[tuple[str | None, bytes]] = []
    for start, end in _cut(costs, (plan.first, plan.following)):
        piece = text[start:end]
        pieces.append((piece, encode_text(piece, encoding)))
    return pieces


def _split_text(
    text: str,
    encoding: Encoding,
    tables: NationalTables,
    udh_elements: tuple[Element, ...],
    reference: int,
    reference_bits: int,
    first_part_reserve: int,
    encoded: bytes | None = None,
) -> SegmentedText:
    # `encode_text` raises PduError naming a character the encoding lacks.
    whole = encoded if encoded is not None else encode_text(text, encoding, tables)
    # The default tables announce nothing: most texts skip building the (empty) shift elements.
    elements = udh_elements if tables is DEFAULT_TABLES else udh_elements + national_language_elements(tables)
    plan = _plan(encoding, elements, reference_bits, first_part_reserve)
    if units_in(len(whole), encoding) <= plan.single:
        pieces: list[tuple[str | None, bytes]] = [(text, whole)]
    elif encoding in _ENCODED_CUT:
        pieces = _encoded_pieces(text, whole, encoding, plan)
    else:
        pieces = _costed_pieces(text, encoding, plan)
    segments = _segments(pieces, plan, reference, reference_bits)
    return SegmentedText(encoding, reference, reference_bits, segments, tables)


def _candidates(
    text: str, encoding: Encoding | None, national_languages: tuple[NationalLanguage, ...]
) -> list[tuple[Encoding, NationalTables]]:
    """What `text` may be sent as, preferred first: default GSM tables, national ones, then UCS-2."""
    if encoding is not None and (not national_languages or encoding is not Encoding.GSM7):
        return [(encoding, DEFAULT_TABLES)]  # for GSM 7-bit, encoding it raises, naming a character it lacks
    tables = [DEFAULT_TABLES]
    for language in national_languages:
        if language != NationalLanguage.SPANISH:  # Spanish has no locking shift table of its own
            tables += [NationalTables(language, NationalLanguage.DEFAULT), NationalTables(language, language)]
        tables.append(NationalTables(NationalLanguage.DEFAULT, language))
    fitting = [(Encoding.GSM7, t) for t in dict.fromkeys(tables) if is_gsm7(text, t)]
    if encoding is Encoding.GSM7:
        return fitting or [(Encoding.GSM7, DEFAULT_TABLES)]  # the latter raises, naming the character
    return fitting or [(Encoding.UCS2, DEFAULT_TABLES)]


def segment_text(
    text: str,
    *,
    encoding: Encoding | None = None,
    max_segments: int = 3,
    reference: int,
    reference_bits: int = 8,
    first_part_reserve: int = 0,
    udh_elements: tuple[Element, ...] = (),
    national_languages: tuple[NationalLanguage, ...] = (),
    encoded: bytes | None = None,
) -> SegmentedText:
    """Split `text` into parts in `encoding`; when None, GSM 7-bit if every character fits, else UCS-2.

    `first_part_reserve` units are left free in the first part (a signature the route prefixes);
    `udh_elements` (port addressing, say) go into every part's header and shrink the parts accordingly.
    With `national_languages` (a route whose handsets read TS 23.038 national tables), GSM 7-bit text may use
    their shift tables, announced in every part's header, when that takes fewer segments; so may text the default
    alphabet cannot carry, which would otherwise go as UCS-2.
    `encoded` is `text` already in `encoding` (default tables), as a submission carried it: cut as it is, not
    encoded again (its caller vouches that encoding `text` gives these bytes).
    PduError when the text does not fit the encoding, TooManySegments beyond `max_segments`.
    """
    _check_options(max_segments, reference, reference_bits, first_part_reserve)
    if encoding is not None and not encoding.is_text:
        raise ValueError("binary data is split with segment_binary")
    candidates = _candidates(text, encoding, national_languages)
    if len(candidates) == 1:
        ((chosen, tables),) = candidates
        whole = encoded if chosen is encoding and tables is DEFAULT_TABLES else None
        best = _split_text(text, chosen, tables, udh_elements, reference, reference_bits, first_part_reserve, whole)
    else:
        options = [
            _split_text(text, chosen, tables, udh_elements, reference, reference_bits, first_part_reserve)
            for chosen, tables in candidates
        ]
        best = min(options, key=lambda option: len(option.parts))  # the first, most preferred, among the fewest
    if len(best.parts) > max_segments:
        raise TooManySegments(len(best.parts), max_segments)
    return best


def count_segments(
    text: str,
    *,
    encoding: Encoding,
    reference_bits: int = 8,
    first_part_reserve: int = 0,
    udh_elements: tuple[Element, ...] = (),
) -> int:
    """How many parts `segment_text` cuts `text` into in `encoding` (default GSM tables), with no maximum: the
    count of a message that is checked against a route's limit before it is split, without building the parts.
    PduError when the text does not fit the encoding."""
    _check_options(1, 0, reference_bits, first_part_reserve)
    if not encoding.is_text:
        raise ValueError("binary data is split with segment_binary")
    whole = encode_text(text, encoding)
    plan = _plan(encoding, udh_elements, reference_bits, first_part_reserve)
    if units_in(len(whole), encoding) <= plan.single:
        return 1
    if encoding in _ENCODED_CUT:
        return sum(1 for _ in _unit_cuts(whole, encoding, plan))
    return len(_costed_pieces(text, encoding, plan))


def segment_binary(
    data: bytes,
    *,
    max_segments: int = 3,
    reference: int,
    reference_bits: int = 8,
    udh_elements: tuple[Element, ...] = (),
) -> SegmentedText:
    """Split 8-bit data (WAP push, OTA settings...) into parts: 140 octets alone, 134 per part with 8-bit
    references, less whatever `udh_elements` (port addressing) take."""
    _check_options(max_segments, reference, reference_bits, 0)
    plan = _plan(Encoding.BINARY, udh_elements, reference_bits, 0)
    if len(data) <= plan.single:
        pieces: list[tuple[str | None, bytes]] = [(None, data)]
    else:
        step = plan.following
        pieces = [(None, data[start : start + step]) for start in range(0, len(data), step)]
        if len(pieces) > max_segments:
            raise TooManySegments(len(pieces), max_segments)
    segments = _segments(pieces, plan, reference, reference_bits)
    return SegmentedText(Encoding.BINARY, reference, reference_bits, segments)


def udh_to_sar(short_message: bytes) -> tuple[SarInfo | None, bytes, bool]:
    """A short_message sent with UDHI -> its SAR TLVs (None without a concatenation element), the short_message
    without that element, and whether a header (other elements) still leads it, so UDHI stays set."""
    udh, user_data = Udh.parse(short_message)
    concatenation = udh.concatenation
    if concatenation is None:
        return None, short_message, True
    rest = udh.without_concatenation()
    if not rest.elements:
        return SarInfo.from_concatenation(concatenation), user_data, False
    return SarInfo.from_concatenation(concatenation), rest.to_bytes() + user_data, True


def sar_to_udh(sar: SarInfo, short_message: bytes, udhi: bool, reference_bits: int | None = None) -> bytes:
    """A short_message with SAR TLVs -> the short_message carrying the concatenation element in its header,
    merged into the header it already had when `udhi` is set. The result needs UDHI."""
    udh, user_data = split_user_data(short_message, udhi)
    header = udh if udh is not None else Udh(())
    return header.with_concatenation(sar.to_concatenation(reference_bits)).to_bytes() + user_data

