"""Request limits as one plain ASGI middleware (one layer, no per-request task): the body size (413) and the
time a request may take (503). Both read the running `[http]` section per request, so a reload applies them.

The body is refused from its Content-Length before the route runs; a body without one (chunked) is counted as
the route reads it, and the read that passes the limit raises the 413 inside the route, where Starlette's
exception handling answers it (a `Problem`, so problem+json on every path).
"""

from __future__ import annotations

import logging
from typing import Final

import trio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smsgw.config import ConfigHolder
from smsgw.http.problems import Problem, problem_response

log = logging.getLogger(__name__)

UPLOAD_PREFIX: Final = "/upload/"


class RequestLimits:
    def __init__(self, app: ASGIApp, config: ConfigHolder) -> None:
        self._app = app
        self._config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        http = self._config.current.http
        # The portal's uploads (a list of numbers as a workbook) are larger than any API request.
        limit = http.portal_max_upload_bytes if scope["path"].startswith(UPLOAD_PREFIX) else http.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    await problem_response(Problem(400, "Content-Length is not a number"))(scope, receive, send)
                    return
                if int(value) > limit:
                    await problem_response(_too_large(limit))(scope, receive, send)
                    return
                break
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        with trio.move_on_after(http.request_timeout_s) as deadline:
            await self._app(scope, limited_receive, tracked_send)
        if deadline.cancelled_caught:
            log.warning("http request timed out method=%s path=%s timeout_s=%s answered=%s", scope["method"],
                        scope["path"], http.request_timeout_s, started)
            if not started:
                await problem_response(
                    Problem(503, f"the request took longer than {http.request_timeout_s:g} s")
                )(scope, receive, send)


def _too_large(limit: int) -> Problem:
    return Problem(413, f"the request body is larger than {limit} bytes")
