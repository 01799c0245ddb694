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
from typing import Final, TypeVar

from smsgw.config import AccountConfig, Config
from smsgw.passwords import verify_password
from smsgw.pdu.constants import CommandId, CommandStatus

BIND_TYPES: Final[dict[CommandId, str]] = {
    CommandId.BIND_TRANSMITTER: "transmitter",
    CommandId.BIND_RECEIVER: "receiver",
    CommandId.BIND_TRANSCEIVER: "transceiver",
}

# Successful (password, hash) checks remembered so that reconnecting ESMEs do not pay scrypt every time.
_VERIFIED_CACHE_SIZE: Final = 4096
# Failure tables beyond this many entries are swept for expired ones before growing.
_FAILURES_SWEEP_SIZE: Final = 1024

_Key = TypeVar("_Key", str, tuple[str, str])


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
    """The configured accounts, as `load_config` and `app.check_config` checked them (bind types, the outbind
    pair, networks, unique system_ids)."""

    def __init__(self, configs: Iterable[AccountConfig]) -> None:
        self._accounts: dict[str, _Account] = {}
        for config in configs:
            networks = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in config.allowed_networks)
            self._accounts[config.system_id] = _Account(config, networks)
        self._cache_key = secrets.token_bytes(32)
        self._verified: dict[bytes, None] = {}

    def get(self, system_id: str) -> AccountConfig | None:
        account = self._accounts.get(system_id)
        return None if account is None else account.config

    def __iter__(self) -> Iterator[AccountConfig]:
        return (account.config for account in self._accounts.values())

    def check_access(self, system_id: str, bind_command: CommandId | None, source_ip: str) -> AccountConfig:
        """The cheap checks, done before the password so a refused source never costs an scrypt run; the bind
        type only for an SMPP bind (`bind_command` None: HTTP)."""
        account = self._accounts.get(system_id)
        if account is None:
            raise BindRefused("unknown system_id", command_status=CommandStatus.ESME_RINVSYSID)
        if account.networks:
            address = ipaddress.ip_address(source_ip)
            if not any(address in network for network in account.networks):
                raise BindRefused("source address not allowed", command_status=CommandStatus.ESME_RBINDFAIL)
        if bind_command is not None and BIND_TYPES[bind_command] not in account.config.allowed_bind_types:
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


def accounts_of(config: Config) -> Accounts:
    """For `ConfigHolder.derived`: one `Accounts` (and one verified-password cache) per config, shared by every
    front that checks credentials."""
    return Accounts(config.accounts)


@dataclass(slots=True)
class _Failures:
    count: int
    last_failure: float
    locked_until: float


class BindGuard:
    """Failed binds per (source address, system_id), a cap per address, and the password checks in progress.

    Counted per account and address, so that neither one's success clears another's count (an ESME with one valid
    account could otherwise guess another's password without end) nor one account's lockout refuses other
    accounts behind the same NAT. The n-th consecutive failure of an account from an address is answered after
    `delay_base_s * 2**(n-1)` seconds (capped at `delay_max_s`); at `lockout_failures` that account is refused
    from that address for `lockout_s`, and at `address_lockout_failures` failures of all accounts together, the
    whole address is. A success clears its own account's count (and its share of the address's total); so does
    `lockout_s` without failures, which also bounds the tables' memory.

    A password check (scrypt: CPU and 16 MB each) needs a slot: one per address at a time and `max_checks` in
    all, so parallel binds cannot run many at once past the count; the attempt is counted when its check starts.
    """

    def __init__(
        self,
        *,
        delay_base_s: float,
        delay_max_s: float,
        lockout_failures: int,
        address_lockout_failures: int,
        lockout_s: float,
        max_checks: int,
    ) -> None:
        self._delay_base_s = delay_base_s
        self._delay_max_s = delay_max_s
        self._lockout_failures = lockout_failures
        self._address_lockout_failures = address_lockout_failures
        self._lockout_s = lockout_s
        self._max_checks = max_checks
        self._accounts: dict[tuple[str, str], _Failures] = {}
        self._addresses: dict[str, _Failures] = {}
        self._checking: set[str] = set()  # addresses with a password check in progress
        self.lockouts = 0  # lockouts begun (of an account from an address, or of a whole address), for metrics

    def is_locked_out(self, address: str, system_id: str, now: float) -> bool:
        for entry in (self._current(self._addresses, address, now),
                      self._current(self._accounts, (address, system_id), now)):
            if entry is not None and now < entry.locked_until:
                return True
        return False

    def start_check(self, address: str) -> bool:
        """Take a password check slot for `address`; False if it has one already or all are taken."""
        if address in self._checking or len(self._checking) >= self._max_checks:
            return False
        self._checking.add(address)
        return True

    def finish_check(self, address: str) -> None:
        self._checking.discard(address)

    def record_failure(self, address: str, system_id: str, now: float) -> float:
        """Count a failure (or an attempt whose check is starting); returns how long to wait before answering
        it if it fails."""
        self._count(self._addresses, address, self._address_lockout_failures, now)
        count = self._count(self._accounts, (address, system_id), self._lockout_failures, now)
        return min(self._delay_max_s, self._delay_base_s * 2.0 ** (count - 1))

    def record_success(self, address: str, system_id: str) -> None:
        entry = self._accounts.pop((address, system_id), None)
        total = self._addresses.get(address)
        if entry is not None and total is not None:
            total.count = max(0, total.count - entry.count)

    def _count(self, table: dict[_Key, _Failures], key: _Key, lockout_failures: int, now: float) -> int:
        entry = self._current(table, key, now)
        if entry is None:
            if len(table) >= _FAILURES_SWEEP_SIZE:
                for old in list(table):
                    self._current(table, old, now)
            entry = table[key] = _Failures(0, now, 0.0)
        entry.count += 1
        entry.last_failure = now
        if entry.count == lockout_failures:
            self.lockouts += 1
        if entry.count >= lockout_failures:
            entry.locked_until = now + self._lockout_s
        return entry.count

    def _current(self, table: dict[_Key, _Failures], key: _Key, now: float) -> _Failures | None:
        entry = table.get(key)
        if entry is not None and now >= max(entry.locked_until, entry.last_failure + self._lockout_s):
            del table[key]
            return None
        return entry
