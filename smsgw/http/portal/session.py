"""Portal sessions, sans-IO: a signed cookie says who is logged in (a customer's system_id or an operator's name)
until when, and carries the session's CSRF token; nothing is kept on the server, so a restart keeps everyone
logged in (the key is `[http] session_secret`, or one generated once and kept beside the store).

The cookie is `base64url(json) "." base64url(HMAC-SHA256(key, json))`. Every form carries the CSRF token as a
hidden field and every POST must bring it back: a page of another site can make the browser send the cookie
(SameSite=Lax stops that only for cross-site POSTs from modern browsers) but cannot read the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

log = logging.getLogger(__name__)

COOKIE: Final = "smsgw_session"
SECRET_SUFFIX: Final = ".portal-secret"
_SECRET_BYTES: Final = 32

Role = Literal["customer", "operator"]


@dataclass(frozen=True, slots=True)
class Session:
    role: Role
    name: str  # the account's system_id, or the operator's name
    expires_s: float  # wall-clock seconds since the epoch
    csrf: str


def new_session(role: Role, name: str, now_s: float, lifetime_s: float) -> Session:
    return Session(role, name, now_s + lifetime_s, secrets.token_urlsafe(16))


def encode_session(session: Session, key: bytes) -> str:
    body = json.dumps([session.role, session.name, session.expires_s, session.csrf], separators=(",", ":")).encode()
    return f"{_b64(body)}.{_b64(_sign(key, body))}"


def decode_session(cookie: str, key: bytes, now_s: float) -> Session | None:
    """The session of a cookie signed with `key` and not expired at `now_s`, else None."""
    body_text, dot, signature = cookie.partition(".")
    if not dot:
        return None
    try:
        body = _unb64(body_text)
        if not hmac.compare_digest(_unb64(signature), _sign(key, body)):
            return None
        role, name, expires_s, csrf = json.loads(body)
    except (ValueError, TypeError):
        return None
    if role not in ("customer", "operator") or not isinstance(name, str) or not isinstance(csrf, str):
        return None
    if not isinstance(expires_s, int | float) or expires_s <= now_s:
        return None
    return Session(role, name, float(expires_s), csrf)


def csrf_matches(session: Session, token: str) -> bool:
    return hmac.compare_digest(session.csrf.encode(), token.encode())


def session_key(configured: str, store_path: str) -> bytes:
    """The signing key: `[http] session_secret` when set; otherwise the one in `<store path>.portal-secret`,
    created (mode 0600) the first time. An in-memory store gets a key for this process only."""
    if configured:
        return hashlib.sha256(configured.encode()).digest()
    if store_path == ":memory:":
        return secrets.token_bytes(_SECRET_BYTES)
    path = Path(store_path + SECRET_SUFFIX)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) >= _SECRET_BYTES:
            return key
        raise ValueError(f"{path}: shorter than {_SECRET_BYTES} bytes; delete it to make a new one") from None
    key = secrets.token_bytes(_SECRET_BYTES)
    with os.fdopen(fd, "wb") as file:
        file.write(key)
    log.info("portal session key created path=%s", path)
    return key


def _sign(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
