"""End to end over real sockets on 127.0.0.1 port 0, with smpplib (blocking, in a worker thread) as the ESME.

smpplib has no submit_multi, cancel_sm or replace_sm: those go over the smpplib client's socket encoded by our
codec, and their responses are read and decoded the same way.
"""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.smpp
import trio

from smsgw.config import AccountConfig, Config, SmppConfig
from smsgw.pdu.constants import CommandId, CommandStatus
from smsgw.pdu.smpp import (
    BindReceiver,
    CancelSm,
    DataSm,
    DeliverSm,
    Outbind,
    Pdu,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitSm,
    decode_pdu,
    encode_pdu,
    response_for,
)
from smsgw.smpp_server.backend import BackendError, OutboundItem
from smsgw.smpp_server.server import SmppListeners, serve_smpp
from smsgw.smpp_server.session import RequestReceived, ResponseReceived, SmppSession
from smsgw.smpp_server.states import Role
from smsgw.smpp_server.throttle import Throttle

from smpp_backend_double import DoubleBackend
from smpp_harness import PASSWORD, PASSWORD_HASH

TIMEOUT_S = 5.0


@dataclass
class Gateway:
    port: int
    backend: DoubleBackend


@pytest.fixture
async def gateway(nursery: trio.Nursery) -> Gateway:
    backend = DoubleBackend()
    config = Config(
        smpp=SmppConfig(port=0, bind_failure_delay_base_s=0.01, bind_failure_delay_max_s=0.02),
        accounts=(
            AccountConfig(system_id="acme", password_hash=PASSWORD_HASH, max_binds=2),
            AccountConfig(system_id="branch", password_hash=PASSWORD_HASH, allowed_networks=("10.0.0.0/8",)),
        ),
    )
    listeners: SmppListeners = await nursery.start(serve_smpp, config, backend)
    return Gateway(listeners.port, backend)


@contextmanager
def esme(port: int) -> Iterator[smpplib.client.Client]:
    client = smpplib.client.Client("127.0.0.1", port, timeout=TIMEOUT_S, allow_unknown_opt_params=True)
    client.connect()
    try:
        yield client
    finally:
        client.disconnect()


def raw_request(client: smpplib.client.Client, pdu: Pdu) -> Pdu:
    client._socket.sendall(encode_pdu(replace(pdu, sequence_number=client.next_sequence())))
    return read_raw(client)


def read_raw(client: smpplib.client.Client) -> Pdu:
    length = struct.unpack(">I", client._recv_exact(4))[0]
    return decode_pdu(struct.pack(">I", length) + client._recv_exact(length - 4))


async def in_thread(scenario: Callable[[], None]) -> None:
    with trio.fail_after(30):
        await trio.to_thread.run_sync(scenario)


async def eventually(condition: Callable[[], bool]) -> None:
    with trio.fail_after(10):
        while not condition():
            await trio.sleep(0.01)


def bind_error(bind: Callable[..., object], **kwargs: object) -> int:
    with pytest.raises(smpplib.exceptions.PDUError) as info:
        bind(**kwargs)
    return int(info.value.args[1])


async def test_bind_each_type_and_unbind(gateway: Gateway) -> None:
    def scenario() -> None:
        for bind in ("bind_transmitter", "bind_receiver", "bind_transceiver"):
            with esme(gateway.port) as client:
                response = getattr(client, bind)(system_id="acme", password=PASSWORD)
                assert response.status == 0 and response.system_id == b"smsgw"
                assert response.sc_interface_version == 0x34
                assert client.unbind().command == "unbind_resp"

    await in_thread(scenario)


async def test_refused_binds(gateway: Gateway) -> None:
    def scenario() -> None:
        with esme(gateway.port) as client:
            assert bind_error(client.bind_transmitter, system_id="acme", password="wrong") == CommandStatus.ESME_RINVPASWD
        with esme(gateway.port) as client:
            assert bind_error(client.bind_transmitter, system_id="nobody", password="x") == CommandStatus.ESME_RINVSYSID
        with esme(gateway.port) as client:
            assert bind_error(client.bind_transmitter, system_id="branch", password=PASSWORD) == CommandStatus.ESME_RBINDFAIL
        with esme(gateway.port) as first, esme(gateway.port) as second, esme(gateway.port) as third:
            first.bind_transmitter(system_id="acme", password=PASSWORD)
            second.bind_receiver(system_id="acme", password=PASSWORD)
            assert bind_error(third.bind_transceiver, system_id="acme", password=PASSWORD) == CommandStatus.ESME_RALYBND

    await in_thread(scenario)


