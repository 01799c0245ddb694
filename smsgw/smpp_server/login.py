"""The one credential check of every front: an SMPP bind and an HTTP request with Basic auth go through the same
`Login`, so they share the failed-attempt counts, the lockouts and the password-check slots of one `BindGuard`
(failures over HTTP lock out the SMPP binds of that account from that address, and the other way round).

The rules themselves are `BindGuard`'s and `Accounts`'; this is only their order and the waiting, in Trio.
"""

from __future__ import annotations

import functools
import secrets
from typing import Final

import trio

from smsgw.config import AccountConfig, ConfigHolder, OperatorConfig
from smsgw.pdu.constants import CommandId, CommandStatus
from smsgw.passwords import hash_password, verify_password
from smsgw.smpp_server.accounts import Accounts, BindGuard, BindRefused, accounts_of

# `BindRefused.reason` of the refusals that are not a failed attempt (fronts answer them differently).
LOCKED_OUT: Final = "source locked out"
CHECK_BUSY: Final = "password check busy"
# The guard counts failures per name; an operator's name is kept apart from an account's system_id by this prefix.
OPERATOR_PREFIX: Final = "operator:"


class Login:
    """Credentials of the current config's accounts, checked under one guard made from the config at start."""

    def __init__(self, holder: ConfigHolder) -> None:
        self._holder = holder
        smpp = holder.current.smpp
        self.guard = BindGuard(
            delay_base_s=smpp.bind_failure_delay_base_s,
            delay_max_s=smpp.bind_failure_delay_max_s,
            lockout_failures=smpp.bind_lockout_failures,
            address_lockout_failures=smpp.bind_lockout_address_failures,
            lockout_s=smpp.bind_lockout_s,
            max_checks=smpp.max_password_checks,
        )

    @property
    def accounts(self) -> Accounts:
        return self._holder.derived(accounts_of)

    async def authenticate(
        self, system_id: str, password: str, address: str, bind_command: CommandId | None = None
    ) -> AccountConfig:
        """The account, or BindRefused (answered after the guard's delay when it is a failure).

        The lockout is checked, and the attempt counted, before the slow password check; a check needs one of the
        guard's slots (one per address, a few in all): without one the attempt is refused at once, uncounted, so
        parallel attempts cost at most that many scrypt runs (CPU and 16 MB each) whatever their number.
        `bind_command` is the SMPP bind type to check against the account's `allowed_bind_types`; None (HTTP)
        checks none."""
        guard, accounts = self.guard, self.accounts
        now = trio.current_time()
        if guard.is_locked_out(address, system_id, now):
            raise BindRefused(LOCKED_OUT, command_status=CommandStatus.ESME_RBINDFAIL)
        try:
            account = accounts.check_access(system_id, bind_command, address)
        except BindRefused:
            await trio.sleep(guard.record_failure(address, system_id, now))
            raise
        if not accounts.password_cached(account, password):
            if not guard.start_check(address):
                raise BindRefused(CHECK_BUSY, command_status=CommandStatus.ESME_RBINDFAIL)
            delay = guard.record_failure(address, system_id, now)
            try:
                await trio.to_thread.run_sync(accounts.check_password, account, password)
            except BindRefused:
                guard.finish_check(address)  # the slot is for the check, not for the delay that answers a failure
                await trio.sleep(delay)
                raise
            finally:
                guard.finish_check(address)
        guard.record_success(address, system_id)
        return account

    async def authenticate_operator(self, name: str, password: str, address: str) -> OperatorConfig:
        """An `[[operators]]` login (the portal's operator pages), under the same guard as the accounts: failures
        from an address count towards its lockout whichever kind of login they tried. BindRefused as above."""
        guard = self.guard
        key = OPERATOR_PREFIX + name
        now = trio.current_time()
        if guard.is_locked_out(address, key, now):
            raise BindRefused(LOCKED_OUT, command_status=CommandStatus.ESME_RBINDFAIL)
        operator = next((o for o in self._holder.current.operators if o.name == name), None)
        if not guard.start_check(address):
            raise BindRefused(CHECK_BUSY, command_status=CommandStatus.ESME_RBINDFAIL)
        delay = guard.record_failure(address, key, now)
        try:
            # An unknown name costs the same scrypt run as a wrong password, so timing does not tell them apart.
            hash_ = operator.password_hash if operator is not None else _unknown_operator_hash()
            ok = await trio.to_thread.run_sync(verify_password, password, hash_)
        finally:
            guard.finish_check(address)
        if operator is None or not ok:
            await trio.sleep(delay)
            raise BindRefused("bad operator login", command_status=CommandStatus.ESME_RINVPASWD)
        guard.record_success(address, key)
        return operator


@functools.cache
def _unknown_operator_hash() -> str:
    return hash_password(secrets.token_hex(16))
