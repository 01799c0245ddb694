"""Start-up checks of `smsgw serve`: a config error names file, key and problem, exits 2, and opens nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from smsgw import cli
from smsgw.cli.gateway import _run_until_stopped
from smsgw.app import check_config, demo_config, demo_msisdns, keep_running
from smsgw.config import Config, ConfigError, ConfigHolder, config_from_mapping
from smsgw.passwords import verify_password

_ACCOUNT = {"system_id": "acme", "password_hash": "scrypt$16384$8$1$00$00"}
_MODEM = {"name": "sim1", "port": "/dev/ttyUSB0", "group": "uk"}
_ROUTE = {"name": "uk", "prefixes": ["44"], "modem_group": "uk"}
_UPSTREAM = {"name": "opA", "system_id": "gw", "password": "secret"}


@pytest.mark.parametrize(
    ("document", "key", "problem"),
    [
        ({"modems": [_MODEM], "routes": [_ROUTE]}, "accounts", "no ESME could bind"),
        ({"accounts": [_ACCOUNT], "routes": [_ROUTE]}, "modems", "never be sent"),
        ({"accounts": [_ACCOUNT, _ACCOUNT], "modems": [_MODEM], "routes": [_ROUTE]}, "accounts[1].system_id",
         "'acme' is used twice"),
        ({"accounts": [_ACCOUNT], "modems": [_MODEM, {**_MODEM, "name": "sim2"}], "routes": [_ROUTE]},
         "modems[0].port", "used by two modems"),
        ({"accounts": [_ACCOUNT], "modems": [_MODEM], "routes": [_ROUTE, {**_ROUTE, "modem_group": "de"}]},
         "routes[1].name", "'uk' is used twice"),
        ({"accounts": [_ACCOUNT], "modems": [_MODEM], "routes": [{**_ROUTE, "modem_group": "de"}]},
         "routes[0].modem_group", "no modem is in group 'de' (groups: uk)"),
        ({"accounts": [_ACCOUNT], "modems": [_MODEM]}, "routes[0].modem_group", "no modem is in group 'default'"),
        ({"accounts": [{**_ACCOUNT, "parent": "nobody"}], "modems": [_MODEM], "routes": [_ROUTE]},
         "accounts[0].parent", "no other account 'nobody'"),
        ({"accounts": [_ACCOUNT], "modems": [_MODEM], "routes": [{**_ROUTE, "via": ["modems:uk", "upstream:opB"]}],
          "upstreams": [_UPSTREAM]}, "routes[0].via[1]", "no [[upstreams]] is named 'opB' (names: opA)"),
        ({"accounts": [_ACCOUNT], "modems": [_MODEM], "routes": [{**_ROUTE, "via": ["modems:de"]}]},
         "routes[0].via[0]", "no modem is in group 'de'"),
        ({"accounts": [_ACCOUNT], "modems": [_MODEM], "routes": [_ROUTE], "upstreams": [_UPSTREAM, _UPSTREAM]},
         "upstreams[1].name", "'opA' is used twice"),
    ],
)
def test_cross_section_errors_name_the_key(document: dict[str, object], key: str, problem: str) -> None:
    config = config_from_mapping(document, "gw.toml")
    with pytest.raises(ConfigError) as info:
        check_config(config, "gw.toml")
    assert info.value.key == key
    assert problem in info.value.problem


def test_consistent_config_passes() -> None:
    check_config(config_from_mapping({"accounts": [_ACCOUNT], "modems": [_MODEM], "routes": [_ROUTE]}), "gw.toml")


def test_a_gateway_of_upstreams_only_needs_no_modems() -> None:
    route = {"name": "uk", "prefixes": ["44"], "via": ["upstream:opA"]}
    check_config(config_from_mapping({"accounts": [_ACCOUNT], "routes": [route], "upstreams": [_UPSTREAM]}), "gw.toml")


def test_mo_receipts_warn_of_modems_whose_number_cannot_recognise_a_returning_notice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    modems = [
        {**_MODEM, "port": "/dev/ttyUSB0"},  # no msisdn
        {**_MODEM, "name": "sim2", "port": "/dev/ttyUSB1", "msisdn": "07700900001"},  # national
        {**_MODEM, "name": "sim3", "port": "/dev/ttyUSB2", "msisdn": "+447700900002"},
        {**_MODEM, "name": "sim4", "port": "/dev/ttyUSB3", "msisdn": "0044 7700 900003"},  # not as stored digits
    ]
    caplog.set_level(logging.WARNING, logger="smsgw.app")

    def warnings() -> list[list[str]]:  # the config check's own (another test's stray records may arrive too)
        return [r.getMessage().split(":")[:2] for r in caplog.records if r.name == "smsgw.app"]

    check_config(config_from_mapping({"accounts": [_ACCOUNT], "modems": modems, "routes": [_ROUTE]}), "gw.toml")
    assert not warnings()  # no account sends MO receipts: nothing to recognise
    receipts = {**_ACCOUNT, "mo_receipts": True}
    check_config(config_from_mapping({"accounts": [receipts], "modems": modems, "routes": [_ROUTE]}), "gw.toml")
    assert warnings() == [
        ["gw.toml", " modems[0].msisdn not set"],
        ["gw.toml", " modems[1].msisdn '07700900001' is not in international format"],
        ["gw.toml", " modems[3].msisdn '0044 7700 900003' is not in international format"],
    ]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[smpp]\nport = "2775"\n', "gw.toml: smpp.port: must be int"),
        ("[smpp\n", "gw.toml: (syntax)"),
        ('[[accounts]]\nsystem_id = "a"\npassword = "p"\n[[modems]]\nname = "m"\nport = "/dev/x"\ngroup = "g"\n',
         "gw.toml: routes[0].modem_group: no modem is in group 'default'"),
    ],
)
def test_serve_exits_2_on_config_error_without_touching_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, message: str
) -> None:
    store = tmp_path / "store.db"
    config = tmp_path / "gw.toml"
    config.write_text(f'[store]\npath = "{store}"\n' + toml)
    assert cli.main(["serve", "--config", str(config)]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"smsgw: error: {tmp_path}/{message}")
    assert len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == [config]


def test_serve_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--config", str(tmp_path / "nope.toml")]) == cli.EXIT_BAD_INPUT
    assert "nope.toml: (file): No such file or directory" in capsys.readouterr().err


def test_demo_config_is_consistent(tmp_path: Path) -> None:
    links = [(msisdn, tmp_path / f"modem{i}") for i, msisdn in enumerate(demo_msisdns(4), start=1)]
    config = demo_config(Config(), port=0, db_path=str(tmp_path / "demo.db"), modem_links=links)
    check_config(config, "<demo>")
    assert [m.msisdn for m in config.modems] == ["447700900001", "447700900002", "447700900003", "447700900004"]
    (account,) = config.accounts
    assert account.system_id == "demo" and verify_password("demo", account.password_hash)
    assert config.messages.mo_default_account == "demo"
    assert config.smpp.host == "127.0.0.1" and config.store.path == str(tmp_path / "demo.db")


def test_a_second_ctrl_c_during_the_graceful_stop_is_one_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import trio

    async def stopping() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            raise KeyboardInterrupt  # as trio raises it inside the gateway's nursery once the handler is gone

    assert _run_until_stopped(stopping) == 1
    assert capsys.readouterr().err == "smsgw: error: interrupted during the graceful stop; stopped at once\n"


def test_a_reload_keeps_what_only_a_restart_can_change() -> None:
    running = config_from_mapping({
        "smpp": {"port": 2775, "window": 10},
        "accounts": [{**_ACCOUNT, "outbind_host": "10.0.0.1", "outbind_port": 2776}],
        "modems": [_MODEM], "routes": [_ROUTE], "store": {"path": "a.db"},
        "messages": {"mo_callback_concurrency": 16, "default_validity_s": 600},
    })
    loaded = config_from_mapping({
        "smpp": {"port": 2776, "window": 20},
        "accounts": [{**_ACCOUNT, "throughput_per_s": 5.0},
                     {**_ACCOUNT, "system_id": "new", "outbind_host": "10.0.0.2", "outbind_port": 2777}],
        "modems": [{**_MODEM, "port": "/dev/ttyUSB9"}], "routes": [{**_ROUTE, "price_per_segment": 0.5}],
        "store": {"path": "b.db"},
        "messages": {"mo_callback_concurrency": 4, "default_validity_s": 1200},
    })
    config, kept = keep_running(running, loaded)
    assert set(kept) == {
        "smpp.port", "accounts[acme].outbind_host", "accounts[acme].outbind_port", "accounts[new].outbind_host",
        "accounts[new].outbind_port", "messages.mo_callback_concurrency", "store", "modems",
    }
    assert config.smpp.port == 2775 and config.store == running.store and config.modems == running.modems
    assert config.messages.mo_callback_concurrency == 16
    # What applies at once: session settings, accounts and their limits, routes and prices, message settings.
    assert config.smpp.window == 20 and config.messages.default_validity_s == 1200
    assert [(a.system_id, a.throughput_per_s, a.outbind_host) for a in config.accounts] == [
        ("acme", 5.0, "10.0.0.1"), ("new", 100.0, None)
    ]
    assert config.routes == loaded.routes
    assert keep_running(running, running) == (running, ())


def test_a_config_holder_builds_derived_values_once_per_config_and_refuses_one_it_cannot_build() -> None:
    builds: list[Config] = []

    def ports(config: Config) -> tuple[str, ...]:
        builds.append(config)
        if not config.modems:
            raise ValueError("no modems")
        return tuple(m.port for m in config.modems)

    first = config_from_mapping({"modems": [_MODEM]})
    holder = ConfigHolder(first)
    assert holder.derived(ports) == ("/dev/ttyUSB0",) and holder.derived(ports) == ("/dev/ttyUSB0",)
    assert builds == [first]
    with pytest.raises(ValueError):
        holder.replace(Config())
    assert holder.current is first and holder.derived(ports) == ("/dev/ttyUSB0",)
    second = config_from_mapping({"modems": [{**_MODEM, "port": "/dev/ttyUSB1"}]})
    holder.replace(second)  # built anew at once, so a failure shows at the reload, not at the next submission
    assert builds == [first, Config(), second] and holder.derived(ports) == ("/dev/ttyUSB1",)
