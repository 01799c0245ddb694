"""The Trio layer over memory streams with an autojumping MockClock: binds, operations, timers, push, shutdown."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import trio
import trio.testing

from smsgw.config import AccountConfig, Config
from smsgw.pdu.constants import CommandId, CommandStatus, MessageState
from smsgw.pdu.smpp import (
    decode_pdu,
    encode_pdu,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CancelSm,
    DataSm,
    DeliverSm,
    EnquireLink,
    GenericNack,
    QuerySm,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    Unbind,
    response_for,
)
from smsgw.pdu.tlv import Tlvs
from smsgw.smpp_server.audit import AuditLog
from smsgw.smpp_server.backend import OutboundItem
from smsgw.smpp_server.server import SmppConnection, SmppServer
from smsgw.smpp_server.session import RequestReceived, ResponseReceived, UnexpectedResponse
from smsgw.smpp_server.states import BOUND, BindState

from smpp_backend_double import DoubleBackend
from smpp_harness import PASSWORD, SUBMIT, Client, make_config, running_server



def bound_connections(server: SmppServer) -> list[SmppConnection]:
    return [c for c in server.connections if c.session.state in BOUND]


def receipt(n: int) -> OutboundItem:
    return OutboundItem(f"r{n}", "acme", DeliverSm(sequence_number=0, esm_class=0x04, short_message=f"id:{n}".encode()))


async def test_bind_submit_query_cancel_replace(autojump_clock: trio.testing.MockClock) -> None:
    backend = DoubleBackend()
    async with running_server(make_config(), backend) as server, trio.open_nursery() as nursery:
        client = Client(server, nursery)
        bound = await client.bind()
        assert bound.command_status == CommandStatus.ESME_ROK
        assert bound.system_id == "smsgw"  # type: ignore[attr-defined]
        assert bound.tlvs.sc_interface_version == 0x34  # type: ignore[attr-defined]
        submitted = await client.request(SUBMIT)
        assert submitted.command_status == 0 and submitted.message_id == "m1"  # type: ignore[attr-defined]
        assert backend.submitted == [("acme", replace(SUBMIT, sequence_number=2))]
        data = await client.request(DataSm(sequence_number=0, destination_addr="447700900003", dest_addr_ton=1,
                                           dest_addr_npi=1, tlvs=Tlvs(message_payload=b"hi")))
        assert data.command_id == CommandId.DATA_SM_RESP and data.message_id == "m2"  # type: ignore[attr-defined]
        query = await client.request(QuerySm(sequence_number=0, message_id="m1", source_addr="447700900001"))
        assert query.message_state == MessageState.ENROUTE  # type: ignore[attr-defined]
        cancel = await client.request(CancelSm(sequence_number=0, message_id="m1"))
        assert cancel.command_status == 0
        assert backend.cancelled == ["m1"]
        refused = await client.request(ReplaceSm(sequence_number=0, message_id="m99", short_message=b"x"))
        assert refused.command_status == CommandStatus.ESME_RREPLACEFAIL
        unknown = await client.request(QuerySm(sequence_number=0, message_id="m77"))
        assert unknown.command_status == CommandStatus.ESME_RQUERYFAIL
        await client.request(Unbind(sequence_number=0))
        await client.wait_closed()
        nursery.cancel_scope.cancel()


async def test_submit_multi_reports_unsuccessful_destinations(autojump_clock: trio.testing.MockClock) -> None:
    backend = DoubleBackend(refuse_destinations={"447700922000"})
    async with running_server(make_config(), backend) as server, trio.open_nursery() as nursery:
        client = Client(server, nursery)
        await client.bind()
        multi = SubmitMulti(
            sequence_number=0,
            destinations=(
                SmeAddress(1, 1, "447700900002"),
                SmeAddress(1, 1, "not a number"),
                SmeAddress(1, 1, "447700922000"),
            ),
            short_message=b"hi all",
        )
        response = await client.request(multi)
        assert response.command_status == 0
        assert [(u.destination_addr, u.error_status_code) for u in response.unsuccess_sme] == [  # type: ignore[attr-defined]
            ("not a number", CommandStatus.ESME_RINVDSTADR),
            ("447700922000", CommandStatus.ESME_RINVDSTADR),
        ]
        ((_, sent),) = backend.submitted
        assert isinstance(sent, SubmitMulti) and len(sent.destinations) == 2
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("system_id", "password", "status"),
    [("acme", "wrong", CommandStatus.ESME_RINVPASWD), ("nobody", PASSWORD, CommandStatus.ESME_RINVSYSID)],
)
async def test_failed_bind_is_delayed_audited_and_closed(
    autojump_clock: trio.testing.MockClock, system_id: str, password: str, status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="smsgw.audit")
    async with running_server(make_config(), DoubleBackend()) as server, trio.open_nursery() as nursery:
        delays = []
        for attempt in range(3):
            client = Client(server, nursery, peer=("192.0.2.7", 5000 + attempt))
            start = trio.current_time()
            response = await client.bind(BindTransmitter(sequence_number=0, system_id=system_id, password=password))
            delays.append(trio.current_time() - start)
            assert response.command_status == status
            await client.wait_closed()
        assert delays == [0.5, 1.0, 2.0]
        assert server.login.guard.is_locked_out("192.0.2.7", system_id, trio.current_time()) is False
        records = [r.getMessage() for r in caplog.records if r.name == "smsgw.audit"]
        assert len(records) == 3 and all("source=192.0.2.7:" in r and "event=bind" in r for r in records)
        nursery.cancel_scope.cancel()


async def test_lockout_refuses_even_the_right_password_of_that_account_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    base = make_config(bind_lockout_failures=2, bind_failure_delay_base_s=0.1)
    config = Config(smpp=base.smpp, accounts=(base.accounts[0], replace(base.accounts[0], system_id="other")))
    async with running_server(config, DoubleBackend()) as server, trio.open_nursery() as nursery:
        server.accounts.check_password(config.accounts[1], PASSWORD)
        for port in range(2):
            client = Client(server, nursery, peer=("192.0.2.8", port))
            await client.bind(BindTransmitter(sequence_number=0, system_id="acme", password="wrong"))
        client = Client(server, nursery, peer=("192.0.2.8", 2))
        assert (await client.bind()).command_status == CommandStatus.ESME_RBINDFAIL
        elsewhere = Client(server, nursery, peer=("192.0.2.9", 2))
        assert (await elsewhere.bind()).command_status == CommandStatus.ESME_ROK
        # Another account behind the same address (a NAT) is not locked out with it.
        neighbour = Client(server, nursery, peer=("192.0.2.8", 3))
        bind_other = BindTransceiver(sequence_number=0, system_id="other", password=PASSWORD)
        assert (await neighbour.bind(bind_other)).command_status == CommandStatus.ESME_ROK
        nursery.cancel_scope.cancel()


async def test_address_is_locked_out_after_failures_over_all_accounts(autojump_clock: trio.testing.MockClock) -> None:
    config = make_config(bind_lockout_failures=100, bind_lockout_address_failures=3, bind_failure_delay_base_s=0.1)
    async with running_server(config, DoubleBackend()) as server, trio.open_nursery() as nursery:
        for n in range(3):
            client = Client(server, nursery, peer=("192.0.2.8", n))
            await client.bind(BindTransmitter(sequence_number=0, system_id=f"guess{n}", password="wrong"))
        client = Client(server, nursery, peer=("192.0.2.8", 9))
        assert (await client.bind()).command_status == CommandStatus.ESME_RBINDFAIL
        nursery.cancel_scope.cancel()


async def test_parallel_wrong_binds_cost_at_most_the_configured_password_checks(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="smsgw.audit")
    async with running_server(make_config(max_password_checks=2), DoubleBackend()) as server, \
            trio.open_nursery() as nursery:
        checks = []
        check_password = server.accounts.check_password
        release = threading.Event()

        def counting(account: AccountConfig, password: str) -> None:
            checks.append(password)
            release.wait(30)  # the checks last until every other bind has been answered, however slow the host
            check_password(account, password)

        server.accounts.check_password = counting  # type: ignore[method-assign]
        statuses: list[int] = []

        async def wrong_bind(address: str, port: int) -> None:
            client = Client(server, nursery, peer=(address, port))
            bind = BindTransmitter(sequence_number=0, system_id="acme", password=f"wrong{port}")
            statuses.append((await client.bind(bind)).command_status)

        async with trio.open_nursery() as binds:
            for port in range(40):  # from three addresses, all at once
                binds.start_soon(wrong_bind, ("192.0.2.1", "192.0.2.2", "192.0.2.3")[port % 3], port)
            try:
                with trio.fail_after(600):  # clock time, autojumped: a hang guard
                    while len(statuses) < 38:
                        await trio.sleep(1)
            finally:
                release.set()
        assert len(checks) == 2
        assert statuses.count(CommandStatus.ESME_RINVPASWD) == 2
        assert statuses.count(CommandStatus.ESME_RBINDFAIL) == 38
        busy = [r.getMessage() for r in caplog.records if "password check busy" in r.getMessage()]
        assert len(busy) == 38
        nursery.cancel_scope.cancel()


async def test_source_network_and_bind_type_and_max_binds(autojump_clock: trio.testing.MockClock) -> None:
    base = make_config()
    account = replace(base.accounts[0], allowed_networks=("10.0.0.0/8",), allowed_bind_types=("transmitter",),
                      max_binds=2)
    config = Config(smpp=base.smpp, accounts=(account,))
    async with running_server(config, DoubleBackend()) as server, trio.open_nursery() as nursery:
        outside = Client(server, nursery, peer=("192.168.0.1", 1))
        assert (await outside.bind(BindTransmitter(sequence_number=0, system_id="acme", password=PASSWORD))
                ).command_status == CommandStatus.ESME_RBINDFAIL
        receiver = Client(server, nursery, peer=("10.0.0.1", 1))
        assert (await receiver.bind(BindReceiver(sequence_number=0, system_id="acme", password=PASSWORD))
                ).command_status == CommandStatus.ESME_RBINDFAIL
        statuses = []
        for port in range(3):
            client = Client(server, nursery, peer=("10.0.0.2", port))
            statuses.append((await client.bind(BindTransmitter(sequence_number=0, system_id="acme",
                                                               password=PASSWORD))).command_status)
        assert statuses == [0, 0, CommandStatus.ESME_RALYBND]
        assert len(bound_connections(server)) == 2
        nursery.cancel_scope.cancel()


async def test_throttling_answers_throttled_and_keeps_the_session(autojump_clock: trio.testing.MockClock) -> None:
    base = make_config()
    config = Config(smpp=base.smpp, accounts=(replace(base.accounts[0], throughput_per_s=1.0, throughput_burst=2),))
    async with running_server(config, DoubleBackend()) as server, trio.open_nursery() as nursery:
        client = Client(server, nursery)
        await client.bind()
        statuses = [(await client.request(SUBMIT)).command_status for _ in range(3)]
        assert statuses == [0, 0, CommandStatus.ESME_RTHROTTLED]
        await trio.sleep(1.0)
        assert (await client.request(SUBMIT)).command_status == 0
        nursery.cancel_scope.cancel()


async def test_backend_error_and_crash_become_statuses(autojump_clock: trio.testing.MockClock) -> None:
    backend = DoubleBackend(fail_submits_with=CommandStatus.ESME_RMSGQFUL)
    async with running_server(make_config(), backend) as server, trio.open_nursery() as nursery:
        client = Client(server, nursery)
        await client.bind()
        assert (await client.request(SUBMIT)).command_status == CommandStatus.ESME_RMSGQFUL
        backend.fail_submits_with = None
        backend.submit_multi = None  # type: ignore[assignment]  # calling it raises TypeError: a backend bug
        multi = SubmitMulti(sequence_number=0, destinations=(SmeAddress(1, 1, "447700900002"),))
        assert (await client.request(multi)).command_status == CommandStatus.ESME_RSYSERR
        assert (await client.request(SUBMIT)).command_status == 0
        nursery.cancel_scope.cancel()


async def test_enquire_link_sent_when_idle_and_dead_link_closed(autojump_clock: trio.testing.MockClock) -> None:
    async with running_server(make_config(), DoubleBackend()) as server, trio.open_nursery() as nursery:
        client = Client(server, nursery)
        await client.bind()
        await trio.sleep(server.config.smpp.enquire_link_interval_s * 3)
        assert not client.closed.is_set()  # answered by the client's reader
        client.answer_enquire_link = False
        event = await client.event()
        assert isinstance(event, RequestReceived) and event.pdu.command_id == CommandId.ENQUIRE_LINK
        await client.wait_closed()
        assert bound_connections(server) == []
        nursery.cancel_scope.cancel()


async def test_no_bind_in_time_closes(autojump_clock: trio.testing.MockClock) -> None:
    async with running_server(make_config(), DoubleBackend()) as server, trio.open_nursery() as nursery:
        client = Client(server, nursery)
        start = trio.current_time()
        await client.wait_closed()
        assert trio.current_time() - start == server.config.smpp.session_init_timeout_s
        nursery.cancel_scope.cancel()


async def test_protocol_errors_are_answered_and_session_survives(autojump_clock: trio.testing.MockClock) -> None:
    async with running_server(make_config(), DoubleBackend()) as server, trio.open_nursery() as nursery:
        client = Client(server, nursery)
        await client.bind()
        await client.send_raw(bytes.fromhex("00000010 00000999 00000000 0000abcd"))
        # our ESME core has no request 0xABCD outstanding, so the nack is "unexpected" to it
        nack = GenericNack(sequence_number=0xABCD, command_status=CommandStatus.ESME_RINVCMDID)
        assert await client.event() == UnexpectedResponse(nack)
        bad = replace(SUBMIT, dest_addr_ton=9)
        assert (await client.request(bad)).command_status == CommandStatus.ESME_RINVDSTTON
        assert (await client.request(EnquireLink(sequence_number=0))).command_status == 0
        await client.send_raw(bytes.fromhex("00000008 00000015"))
        await client.wait_closed()
        nursery.cancel_scope.cancel()


async def receivers(server: SmppServer, nursery: trio.Nursery) -> tuple[Client, Client]:
    """Two receiving binds of acme, in this order: a transceiver and a receiver."""
    first, second = Client(server, nursery, ("127.0.0.1", 1)), Client(server, nursery, ("127.0.0.1", 2))
    await first.bind()
    await second.bind(BindReceiver(sequence_number=0, system_id="acme", password=PASSWORD))
    return first, second


async def test_receipts_pushed_round_robin_acknowledged_and_released(autojump_clock: trio.testing.MockClock) -> None:
    backend = DoubleBackend()
    async with running_server(make_config(window=2), backend) as server, trio.open_nursery() as nursery:
        first, second = await receivers(server, nursery)
        transmitter = Client(server, nursery, ("127.0.0.1", 3))
        await transmitter.bind(BindTransmitter(sequence_number=0, system_id="acme", password=PASSWORD))
        for n in range(5):
            backend.offer(receipt(n))
        got: dict[Client, list[DeliverSm]] = {}
        for client in (first, second, first, second):  # two per bind: the window
            event = await client.event()
            assert isinstance(event, RequestReceived) and isinstance(event.pdu, DeliverSm)
            got.setdefault(client, []).append(event.pdu)
        assert backend.waiting("acme") == 0  # r4 is reserved by the pusher, waiting for room
        first_pdus, second_pdus = got[first], got[second]
        assert [p.short_message for p in first_pdus + second_pdus] == [b"id:0", b"id:2", b"id:1", b"id:3"]
        await first.send(response_for(first_pdus[0]))
        await first.send(response_for(first_pdus[1], command_status=CommandStatus.ESME_RX_T_APPN))
        event = await first.event()  # r4 or the released r2, whichever the pusher takes first
        assert isinstance(event, RequestReceived)
        await trio.sleep(0)
        assert backend.acknowledged == ["r0"]
        assert "r2" in backend.released
        # the second bind never answers: its items time out and go back
        await trio.sleep(server.config.smpp.response_timeout_s + 1)
        assert {"r1", "r3"} <= set(backend.released)
        nursery.cancel_scope.cancel()


async def test_receipts_ready_together_leave_in_one_write_per_bind(autojump_clock: trio.testing.MockClock) -> None:
    backend = DoubleBackend()
    async with running_server(make_config(window=4), backend) as server, trio.open_nursery() as nursery:
        first, second = await receivers(server, nursery)
        writes_before = first.server_writes, second.server_writes
        for n in range(10):  # more than both windows hold
            backend.offer(receipt(n))
        got: dict[Client, list[bytes]] = {first: [], second: []}
        for client in (first, second) * 4:
            event = await client.event()
            assert isinstance(event, RequestReceived) and isinstance(event.pdu, DeliverSm)
            got[client].append(event.pdu.short_message)
        # round robin across the binds, within each window, each bind's share in one write
        assert got == {first: [b"id:0", b"id:2", b"id:4", b"id:6"], second: [b"id:1", b"id:3", b"id:5", b"id:7"]}
        assert (first.server_writes, second.server_writes) == (writes_before[0] + 1, writes_before[1] + 1)
        assert backend.waiting("acme") == 1  # r8 is reserved by the pusher, waiting for room; r9 is left
        assert backend.acknowledged == [] and backend.released == []
        nursery.cancel_scope.cancel()


async def test_answers_that_arrive_while_the_pusher_writes_wake_it(autojump_clock: trio.testing.MockClock) -> None:
    backend = DoubleBackend()
    async with running_server(make_config(window=2), backend) as server, trio.open_nursery() as nursery:
        client = Client(server, nursery)
        await client.bind()
        client.server_write_s = 0.5  # the ESME reads and answers while the server's write is still going on
        with trio.fail_after(server.config.smpp.response_timeout_s / 2):  # not rescued by timeouts and re-offers
            for n in range(20):
                backend.offer(receipt(n))
            for _ in range(20):
                event = await client.event()
                assert isinstance(event, RequestReceived)
                await client.send(response_for(event.pdu))
            while len(backend.acknowledged) < 20:
                await trio.sleep(0.1)
        assert backend.acknowledged == [f"r{n}" for n in range(20)]
        assert backend.released == []
        nursery.cancel_scope.cancel()


async def test_an_esme_that_does_not_read_holds_up_no_other_bind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = DoubleBackend()
    async with running_server(make_config(), backend) as server, trio.open_nursery() as nursery:
        stuck, reading = Client(server, nursery, ("127.0.0.1", 1)), Client(server, nursery, ("127.0.0.1", 2))
        await stuck.bind()
        await reading.bind()
        stuck.server_write_s = 3600.0  # the server's writes to it do not complete
        backend.offer(receipt(0))
        backend.offer(receipt(1))
        with trio.fail_after(1):
            event = await reading.event()
            assert isinstance(event, RequestReceived) and event.pdu.short_message == b"id:1"  # type: ignore[attr-defined]
            await reading.send(response_for(event.pdu))
            while backend.acknowledged != ["r1"]:
                await trio.sleep(0.1)
            backend.offer(receipt(2))
            backend.offer(receipt(3))
            event = await reading.event()  # nor the pusher: r2 is queued for the stuck bind, r3 comes here
            assert isinstance(event, RequestReceived) and event.pdu.short_message == b"id:3"  # type: ignore[attr-defined]
        nursery.cancel_scope.cancel()


async def test_disconnect_releases_outstanding_and_next_bind_gets_them(autojump_clock: trio.testing.MockClock) -> None:
    backend = DoubleBackend()
    async with running_server(make_config(), backend) as server, trio.open_nursery() as nursery:
        client = Client(server, nursery)
        await client.bind(BindReceiver(sequence_number=0, system_id="acme", password=PASSWORD))
        backend.offer(receipt(1))
        event = await client.event()
        assert isinstance(event, RequestReceived)
        await client.stream.aclose()
        await trio.sleep(1)
        assert backend.released == ["r1"] and backend.waiting("acme") == 1
        again = Client(server, nursery, ("127.0.0.1", 2))
        await again.bind(BindReceiver(sequence_number=0, system_id="acme", password=PASSWORD))
        event = await again.event()
        assert isinstance(event, RequestReceived) and event.pdu.short_message == b"id:1"  # type: ignore[attr-defined]
        await again.send(response_for(event.pdu))
        await trio.sleep(1)
        assert backend.acknowledged == ["r1"]
        nursery.cancel_scope.cancel()


async def test_graceful_drain_unbinds_and_waits(autojump_clock: trio.testing.MockClock) -> None:
    async with running_server(make_config(), DoubleBackend()) as server, trio.open_nursery() as nursery:
        polite, silent = Client(server, nursery, ("127.0.0.1", 1)), Client(server, nursery, ("127.0.0.1", 2))
        await polite.bind()
        await silent.bind()
        silent.answer_enquire_link = False

        async def answer_unbind(client: Client) -> None:
            event = await client.event()
            assert isinstance(event, RequestReceived) and event.pdu.command_id == CommandId.UNBIND
            await client.send(response_for(event.pdu))

        nursery.start_soon(answer_unbind, polite)
        start = trio.current_time()
        await server.drain()
        # the silent ESME never answers its unbind, so the drain waits the whole grace period for it
        assert trio.current_time() - start == server.config.smpp.shutdown_grace_s
        assert polite.closed.is_set() and not silent.closed.is_set()
        (remaining,) = server.connections
        assert remaining.session.state is BindState.UNBOUND
        nursery.cancel_scope.cancel()


def _server_tasks() -> list[str]:
    """Names of the live tasks running smpp_server code."""
    found = []
    root = trio.lowlevel.current_root_task()
    assert root is not None
    pending = [root]
    while pending:
        task = pending.pop()
        if "smsgw/smpp_server/" in task.coro.cr_code.co_filename:
            found.append(task.coro.cr_code.co_qualname)
        pending.extend(child for nursery in task.child_nurseries for child in nursery.child_tasks)
    return found


N_IDLE = 1000


async def test_idle_binds_cost_a_reader_and_a_timer_each(autojump_clock: trio.testing.MockClock) -> None:
    base = make_config(inactivity_timeout_s=0.0, enquire_link_interval_s=600.0, max_connections=N_IDLE,
                       max_connections_per_address=N_IDLE)
    config = Config(smpp=base.smpp, accounts=(replace(base.accounts[0], max_binds=N_IDLE),))
    async with running_server(config, DoubleBackend()) as server, trio.open_nursery() as nursery:
        idle_before = _server_tasks()
        clients = [Client(server, nursery, ("127.0.0.1", port)) for port in range(N_IDLE)]
        for client in clients:
            await client.bind(BindTransmitter(sequence_number=0, system_id="acme", password=PASSWORD))
        tasks = _server_tasks()
        assert len(tasks) - len(idle_before) == 2 * N_IDLE
        assert sorted(set(tasks) - set(idle_before)) == ["SessionShell._timer_loop", "SmppServer.handle_connection"]
        await trio.sleep(1800)  # half an hour of idling: enquire_link only, every bind still there
        assert len(bound_connections(server)) == N_IDLE
        assert not any(client.closed.is_set() for client in clients)
        nursery.cancel_scope.cancel()


async def test_backend_bugs_answer_syserr_and_server_lives_on(autojump_clock: trio.testing.MockClock) -> None:
    backend = DoubleBackend()

    async def long_id(account: str, pdu: object) -> str:
        return "x" * 100  # longer than a message_id may be on the wire

    async with running_server(make_config(), backend) as server, trio.open_nursery() as nursery:
        client = Client(server, nursery)
        await client.bind()
        backend.submit = long_id  # type: ignore[method-assign]
        assert (await client.request(SUBMIT)).command_status == CommandStatus.ESME_RSYSERR
        backend.query = None  # type: ignore[assignment]
        query = QuerySm(sequence_number=0, message_id="m1")
        assert (await client.request(query)).command_status == CommandStatus.ESME_RSYSERR
        assert (await client.request(EnquireLink(sequence_number=0))).command_status == 0
        nursery.cancel_scope.cancel()


async def test_audit_file_has_one_line_per_attempt(autojump_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    config = make_config()
    async with trio.open_nursery() as outer:
        audit = AuditLog(str(path))
        server = SmppServer(config, DoubleBackend(), outer, audit)
        server.accounts.check_password(config.accounts[0], PASSWORD)
        async with trio.open_nursery() as nursery:
            good = Client(server, nursery, ("192.0.2.1", 1))
            await good.bind()
            bad = Client(server, nursery, ("192.0.2.2", 2))
            await bad.bind(BindTransmitter(sequence_number=0, system_id="ghost"))
            silent = Client(server, nursery, ("192.0.2.3", 3))
            await silent.wait_closed()
            await good.request(Unbind(sequence_number=0))
            await good.wait_closed()
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        outer.cancel_scope.cancel()
    audit.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    summary = sorted((r["source"], r["event"], r["outcome"], r["system_id"]) for r in records)
    assert summary == [
        ("192.0.2.1:1", "bind", "ok", "acme"),
        ("192.0.2.1:1", "disconnect", "closed", "acme"),
        ("192.0.2.1:1", "unbind", "ok", "acme"),
        ("192.0.2.2:2", "bind", "unknown system_id", "ghost"),
        ("192.0.2.3:3", "connect", "no bind before timeout", ""),
    ]
    assert all(r["time"].endswith("+00:00") for r in records)


async def test_an_esme_that_does_not_read_stalls_only_itself(autojump_clock: trio.testing.MockClock) -> None:
    base = make_config()
    unthrottled = replace(base.accounts[0], throughput_per_s=1e6, throughput_burst=1_000_000)
    config = Config(smpp=base.smpp, accounts=(unthrottled,))
    async with running_server(config, DoubleBackend()) as server, trio.open_nursery() as nursery:
        deaf, theirs = trio.testing.lockstep_stream_pair()  # a write blocks until the other side reads
        nursery.start_soon(server.handle_connection, theirs, ("192.0.2.50", 1))
        await deaf.send_all(encode_pdu(BindTransmitter(sequence_number=1, system_id="acme", password=PASSWORD)))
        assert decode_pdu(bytes(await deaf.receive_some(65536))).command_status == 0  # the last thing it ever reads
        submits = b"".join(encode_pdu(replace(SUBMIT, sequence_number=n)) for n in range(2, 4000))
        nursery.start_soon(deaf.send_all, submits)  # never reads a single answer
        await trio.sleep(0.001)
        other = Client(server, nursery, ("192.0.2.51", 1))
        await other.bind()
        start = trio.current_time()
        for _ in range(300):  # more than there are workers
            assert (await other.request(SUBMIT)).command_status == 0
        assert trio.current_time() == start  # not a moment waiting for the deaf ESME's timeouts
        nursery.cancel_scope.cancel()


async def _submit_in_one_write(client: Client, destinations: list[str]) -> dict[str, int]:
    """Send one submit_sm per destination in a single write; returns each destination's response status."""
    sent: dict[int, str] = {}
    data = bytearray()
    for destination in destinations:
        pdu = replace(SUBMIT, sequence_number=client.session.new_sequence_number(), destination_addr=destination)
        sent[pdu.sequence_number] = destination
        data += client.session.send(pdu, trio.current_time())
    await client.send_raw(bytes(data))
    statuses: dict[str, int] = {}
    for _ in destinations:
        event = await client.event()
        assert isinstance(event, ResponseReceived) and event.response.command_id == CommandId.SUBMIT_SM_RESP
        statuses[sent.pop(event.response.sequence_number)] = event.response.command_status
    return statuses


