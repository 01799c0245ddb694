"""The gateway as an ESME of an upstream SMSC (`smpp_server/upstream.py`) against a scripted SMSC double."""

from __future__ import annotations

import logging
import random
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme

from smsgw.config import UpstreamConfig
from smsgw.pdu.constants import CommandStatus
from smsgw.pdu.smpp import DataSm, DeliverSm, DeliverSmResp, Pdu, SubmitSm, SubmitSmResp, response_for
from smsgw.smpp_server.upstream import NotSent, Refused, SessionState, Submitted, SubmitResult, Upstream

from smsc_double import SmscDouble

SUBMIT = SubmitSm(sequence_number=0, source_addr="Acme", destination_addr="447700900123", short_message=b"hi")
CONFIG = UpstreamConfig(name="opA", system_id="gw", password="secret", window=3, throughput_per_s=1000.0,
                        response_timeout_s=5.0, bind_timeout_s=5.0, reconnect_delay_min_s=1.0,
                        reconnect_delay_max_s=8.0, submit_wait_s=5.0, throttled_pause_s=1.0)


class Sink:
    def __init__(self) -> None:
        self.delivered: list[tuple[str, DeliverSm | DataSm]] = []
        self.gate: trio.Event | None = None  # when set: deliveries wait for it (a slow store commit)

    async def deliver(self, upstream: str, pdu: DeliverSm | DataSm) -> int:
        if self.gate is not None:
            await self.gate.wait()
        self.delivered.append((upstream, pdu))
        return CommandStatus.ESME_ROK


@asynccontextmanager
async def upstream_to(smsc_options: dict[str, object] | None = None, **config: object) -> AsyncIterator[
        tuple[Upstream, SmscDouble, Sink]]:
    async with trio.open_nursery() as nursery:
        smsc = SmscDouble(nursery, **(smsc_options or {}))  # type: ignore[arg-type]
        sink = Sink()
        upstream = Upstream(replace(CONFIG, **config), random.Random(1), connect=smsc.connect)  # type: ignore[arg-type]
        await nursery.start(upstream.run, sink)
        yield upstream, smsc, sink
        nursery.cancel_scope.cancel()


async def wait_bound(upstream: Upstream) -> None:
    while not upstream.bound:
        await trio.sleep(0.01)


async def wait_all_bound(upstream: Upstream) -> None:
    while {s.state for s in upstream.status()} != {SessionState.BOUND}:
        await trio.sleep(0.01)


async def test_binds_and_submits_returning_the_smscs_message_id(autojump_clock: trio.testing.MockClock) -> None:
    async with upstream_to() as (upstream, smsc, _):
        await wait_bound(upstream)
        assert await upstream.submit(SUBMIT) == Submitted("1")
        assert await upstream.submit(SUBMIT) == Submitted("2")
        (bind,) = smsc.binds
        assert (type(bind).__name__, bind.system_id, bind.password) == ("BindTransceiver", "gw", "secret")
        assert [s.destination_addr for s in smsc.submits] == ["447700900123"] * 2
        assert [s.state for s in upstream.status()] == [SessionState.BOUND]


async def test_transmitter_plus_receiver_binds_two_per_session(autojump_clock: trio.testing.MockClock) -> None:
    async with upstream_to(bind="transmitter+receiver", sessions=2) as (upstream, smsc, _):
        await smsc.wait_for(lambda: len(smsc.ends) == 4 and all(e.bound_as for e in smsc.ends))
        assert sorted(type(b).__name__ for b in smsc.binds) == ["BindReceiver"] * 2 + ["BindTransmitter"] * 2
        assert [(s.session, s.bind) for s in upstream.status()] == [(0, "rx"), (0, "tx"), (1, "rx"), (1, "tx")]
        assert await upstream.submit(SUBMIT) == Submitted("1")


async def test_a_refused_bind_is_retried_with_backoff_and_logged_once(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "smsgw.smpp_server.upstream")
    async with upstream_to({"bind_status": CommandStatus.ESME_RBINDFAIL}) as (upstream, smsc, _):
        start = trio.current_time()
        await smsc.wait_for(lambda: len(smsc.binds) >= 5)
        # Backoff 1, 2, 4, 8 s (+-20 % jitter) between the five attempts.
        assert 15 * 0.8 - 0.1 <= trio.current_time() - start <= 15 * 1.2 + 0.1
        assert not upstream.bound
        assert await upstream.submit(SUBMIT) == NotSent("no bound session with room")
        warnings = [r.getMessage() for r in caplog.records if "not bound" in r.getMessage()]
        assert warnings == ["upstream not bound upstream=opA session=0 bind=trx problem=bind refused "
                            "command_status=0x0000000D"]
        smsc.bind_status = CommandStatus.ESME_ROK
        await wait_bound(upstream)
        assert await upstream.submit(SUBMIT) == Submitted("1")