async def test_operations(gateway: Gateway) -> None:
    def scenario() -> None:
        with esme(gateway.port) as client:
            client.bind_transceiver(system_id="acme", password=PASSWORD)
            client.send_message(source_addr_ton=1, source_addr_npi=1, source_addr="447700900001", dest_addr_ton=1,
                                dest_addr_npi=1, destination_addr="447700900002", short_message=b"hello")
            submitted = client.read_pdu()
            assert submitted.command == "submit_sm_resp" and submitted.status == 0
            message_id = submitted.message_id.decode()
            client.send_pdu(smpplib.smpp.make_pdu("query_sm", client=client, message_id=message_id,
                                                  source_addr_ton=1, source_addr_npi=1, source_addr="447700900001"))
            queried = client.read_pdu()
            assert queried.command == "query_sm_resp" and queried.status == 0
            assert queried.message_state == 1  # ENROUTE
            multi = raw_request(client, SubmitMulti(
                sequence_number=0, source_addr="447700900001", source_addr_ton=1, source_addr_npi=1,
                destinations=(SmeAddress(1, 1, "447700900003"), SmeAddress(1, 1, "bogus!")), short_message=b"hi"))
            assert multi.command_status == 0
            assert [u.destination_addr for u in multi.unsuccess_sme] == ["bogus!"]  # type: ignore[attr-defined]
            replaced = raw_request(client, ReplaceSm(sequence_number=0, message_id=message_id, short_message=b"new"))
            assert replaced.command_id == CommandId.REPLACE_SM_RESP and replaced.command_status == 0
            cancelled = raw_request(client, CancelSm(sequence_number=0, message_id=message_id))
            assert cancelled.command_id == CommandId.CANCEL_SM_RESP and cancelled.command_status == 0
            unknown = raw_request(client, CancelSm(sequence_number=0, message_id="nope"))
            assert unknown.command_status == CommandStatus.ESME_RCANCELFAIL
            client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=client))
            assert client.read_pdu().command == "enquire_link_resp"
            client.unbind()

    await in_thread(scenario)
    assert gateway.backend.cancelled and gateway.backend.replaced
    assert len(gateway.backend.submitted) == 2


async def test_unknown_command_and_malformed_length(gateway: Gateway) -> None:
    def scenario() -> None:
        with esme(gateway.port) as client:
            client.bind_transmitter(system_id="acme", password=PASSWORD)
            client._socket.sendall(struct.pack(">IIII", 16, 0x00000999, 0, 4242))
            nack = client.read_pdu()
            assert nack.command == "generic_nack" and nack.status == CommandStatus.ESME_RINVCMDID
            assert nack.sequence == 4242
            client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=client))
            assert client.read_pdu().command == "enquire_link_resp"  # the session lives on
            client._socket.sendall(struct.pack(">IIII", 0x7FFFFFFF, CommandId.SUBMIT_SM, 0, 4243))
            nack = client.read_pdu()
            assert nack.command == "generic_nack" and nack.status == CommandStatus.ESME_RINVCMDLEN
            with pytest.raises((smpplib.exceptions.ConnectionError, ConnectionResetError, socket.timeout)):
                client.read_pdu()  # the server closed the connection

    await in_thread(scenario)


def _receipt(n: int) -> OutboundItem:
    text = f"id:{n} sub:001 dlvrd:001 submit date:2611231200 done date:2611231201 stat:DELIVRD err:000 text:"
    return OutboundItem(f"r{n}", "acme", DeliverSm(sequence_number=0, source_addr="447700900002", esm_class=0x04,
                                                     destination_addr="447700900001", short_message=text.encode()))


async def test_receipt_pushed_and_acknowledged(gateway: Gateway) -> None:
    gateway.backend.offer(_receipt(1))
    received: list[bytes] = []

    def scenario() -> None:
        with esme(gateway.port) as client:
            client.set_message_received_handler(lambda pdu: received.append(pdu.short_message))
            client.bind_receiver(system_id="acme", password=PASSWORD)
            client.read_once()  # deliver_sm, answered with deliver_sm_resp OK by smpplib
            client.unbind()

    await in_thread(scenario)
    assert received and received[0].startswith(b"id:1 ")
    await eventually(lambda: gateway.backend.acknowledged == ["r1"])


async def test_receipt_offered_again_after_disconnect(gateway: Gateway) -> None:
    gateway.backend.offer(_receipt(2))

    def vanish() -> None:
        with esme(gateway.port) as client:
            client.bind_receiver(system_id="acme", password=PASSWORD)
            assert client.read_pdu().command == "deliver_sm"  # never answered

    await in_thread(vanish)
    await eventually(lambda: gateway.backend.released == ["r2"])
    received: list[bytes] = []

    def come_back() -> None:
        with esme(gateway.port) as client:
            client.set_message_received_handler(lambda pdu: received.append(pdu.short_message))
            client.bind_transceiver(system_id="acme", password=PASSWORD)
            client.read_once()
            client.unbind()

    await in_thread(come_back)
    assert received and received[0].startswith(b"id:2 ")
    await eventually(lambda: gateway.backend.acknowledged == ["r2"])


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return str(cert), str(key)


