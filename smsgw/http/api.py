"""REST API v1 (DESIGN.md "HTTP face"): send, get, cancel and list messages, the inbox, balance, ledger and segment
counts, for the account that `authenticate` names.

Every rule is the accept path's (`AcceptPath.accept`, one submission per number so each gets its own message_id)
and the store's (cancel, find); the throttle is the account's SMPP token bucket (`SmppServer.bucket`), so HTTP and
SMPP submissions share one rate. Errors are `Problem`s: 400 invalid, 402 nothing accepted for want of balance, 403
the sender is not allowed, 404, 409 not cancellable, 429 throttled with Retry-After, 503 the store could not write.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from smsgw.config import AccountConfig
from smsgw.http import messages as shared
from smsgw.http import openapi
from smsgw.http.auth import authenticate
from smsgw.http.deps import HttpDeps
from smsgw.http.problems import Problem
from smsgw.numbers import InvalidNumber, normalise_number
from smsgw.pdu.constants import CommandStatus, GatewayError, status_name
from smsgw.scheduler.accept import RECEIPT_WANTED, Accepted, Options, Rejected, Submission, Text, Timing
from smsgw.scheduler.model import Address, ListedMessage, MessageFilter, NotCancellable, StoredMessage, StoreUnavailable
from smsgw.scheduler.routing import NoRoute, format_micro
from smsgw.scheduler.states import FINAL, State, message_state, smpp_message_state
from smsgw.scheduler.timing import from_ms, to_ms

log = logging.getLogger(__name__)

PREFIX: Final = "/api/v1"
MAX_RECIPIENTS: Final = 1000  # numbers in one POST /messages (DESIGN.md)
MAX_CLIENT_REF_CHARS: Final = 64
DEFAULT_PAGE_SIZE: Final = 100
_SEND_FIELDS: Final = frozenset({"to", "text", "from", "schedule_at", "validity_minutes", "flash", "dlr_url",
                                 "client_ref"})
_SEGMENTS_FIELDS: Final = frozenset({"text", "to"})
_CSV: Final = "text/csv"
_THROTTLED: Final = int(CommandStatus.ESME_RTHROTTLED)
_OK: Final = int(CommandStatus.ESME_ROK)
# When nothing of a send is accepted, the answer's status follows the first refusal: these two have their own.
_STATUS_OF_REFUSAL: Final[Mapping[int, int]] = {
    GatewayError.INSUFFICIENT_BALANCE.command_status: 402,
    GatewayError.SENDER_NOT_ALLOWED.command_status: 403,
}
# The first moment of a listing without `from`, and the end of one without `to`: every stored message.
_NO_LOWER_BOUND_MS: Final = 0
_NO_UPPER_BOUND_MS: Final = 1 << 62


def routes(deps: HttpDeps) -> list[BaseRoute]:
    async def send(request: Request) -> Response:
        account = await authenticate(request, deps)
        return await _send(deps, account, _fields(await _json_object(request), _SEND_FIELDS))

    async def get_message(request: Request) -> Response:
        account = await authenticate(request, deps)
        return JSONResponse(_stored_json(await _find(deps, account, request.path_params["message_id"])))

    async def cancel_message(request: Request) -> Response:
        account = await authenticate(request, deps)
        message_id = request.path_params["message_id"]
        await _find(deps, account, message_id)
        try:
            now_ms = deps.scheduler.accept.now_ms()
            await shared.cancel_message(deps.store, account.system_id, message_id, now_ms, "api")
        except NotCancellable as exc:
            raise Problem(409, f"message {message_id} cannot be cancelled: {exc}") from None
        return JSONResponse(_stored_json(await _find(deps, account, message_id)))

    async def list_messages(request: Request) -> Response:
        account = await authenticate(request, deps)
        query = request.query_params
        where = MessageFilter(
            _time_param(query.get("from"), "from", _NO_LOWER_BOUND_MS),
            _time_param(query.get("to"), "to", _NO_UPPER_BOUND_MS),
            _state_param(query.get("state")),
            None if query.get("number") is None else _number(account, query["number"], "number"),
        )
        limit = _limit(deps, query.get("limit"))
        after = _cursor(query.get("cursor"))
        page, next_cursor = await shared.search_page(deps.store, account.system_id, where, after, limit)
        if _CSV in request.headers.get("accept", ""):
            headers = {} if next_cursor is None else {"X-Next-Cursor": next_cursor}
            return Response(shared.history_csv(page), media_type=_CSV, headers=headers)
        return JSONResponse({"messages": [_listed_json(listed) for listed in page], "next_cursor": next_cursor})

    async def inbox(request: Request) -> Response:
        account = await authenticate(request, deps)
        after = _int_param(request.query_params.get("after"), "after", 0, minimum=0)
        limit = _limit(deps, request.query_params.get("limit"))
        entries = await deps.store.inbox(account.system_id, after, limit + 1)
        more = len(entries) > limit
        del entries[limit:]
        return JSONResponse({
            "messages": [
                {"id": e.mo_id, "from": e.originator, "to": e.recipient, "text": e.text,
                 "received_at": _time(e.received_ms)}
                for e in entries
            ],
            "next_after": entries[-1].mo_id if more else None,
        })

    async def balance(request: Request) -> Response:
        account = await authenticate(request, deps)
        amount = await deps.store.balance(account.system_id)
        return JSONResponse({"account": account.system_id, "balance": format_micro(amount),
                             "currency": deps.config.current.billing.currency})

    async def ledger(request: Request) -> Response:
        account = await authenticate(request, deps)
        entries = await deps.store.ledger(account.system_id, _limit(deps, request.query_params.get("limit")))
        return JSONResponse({
            "currency": deps.config.current.billing.currency,
            "entries": [
                {"at": _time(e.at_ms), "kind": e.kind, "amount": format_micro(e.amount_micro),
                 "balance_after": format_micro(e.balance_after_micro), "message_id": e.message_id, "note": e.note}
                for e in entries
            ],
        })

    async def segments(request: Request) -> Response:
        account = await authenticate(request, deps)
        body = _fields(await _json_object(request), _SEGMENTS_FIELDS)
        text = _text(body)
        to = body.get("to")
        if to is not None and not isinstance(to, str):
            raise Problem(400, "'to' must be a string")
        number = "" if to is None else _number(account, to, "to")
        try:
            count = deps.scheduler.accept.preview(account.system_id, text, number)
        except NoRoute as exc:
            raise Problem(400, str(exc)) from None
        if count.refused and count.segments == 0:  # blocked content: the accept path would refuse it whatever its size
            raise Problem(400, count.refused)
        return JSONResponse({"encoding": count.encoding.name, "characters": count.characters,
                             "segments": count.segments, "max_segments": count.max_segments, "fits": count.fits})

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi.DOCUMENT)

    async def docs(request: Request) -> Response:
        return Response(openapi.html(), media_type="text/html; charset=utf-8")

    return [
        Route(f"{PREFIX}/messages", send, methods=["POST"]),
        Route(f"{PREFIX}/messages", list_messages, methods=["GET"]),
        Route(f"{PREFIX}/messages/{{message_id}}", get_message, methods=["GET"]),
        Route(f"{PREFIX}/messages/{{message_id}}", cancel_message, methods=["DELETE"]),
        Route(f"{PREFIX}/inbox", inbox, methods=["GET"]),
        Route(f"{PREFIX}/balance", balance, methods=["GET"]),
        Route(f"{PREFIX}/ledger", ledger, methods=["GET"]),
        Route(f"{PREFIX}/segments", segments, methods=["POST"]),
        Route(f"{PREFIX}/openapi.json", openapi_json, methods=["GET"]),
        Route("/api/docs", docs, methods=["GET"]),
    ]


# --- send -------------------------------------------------------------------------------------------------------


async def _send(deps: HttpDeps, account: AccountConfig, body: Mapping[str, Any]) -> Response:
    to = body.get("to")
    if not isinstance(to, list) or not 1 <= len(to) <= MAX_RECIPIENTS or not all(isinstance(n, str) for n in to):
        raise Problem(400, f"'to' must be a list of 1 to {MAX_RECIPIENTS} numbers (strings)")
    text = _text(body)
    sender = _optional(body, "from", str, "")
    flash = _optional(body, "flash", bool, False)
    dlr_url = _optional(body, "dlr_url", str, "")
    if dlr_url and not dlr_url.startswith(("http://", "https://")):
        raise Problem(400, "'dlr_url' must be an http:// or https:// URL")
    client_ref = _optional(body, "client_ref", str, "")
    if len(client_ref) > MAX_CLIENT_REF_CHARS:
        raise Problem(400, f"'client_ref' is longer than {MAX_CLIENT_REF_CHARS} characters")
    timing = Timing(_schedule(body.get("schedule_at")), _validity(body.get("validity_minutes")))
    bucket = deps.smpp.bucket(account)
    now = trio.current_time()
    wanted = 0

    def throttle(segments: Sequence[int]) -> Sequence[bool]:
        """All or nothing: the segments the accept path built for every number (as SMPP is charged)."""
        nonlocal wanted
        wanted = sum(segments)
        return [bucket.try_take(wanted, now)] * len(segments)

    # RECEIPT_WANTED with a dlr_url: the final state is reported to it (and to SMPP receivers, as for SMPP).
    options = Options(registered_delivery=RECEIPT_WANTED if dlr_url else 0, flash=flash, client_ref=client_ref,
                      dlr_url=dlr_url)
    content = Text(text)
    source = Address(sender)
    submissions = [Submission((Address(number),), content, source, timing, options) for number in to]
    try:
        results = await deps.scheduler.accept.accept(account.system_id, submissions, throttle=throttle)
    except StoreUnavailable as exc:
        log.error("store refused an http submission account=%s error=%s", account.system_id, exc)
        deps.metrics.submitted("http", int(CommandStatus.ESME_RSYSERR), len(to))
        raise Problem(503, "the store could not take the messages; nothing was accepted",
                      headers={"Retry-After": "1"}) from None
    accepted: list[Accepted] = []
    rejected: list[Rejected] = []
    for (result,) in results:
        if isinstance(result, Accepted):
            accepted.append(result)
        else:
            rejected.append(result)
    if accepted:
        deps.metrics.submitted("http", _OK, len(accepted))
    for refusal in rejected:
        deps.metrics.submitted("http", refusal.command_status)
    log.info("http send account=%s accepted=%d rejected=%d", account.system_id, len(accepted), len(rejected))
    if any(r.command_status == _THROTTLED for r in rejected):
        raise Problem(429, f"throughput limit of {account.throughput_per_s:g} segments/s reached",
                      headers={"Retry-After": str(max(1, math.ceil(bucket.wait_s(wanted, now))))})
    rejected_json = [
        {"to": r.destination.addr, "code": status_name(r.command_status), "reason": r.reason} for r in rejected
    ]
    if not accepted:
        status = _STATUS_OF_REFUSAL.get(rejected[0].command_status, 400)
        raise Problem(status, f"no message accepted: {rejected[0].reason}", extra={"rejected": rejected_json})
    return JSONResponse(
        {
            "messages": [
                {"to": a.destination.addr, "message_id": a.message_id, "segments": a.segments,
                 "charge": format_micro(a.charge_micro), "state": a.state.name}
                for a in accepted
            ],
            "rejected": rejected_json,
        },
        status_code=201,
    )


def _schedule(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Problem(400, "'schedule_at' must be an ISO 8601 time with its offset")
    return _iso_time(value, "schedule_at")


def _validity(value: object) -> timedelta | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise Problem(400, "'validity_minutes' must be a positive whole number")
    return timedelta(minutes=value)


def _text(body: Mapping[str, Any]) -> str:
    text = body.get("text")
    if not isinstance(text, str) or not text:
        raise Problem(400, "'text' must be a non-empty string")
    return text


# --- reading ----------------------------------------------------------------------------------------------------


async def _find(deps: HttpDeps, account: AccountConfig, message_id: str) -> list[StoredMessage]:
    found = await deps.store.find(account.system_id, message_id)
    if not found:
        raise Problem(404, f"no message {message_id}")
    return found


def _stored_json(found: list[StoredMessage]) -> dict[str, Any]:
    """One message; an SMPP submit_multi id (several destinations) answers with its first destination and the
    state derived from all of them, as query_sm does."""
    first = found[0]
    state = message_state(s for m in found for s in m.segment_states) if len(found) > 1 else first.state
    final_ms = max((m.final_ms for m in found if m.final_ms is not None), default=None)
    return _message_json(
        first.message_id, first.destination.addr, first.source.addr, state,
        next((m.error_code for m in found if m.error_code), 0), sum(m.segment_count for m in found),
        sum(m.charged_micro for m in found), first.submitted_ms, first.start_ms,
        final_ms if state in FINAL else None, first.client_ref,
    )


def _listed_json(listed: ListedMessage) -> dict[str, Any]:
    row = listed.history
    return _message_json(
        row.message_id, row.destination_addr, row.source_addr, State(row.state), row.error_code, row.segment_count,
        row.charged_micro, row.submitted_ms, listed.start_ms, row.final_ms, listed.client_ref,
    )


def _message_json(
    message_id: str, to: str, sender: str, state: State, error_code: int, segments: int, charged_micro: int,
    submitted_ms: int, start_ms: int, final_ms: int | None, client_ref: str,
) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "to": to,
        "from": sender,
        "state": state.name,
        "state_code": int(state),
        "smpp_state": smpp_message_state(state).name,
        "error_code": f"{error_code:03d}",
        "segments": segments,
        "charge": format_micro(charged_micro),
        "submitted_at": _time(submitted_ms),
        "scheduled_at": _time(start_ms) if start_ms > submitted_ms else None,
        "done_at": None if final_ms is None else _time(final_ms),
        "client_ref": client_ref or None,
    }


def _time(ms: int) -> str:
    return from_ms(ms).isoformat()


# --- parameters -------------------------------------------------------------------------------------------------


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Problem(400, "the body must be a JSON object")
    return body


def _fields(body: dict[str, Any], known: frozenset[str]) -> dict[str, Any]:
    unknown = sorted(set(body) - known)
    if unknown:
        raise Problem(400, f"unknown field(s): {', '.join(unknown)}")
    return body


def _optional(body: Mapping[str, Any], name: str, kind: type[Any], default: Any) -> Any:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise Problem(400, f"'{name}' must be a {'boolean' if kind is bool else 'string'}")
    return value


def _iso_time(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Problem(400, f"'{name}' is not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise Problem(400, f"'{name}' needs a UTC offset (e.g. 2026-01-01T12:00:00Z)")
    return moment


def _time_param(value: str | None, name: str, default: int) -> int:
    return default if value is None else to_ms(_iso_time(value, name))


def _state_param(value: str | None) -> State | None:
    if value is None:
        return None
    try:
        return State[value.upper()]
    except KeyError:
        names = ", ".join(s.name for s in State)
        raise Problem(400, f"'state' must be one of {names}") from None


def _number(account: AccountConfig, value: str, name: str) -> str:
    try:
        return normalise_number(value, account.default_country_code)
    except InvalidNumber as exc:
        raise Problem(400, f"'{name}': {exc}") from None


def _int_param(value: str | None, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    if value is None:
        return default
    if not value.isdigit() or int(value) < minimum or (maximum is not None and int(value) > maximum):
        bound = f"{minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise Problem(400, f"'{name}' must be a whole number, {bound}")
    return int(value)


def _limit(deps: HttpDeps, value: str | None) -> int:
    maximum = deps.config.current.http.max_page_size
    return _int_param(value, "limit", min(DEFAULT_PAGE_SIZE, maximum), minimum=1, maximum=maximum)


def _cursor(value: str | None) -> tuple[int, int] | None:
    """The key of `encode_cursor`; opaque to clients, so a malformed one is 400 whatever is wrong with it."""
    if value is None:
        return None
    try:
        return shared.decode_cursor(value)
    except ValueError:
        raise Problem(400, "'cursor' is not one this API gave") from None

