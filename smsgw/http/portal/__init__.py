"""The portal at `/`: customers (an account's system_id and password) and operators (`[[operators]]`) in the
browser. Server-rendered Jinja2 pages, one CSS file and a little plain JavaScript (the live counter, the progress
of a batch); every form works without JavaScript and carries the session's CSRF token.

It uses the gateway's own parts through `HttpDeps`, never copies of them: logins go through `Login` (the SMPP
bind guard's failed-attempt counts and lockouts), sends through the accept path, the counter through
`AcceptPath.preview` (the rules `accept` charges by), uploads through `number_files.read_number_file` (the reader
of `smsgw dnc import`), the operator pages through the modem pool and the store.

`customer`, `messages` (scheduled, results, inbox) and `operator` hold the pages; `pages` the sessions, CSRF checks and rendering they share.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from smsgw.http.deps import HttpDeps
from smsgw.http.portal import customer, messages, operator
from smsgw.http.portal.pages import STATIC_DIR, Portal


def routes(deps: HttpDeps) -> list[BaseRoute]:
    portal = Portal(deps)
    return [
        *portal.routes(),
        *customer.routes(portal),
        *messages.routes(portal),
        *operator.routes(portal),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
