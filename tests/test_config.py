import os
from pathlib import Path

import pytest

from smsgw.config import ConfigError, check_store_path, config_from_mapping, load_config
from smsgw.passwords import verify_password


def test_embedded_defaults_without_file() -> None:
    config = config_from_mapping({})
    assert config.smpp.port == 2775
    assert config.messages.default_validity_s == 7200


def test_plain_password_is_hashed_at_load() -> None:
    config = config_from_mapping({"accounts": [{"system_id": "acme", "password": "s3cret"}]})
    (account,) = config.accounts
    assert account.password_hash.startswith("scrypt$")
    assert verify_password("s3cret", account.password_hash)
    assert not verify_password("wrong", account.password_hash)


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ({"smpp": {"port": "2775"}}, "smpp.port"),
        ({"smpp": {"prot": 1}}, "smpp.prot"),
        ({"bogus": {}}, "bogus"),
        ({"accounts": [{"password": "x"}]}, "accounts[0].system_id"),
        ({"accounts": [{"system_id": "a", "password_hash": "plain"}]}, "accounts[0].password_hash"),
        ({"routes": {"name": "x"}}, "routes"),
        ({"smpp": {"port": 99999}}, "smpp.port"),
        ({"smpp": {"port": -1}}, "smpp.port"),
        ({"smpp": {"tls_port": 70000}}, "smpp.tls_port"),
        ({"smpp": {"window": 0}}, "smpp.window"),
        ({"messages": {"retry_backoff_base_s": -1.0}}, "messages.retry_backoff_base_s"),
        ({"smpp": {"max_segments": 0}}, "smpp.max_segments"),
        ({"accounts": [{"system_id": "a", "password": "x", "outbind_port": 0}]}, "accounts[0].outbind_port"),
        ({"accounts": [{"system_id": "a", "password": "x", "allowed_networks": ["10.0.0.0/33"]}]},
         "accounts[0].allowed_networks[0]"),
        ({"accounts": [{"system_id": "a", "password": "x", "allowed_networks": ["not-a-net"]}]},
         "accounts[0].allowed_networks[0]"),
        ({"accounts": [{"system_id": "a" * 16, "password": "x"}]}, "accounts[0].system_id"),
        ({"accounts": [{"system_id": "a", "password": "x", "outbind_password": "123456789"}]},
         "accounts[0].outbind_password"),
        ({"messages": {"interrupted_handoff": "drop"}}, "messages.interrupted_handoff"),
        ({"smpp": {"max_password_checks": 0}}, "smpp.max_password_checks"),
        ({"smpp": {"pdu_read_timeout_s": -1}}, "smpp.pdu_read_timeout_s"),
        ({"smpp": {"response_timeout_s": 60, "outbox_claim_s": 65}}, "smpp.outbox_claim_s"),
        ({"node": {"name": ""}}, "node.name"),
    ],
)
def test_errors_name_the_key(document: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(document, "smsgw.toml")
    assert info.value.key == key
    assert str(info.value).startswith(f"smsgw.toml: {key}: ")


def test_load_config_reports_syntax_errors_with_the_file_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.toml"
    path.write_text("[smpp\nport = 1\n")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_config(path)


def test_a_plain_password_longer_than_smpp_allows_is_refused_naming_the_account() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"accounts": [{"system_id": "acme", "password": "acme-secret"}]}, "smsgw.toml")
    assert info.value.key == "accounts[0].password"
    assert "'acme'" in info.value.problem and "8 characters" in info.value.problem
    config_from_mapping({"accounts": [{"system_id": "acme", "password": "12345678"}]})  # 8 is the most


def test_store_path_problems_name_the_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nowhere" / "gw.db"
    with pytest.raises(ConfigError) as info:
        check_store_path(config_from_mapping({"store": {"path": str(missing)}}), "smsgw.toml")
    assert info.value.key == "store.path" and str(missing.parent) in info.value.problem
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    # root may write into a 0o500 directory; /proc/1 refuses even root, so the check runs in CI (as root) too.
    unwritable = locked if not os.access(locked, os.W_OK) else Path("/proc/1")
    try:
        with pytest.raises(ConfigError) as info:
            check_store_path(config_from_mapping({"store": {"path": str(unwritable / "gw.db")}}), "smsgw.toml")
        assert str(unwritable) in info.value.problem
    finally:
        locked.chmod(0o700)
    check_store_path(config_from_mapping({"store": {"path": str(tmp_path / "gw.db")}}), "smsgw.toml")


