"""Account passwords stored as salted scrypt hashes: `scrypt$n$r$p$salt_hex$hash_hex`."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

_N: Final = 2**14
_R: Final = 8
_P: Final = 1
_SALT_BYTES: Final = 16
_HASH_BYTES: Final = 32


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_HASH_BYTES)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def is_password_hash(text: str) -> bool:
    parts = text.split("$")
    return len(parts) == 6 and parts[0] == "scrypt" and all(p.isdigit() for p in parts[1:4])


def verify_password(password: str, stored_hash: str) -> bool:
    """Constant-time check; a malformed stored hash never matches."""
    if not is_password_hash(stored_hash):
        return False
    _, n, r, p, salt_hex, digest_hex = stored_hash.split("$")
    try:
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
    except ValueError:
        return False
    actual = hashlib.scrypt(
        password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected), maxmem=2**27
    )
    return hmac.compare_digest(actual, expected)