async def test_tls_listener_behaves_the_same(nursery: trio.Nursery, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    backend = DoubleBackend()
    config = Config(
        smpp=SmppConfig(port=0, tls_port=0, tls_cert_path=cert, tls_key_path=key),
        accounts=(AccountConfig(system_id="acme", password_hash=PASSWORD_HASH),),
    )
    listeners: SmppListeners = await nursery.start(serve_smpp, config, backend)
    assert listeners.tls_port is not None and listeners.tls_port != listeners.port
    context = ssl.create_default_context(cafile=cert)
    context.check_hostname = False  # smpplib wraps the socket without a server name; the chain is still verified

    def scenario() -> None:
        client = smpplib.client.Client("127.0.0.1", listeners.tls_port, timeout=TIMEOUT_S, ssl_context=context,
                                       allow_unknown_opt_params=True)
        client.connect()
        try:
            client.bind_transceiver(system_id="acme", password=PASSWORD)
            client.send_message(source_addr="447700900001", source_addr_ton=1, source_addr_npi=1, dest_addr_ton=1,
                                dest_addr_npi=1, destination_addr="447700900002", short_message=b"over tls")
            assert client.read_pdu().status == 0
            client.unbind()
        finally:
            client.disconnect()

    await in_thread(scenario)
    assert [pdu.short_message for _, pdu in backend.submitted if isinstance(pdu, SubmitSm)] == [b"over tls"]


async def test_outbind_then_receiver_bind_gets_receipts(nursery: trio.Nursery) -> None:
    esme_listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    esme_port = esme_listeners[0].socket.getsockname()[1]
    backend = DoubleBackend()
    account = AccountConfig(system_id="acme", password_hash=PASSWORD_HASH, outbind_host="127.0.0.1",
                            outbind_port=esme_port, outbind_password="theirs", outbind_interval_s=0.05)
    await nursery.start(serve_smpp, Config(smpp=SmppConfig(port=0), accounts=(account,)), backend)
    backend.offer(_receipt(3))
    with trio.fail_after(10):
        stream = await esme_listeners[0].accept()
        for listener in esme_listeners:
            await listener.aclose()
        esme = SmppSession(Role.ESME, SmppConfig(), opened_at=trio.current_time())

        async def next_event() -> object:
            while (event := esme.next_event()) is None:
                esme.receive_data(await stream.receive_some(65536), trio.current_time())
            return event

        outbind = await next_event()
        assert isinstance(outbind, RequestReceived) and outbind.pdu == Outbind(
            sequence_number=outbind.pdu.sequence_number, system_id="acme", password="theirs")
        bind = BindReceiver(sequence_number=esme.new_sequence_number(), system_id="acme", password=PASSWORD)
        await stream.send_all(esme.send(bind, trio.current_time()))
        bound = await next_event()
        assert isinstance(bound, ResponseReceived) and bound.response.command_status == 0
        delivered = await next_event()
        assert isinstance(delivered, RequestReceived) and delivered.pdu.command_id == CommandId.DELIVER_SM
        await stream.send_all(esme.send(response_for(delivered.pdu), trio.current_time()))
        await eventually(lambda: backend.acknowledged == ["r3"])
        await stream.aclose()


class _SlowBackend(DoubleBackend):
    """Commits take a while, so the unbind is read while batches still wait for theirs."""

    async def submit_many(
        self, account: str, pdus: Sequence[SubmitSm | DataSm], throttle: Throttle
    ) -> list[str | BackendError]:
        results = await super().submit_many(account, pdus, throttle)
        await trio.sleep(0.05)
        return results


async def test_submit_then_unbind_at_once_gets_every_acknowledgement(nursery: trio.Nursery) -> None:
    backend = _SlowBackend()
    account = AccountConfig(system_id="acme", password_hash=PASSWORD_HASH)
    listeners: SmppListeners = await nursery.start(serve_smpp, Config(smpp=SmppConfig(port=0), accounts=(account,)),
                                                   backend)
    count = 40
    responses: list[smpplib.smpp.PDU] = []

    def scenario() -> None:
        with esme(listeners.port) as client:
            client.bind_transmitter(system_id="acme", password=PASSWORD)
            for n in range(count):
                client.send_message(source_addr_ton=1, source_addr_npi=1, source_addr="447700900001",
                                    dest_addr_ton=1, dest_addr_npi=1, destination_addr=f"4477009{n:05d}",
                                    short_message=b"hello")
            client.send_pdu(smpplib.smpp.make_pdu("unbind", client=client))
            while not responses or responses[-1].command != "unbind_resp":
                responses.append(client.read_pdu())

    await in_thread(scenario)
    acknowledged = [pdu for pdu in responses if pdu.command == "submit_sm_resp" and pdu.status == 0]
    assert len(acknowledged) == count == len(backend.submitted)
    assert sorted(pdu.message_id.decode() for pdu in acknowledged) == sorted(backend.owners)
    assert [pdu.command for pdu in responses] == ["submit_sm_resp"] * count + ["unbind_resp"]
