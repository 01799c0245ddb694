"""What the portal's pages share: the session cookie (`session`), the CSRF check of every POST, the login and
logout pages (one form for customers and operators, both through `Login`), and rendering with Jinja2."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from smsgw.config import AccountConfig
from smsgw.http.deps import HttpDeps
from smsgw.http.portal.batches import Batches
from smsgw.http.portal.session import (
    COOKIE,
    Role,
    Session,
    csrf_matches,
    decode_session,
    encode_session,
    new_session,
    session_key,
)
from smsgw.scheduler.accept import account_settings
from smsgw.scheduler.routing import format_micro
from smsgw.smpp_server.accounts import BindRefused
from smsgw.smpp_server.login import CHECK_BUSY, LOCKED_OUT

log = logging.getLogger(__name__)

_HERE: Final = Path(__file__).parent
STATIC_DIR: Final = _HERE / "static"
TEMPLATE_DIR: Final = _HERE / "templates"
HOME: Final[dict[Role, str]] = {"customer": "/send", "operator": "/operator/modems"}

Handler = Callable[[Request, Session], Awaitable[Response]]


class Portal:
    def __init__(self, deps: HttpDeps) -> None:
        self.deps = deps
        config = deps.config.current
        self._key = session_key(config.http.session_secret, config.store.path)
        self.batches = Batches()
        self._env = Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=select_autoescape(),
                                trim_blocks=True, lstrip_blocks=True)
        self._env.filters["money"] = lambda micro: f"{format_micro(micro)} {self.deps.config.current.billing.currency}"

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self._home),
            Route("/login", self._login_page, methods=["GET"]),
            Route("/login", self._login, methods=["POST"]),
            Route("/logout", self.page("customer", self._logout, "operator"), methods=["POST"]),
        ]

    # -- sessions ----------------------------------------------------------------------------------------------

    def session(self, request: Request) -> Session | None:
        cookie = request.cookies.get(COOKIE)
        return None if cookie is None else decode_session(cookie, self._key, time.time())

    def page(self, role: Role, handler: Handler, *also: Role) -> Callable[[Request], Awaitable[Response]]:
        """`handler` for a logged-in `role` (or one of `also`); a POST must bring the session's CSRF token.
        Anyone else is sent to the login page (a GET) or refused (a POST)."""

        async def endpoint(request: Request) -> Response:
            session = self.session(request)
            if session is None or session.role not in (role, *also):
                if request.method == "GET":
                    return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
                return self.render(request, None, "error.html", {"message": "Your session has ended: log in again."},
                                   status_code=403)
            if request.method == "POST":
                form = await self.form(request)
                if not csrf_matches(session, str(form.get("csrf", ""))):
                    log.warning("portal csrf token missing or wrong path=%s name=%s", request.url.path, session.name)
                    return self.render(request, session, "error.html",
                                       {"message": "This form is out of date: reload the page and try again."},
                                       status_code=403)
            return await handler(request, session)

        return endpoint

    async def form(self, request: Request) -> FormData:
        """The request's form, parsed once (the CSRF check and the handler share it)."""
        cached: FormData | None = getattr(request.state, "form", None)
        if cached is None:
            cached = await request.form(max_files=1, max_fields=100)
            request.state.form = cached
        return cached

    # -- rendering ---------------------------------------------------------------------------------------------

    def render(
        self, request: Request, session: Session | None, template: str, context: dict[str, Any],
        status_code: int = 200,
    ) -> HTMLResponse:
        values = {"session": session, "path": request.url.path, "currency": self.deps.config.current.billing.currency,
                  **context}
        return HTMLResponse(self._env.get_template(template).render(values), status_code=status_code)

    def account(self, session: Session) -> AccountConfig:
        return account_settings(self.deps.config, session.name)

    def local_time(self, session: Session, ms: int | None) -> str:
        """A stored time as the account reads it (its `time_zone`; operators and accounts without one: UTC)."""
        if ms is None:
            return ""
        zone = self.zone(session)
        return datetime.fromtimestamp(ms / 1000, tz=zone).strftime("%Y-%m-%d %H:%M:%S")

    def zone(self, session: Session) -> ZoneInfo:
        name = self.account(session).time_zone if session.role == "customer" else ""
        return ZoneInfo(name or "UTC")

    # -- login -------------------------------------------------------------------------------------------------

    async def _home(self, request: Request) -> Response:
        session = self.session(request)
        return RedirectResponse(HOME[session.role] if session else "/login", status_code=303)

    async def _login_page(self, request: Request) -> Response:
        return self.render(request, None, "login.html", {"next": request.query_params.get("next", ""), "error": ""})

    async def _login(self, request: Request) -> Response:
        form = await self.form(request)
        role: Role = "operator" if form.get("role") == "operator" else "customer"
        name = str(form.get("name", "")).strip()
        password = str(form.get("password", ""))
        wanted = str(form.get("next", ""))
        address = request.client.host if request.client is not None else ""
        try:
            if role == "operator":
                await self.deps.login.authenticate_operator(name, password, address)
            else:
                await self.deps.login.authenticate(name, password, address)
        except BindRefused as exc:
            self.deps.smpp.audit.record(source=address, event=f"portal login ({role})", outcome=exc.reason,
                                        system_id=name, command_status=exc.command_status)
            if exc.reason == LOCKED_OUT:
                error, status = "Too many failed attempts: try again later.", 429
            elif exc.reason == CHECK_BUSY:
                error, status = "The gateway is busy: try again in a moment.", 503
            else:
                # One answer for an unknown name and a wrong password: the page does not confirm who exists.
                error, status = "Wrong name or password.", 401
            return self.render(request, None, "login.html", {"next": wanted, "error": error, "name": name,
                                                             "role": role}, status_code=status)
        self.deps.smpp.audit.record(source=address, event=f"portal login ({role})", outcome="ok", system_id=name)
        log.info("portal login role=%s name=%s address=%s", role, name, address)
        session = new_session(role, name, time.time(), self.deps.config.current.http.session_lifetime_s)
        # Only a path of this site: `next` comes from the query string, which anyone can write.
        target = wanted if wanted.startswith("/") and not wanted.startswith("//") else HOME[role]
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, encode_session(session, self._key), httponly=True, samesite="lax",
                            max_age=int(session.expires_s - time.time()), secure=request.url.scheme == "https")
        return response

    async def _logout(self, request: Request, session: Session) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, httponly=True, samesite="lax")
        return response
