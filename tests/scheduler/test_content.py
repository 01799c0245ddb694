"""A submission's text travels with its bytes: `decode_content` keeps the payload as the text's encoding when
decoding it is one-to-one, and the content rules and the split cut those bytes instead of encoding the text again.
Both are held to the slow way: encoding the decoded text, and preparing the text without the bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.config import RouteConfig
from smsgw.pdu.errors import PduError
from smsgw.pdu.segmentation import TooManySegments
from smsgw.pdu.text import Encoding, encode_text
from smsgw.scheduler.content import decode_content
from smsgw.scheduler.model import Refused
from smsgw.scheduler.policy import BlockedContent, ContentRules, parse_keywords, prepare_text

# Septets (escape included, so some payloads have extension characters, unknown escapes or a trailing escape),
# and UTF-16 with surrogates, odd lengths and lone halves among the raw bytes.
_PAYLOADS = st.one_of(
    st.tuples(st.just(0x00), st.binary(max_size=200).map(lambda b: bytes(octet & 0x7F for octet in b))),
    st.tuples(st.just(0x08), st.text(max_size=100).map(lambda t: t.encode("utf-16-be", "surrogatepass"))),
    st.tuples(st.sampled_from([0x00, 0x08, 0x03, 0xF0]), st.binary(max_size=200)),
)


@settings(max_examples=500)
@given(_PAYLOADS)
def test_the_payload_kept_as_the_texts_encoding_is_what_encoding_the_text_gives(payload: tuple[int, bytes]) -> None:
    data_coding, data = payload
    try:
        decoded = decode_content(data, data_coding=data_coding, esm_class=0, sar=None)
    except Refused:
        return
    if decoded.encoded is not None:
        assert decoded.text is not None
        assert encode_text(decoded.text, decoded.encoding) == decoded.encoded == data


def test_a_payload_whose_decoding_is_not_one_to_one_is_encoded_again() -> None:
    # An escape before a code the extension table lacks, and a trailing escape: the text does not give these back.
    for septets in (b"a\x1b\x41", b"ab\x1b"):
        assert decode_content(septets, data_coding=0, esm_class=0, sar=None).encoded is None
    assert decode_content("é".encode("latin-1"), data_coding=3, esm_class=0, sar=None).encoded is None  # re-chosen


@settings(max_examples=300)
@given(
    text=st.text(alphabet=st.sampled_from("ab €{\r\n你é"), min_size=1, max_size=400),
    encoding=st.sampled_from([Encoding.GSM7, Encoding.UCS2]),
    signature=st.sampled_from(["", "[Acme] ", "【公司名】"]),
    upstream=st.booleans(),
    line_breaks=st.sampled_from(["crlf", "lf"]),
    suffix=st.sampled_from(["", " -Acme"]),
    promotional=st.booleans(),
    reference=st.integers(0, 255),
)
def test_preparing_with_the_texts_bytes_is_preparing_without_them(
    text: str, encoding: Encoding, signature: str, upstream: bool, line_breaks: str, suffix: str,
    promotional: bool, reference: int,
) -> None:
    try:
        encoded = encode_text(text, encoding)
    except PduError:
        return
    rules = ContentRules.from_route(RouteConfig(
        name="r", signature=signature, signature_added_upstream=upstream, line_breaks=line_breaks, suffix=suffix,
        unsubscribe_statement=" STOP 123", max_segments=8,
    ))
    keywords = parse_keywords("blocked")

    def prepare(given: bytes | None) -> object:
        try:
            return prepare_text(text, rules, promotional=promotional, keywords=keywords, encoding=encoding,
                                reference=reference, encoded=given)
        except (TooManySegments, BlockedContent) as exc:
            return type(exc), str(exc)
        except PduError as exc:  # a signature the requested alphabet lacks is not this test's business
            return PduError, str(exc)

    assert prepare(encoded) == prepare(None)
