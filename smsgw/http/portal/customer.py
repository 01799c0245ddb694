"""The customer's pages: Send (with the live counter and the batch it becomes) and Account (balance, ledger,
sender IDs, sub-accounts and transfers, API keys, callbacks, do-not-call consent upload)."""

from __future__ import annotations

import io
import itertools
import logging
import time
from datetime import datetime, timedelta
from typing import Final

import trio
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from smsgw.http.keys import new_api_key
from smsgw.numbers import InvalidNumber, normalise_number
from smsgw.http.portal import batches
from smsgw.http.portal.batches import Batch, BatchState, SendRequest, check_numbers
from smsgw.http.portal.pages import Portal
from smsgw.http.portal.session import Session
from smsgw.scheduler.accept import Timing
from smsgw.scheduler.number_files import read_number_file
from smsgw.scheduler.number_files import InvalidLine
from smsgw.scheduler.policy import check_transfer, sub_accounts
from smsgw.scheduler.routing import NoRoute, format_micro, to_micro

log = logging.getLogger(__name__)

# The validity choices of the Send form, in minutes ('' is the gateway's default).
VALIDITY_CHOICES: Final = (("", "default"), ("30", "30 minutes"), ("60", "1 hour"), ("240", "4 hours"),
                           ("720", "12 hours"), ("1380", "23 hours"))
LEDGER_ROWS: Final = 50
# Batches are kept by the process that checked them (`batches`): say why one may be gone and what to do.
NO_SUCH_SEND: Final = ("No such send. A checked list of numbers is kept by the gateway until it restarts, and with "
                       "several gateway nodes only by the one that checked it: check the numbers again on Send.")
MAX_KEY_NAME_CHARS: Final = 64
# Unreadable lines of a consent upload named on the page; the count covers all of them.
SHOWN_BAD_LINES: Final = 20
# Refused lines read beyond the limit of numbers (a file of only bad lines is still reported, up to this many).
_EXTRA_LINES: Final = 100_000
# A text longer than this is not counted (the longest the routes allow is far below it).
MAX_COUNTED_CHARS: Final = 10_000


def routes(portal: Portal) -> list[BaseRoute]:
    pages = _CustomerPages(portal)
    page = portal.page
    return [
        Route("/compose", page("customer", pages.send_form), methods=["GET"]),
        Route("/compose/count", page("customer", pages.count), methods=["GET"]),
        Route("/upload/compose", page("customer", pages.check), methods=["POST"]),
        Route("/compose/batches/{batch_id}", page("customer", pages.batch), methods=["GET"]),
        Route("/compose/batches/{batch_id}", page("customer", pages.confirm), methods=["POST"]),
        Route("/compose/batches/{batch_id}/progress", page("customer", pages.progress), methods=["GET"]),
        Route("/account", page("customer", pages.account), methods=["GET"]),
        Route("/account/transfer", page("customer", pages.transfer), methods=["POST"]),
        Route("/account/api-keys", page("customer", pages.create_key), methods=["POST"]),
        Route("/account/api-keys/{key_id:int}/revoke", page("customer", pages.revoke_key), methods=["POST"]),
        Route("/upload/consent", page("customer", pages.consent), methods=["POST"]),
    ]


