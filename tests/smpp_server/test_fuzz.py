"""Random and mutated PDUs against a live server: every answer is a valid PDU, the connection is answered or
closed (never hangs: the session timers guarantee an end), the server survives and another session is unaffected."""

from __future__ import annotations

import struct
from dataclasses import replace

import trio
import trio.testing
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smsgw.pdu.constants import CommandId
from smsgw.pdu.framing import PduFramer
from smsgw.pdu.smpp import (
    BindTransceiver,
    BindTransmitter,
    CancelSm,
    DataSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Outbind,
    QuerySm,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    Unbind,
    decode_pdu,
    encode_pdu,
)
from smsgw.pdu.tlv import Tlvs

from smpp_backend_double import DoubleBackend
from smpp_harness import PASSWORD, SUBMIT, Client, make_config, running_server

SEEDS = [
    encode_pdu(pdu)
    for pdu in (
        BindTransmitter(sequence_number=1, system_id="acme", password=PASSWORD),
        BindTransceiver(sequence_number=1, system_id="acme", password="nope"),
        replace(SUBMIT, sequence_number=2),
        replace(SUBMIT, sequence_number=3, short_message=b"", tlvs=Tlvs(message_payload=b"x" * 300)),
        SubmitMulti(sequence_number=4, destinations=(SmeAddress(1, 1, "447700900002"),), short_message=b"m"),
        DataSm(sequence_number=5, destination_addr="447700900002", tlvs=Tlvs(message_payload=b"d")),
        QuerySm(sequence_number=6, message_id="m1"),
        CancelSm(sequence_number=7, message_id="m1"),
        ReplaceSm(sequence_number=8, message_id="m1", short_message=b"r"),
        DeliverSmResp(sequence_number=9),
        GenericNack(sequence_number=10),
        Outbind(sequence_number=11, system_id="x"),
        EnquireLink(sequence_number=12),
        Unbind(sequence_number=13),
    )
]
BIND = SEEDS[0]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        match draw(st.sampled_from(["flip", "truncate", "length", "command_id", "append"])):
            case "flip" if data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
            case "truncate":
                del data[draw(st.integers(0, len(data))) :]
            case "length" if len(data) >= 4:
                struct.pack_into(">I", data, 0, draw(st.sampled_from([0, 15, 16, len(data) - 1, len(data) + 3, 0xFFFFFFFF])))
            case "command_id" if len(data) >= 8:
                struct.pack_into(">I", data, 4, draw(st.sampled_from([*map(int, CommandId), 0x999, 0x80000999])))
            case "append":
                data += draw(st.binary(max_size=40))
    return bytes(data)


fuzz_input = st.lists(st.one_of(mutated(), st.binary(max_size=200)), min_size=1, max_size=4)


async def fuzz_connection(server: object, nursery: trio.Nursery, chunks: list[bytes], bind_first: bool) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    nursery.start_soon(server.handle_connection, theirs, ("198.51.100.1", 1))  # type: ignore[attr-defined]
    probe = encode_pdu(EnquireLink(sequence_number=0x7FFFFFFE))
    try:
        await ours.send_all((BIND if bind_first else b"") + b"".join(chunks) + probe)
    except trio.BrokenResourceError:
        return  # the server already closed on a broken header: that is a clean end
    framer = PduFramer(1 << 20)
    # A PDU whose length runs past the garbage swallows the probe; the link is then kept up a few rounds and left
    # to the server's response timeout (with inactivity off, answering every enquire_link would never end).
    keepalives_left = 3
    while True:
        data = await ours.receive_some(65536)
        if not data:
            return  # closed by the server
        for frame in framer.feed(bytes(data)):
            answer = decode_pdu(frame)  # everything the server says must be a valid PDU
            if answer.command_id == CommandId.ENQUIRE_LINK_RESP and answer.sequence_number == 0x7FFFFFFE:
                await ours.aclose()
                return
            if answer.command_id == CommandId.ENQUIRE_LINK and keepalives_left:  # bound by the fuzz
                keepalives_left -= 1
                await ours.send_all(encode_pdu(EnquireLinkResp(sequence_number=answer.sequence_number)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=fuzz_input, bind_first=st.booleans())
# An enquire_link whose length runs into the probe: the connection ends by the response timeout, not the probe.
@example(chunks=[b"\x00\x00\x00\x1a\x00\x00\x00\x15", b"Y\xc1"], bind_first=True)
async def test_garbage_is_answered_or_closed_and_others_unaffected(
    autojump_clock: trio.testing.MockClock, chunks: list[bytes], bind_first: bool
) -> None:
    backend = DoubleBackend()
    # A refused password is checked in a worker thread, during which the autojumping clock races through every
    # timer; without the inactivity timer the victim (which answers enquire_link) stays bound through it.
    config = make_config(inactivity_timeout_s=0.0)
    async with running_server(config, backend) as server, trio.open_nursery() as nursery:
        victim = Client(server, nursery, ("127.0.0.1", 2))
        await victim.bind()
        await fuzz_connection(server, nursery, chunks, bind_first)
        assert (await victim.request(SUBMIT)).command_status == 0
        nursery.cancel_scope.cancel()
