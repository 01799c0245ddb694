"""The customer's pages about stored messages: Scheduled (list, cancel one or many after a confirmation, refunded),
Delivery results (search by period, state, error code and number; per-message detail; CSV export) and Inbox (the
MO, each with the message it answers; reply from the page).

Every read and write is the REST API's: `smsgw.http.messages` (keyset pages and their cursor, the export's CSV,
cancel), `MessageStore.find` and `inbox`; a reply is a one-number portal send through the accept path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from smsgw.http import messages as shared
from smsgw.http.portal import batches
from smsgw.http.portal.batches import BatchState, CheckedNumbers, SendRequest, check_numbers
from smsgw.http.portal.pages import Portal
from smsgw.http.portal.session import Session
from smsgw.numbers import InvalidNumber, normalise_number
from smsgw.scheduler.accept import THROTTLED, Timing
from smsgw.scheduler.error_codes import explain_error
from smsgw.scheduler.model import MessageFilter, NotCancellable
from smsgw.scheduler.states import FINAL, State, message_state
from smsgw.scheduler.timing import to_ms

log = logging.getLogger(__name__)

PAGE_ROWS: Final = 50
# A search without a period covers the last week (the form says so).
DEFAULT_DAYS: Final = 7
# Messages one cancel form may name (a page of the Scheduled list is PAGE_ROWS).
MAX_CANCEL: Final = 500
MAX_REPLY_CHARS: Final = 2000
_EVERYTHING: Final = (0, 1 << 62)


def routes(portal: Portal) -> list[BaseRoute]:
    pages = _MessagePages(portal)
    page = portal.page
    return [
        Route("/scheduled", page("customer", pages.scheduled), methods=["GET"]),
        Route("/scheduled/cancel", page("customer", pages.cancel), methods=["POST"]),
        Route("/results", page("customer", pages.results), methods=["GET"]),
        Route("/results.csv", page("customer", pages.export), methods=["GET"]),
        Route("/results/{message_id}", page("customer", pages.detail), methods=["GET"]),
        Route("/inbox", page("customer", pages.inbox), methods=["GET"]),
        Route("/inbox/{mo_id:int}/reply", page("customer", pages.reply), methods=["POST"]),
    ]


@dataclass(frozen=True, slots=True)
class Search:
    """A results search as the form gives it (dates in the account's time zone), and the filter it makes."""

    first_day: date
    last_day: date
    state: str
    error: str
    number: str
    where: MessageFilter
    oldest_day: date  # retention: nothing older is kept

    def query(self, cursor: str | None = None) -> str:
        fields = {"from": self.first_day.isoformat(), "to": self.last_day.isoformat(), "state": self.state,
                  "error": self.error, "number": self.number}
        if cursor is not None:
            fields["cursor"] = cursor
        return urlencode(fields)


class _MessagePages:
    def __init__(self, portal: Portal) -> None:
        self._portal = portal
        self._deps = portal.deps

    # -- Scheduled ---------------------------------------------------------------------------------------------

    async def scheduled(self, request: Request, session: Session, message: str = "", status_code: int = 200
                        ) -> Response:
        try:
            after = _cursor(request.query_params.get("cursor"))
        except ValueError:
            return self._error(request, session, "That page link is broken: start from the first page.")
        where = MessageFilter(*_EVERYTHING, state=State.SCHEDULED)
        rows, next_cursor = await shared.search_page(self._deps.store, session.name, where, after, PAGE_ROWS)
        return self._portal.render(request, session, "scheduled.html", {
            "rows": [(self._portal.local_time(session, m.start_ms), m) for m in rows],
            "next": None if next_cursor is None else "/scheduled?" + urlencode({"cursor": next_cursor}),
            "message": message,
        }, status_code=status_code)

    async def cancel(self, request: Request, session: Session) -> Response:
        """First the confirmation (what will be cancelled and refunded), then, confirmed, the cancels."""
        form = await self._portal.form(request)
        ids = list(dict.fromkeys(str(value) for value in form.getlist("message_id")))[:MAX_CANCEL]
        if not ids:
            return await self.scheduled(request, session, "Tick the messages to cancel first.", 400)
        store = self._deps.store
        if form.get("confirm") != "yes":
            found = [stored for message_id in ids for stored in await store.find(session.name, message_id)]
            return self._portal.render(request, session, "cancel.html", {
                "messages": [(self._portal.local_time(session, m.start_ms), m) for m in found],
                "refund": sum(m.charged_micro for m in found),
            })
        cancelled, refused = 0, []
        for message_id in ids:
            try:
                await shared.cancel_message(store, session.name, message_id, self._deps.scheduler.accept.now_ms(),
                                            "portal")
                cancelled += 1
            except NotCancellable as exc:
                refused.append(f"{message_id} ({exc})")
        text = f"Cancelled {cancelled} message{'' if cancelled == 1 else 's'}; the charge is refunded."
        if refused:
            text += f" Not cancelled (already on its way or final): {', '.join(refused)}."
        return await self.scheduled(request, session, text)

    # -- Delivery results --------------------------------------------------------------------------------------

    async def results(self, request: Request, session: Session) -> Response:
        try:
            search = self._search(request, session)
            after = _cursor(request.query_params.get("cursor"))
        except ValueError as exc:
            return self._portal.render(request, session, "results.html", {
                "search": None, "error": str(exc), "rows": [], "states": list(State), "next": None, "values":
                dict(request.query_params)}, status_code=400)
        rows, next_cursor = await shared.search_page(self._deps.store, session.name, search.where, after, PAGE_ROWS)
        return self._portal.render(request, session, "results.html", {
            "search": search,
            "values": {"from": search.first_day.isoformat(), "to": search.last_day.isoformat(), "state": search.state,
                       "error": search.error, "number": search.number},
            "error": "",
            "states": list(State),
            "rows": [(self._portal.local_time(session, m.history.submitted_ms), State(m.history.state), m)
                     for m in rows],
            "next": None if next_cursor is None else f"/results?{search.query(next_cursor)}",
            "csv": f"/results.csv?{search.query()}",
        })

    async def export(self, request: Request, session: Session) -> Response:
        """The whole search as `smsgw history export` writes it, streamed page by page."""
        try:
            search = self._search(request, session)
        except ValueError as exc:
            return self._error(request, session, str(exc))
        page_size = self._deps.config.current.http.max_page_size
        filename = f"smsgw-{session.name}-{search.first_day}-{search.last_day}.csv"
        return StreamingResponse(
            shared.search_csv(self._deps.store, session.name, search.where, page_size), media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    async def detail(self, request: Request, session: Session) -> Response:
        message_id = request.path_params["message_id"]
        found = await self._deps.store.find(session.name, message_id)
        if not found:
            return self._error(request, session, f"No message {message_id}.", 404)
        local = self._portal.local_time
        destinations = [{
            "stored": m,
            "submitted": local(session, m.submitted_ms),
            "start": local(session, m.start_ms) if m.start_ms > m.submitted_ms else "",
            "expires": local(session, m.expires_ms),
            "done": local(session, m.final_ms) if m.state in FINAL else "",
            "error": explain_error(m.error_code),
        } for m in found]
        return self._portal.render(request, session, "message.html", {
            "message_id": message_id,
            "state": message_state(s for m in found for s in m.segment_states),
            "destinations": destinations,
            "back": request.headers.get("referer", "/results"),
        })

    def _search(self, request: Request, session: Session) -> Search:
        """The form's search; ValueError naming what is wrong. A period older than retention starts where it
        does (nothing older is kept)."""
        query = request.query_params
        zone = self._portal.zone(session)
        today = datetime.now(zone).date()
        oldest = today - timedelta(days=self._deps.config.current.store.retention_days)
        last = _day(query.get("to"), "To", today)
        first = max(oldest, _day(query.get("from"), "From", last - timedelta(days=DEFAULT_DAYS - 1)))
        if first > last:
            raise ValueError("The period ends before it starts.")
        state_name = query.get("state", "")
        state = None
        if state_name:
            try:
                state = State[state_name]
            except KeyError:
                raise ValueError(f"No state {state_name!r}.") from None
        error = query.get("error", "").strip()
        if error and not (error.isdigit() and len(error) <= 3):
            raise ValueError("An error code is up to 3 digits, as in receipts (e.g. 070 or 801).")
        number = query.get("number", "").strip()
        normalised = None
        if number:
            try:
                normalised = normalise_number(number, self._portal.account(session).default_country_code)
            except InvalidNumber as exc:
                raise ValueError(f"Number: {exc}") from None
        start = datetime.combine(first, time(), zone)
        end = datetime.combine(last + timedelta(days=1), time(), zone)
        where = MessageFilter(to_ms(start), to_ms(end), state, normalised, int(error) if error else None)
        return Search(first, last, state_name, error, number, where, oldest)

    # -- Inbox -------------------------------------------------------------------------------------------------

    async def inbox(self, request: Request, session: Session, message: str = "", status_code: int = 200,
                    unsent: tuple[int, str] | None = None) -> Response:
        """`unsent`: a refused reply's (mo_id, text), put back in its box so the customer need not type it again."""
        after_text = request.query_params.get("after", "0")
        after = int(after_text) if after_text.isdigit() else 0
        entries = await self._deps.store.inbox(session.name, after, PAGE_ROWS + 1)
        more = len(entries) > PAGE_ROWS
        del entries[PAGE_ROWS:]
        local = self._portal.local_time
        return self._portal.render(request, session, "inbox.html", {
            "entries": [(local(session, e.received_ms),
                         local(session, e.answers.sent_ms) if e.answers is not None else "", e) for e in entries],
            "next": f"/inbox?after={entries[-1].mo_id}" if more else None,
            # After a reply the redirect says how it went (a reload then does not send it again).
            "message": message or request.query_params.get("message", ""),
            # A refused reply is said as an error, not in the green of a sent one.
            "refused": status_code >= 400,
            "unsent": unsent,
        }, status_code=status_code)

    async def reply(self, request: Request, session: Session) -> Response:
        """A one-number portal send through the accept path, from the sender the handset answered."""
        mo_id = request.path_params["mo_id"]
        entries = await self._deps.store.inbox(session.name, mo_id - 1, 1)
        if not entries or entries[0].mo_id != mo_id:
            return self._error(request, session, "No such message in your inbox.", 404)
        (entry,) = entries
        form = await self._portal.form(request)
        text = str(form.get("text", ""))[:MAX_REPLY_CHARS]
        if not text.strip():
            return await self.inbox(request, session, "The reply has no text.", 400)
        account = self._portal.account(session)
        sender = entry.answers.source_addr if entry.answers is not None else ""
        if account.sender_ids and sender not in account.sender_ids:
            sender = ""  # the account's first sender ID, as for any submission without one
        try:
            number = normalise_number(entry.originator, account.default_country_code)
        except InvalidNumber as exc:
            return await self.inbox(request, session, f"Cannot reply to {entry.originator}: {exc}", 400, (mo_id, text))
        checked = check_numbers([(1, number)], self._deps.store.policy_facts(), session.name,
                                promotional=account.promotional, limit=1)
        if not checked.numbers:
            return await self.inbox(request, session, f"Not sent: {checked.problems[0].reason}.", 400, (mo_id, text))
        batch = self._portal.batches.add(session.name, SendRequest(text, sender, Timing(None, None), False),
                                         CheckedNumbers(checked.numbers, (), False))
        batch.state = BatchState.SENDING
        # The customer waits for this page: over the account's limit it is refused, as the API refuses.
        await batches.run(batch, self._deps.scheduler.accept, self._deps.smpp, paced=False)
        if batch.accepted:
            log.info("portal reply account=%s mo_id=%d", session.name, mo_id)
            return RedirectResponse(f"/inbox?{urlencode({'message': f'Reply to {number} accepted.'})}",
                                    status_code=303)
        reason = batch.rejected[0][1] if batch.rejected else batch.error
        if reason == THROTTLED:
            reason = (f"the account's throughput limit of {account.throughput_per_s:g} segments a second is "
                      "reached; try again later")
            return await self.inbox(request, session, f"Reply not sent: {reason}.", 429, (mo_id, text))
        return await self.inbox(request, session, f"Reply not sent: {reason}", 400, (mo_id, text))

    def _error(self, request: Request, session: Session, message: str, status_code: int = 400) -> Response:
        return self._portal.render(request, session, "error.html", {"message": message}, status_code=status_code)


def _cursor(value: str | None) -> tuple[int, int] | None:
    return None if not value else shared.decode_cursor(value)


def _day(value: str | None, label: str, default: date) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{label}: not a date (YYYY-MM-DD): {value!r}.") from None
