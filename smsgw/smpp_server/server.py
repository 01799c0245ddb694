"""The Trio shell around `SmppSession`: listeners, connections, binds, push of receipts/MO, shutdown.

Per connection there is one reader task (bytes in, events out, answers) and one timer task sleeping until the
session's next deadline, so an idle bind costs two sleeping tasks. Requests that go to the backend are queued
on one finite memory channel to `workers` server-wide worker tasks, at most `max_pending_requests` per
connection: when a connection has that many pending, or the queue is full, the reader stops reading, so a fast
ESME is slowed by TCP instead of growing a queue. The submit_sm/data_sm of one read travel as one job: one
throttle pass, one `submit_many` call (one durable commit in the scheduler), one write of all their responses;
meanwhile the reader goes on with the next read. All writes of a connection go through one lock, and responses
finished together leave in one write.

Receipts and MO are pushed by one task per account with at least one receiver/transceiver bind: it takes the
next item from the backend, and every further one the backend has ready, and offers them to the account's binds
round robin, within each bind's window; what one bind was given goes out in one write. An item is acknowledged
only after deliver_sm_resp OK and released back to the backend on an error status, a timeout or a disconnect.
"""

from __future__ import annotations

import logging
import ssl
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

import trio

from smsgw.config import AccountConfig, Config, ConfigHolder, holding
from smsgw.pdu.constants import CommandId, CommandStatus, InterfaceVersion
from smsgw.pdu.smpp import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CancelSm,
    EnquireLink,
    EnquireLinkResp,
    Outbind,
    Pdu,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    Unbind,
    UnbindResp,
    UnsuccessSme,
    response_for,
)
from smsgw.pdu.errors import PduError
from smsgw.pdu.smpp_time import format_absolute
from smsgw.pdu.tlv import Tlvs
from smsgw.smpp_server.accounts import BIND_TYPES, Accounts, BindRefused
from smsgw.smpp_server.audit import AuditLog
from smsgw.smpp_server.login import Login
from smsgw.smpp_server.backend import BackendError, OutboundItem, SmppBackend
from smsgw.smpp_server.session import (
    ConnectionClosed,
    EnquireLinkDue,
    Event,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    ResponseTimedOut,
    SessionTimedOut,
    SmppSession,
    SubmissionsReceived,
    UnexpectedResponse,
    submission_response,
)
from smsgw.smpp_server.states import BIND_RESPONSES, BOUND, BindState, Role
from smsgw.smpp_server.throttle import TokenBucket
from smsgw.smpp_server.validation import multi_address_error

log = logging.getLogger(__name__)

_RECEIVE_BYTES: Final = 65536
_PUSHED: Final = frozenset({CommandId.DELIVER_SM, CommandId.DATA_SM})
# Answered one by one by the workers (submit_sm/data_sm come as `SubmissionsReceived`, answered in batches).
_BACKEND_OPERATIONS: Final = frozenset(
    {
        CommandId.SUBMIT_MULTI,
        CommandId.QUERY_SM,
        CommandId.CANCEL_SM,
        CommandId.REPLACE_SM,
    }
)
_RECEIVER_BINDS: Final = frozenset({BindState.BOUND_RX, BindState.BOUND_TRX})
_BIND_TYPE_OF_STATE: Final = {
    BindState.BOUND_TX: "transmitter", BindState.BOUND_RX: "receiver", BindState.BOUND_TRX: "transceiver"
}
# Releasing items back to the backend must not hang a closing connection forever.
_RELEASE_TIMEOUT_S: Final = 5.0
_OUTBOX_HIGH_WATER: Final = 65536
# After the backend failed to give the next receipt/MO, wait this long before asking again.
_PUSHER_RETRY_S: Final = 1.0
_RESPONSE_BIT: Final = 0x80000000
_BIND_RESPONSES: Final[dict[int, type[BindTransmitterResp] | type[BindReceiverResp] | type[BindTransceiverResp]]] = {
    CommandId.BIND_TRANSMITTER: BindTransmitterResp,
    CommandId.BIND_RECEIVER: BindReceiverResp,
    CommandId.BIND_TRANSCEIVER: BindTransceiverResp,
}


# A worker's job: the connection and its requests (submissions of one read, or one other operation).
_Job = tuple["SmppConnection", SubmissionsReceived | RequestReceived]


@dataclass(frozen=True, slots=True)
class SmppListeners:
    """Where `serve_smpp` listens (the real ports when the config says 0), and the running server (its binds and
    counters, read by the HTTP face's /metrics and /readyz)."""

    port: int
    tls_port: int | None
    server: SmppServer


