"""The segments a submission is charged to the throttle are counted from its bytes, not split: held to the count
of the parts `segment_text` would cut it into (what validation did before), refusals included."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.pdu.errors import PduError
from smsgw.pdu.segmentation import part_capacity, segment_text
from smsgw.pdu.smpp import SubmitSm
from smsgw.pdu.text import decode_as, parse_data_coding, units_in
from smsgw.pdu.tlv import Tlvs
from smsgw.smpp_server.validation import count_segments

_PAYLOADS = st.one_of(
    st.tuples(st.just(0x00), st.binary(min_size=150, max_size=700).map(lambda b: bytes(o & 0x7F for o in b))),
    st.tuples(st.just(0x08), st.text(min_size=60, max_size=300).map(lambda t: t.encode("utf-16-be", "surrogatepass"))),
    st.tuples(st.sampled_from([0x00, 0x08, 0x03, 0x01]), st.binary(min_size=130, max_size=700)),
)


def _outcome(count: object) -> object:
    try:
        return count()  # type: ignore[operator]
    except PduError as exc:
        return type(exc), exc.command_status, str(exc)


@settings(max_examples=300)
@given(_PAYLOADS, st.integers(1, 8))
def test_a_long_message_payload_is_counted_as_segment_text_splits_it(
    payload: tuple[int, bytes], max_segments: int
) -> None:
    data_coding, data = payload
    pdu = SubmitSm(sequence_number=1, destination_addr="447700900001", data_coding=data_coding, tlvs=Tlvs(message_payload=data))

    def split() -> int:
        encoding = parse_data_coding(data_coding).encoding
        if units_in(len(data), encoding) <= part_capacity(encoding, 0):
            return 1  # one part: not decoded
        text = decode_as(data, encoding)
        return len(segment_text(text, encoding=encoding, max_segments=max_segments, reference=0).parts)

    assert _outcome(lambda: count_segments(pdu, max_segments)) == _outcome(split)
