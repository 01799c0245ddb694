"""The commented example config in the repository root loads, documents every key, and means what it says."""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from pathlib import Path

from smsgw.app import check_config
from smsgw.config import Config, config_from_mapping, load_config
from smsgw.passwords import verify_password
from smsgw.scheduler.routing import find_route

EXAMPLE = Path(__file__).resolve().parents[1] / "smsgw.example.toml"


def test_example_config_loads() -> None:
    config = load_config(EXAMPLE)
    assert [a.system_id for a in config.accounts] == ["acme", "alerts"]
    assert verify_password("acme-pw1", config.accounts[0].password_hash)
    assert verify_password("alerts-1", config.accounts[1].password_hash)
    assert {m.group for m in config.modems} == {r.modem_group for r in config.routes}
    assert find_route(config.routes, "447700900123").name == "uk"
    assert find_route(config.routes, "4915112345678").name == "rest-of-world"
    check_config(config, str(EXAMPLE))  # what `smsgw serve` checks before it opens anything


def test_the_commented_out_upstream_loads_when_uncommented() -> None:
    """The example leaves its `[[upstreams]]` commented out (a gateway started from it would keep trying to bind to
    an SMSC that is not there); uncommented as it stands, it is a valid upstream that a route can name."""
    text = EXAMPLE.read_text()
    block = re.search(r"^# \[\[upstreams\]\]\n(?:# .*\n)+", text, re.MULTILINE)
    assert block is not None
    uncommented = text.replace(block.group(0), re.sub(r"^# ", "", block.group(0), flags=re.MULTILINE))
    uncommented = uncommented.replace('# via = ["upstream:opA", "modems:uk"]', 'via = ["upstream:opA", "modems:uk"]')
    config = config_from_mapping(tomllib.loads(uncommented), str(EXAMPLE))
    check_config(config, str(EXAMPLE))
    (upstream,) = config.upstreams
    assert (upstream.name, upstream.port, upstream.window) == ("opA", 2776, 10)
    assert find_route(config.routes, "447700900123").connectors == ("upstream:opA", "modems:uk")
    assert load_config(EXAMPLE).upstreams == ()


def _section_classes() -> dict[str, type]:
    classes = {}
    for name, hint in typing.get_type_hints(Config).items():
        args = typing.get_args(hint)
        classes[name] = args[0] if args else hint  # tuple[AccountConfig, ...] -> AccountConfig
    return classes


def _documented_keys() -> dict[str, set[str]]:
    """Keys per section, set or commented out (`# key = value`, also in a commented-out `# [[section]]`)."""
    documented: dict[str, set[str]] = {}
    section = ""
    for line in EXAMPLE.read_text().splitlines():
        header = re.match(r"^(?:# ?)?\[\[?(\w+)\]\]?", line)
        if header:
            section = header.group(1)
            continue
        key = re.match(r"^(?:# ?)?(\w+) = ", line)
        if key:
            documented.setdefault(section, set()).add(key.group(1))
    return documented


def test_example_config_mentions_every_key() -> None:
    """A key added to config.py must be documented in its section of the example (commented out when it has no
    sensible example value)."""
    documented = _documented_keys()
    missing = [
        f"{section}.{f.name}"
        for section, cls in _section_classes().items()
        for f in dataclasses.fields(cls)
        if f.name not in documented.get(section, set())
    ]
    assert not missing, f"keys not in {EXAMPLE.name}: {missing}"
