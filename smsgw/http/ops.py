"""Operations endpoints: /metrics (Prometheus text format), /healthz (the process answers), /readyz (the store
accepts writes, SMPP is listening, and at least one route has a READY modem; otherwise 503 naming what is not).
"""

from __future__ import annotations

import logging

import trio
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from smsgw.http.deps import HttpDeps
from smsgw.http.problems import Problem, problem_response
from smsgw.modem.driver import ModemState

log = logging.getLogger(__name__)


def routes(deps: HttpDeps) -> list[BaseRoute]:
    async def metrics(request: Request) -> Response:
        return Response(await deps.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks = {"store": await _store_writable(deps), "smpp": _smpp_listening(deps), "routes": _route_usable(deps)}
        failing = {name: problem for name, problem in checks.items() if problem}
        if not failing:
            return JSONResponse({"status": "ready", "checks": {name: "ok" for name in checks}})
        detail = "; ".join(failing.values())
        log.info("not ready %s", " ".join(f"{name}={problem!r}" for name, problem in failing.items()))
        report = {name: problem or "ok" for name, problem in checks.items()}
        return problem_response(Problem(503, detail, title="Not ready", extra={"checks": report}))

    return [
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]


# Each check answers "" when fine, else what is wrong, in words for the operator.

async def _store_writable(deps: HttpDeps) -> str:
    timeout = deps.config.current.http.readiness_store_timeout_s
    with trio.move_on_after(timeout):
        try:
            await deps.store.check_writable()
        except Exception as exc:  # whatever the engine raises, the answer is "not writable" and why
            return f"store not writable: {exc}"
        return ""
    return f"store not writable: no commit within {timeout:g} s"


def _smpp_listening(deps: HttpDeps) -> str:
    return "" if deps.smpp.listening else "SMPP server not listening"


def _route_usable(deps: HttpDeps) -> str:
    ready_groups = {s.group for s in deps.modems.status() if s.state is ModemState.READY}
    routes = deps.config.current.routes
    if any(route.modem_group in ready_groups for route in routes):
        return ""
    groups = ", ".join(sorted({route.modem_group for route in routes}))
    return f"no route usable: no modem READY in group(s) {groups}"
