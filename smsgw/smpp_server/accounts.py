"""Who may bind: account lookup, password check, source networks, bind types, and the failed-bind guard.

Everything here is synchronous and takes `now`; the Trio server decides when to sleep and where to run the
(deliberately slow) scrypt check.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from smsgw.config import AccountConfig
from smsgw.passwords import verify_password
from smsgw.pdu.constants import CommandId, CommandStatus

BIND_TYPES: Final[dict[CommandId, str]] = {
    CommandId.BIND_TRANSMITTER: "transmitter",
    CommandId.BIND_RECEIVER: "receiver",
    CommandId.BIND_TRANSCEIVER: "transceiver",
}

# Successful (password, hash) checks remembered so that reconnecting ESMEs do not pay scrypt every time.
_VERIFIED_CACHE_SIZE: Final = 4096


class BindRefused(Exception):
    """A bind we answer with `command_status`; `reason` is the short outcome written to the audit log."""

    def __init__(self, reason: str, *, command_status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command_status = command_status


@dataclass(frozen=True, slots=True)
class _Account:
    config: AccountConfig
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


class Accounts:
    """The configured accounts; raises `ValueError` at construction for a bad CIDR or duplicate system_id."""

    def __init__(self, configs: Iterable[AccountConfig]) -> None:
        self._accounts: dict[str, _Account] = {}
        for config in configs:
            if config.system_id in self._accounts:
                raise ValueError(f"duplicate account system_id {config.system_id!r}")
            unknown = set(config.allowed_bind_types) - set(BIND_TYPES.values())
            if unknown:
                raise ValueError(f"account {config.system_id!r}: unknown bind types {sorted(unknown)}")
            if (config.outbind_host is None) != (config.outbind_port is None):
                raise ValueError(f"account {config.system_id!r}: outbind_host and outbind_port go together")
            networks = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in config.allowed_networks)
            self._accounts[config.system_id] = _Account(config, networks)
        self._cache_key = secrets.token_bytes(32)
        self._verified: dict[bytes, None] = {}

    def get(self, system_id: str) -> AccountConfig | None:
        account = self._accounts.get(system_id)
        return None if account is None else account.config

    def __iter__(self) -> Iterator[AccountConfig]:
        return (account.config for account in self._accounts.values())

    def check_access(self, system_id: str, bind_command: CommandId, source_ip: str) -> AccountConfig:
        """The cheap checks, done before the password so a refused source never costs an scrypt run."""
        account = self._accounts.get(system_id)
        if account is None:
            raise BindRefused("unknown system_id", command_status=CommandStatus.ESME_RINVSYSID)
        if account.networks:
            address = ipaddress.ip_address(source_ip)
            if not any(address in network for network in account.networks):
                raise BindRefused("source address not allowed", command_status=CommandStatus.ESME_RBINDFAIL)
        if BIND_TYPES[bind_command] not in account.config.allowed_bind_types:
            raise BindRefused(
                f"bind type {BIND_TYPES[bind_command]} not allowed", command_status=CommandStatus.ESME_RBINDFAIL
            )
        return account.config

    def password_cached(self, account: AccountConfig, password: str) -> bool:
        """Whether this password was verified for this account before: then `check_password` is instant."""
        return self._cache_key_for(account, password) in self._verified

    def check_password(self, account: AccountConfig, password: str) -> None:
        """CPU-heavy on a cache miss (scrypt): call it from a worker thread unless `password_cached`."""
        key = self._cache_key_for(account, password)
        if key in self._verified:
            return
        if not verify_password(password, account.password_hash):
            raise BindRefused("bad password", command_status=CommandStatus.ESME_RINVPASWD)
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[key] = None

    def _cache_key_for(self, account: AccountConfig, password: str) -> bytes:
        # Keyed with a per-process secret, so the cache holds nothing that helps guess a password.
        text = f"{account.password_hash}\0{password}".encode()
        return hashlib.blake2b(text, key=self._cache_key, digest_size=32).digest()


@dataclass(slots=True)
class _Failures:
    count: int
    last_failure: float
    locked_until: float


class BindGuard:
    """Failed binds per source address: a growing answer delay, then a lockout.

    The n-th consecutive failure is answered after `delay_base_s * 2**(n-1)` seconds (capped at `delay_max_s`);
    at `lockout_failures` the address is refused outright for `lockout_s`. A success clears the address; so does
    `lockout_s` without failures, which also bounds the table's memory.
    """

    def __init__(self, *, delay_base_s: float, delay_max_s: float, lockout_failures: int, lockout_s: float) -> None:
        self._delay_base_s = delay_base_s
        self._delay_max_s = delay_max_s
        self._lockout_failures = lockout_failures
        self._lockout_s = lockout_s
        self._failures: dict[str, _Failures] = {}

    def is_locked_out(self, address: str, now: float) -> bool:
        entry = self._current(address, now)
        return entry is not None and now < entry.locked_until

    def record_failure(self, address: str, now: float) -> float:
        """Count a failure; returns how long to wait before answering it."""
        entry = self._current(address, now)
        if entry is None:
            if len(self._failures) >= 1024:
                self._prune(now)
            entry = self._failures[address] = _Failures(0, now, 0.0)
        entry.count += 1
        entry.last_failure = now
        if entry.count >= self._lockout_failures:
            entry.locked_until = now + self._lockout_s
        return min(self._delay_max_s, self._delay_base_s * 2.0 ** (entry.count - 1))

    def record_success(self, address: str) -> None:
        self._failures.pop(address, None)

    def _current(self, address: str, now: float) -> _Failures | None:
        entry = self._failures.get(address)
        if entry is not None and now >= max(entry.locked_until, entry.last_failure + self._lockout_s):
            del self._failures[address]
            return None
        return entry

    def _prune(self, now: float) -> None:
        for address in list(self._failures):
            self._current(address, now)
