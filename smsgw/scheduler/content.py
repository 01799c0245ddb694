"""From a submitted short_message (or message_payload) to the segments a modem sends: sans-IO, codec calls only.

Three shapes arrive: text the gateway splits (one message, N segments, one receipt); a part the ESME split itself
with a UDH (UDHI set) or SAR TLVs (one segment, sent as is); and 8-bit binary data. Modems take GSM 7-bit
(unpacked septets), 8-bit data and UCS-2, so other SMPP alphabets (Latin-1, IA5, Cyrillic…) are re-encoded as
GSM 7-bit when every character fits, else UCS-2.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final, NamedTuple

from smsgw.pdu.constants import CommandStatus, EsmClass
from smsgw.pdu.errors import PduError
from smsgw.pdu.gsm7 import ESCAPE
from smsgw.pdu.segmentation import (
    MAX_USER_DATA_OCTETS,
    SarInfo,
    part_capacity,
    sar_to_udh,
    segment_binary,
    segment_text,
)
from smsgw.pdu.text import (
    DataCodingScheme,
    Encoding,
    choose_encoding,
    decode_as,
    encode_text,
    parse_data_coding,
    units_in,
)
from smsgw.pdu.udh import split_user_data
from smsgw.scheduler.model import NewSegment, Refused
from smsgw.scheduler.policy import PreparedText

_MODEM_ENCODINGS: Final = frozenset({Encoding.GSM7, Encoding.BINARY, Encoding.UCS2})
_UDHI: Final = int(EsmClass.UDHI)  # an int mask: IntFlag's `&` builds a flag value per call
_ESCAPE: Final = bytes((ESCAPE,))


class Content(NamedTuple):  # NamedTuples here: built for every submission (see model.py)
    segments: tuple[NewSegment, ...]
    text: str  # '' for binary data
    flash: bool
    gateway_split: bool


class Decoded(NamedTuple):
    """A submission's payload understood, before the route's content rules: what `build_segments` splits."""

    payload: bytes
    text: str | None  # None for binary data
    encoding: Encoding  # the alphabet it goes on air in: GSM 7-bit, 8-bit data or UCS-2
    flash: bool
    presplit: Content | None  # a part the ESME split (UDHI or SAR TLVs): one segment, sent as it came
    # How many parts the message of an ESME-split part reaches the handset in (its concatenation total, 1 without
    # one): what the route's segment limit counts. 0 when the gateway splits.
    esme_parts: int = 0
    # `text` in `encoding` when the payload is exactly that (GSM 7-bit without escapes, UCS-2): the split cuts
    # these bytes instead of encoding the text it was decoded from again. None: encode `text` when needed.
    encoded: bytes | None = None


def decode_content(payload: bytes, *, data_coding: int, esm_class: int, sar: SarInfo | None) -> Decoded:
    """Refused carries the status to refuse the submission with (bad alphabet, oversized part)."""
    try:
        scheme = _scheme(data_coding)
        flash = scheme.message_class == 0
        udhi = bool(esm_class & _UDHI)
        if sar is not None:
            payload, udhi = sar_to_udh(sar, payload, udhi), True
        if udhi:
            part, total = _presplit(payload, scheme.encoding, flash)
            text = part.text if scheme.encoding.is_text else None
            return Decoded(payload, text, scheme.encoding, flash, part, total)
        if scheme.encoding is Encoding.BINARY:
            return Decoded(payload, None, Encoding.BINARY, flash, None)
        encoding: Encoding = scheme.encoding
        text = decode_as(payload, encoding)
        if encoding is Encoding.UCS2 or (encoding is Encoding.GSM7 and _ESCAPE not in payload):
            # Decoding these is one-to-one, so encoding the text again gives the payload back (property-tested).
            return Decoded(payload, text, encoding, flash, None, encoded=payload)
        if encoding not in _MODEM_ENCODINGS:
            encoding = choose_encoding(text)
        return Decoded(payload, text, encoding, flash, None)
    except PduError as exc:
        raise Refused(str(exc), command_status=exc.command_status) from None


def build_segments(decoded: Decoded, prepared: PreparedText | None, *, max_segments: int, reference: int) -> Content:
    """Segments for one destination: text as the content rules `prepared` and split it (signature, suffix, line
    breaks), binary data split as is, an ESME-split part unchanged; `reference` for the parts the gateway splits
    here (`prepared` parts carry the one they were split with)."""
    if decoded.presplit is not None:
        return decoded.presplit
    try:
        if decoded.text is None:
            binary = segment_binary(decoded.payload, max_segments=max_segments, reference=reference)
            parts = tuple(NewSegment(Encoding.BINARY.data_coding, p.user_data, p.udh) for p in binary.parts)
            return Content(parts, "", decoded.flash, len(parts) > 1)
        if prepared is not None:
            text, split = prepared.text, prepared.split
        else:
            text = decoded.text
            split = segment_text(text, encoding=decoded.encoding, max_segments=max_segments, reference=reference)
        data_coding = split.data_coding
        parts = tuple([NewSegment(data_coding, p.user_data, p.udh) for p in split.parts])
        return Content(parts, text, decoded.flash, len(parts) > 1)
    except PduError as exc:
        raise Refused(str(exc), command_status=exc.command_status) from None


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