async def serve_smpp(
    config: Config | ConfigHolder,
    backend: SmppBackend,
    *,
    shutdown_trigger: trio.Event | None = None,
    login: Login | None = None,
    task_status: trio.TaskStatus[SmppListeners] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve SMPP until cancelled, or until `shutdown_trigger` is set: then shut down in two stages and return.

    Stage 1 stops accepting connections and outbinds; stage 2 unbinds every session and gives them
    `shutdown_grace_s` to answer what is outstanding before the rest is cancelled.

    A `ConfigHolder` is followed through reloads: binds check the current accounts, new connections get the
    current session settings; listeners, workers, the bind guard and outbinds keep what they started with.
    `login` shares the bind guard with the gateway's other fronts (HTTP); without one the server makes its own.
    """
    holder = holding(config)
    audit = AuditLog(holder.current.smpp.audit_log_path)
    try:
        async with trio.open_nursery() as nursery:
            server = SmppServer(holder, backend, nursery, audit, login)
            accepting, outbinding = trio.CancelScope(), trio.CancelScope()
            listeners: SmppListeners = await nursery.start(server.listen, accepting)
            nursery.start_soon(server.outbind, outbinding)
            log.info("smpp listening port=%s tls_port=%s", listeners.port, listeners.tls_port)
            task_status.started(listeners)
            if shutdown_trigger is None:
                await trio.sleep_forever()
            else:
                await shutdown_trigger.wait()
            accepting.cancel()
            outbinding.cancel()
            await server.drain()
            nursery.cancel_scope.cancel()
    finally:
        audit.close()


class SmppServer:
    """Shared state of all connections: accounts, binds, throttles, pushers. Tasks run in `nursery`."""

    def __init__(
        self, config: Config | ConfigHolder, backend: SmppBackend, nursery: trio.Nursery, audit: AuditLog,
        login: Login | None = None,
    ) -> None:
        self._holder = holding(config)
        self.backend = backend
        smpp = self._holder.current.smpp
        self.login = login or Login(self._holder)  # shared with the gateway's other fronts when given
        self.audit = audit
        self.connections: set[SmppConnection] = set()
        self.connections_ended = 0  # connections whose cleanup ran (they closed their stream)
        self._per_address: dict[str, int] = {}  # connections in `connections` by source address
        self._nursery = nursery
        # Backend operations of all connections go through one finite queue to a fixed set of workers: no task per
        # request, a bounded number of backend calls in progress, and a full queue stops the readers.
        self._requests, requests = trio.open_memory_channel[_Job](smpp.request_queue_size)
        for _ in range(smpp.workers):
            nursery.start_soon(self._worker, requests.clone())
        requests.close()
        self._binds: dict[str, list[SmppConnection]] = {}
        self._buckets: dict[tuple[str, float, float], TokenBucket] = {}
        self._pushers: dict[str, _Pusher] = {}
        self._stopping = False
        # submit_sm/data_sm answered, by command_status (0: stored): read by /metrics at scrape time.
        self.submissions: Counter[int] = Counter()

    @property
    def config(self) -> Config:
        return self._holder.current

    @property
    def accounts(self) -> Accounts:
        return self.login.accounts

    @property
    def listening(self) -> bool:
        """Accepting connections: false once shutdown began."""
        return not self._stopping

    def sessions(self) -> Counter[tuple[str, str]]:
        """Bound sessions by (system_id, bind type), for metrics."""
        counts: Counter[tuple[str, str]] = Counter()
        for system_id, connections in self._binds.items():
            for connection in connections:
                bind_type = _BIND_TYPE_OF_STATE.get(connection.session.state)
                if bind_type is not None:
                    counts[system_id, bind_type] += 1
        return counts

    async def listen(self, accepting: trio.CancelScope, *, task_status: trio.TaskStatus[SmppListeners]) -> None:
        smpp = self.config.smpp
        with accepting:
            listeners: list[trio.abc.Listener[trio.abc.Stream]] = []
            tcp = await trio.open_tcp_listeners(smpp.port, host=smpp.host)
            listeners.extend(tcp)
            tls_port: int | None = None
            if smpp.tls_port is not None:
                if not smpp.tls_cert_path or not smpp.tls_key_path:
                    raise ValueError("[smpp] tls_port needs tls_cert_path and tls_key_path")
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(smpp.tls_cert_path, smpp.tls_key_path)
                tls = await trio.open_tcp_listeners(smpp.tls_port, host=smpp.host)
                listeners.extend(trio.SSLListener(listener, context) for listener in tls)
                tls_port = tls[0].socket.getsockname()[1]
            task_status.started(SmppListeners(tcp[0].socket.getsockname()[1], tls_port, self))
            await trio.serve_listeners(self._serve_stream, listeners, handler_nursery=self._nursery)

    async def _serve_stream(self, stream: trio.abc.Stream) -> None:
        transport = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
        assert isinstance(transport, trio.SocketStream)
        host, port = transport.socket.getpeername()[:2]
        await self.handle_connection(stream, (host, port))

    async def handle_connection(self, stream: trio.abc.Stream, peer: tuple[str, int]) -> None:
        """Run one accepted connection to its end (public so tests can drive it over memory streams).

        Beyond `max_connections`, or `max_connections_per_address` from its address, it is closed at once, before
        any read: a bind_resp would need the bind read first, and holding the connection until it comes (up to
        `session_init_timeout_s`) is what the caps are there to prevent."""
        smpp = self.config.smpp
        if len(self.connections) >= smpp.max_connections:
            refusal = "too many connections"
        elif self._per_address.get(peer[0], 0) >= smpp.max_connections_per_address:
            refusal = "too many connections from the address"
        else:
            await SmppConnection(self, stream, peer).run()
            return
        self.audit.record(source=f"{peer[0]}:{peer[1]}", event="connect", outcome=refusal)
        await trio.aclose_forcefully(stream)

    def opened(self, connection: SmppConnection) -> None:
        self.connections.add(connection)
        address = connection.peer[0]
        self._per_address[address] = self._per_address.get(address, 0) + 1

    def ended(self, connection: SmppConnection) -> None:
        self.connections.discard(connection)
        self.connections_ended += 1
        address = connection.peer[0]
        left = self._per_address.pop(address, 1) - 1
        if left:
            self._per_address[address] = left

    async def drain(self) -> None:
        self._stopping = True
        for pusher in list(self._pushers.values()):
            pusher.stop()
        with trio.move_on_after(self.config.smpp.shutdown_grace_s):
            async with trio.open_nursery() as nursery:
                for connection in list(self.connections):
                    nursery.start_soon(connection.shutdown)
        if self.connections:
            log.warning("smpp shutdown grace over connections=%d", len(self.connections))

    async def outbind(self, outbinding: trio.CancelScope) -> None:
        """Outbind to every account that has an outbind address, until `outbinding` is cancelled."""
        with outbinding:
            async with trio.open_nursery() as nursery:
                for account in self.accounts:
                    if account.outbind_host is not None:
                        nursery.start_soon(self._outbind_loop, account)

    async def _outbind_loop(self, account: AccountConfig) -> None:
        """Keep an outbind connection to the ESME while it has no receiver bind of its own."""
        assert account.outbind_host is not None and account.outbind_port is not None
        while True:
            if not self.receivers(account.system_id):
                try:
                    stream = await trio.open_tcp_stream(account.outbind_host, account.outbind_port)
                except OSError as exc:
                    log.info("outbind failed system_id=%s error=%r", account.system_id, exc)
                else:
                    # The address actually connected to: allowed_networks checks the bind that follows.
                    host, port = stream.socket.getpeername()[:2]
                    connection = SmppConnection(self, stream, (host, port), outbind=account)
                    # Run like an accepted connection, so stopping outbinds does not cut it off (the drain does).
                    self._nursery.start_soon(connection.run)
                    await connection.closed.wait()
            await trio.sleep(account.outbind_interval_s)

    # ---- binds ---------------------------------------------------------------------------------------------

    def receivers(self, system_id: str) -> list[SmppConnection]:
        return [c for c in self._binds.get(system_id, ()) if c.session.state in _RECEIVER_BINDS]

    def try_register(self, connection: SmppConnection, account: AccountConfig) -> bool:
        binds = self._binds.setdefault(account.system_id, [])
        if len(binds) >= account.max_binds:
            return False
        binds.append(connection)
        return True

    def bound(self, connection: SmppConnection, account: AccountConfig) -> None:
        """`connection` is bound now: a receiver starts (or joins) the account's pusher."""
        if connection.session.state not in _RECEIVER_BINDS or self._stopping:
            return
        pusher = self._pushers.get(account.system_id)
        if pusher is None:
            pusher = self._pushers[account.system_id] = _Pusher(self, account.system_id, self._nursery)
            self._nursery.start_soon(pusher.run)
        pusher.wake()

    def unregister(self, connection: SmppConnection, account: AccountConfig) -> None:
        binds = self._binds.get(account.system_id, [])
        if connection in binds:
            binds.remove(connection)
        if not binds:
            self._binds.pop(account.system_id, None)
        pusher = self._pushers.get(account.system_id)
        if pusher is not None:
            if self.receivers(account.system_id):
                pusher.wake()
            else:
                del self._pushers[account.system_id]
                pusher.stop()

    async def enqueue(self, connection: SmppConnection, requests: SubmissionsReceived | RequestReceived) -> None:
        try:
            self._requests.send_nowait((connection, requests))
        except trio.WouldBlock:
            await self._requests.send((connection, requests))

    async def _worker(self, requests: trio.MemoryReceiveChannel[_Job]) -> None:
        async for connection, job in requests:
            try:
                await connection.answer(job)
            except Exception:  # a task boundary: one bad request must not take the server down
                command_id = job.pdus[0].command_id if isinstance(job, SubmissionsReceived) else job.pdu.command_id
                log.exception("request failed source=%s command_id=0x%08X", connection.source, command_id)
                connection.close()

    def window_freed(self, system_id: str) -> None:
        pusher = self._pushers.get(system_id)
        if pusher is not None:
            pusher.wake()

    def bucket(self, account: AccountConfig) -> TokenBucket:
        """The account's throughput limit, shared by all its binds, at the current config's rate: binds made
        before a reload changed it count against the new one."""
        current = self.accounts.get(account.system_id) or account
        key = (current.system_id, current.throughput_per_s, current.throughput_burst)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(
                current.throughput_per_s, current.throughput_burst, trio.current_time()
            )
        return bucket

    async def release_items(self, items: list[OutboundItem]) -> None:
        """Give undelivered items back, even while being cancelled (they would be stuck reserved otherwise)."""
        if not items:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(_RELEASE_TIMEOUT_S):
            for item in items:
                try:
                    await self.backend.release(item.item_id)
                except Exception:
                    log.exception("release failed item_id=%s", item.item_id)


class _Pusher:
    """Moves one account's receipts/MO from the backend to its receiver binds, round robin within windows."""

    def __init__(self, server: SmppServer, system_id: str, nursery: trio.Nursery) -> None:
        self._server = server
        self._system_id = system_id
        self._nursery = nursery  # the writers' (the server's)
        self._scope = trio.CancelScope()
        self._changed = trio.Event()
        self._next = 0

    def wake(self) -> None:
        self._changed.set()

    def stop(self) -> None:
        self._scope.cancel()

    async def run(self) -> None:
        with self._scope:
            while True:
                try:
                    item = await self._server.backend.next_outbound(self._system_id)
                except Exception:  # a task boundary: a failing backend must not take the server down
                    log.exception("next_outbound failed system_id=%s", self._system_id)
                    await trio.sleep(_PUSHER_RETRY_S)
                    continue
                await self._push(item)

    async def _push(self, first: OutboundItem) -> None:
        """Send `first` and whatever else the backend has ready, as far as the windows allow, each bind's share
        in one write: a write (and the ESME's wake-up) per deliver_sm would bound the receipt rate."""
        item: OutboundItem | None = first  # not yet on a bind: ours to release if we are cancelled
        touched: dict[SmppConnection, None] = {}
        try:
            while item is not None:
                connection = self._offer(item)
                if connection is None:
                    self._write(touched)  # what is queued goes out before waiting for room
                    self._changed = trio.Event()
                    await self._changed.wait()
                    continue
                item = None
                touched[connection] = None
                item = await self._offer_ready(touched)
            self._write(touched)
        except BaseException:
            self._write(touched)
            if item is not None:
                await self._server.release_items([item])
            raise

    async def _offer_ready(self, touched: dict[SmppConnection, None]) -> OutboundItem | None:
        """Queue the items the backend has at hand while a bind has room, without waiting for more; returns the
        one that found no room, if any. `next_outbound` is cancel-safe (a pusher is stopped by cancelling it), so
        asked under a cancelled scope it waits for nothing: it returns before its first checkpoint or is
        cancelled at it."""
        with trio.CancelScope() as probe:
            probe.cancel()
            try:
                while True:
                    item = await self._server.backend.next_outbound(self._system_id)
                    connection = self._offer(item)
                    if connection is None:
                        return item
                    touched[connection] = None
            except Exception:  # the blocking call that follows reports it and backs off
                pass
        return None

    def _write(self, touched: dict[SmppConnection, None]) -> None:
        """Have what the binds were given written, each bind by a task of its own: an ESME that does not read
        holds up neither the others' items (their response timeouts run already) nor the pusher. A failed write
        closes its connection, whose cleanup releases the items."""
        for connection in touched:
            self._nursery.start_soon(connection.flush)
        touched.clear()

    def _offer(self, item: OutboundItem) -> SmppConnection | None:
        """Queue `item` on the next bind with room in its window; None if none has room."""
        receivers = self._server.receivers(self._system_id)
        for offset in range(len(receivers)):
            connection = receivers[(self._next + offset) % len(receivers)]
            if connection.session.window_available > 0:
                self._next = (self._next + offset + 1) % len(receivers)
                if connection.push(item):
                    return connection
        return None


class SmppConnection:
    """One TCP/TLS connection (accepted, or opened by us for outbind) and its session."""

    def __init__(
        self,
        server: SmppServer,
        stream: trio.abc.Stream,
        peer: tuple[str, int],
        *,
        outbind: AccountConfig | None = None,
    ) -> None:
        self.server = server
        self.stream = stream
        self.peer = peer
        self.source = f"{peer[0]}:{peer[1]}"
        self.session = SmppSession(Role.SMSC, server.config.smpp, opened_at=trio.current_time())
        self.account: AccountConfig | None = None
        self._outbind = outbind
        self._send_lock = trio.Lock()
        self._outbox = bytearray()
        self._drained = trio.Event()
        # Requests handed to the workers and not answered yet; the reader waits on `_room` at the limit.
        self._pending = 0
        self._room = trio.Event()
        self._pushed: dict[int, OutboundItem] = {}
        self._timer_scope = trio.CancelScope()
        self._receive_scope = trio.CancelScope()
        self._closing = False
        self.closed = trio.Event()
        self._registered = False
        self._attempt_audited = False  # every connection leaves one audit record of how its bind attempt ended

    # ---- main loop -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        self.server.opened(self)
        log.debug("connection opened source=%s", self.source)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._timer_loop)
                try:
                    if self._outbind is not None:
                        await self._send_outbind(self._outbind)
                    await self._read_loop()
                finally:
                    # Operations still running (only if the wait for them at close ran out) finish against a
                    # closed session: their answers are dropped.
                    if self.session.state is not BindState.CLOSED:
                        self.session.close()
                    # The timer task ends with the reader, wherever it is: it may not even have started yet (a
                    # first read that is the EOF), and would then sleep towards the closed session's `math.inf`.
                    nursery.cancel_scope.cancel()
        except Exception:  # a task boundary: a bug seen by one connection ends that connection only
            log.exception("connection failed source=%s", self.source)
        finally:
            await self._cleanup()

    async def _read_loop(self) -> None:
        while self.session.state is not BindState.CLOSED and not self._closing:
            # Only the wait for data is cancellable by `close()`: a response being written is never cut off.
            with trio.CancelScope() as self._receive_scope:
                while len(self._outbox) >= _OUTBOX_HIGH_WATER:
                    # The ESME does not read its answers: stop reading its requests until it does.
                    self._drained = trio.Event()
                    await self._drained.wait()
                try:
                    data = await self.stream.receive_some(_RECEIVE_BYTES)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
            if self._receive_scope.cancelled_caught:
                return
            if not data:
                # A half-closed ESME may still read: what it submitted before its EOF is stored, so its
                # acknowledgements are written before the session learns of the close (which would drop them).
                await self._settle("eof")
            self.session.receive_data(bytes(data), trio.current_time())  # no copy: trio streams give bytes
            await self._handle_events()

    async def _timer_loop(self) -> None:
        while True:
            with trio.CancelScope(deadline=self.session.next_deadline()) as self._timer_scope:
                await trio.sleep_forever()
            if self.session.state is BindState.CLOSED:
                return
            self.session.handle_timers(trio.current_time())
            await self._handle_events()

    def _reschedule(self) -> None:
        deadline = self.session.next_deadline()
        if deadline != self._timer_scope.deadline:
            self._timer_scope.deadline = deadline

    async def _cleanup(self) -> None:
        with trio.CancelScope(shield=True):
            self.closed.set()
            self.server.ended(self)
            items = list(self._pushed.values())
            self._pushed.clear()
            if self.account is not None and self._registered:
                self.server.unregister(self, self.account)
                self.server.audit.record(
                    source=self.source, event="disconnect", outcome="closed", system_id=self.account.system_id
                )
            else:
                self._audit_attempt("closed before bind")
            await self.server.release_items(items)
            with trio.move_on_after(1):
                await self.stream.aclose()
        log.debug("connection closed source=%s released=%d", self.source, len(items))

    def _audit_attempt(self, outcome: str) -> None:
        """Audit a connection that ends without a bind, unless its refused bind was audited already."""
        if not self._attempt_audited:
            self._attempt_audited = True
            self.server.audit.record(source=self.source, event="connect", outcome=outcome)

    def close(self) -> None:
        """Stop reading; `run` then cleans up (releases pushed items, unregisters the bind, closes the stream)."""
        self._closing = True
        self._receive_scope.cancel()
        self._room.set()  # a reader settling its pending requests stops waiting for them

    async def _settle(self, reason: str, final: Pdu | None = None) -> None:
        """Before the connection ends (unbind either way, EOF), with no new request read meanwhile: wait for every
        request handed to the workers to be answered, queue `final` after those answers, and write it all; each
        wait at most `response_timeout_s`. An ESME told nothing about a stored submission resubmits it."""
        timeout = self.server.config.smpp.response_timeout_s
        with trio.move_on_after(timeout):
            while self._pending and not self._closing:
                self._room = trio.Event()
                await self._room.wait()
        if self._pending:
            log.warning("closing with requests unanswered source=%s reason=%s pending=%d", self.source, reason,
                        self._pending)
        if final is not None:
            self._queue(final)
        with trio.move_on_after(timeout):
            await self.flush(wait=True)
        if self._outbox:
            log.warning("closing with responses unwritten source=%s reason=%s bytes=%d", self.source, reason,
                        len(self._outbox))

    async def shutdown(self) -> None:
        """Graceful: unbind if bound (the ESME answers outstanding deliver_sm first), else close; wait for the end."""
        if self.session.state is BindState.OPEN:
            self.close()
        else:
            await self._unbind()
        await self.closed.wait()

    async def _unbind(self) -> None:
        """Ask the ESME to unbind; its unbind_resp (or the response timeout) then closes the connection."""
        if self.session.state in BOUND:
            await self._send_request(Unbind(sequence_number=0))

    # ---- writing -------------------------------------------------------------------------------------------

    def _queue(self, pdu: Pdu) -> bool:
        """Encode `pdu` into the outgoing buffer (numbering and accounting happen here, with no await between)."""
        if self.session.state is BindState.CLOSED:
            return False
        self._outbox += self.session.send(pdu, trio.current_time())
        if not pdu.command_id & _RESPONSE_BIT or pdu.command_id in BIND_RESPONSES:
            # Only a request (a new response deadline) or a bind response (the session-init timer) can bring the
            # deadline forward; anything else only postpones it, and the timer task re-reads it when it wakes.
            self._reschedule()
        return True

    async def flush(self, *, wait: bool = False) -> None:
        """Write the outgoing buffer. One writer at a time: a task that finds another writing leaves its bytes to
        that writer (which loops until the buffer is empty), so responses finished together go out in one write
        and a peer that does not read holds up one task, not every worker. The reader stops reading while the
        buffer is above its high-water mark. With `wait`, return only once the buffer is written (or the write
        failed), e.g. before closing the stream."""
        lock = self._send_lock
        if not lock.locked():
            lock.acquire_nowait()  # not `async with`: its checkpoint would be a scheduler pass per write
        elif wait:
            await lock.acquire()
        else:
            return
        try:
            while self._outbox:
                data = bytes(self._outbox)
                self._outbox.clear()
                try:
                    await self.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._outbox.clear()
                    self.close()
                finally:
                    self._drained.set()
        finally:
            lock.release()

    async def _send(self, pdu: Pdu) -> bool:
        if not self._queue(pdu):
            return False
        await self.flush()
        return True

    async def _send_request(self, pdu: Pdu) -> Pdu | None:
        """Number `pdu` and send it; returns it as sent, or None if the connection is gone."""
        numbered = replace(pdu, sequence_number=self.session.new_sequence_number())
        return numbered if await self._send(numbered) else None

    def push(self, item: OutboundItem) -> bool:
        """Queue a receipt/MO as the next deliver_sm, written by the next `flush`; the item is ours to
        acknowledge or release from now on."""
        if self.session.state not in _RECEIVER_BINDS or self.session.window_available <= 0:
            return False
        pdu = replace(item.pdu, sequence_number=self.session.new_sequence_number())
        self._pushed[pdu.sequence_number] = item
        self._queue(pdu)
        return True

    async def _send_outbind(self, account: AccountConfig) -> None:
        await self._send_request(
            Outbind(sequence_number=0, system_id=account.system_id, password=account.outbind_password)
        )
        self.server.audit.record(source=self.source, event="outbind", outcome="sent", system_id=account.system_id)

    # ---- events --------------------------------------------------------------------------------------------

    async def _handle_events(self) -> None:
        self._reschedule()  # once per read, so the timer does not sleep towards a deadline that has moved
        while (event := self.session.next_event()) is not None:
            if isinstance(event, SubmissionsReceived):
                await self._dispatch(event)
            else:
                await self._handle_event(event)

    async def _dispatch(self, requests: SubmissionsReceived | RequestReceived) -> None:
        """Hand `requests` (submissions of one read, or one other operation) to the workers, at most
        `max_pending_requests` outstanding: at the limit the reader waits here (backpressure) until answers are
        out, and submissions beyond the room left go in a later job."""
        limit = self.server.config.smpp.max_pending_requests
        while True:
            while self._pending >= limit:
                self._room = trio.Event()
                await self._room.wait()
            room = limit - self._pending
            if isinstance(requests, RequestReceived) or len(requests.pdus) <= room:
                self._pending += 1 if isinstance(requests, RequestReceived) else len(requests.pdus)
                await self.server.enqueue(self, requests)
                return
            self._pending += room
            await self.server.enqueue(self, SubmissionsReceived(requests.pdus[:room], requests.segments[:room]))
            requests = SubmissionsReceived(requests.pdus[room:], requests.segments[room:])

    async def _handle_event(self, event: Event) -> None:
        match event:
            case RequestReceived(pdu=pdu, segments=segments):
                await self._handle_request(pdu, segments)
            case ResponseReceived(request=request, response=response):
                await self._handle_response(request, response)
            case RequestRejected(response=response, reason=reason, close=close):
                log.info("rejected source=%s reason=%r command_status=0x%08X", self.source, reason,
                         response.command_status)
                await self._send(response)
                if close:
                    self.close()
            case ResponseTimedOut(request=request):
                log.info("response timeout source=%s command_id=0x%08X", self.source, request.command_id)
                await self._response_failed(request)
                if request.command_id == CommandId.ENQUIRE_LINK or request.command_id == CommandId.UNBIND:
                    self.close()
            case EnquireLinkDue():
                if self.session.state in BOUND:  # not if an unbind came in since the timer fired
                    await self._send_request(EnquireLink(sequence_number=0))
            case SessionTimedOut(reason="pdu_read"):
                log.info("incomplete pdu timeout source=%s", self.source)
                self._audit_attempt("incomplete PDU")
                self.close()
            case SessionTimedOut(reason="session_init"):
                self._audit_attempt("no bind before timeout")
                self.close()
            case SessionTimedOut():
                log.info("inactivity source=%s", self.source)
                await self._unbind()
            case UnexpectedResponse(pdu=pdu):
                log.info("unexpected response source=%s command_id=0x%08X sequence_number=%d", self.source,
                         pdu.command_id, pdu.sequence_number)
            case ConnectionClosed():
                pass  # the read loop ends on the closed state

    async def _handle_request(self, pdu: Pdu, segments: int) -> None:
        command_id = pdu.command_id
        if command_id in _BACKEND_OPERATIONS:
            await self._dispatch(RequestReceived(pdu, segments))
        elif isinstance(pdu, BindTransmitter | BindReceiver | BindTransceiver):
            await self._bind(pdu)
        elif command_id == CommandId.ENQUIRE_LINK:
            await self._send(EnquireLinkResp(sequence_number=pdu.sequence_number))
        elif command_id == CommandId.UNBIND:
            # SMPP 3.4 4.2: outstanding requests are answered before unbind_resp. The reader is here, so nothing
            # new is read meanwhile; the session refuses whatever follows in the same read (it is unbound).
            await self._settle("unbind", UnbindResp(sequence_number=pdu.sequence_number))
            if self.account is not None:
                self.server.audit.record(
                    source=self.source, event="unbind", outcome="ok", system_id=self.account.system_id
                )
            self.close()

    async def _handle_response(self, request: Pdu, response: Pdu) -> None:
        if request.command_id == CommandId.UNBIND:
            await self._settle("unbind_resp")
            self.close()
        elif response.command_status != CommandStatus.ESME_ROK:
            await self._response_failed(request, response.command_status)
        elif request.command_id in _PUSHED:
            item = self._pushed.pop(request.sequence_number, None)
            if item is not None:
                try:
                    await self.server.backend.acknowledge(item.item_id)
                except Exception:
                    log.exception("acknowledge failed item_id=%s", item.item_id)
                self.server.window_freed(item.account)

    async def _response_failed(self, request: Pdu, command_status: int | None = None) -> None:
        item = self._pushed.pop(request.sequence_number, None)
        if item is not None:
            log.info("deliver_sm not taken item_id=%s command_status=%s", item.item_id, command_status)
            await self.server.release_items([item])
            self.server.window_freed(item.account)

    # ---- bind ----------------------------------------------------------------------------------------------

    async def _bind(self, pdu: BindTransmitter | BindReceiver | BindTransceiver) -> None:
        server = self.server
        bind_type = BIND_TYPES[CommandId(pdu.command_id)]
        ip = self.peer[0]
        try:
            account = await server.login.authenticate(pdu.system_id, pdu.password, ip, CommandId(pdu.command_id))
            if not server.try_register(self, account):
                raise BindRefused("too many binds", command_status=CommandStatus.ESME_RALYBND)
        except BindRefused as exc:
            self._attempt_audited = True
            server.audit.record(
                source=self.source,
                event="bind",
                outcome=exc.reason,
                system_id=pdu.system_id,
                bind_type=bind_type,
                command_status=exc.command_status,
            )
            await self._send(response_for(pdu, command_status=exc.command_status))
            self.close()
            return
        self.account = account
        self._registered = True
        response = _BIND_RESPONSES[pdu.command_id](
            sequence_number=pdu.sequence_number,
            system_id=server.config.smpp.system_id,
            tlvs=Tlvs(sc_interface_version=InterfaceVersion.SMPP_3_4),
        )
        if not await self._send(response):
            return
        self._attempt_audited = True
        server.audit.record(source=self.source, event="bind", outcome="ok", system_id=account.system_id,
                            bind_type=bind_type)
        server.bound(self, account)

    # ---- operations ----------------------------------------------------------------------------------------

    async def answer(self, requests: SubmissionsReceived | RequestReceived) -> None:
        """Run in a server worker: call the backend, answer, and let the reader take as many more requests."""
        try:
            if isinstance(requests, SubmissionsReceived):
                await self._answer_submissions(requests)
            else:
                await self._answer_operation(requests.pdu, requests.segments)
        finally:
            self._pending -= len(requests.pdus) if isinstance(requests, SubmissionsReceived) else 1
            self._room.set()

    async def _answer_submissions(self, submissions: SubmissionsReceived) -> None:
        """Throttle the submissions, give the backend the rest in one `submit_many`, write every answer at once
        (in the order of the requests)."""
        account = self.account
        assert account is not None  # the session only lets these through in a bound state
        now = trio.current_time()
        pdus = submissions.pdus
        taken = self.server.bucket(account).take_each(submissions.segments, now)
        throttled = False in taken
        accepted = [pdu for pdu, ok in zip(pdus, taken) if ok] if throttled else pdus
        results: Sequence[str | BackendError] = ()
        if accepted:
            try:
                results = await self.server.backend.submit_many(account.system_id, accepted)
                if len(results) != len(accepted):
                    raise AssertionError(f"submit_many answered {len(results)} of {len(accepted)} submissions")
            except BackendError as exc:
                results = [exc] * len(accepted)
            except Exception:
                log.exception("submit_many failed source=%s count=%d", self.source, len(accepted))
                results = [BackendError("backend failed", command_status=CommandStatus.ESME_RSYSERR)] * len(accepted)
        if self.session.state is BindState.CLOSED:
            # Only after the wait for answers at close ran out (or the stream broke): the ESME will resubmit these.
            stored = [result for result in results if isinstance(result, str)]
            if stored:
                log.warning("stored submissions not acknowledged source=%s count=%d message_ids=%s", self.source,
                            len(stored), ",".join(stored))
            return
        stored_results = iter(results)
        outcomes: list[str | int] = [
            (result if isinstance(result := next(stored_results), str) else result.command_status)
            if ok
            else CommandStatus.ESME_RTHROTTLED
            for ok in taken
        ] if throttled else [result if isinstance(result, str) else result.command_status for result in results]
        self.server.submissions.update(CommandStatus.ESME_ROK if isinstance(o, str) else o for o in outcomes)
        now = trio.current_time()
        try:
            self._outbox += self.session.send_submission_responses(pdus, outcomes, now)
        except PduError:  # one of them cannot be encoded: find it
            for pdu, outcome in zip(pdus, outcomes):
                self._answer(pdu, submission_response(pdu, outcome), now)
        await self.flush()

    def _answer(self, request: Pdu, response: Pdu, now: float) -> None:
        """Queue the response to a request of the bound session (no bind response, nothing that reschedules)."""
        try:
            self._outbox += self.session.send(response, now)
        except PduError as exc:  # e.g. a message_id from the backend longer than SMPP allows
            log.error("response not encodable source=%s error=%s", self.source, exc)
            self._outbox += self.session.send(response_for(request, command_status=CommandStatus.ESME_RSYSERR), now)

    async def _answer_operation(self, pdu: Pdu, segments: int) -> None:
        try:
            response = await self._operation(pdu, segments)
        except BackendError as exc:
            response = response_for(pdu, command_status=exc.command_status)
        except Exception:
            log.exception("operation failed source=%s command_id=0x%08X", self.source, pdu.command_id)
            response = response_for(pdu, command_status=CommandStatus.ESME_RSYSERR)
        if self.session.state is BindState.CLOSED:
            log.warning("response not sent, connection closed source=%s command_id=0x%08X command_status=0x%08X",
                        self.source, response.command_id, response.command_status)
            return
        self._answer(pdu, response, trio.current_time())
        await self.flush()

    async def _operation(self, pdu: Pdu, segments: int) -> Pdu:
        """Answer one bound request other than a submission through the backend; BackendError becomes the
        response's status.

        `segments` (from validation) is what the request costs against the account's throughput limit.
        """
        account = self.account
        assert account is not None  # the session only lets these through in a bound state
        backend = self.server.backend
        match pdu:
            case SubmitMulti():
                return await self._submit_multi(account, pdu, segments)
            case QuerySm():
                status = await backend.query(account.system_id, pdu.message_id, pdu.source_addr)
                return QuerySmResp(
                    sequence_number=pdu.sequence_number,
                    message_id=status.message_id,
                    final_date="" if status.final_date is None else format_absolute(status.final_date),
                    message_state=status.message_state,
                    error_code=status.error_code,
                )
            case CancelSm():
                await backend.cancel(account.system_id, pdu)
                return response_for(pdu)
            case ReplaceSm():
                await backend.replace(account.system_id, pdu)
                return response_for(pdu)
        raise AssertionError(f"no operation for {type(pdu).__name__}")

    async def _submit_multi(self, account: AccountConfig, pdu: SubmitMulti, segments: int) -> Pdu:
        """Refuse bad destinations one by one (unsuccess_sme); the rest go to the backend together."""
        accepted: list[SmeAddress] = []
        refused: list[UnsuccessSme] = []
        for destination in pdu.destinations:
            if not isinstance(destination, SmeAddress):
                # No distribution lists are kept here; SMPP has no unsuccess_sme entry for a list name.
                return response_for(pdu, command_status=CommandStatus.ESME_RCNTSUBDL)
            status = multi_address_error(destination.dest_addr_ton, destination.dest_addr_npi,
                                         destination.destination_addr)
            if status is None:
                accepted.append(destination)
            else:
                refused.append(UnsuccessSme(destination.dest_addr_ton, destination.dest_addr_npi,
                                            destination.destination_addr, status))
        if not accepted:
            return response_for(pdu, command_status=CommandStatus.ESME_RINVDSTADR)
        if not self.server.bucket(account).try_take(segments * len(accepted), trio.current_time()):
            return response_for(pdu, command_status=CommandStatus.ESME_RTHROTTLED)
        result = await self.server.backend.submit_multi(account.system_id, replace(pdu, destinations=tuple(accepted)))
        refused.extend(
            UnsuccessSme(u.dest_addr_ton, u.dest_addr_npi, u.destination_addr, u.error_status_code)
            for u in result.unsuccessful
        )
        return SubmitMultiResp(
            sequence_number=pdu.sequence_number, message_id=result.message_id, unsuccess_sme=tuple(refused)
        )
