"""The server over real sockets on 127.0.0.1: every connection ends and closes its socket, connection caps."""

from __future__ import annotations

import socket

import trio

from smsgw.smpp_server.server import SmppServer

from smpp_backend_double import DoubleBackend
from smpp_harness import make_config, running_server

N_CLIENTS = 100


async def _settled(server: SmppServer, accepted: int) -> None:
    """Wait until the server has seen `accepted` connections end (its own bookkeeping, polled; the caller's
    fail_after only guards against a hang)."""
    while server.connections_ended < accepted or server.connections:
        await trio.sleep(0.01)


async def test_connections_closed_before_binding_all_end() -> None:
    # A session-init timeout far beyond the test: only the EOF can end these connections.
    config = make_config(session_init_timeout_s=3600.0, shutdown_grace_s=3600.0)
    async with running_server(config, DoubleBackend()) as server, trio.open_nursery() as nursery:
        listeners = await nursery.start(server.listen, trio.CancelScope())
        # Plain blocking sockets, as other processes would be: every one is connected and closed before the
        # server accepts any, so each connection's first read is the EOF.
        for _ in range(N_CLIENTS):
            socket.create_connection(("127.0.0.1", listeners.port)).close()
        with trio.fail_after(30):
            await _settled(server, N_CLIENTS)
        assert server.connections == set()
        with trio.fail_after(30):
            await server.drain()  # nothing left to wait for
        assert server.connections == set()
        nursery.cancel_scope.cancel()
