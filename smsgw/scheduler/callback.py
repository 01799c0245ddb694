"""Outgoing HTTP callbacks, one machinery for two kinds: MO (`MoKind`: each MO routed to an account with
`mo_callback_url` is POSTed there as JSON) and delivery reports (`DlrKind`: a message's state changes to its
`dlr_url` or its account's `dlr_callback_url`, as JSON or in Kannel's or Jasmin's form, `smsgw.scheduler.dlr`).

A callback is written to the store in the transaction that causes it (the MO's, or the state change's) and stays
there until its endpoint answers 2xx, so a restart or a crash delays it but never drops it (and one whose request
was under way when the process died is sent again: receivers deduplicate by `mo_id` / `message_id` and state).
Network errors, timeouts, 5xx, 408 and 429 are retried with the segments' backoff until
`mo_callback_max_attempts` or `mo_callback_max_age_s`; any other status (a 4xx: the endpoint refuses this
request, and the same request will not do better) gives up at once. A callback given up is kept as 'failed' with
its last error (`smsgw callbacks list|retry`). An MO callback, and a JSON receipt without a URL of its own, goes
to the account's current URL, so a corrected URL takes effect for callbacks still pending. JSON bodies carry
`X-Smsgw-Signature: sha256=HEX`, the HMAC-SHA256 of the body with the account's current `callback_secret`.

Requests go through one `httpx.AsyncClient` on Trio (connections reused, a User-Agent naming smsgw and its
version), at most `mo_callback_concurrency` at once per kind and `mo_callback_concurrency_per_account` per
account: a slow endpoint holds up only its own account's callbacks. An MO callback is a copy: the MO waits in the
SMPP outbox whatever happens here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import random
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

import httpx
import trio

from smsgw import __version__
from smsgw.config import AccountConfig, Config, ConfigHolder, MessageConfig
from smsgw.scheduler.model import DlrCallback, MoCallback
from smsgw.scheduler.timing import WallClock, from_ms, retry_delay_ms

log = logging.getLogger(__name__)

USER_AGENT: Final = f"smsgw/{__version__}"
SIGNATURE_HEADER: Final = "X-Smsgw-Signature"
JSON_TYPE: Final = "application/json; charset=utf-8"
FORM_TYPE: Final = "application/x-www-form-urlencoded"
_RETRY_STATUSES: Final = frozenset({408, 429})
_MS: Final = 1000


class CallbackStore(Protocol):
    """The store's side of both kinds: each kind's rows in a table of their own, the same operations."""

    async def mo_callbacks_due(
        self, now_ms: int, busy: frozenset[int], full_accounts: frozenset[str], limit: int
    ) -> list[MoCallback]: ...

    async def dlr_callbacks_due(
        self, now_ms: int, busy: frozenset[int], full_accounts: frozenset[str], limit: int
    ) -> list[DlrCallback]: ...

    async def callback_next_ms(self, kind: str, busy: frozenset[int], full_accounts: frozenset[str]) -> int | None: ...

    async def callback_delivered(self, kind: str, rowid: int) -> None: ...

    async def callback_retry(self, kind: str, rowid: int, attempts: int, next_try_ms: int, error: str) -> None: ...

    async def callback_failed(self, kind: str, rowid: int, attempts: int, error: str, now_ms: int) -> None: ...


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str  # GET or POST
    url: str
    body: bytes = b""
    content_type: str = ""
    signature: str = ""  # the X-Smsgw-Signature value, '' for none


class CallbackFailed(Exception):
    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


def sign(body: bytes, secret: str) -> str:
    """The `X-Smsgw-Signature` value of `body`: `sha256=` and the hex HMAC-SHA256 with the account's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def json_request(url: str, body: bytes, account: AccountConfig) -> HttpRequest:
    signature = sign(body, account.callback_secret) if account.callback_secret else ""
    return HttpRequest("POST", url, body, JSON_TYPE, signature)


@asynccontextmanager
async def open_http_client() -> AsyncIterator[httpx.AsyncClient]:
    """The one client of the process's callbacks: its connections are reused from request to request."""
    async with httpx.AsyncClient(headers={"User-Agent": USER_AGENT}, follow_redirects=False) as client:
        yield client


