import pytest

from smsgw.config import ConfigError, config_from_mapping, load_config
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
        ({"smpp": {"max_password_checks": 0}}, "smpp.max_password_checks"),
        ({"smpp": {"pdu_read_timeout_s": -1}}, "smpp.pdu_read_timeout_s"),
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
