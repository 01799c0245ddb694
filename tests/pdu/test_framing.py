"""The stream framer: whole PDUs out of arbitrary chunks, and the command_length guard."""

from __future__ import annotations

import struct

import pytest

from smsgw.pdu.constants import CommandId, CommandStatus
from smsgw.pdu.errors import PduError
from smsgw.pdu.framing import PduFramer, peek_header
from smsgw.pdu.smpp import EnquireLink, SubmitSm, encode_pdu


def _stream() -> list[bytes]:
    return [
        encode_pdu(EnquireLink(sequence_number=1)),
        encode_pdu(SubmitSm(sequence_number=2, destination_addr="447700900001", short_message=b"hello")),
        encode_pdu(EnquireLink(sequence_number=3)),
    ]


@pytest.mark.parametrize("chunk", [1, 2, 5, 16, 17, 1000])
def test_any_chunking_yields_the_same_pdus(chunk: int) -> None:
    pdus = _stream()
    data = b"".join(pdus)
    framer = PduFramer(4096)
    out: list[bytes] = []
    for i in range(0, len(data), chunk):
        out += framer.feed(data[i : i + chunk])
    assert out == pdus
    assert all(type(pdu) is bytes for pdu in out)
    assert framer.buffered == 0


def test_length_below_header_is_rejected_with_sequence() -> None:
    framer = PduFramer(4096)
    with pytest.raises(PduError) as info:
        framer.feed(struct.pack(">IIII", 15, CommandId.ENQUIRE_LINK, 0, 99))
    assert (info.value.command_status, info.value.sequence_number) == (CommandStatus.ESME_RINVCMDLEN, 99)


def test_length_above_maximum_is_rejected_before_the_body_arrives() -> None:
    framer = PduFramer(1024)
    with pytest.raises(PduError) as info:
        framer.feed(struct.pack(">IIII", 1025, CommandId.SUBMIT_SM, 0, 5))
    assert (info.value.command_status, info.value.sequence_number) == (CommandStatus.ESME_RINVCMDLEN, 5)
    with pytest.raises(PduError) as info:
        PduFramer(1024).feed(struct.pack(">I", 0xFFFFFFFF))
    assert (info.value.command_status, info.value.sequence_number) == (CommandStatus.ESME_RINVCMDLEN, None)


def test_good_pdus_before_a_bad_length_are_returned_first() -> None:
    framer = PduFramer(1024)
    good = encode_pdu(EnquireLink(sequence_number=1))
    assert framer.feed(good + struct.pack(">I", 3)[:2]) == [good]
    with pytest.raises(PduError):
        framer.feed(struct.pack(">I", 3)[2:])


def test_good_pdus_in_the_same_chunk_as_a_bad_length_are_not_lost() -> None:
    framer = PduFramer(1024)
    good = [encode_pdu(EnquireLink(sequence_number=1)), encode_pdu(EnquireLink(sequence_number=2))]
    bad = struct.pack(">IIII", 2000, CommandId.SUBMIT_SM, 0, 7)
    assert framer.feed(b"".join(good) + bad) == good
    assert framer.error is not None
    assert (framer.error.command_status, framer.error.sequence_number) == (CommandStatus.ESME_RINVCMDLEN, 7)
    with pytest.raises(PduError) as info:
        framer.feed(encode_pdu(EnquireLink(sequence_number=3)))
    assert info.value is framer.error


def test_a_bad_length_with_nothing_before_it_raises_at_once_and_on_every_later_feed() -> None:
    framer = PduFramer(1024)
    with pytest.raises(PduError):
        framer.feed(struct.pack(">IIII", 8, CommandId.ENQUIRE_LINK, 0, 1))
    with pytest.raises(PduError) as info:
        framer.feed(encode_pdu(EnquireLink(sequence_number=2)))
    assert info.value.sequence_number == 1


def test_feed_takes_bytearray() -> None:
    framer = PduFramer(1024)
    wire = encode_pdu(EnquireLink(sequence_number=4))
    out = framer.feed(bytearray(wire))
    assert out == [wire] and type(out[0]) is bytes


def test_peek_header() -> None:
    wire = encode_pdu(EnquireLink(sequence_number=12))
    assert peek_header(wire) == (16, CommandId.ENQUIRE_LINK, 0, 12)
    with pytest.raises(PduError):
        peek_header(wire[:15])