async def send(client: httpx.AsyncClient, request: HttpRequest, timeout_s: float) -> int:
    """Send `request`; the HTTP status of a 2xx answer, CallbackFailed otherwise."""
    headers = {}
    if request.content_type:
        headers["Content-Type"] = request.content_type
    if request.signature:
        headers[SIGNATURE_HEADER] = request.signature
    try:
        response = await client.request(
            request.method, request.url, content=request.body or None, headers=headers,
            timeout=httpx.Timeout(timeout_s),
        )
    except httpx.TimeoutException:
        raise CallbackFailed("timed out", retry=True) from None
    except httpx.TransportError as exc:
        raise CallbackFailed(f"{type(exc).__name__}: {exc}", retry=True) from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as exc:
        # A URL the client cannot use at all: trying it again would not help.
        raise CallbackFailed(f"unusable URL: {exc}", retry=False) from None
    status = response.status_code
    if 200 <= status < 300:
        return status
    raise CallbackFailed(f"HTTP {status}", retry=status >= 500 or status in _RETRY_STATUSES)


class Pending(Protocol):
    """What the runner needs of a stored callback, whatever its kind."""

    @property
    def rowid(self) -> int: ...

    @property
    def account(self) -> str: ...

    @property
    def created_ms(self) -> int: ...

    @property
    def attempts(self) -> int: ...


P = TypeVar("P", bound=Pending)


class CallbackKind(Protocol[P]):
    @property
    def name(self) -> str:
        """'mo' or 'dlr': the store's kind, and the logs'."""
        ...

    async def due(self, now_ms: int, busy: frozenset[int], full_accounts: frozenset[str], limit: int) -> list[P]: ...

    def request(self, callback: P, config: Config) -> HttpRequest | str:
        """The request to send now (with the config's current URLs and secret), or why there is none."""
        ...

    def describe(self, callback: P) -> str:
        """The callback's key=value for log lines."""
        ...


def _accounts(config: Config) -> dict[str, AccountConfig]:
    return {account.system_id: account for account in config.accounts}


def mo_body(callback: MoCallback) -> bytes:
    return json.dumps(
        {
            "mo_id": callback.mo_id,
            "account": callback.account,
            "from": callback.originator,
            "to": callback.recipient,
            "text": callback.text,
            "data_coding": callback.data_coding,
            "received_at": from_ms(callback.received_ms).isoformat(),
        },
        ensure_ascii=False,
    ).encode("utf-8")


class MoKind:
    name: Final = "mo"

    def __init__(self, store: CallbackStore) -> None:
        self._store = store

    async def due(
        self, now_ms: int, busy: frozenset[int], full_accounts: frozenset[str], limit: int
    ) -> list[MoCallback]:
        return await self._store.mo_callbacks_due(now_ms, busy, full_accounts, limit)

    def request(self, callback: MoCallback, config: Config) -> HttpRequest | str:
        account = _accounts(config).get(callback.account)
        if account is None or not account.mo_callback_url:
            return "the account has no mo_callback_url any more"
        return json_request(account.mo_callback_url, mo_body(callback), account)

    def describe(self, callback: MoCallback) -> str:
        return f"mo_id={callback.mo_id}"


class DlrKind:
    name: Final = "dlr"

    def __init__(self, store: CallbackStore) -> None:
        self._store = store

    async def due(
        self, now_ms: int, busy: frozenset[int], full_accounts: frozenset[str], limit: int
    ) -> list[DlrCallback]:
        return await self._store.dlr_callbacks_due(now_ms, busy, full_accounts, limit)

    def request(self, callback: DlrCallback, config: Config) -> HttpRequest | str:
        account = _accounts(config).get(callback.account) or AccountConfig(callback.account, "")
        body = callback.body.encode("utf-8")
        if callback.format == "json":
            # No URL of its own: the account's current one, so a corrected URL serves receipts still pending.
            url = callback.url or account.dlr_callback_url or ""
            return json_request(url, body, account) if url else "the account has no dlr_callback_url any more"
        if callback.method == "GET":
            separator = "&" if "?" in callback.url else "?"
            return HttpRequest("GET", callback.url + (separator + callback.body if callback.body else ""))
        return HttpRequest("POST", callback.url, body, FORM_TYPE)

    def describe(self, callback: DlrCallback) -> str:
        return f"message_id={callback.message_id} format={callback.format}"