async def test_submissions_of_one_read_reach_the_backend_in_one_call(autojump_clock: trio.testing.MockClock) -> None:
    base = make_config()
    config = Config(smpp=base.smpp, accounts=(replace(base.accounts[0], throughput_per_s=1.0, throughput_burst=4),))
    backend = DoubleBackend(refuse_destinations={"447700900012"})
    async with running_server(config, backend) as server, trio.open_nursery() as nursery:
        client = Client(server, nursery)
        await client.bind()
        destinations = [f"4477009000{n}" for n in range(11, 17)]
        statuses = await _submit_in_one_write(client, destinations)
        assert statuses == {
            "447700900011": 0,
            "447700900012": CommandStatus.ESME_RINVDSTADR,  # refused alone, at no cost to the throughput
            "447700900013": 0,
            "447700900014": 0,
            "447700900015": 0,
            "447700900016": CommandStatus.ESME_RTHROTTLED,
        }
        assert backend.batches == [6]  # the backend charges the throttle between preparing and storing
        assert [pdu.destination_addr for _, pdu in backend.submitted] == [  # type: ignore[union-attr]
            "447700900011", "447700900013", "447700900014", "447700900015"
        ]
        nursery.cancel_scope.cancel()


async def test_the_throttle_is_charged_the_segments_the_backend_counts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The session counts no segments: the backend's count (the accept path's, the one that is stored) is what
    the throughput limit takes, for submit_sm and submit_multi alike."""
    base = make_config()
    config = Config(smpp=base.smpp, accounts=(replace(base.accounts[0], throughput_per_s=1.0, throughput_burst=4),))
    backend = DoubleBackend(segments={"447700900011": 3})  # e.g. a signature makes its short text three parts
    async with running_server(config, backend) as server, trio.open_nursery() as nursery:
        client = Client(server, nursery)
        await client.bind()
        statuses = await _submit_in_one_write(client, ["447700900011", "447700900012", "447700900013"])
        assert list(statuses.values()) == [0, 0, CommandStatus.ESME_RTHROTTLED]
        await trio.sleep(3.0)  # 3 tokens back: not the 4 a submit_multi to the three-part number and another costs
        multi = SubmitMulti(sequence_number=0, short_message=b"hi",
                            destinations=(SmeAddress(1, 1, "447700900011"), SmeAddress(1, 1, "447700900012")))
        assert (await client.request(multi)).command_status == CommandStatus.ESME_RTHROTTLED
        await trio.sleep(1.0)
        assert (await client.request(multi)).command_status == 0
        nursery.cancel_scope.cancel()


async def test_a_read_beyond_max_pending_requests_is_handed_on_in_parts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = DoubleBackend()
    async with running_server(make_config(max_pending_requests=2), backend) as server, trio.open_nursery() as nursery:
        client = Client(server, nursery)
        await client.bind()
        statuses = await _submit_in_one_write(client, [f"4477009000{n}" for n in range(11, 16)])
        assert list(statuses.values()) == [0] * 5
        assert backend.batches == [2, 2, 1]
        nursery.cancel_scope.cancel()


async def test_a_failing_submit_many_answers_every_submission(autojump_clock: trio.testing.MockClock) -> None:
    backend = DoubleBackend()

    async def broken(account: str, pdus: object) -> list[str]:
        return []  # fewer results than submissions: a backend bug

    async with running_server(make_config(), backend) as server, trio.open_nursery() as nursery:
        client = Client(server, nursery)
        await client.bind()
        backend.submit_many = broken  # type: ignore[method-assign,assignment]
        statuses = await _submit_in_one_write(client, ["447700900011", "447700900012"])
        assert list(statuses.values()) == [CommandStatus.ESME_RSYSERR] * 2
        nursery.cancel_scope.cancel()


async def test_half_a_pdu_is_not_held_open_past_the_read_timeout(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="smsgw.audit")
    config = make_config(pdu_read_timeout_s=7.0, session_init_timeout_s=600.0, inactivity_timeout_s=0.0)
    async with running_server(config, DoubleBackend()) as server, trio.open_nursery() as nursery:
        bound = Client(server, nursery, ("192.0.2.1", 1))
        await bound.bind()
        unbound = Client(server, nursery, ("192.0.2.2", 1))
        start = trio.current_time()
        half = encode_pdu(replace(SUBMIT, sequence_number=9))[:20]
        await bound.send_raw(half)
        await unbound.send_raw(half)
        with trio.fail_after(60):  # clock time, autojumped: without the read timeout the bind lives on
            await bound.wait_closed()
            await unbound.wait_closed()
        # The bound one answered enquire_link all along; only the read timeout ended it.
        assert trio.current_time() - start == 7.0
        assert server.connections == set()
        outcomes = [r.getMessage() for r in caplog.records if r.name == "smsgw.audit"]
        assert any("source=192.0.2.2:1" in r and "outcome='incomplete PDU'" in r for r in outcomes), outcomes
        nursery.cancel_scope.cancel()


async def test_connections_beyond_the_caps_are_closed_at_once_and_audited(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="smsgw.audit")
    config = make_config(max_connections=3, max_connections_per_address=2, session_init_timeout_s=600.0)
    async with running_server(config, DoubleBackend()) as server, trio.open_nursery() as nursery:
        first = [Client(server, nursery, ("192.0.2.1", port)) for port in (1, 2)]
        await trio.sleep(1)
        same_address = Client(server, nursery, ("192.0.2.1", 3))
        await same_address.wait_closed()
        other = Client(server, nursery, ("192.0.2.2", 1))
        await trio.sleep(1)
        assert not other.closed.is_set() and len(server.connections) == 3
        one_too_many = Client(server, nursery, ("192.0.2.3", 1))
        await one_too_many.wait_closed()
        assert not any(client.closed.is_set() for client in first)
        await first[0].stream.aclose()
        await trio.sleep(1)
        again = Client(server, nursery, ("192.0.2.1", 4))  # room again, on both counts
        assert (await again.bind()).command_status == CommandStatus.ESME_ROK
        refusals = [r.getMessage() for r in caplog.records if r.name == "smsgw.audit" and "too many" in r.getMessage()]
        assert len(refusals) == 2
        assert "source=192.0.2.1:3" in refusals[0] and "outcome='too many connections from the address'" in refusals[0]
        assert "source=192.0.2.3:1" in refusals[1] and "outcome='too many connections'" in refusals[1]
        nursery.cancel_scope.cancel()
