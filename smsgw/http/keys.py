"""API keys: made by `smsgw account api-key create`, shown once, kept as their SHA-256 only.

A key is 32 random bytes (256 bits), so a plain SHA-256 is as good as a password hash would be against a stolen
database (nobody can enumerate 2^256 keys) and costs a microsecond instead of scrypt's tens of milliseconds per
request. The lookup reads the store on every request, so a revoke from the CLI (another process) takes effect at
the next request; the last-used time is written at most once per `LAST_USED_RESOLUTION_S` per key, not per
request.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from typing import Final

import trio

from smsgw.config import AccountConfig
from smsgw.scheduler.store import MessageStore
from smsgw.smpp_server.accounts import BindRefused
from smsgw.smpp_server.login import Login

log = logging.getLogger(__name__)

KEY_PREFIX: Final = "smsgw_"  # tells a leaked key apart from other secrets in logs and secret scanners
_KEY_BYTES: Final = 32
LAST_USED_RESOLUTION_S: Final = 60.0


def new_api_key() -> tuple[str, str]:
    """A fresh key and the hash the store keeps of it."""
    key = KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)
    return key, hash_api_key(key)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """`HttpDeps.api_keys`: a Bearer key used from `address` to its account (one of the running config's), or
    None. The account's access rules are the ones a password login passes (`Accounts.check_access`: the account
    exists, `allowed_networks`), so a key opens nothing a password would not from that address."""

    def __init__(self, store: MessageStore, login: Login, now_ms: Callable[[], int]) -> None:
        self._store = store
        self._login = login
        self._now_ms = now_ms
        self._touched: dict[int, float] = {}  # key id -> trio time its last-used time was last written

    async def __call__(self, key: str, address: str) -> AccountConfig | None:
        found = await self._store.api_key_find(hash_api_key(key))
        if found is None:
            return None
        try:
            account = self._login.accounts.check_access(found.account, None, address)
        except BindRefused as exc:  # the account left the config, or the address is not one of its networks
            log.info("api key refused key_id=%d account=%s address=%s reason=%s", found.key_id, found.account,
                     address, exc.reason)
            return None
        now = trio.current_time()
        last = self._touched.get(found.key_id)
        if last is None or now - last >= LAST_USED_RESOLUTION_S:
            self._touched[found.key_id] = now
            await self._store.api_key_used(found.key_id, self._now_ms())
        return account
