"""MO HTTP callbacks: each MO routed to an account with `mo_callback_url` is POSTed there as JSON.

A callback is written to the store in the MO's own transaction and stays there until its endpoint answers 2xx,
so a restart or a crash delays it but never drops it (and one whose POST was under way when the process died is
POSTed again: receivers deduplicate by `mo_id`). Network errors, timeouts, 5xx, 408 and 429 are retried with
the segments' backoff until `mo_callback_max_attempts` or `mo_callback_max_age_s`; any other status (a 4xx: the
endpoint refuses this request, and the same request will not do better) gives up at once. A callback given up is
kept as 'failed' with its last error. It goes to the account's current `mo_callback_url`, so a corrected URL
takes effect for callbacks still pending.

POSTs use the standard library in worker threads of their own (never the threads the store reads with), at
most `mo_callback_concurrency` at once and `mo_callback_concurrency_per_account` per account: a slow endpoint
holds up only its own account's callbacks. The callback is a copy: the MO waits in the SMPP outbox whatever
happens here.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import urllib.error
import urllib.request
from collections import Counter
from typing import Final, Protocol

import trio

from smsgw.config import Config, ConfigHolder, MessageConfig
from smsgw.scheduler.model import MoCallback
from smsgw.scheduler.timing import WallClock, from_ms, retry_delay_ms

log = logging.getLogger(__name__)

_RETRY_STATUSES: Final = frozenset({408, 429})
_MS: Final = 1000


class CallbackStore(Protocol):
    async def mo_callbacks_due(
        self, now_ms: int, busy: frozenset[int], full_accounts: frozenset[str], limit: int
    ) -> list[MoCallback]: ...

    async def mo_callback_next_ms(self, busy: frozenset[int], full_accounts: frozenset[str]) -> int | None: ...

    async def mo_callback_delivered(self, rowid: int) -> None: ...

    async def mo_callback_retry(self, rowid: int, attempts: int, next_try_ms: int, error: str) -> None: ...

    async def mo_callback_failed(self, rowid: int, attempts: int, error: str, now_ms: int) -> None: ...


def callback_body(callback: MoCallback) -> bytes:
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


class CallbackFailed(Exception):
    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


def post_json(url: str, body: bytes, timeout_s: float) -> int:
    """POST `body` (blocking); the HTTP status of a 2xx answer, CallbackFailed otherwise."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        retry = exc.code >= 500 or exc.code in _RETRY_STATUSES
        raise CallbackFailed(f"HTTP {exc.code}", retry=retry) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # ValueError: a URL urllib cannot use at all; trying it again would not help.
        raise CallbackFailed(str(exc), retry=not isinstance(exc, ValueError)) from None


def _callback_urls(config: Config) -> dict[str, str | None]:
    return {account.system_id: account.mo_callback_url for account in config.accounts}


