"""Property tests: every PDU round-trips, the hand-written fast path equals the construct declaration octet for
octet (and error for error), and no input makes the codec or the framer raise anything but PduError."""

from __future__ import annotations

import struct
from dataclasses import fields, replace
from datetime import datetime, timedelta, timezone
from typing import Any, cast

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from smsgw.pdu import _smpp_schema as schema
from smsgw.pdu.constants import HEADER_LENGTH, CommandStatus, is_response
from smsgw.pdu.errors import PduError
from smsgw.pdu.framing import PduFramer
from smsgw.pdu.smpp import (
    PDU_CLASSES,
    AlertNotification,
    DataSm,
    DeliverSm,
    DeliverSmResp,
    DistributionList,
    EnquireLink,
    EnquireLinkResp,
    Pdu,
    SmeAddress,
    SubmitSm,
    SubmitSmResp,
    UnsuccessSme,
    decode_pdu,
    encode_pdu,
    schema_decode_body,
    schema_encode_body,
)
from smsgw.pdu.smpp_time import format_absolute, format_relative
from smsgw.pdu.tlv import SPECS_BY_TAG, TLV_SPECS, RawTlv, Tlvs

HOT_CLASSES = (SubmitSm, DeliverSm, SubmitSmResp, DeliverSmResp, EnquireLink, EnquireLinkResp)
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_octet = st.integers(0, 255)


def _cstring(max_length: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=max_length - 1)