class _CustomerPages:
    def __init__(self, portal: Portal) -> None:
        self._portal = portal
        self._deps = portal.deps

    # -- Send --------------------------------------------------------------------------------------------------

    async def send_form(self, request: Request, session: Session, error: str = "", values: dict[str, str] | None = None,
                        status_code: int = 200) -> Response:
        account = self._portal.account(session)
        return self._portal.render(request, session, "send.html", {
            "sender_ids": account.sender_ids,
            "validity_choices": VALIDITY_CHOICES,
            "time_zone": account.time_zone or "UTC",
            "max_numbers": self._deps.config.current.http.portal_max_numbers,
            "error": error,
            "values": values or {},
        }, status_code=status_code)

    async def count(self, request: Request, session: Session) -> Response:
        """The live counter: the accept path's own preview of the text (`AcceptPath.preview`)."""
        text = request.query_params.get("text", "")[:MAX_COUNTED_CHARS]
        account = self._portal.account(session)
        number = ""
        first = request.query_params.get("to", "").strip()
        if first:
            try:
                number = normalise_number(first, account.default_country_code)
            except InvalidNumber:
                number = ""
        try:
            preview = self._deps.scheduler.accept.preview(session.name, text, number)
        except NoRoute as exc:
            return JSONResponse({"refused": str(exc)})
        recipients = max(1, _int(request.query_params.get("recipients", "1")))
        return JSONResponse({
            "characters": preview.characters,
            "encoding": preview.encoding.name,
            "segments": preview.segments,
            "max_segments": preview.max_segments,
            "charge": f"{format_micro(preview.charge_micro * recipients)} {self._deps.config.current.billing.currency}",
            "text": preview.text,
            "refused": preview.refused,
        })

    async def check(self, request: Request, session: Session) -> Response:
        """Read and check the numbers; nothing is sent before the customer confirms the batch this makes."""
        form = await self._portal.form(request)
        values = {key: str(form.get(key, "")) for key in ("text", "numbers", "sender", "schedule", "validity")}
        values["flash"] = "on" if form.get("flash") else ""
        account = self._portal.account(session)
        try:
            request_ = self._send_request(session, values)
        except ValueError as exc:
            return await self.send_form(request, session, str(exc), values, status_code=400)
        upload = form.get("file")
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read()
            name = upload.filename
        else:
            data = values["numbers"].encode()
            name = "typed list"
        if not data.strip():
            return await self.send_form(request, session, "Give at least one number, typed or in a file.", values,
                                        status_code=400)
        limit = self._deps.config.current.http.portal_max_numbers
        try:
            numbered = await trio.to_thread.run_sync(_read_numbers, data, account.default_country_code, limit)
        except Exception as exc:  # a broken upload (not a workbook, bad zip): say so, send nothing
            log.info("portal upload unreadable account=%s file=%r error=%r", session.name, name, exc)
            return await self.send_form(request, session, f"{name}: cannot be read ({exc})", values, status_code=400)
        checked = check_numbers(numbered, self._deps.store.policy_facts(), session.name,
                                promotional=account.promotional, limit=limit)
        if checked.too_many:
            return await self.send_form(request, session, f"{name}: more than {limit} numbers", values,
                                        status_code=400)
        batch = self._portal.batches.add(session.name, request_, checked)
        log.info("portal batch checked account=%s batch=%s numbers=%d problems=%d", session.name, batch.id,
                 batch.total, len(checked.problems))
        return RedirectResponse(f"/compose/batches/{batch.id}", status_code=303)

    def _send_request(self, session: Session, values: dict[str, str]) -> SendRequest:
        text = values["text"]
        if not text:
            raise ValueError("The message has no text.")
        schedule: datetime | None = None
        if values["schedule"]:
            try:
                schedule = datetime.fromisoformat(values["schedule"]).replace(tzinfo=self._portal.zone(session))
            except ValueError:
                raise ValueError(f"Not a date and time: {values['schedule']!r}.") from None
        validity = timedelta(minutes=_int(values["validity"])) if values["validity"] else None
        account = self._portal.account(session)
        if values["sender"] and account.sender_ids and values["sender"] not in account.sender_ids:
            raise ValueError(f"Sender {values['sender']!r} is not one of this account's.")
        return SendRequest(text, values["sender"], Timing(schedule, validity), bool(values["flash"]))

    async def batch(self, request: Request, session: Session) -> Response:
        batch = self._batch(request, session)
        if batch is None:
            return self._portal.render(request, session, "error.html", {"message": NO_SUCH_SEND}, 404)
        preview = None
        if batch.total:
            try:
                preview = self._deps.scheduler.accept.preview(session.name, batch.request.text, batch.checked.numbers[0])
            except NoRoute:
                preview = None
        return self._portal.render(request, session, "batch.html", {
            "batch": batch,
            "preview": preview,
            "problems": batch.checked.problems[:batches.SHOWN_PROBLEMS],
            "schedule": batch.request.timing.schedule,
            "total_charge": None if preview is None else format_micro(preview.charge_micro * batch.total),
            "throughput": self._portal.account(session).throughput_per_s,
        })

    async def confirm(self, request: Request, session: Session) -> Response:
        batch = self._batch(request, session)
        if batch is None:
            return self._portal.render(request, session, "error.html", {"message": NO_SUCH_SEND}, 404)
        # A second click or a resubmitted form must not send twice: only a draft starts.
        if batch.state is BatchState.DRAFT and batch.total:
            batch.state = BatchState.SENDING
            request.app.state.tasks.start_soon(batches.run, batch, self._deps.scheduler.accept, self._deps.smpp)
        return RedirectResponse(f"/compose/batches/{batch.id}", status_code=303)

    async def progress(self, request: Request, session: Session) -> Response:
        batch = self._batch(request, session)
        if batch is None:
            return JSONResponse({"error": "no such send"}, status_code=404)
        return JSONResponse({"state": batch.state.value, "total": batch.total, "done": batch.done,
                             "accepted": batch.accepted, "rejected": len(batch.rejected), "error": batch.error,
                             "paced": batch.paced})

    def _batch(self, request: Request, session: Session) -> Batch | None:
        return self._portal.batches.get(session.name, request.path_params["batch_id"])

    # -- Account -----------------------------------------------------------------------------------------------

    async def account(self, request: Request, session: Session, message: str = "", status_code: int = 200,
                      new_key: str = "") -> Response:
        store = self._deps.store
        config = self._deps.config.current
        account = self._portal.account(session)
        subs = sub_accounts(config, session.name)
        ledger = await store.ledger(session.name, LEDGER_ROWS)
        return self._portal.render(request, session, "account.html", {
            "account": account,
            "balance": await store.balance(session.name),
            "ledger": [(self._portal.local_time(session, entry.at_ms), entry) for entry in ledger],
            "subs": [(name, await store.balance(name)) for name in subs],
            "parent": account.parent,
            "default_validity_min": round(config.messages.default_validity_s / 60),
            "api_keys": [(self._portal.local_time(session, key.created_ms),
                          self._portal.local_time(session, key.last_used_ms), key)
                         for key in await store.api_keys(session.name)],
            "new_key": new_key,
            "message": message,
        }, status_code=status_code)

    async def transfer(self, request: Request, session: Session) -> Response:
        form = await self._portal.form(request)
        other = str(form.get("account", ""))
        direction = str(form.get("direction", "to"))
        try:
            amount = to_micro(str(form.get("amount", "")))
            source, target = (session.name, other) if direction == "to" else (other, session.name)
            check_transfer(self._deps.config.current, source, target, amount)
            await self._deps.store.transfer(source, target, amount, int(time.time() * 1000), "portal transfer")
        except Exception as exc:  # ValueError of the rules, InsufficientBalance of the store: shown as they say
            return await self.account(request, session, f"Transfer refused: {exc}", status_code=400)
        log.info("portal transfer from=%s to=%s amount=%s by=%s", source, target, format_micro(amount), session.name)
        return await self.account(request, session, f"Moved {format_micro(amount)} from {source} to {target}.")


    async def create_key(self, request: Request, session: Session) -> Response:
        """A new API key, shown on this page once: only its hash is kept (`smsgw account api-key create`)."""
        form = await self._portal.form(request)
        name = str(form.get("name", "")).strip()[:MAX_KEY_NAME_CHARS]
        key, key_hash = new_api_key()
        key_id = await self._deps.store.api_key_add(session.name, name, key_hash, int(time.time() * 1000))
        log.info("portal api key created account=%s key_id=%d", session.name, key_id)
        return await self.account(request, session, f"API key {key_id} created: copy it now, it is not shown again.",
                                  new_key=key)

    async def revoke_key(self, request: Request, session: Session) -> Response:
        key_id = request.path_params["key_id"]
        # Only the account's own keys: another account's key id is "no such key".
        if key_id not in {key.key_id for key in await self._deps.store.api_keys(session.name)}:
            return await self.account(request, session, f"No API key {key_id}.", status_code=404)
        await self._deps.store.api_key_revoke(key_id, int(time.time() * 1000))
        log.info("portal api key revoked account=%s key_id=%d", session.name, key_id)
        return await self.account(request, session, f"API key {key_id} revoked.")

    async def consent(self, request: Request, session: Session) -> Response:
        """A file of numbers that agreed to the account's promotional messages (`smsgw dnc consent`, per number):
        read by the reader of the Send page, recorded in the register's consent list."""
        form = await self._portal.form(request)
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return await self.account(request, session, "Choose a file of numbers first.", status_code=400)
        account = self._portal.account(session)
        limit = self._deps.config.current.http.portal_max_numbers
        try:
            numbered = await trio.to_thread.run_sync(_read_numbers, await upload.read(),
                                                     account.default_country_code, limit)
        except Exception as exc:  # a broken upload (not a workbook, bad zip): say so, record nothing
            return await self.account(request, session, f"{upload.filename}: cannot be read ({exc})", status_code=400)
        numbers = list(dict.fromkeys(item for _, item in numbered if not isinstance(item, InvalidLine)))[:limit]
        bad = [f"line {item.line}" for _, item in numbered if isinstance(item, InvalidLine)]
        facts = self._deps.store.policy_facts()
        added = await trio.to_thread.run_sync(
            lambda: sum(facts.add_consent(session.name, number) for number in numbers))
        log.info("portal consent upload account=%s numbers=%d added=%d invalid=%d", session.name, len(numbers),
                 added, len(bad))
        text = f"Consent recorded for {added} number{'' if added == 1 else 's'} ({len(numbers) - added} already had it)."
        if bad:
            shown = ", ".join(bad[:SHOWN_BAD_LINES]) + ("…" if len(bad) > SHOWN_BAD_LINES else "")
            text += f" {len(bad)} line{'' if len(bad) == 1 else 's'} not a number: {shown}."
        return await self.account(request, session, text)


def _read_numbers(data: bytes, country_code: str, limit: int) -> list[tuple[int, str | InvalidLine]]:
    """In a worker thread (a workbook of 100,000 rows takes seconds): the lines, one past `limit` numbers at most
    (enough for `check_numbers` to say there are too many)."""
    with read_number_file(io.BytesIO(data), country_code) as numbered:
        return list(itertools.islice(numbered, limit + 1 + _EXTRA_LINES))


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0
