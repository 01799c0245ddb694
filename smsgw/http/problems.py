"""Errors as RFC 9457 problem details (`application/problem+json`: type, title, status, detail), and the
exception handlers that answer every error of the API that way: 404, 405, 413, 500 and the routes' own.

A route raises `Problem(status, detail)`; Starlette's `HTTPException` (unknown path, wrong method) is answered
the same way on /api paths. Other paths keep Starlette's plain answer, which the portal may replace with pages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

log = logging.getLogger(__name__)

PROBLEM_JSON: Final = "application/problem+json"
# Paths whose errors are problem details whatever their origin (the JSON API); ops routes answer them themselves.
PROBLEM_PATH_PREFIX: Final = "/api/"


class Problem(Exception):
    """An error answered as a problem details document; `extra` adds extension members (RFC 9457 3.2)."""

    def __init__(
        self,
        status: int,
        detail: str = "",
        *,
        title: str | None = None,
        type_: str = "about:blank",
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or str(status))
        self.status = status
        self.detail = detail
        self.title = title
        self.type = type_
        self.headers = headers
        self.extra = extra


def problem_response(problem: Problem) -> Response:
    """The response for `problem`; its title defaults to the status phrase (RFC 9457 4.2 for about:blank)."""
    body: dict[str, Any] = {
        "type": problem.type,
        "title": problem.title or HTTPStatus(problem.status).phrase,
        "status": problem.status,
    }
    if problem.detail:
        body["detail"] = problem.detail
    if problem.extra:
        body.update(problem.extra)
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_JSON,
    )


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not request.url.path.startswith(PROBLEM_PATH_PREFIX):
        return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
    # Starlette's detail is the bare status phrase: it adds nothing to the title, so it is left out.
    detail = "" if exc.detail == HTTPStatus(exc.status_code).phrase else exc.detail
    return problem_response(Problem(exc.status_code, detail, headers=exc.headers))


async def _on_error(request: Request, exc: Exception) -> Response:
    # Starlette's ServerErrorMiddleware calls this, then re-raises for the server to log with the traceback.
    if not request.url.path.startswith(PROBLEM_PATH_PREFIX):
        return PlainTextResponse("Internal Server Error", status_code=500)
    return problem_response(Problem(500, "the gateway failed to answer this request; it is logged"))


EXCEPTION_HANDLERS: Final = {Problem: _on_problem, HTTPException: _on_http_exception, Exception: _on_error}
