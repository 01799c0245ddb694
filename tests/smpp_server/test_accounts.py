import pytest

from smsgw.config import AccountConfig
from smsgw.passwords import hash_password
from smsgw.pdu.constants import CommandId, CommandStatus
from smsgw.smpp_server.accounts import Accounts, BindGuard, BindRefused

HASH = hash_password("secret")


def _accounts(**overrides: object) -> Accounts:
    return Accounts([AccountConfig(system_id="acme", password_hash=HASH, **overrides)])  # type: ignore[arg-type]


def test_unknown_system_id() -> None:
    with pytest.raises(BindRefused) as info:
        _accounts().check_access("nobody", CommandId.BIND_TRANSMITTER, "127.0.0.1")
    assert info.value.command_status == CommandStatus.ESME_RINVSYSID


def test_source_network_checked() -> None:
    accounts = _accounts(allowed_networks=("10.0.0.0/8", "2001:db8::/32"))
    assert accounts.check_access("acme", CommandId.BIND_RECEIVER, "10.1.2.3").system_id == "acme"
    assert accounts.check_access("acme", CommandId.BIND_RECEIVER, "2001:db8::1").system_id == "acme"
    with pytest.raises(BindRefused) as info:
        accounts.check_access("acme", CommandId.BIND_RECEIVER, "192.168.1.1")
    assert info.value.command_status == CommandStatus.ESME_RBINDFAIL


def test_bind_type_checked() -> None:
    accounts = _accounts(allowed_bind_types=("transmitter",))
    accounts.check_access("acme", CommandId.BIND_TRANSMITTER, "127.0.0.1")
    with pytest.raises(BindRefused, match="transceiver"):
        accounts.check_access("acme", CommandId.BIND_TRANSCEIVER, "127.0.0.1")


def test_password_checked_and_cached() -> None:
    accounts = _accounts()
    account = accounts.check_access("acme", CommandId.BIND_TRANSMITTER, "127.0.0.1")
    assert not accounts.password_cached(account, "secret")
    accounts.check_password(account, "secret")
    assert accounts.password_cached(account, "secret")
    with pytest.raises(BindRefused) as info:
        accounts.check_password(account, "Secret")
    assert info.value.command_status == CommandStatus.ESME_RINVPASWD
    assert not accounts.password_cached(account, "Secret")


def test_a_network_that_is_not_cidr_is_refused() -> None:
    # Bind types, the outbind pair and unique system_ids are checked at load (tests/test_config.py, test_app.py).
    with pytest.raises(ValueError):
        Accounts([AccountConfig("a", HASH, allowed_networks=("10.0.0.300/8",))])


def _guard(**overrides: float) -> BindGuard:
    settings: dict[str, float] = dict(delay_base_s=0.5, delay_max_s=4.0, lockout_failures=5,
                                      address_lockout_failures=12, lockout_s=60.0, max_checks=2)
    return BindGuard(**{**settings, **overrides})  # type: ignore[arg-type]


def test_guard_delay_grows_then_locks_out() -> None:
    guard = _guard()
    delays = [guard.record_failure("1.2.3.4", "acme", float(t)) for t in range(4)]
    assert delays == [0.5, 1.0, 2.0, 4.0]
    assert not guard.is_locked_out("1.2.3.4", "acme", 4.0)
    assert guard.record_failure("1.2.3.4", "acme", 4.0) == 4.0
    assert guard.is_locked_out("1.2.3.4", "acme", 5.0)
    assert not guard.is_locked_out("5.6.7.8", "acme", 5.0)
    assert not guard.is_locked_out("1.2.3.4", "acme", 64.0)
    assert guard.record_failure("1.2.3.4", "acme", 65.0) == 0.5


def test_guard_success_clears_only_its_own_account() -> None:
    guard = _guard(lockout_failures=3)
    guard.record_failure("1.2.3.4", "acme", 0.0)
    guard.record_failure("1.2.3.4", "acme", 1.0)
    guard.record_failure("1.2.3.4", "other", 1.0)
    guard.record_failure("1.2.3.4", "other", 1.0)
    guard.record_success("1.2.3.4", "acme")
    assert guard.record_failure("1.2.3.4", "acme", 2.0) == 0.5
    # A valid account's success does not let the same source go on guessing another account's password.
    guard.record_failure("1.2.3.4", "other", 2.0)
    guard.record_success("1.2.3.4", "acme")
    assert guard.is_locked_out("1.2.3.4", "other", 3.0)


def test_guard_account_lockout_spares_other_accounts_behind_the_same_address() -> None:
    guard = _guard()
    for _ in range(5):
        guard.record_failure("192.0.2.1", "acme", 0.0)
    assert guard.is_locked_out("192.0.2.1", "acme", 1.0)
    assert not guard.is_locked_out("192.0.2.1", "other", 1.0)


def test_guard_address_cap_counts_failures_of_all_accounts() -> None:
    guard = _guard()
    for n in range(12):  # never 5 for one account
        assert not guard.is_locked_out("192.0.2.1", f"guess{n % 4}", 0.0)
        guard.record_failure("192.0.2.1", f"guess{n % 4}", 0.0)
    assert guard.is_locked_out("192.0.2.1", "acme", 1.0)
    assert not guard.is_locked_out("192.0.2.2", "acme", 1.0)
    assert not guard.is_locked_out("192.0.2.1", "acme", 60.0)


def test_guard_success_takes_its_own_failures_off_the_address_total() -> None:
    guard = _guard()
    for _ in range(3):
        for _ in range(4):  # one short of the account lockout, then the right password
            guard.record_failure("192.0.2.1", "acme", 0.0)
        guard.record_success("192.0.2.1", "acme")
    assert not guard.is_locked_out("192.0.2.1", "other", 0.0)


def test_guard_one_password_check_per_address_and_a_few_in_all() -> None:
    guard = _guard(max_checks=2)
    assert guard.start_check("192.0.2.1")
    assert not guard.start_check("192.0.2.1")
    assert guard.start_check("192.0.2.2")
    assert not guard.start_check("192.0.2.3")
    guard.finish_check("192.0.2.1")
    assert guard.start_check("192.0.2.3")
    assert not guard.start_check("192.0.2.1")