_moment = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30), timezones=st.just(timezone.utc)
).map(lambda d: d.replace(microsecond=d.microsecond // 100_000 * 100_000))
_offset = st.integers(-48, 48).map(lambda q: timezone(timedelta(minutes=15 * q)))
_time = st.one_of(
    st.just(""),
    st.builds(lambda m, tz: format_absolute(m.astimezone(tz)), _moment, _offset),
    st.builds(lambda s: format_relative(timedelta(seconds=s)), st.integers(0, 99 * 365 * 86400)),
)


def _tlv_value(kind: str, min_length: int, max_length: int) -> st.SearchStrategy[Any]:
    if kind in ("u8", "u16", "u32"):
        return st.integers(0, (1 << (8 * max_length)) - 1)
    if kind == "flag":
        return st.just(True)
    if kind == "cstr":
        return _cstring(max_length)
    return st.binary(min_size=min_length, max_size=min(max_length, 300))


@st.composite
def tlvs(draw: st.DrawFn) -> Tlvs:
    specs = draw(st.lists(st.sampled_from(TLV_SPECS), max_size=5, unique=True))
    values = {s.name: draw(_tlv_value(s.kind, s.min_length, s.max_length)) for s in specs}
    if any(name.startswith("sar_") for name in values):
        values.update(sar_msg_ref_num=draw(st.integers(0, 0xFFFF)), sar_total_segments=draw(_octet),
                      sar_segment_seqnum=draw(_octet))  # fmt: skip
    unknown_tags = st.integers(0, 0xFFFF).filter(lambda tag: tag not in SPECS_BY_TAG)
    unknown = draw(st.lists(st.builds(RawTlv, unknown_tags, st.binary(max_size=20)), max_size=2))
    return Tlvs(**values, unknown=tuple(unknown))


_LONG_ADDRESS_CLASSES = (DataSm, AlertNotification)
_STRING_MAX = {
    "system_id": 16, "password": 9, "system_type": 13, "address_range": 41, "service_type": 6,
    "source_addr": 21, "destination_addr": 21, "esme_addr": 65, "message_id": 65,
}  # fmt: skip


def _field_strategy(cls: type[Pdu], name: str) -> st.SearchStrategy[Any]:
    if name in ("schedule_delivery_time", "validity_period", "final_date"):
        return _time
    if name == "short_message":
        return st.binary(max_size=254)
    if name == "tlvs":
        return tlvs()
    if name == "destinations":
        sme = st.builds(SmeAddress, _octet, _octet, _cstring(21))
        return st.lists(st.one_of(sme, st.builds(DistributionList, _cstring(21))), min_size=1, max_size=4).map(tuple)
    if name == "unsuccess_sme":
        entry = st.builds(UnsuccessSme, _octet, _octet, _cstring(21), st.integers(0, 0xFFFFFFFF))
        return st.lists(entry, max_size=3).map(tuple)
    if name in _STRING_MAX:
        long_address = cls in _LONG_ADDRESS_CLASSES and name in ("source_addr", "destination_addr")
        return _cstring(65 if long_address else _STRING_MAX[name])
    return _octet


def pdus(cls: type[Pdu]) -> st.SearchStrategy[Pdu]:
    body = {f.name: _field_strategy(cls, f.name) for f in fields(cls) if f.name not in ("sequence_number", "command_status")}
    status = st.integers(0, 0xFFFFFFFF) if is_response(cls.command_id) else st.just(0)
    return st.builds(cls, sequence_number=st.integers(0, 0xFFFFFFFF), command_status=status, **body)


any_pdu = st.one_of([pdus(cls) for cls in PDU_CLASSES.values()])
hot_pdu = st.one_of([pdus(cls) for cls in HOT_CLASSES])


@EXAMPLES
@given(any_pdu)
def test_every_pdu_round_trips(pdu: Pdu) -> None:
    wire = encode_pdu(pdu)
    assert struct.unpack_from(">I", wire)[0] == len(wire)
    assert decode_pdu(wire) == pdu
    assert encode_pdu(decode_pdu(wire)) == wire


def _outcome(call: Any, *args: Any) -> tuple[str, Any]:
    try:
        return ("ok", call(*args))
    except PduError as exc:
        return ("error", exc.command_status)


@EXAMPLES
@given(hot_pdu)
def test_fast_encoder_matches_construct(pdu: Pdu) -> None:
    wire = encode_pdu(pdu)
    header = {"command_length": len(wire), "command_id": pdu.command_id, "command_status": pdu.command_status,
              "sequence_number": pdu.sequence_number}  # fmt: skip
    assert wire[:HEADER_LENGTH] == schema.HEADER.build(header)
    if len(wire) > HEADER_LENGTH or not pdu.command_status:
        assert wire[HEADER_LENGTH:] == schema_encode_body(pdu)


def _with_body(wire: bytes, body: bytes) -> bytes:
    return struct.pack(">I", HEADER_LENGTH + len(body)) + wire[4:HEADER_LENGTH] + body


@st.composite
def mutated_hot_wire(draw: st.DrawFn) -> bytes:
    """A valid hot PDU with its body cut, spliced or overwritten, and command_length fixed to match."""
    wire = encode_pdu(draw(hot_pdu))
    body = bytearray(wire[HEADER_LENGTH:])
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "zero", "extend"]))
        at = draw(st.integers(0, len(body)))
        if action == "flip" and at < len(body):
            body[at] = draw(_octet)
        elif action == "cut":
            del body[at:]
        elif action == "insert":
            body[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "zero" and at < len(body):
            body[at] = 0
        elif action == "extend":
            body += draw(st.binary(max_size=12))
    return _with_body(wire, bytes(body))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_hot_wire())
def test_fast_decoder_matches_construct_on_any_body(wire: bytes) -> None:
    _, command_id, command_status, sequence_number = struct.unpack_from(">IIII", wire)
    cls = PDU_CLASSES[command_id]
    assume(len(wire) > HEADER_LENGTH or not is_response(command_id))  # absent response bodies skip both paths
    fast = _outcome(decode_pdu, wire)
    reference = _outcome(schema_decode_body, cls, wire, command_status, sequence_number)
    assert fast == reference


def _field_octets(limit: int) -> st.SearchStrategy[bytes]:
    """A C-octet string's octets at, below or past its limit (NUL excluded), mostly with the NUL that ends it."""
    length = st.sampled_from([0, 1, limit - 1, limit, limit, limit + 1])
    ended = st.sampled_from([True] * 9 + [False])
    return st.tuples(length, ended).map(lambda t: b"7" * t[0] + (b"\0" if t[1] else b""))


_TIMES = st.sampled_from([b""] * 4 + [b"000000000100000R", b"201231235959104+", b"20123123595910", b"x" * 16])


