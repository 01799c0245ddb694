"""The operator's pages: modems (state, signal, counters against the SIM limits, reset) and the binds to upstream
SMSCs (state per session, window in use, submits by result), queues per account, accounts (balances, top up) and the audit log of binds and logins."""

from __future__ import annotations

import logging
import time
from typing import Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from smsgw.http.portal.pages import Portal
from smsgw.http.portal.session import Session
from smsgw.scheduler.routing import format_micro, to_micro
from smsgw.smpp_server.upstream import SubmitResult

log = logging.getLogger(__name__)

# +CSQ RSSI (0-31) to bars, as handsets draw them: 0-1 none, then about 2 dB per step up to 5 bars at 20 and above.
_BAR_THRESHOLDS: Final = (2, 8, 12, 16, 20)
BARS: Final = len(_BAR_THRESHOLDS)


def signal_bars(rssi: int | None) -> int:
    """0-5 bars for a +CSQ RSSI; 99 (unknown) and None are 0."""
    if rssi is None or rssi == 99:
        return 0
    return sum(1 for threshold in _BAR_THRESHOLDS if rssi >= threshold)


def routes(portal: Portal) -> list[BaseRoute]:
    pages = _OperatorPages(portal)
    page = portal.page
    return [
        Route("/operator/modems", page("operator", pages.modems), methods=["GET"]),
        Route("/operator/modems/{name}/reset", page("operator", pages.reset), methods=["POST"]),
        Route("/operator/queues", page("operator", pages.queues), methods=["GET"]),
        Route("/operator/accounts", page("operator", pages.accounts), methods=["GET"]),
        Route("/operator/accounts/topup", page("operator", pages.topup), methods=["POST"]),
        Route("/operator/audit", page("operator", pages.audit), methods=["GET"]),
    ]


class _OperatorPages:
    def __init__(self, portal: Portal) -> None:
        self._portal = portal
        self._deps = portal.deps

    async def modems(self, request: Request, session: Session) -> Response:
        configs = {modem.name: modem for modem in self._deps.config.current.modems}
        rows = []
        for status in self._deps.modems.status():
            config = configs.get(status.name)
            rows.append({
                "status": status,
                "bars": signal_bars(status.signal_rssi),
                "day_limit": None if config is None else config.messages_per_day,
                "month_limit": None if config is None else config.messages_per_month,
            })
        return self._portal.render(request, session, "modems.html", {
            "rows": rows, "bar_count": BARS, "message": request.query_params.get("message", ""),
            "upstreams": list(self._deps.upstreams.by_name.values()), "submit_results": list(SubmitResult),
        })

    async def reset(self, request: Request, session: Session) -> Response:
        name = request.path_params["name"]
        found = self._deps.modems.reset(name)
        log.warning("portal modem reset modem=%s operator=%s found=%s", name, session.name, found)
        message = f"Reset sent to {name}." if found else f"No modem {name}."
        return RedirectResponse(f"/operator/modems?message={message}", status_code=303)

    async def queues(self, request: Request, session: Session) -> Response:
        counts = await self._deps.store.queue_counts(int(time.time() * 1000))
        accounts = sorted(set(counts.due) | set(counts.scheduled) | set(counts.in_flight) | set(counts.outbox))
        rows = [(name, counts.due.get(name, 0), counts.scheduled.get(name, 0), counts.in_flight.get(name, 0),
                 counts.outbox.get(name, 0)) for name in accounts]
        return self._portal.render(request, session, "queues.html", {"rows": rows})

    async def accounts(self, request: Request, session: Session, message: str = "", status_code: int = 200
                       ) -> Response:
        config = self._deps.config.current
        rows = [(account, await self._deps.store.balance(account.system_id)) for account in config.accounts]
        return self._portal.render(request, session, "accounts.html", {"rows": rows, "message": message},
                                   status_code=status_code)

    async def topup(self, request: Request, session: Session) -> Response:
        form = await self._portal.form(request)
        account = str(form.get("account", ""))
        note = str(form.get("note", "")) or f"portal top-up by {session.name}"
        if account not in {a.system_id for a in self._deps.config.current.accounts}:
            return await self.accounts(request, session, f"No account {account!r}.", 400)
        try:
            amount = to_micro(str(form.get("amount", "")))
            balance = await self._deps.store.topup(account, amount, int(time.time() * 1000), note)
        except ValueError as exc:
            return await self.accounts(request, session, f"Top-up refused: {exc}", 400)
        log.info("portal top-up account=%s amount=%s operator=%s", account, format_micro(amount), session.name)
        return await self.accounts(request, session, f"{account}: {format_micro(amount)} added, balance "
                                                     f"{format_micro(balance)}.")

    async def audit(self, request: Request, session: Session) -> Response:
        return self._portal.render(request, session, "audit.html", {"records": self._deps.smpp.audit.recent()})

