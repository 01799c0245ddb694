"""From a submission's content to the segments a modem sends, in one pass: `prepare_content`. Sans-IO.

Three shapes arrive: text the gateway splits (one message, N segments, one receipt); a part the ESME split itself
with a UDH (UDHI set) or SAR TLVs (one segment, sent as is); and 8-bit binary data. Modems take GSM 7-bit
(unpacked septets), 8-bit data and UCS-2, so other SMPP alphabets (Latin-1, IA5, Cyrillic…) are re-encoded as
GSM 7-bit when every character fits, else UCS-2.

A text travels with its bytes: when the payload is exactly the text in the alphabet it goes on air in (GSM 7-bit
without escapes, UCS-2: decoding those is one-to-one), the route's rules and the split work on those bytes, and
what the rules add (signature, statement, suffix) is encoded alone and joined to them; the text is encoded only
when nothing carried it in the alphabet it is sent in.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Final, NamedTuple

from smsgw.pdu.constants import CommandStatus, EsmClass
from smsgw.pdu.errors import PduError
from smsgw.pdu.gsm7 import is_gsm7
from smsgw.pdu.segmentation import (
    MAX_USER_DATA_OCTETS,
    SarInfo,
    TooManySegments,
    count_encoded,
    part_capacity,
    sar_to_udh,
    segment_binary,
    split_encoded,
)
from smsgw.pdu.text import (
    DataCodingScheme,
    Encoding,
    choose_encoding,
    decode_as,
    decodes_one_to_one,
    encode_text,
    parse_data_coding,
    units,
    units_in,
)
from smsgw.pdu.udh import split_user_data
from smsgw.scheduler.model import NewSegment, Refused
from smsgw.scheduler.policy import (
    NO_KEYWORDS,
    ContentRules,
    KeywordRules,
    LineBreaks,
    check_esme_parts,
    check_keywords,
)

log = logging.getLogger(__name__)

_MODEM_ENCODINGS: Final = frozenset({Encoding.GSM7, Encoding.BINARY, Encoding.UCS2})
_UDHI: Final = int(EsmClass.UDHI)  # an int mask: IntFlag's `&` builds a flag value per call
_GSM7: Final = Encoding.GSM7
_UCS2: Final = Encoding.UCS2
_BINARY: Final = Encoding.BINARY
_LF: Final = LineBreaks.LF
# The most octets of GSM 7-bit (unpacked) or UCS-2 text one part holds without a header.
_ONE_PART_OCTETS: Final = {_GSM7: part_capacity(_GSM7, 0), _UCS2: 2 * part_capacity(_UCS2, 0)}


# NamedTuples, not frozen dataclasses: built for every submission (see model.py).
class Text(NamedTuple):
    """Text the gateway encodes (GSM 7-bit when every character fits, else UCS-2) and splits."""

    text: str


class Encoded(NamedTuple):
    """Content as an ESME encoded it: `payload` in `data_coding` (message class 0 is flash), maybe one part it split
    itself (a UDH, with UDHI in `esm_class`, or the SAR values in `sar`)."""

    payload: bytes
    data_coding: int
    esm_class: int = 0
    sar: SarInfo | None = None


class Content(NamedTuple):
    segments: tuple[NewSegment, ...]
    text: str  # '' for binary data
    flash: bool
    gateway_split: bool


class PreparedText(NamedTuple):
    """A text as the route's rules make it: `text` in `encoding`, cut into `parts` (the message's concatenation
    reference in their headers), `first_part_reserve` units kept free in the first; `appended` says what of
    "unsubscribe_statement", "suffix" fitted, for the log."""

    text: str
    encoding: Encoding
    first_part_reserve: int
    parts: tuple[NewSegment, ...]
    appended: tuple[str, ...]


def prepare_content(
    content: Text | Encoded,
    rules: ContentRules,
    *,
    flash: bool,
    keywords: KeywordRules,
    promotional: bool,
    reference: int,
) -> Content:
    """One message's content as it goes on air, under its route's `rules`, each step once and in this order:

    1. `Encoded`: the data_coding's alphabet and message class (class 0 is flash; `flash` is for `Text`), SAR
       values as the UDH they stand for, the text decoded (Refused, ESME_RINVDCS, for bytes not in its alphabet);
    2. a part the ESME split (UDHI or SAR): its message's total held to the route's limit (TooManySegments,
       0x406), its text to the blocked keywords (BlockedContent, 0x402), then sent as it came;
    3. binary data: split as it is (TooManySegments beyond the limit);
    4. a text (`prepare_text`): line breaks, blocked keywords, the signature, the split of its bytes, then the
       statement and suffix where they fit. The usual message skips step 4's machinery: its rules add nothing and
       its bytes fit one part, so the payload is the one segment.
    `reference` is the concatenation reference of a message the gateway splits.
    """
    requested: Encoding | None
    try:
        if type(content) is Text:
            text, whole, requested = content.text, None, None
        else:
            assert type(content) is Encoded
            scheme = _scheme(content.data_coding)
            flash = scheme.message_class == 0
            payload = content.payload
            udhi = bool(content.esm_class & _UDHI)
            if content.sar is not None:
                payload, udhi = sar_to_udh(content.sar, payload, udhi), True
            if udhi:
                part, total = _presplit(payload, scheme.encoding, flash)
                check_esme_parts(total, rules.max_segments)
                if scheme.encoding.is_text:
                    check_keywords(keywords, part.text)
                return part
            if scheme.encoding is _BINARY:
                binary = segment_binary(payload, max_segments=rules.max_segments, reference=reference)
                parts = tuple(NewSegment(_BINARY.data_coding, p.user_data, p.udh) for p in binary.parts)
                return Content(parts, "", flash, len(parts) > 1)
            requested = scheme.encoding
            text = decode_as(payload, requested)
            if decodes_one_to_one(payload, requested):
                whole = payload
            else:
                whole = None
                if requested not in _MODEM_ENCODINGS:
                    requested = choose_encoding(text)
            if (
                whole is not None
                and len(whole) <= _ONE_PART_OCTETS[requested]
                and not (rules.signature or rules.suffix or (promotional and rules.unsubscribe_statement))
                and not (rules.line_breaks is _LF and "\r" in text)
            ):
                check_keywords(keywords, text)
                return Content((NewSegment(requested.data_coding, whole, b""),), text, flash, False)
        prepared = prepare_text(
            text, rules, promotional=promotional, keywords=keywords, encoding=requested, reference=reference,
            encoded=whole,
        )
        return Content(prepared.parts, prepared.text, flash, len(prepared.parts) > 1)
    except TooManySegments:
        raise
    except PduError as exc:
        raise Refused(str(exc), command_status=exc.command_status) from None


def prepare_text(
    text: str,
    rules: ContentRules,
    *,
    promotional: bool,
    keywords: KeywordRules = NO_KEYWORDS,
    encoding: Encoding | None = None,
    reference: int = 0,
    encoded: bytes | None = None,
) -> PreparedText:
    """Apply a route's content rules to a message text and split it.

    Line breaks first, then blocked keywords on the customer's text (BlockedContent, 0x402 / err 802), the
    signature (prefixed, or kept free in the first part when the operator adds it), the maximum segments
    (TooManySegments, 0x406 / err 806), then the unsubscribe statement (promotional messages) and the suffix,
    each only when it fits in the last segment without adding one. `encoding` is the one the message must be
    sent in (GSM 7-bit or UCS-2, from its data_coding); None chooses GSM 7-bit when everything fits it, else
    UCS-2. `encoded` is `text` in `encoding` as the submission carried it: split as it is while the rules leave
    the text and its alphabet unchanged, not encoded again. PduError for a text `encoding` cannot carry.
    """
    if rules.line_breaks is _LF and "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        encoded = None
    check_keywords(keywords, text)
    signature = rules.signature
    if encoded is not None and encoding is not None and not signature:
        chosen = encoding  # the text was decoded from it: it fits
    else:
        chosen = _encoding_for(signature + text, encoding)
        if chosen is not encoding:
            encoded = None  # the text goes out in another alphabet
    if rules.signature_added_upstream:
        reserve = units(signature, chosen)
        base = text
    else:
        reserve = 0
        if signature:
            base = signature + text
            encoded = None if encoded is None else encode_text(signature, chosen) + encoded
        else:
            base = text
    whole = encode_text(base, chosen) if encoded is None else encoded
    # The one split of the message unless a statement or suffix is appended below; TooManySegments beyond the
    # route's maximum.
    split = split_encoded(whole, chosen, max_segments=rules.max_segments, reference=reference,
                          first_part_reserve=reserve)
    segments = len(split)
    statement = rules.unsubscribe_statement if promotional else ""
    appended: list[str] = []
    if statement or rules.suffix:
        # Each in the message's alphabet, or left out: an addition never changes the alphabet.
        additions = [
            (name, addition, _encoded_or_none(addition, chosen))
            for name, addition in (("unsubscribe_statement", statement), ("suffix", rules.suffix))
            if addition and addition.strip().casefold() not in base.casefold()
        ]
        # Usually there is room for all of them, and one count shows it; otherwise in order of importance.
        everything = whole + b"".join(octets or b"" for _, _, octets in additions)
        if (
            len(additions) > 1
            and all(octets is not None for _, _, octets in additions)
            and count_encoded(everything, chosen, first_part_reserve=reserve) <= segments
        ):
            base += "".join(addition for _, addition, _ in additions)
            whole = everything
            appended = [name for name, _, _ in additions]
        else:
            for name, addition, octets in additions:
                if octets is not None and count_encoded(whole + octets, chosen, first_part_reserve=reserve) <= segments:
                    base += addition
                    whole += octets
                    appended.append(name)
                else:
                    log.info("%s left out: no room in the last segment segments=%d", name, segments)
        if appended:
            split = split_encoded(whole, chosen, max_segments=rules.max_segments, reference=reference,
                                  first_part_reserve=reserve)
    data_coding = chosen.data_coding
    parts = tuple([NewSegment(data_coding, user_data, udh) for udh, user_data in split])
    return PreparedText(base, chosen, reserve, parts, tuple(appended))


def _encoding_for(text: str, requested: Encoding | None) -> Encoding:
    """`requested` when it can carry `text`; otherwise (a signature outside the requested alphabet) the one
    `choose_encoding` picks, since the message goes on air with the signature in it."""
    if requested is not None:
        # is_gsm7 stops at the first foreign character instead of encoding the whole text.
        fits = is_gsm7(text) if requested is _GSM7 else _encoded_or_none(text, requested) is not None
        if fits:
            return requested
        log.info("encoding changed for the signature requested=%s", requested.name)
    return choose_encoding(text)


def _encoded_or_none(text: str, encoding: Encoding) -> bytes | None:
    try:
        return encode_text(text, encoding)
    except PduError:
        return None


@lru_cache(maxsize=256)
def _scheme(data_coding: int) -> DataCodingScheme:
    # A bind sends the same one or two data_coding values all day; a refused value raises and is not cached.
    return parse_data_coding(data_coding)


def _presplit(payload: bytes, encoding: Encoding, flash: bool) -> tuple[Content, int]:
    """The part as one segment, and the total of parts its concatenation element announces."""
    header, user_data = split_user_data(payload, True)
    udh = b"" if header is None else header.to_bytes()
    concatenation = None if header is None else header.concatenation
    text = ""
    if encoding.is_text:
        text = decode_as(user_data, encoding)
        if encoding not in _MODEM_ENCODINGS:
            encoding = choose_encoding(text)
            user_data = encode_text(text, encoding)
    if not _fits_one_part(encoding, len(udh), len(user_data)):
        raise Refused(
            f"a part with a user data header carries at most {MAX_USER_DATA_OCTETS} octets",
            command_status=CommandStatus.ESME_RINVMSGLEN,
        )
    total = 1 if concatenation is None else concatenation.total
    return Content((NewSegment(encoding.data_coding, user_data, udh),), text, flash, gateway_split=False), total


def _fits_one_part(encoding: Encoding, udh_octets: int, user_data_length: int) -> bool:
    return units_in(user_data_length, encoding) <= part_capacity(encoding, udh_octets)