class MoCallbacks:
    """`run` (in the scheduler's nursery) delivers the store's pending callbacks, each POST in a task of its own;
    `wake` after committing a new one."""

    def __init__(self, store: CallbackStore, config: ConfigHolder, clock: WallClock, rng: random.Random) -> None:
        """`config` is followed through reloads: each callback goes to its account's current URL with the current
        timeouts and attempts; the concurrency limits are those at construction (a restart changes them)."""
        self._store = store
        self._holder = config
        self._clock = clock
        self._rng = rng
        messages = config.current.messages
        self._limit = max(1, messages.mo_callback_concurrency)
        self._per_account = max(1, messages.mo_callback_concurrency_per_account)
        # Threads of our own: a slow endpoint must never take the default limiter's threads the store reads with.
        self._threads = trio.CapacityLimiter(self._limit)
        self._busy: dict[int, str] = {}  # rowid -> account, POST in flight
        self._woken = trio.Event()

    @property
    def _config(self) -> MessageConfig:
        return self._holder.current.messages

    def wake(self) -> None:
        self._woken.set()
        self._woken = trio.Event()

    async def run(self) -> None:
        """Until cancelled: start what is due (pending ones from before a restart included), then sleep until
        the next one is due, a new one is stored, a POST finishes or `foreign_writes_poll_s` has passed."""
        async with trio.open_nursery() as nursery:
            while True:
                woken = self._woken
                await self._start_due(nursery)
                if len(self._busy) >= self._limit:
                    deadline = math.inf  # a finishing POST wakes us
                else:
                    due = await self._store.mo_callback_next_ms(frozenset(self._busy), self._full_accounts())
                    # One millisecond late: `now_ms` truncates, and at the exact deadline it may read `due - 1`.
                    deadline = math.inf if due is None else self._clock.trio_deadline(due + 1)
                    # `smsgw callbacks retry` writes from another process, which sets no `wake` here.
                    if (poll_s := self._config.foreign_writes_poll_s) > 0:
                        deadline = min(deadline, trio.current_time() + poll_s)
                with trio.move_on_at(deadline):
                    await woken.wait()

    def _full_accounts(self) -> frozenset[str]:
        return frozenset(a for a, n in Counter(self._busy.values()).items() if n >= self._per_account)

    async def _start_due(self, nursery: trio.Nursery) -> None:
        while (free := self._limit - len(self._busy)) > 0:
            due = await self._store.mo_callbacks_due(
                self._clock.now_ms(), frozenset(self._busy), self._full_accounts(), free
            )
            if not due:
                return
            for callback in due:
                # Rows of one account beyond its share wait: the next query leaves that account out.
                if sum(1 for a in self._busy.values() if a == callback.account) < self._per_account:
                    self._busy[callback.rowid] = callback.account
                    nursery.start_soon(self._deliver, callback)

    async def _deliver(self, callback: MoCallback) -> None:
        try:
            await self._attempt(callback)
        finally:
            del self._busy[callback.rowid]
            self.wake()

    async def _attempt(self, callback: MoCallback) -> None:
        now = self._clock.now_ms()
        url = self._holder.derived(_callback_urls).get(callback.account)
        if not url:
            await self._give_up(callback, callback.attempts, "the account has no mo_callback_url any more", now)
            return
        if now - callback.created_ms > self._config.mo_callback_max_age_s * _MS:
            await self._give_up(callback, callback.attempts, "too old", now)
            return
        attempt = callback.attempts + 1
        try:
            status = await trio.to_thread.run_sync(
                functools.partial(post_json, url, callback_body(callback), self._config.mo_callback_timeout_s),
                abandon_on_cancel=True,
                limiter=self._threads,
            )
        except CallbackFailed as exc:
            now = self._clock.now_ms()
            retry_at = now + retry_delay_ms(attempt, self._config, self._rng)
            too_old = retry_at - callback.created_ms > self._config.mo_callback_max_age_s * _MS
            if not exc.retry or attempt >= self._config.mo_callback_max_attempts or too_old:
                await self._give_up(callback, attempt, str(exc), now)
                return
            log.warning(
                "mo callback failed mo_id=%d account=%s attempt=%d reason=%s retry_in_s=%.0f",
                callback.mo_id, callback.account, attempt, exc, (retry_at - now) / _MS,
            )
            await self._store.mo_callback_retry(callback.rowid, attempt, retry_at, str(exc))
            return
        await self._store.mo_callback_delivered(callback.rowid)
        log.info("mo callback delivered mo_id=%d account=%s attempt=%d status=%d", callback.mo_id, callback.account,
                 attempt, status)

    async def _give_up(self, callback: MoCallback, attempts: int, reason: str, now: int) -> None:
        await self._store.mo_callback_failed(callback.rowid, attempts, reason, now)
        log.error("mo callback given up mo_id=%d account=%s attempts=%d reason=%s", callback.mo_id, callback.account,
                  attempts, reason)
