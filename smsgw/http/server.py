"""`serve_http`: the ASGI app on hypercorn's Trio worker, inside the caller's nursery, with hypercorn's two-stage
shutdown (the same shape as `serve_smpp`): when `shutdown_trigger` is set it stops accepting, lets requests in
progress finish within `[http] shutdown_grace_s` (idle keep-alive connections are closed at once), cancels the
rest and returns.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from smsgw.config import HttpConfig
from smsgw.http.app import build_app
from smsgw.http.deps import HttpDeps

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HttpListening:
    """Where `serve_http` listens (the real port when the config says 0)."""

    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def hypercorn_config(http: HttpConfig) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [f"[{http.host}]:{http.port}" if ":" in http.host else f"{http.host}:{http.port}"]
    config.backlog = http.backlog
    config.graceful_timeout = http.shutdown_grace_s
    config.keep_alive_timeout = http.keep_alive_timeout_s
    config.read_timeout = math.ceil(http.read_timeout_s)  # hypercorn takes whole seconds
    config.h11_max_incomplete_size = http.max_header_bytes
    # Hypercorn logs through ours ("Running on ...", errors with their traceback); no access log per request.
    config.errorlog = logging.getLogger("smsgw.http.hypercorn")
    config.accesslog = None
    config.include_server_header = False
    return config


async def serve_http(
    config: HttpConfig,
    deps: HttpDeps,
    *,
    shutdown_trigger: trio.Event,
    extra_routes: Sequence[ModuleType] = (),
    task_status: trio.TaskStatus[HttpListening] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve HTTP on `config.host`/`config.port` until `shutdown_trigger` is set, then shut down gracefully;
    `extra_routes` are route modules served after the gateway's own (the demo's receipt sink)."""
    app = build_app(deps, extra_routes)
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            lambda task_status: serve(
                app,  # type: ignore[arg-type]  # Starlette's ASGI types are looser than hypercorn's
                hypercorn_config(config), shutdown_trigger=shutdown_trigger.wait, task_status=task_status,
            )
        )
        port = int(binds[0].rpartition(":")[2])
        listening = HttpListening(config.host, port)
        log.info("http listening url=%s", listening.url)
        task_status.started(listening)
    log.info("http stopped")
