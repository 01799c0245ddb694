"""Submissions the backend has stored are acknowledged before the connection ends: an ESME that unbinds (or
half-closes, or is unbound at shutdown) right after submitting gets every submit_sm_resp, before unbind_resp.

The backend stores a batch and then holds its answer until the test lets it proceed, so the unbind/EOF provably
arrives while the batch is pending. The clock stands still (no autojump) until the test lets it run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Final

import pytest
import trio
import trio.testing

from smsgw.pdu.constants import CommandId, CommandStatus
from smsgw.pdu.smpp import DataSm, Pdu, SubmitSm, SubmitSmResp, Unbind, encode_pdu, response_for
from smsgw.smpp_server.backend import BackendError
from smsgw.smpp_server.server import SmppServer
from smsgw.smpp_server.session import ConnectionClosed, RequestReceived, ResponseReceived, UnexpectedResponse
from smsgw.smpp_server.throttle import Throttle

from smpp_backend_double import DoubleBackend
from smpp_harness import SUBMIT, Client, make_config, running_server

N = 5
# Written raw, behind the ESME core's back (it would refuse to send anything after it): its unbind_resp reaches
# the test as an unexpected response, which `_until_closed` keeps like any other.
_UNBIND: Final = encode_pdu(Unbind(sequence_number=900))


@dataclass
class HeldBackend(DoubleBackend):
    """Stores each batch at once (as a committed transaction), answers it only after `proceed` is set."""

    entered: trio.Event = field(default_factory=trio.Event)
    proceed: trio.Event = field(default_factory=trio.Event)

    async def submit_many(
        self, account: str, pdus: Sequence[SubmitSm | DataSm], throttle: Throttle
    ) -> list[str | BackendError]:
        results = await super().submit_many(account, pdus, throttle)
        self.entered.set()
        await self.proceed.wait()
        return results


def _numbered(client: Client, pdus: Sequence[Pdu]) -> bytes:
    """Encode requests as our ESME core would send them, to be written in one piece (one read at the server)."""
    now = trio.current_time()
    return b"".join(
        client.session.send(replace(pdu, sequence_number=client.session.new_sequence_number()), now) for pdu in pdus
    )


def _submissions() -> list[Pdu]:
    return [replace(SUBMIT, destination_addr=f"44770090010{n}") for n in range(N)]


def _stored_ids(backend: DoubleBackend) -> list[str]:
    return list(backend.owners)


async def _until_closed(client: Client) -> list[Pdu]:
    """Every PDU the server sends until it closes (requests and responses, in wire order)."""
    received: list[Pdu] = []
    while not isinstance(event := await client.event(), ConnectionClosed):
        if isinstance(event, ResponseReceived):
            received.append(event.response)
        elif isinstance(event, UnexpectedResponse):  # the answer to a request our ESME core did not send
            received.append(event.pdu)
        else:
            assert isinstance(event, RequestReceived), event
            received.append(event.pdu)
    return received


async def _nothing_sent_yet(client: Client) -> None:
    await trio.testing.wait_all_tasks_blocked()
    with pytest.raises(trio.WouldBlock):
        client._events_out.receive_nowait()


async def _held_client(server: SmppServer, nursery: trio.Nursery, backend: HeldBackend, after: bytes = b"") -> Client:
    """A bound ESME whose N submissions (followed in the same write by `after`) are stored and held."""
    client = Client(server, nursery)
    await client.bind()
    await client.send_raw(_numbered(client, _submissions()) + after)
    await backend.entered.wait()
    return client


def _assert_all_acknowledged_then(received: list[Pdu], backend: DoubleBackend, *last: int) -> None:
    submit_responses = [pdu for pdu in received if isinstance(pdu, SubmitSmResp)]
    assert [pdu.command_status for pdu in submit_responses] == [CommandStatus.ESME_ROK] * N
    assert sorted(pdu.message_id for pdu in submit_responses) == sorted(_stored_ids(backend))
    assert [pdu.command_id for pdu in received] == [CommandId.SUBMIT_SM_RESP] * N + list(last)


@pytest.mark.parametrize("same_read", [True, False], ids=["unbind_in_same_read", "unbind_while_batch_waits"])
async def test_unbind_answers_stored_submissions_first(mock_clock: trio.testing.MockClock, same_read: bool) -> None:
    backend = HeldBackend()
    async with running_server(make_config(), backend) as server, trio.open_nursery() as nursery:
        if same_read:
            client = await _held_client(server, nursery, backend, _UNBIND)
        else:
            client = await _held_client(server, nursery, backend)
            await client.send_raw(_UNBIND)
        await _nothing_sent_yet(client)  # not even unbind_resp: the batch is still waiting for the backend
        assert len(backend.submitted) == N
        backend.proceed.set()
        received = await _until_closed(client)
        _assert_all_acknowledged_then(received, backend, CommandId.UNBIND_RESP)
        assert backend.batches == [N]


async def test_requests_after_unbind_in_the_same_read_are_refused_not_stored(
    mock_clock: trio.testing.MockClock,
) -> None:
    backend = HeldBackend()
    async with running_server(make_config(), backend) as server, trio.open_nursery() as nursery:
        # Our ESME core would not send it; an ESME that pipelines past its own unbind does.
        late = encode_pdu(replace(SUBMIT, sequence_number=999, destination_addr="447700900199"))
        client = await _held_client(server, nursery, backend, _UNBIND + late)
        backend.proceed.set()
        received = await _until_closed(client)
        assert [pdu.destination_addr for _, pdu in backend.submitted] == [  # type: ignore[union-attr]
            f"44770090010{n}" for n in range(N)
        ]
        refused = [pdu for pdu in received if pdu.command_status == CommandStatus.ESME_RINVBNDSTS]
        assert [pdu.sequence_number for pdu in refused] == [999]
        _assert_all_acknowledged_then([pdu for pdu in received if pdu not in refused], backend, CommandId.UNBIND_RESP)


async def test_half_close_after_submitting_still_gets_the_acknowledgements(mock_clock: trio.testing.MockClock) -> None:
    backend = HeldBackend()
    async with running_server(make_config(), backend) as server, trio.open_nursery() as nursery:
        client = await _held_client(server, nursery, backend)
        await client.stream.send_eof()
        await _nothing_sent_yet(client)
        backend.proceed.set()
        _assert_all_acknowledged_then(await _until_closed(client), backend)


async def test_shutdown_unbind_answers_pending_submissions_before_closing(mock_clock: trio.testing.MockClock) -> None:
    backend = HeldBackend()
    async with running_server(make_config(), backend) as server, trio.open_nursery() as nursery:
        client = await _held_client(server, nursery, backend)
        nursery.start_soon(server.drain)
        unbind = await client.event()
        assert isinstance(unbind, RequestReceived) and unbind.pdu.command_id == CommandId.UNBIND
        await client.send(response_for(unbind.pdu))
        await _nothing_sent_yet(client)  # the unbind_resp does not close the connection under the pending batch
        backend.proceed.set()
        _assert_all_acknowledged_then(await _until_closed(client), backend)


async def test_a_backend_that_never_answers_delays_unbind_resp_only_up_to_the_response_timeout(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    backend = HeldBackend()  # never released
    config = make_config()
    async with running_server(config, backend) as server, trio.open_nursery() as nursery:
        client = Client(server, nursery)
        await client.bind()
        await client.send_raw(_numbered(client, _submissions()) + _UNBIND)
        started = trio.current_time()
        with caplog.at_level(logging.WARNING, logger="smsgw.smpp_server.server"):
            received = await _until_closed(client)
            assert [pdu.command_id for pdu in received] == [CommandId.UNBIND_RESP]
            assert trio.current_time() - started == pytest.approx(config.smpp.response_timeout_s)
            assert "closing with requests unanswered" in caplog.text and f"pending={N}" in caplog.text
            backend.proceed.set()  # the late answer finds the connection gone: logged, not silently dropped
            await trio.testing.wait_all_tasks_blocked()
        assert "stored submissions not acknowledged" in caplog.text and f"count={N}" in caplog.text
        nursery.cancel_scope.cancel()
