"""Random and mutated PDUs against a live server: every answer is a valid PDU, the connection is answered or
closed (never hangs: the session timers guarantee an end), the server survives and another session is unaffected.
Over memory streams with hypothesis (shrinking), and over real sockets with the seeded mutator of
`python -m smsgw.bench fuzz` (its longer runs)."""

from __future__ import annotations

import functools
import logging
import random

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smsgw.bench.fuzz import drive, fuzz_config, mutate, seed_pdus
from smsgw.bench.smpp import AcceptAllBackend
from smsgw.pdu.constants import CommandId
from smsgw.pdu.framing import PduFramer
from smsgw.pdu.smpp import EnquireLink, EnquireLinkResp, decode_pdu, encode_pdu
from smsgw.smpp_server.server import SmppListeners, serve_smpp

from smpp_backend_double import DoubleBackend
from smpp_harness import PASSWORD, SUBMIT, Client, make_config, running_server

SEEDS = seed_pdus("acme", PASSWORD)
BIND = SEEDS[0]

mutated = st.builds(lambda rng: mutate(rng, SEEDS), st.randoms(use_true_random=False))
fuzz_input = st.lists(st.one_of(mutated, st.binary(max_size=200)), min_size=1, max_size=4)


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


@pytest.mark.parametrize("seed", [1, 2])
async def test_seeded_fuzz_over_real_sockets_while_a_good_session_submits(
    seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with trio.open_nursery() as nursery:
        stopped = trio.Event()
        serve = functools.partial(serve_smpp, shutdown_trigger=stopped)
        listeners: SmppListeners = await nursery.start(serve, fuzz_config(300), AcceptAllBackend())
        with trio.fail_after(60):  # a hang guard: the run takes about a second
            report = await drive(listeners.port, 300, seed)
        stopped.set()
    assert report.failures == []
    assert report.inputs == 300 and report.answers > 0 and report.good_submits > 0
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert logged == [], [r.getMessage() for r in logged]
    # Every fuzz connection had ended by the stop: the drain found none to wait for.
    assert not any("grace over" in r.getMessage() for r in caplog.records)


def test_the_seeded_mutator_replays_its_inputs() -> None:
    first, again = random.Random(5), random.Random(5)
    inputs = [mutate(first, SEEDS) for _ in range(50)]
    assert inputs == [mutate(again, SEEDS) for _ in range(50)]
    assert len(set(inputs)) > 25  # and they do differ from one another
