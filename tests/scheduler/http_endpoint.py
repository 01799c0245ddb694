"""A local HTTP endpoint for MO callback tests (127.0.0.1, port 0), in a thread of its own."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LATE = 0  # an answer that comes after the client's timeout


@dataclass
class Endpoint:
    """POST /<name> answers with the next status queued in `answers[name]` (200 when none; LATE: after the
    client gave up); names in `held` wait for `release` first. Records bodies and the most requests at once."""

    url: str = ""
    answers: dict[str, list[int]] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    bodies: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    active: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    peak_total: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def serve_endpoint() -> Iterator[Endpoint]:
    state = Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            name = self.path.strip("/")
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.bodies.setdefault(name, []).append(body)
                state.active[name] = state.active.get(name, 0) + 1
                state.peak[name] = max(state.peak.get(name, 0), state.active[name])
                state.peak_total = max(state.peak_total, sum(state.active.values()))
                queued = state.answers.get(name, [])
                answer = queued.pop(0) if queued else 200
            try:
                if name in state.held:
                    state.release.wait(30)
                if answer == LATE:
                    time.sleep(1.0)
                    answer = 200
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the client timed out and went away
            finally:
                with state.lock:
                    state.active[name] -= 1

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join()