@st.composite
def _short_message_wire(draw: st.DrawFn) -> bytes:
    """A submit_sm/deliver_sm built field by field with lengths at and past each limit, sometimes cut short."""
    body = (
        draw(_field_octets(5)) + draw(st.binary(min_size=2, max_size=2)) + draw(_field_octets(20))
        + draw(st.binary(min_size=2, max_size=2)) + draw(_field_octets(20)) + draw(st.binary(min_size=3, max_size=3))
        + draw(_TIMES) + b"\0" + draw(_TIMES) + b"\0" + draw(st.binary(min_size=4, max_size=4))
    )
    short_message = draw(st.binary(max_size=260))
    body += bytes([draw(st.sampled_from([len(short_message) % 256, draw(_octet)]))]) + short_message
    body += draw(st.sampled_from([b"", b"\x04\x24\x00\x01a", draw(st.binary(max_size=8))]))
    if draw(st.integers(0, 7)) == 0:
        body = body[: draw(st.integers(0, len(body)))]
    return struct.pack(">IIII", HEADER_LENGTH + len(body), SubmitSm.command_id, 0, 7) + body


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([SubmitSm, DeliverSm]), _short_message_wire())
def test_short_message_layout_decodes_as_construct(cls: type[SubmitSm | DeliverSm], wire: bytes) -> None:
    """The one-regex decoder of submit_sm/deliver_sm (and the field walk naming what breaks its layout) against the
    construct declaration, on bodies built with every string at, below and past its limit."""
    wire = wire[:4] + struct.pack(">I", cls.command_id) + wire[8:]
    assert _outcome(decode_pdu, wire) == _outcome(schema_decode_body, cls, wire, 0, 7)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_octets_only_raise_pdu_error(data: bytes) -> None:
    try:
        decode_pdu(data)
    except PduError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(PDU_CLASSES)), st.integers(0, 0xFFFFFFFF), st.binary(max_size=200))
def test_random_bodies_of_every_command_only_raise_pdu_error(command_id: int, sequence: int, body: bytes) -> None:
    wire = struct.pack(">IIII", HEADER_LENGTH + len(body), command_id, 0, sequence) + body
    try:
        decode_pdu(wire)
    except PduError as exc:
        assert exc.sequence_number == sequence
        assert exc.command_status != CommandStatus.ESME_ROK


@EXAMPLES
@given(any_pdu, st.data())
def test_mutated_pdus_of_every_command_only_raise_pdu_error(pdu: Pdu, data: st.DataObject) -> None:
    wire = bytearray(encode_pdu(pdu))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(wire) - 1))
        wire[at] = data.draw(_octet)
    if data.draw(st.booleans()):
        wire[:4] = struct.pack(">I", len(wire))
    try:
        decode_pdu(bytes(wire))
    except PduError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=10), st.integers(16, 2048))
def test_framer_only_raises_pdu_error(chunks: list[bytes], max_length: int) -> None:
    framer = PduFramer(max_length)
    try:
        for chunk in chunks:
            for pdu in framer.feed(chunk):
                assert HEADER_LENGTH <= len(pdu) <= max_length
                assert struct.unpack_from(">I", pdu)[0] == len(pdu)
    except PduError as exc:
        assert exc.command_status == CommandStatus.ESME_RINVCMDLEN


@EXAMPLES
@given(st.lists(any_pdu, min_size=1, max_size=5), st.integers(1, 40))
def test_framer_returns_encoded_pdus_whatever_the_chunking(items: list[Pdu], chunk: int) -> None:
    wires = [encode_pdu(p) for p in items]
    stream = b"".join(wires)
    framer = PduFramer(70000)
    out: list[bytes] = []
    for i in range(0, len(stream), chunk):
        out += framer.feed(stream[i : i + chunk])
    assert out == wires


_bad_values = st.one_of(st.integers(-5, -1), st.integers(256, 1 << 40), st.text(max_size=3), st.none(), st.binary(max_size=3))


@EXAMPLES
@given(any_pdu, st.data())
def test_encoding_a_bad_field_only_raises_pdu_error(pdu: Pdu, data: st.DataObject) -> None:
    names = [f.name for f in fields(pdu)]
    name = data.draw(st.sampled_from(names))
    bad = replace(pdu, **cast(dict[str, Any], {name: data.draw(_bad_values)}))
    try:
        encode_pdu(bad)
    except PduError:
        pass