@pytest.mark.parametrize("value", ["resend", "fail"])
def test_interrupted_handoff_takes_resend_or_fail(value: str) -> None:
    config = config_from_mapping({"messages": {"interrupted_handoff": value}})
    assert config.messages.interrupted_handoff == value


_UPSTREAM = {"name": "opA", "system_id": "gw", "password": "secret"}


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ({"upstreams": [{**_UPSTREAM, "password": "123456789"}]}, "upstreams[0].password"),
        ({"upstreams": [{**_UPSTREAM, "system_id": ""}]}, "upstreams[0].system_id"),
        ({"upstreams": [{**_UPSTREAM, "bind": "receiver"}]}, "upstreams[0].bind"),
        ({"upstreams": [{**_UPSTREAM, "window": 0}]}, "upstreams[0].window"),
        ({"upstreams": [{**_UPSTREAM, "reconnect_delay_max_s": 0.5}]}, "upstreams[0].reconnect_delay_max_s"),
        ({"upstreams": [{"system_id": "gw"}]}, "upstreams[0].name"),
        ({"routes": [{"name": "uk", "via": ["upstream:opA", "smsc:opB"]}]}, "routes[0].via[1]"),
        ({"routes": [{"name": "uk", "via": ["upstream:"]}]}, "routes[0].via[0]"),
    ],
)
def test_upstream_and_via_errors_name_the_key(document: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(document)
    assert info.value.key == key


def test_a_route_without_via_goes_through_its_modem_group() -> None:
    config = config_from_mapping({"routes": [{"name": "uk", "modem_group": "uk"},
                                             {"name": "eu", "via": ["upstream:opA", "modems:eu"]}]})
    assert [route.connectors for route in config.routes] == [("modems:uk",), ("upstream:opA", "modems:eu")]


_ACCOUNT = {
    "system_id": "a",
    "password_hash": "scrypt$16384$8$1$f3d5e6c1feb4333aa7c338018c4b6ac0$"
    "85365bb6f32d178403ac2c00c67fb6049a724c2fb46d57ffbcbf24d99fc4fb70",
}


@pytest.mark.parametrize(
    ("document", "key"),
    [
        # Each was found only when the SMPP server listened, the store connected or an ESME first bound...
        ({"smpp": {"tls_port": 0}}, "smpp.tls_cert_path"),
        ({"smpp": {"tls_port": 0, "tls_cert_path": "cert.pem"}}, "smpp.tls_key_path"),
        ({"store": {"synchronous": "sometimes"}}, "store.synchronous"),
        ({"accounts": [{**_ACCOUNT, "allowed_bind_types": ["transmitter", "sender"]}]},
         "accounts[0].allowed_bind_types[1]"),
        ({"accounts": [{**_ACCOUNT, "outbind_host": "127.0.0.1"}]}, "accounts[0].outbind_port"),
        ({"accounts": [{**_ACCOUNT, "outbind_port": 2776}]}, "accounts[0].outbind_host"),
        # ... or when the account first submitted (its token bucket).
        ({"accounts": [{**_ACCOUNT, "throughput_per_s": 0}]}, "accounts[0].throughput_per_s"),
        ({"accounts": [{**_ACCOUNT, "throughput_burst": 0}]}, "accounts[0].throughput_burst"),
    ],
)
def test_what_start_up_would_refuse_is_refused_at_load_naming_the_key(document: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(document, "smsgw.toml")
    assert info.value.key == key


def test_the_values_those_checks_accept_still_load() -> None:
    config = config_from_mapping({
        "smpp": {"tls_port": 0, "tls_cert_path": "cert.pem", "tls_key_path": "key.pem"},
        "store": {"synchronous": "normal"},
        "accounts": [{**_ACCOUNT, "allowed_bind_types": ["receiver"], "outbind_host": "::1", "outbind_port": 2776}],
    })
    assert config.store.synchronous == "normal"
    assert config.accounts[0].allowed_bind_types == ("receiver",)


def test_store_url_must_be_a_postgresql_url() -> None:
    assert config_from_mapping({"store": {"url": "postgresql://db.example/smsgw"}}).store.url.startswith("postgresql")
    with pytest.raises(ConfigError, match=r"store\.url: must start with postgresql:// or postgres://"):
        config_from_mapping({"store": {"url": "mysql://db.example/smsgw"}})
