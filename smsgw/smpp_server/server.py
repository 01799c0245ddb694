"""The SMPP server: listeners, connections, binds, push of receipts/MO, shutdown.

Each connection is a `smsc_connection.SmppConnection` (the SMSC role on `connection.SessionShell`). Per connection
there is one reader task (bytes in, events out, answers) and one timer task sleeping until the
session's next deadline, so an idle bind costs two sleeping tasks. Requests that go to the backend are queued
on one finite memory channel to `workers` server-wide worker tasks, at most `max_pending_requests` per
connection: when a connection has that many pending, or the queue is full, the reader stops reading, so a fast
ESME is slowed by TCP instead of growing a queue. The submit_sm/data_sm of one read travel as one job: one
throttle pass, one `submit_many` call (one durable commit in the scheduler), one write of all their responses;
meanwhile the reader goes on with the next read. All writes of a connection go through one lock, and responses
finished together leave in one write.

A bind counts against its account's `max_binds` here and, given the store's bind registry (`binds.py`), on every
node sharing the store: one store write per bind and per unbind, none per PDU; the account's throughput bucket
then has this node's share of the rate.

Receipts and MO are pushed by one task per account with at least one receiver/transceiver bind: it takes the
next item from the backend, and every further one the backend has ready, and offers them to the account's binds
round robin, within each bind's window; what one bind was given goes out in one write. An item is acknowledged
only after deliver_sm_resp OK and released back to the backend on an error status, a timeout or a disconnect.
"""

from __future__ import annotations

import logging
import ssl
from collections import Counter
from dataclasses import dataclass
from typing import Final

import trio

from smsgw.config import AccountConfig, Config, ConfigHolder, holding
from smsgw.pdu.constants import CommandStatus
from smsgw.smpp_server.accounts import Accounts, BindRefused
from smsgw.smpp_server.audit import AuditLog
from smsgw.smpp_server.login import Login
from smsgw.smpp_server.backend import OutboundItem, SmppBackend
from smsgw.smpp_server.binds import SharedBinds
from smsgw.smpp_server.session import RequestReceived, SubmissionsReceived
from smsgw.smpp_server.smsc_connection import BIND_TYPE_OF_STATE, RECEIVER_BINDS, SmppConnection
from smsgw.smpp_server.throttle import Throttle, TokenBucket

log = logging.getLogger(__name__)

# Releasing items back to the backend must not hang a closing connection forever.
_RELEASE_TIMEOUT_S: Final = 5.0
# After the backend failed to give the next receipt/MO, wait this long before asking again.
_PUSHER_RETRY_S: Final = 1.0

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
    binds: SharedBinds | None = None,
    task_status: trio.TaskStatus[SmppListeners] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve SMPP until cancelled, or until `shutdown_trigger` is set: then shut down in two stages and return.

    Stage 1 stops accepting connections and outbinds; stage 2 unbinds every session and gives them
    `shutdown_grace_s` to answer what is outstanding before the rest is cancelled.

    A `ConfigHolder` is followed through reloads: binds check the current accounts, new connections get the
    current session settings; listeners, workers, the bind guard and outbinds keep what they started with.
    `login` shares the bind guard with the gateway's other fronts (HTTP); without one the server makes its own.
    `binds`: the store's bind registry, shared with the other nodes (`smsgw.smpp_server.binds`); without it an
    account's `max_binds` and throughput count this server's binds only.
    """
    holder = holding(config)
    audit = AuditLog(holder.current.smpp.audit_log_path)
    try:
        async with trio.open_nursery() as nursery:
            server = SmppServer(holder, backend, nursery, audit, login, binds)
            if binds is not None:  # this node's binds of its previous run are cleared before any new one
                await nursery.start(binds.run)
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
        login: Login | None = None, shared_binds: SharedBinds | None = None,
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
        self._shared_binds = shared_binds
        self._buckets: dict[str, TokenBucket] = {}
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
                bind_type = BIND_TYPE_OF_STATE.get(connection.session.state)
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
                # Checked at load (`smsgw.config.load`): tls_port comes with both paths.
                assert smpp.tls_cert_path and smpp.tls_key_path
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
        return [c for c in self._binds.get(system_id, ()) if c.session.state in RECEIVER_BINDS]

    async def register(self, connection: SmppConnection, account: AccountConfig) -> None:
        """Count the bind against the account's `max_binds`, or raise BindRefused: this server's binds first (a
        bind refused here costs no store write), then, with a shared registry, every node's."""
        binds = self._binds.setdefault(account.system_id, [])
        if len(binds) >= account.max_binds:
            raise _too_many_binds()
        binds.append(connection)  # while the registry decides, so that binds here meanwhile count this one
        if self._shared_binds is None:
            return
        try:
            taken = await self._shared_binds.take(account.system_id, connection.bind_id, account.max_binds)
        except Exception as exc:  # the store: a bind it cannot count is refused, as it could be one too many
            self._forget(connection, account)
            log.warning("bind not counted system_id=%s error=%r", account.system_id, exc)
            raise BindRefused("bind registry unavailable", command_status=CommandStatus.ESME_RBINDFAIL) from exc
        except BaseException:  # cancelled: its row may be written yet, but before the delete (one write queue)
            self._forget(connection, account)
            await self._shared_binds.drop(account.system_id, connection.bind_id)
            raise
        if not taken:
            self._forget(connection, account)
            raise _too_many_binds()

    def bound(self, connection: SmppConnection, account: AccountConfig) -> None:
        """`connection` is bound now: a receiver starts (or joins) the account's pusher."""
        if connection.session.state not in RECEIVER_BINDS or self._stopping:
            return
        pusher = self._pushers.get(account.system_id)
        if pusher is None:
            pusher = self._pushers[account.system_id] = _Pusher(self, account.system_id, self._nursery)
            self._nursery.start_soon(pusher.run)
        pusher.wake()

    async def unregister(self, connection: SmppConnection, account: AccountConfig) -> None:
        self._forget(connection, account)
        if self._shared_binds is not None:
            await self._shared_binds.drop(account.system_id, connection.bind_id)

    def _forget(self, connection: SmppConnection, account: AccountConfig) -> None:
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
        before a reload changed it count against the new one. With a shared bind registry, this node's share of
        the rate and burst (`smsgw.smpp_server.binds`); the burst not below one segment (or the configured burst,
        if smaller), so that a node's full bucket still holds a whole one-segment message."""
        current = self.accounts.get(account.system_id) or account
        share = 1.0 if self._shared_binds is None else self._shared_binds.share(current.system_id)
        rate = current.throughput_per_s * share
        burst = max(current.throughput_burst * share, min(current.throughput_burst, 1.0))
        bucket = self._buckets.get(current.system_id)
        if bucket is None:
            bucket = self._buckets[current.system_id] = TokenBucket(rate, burst, trio.current_time())
        elif bucket.rate_per_s != rate or bucket.burst != burst:
            bucket.resize(rate, burst, trio.current_time())
        return bucket

    def throttle(self, account: AccountConfig) -> Throttle:
        """The account's rate limit as the accept path charges it: each submission's segments, in order, when it
        calls (`TokenBucket.take_each`). SMPP binds and the HTTP compatibility endpoints share it."""
        bucket = self.bucket(account)
        return lambda segments: bucket.take_each(segments, trio.current_time())

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


def _too_many_binds() -> BindRefused:
    return BindRefused("too many binds", command_status=CommandStatus.ESME_RALYBND)


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