class Callbacks(Generic[P]):
    """`run` (in the scheduler's nursery) sends the store's pending callbacks of one kind, each request in a task
    of its own; `wake` after committing a new one."""

    def __init__(
        self, kind: CallbackKind[P], store: CallbackStore, config: ConfigHolder, clock: WallClock, rng: random.Random
    ) -> None:
        """`config` is followed through reloads: each callback goes to its account's current URL with the current
        timeouts and attempts; the concurrency limits are those at construction (a restart changes them)."""
        self.kind = kind
        self._store = store
        self._holder = config
        self._clock = clock
        self._rng = rng
        messages = config.current.messages
        self._limit = max(1, messages.mo_callback_concurrency)
        self._per_account = max(1, messages.mo_callback_concurrency_per_account)
        self._busy: dict[int, str] = {}  # rowid -> account, request in flight
        self._woken = trio.Event()

    @property
    def _config(self) -> MessageConfig:
        return self._holder.current.messages

    def wake(self) -> None:
        self._woken.set()
        self._woken = trio.Event()

    async def run(self, client: httpx.AsyncClient | None = None) -> None:
        """Until cancelled: start what is due (pending ones from before a restart included), then sleep until
        the next one is due, a new one is stored, a request finishes or `foreign_writes_poll_s` has passed.
        `client`: the process's shared one; without it, one of its own."""
        if client is None:
            async with open_http_client() as own:
                await self.run(own)
            return
        async with trio.open_nursery() as nursery:
            while True:
                woken = self._woken
                await self._start_due(nursery, client)
                if len(self._busy) >= self._limit:
                    deadline = math.inf  # a finishing request wakes us
                else:
                    due = await self._store.callback_next_ms(self.kind.name, frozenset(self._busy),
                                                             self._full_accounts())
                    # One millisecond late: `now_ms` truncates, and at the exact deadline it may read `due - 1`.
                    deadline = math.inf if due is None else self._clock.trio_deadline(due + 1)
                    # `smsgw callbacks retry` writes from another process, which sets no `wake` here.
                    if (poll_s := self._config.foreign_writes_poll_s) > 0:
                        deadline = min(deadline, trio.current_time() + poll_s)
                with trio.move_on_at(deadline):
                    await woken.wait()

    def _full_accounts(self) -> frozenset[str]:
        return frozenset(a for a, n in Counter(self._busy.values()).items() if n >= self._per_account)

    async def _start_due(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        while (free := self._limit - len(self._busy)) > 0:
            due: Sequence[P] = await self.kind.due(
                self._clock.now_ms(), frozenset(self._busy), self._full_accounts(), free
            )
            if not due:
                return
            for callback in due:
                # Rows of one account beyond its share wait: the next query leaves that account out.
                if sum(1 for a in self._busy.values() if a == callback.account) < self._per_account:
                    self._busy[callback.rowid] = callback.account
                    nursery.start_soon(self._deliver, callback, client)

    async def _deliver(self, callback: P, client: httpx.AsyncClient) -> None:
        try:
            await self._attempt(callback, client)
        finally:
            del self._busy[callback.rowid]
            self.wake()

    async def _attempt(self, callback: P, client: httpx.AsyncClient) -> None:
        now = self._clock.now_ms()
        request = self.kind.request(callback, self._holder.current)
        if isinstance(request, str):
            await self._give_up(callback, callback.attempts, request, now)
            return
        if now - callback.created_ms > self._config.mo_callback_max_age_s * _MS:
            await self._give_up(callback, callback.attempts, "too old", now)
            return
        attempt = callback.attempts + 1
        try:
            status = await send(client, request, self._config.mo_callback_timeout_s)
        except CallbackFailed as exc:
            now = self._clock.now_ms()
            retry_at = now + retry_delay_ms(attempt, self._config, self._rng)
            too_old = retry_at - callback.created_ms > self._config.mo_callback_max_age_s * _MS
            if not exc.retry or attempt >= self._config.mo_callback_max_attempts or too_old:
                await self._give_up(callback, attempt, str(exc), now)
                return
            log.warning(
                "%s callback failed %s account=%s attempt=%d reason=%s retry_in_s=%.0f", self.kind.name,
                self.kind.describe(callback), callback.account, attempt, exc, (retry_at - now) / _MS,
            )
            await self._store.callback_retry(self.kind.name, callback.rowid, attempt, retry_at, str(exc))
            return
        await self._store.callback_delivered(self.kind.name, callback.rowid)
        log.info("%s callback delivered %s account=%s attempt=%d status=%d", self.kind.name,
                 self.kind.describe(callback), callback.account, attempt, status)

    async def _give_up(self, callback: P, attempts: int, reason: str, now: int) -> None:
        await self._store.callback_failed(self.kind.name, callback.rowid, attempts, reason, now)
        log.error("%s callback given up %s account=%s attempts=%d reason=%s", self.kind.name,
                  self.kind.describe(callback), callback.account, attempts, reason)
