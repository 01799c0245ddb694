"""Helpers for the Trio-layer tests: a server in a nursery and ESME clients (our own ESME core) over memory streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Final

import trio
import trio.testing

from smsgw.config import AccountConfig, Config, SmppConfig
from smsgw.passwords import hash_password
from smsgw.pdu.constants import CommandId, Ton
from smsgw.pdu.smpp import BindTransceiver, Pdu, SubmitSm, response_for
from smsgw.smpp_server.audit import AuditLog
from smsgw.smpp_server.binds import SharedBinds
from smsgw.smpp_server.server import SmppServer
from smsgw.smpp_server.session import (
    ConnectionClosed,
    Event,
    RequestReceived,
    ResponseReceived,
    SmppSession,
)
from smsgw.smpp_server.states import Role

from smpp_backend_double import DoubleBackend

SUBMIT: Final = SubmitSm(
    sequence_number=0,
    source_addr="447700900001",
    source_addr_ton=Ton.INTERNATIONAL,
    source_addr_npi=1,
    destination_addr="447700900002",
    dest_addr_ton=Ton.INTERNATIONAL,
    dest_addr_npi=1,
    short_message=b"hello",
)
PASSWORD = "secret"
PASSWORD_HASH = hash_password(PASSWORD)


def make_config(**smpp: object) -> Config:
    account = AccountConfig(system_id="acme", password_hash=PASSWORD_HASH, max_binds=3)
    return Config(smpp=SmppConfig(port=0, **smpp), accounts=(account,))  # type: ignore[arg-type]


@asynccontextmanager
async def running_server(
    config: Config, backend: DoubleBackend, binds: SharedBinds | None = None
) -> AsyncIterator[SmppServer]:
    """`binds`: a node's bind registry, its heartbeat run as `serve_smpp` runs it."""
    async with trio.open_nursery() as nursery:
        server = SmppServer(config, backend, nursery, AuditLog(), shared_binds=binds)
        if binds is not None:
            await nursery.start(binds.run)
        for account in server.accounts:
            # Warm the password cache so binds with the right password need no worker thread (which would let
            # an autojumping MockClock run ahead while scrypt computes).
            server.accounts.check_password(account, PASSWORD)
        yield server
        nursery.cancel_scope.cancel()


class Client:
    """An ESME: our own ESME-role core over a memory stream. A background task answers enquire_link (unless
    `answer_enquire_link` is False) and queues every other event."""

    def __init__(self, server: SmppServer, nursery: trio.Nursery, peer: tuple[str, int] = ("127.0.0.1", 40000)):
        self.stream, server_stream = trio.testing.memory_stream_pair()
        self.server_writes = 0  # send_all calls of the server on this connection
        self.server_write_s = 0.0  # how long each server send_all takes after its data reached us (a slow socket)
        pump = server_stream.send_stream.send_all_hook

        async def count_write() -> None:
            self.server_writes += 1
            if pump is not None:
                await pump()
            if self.server_write_s:
                await trio.sleep(self.server_write_s)

        server_stream.send_stream.send_all_hook = count_write
        self.session = SmppSession(Role.ESME, replace(server.config.smpp, window=100), opened_at=trio.current_time())
        self.session._timed_out = True  # the test decides when an ESME gives up, not the ESME core's timers
        self.answer_enquire_link = True
        self.closed = trio.Event()
        self._send_lock = trio.Lock()
        self._events_in, self._events_out = trio.open_memory_channel[Event](100)
        nursery.start_soon(server.handle_connection, server_stream, peer)
        nursery.start_soon(self._reader)

    async def _reader(self) -> None:
        while True:
            try:
                data = await self.stream.receive_some(65536)
            except trio.ClosedResourceError:
                data = b""
            self.session.receive_data(bytes(data), trio.current_time())
            while (event := self.session.next_event()) is not None:
                if (
                    isinstance(event, RequestReceived)
                    and event.pdu.command_id == CommandId.ENQUIRE_LINK
                    and self.answer_enquire_link
                ):
                    await self.send(response_for(event.pdu))
                else:
                    await self._events_in.send(event)
                if isinstance(event, ConnectionClosed):
                    self.closed.set()
                    return

    async def send(self, pdu: Pdu) -> None:
        async with self._send_lock:  # the test task and the reader (answering enquire_link) both write
            await self.stream.send_all(self.session.send(pdu, trio.current_time()))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def event(self) -> Event:
        return await self._events_out.receive()

    async def request(self, pdu: Pdu) -> Pdu:
        """Send a request and return its response (other events in between are kept in order for `event`)."""
        numbered = replace(pdu, sequence_number=self.session.new_sequence_number())
        await self.send(numbered)
        event = await self.event()
        assert isinstance(event, ResponseReceived), event
        assert event.request == numbered
        return event.response

    async def bind(self, pdu: Pdu | None = None) -> Pdu:
        return await self.request(pdu or BindTransceiver(sequence_number=0, system_id="acme", password=PASSWORD))

    async def wait_closed(self) -> None:
        await self.closed.wait()