async def test_connection_refused_then_smsc_comes_up(autojump_clock: trio.testing.MockClock) -> None:
    async with upstream_to() as (upstream, smsc, _):
        await wait_bound(upstream)
        smsc.refuse_connections = True
        await smsc.ends[0].drop()
        await trio.sleep(30)
        assert not upstream.bound
        (status,) = upstream.status()
        assert status.state is SessionState.BACKOFF and "connect failed" in status.last_error
        smsc.refuse_connections = False
        await wait_bound(upstream)


async def test_a_silent_smsc_times_out_each_submit(autojump_clock: trio.testing.MockClock) -> None:
    def silent(pdu: SubmitSm, smsc: SmscDouble) -> Pdu | None:
        return None

    async with upstream_to({"answer": silent}) as (upstream, smsc, _):
        await wait_bound(upstream)
        outcomes: list[object] = []

        async def submit() -> None:
            outcomes.append(await upstream.submit(SUBMIT))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(submit)
        assert outcomes == [NotSent("no submit_sm_resp", maybe_sent=True)] * 3
        assert len(smsc.submits) == 3
        assert upstream.submits == {SubmitResult.NOT_SENT: 3}
        (status,) = upstream.status()
        assert status.window_in_use == 0  # the timed-out requests left the window


async def test_a_drop_with_a_full_window_fails_every_outstanding_submit(autojump_clock: trio.testing.MockClock) -> None:
    def silent(pdu: SubmitSm, smsc: SmscDouble) -> Pdu | None:
        return None

    async with upstream_to({"answer": silent}, window=3) as (upstream, smsc, _):
        await wait_bound(upstream)
        outcomes: list[object] = []

        async def submit() -> None:
            outcomes.append(await upstream.submit(SUBMIT))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(submit)
            await smsc.wait_for(lambda: len(smsc.submits) == 3)
            assert upstream.status()[0].window_in_use == 3
            nursery.start_soon(submit)  # no room: waits for it, up to submit_wait_s
            await trio.sleep(0.5)
            await smsc.ends[0].drop()
        assert outcomes[:3] == [NotSent("connection lost with the submit_sm outstanding", maybe_sent=True)] * 3
        # The fourth found the upstream reconnected within its wait (backoff 1 s < submit_wait_s 5 s), but the
        # silent SMSC never answered it either.
        assert outcomes[3] == NotSent("no submit_sm_resp", maybe_sent=True)


async def test_throttling_slows_down_and_retries_the_same_upstream(autojump_clock: trio.testing.MockClock) -> None:
    throttled = {"left": 2}

    def throttling(pdu: SubmitSm, smsc: SmscDouble) -> Pdu:
        if throttled["left"]:
            throttled["left"] -= 1
            return response_for(pdu, command_status=CommandStatus.ESME_RTHROTTLED)
        return SubmitSmResp(sequence_number=pdu.sequence_number, message_id="ok")

    async with upstream_to({"answer": throttling}) as (upstream, smsc, _):
        await wait_bound(upstream)
        start = trio.current_time()
        assert await upstream.submit(SUBMIT) == Submitted("ok")
        assert len(smsc.submits) == 3
        assert trio.current_time() - start >= 1.0 + 2.0  # paused 1 s, then 2 s
        assert upstream.submits == {SubmitResult.THROTTLED: 2, SubmitResult.SUBMITTED: 1}


