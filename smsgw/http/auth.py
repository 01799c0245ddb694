"""Who is calling: `Authorization: Basic` with an account's system_id and password, checked by the same `Login`
as SMPP binds (one failed-attempt count, lockout and password-check slots per address and account for both), or
`Authorization: Bearer KEY` through `HttpDeps.api_keys`.

A password verified once is cached by `Accounts` (keyed per process), so a client that sends Basic with every
request pays scrypt once, not per request.
"""

from __future__ import annotations

import binascii
import logging
from base64 import b64decode
from typing import Final

from starlette.requests import Request

from smsgw.config import AccountConfig
from smsgw.http.deps import HttpDeps
from smsgw.http.problems import Problem
from smsgw.smpp_server.accounts import BindRefused
from smsgw.smpp_server.login import CHECK_BUSY, LOCKED_OUT

log = logging.getLogger(__name__)

_CHALLENGE: Final = {"WWW-Authenticate": 'Basic realm="smsgw", charset="UTF-8"'}
# A client refused because every password-check slot is taken may come back after this.
_BUSY_RETRY_AFTER_S: Final = 1


async def authenticate(request: Request, deps: HttpDeps) -> AccountConfig:
    """The calling account, or a 401 problem (429 while its address is locked out, 503 while checks are busy)."""
    header = request.headers.get("authorization")
    if header is None:
        raise Problem(401, "credentials required (HTTP Basic with system_id and password, or a Bearer API key)",
                      headers=_CHALLENGE)
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    address = request.client.host if request.client is not None else ""
    if scheme == "bearer":
        account = None if deps.api_keys is None else await deps.api_keys(value.strip(), address)
        if account is None:
            # One answer for a key that does not exist and one refused from this address, as Basic's below.
            raise Problem(401, "unknown or revoked API key, or not allowed from this address", headers=_CHALLENGE)
        return account
    if scheme != "basic":
        raise Problem(401, f"unsupported authorization scheme {scheme!r}", headers=_CHALLENGE)
    try:
        system_id, colon, password = b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        colon = ""
    if not colon:
        raise Problem(401, "malformed Basic credentials", headers=_CHALLENGE)
    try:
        return await deps.login.authenticate(system_id, password, address)
    except BindRefused as exc:
        log.info("http authentication refused address=%s system_id=%s reason=%s", address, system_id, exc.reason)
        if exc.reason == LOCKED_OUT:
            retry = f"{deps.config.current.smpp.bind_lockout_s:.0f}"
            raise Problem(429, "too many failed attempts from this address", headers={"Retry-After": retry}) from None
        if exc.reason == CHECK_BUSY:
            raise Problem(503, "too many password checks at once", headers={"Retry-After": f"{_BUSY_RETRY_AFTER_S}"}
                          ) from None
        # One answer for an unknown account and a wrong password: the API does not confirm which accounts exist.
        raise Problem(401, "invalid credentials", headers=_CHALLENGE) from None
