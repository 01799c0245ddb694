"""One pass from a submission's content to its segments (`prepare_content`), held to the slow way: the payload
decoded to text, the text prepared by the route's rules without its bytes (encoded again), split by
`segment_text`. The shortcut (nothing added, one part) and the byte path (signature, statement and suffix joined as
bytes) must give the same segments, text and refusals."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.config import RouteConfig
from smsgw.pdu.errors import PduError
from smsgw.pdu.segmentation import TooManySegments
from smsgw.pdu.text import Encoding, choose_encoding, decode_as, encode_text, parse_data_coding
from smsgw.scheduler.content import Content, Encoded, Text, prepare_content, prepare_text
from smsgw.scheduler.model import NewSegment, Refused
from smsgw.scheduler.policy import NO_KEYWORDS, BlockedContent, ContentRules, KeywordRules, parse_keywords

# Septets (escape included, so some payloads have extension characters, unknown escapes or a trailing escape),
# and UTF-16 with surrogates, odd lengths and lone halves among the raw bytes.
_PAYLOADS = st.one_of(
    st.tuples(st.just(0x00), st.binary(max_size=200).map(lambda b: bytes(octet & 0x7F for octet in b))),
    st.tuples(st.just(0x00), st.text(alphabet=st.sampled_from("ab {\r\nSTOP"), max_size=400).map(
        lambda t: encode_text(t, Encoding.GSM7))),
    st.tuples(st.just(0x08), st.text(max_size=100).map(lambda t: t.encode("utf-16-be", "surrogatepass"))),
    st.tuples(st.sampled_from([0x00, 0x08, 0x03, 0xF0, 0x11]), st.binary(max_size=200)),
)
_RULES = st.builds(
    lambda signature, upstream, suffix, statement, line_breaks, max_segments: ContentRules.from_route(RouteConfig(
        name="r", signature=signature, signature_added_upstream=upstream, suffix=suffix,
        unsubscribe_statement=statement, line_breaks=line_breaks, max_segments=max_segments,
    )),
    st.sampled_from(["", "[Acme] ", "【公司名】"]),
    st.booleans(),
    st.sampled_from(["", " -Acme", " 退訂"]),
    st.sampled_from(["", " STOP 123"]),
    st.sampled_from(["crlf", "lf"]),
    st.integers(1, 8),
)
_KEYWORDS = st.sampled_from([NO_KEYWORDS, parse_keywords("stop")])


def _outcome(build: object) -> object:
    try:
        return build()  # type: ignore[operator]
    except (TooManySegments, BlockedContent, Refused) as exc:
        return type(exc), str(exc)
    except PduError as exc:
        return Refused, str(exc)


def _slow(content: Text | Encoded, rules: ContentRules, flash: bool, keywords: KeywordRules, promotional: bool,
          reference: int) -> Content:
    if isinstance(content, Text):
        text, encoding = content.text, None
    else:
        scheme = parse_data_coding(content.data_coding)
        text, flash = decode_as(content.payload, scheme.encoding), scheme.message_class == 0
        encoding = scheme.encoding if scheme.encoding in (Encoding.GSM7, Encoding.UCS2) else choose_encoding(text)
    prepared = prepare_text(text, rules, promotional=promotional, keywords=keywords, encoding=encoding,
                            reference=reference)
    return Content(prepared.parts, prepared.text, flash, len(prepared.parts) > 1)


@settings(max_examples=500)
@given(_PAYLOADS, _RULES, _KEYWORDS, st.booleans(), st.integers(0, 255))
def test_one_pass_over_the_payload_is_the_slow_way(
    payload: tuple[int, bytes], rules: ContentRules, keywords: KeywordRules, promotional: bool, reference: int
) -> None:
    content = Encoded(payload[1], payload[0])
    kwargs = {"keywords": keywords, "promotional": promotional, "reference": reference}
    one = _outcome(lambda: prepare_content(content, rules, flash=False, **kwargs))
    assert one == _outcome(lambda: _slow(content, rules, False, keywords, promotional, reference))


@settings(max_examples=200)
@given(st.text(alphabet=st.sampled_from("ab €{\r\n你é"), max_size=300), _RULES, st.booleans(), st.booleans())
def test_a_text_is_prepared_as_the_slow_way(text: str, rules: ContentRules, flash: bool, promotional: bool) -> None:
    one = _outcome(lambda: prepare_content(Text(text), rules, flash=flash, keywords=NO_KEYWORDS,
                                           promotional=promotional, reference=7))
    assert one == _outcome(lambda: _slow(Text(text), rules, flash, NO_KEYWORDS, promotional, 7))


def test_the_usual_message_is_its_payload_as_one_segment() -> None:
    rules = ContentRules.from_route(RouteConfig(name="r"))
    payload = b"Benchmark message of a typical length."
    content = prepare_content(Encoded(payload, 0), rules, flash=False, keywords=NO_KEYWORDS, promotional=False,
                              reference=0)
    assert content.segments[0].user_data is payload  # not decoded, encoded and cut again
    assert content == Content((NewSegment(0, payload, b""),), payload.decode(), False, False)


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
        return _outcome(lambda: prepare_text(text, rules, promotional=promotional, keywords=keywords,
                                             encoding=encoding, reference=reference, encoded=given))

    assert prepare(encoded) == prepare(None)
