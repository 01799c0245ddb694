"""The ASGI app: routes from the route modules, problem+json errors, request limits.

A route module is a module with `routes(deps: HttpDeps) -> list[BaseRoute]`; `build_app` mounts them in the
order of `ROUTE_MODULES`, so a new face (REST API, Kannel/Jasmin compatibility, portal) is a new module and one
line here. The app keeps `deps` in `app.state.deps` for handlers that get only the request, and, while it is
served, a nursery in `app.state.tasks` for work a request starts that outlives it (a portal batch send), cancelled
when the server stops.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from types import ModuleType
from typing import Final

import trio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from smsgw.http import api, compat, ops, portal
from smsgw.http.deps import HttpDeps
from smsgw.http.limits import RequestLimits
from smsgw.http.problems import EXCEPTION_HANDLERS

ROUTE_MODULES: Final[tuple[ModuleType, ...]] = (ops, api, compat, portal)


def build_app(deps: HttpDeps, extra: Sequence[ModuleType] = ()) -> Starlette:
    """The app of `ROUTE_MODULES`, then of the `extra` route modules (the demo's receipt sink)."""
    routes: list[BaseRoute] = []
    for module in (*ROUTE_MODULES, *extra):
        routes.extend(module.routes(deps))
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestLimits, config=deps.config)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=_tasks,
    )
    app.state.deps = deps
    return app


@contextlib.asynccontextmanager
async def _tasks(app: Starlette) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        app.state.tasks = nursery
        yield
        nursery.cancel_scope.cancel()
