"""Loading the configuration: TOML to the frozen dataclasses of `smsgw.config.sections`, every value checked at
load (types, ranges, what one section may not hold) with a `ConfigError` naming the file, the key and what is
wrong. Cross-references between sections are `app.check_config`'s and `policy.check_policy_config`'s.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import tomllib
import types
import typing
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from smsgw.config.sections import (
    MAX_PASSWORD_CHARS,
    MAX_SYSTEM_ID_CHARS,
    MODEMS_CONNECTOR,
    OUTBOX_ANSWER_MARGIN_S,
    POSTGRES_URL_SCHEMES,
    SQLITE_SYNCHRONOUS,
    UPSTREAM_CONNECTOR,
    AccountConfig,
    BillingConfig,
    Config,
    HttpConfig,
    MessageConfig,
    ModemConfig,
    ModemsStatusConfig,
    NodeConfig,
    OperatorConfig,
    PolicyConfig,
    RouteConfig,
    SmppConfig,
    StoreConfig,
    UpstreamConfig,
    VirtualNetworkConfig,
)
from smsgw.passwords import hash_password, is_password_hash
from smsgw.pdu.segmentation import MAX_SEGMENTS_LIMIT

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A problem in a config file; the message names the file and key."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem


_SECTIONS: Final[Mapping[str, type]] = {
    "smpp": SmppConfig,
    "http": HttpConfig,
    "accounts": AccountConfig,
    "operators": OperatorConfig,
    "modems": ModemConfig,
    "routes": RouteConfig,
    "upstreams": UpstreamConfig,
    "messages": MessageConfig,
    "store": StoreConfig,
    "modems_status": ModemsStatusConfig,
    "virtual_network": VirtualNetworkConfig,
    "policy": PolicyConfig,
    "billing": BillingConfig,
    "node": NodeConfig,
}
_ARRAY_SECTIONS: Final = frozenset({"accounts", "operators", "modems", "routes", "upstreams"})


def load_config(path: str | Path) -> Config:
    source = str(path)
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(source, "(file)", exc.strerror or str(exc)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "(syntax)", str(exc)) from exc
    return config_from_mapping(document, source)


def config_from_mapping(document: Mapping[str, Any], source: str = "<config>") -> Config:
    values: dict[str, Any] = {}
    for name, raw in document.items():
        cls = _SECTIONS.get(name)
        if cls is None:
            raise ConfigError(source, name, f"unknown section (known: {', '.join(_SECTIONS)})")
        if name in _ARRAY_SECTIONS:
            if not isinstance(raw, list):
                raise ConfigError(source, name, f"must be an array of tables ([[{name}]])")
            values[name] = tuple(
                _build(cls, _prepare(name, item, f"{name}[{i}]", source), f"{name}[{i}]", source)
                for i, item in enumerate(raw)
            )
        else:
            if not isinstance(raw, dict):
                raise ConfigError(source, name, f"must be a table ([{name}])")
            values[name] = _build(cls, raw, name, source)
    return Config(**values)


# Inclusive ranges of numeric keys, by "Section.key" or by key name in whichever section it occurs; any other
# number must not be negative. Port 0 of a listener means "any free port" (tests, `smsgw demo --port 0`). A route's
# max_segments is the policy's to check (`check_policy_config`), with its other content rules.
_RANGES: Final[Mapping[str, tuple[float, float]]] = {
    "port": (0, 65535),
    "tls_port": (0, 65535),
    "outbind_port": (1, 65535),
    "SmppConfig.max_segments": (1, MAX_SEGMENTS_LIMIT),
    "window": (1, 65535),
    "workers": (1, 1_000_000),
    "max_pending_requests": (1, 1_000_000),
    "request_queue_size": (1, 1_000_000),
    "writer_max_batch": (1, 1_000_000),
    "writer_queue_size": (1, 1_000_000),
    "purge_batch_size": (1, 1_000_000),
    "dnc_import_batch_size": (1, 1_000_000),
    "max_in_flight_segments": (1, 1_000_000),
    "mo_callback_concurrency": (1, 1_000_000),
    "mo_callback_concurrency_per_account": (1, 1_000_000),
    "max_binds": (1, 1_000_000),
    # At zero the account's token bucket could never fill: every submission would fail.
    "AccountConfig.throughput_per_s": (0.001, float("inf")),
    "throughput_burst": (1, float("inf")),
    # At zero these would refuse everything or fire at once.
    "max_password_checks": (1, 1_000_000),
    "max_connections": (1, 1_000_000),
    "max_connections_per_address": (1, 1_000_000),
    "bind_lockout_address_failures": (1, 1_000_000),
    "pdu_read_timeout_s": (0.001, float("inf")),
    "max_pdu_bytes": (16, 1 << 24),
    "max_body_bytes": (1, 1 << 30),
    "portal_max_numbers": (1, 10_000_000),
    "portal_max_upload_bytes": (1, 1 << 30),
    "session_lifetime_s": (1, float("inf")),
    "max_header_bytes": (1024, 1 << 20),
    "backlog": (1, 65535),
    # At zero a request, a read or the readiness probe would fail at once.
    "request_timeout_s": (0.001, float("inf")),
    "read_timeout_s": (0.001, float("inf")),
    "readiness_store_timeout_s": (0.001, float("inf")),
    "max_page_size": (1, 100_000),
    "baudrate": (1, 10_000_000),
    "UpstreamConfig.port": (1, 65535),
    "sessions": (1, 1000),
    "UpstreamConfig.throughput_per_s": (0.001, float("inf")),
    "bind_timeout_s": (0.001, float("inf")),
    "UpstreamConfig.response_timeout_s": (0.001, float("inf")),
    "UpstreamConfig.enquire_link_interval_s": (0.001, float("inf")),
    "reconnect_delay_min_s": (0.001, float("inf")),
    "reconnect_jitter_ratio": (0, 1),
    "throttled_pause_s": (0.001, float("inf")),
    "handoff_lease_s": (0.001, float("inf")),
    "bind_lease_s": (0.001, float("inf")),
}


def _check_values(item: Any, key: str, source: str) -> None:
    """What one built section or table may not hold whatever else the file says: numbers out of range, networks
    that are not CIDR, credentials longer than SMPP 3.4 carries. Cross-references are `app.check_config`'s."""
    for f in dataclasses.fields(item):
        value = getattr(item, f.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        low, high = _RANGES.get(f"{type(item).__name__}.{f.name}") or _RANGES.get(f.name, (0, float("inf")))
        if not low <= value <= high:
            limit = f"at least {low:g}" if high == float("inf") else f"{low:g} to {high:g}"
            raise ConfigError(source, f"{key}.{f.name}", f"must be {limit}, got {value!r}")
    if isinstance(item, UpstreamConfig):
        if len(item.password) > MAX_PASSWORD_CHARS:
            raise ConfigError(source, f"{key}.password", f"longer than {MAX_PASSWORD_CHARS} characters (SMPP 3.4)")
        if not 1 <= len(item.system_id) <= MAX_SYSTEM_ID_CHARS:
            raise ConfigError(source, f"{key}.system_id", f"must be 1 to {MAX_SYSTEM_ID_CHARS} characters (SMPP 3.4)")
        if item.reconnect_delay_max_s < item.reconnect_delay_min_s:
            raise ConfigError(source, f"{key}.reconnect_delay_max_s", "must be at least reconnect_delay_min_s")
    if isinstance(item, RouteConfig):
        for i, connector in enumerate(item.via):
            kind, _, name = connector.partition(":")
            if f"{kind}:" not in (UPSTREAM_CONNECTOR, MODEMS_CONNECTOR) or not name:
                raise ConfigError(
                    source, f"{key}.via[{i}]", f"must be 'upstream:NAME' or 'modems:GROUP', got {connector!r}"
                )
    if isinstance(item, SmppConfig) and item.outbox_claim_s <= item.response_timeout_s + OUTBOX_ANSWER_MARGIN_S:
        raise ConfigError(
            source, f"{key}.outbox_claim_s",
            f"must be more than response_timeout_s + {OUTBOX_ANSWER_MARGIN_S:g}, got {item.outbox_claim_s!r}",
        )
    if isinstance(item, SmppConfig) and item.tls_port is not None:
        for path_key in ("tls_cert_path", "tls_key_path"):
            if not getattr(item, path_key):
                raise ConfigError(source, f"{key}.{path_key}", "tls_port needs tls_cert_path and tls_key_path")
    if isinstance(item, StoreConfig) and item.synchronous.upper() not in SQLITE_SYNCHRONOUS:
        raise ConfigError(
            source, f"{key}.synchronous", f"must be one of {sorted(SQLITE_SYNCHRONOUS)}, got {item.synchronous!r}"
        )
    if isinstance(item, StoreConfig) and item.url and not item.url.startswith(POSTGRES_URL_SCHEMES):
        raise ConfigError(
            source, f"{key}.url", f"must start with {' or '.join(POSTGRES_URL_SCHEMES)}, got {item.url!r}"
        )
    if isinstance(item, NodeConfig) and not item.name:
        raise ConfigError(source, f"{key}.name", "must not be empty")
    if isinstance(item, AccountConfig):
        if not 1 <= len(item.system_id) <= MAX_SYSTEM_ID_CHARS:
            raise ConfigError(source, f"{key}.system_id", f"must be 1 to {MAX_SYSTEM_ID_CHARS} characters (SMPP 3.4)")
        if len(item.outbind_password) > MAX_PASSWORD_CHARS:
            raise ConfigError(
                source, f"{key}.outbind_password", f"longer than {MAX_PASSWORD_CHARS} characters (SMPP 3.4)"
            )
        if (item.outbind_host is None) != (item.outbind_port is None):
            missing = "outbind_port" if item.outbind_port is None else "outbind_host"
            raise ConfigError(source, f"{key}.{missing}", "outbind_host and outbind_port go together")
        if item.time_zone:
            try:
                zoneinfo.ZoneInfo(item.time_zone)
            except (ValueError, zoneinfo.ZoneInfoNotFoundError):
                raise ConfigError(source, f"{key}.time_zone", f"unknown time zone {item.time_zone!r}") from None
        for i, network in enumerate(item.allowed_networks):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ConfigError(
                    source, f"{key}.allowed_networks[{i}]", f"not an address or CIDR network: {exc}"
                ) from None


def check_store_path(config: Config, source: str) -> None:
    """Before `serve` opens anything: SQLite would only say "unable to open database file", without the path."""
    path = os.path.abspath(config.store.path)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise ConfigError(source, "store.path", f"directory {directory} does not exist")
    if os.path.exists(path):
        if not os.access(path, os.R_OK | os.W_OK):
            raise ConfigError(source, "store.path", f"{path} is not readable and writable by this user")
    elif not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(source, "store.path", f"cannot create {path}: directory {directory} is not writable")


def _prepare(section: str, item: Any, key: str, source: str) -> Any:
    """Section-specific rewriting before the generic build: a plain-text account password is hashed here."""
    if section not in ("accounts", "operators") or not isinstance(item, dict):
        return item
    if "password" not in item:
        if "password_hash" in item and not is_password_hash(str(item["password_hash"])):
            raise ConfigError(source, f"{key}.password_hash", "not a scrypt hash made by smsgw.passwords")
        return item
    if "password_hash" in item:
        raise ConfigError(source, f"{key}.password", "give either password or password_hash, not both")
    if section == "accounts" and len(str(item["password"])) > MAX_PASSWORD_CHARS:
        raise ConfigError(
            source,
            f"{key}.password",
            f"account {item.get('system_id', '?')!r}: longer than {MAX_PASSWORD_CHARS} characters, which SMPP 3.4 "
            "cannot carry (no ESME could bind); choose a shorter one and store it with `smsgw account hash-password`",
        )
    log.warning(
        "plain-text password in config source=%s key=%s; it was hashed at load, store password_hash instead",
        source,
        key,
    )
    prepared = {k: v for k, v in item.items() if k != "password"}
    prepared["password_hash"] = hash_password(str(item["password"]))
    return prepared


def _build(cls: type, raw: Any, key: str, source: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(source, key, "must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in fields:
            raise ConfigError(source, f"{key}.{name}", f"unknown key (known: {', '.join(fields)})")
        kwargs[name] = _coerce(value, hints[name], f"{key}.{name}", source)
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(source, f"{key}.{missing[0]}", "required key is missing")
    built = cls(**kwargs)
    _check_values(built, key, source)
    return built


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], key, source)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(source, key, f"must be a list, got {type(value).__name__}")
        return tuple(_coerce(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value))
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(source, key, f"must be one of {', '.join(map(repr, args))}, got {value!r}")
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    raise ConfigError(source, key, f"must be {getattr(hint, '__name__', hint)}, got {type(value).__name__} {value!r}")
