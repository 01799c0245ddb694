"""A scripted SMSC for the upstream (ESME role) tests: our own sans-IO core in the SMSC role, over memory streams
(`connect`, for MockClock tests) or real sockets (`serve`)."""

from __future__ import annotations

import ssl

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import trio
import trio.testing

from smsgw.config import SmppConfig, UpstreamConfig
from smsgw.pdu.constants import CommandStatus
from smsgw.pdu.smpp import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    EnquireLink,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    response_for,
)
from smsgw.smpp_server.session import (
    ConnectionClosed,
    RequestReceived,
    ResponseReceived,
    SmppSession,
    SubmissionsReceived,
)
from smsgw.smpp_server.states import Role

# What the SMSC answers a submit_sm with; None: never answers it.
Answer = Callable[[SubmitSm, "SmscDouble"], Pdu | None]


def accept(pdu: SubmitSm, smsc: SmscDouble) -> Pdu:
    return SubmitSmResp(sequence_number=pdu.sequence_number, message_id=format(len(smsc.submits), "x"))


class SmscEnd:
    """One connection at the SMSC."""

    def __init__(self, smsc: SmscDouble, stream: trio.abc.Stream) -> None:
        self.smsc = smsc
        self.stream = stream
        config = SmppConfig(window=1000, enquire_link_interval_s=1e9, inactivity_timeout_s=0.0,
                            session_init_timeout_s=1e9, response_timeout_s=1e9)
        self.session = SmppSession(Role.SMSC, config, opened_at=trio.current_time())
        self.lock = trio.Lock()
        self.bound_as: str | None = None

    async def send(self, pdu: Pdu) -> None:
        if self.session.state.value == "closed":
            return
        data = self.session.send(pdu, trio.current_time())
        async with self.lock:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def request(self, pdu: Pdu) -> Pdu:
        numbered = replace(pdu, sequence_number=self.session.new_sequence_number())
        await self.send(numbered)
        return numbered

    async def drop(self) -> None:
        await trio.aclose_forcefully(self.stream)

    async def run(self) -> None:
        smsc = self.smsc
        smsc.ends.append(self)
        try:
            while True:
                try:
                    data = await self.stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                self.session.receive_data(data, trio.current_time())
                while (event := self.session.next_event()) is not None:
                    await self._handle(event)
                    if isinstance(event, ConnectionClosed):
                        return
                smsc.changed()
        finally:
            if self in smsc.ends:
                smsc.ends.remove(self)
            await trio.aclose_forcefully(self.stream)
            smsc.changed()

    async def _handle(self, event: Any) -> None:
        smsc = self.smsc
        match event:
            case RequestReceived(pdu=BindTransmitter() | BindReceiver() | BindTransceiver() as pdu):
                smsc.binds.append(pdu)
                status = smsc.bind_status
                await self.send(replace(response_for(pdu, command_status=status), system_id="double")
                                if status == 0 else response_for(pdu, command_status=status))
                if status == 0:
                    self.bound_as = type(pdu).__name__
                else:
                    await self.drop()
            case RequestReceived(pdu=EnquireLink() as pdu):
                await self.send(response_for(pdu))
            case RequestReceived(pdu=Unbind() as pdu):
                smsc.unbinds += 1
                await self.send(response_for(pdu))
                await self.drop()
            case SubmissionsReceived(pdus=pdus):
                for pdu in pdus:
                    assert isinstance(pdu, SubmitSm)
                    smsc.submits.append(pdu)
                    answer = smsc.answer(pdu, smsc)
                    if answer is not None:
                        await self.send(answer)
            case ResponseReceived(request=request, response=response):
                smsc.responses.append((request, response))
            case _:
                pass


class SmscDouble:
    def __init__(self, nursery: trio.Nursery, *, bind_status: int = CommandStatus.ESME_ROK,
                 answer: Answer = accept) -> None:
        self.nursery = nursery
        self.bind_status = bind_status
        self.answer = answer
        self.refuse_connections = False
        self.connects = 0
        self.binds: list[Pdu] = []
        self.submits: list[SubmitSm] = []
        self.responses: list[tuple[Pdu, Pdu]] = []
        self.unbinds = 0
        self.ends: list[SmscEnd] = []
        self._changed = trio.Event()

    def changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()

    async def connect(self, config: UpstreamConfig) -> trio.abc.Stream:
        """`Upstream(connect=...)`: a memory stream to a new connection of this SMSC."""
        self.connects += 1
        if self.refuse_connections:
            raise OSError(111, "Connection refused")
        ours, theirs = trio.testing.memory_stream_pair()
        self.nursery.start_soon(SmscEnd(self, theirs).run)
        return ours

    async def serve(
        self, ssl_context: ssl.SSLContext | None = None, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on 127.0.0.1, port 0 (over TLS with `ssl_context`); reports the port."""
        tcp = await trio.open_tcp_listeners(0, host="127.0.0.1")
        task_status.started(tcp[0].socket.getsockname()[1])
        listeners: list[trio.abc.Listener[trio.abc.Stream]] = (
            list(tcp) if ssl_context is None else [trio.SSLListener(listener, ssl_context) for listener in tcp]
        )

        async def handle(stream: trio.abc.Stream) -> None:
            self.connects += 1
            await SmscEnd(self, stream).run()

        await trio.serve_listeners(handle, listeners)

    def receiver(self) -> SmscEnd:
        (end,) = [end for end in self.ends if end.bound_as in ("BindTransceiver", "BindReceiver")]
        return end

    async def deliver(self, pdu: DeliverSm) -> DeliverSm:
        numbered = await self.receiver().request(pdu)
        assert isinstance(numbered, DeliverSm)
        return numbered
