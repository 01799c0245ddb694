"""A callback receiver for tests: an HTTP/1.1 server (h11) on 127.0.0.1 port 0 inside the test's own Trio run.

In the same run, not a thread: a request's bytes are readable by the server task as soon as the client wrote
them, so `MockClock(autojump_threshold=0)` never jumps while an answer is on its way — only while the server
sleeps on purpose (LATE, or `held` until `release`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, urlsplit

import h11
import trio

LATE: Final = 0  # an answer that comes after the client's timeout
_LATE_S: Final = 3600.0


@dataclass(frozen=True)
class Received:
    method: str
    path: str  # without the query
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))


@dataclass
class Receiver:
    """/<name> answers with the next status queued in `answers[name]` (200 when none; LATE: after the client
    gave up); names in `held` wait for `release` first. Records every request, JSON bodies by name, and the
    most requests in progress at once."""

    url: str = ""
    answers: dict[str, list[int]] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    release: trio.Event = field(default_factory=trio.Event)
    requests: list[Received] = field(default_factory=list)
    bodies: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    active: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    peak_total: int = 0
    _arrived: trio.Event = field(default_factory=trio.Event)

    async def wait_for(self, count: int) -> list[Received]:
        """The requests so far, once there are at least `count`."""
        while len(self.requests) < count:
            await self._arrived.wait()
        return self.requests

    def _record(self, received: Received) -> None:
        self.requests.append(received)
        if received.headers.get("content-type", "").startswith("application/json"):
            self.bodies.setdefault(received.path.strip("/"), []).append(json.loads(received.body))
        self._arrived.set()
        self._arrived = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[Receiver] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        task_status.started(self)
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await _read_request(connection, stream)
                if request is None:
                    return
                await self._answer(connection, stream, request, body)
                if connection.our_state is h11.MUST_CLOSE:
                    return
                connection.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            return  # the client timed out and went away
        finally:
            await stream.aclose()

    async def _answer(self, connection: h11.Connection, stream: trio.SocketStream, request: h11.Request,
                      body: bytes) -> None:
        target = urlsplit(request.target.decode())
        name = target.path.strip("/")
        self._record(Received(request.method.decode(), target.path, dict(parse_qsl(target.query)),
                              {k.decode().lower(): v.decode() for k, v in request.headers}, body))
        self.active[name] = self.active.get(name, 0) + 1
        self.peak[name] = max(self.peak.get(name, 0), self.active[name])
        self.peak_total = max(self.peak_total, sum(self.active.values()))
        queued = self.answers.get(name, [])
        answer = queued.pop(0) if queued else 200
        try:
            if name in self.held:
                await self.release.wait()
            if answer == LATE:
                await trio.sleep(_LATE_S)
                answer = 200
            data = connection.send(h11.Response(status_code=answer, headers=[("Content-Length", "0")]))
            data += connection.send(h11.EndOfMessage()) or b""
            await stream.send_all(data or b"")
        finally:
            self.active[name] -= 1


async def _read_request(connection: h11.Connection, stream: trio.SocketStream) -> tuple[h11.Request | None, bytes]:
    request = None
    body = b""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            if not data:
                return None, b""
            connection.receive_data(data)
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, body
        elif isinstance(event, h11.ConnectionClosed):
            return None, b""