async def test_throttling_beyond_the_wait_returns_the_throttling_status(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def full(pdu: SubmitSm, smsc: SmscDouble) -> Pdu:
        return response_for(pdu, command_status=CommandStatus.ESME_RMSGQFUL)

    async with upstream_to({"answer": full}) as (upstream, _, _):
        await wait_bound(upstream)
        assert await upstream.submit(SUBMIT) == Refused(CommandStatus.ESME_RMSGQFUL)


async def test_a_permanent_refusal_is_returned_at_once(autojump_clock: trio.testing.MockClock) -> None:
    def invalid(pdu: SubmitSm, smsc: SmscDouble) -> Pdu:
        return response_for(pdu, command_status=CommandStatus.ESME_RINVDSTADR)

    async with upstream_to({"answer": invalid}) as (upstream, smsc, _):
        await wait_bound(upstream)
        assert await upstream.submit(SUBMIT) == Refused(CommandStatus.ESME_RINVDSTADR)
        assert len(smsc.submits) == 1
        assert upstream.submits == {SubmitResult.REFUSED: 1}


async def test_deliver_sm_resp_only_after_the_sink_stored_it(autojump_clock: trio.testing.MockClock) -> None:
    async with upstream_to() as (upstream, smsc, sink):
        await wait_bound(upstream)
        sink.gate = trio.Event()
        receipt = DeliverSm(sequence_number=0, esm_class=0x04, short_message=b"id:1 stat:DELIVRD err:000")
        sent = await smsc.deliver(receipt)
        await trio.sleep(1)
        assert smsc.responses == []  # the store has not committed yet
        sink.gate.set()
        await smsc.wait_for(lambda: bool(smsc.responses))
        ((request, response),) = smsc.responses
        assert request.sequence_number == sent.sequence_number
        assert isinstance(response, DeliverSmResp) and response.command_status == CommandStatus.ESME_ROK
        assert [(name, pdu.short_message) for name, pdu in sink.delivered] == [("opA", receipt.short_message)]


async def test_throughput_is_the_operators_rate_over_all_sessions(autojump_clock: trio.testing.MockClock) -> None:
    async with upstream_to(sessions=2, throughput_per_s=10.0, window=100) as (upstream, smsc, _):
        await smsc.wait_for(lambda: len(smsc.ends) == 2 and all(e.bound_as for e in smsc.ends))
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for _ in range(40):
                nursery.start_soon(upstream.submit, SUBMIT)
        # A burst of 10, then 10 a second: 30 more take 3 s (whatever the number of sessions).
        assert trio.current_time() - start >= 2.9
        assert len(smsc.submits) == 40


async def test_clean_unbind_at_shutdown(autojump_clock: trio.testing.MockClock) -> None:
    async with upstream_to(sessions=2) as (upstream, smsc, _):
        await wait_all_bound(upstream)
        await upstream.unbind_all()
        assert smsc.unbinds == 2
        await trio.sleep(60)
        assert len(smsc.binds) == 2  # no reconnect after the unbind
        assert {s.state for s in upstream.status()} == {SessionState.STOPPED}


async def test_over_real_sockets(nursery: trio.Nursery) -> None:
    smsc = SmscDouble(nursery)
    port = await nursery.start(smsc.serve)
    upstream = Upstream(replace(CONFIG, port=port))
    await nursery.start(upstream.run, Sink())
    with trio.fail_after(10):
        await wait_bound(upstream)
        assert await upstream.submit(SUBMIT) == Submitted("1")
        await upstream.unbind_all()
    assert smsc.unbinds == 1


@pytest.fixture
def smsc_tls(tmp_path: Path) -> tuple[ssl.SSLContext, Path, Path]:
    """A server context with a certificate for 127.0.0.1 from a CA made here; that CA's file; another CA's file."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    ca_path, other_path = tmp_path / "ca.pem", tmp_path / "other-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    trustme.CA().cert_pem.write_to_path(str(other_path))
    return server, ca_path, other_path


async def test_over_tls_verifying_the_smscs_certificate(
    nursery: trio.Nursery, smsc_tls: tuple[ssl.SSLContext, Path, Path]
) -> None:
    server, ca_path, _ = smsc_tls
    smsc = SmscDouble(nursery)
    port = await nursery.start(smsc.serve, server)
    upstream = Upstream(replace(CONFIG, port=port, tls=True, tls_ca_path=str(ca_path)))
    await nursery.start(upstream.run, Sink())
    with trio.fail_after(10):
        await wait_bound(upstream)
        assert await upstream.submit(SUBMIT) == Submitted("1")
        await upstream.unbind_all()
    assert smsc.unbinds == 1


async def test_an_smsc_certificate_from_another_ca_is_refused(
    nursery: trio.Nursery, smsc_tls: tuple[ssl.SSLContext, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    server, _, other_path = smsc_tls
    smsc = SmscDouble(nursery)
    port = await nursery.start(smsc.serve, server)
    upstream = Upstream(replace(CONFIG, port=port, tls=True, tls_ca_path=str(other_path), reconnect_delay_min_s=0.05,
                                reconnect_delay_max_s=0.05))
    await nursery.start(upstream.run, Sink())
    with trio.fail_after(10):
        while not upstream.status()[0].last_error:
            await trio.sleep(0.01)
    (status,) = upstream.status()
    assert status.state in (SessionState.BACKOFF, SessionState.CONNECTING) and "CERTIFICATE_VERIFY_FAILED" in \
        status.last_error, status
    assert smsc.binds == []
    await upstream.unbind_all()
