"""MO HTTP callbacks: each MO routed to an account with `mo_callback_url` is POSTed there as JSON.

The POST is made with the standard library in a worker thread; a 2xx answer delivers it, a network error, a
5xx or 429 is retried with the segments' backoff up to `mo_callback_max_attempts`, any other status gives up at
once. The callback is a copy: the MO is already stored and waits in the SMPP outbox whatever happens here.
Pending callbacks live in memory, so a restart drops the ones not yet delivered (logged as they are queued).
"""

from __future__ import annotations

import functools
import json
import logging
import random
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Final

import trio

from smsgw.config import MessageConfig
from smsgw.scheduler.timing import from_ms, retry_delay_ms

log = logging.getLogger(__name__)

_RETRY_STATUSES: Final = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class MoCallback:
    url: str
    mo_id: int
    account: str
    originator: str
    recipient: str
    text: str
    data_coding: int
    received_ms: int

    def body(self) -> bytes:
        return json.dumps(
            {
                "mo_id": self.mo_id,
                "account": self.account,
                "from": self.originator,
                "to": self.recipient,
                "text": self.text,
                "data_coding": self.data_coding,
                "received_at": from_ms(self.received_ms).isoformat(),
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
        raise CallbackFailed(str(exc), retry=not isinstance(exc, ValueError)) from None


class MoCallbacks:
    """`queue` from any task; `run` (in the scheduler's nursery) delivers, each callback in a task of its own."""

    def __init__(self, config: MessageConfig, rng: random.Random) -> None:
        self._config = config
        self._rng = rng
        self._send, self._receive = trio.open_memory_channel[MoCallback](config.mo_callback_queue_size)

    def queue(self, callback: MoCallback) -> None:
        try:
            self._send.send_nowait(callback)
        except trio.WouldBlock:
            log.warning("mo callback dropped: queue full mo_id=%d account=%s", callback.mo_id, callback.account)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            async for callback in self._receive:
                nursery.start_soon(self._deliver, callback)

    async def _deliver(self, callback: MoCallback) -> None:
        body = callback.body()
        for attempt in range(1, self._config.mo_callback_max_attempts + 1):
            try:
                status = await trio.to_thread.run_sync(
                    functools.partial(post_json, callback.url, body, self._config.mo_callback_timeout_s),
                    abandon_on_cancel=True,
                )
            except CallbackFailed as exc:
                log.warning("mo callback failed mo_id=%d account=%s attempt=%d reason=%s", callback.mo_id,
                            callback.account, attempt, exc)
                if not exc.retry:
                    return
                await trio.sleep(retry_delay_ms(attempt, self._config, self._rng) / 1000)
                continue
            log.info("mo callback delivered mo_id=%d account=%s status=%d", callback.mo_id, callback.account, status)
            return
        log.error("mo callback given up mo_id=%d account=%s attempts=%d", callback.mo_id, callback.account,
                  self._config.mo_callback_max_attempts)
