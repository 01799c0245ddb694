"""run_gateway: the one place that wires the parts, under one root nursery.

Start-up goes store -> modem pool -> scheduler -> SMPP listener -> HTTP listener, each started (`nursery.start`)
before the next. The listeners do not wait for the modems: a modem may take minutes to register, or its port may
be misspelled (each driver logs why it cannot open, by name, and keeps trying), and ESMEs should not see a refused
connection meanwhile. What they submit waits in the store; the scheduler starts handing out segments once the
modems have started (`_wait_modems_started`). Shutdown goes the other way: the SMPP server stops accepting and
unbinds its sessions (two stages, `smpp.shutdown_grace_s`) while the HTTP server stops accepting and finishes its
requests (`http.shutdown_grace_s`), then the scheduler stops handing out work, then the modems close their ports,
then the store finishes its pending writes and closes.

The parts read the running config through one `ConfigHolder`; `reload_config` (SIGHUP) replaces it, keeping
what only a restart can change (`keep_running`).

`run_demo` is the same gateway on embedded defaults with virtual modems on real ptys, driven by the real driver
through the pty as if they were USB modems.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import logging
import signal
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final, TypeVar

import trio

from smsgw.config import (
    DEMO_CALLBACK_SECRET,
    DEMO_OPERATOR,
    DEMO_PASSWORD,
    DEMO_SYSTEM_ID,
    MODEMS_CONNECTOR,
    UPSTREAM_CONNECTOR,
    AccountConfig,
    Config,
    ConfigError,
    ConfigHolder,
    HttpConfig,
    MessageConfig,
    ModemConfig,
    OperatorConfig,
    SmppConfig,
    load_config,
)
from smsgw.http import demo_receipts
from smsgw.http.deps import HttpDeps
from smsgw.http.keys import ApiKeys
from smsgw.http.metrics import GatewayMetrics
from smsgw.http.server import HttpListening, serve_http
from smsgw.modem.driver import ModemDriver, ModemState
from smsgw.modem.pool import ModemPool
from smsgw.modem.status_file import status_path
from smsgw.modem.virtual.modem import VirtualModem
from smsgw.modem.virtual.network import VirtualNetwork, serve_network
from smsgw.modem.virtual.pty import serve_pty
from smsgw.numbers import InvalidNumber, normalise_number
from smsgw.passwords import hash_password
from smsgw.scheduler.policy import check_policy_config
from smsgw.scheduler.service import Scheduler
from smsgw.scheduler.store import open_store
from smsgw.scheduler.timing import WallClock
from smsgw.smpp_server.login import Login
from smsgw.smpp_server.binds import SharedBinds
from smsgw.smpp_server.server import SmppListeners, serve_smpp
from smsgw.smpp_server.upstream import Upstreams
from smsgw.smpp_server.upstream_status import keep_status_file as keep_upstream_status
from smsgw.smpp_server.upstream_status import status_path as upstream_status_path

log = logging.getLogger(__name__)

_Section = TypeVar("_Section", SmppConfig, MessageConfig, AccountConfig, HttpConfig)

DEMO_DB_PATH: Final = "smsgw-demo.db"
DEMO_FIRST_MSISDN: Final = 447700900001
DEMO_MODEM_GROUP: Final = "default"  # the modem_group of the default route


@dataclass(frozen=True, slots=True)
class VirtualModemInfo:
    name: str
    msisdn: str
    link: Path  # the pty slave's symlink, as a serial device path


@dataclass(frozen=True, slots=True)
class GatewayStarted:
    """What `run_gateway` and `run_demo` report through `task_status` once ESMEs can bind."""

    host: str
    smpp: SmppListeners
    config: ConfigHolder  # the running config: `reload_config` replaces it
    virtual_modems: tuple[VirtualModemInfo, ...] = ()
    http: HttpListening | None = None  # None: `[http] enabled = false`


def check_config(config: Config, source: str) -> None:
    """What `load_config` cannot see inside one section: references and uniqueness across the file.

    A mistake here would otherwise show up only as messages that can never be sent or an account that can never
    bind, long after start-up; ConfigError names the key and what is wrong."""
    if not config.accounts:
        raise ConfigError(source, "accounts", "no [[accounts]]: no ESME could bind")
    # On a store several nodes share, a node may lack what a route names (another node serves it), or have no
    # connector at all (a node for binds only).
    shared = bool(config.store.url)
    if not config.modems and not config.upstreams and not shared:
        raise ConfigError(source, "modems", "no [[modems]] and no [[upstreams]]: accepted messages could never be sent")
    for section, names in (
        ("accounts", [(a.system_id, "system_id") for a in config.accounts]),
        ("modems", [(m.name, "name") for m in config.modems]),
        ("routes", [(r.name, "name") for r in config.routes]),
        ("upstreams", [(u.name, "name") for u in config.upstreams]),
    ):
        seen: Counter[str] = Counter()
        for index, (name, key) in enumerate(names):
            seen[name] += 1
            if seen[name] > 1:
                raise ConfigError(source, f"{section}[{index}].{key}", f"{name!r} is used twice")
    ports = Counter(m.port for m in config.modems)
    for index, modem in enumerate(config.modems):
        if ports[modem.port] > 1:
            raise ConfigError(source, f"modems[{index}].port", f"{modem.port!r} is used by two modems")
    groups = sorted({m.group for m in config.modems})
    upstreams = sorted(u.name for u in config.upstreams)
    for index, route in enumerate(() if shared else config.routes):
        for i, connector in enumerate(route.connectors):
            key = f"routes[{index}].via[{i}]" if route.via else f"routes[{index}].modem_group"
            if connector.startswith(UPSTREAM_CONNECTOR):
                name = connector.removeprefix(UPSTREAM_CONNECTOR)
                if name not in upstreams:
                    raise ConfigError(source, key, f"no [[upstreams]] is named {name!r} (names: {', '.join(upstreams)})")
            elif (group := connector.removeprefix(MODEMS_CONNECTOR)) not in groups:
                raise ConfigError(source, key, f"no modem is in group {group!r} (groups: {', '.join(groups)})")
    check_policy_config(config, source)
    if any(account.mo_receipts for account in config.accounts):
        _warn_unknown_msisdns(config, source)


def _warn_unknown_msisdns(config: Config, source: str) -> None:
    """A notice to a number of one of our own SIMs comes back as an MO; it is recognised (and not noticed in turn)
    only by the receiving modem's `msisdn` in international digits. Without it the per-handset limit still ends
    such a loop, after `notices_per_handset_max` notices."""
    for index, modem in enumerate(config.modems):
        if not modem.msisdn:
            problem = "not set"
        else:
            # The echo check compares the configured number, '+' stripped, with the notice's normalised digits.
            try:
                international = normalise_number(modem.msisdn) == modem.msisdn.removeprefix("+")
            except InvalidNumber:
                international = False
            if international:
                continue
            problem = f"{modem.msisdn!r} is not in international format"
        log.warning(
            "%s: modems[%d].msisdn %s: a notice that comes back to modem %s is not recognised as the gateway's own "
            "(only notices_per_handset_max stops a loop)", source, index, problem, modem.name,
        )


async def run_gateway(
    config: Config,
    *,
    config_path: str | None = None,
    stop: trio.Event | None = None,
    extra_http_routes: Sequence[ModuleType] = (),
    task_status: trio.TaskStatus[GatewayStarted] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the gateway until `stop` is set, or, without one, until SIGINT or SIGTERM (SIGHUP then reloads
    `config_path`); then shut down in order. A stop during start-up abandons the start-up at once.
    `extra_http_routes`: route modules the HTTP server serves besides the gateway's own (`run_demo`'s)."""
    holder = ConfigHolder(config)
    async with trio.open_nursery() as root:
        if stop is None:
            stop = trio.Event()
            reload = None if config_path is None else functools.partial(reload_config, holder, config_path)
            await root.start(_handle_signals, stop, reload)
        ready = trio.Event()
        root.start_soon(_abandon_start_up, stop, ready, root.cancel_scope)
        await _run_parts(holder, stop, ready, task_status, extra_http_routes)
        root.cancel_scope.cancel()


async def _abandon_start_up(stop: trio.Event, ready: trio.Event, root: trio.CancelScope) -> None:
    await stop.wait()
    if not ready.is_set():
        log.info("stopped during start-up")
        root.cancel()


async def _run_parts(
    holder: ConfigHolder,
    stop: trio.Event,
    ready: trio.Event,
    task_status: trio.TaskStatus[GatewayStarted],
    extra_http_routes: Sequence[ModuleType],
) -> None:
    config = holder.current  # the parts below that do not follow reloads (`keep_running`) are built from this
    async with open_store(config.store) as store:
        log.info("store open path=%s", config.store.path)
        clock = WallClock()
        upstreams = Upstreams(config.upstreams)
        scheduler = Scheduler(store, holder, clock, upstreams=upstreams)
        pool = ModemPool.from_config(
            config.modems,
            scheduler.modem_events,
            reassembly_timeout_s=config.messages.multipart_reassembly_timeout_s,
        )
        async with trio.open_nursery() as modems:
            # Before the drivers run, so the SIMs' limits count what the previous run sent.
            await modems.start(pool.keep_status_file, status_path(config.store.path), config.modems_status.interval_s)
            await modems.start(pool.run)
            await modems.start(upstreams.run, scheduler.upstream_receiver)
            if config.upstreams:  # for `smsgw upstreams`, as the modems' status file is for `smsgw modems`
                await modems.start(keep_upstream_status, upstreams, upstream_status_path(config.store.path),
                                   config.modems_status.interval_s)
            modems_started = trio.Event()
            async with trio.open_nursery() as dispatch:
                await dispatch.start(functools.partial(scheduler.run, pool, dispatch_after=modems_started))
                dispatch.start_soon(_wait_modems_started, pool, config, modems_started)
                fronts_stop = trio.Event()
                login = Login(holder)  # one bind guard for SMPP binds and HTTP Basic auth
                # In the store on one node too: one way to count binds, and the same rows when a second node comes.
                binds = SharedBinds(store, config.node.name, config.node.bind_lease_s, clock.now_ms)
                async with trio.open_nursery() as front:
                    listeners: SmppListeners = await front.start(
                        functools.partial(
                            serve_smpp, holder, scheduler.smpp, shutdown_trigger=fronts_stop, login=login, binds=binds
                        )
                    )
                    http: HttpListening | None = None
                    if config.http.enabled:
                        metrics = GatewayMetrics(holder, listeners.server, pool, store, login, upstreams)
                        api_keys = ApiKeys(store, login, scheduler.accept.now_ms)
                        deps = HttpDeps(holder, store, scheduler, pool, upstreams, listeners.server, login, metrics,
                                        api_keys)
                        http = await front.start(
                            functools.partial(serve_http, config.http, deps, shutdown_trigger=fronts_stop,
                                              extra_routes=extra_http_routes)
                        )
                    log.info("gateway ready host=%s port=%s http=%s modems=%d", config.smpp.host, listeners.port,
                             "off" if http is None else http.url, len(config.modems))
                    ready.set()
                    # What start-up built lives as long as the gateway (config, libphonenumber's metadata, compiled
                    # patterns, the modules): out of the collector's sight, a full collection no longer walks it,
                    # which took 36-53 ms in the middle of a burst of submissions (BENCHMARKS.md, e2e). Collected
                    # first, so no garbage is kept with it.
                    gc.collect()
                    gc.freeze()
                    task_status.started(GatewayStarted(config.smpp.host, listeners, holder, http=http))
                    await stop.wait()
                    log.info("gateway stopping")
                    # Both fronts stop accepting, then finish what is in progress within their grace periods.
                    fronts_stop.set()
                dispatch.cancel_scope.cancel()
            await upstreams.unbind_all()
            modems.cancel_scope.cancel()
    log.info("gateway stopped")


async def _wait_modems_started(pool: ModemPool, config: Config, started: trio.Event) -> None:
    """Set `started` (dispatching begins) once every routed modem group has a READY modem, or every modem finished
    its start-up (READY, or DOWN when it needs an operator), or at most after the modems' own start-up budget: one
    hung or unplugged modem in a rack must not keep the gateway from sending through the others. Until then,
    segments would only fail on modems still starting and wait out a retry backoff."""
    routed = {
        connector.removeprefix(MODEMS_CONNECTOR)
        for route in config.routes
        for connector in route.connectors
        if connector.startswith(MODEMS_CONNECTOR)
    } & {m.group for m in config.modems}  # a group only other nodes have (a shared store) is not waited for
    if not routed or not config.modems:  # a gateway of upstreams only
        started.set()
        return
    budget = max(m.sim_ready_timeout_s + m.registration_timeout_s for m in config.modems)

    def serving() -> bool:
        ready = {s.group for s in pool.status() if s.state is ModemState.READY}
        return routed <= ready

    async def settle(driver: ModemDriver, waiting: trio.CancelScope) -> None:
        await driver.wait_state(ModemState.READY, ModemState.DOWN)
        if serving():
            waiting.cancel()

    log.info("waiting for modems groups=%s at_most_s=%.0f", ",".join(sorted(routed)), budget)
    with trio.move_on_after(budget):
        async with trio.open_nursery() as waiting:
            for driver in pool.drivers:
                waiting.start_soon(settle, driver, waiting.cancel_scope)
    for status in pool.status():
        if status.state in (ModemState.INITIALISING, ModemState.REGISTERING):
            # Its own "modem ready" (or a warning) follows; in a rack starting together this is mere jitter.
            log.debug("modem still starting modem=%s state=%s", status.name, status.state.value)
        elif status.state is not ModemState.READY:
            log.warning("modem not ready at start-up modem=%s port=%s state=%s error=%s",
                        status.name, status.port, status.state.value, status.last_error)
    log.info("dispatching modems_ready=%d of=%d",
             sum(s.state is ModemState.READY for s in pool.status()), len(config.modems))
    started.set()


async def _handle_signals(
    stop: trio.Event,
    reload: Callable[[], Awaitable[object]] | None,
    *,
    task_status: trio.TaskStatus[None],
) -> None:
    """SIGINT and SIGTERM stop gracefully; SIGHUP reloads the config (its default action would kill the process)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        task_status.started()
        async for signum in signals:
            name = signal.Signals(signum).name
            if signum != signal.SIGHUP:
                log.info("signal received signal=%s; shutting down gracefully", name)
                stop.set()
                return
            if reload is None:
                log.warning("signal received signal=%s; ignored: no config file to reload", name)
            else:
                log.info("signal received signal=%s; reloading the config", name)
                await reload()


# -- reload -------------------------------------------------------------------------------------------------

# What the running parts read once at start, by section: a reload keeps the running value of these and logs the
# change as needing a restart. Everything else (accounts, passwords, routes, prices, keywords, throughput, policy,
# message settings, SMPP session settings for new connections) applies to what comes next. A key added to a
# section later is live unless listed here.
_RESTART_ONLY: Final[dict[str, frozenset[str]]] = {
    # Listeners, workers, the audit file and the bind guard are made when the server starts.
    "smpp": frozenset({
        "host", "port", "tls_port", "tls_cert_path", "tls_key_path", "audit_log_path", "workers",
        "request_queue_size", "bind_failure_delay_base_s", "bind_failure_delay_max_s", "bind_lockout_failures",
        "bind_lockout_s", "bind_lockout_address_failures", "max_password_checks",
    }),
    # The dispatcher's and the MO callbacks' concurrency are sized at start.
    "messages": frozenset({"max_in_flight_segments", "mo_callback_concurrency", "mo_callback_concurrency_per_account"}),
    # Outbind loops start with the server.
    "accounts": frozenset({"outbind_host", "outbind_port", "outbind_interval_s"}),
    # The HTTP listener and hypercorn's settings are made at start; body size and request time apply per request.
    "http": frozenset({
        "enabled", "host", "port", "max_header_bytes", "read_timeout_s", "keep_alive_timeout_s", "backlog",
        "shutdown_grace_s",
    }),
}
# Whole sections the running parts were built from: the open store, the modem drivers on their ports, the node's
# name on its claims in the store.
_RESTART_ONLY_SECTIONS: Final = ("store", "modems", "modems_status", "virtual_network", "node")


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    applied: bool
    error: str = ""  # why the file was refused (the running config stays)
    needs_restart: tuple[str, ...] = ()  # changed keys that kept their running value


def keep_running(running: Config, loaded: Config) -> tuple[Config, tuple[str, ...]]:
    """`loaded` with what only a restart can change (`_RESTART_ONLY`) taken from `running`, and the keys whose
    change was not applied."""
    kept: list[str] = []
    smpp = _keep_fields(running.smpp, loaded.smpp, _RESTART_ONLY["smpp"], "smpp", kept)
    messages = _keep_fields(running.messages, loaded.messages, _RESTART_ONLY["messages"], "messages", kept)
    http = _keep_fields(running.http, loaded.http, _RESTART_ONLY["http"], "http", kept)
    previous = {account.system_id: account for account in running.accounts}
    accounts = tuple(
        # An account new to this run has no outbind loop: it keeps the defaults (none) until a restart.
        _keep_fields(previous.get(a.system_id, AccountConfig(a.system_id, "")), a, _RESTART_ONLY["accounts"],
                     f"accounts[{a.system_id}]", kept)
        for a in loaded.accounts
    )
    sections: dict[str, Any] = {}
    for section in _RESTART_ONLY_SECTIONS:
        if getattr(running, section) != getattr(loaded, section):
            kept.append(section)
        sections[section] = getattr(running, section)
    config = dataclasses.replace(loaded, smpp=smpp, messages=messages, http=http, accounts=accounts, **sections)
    return config, tuple(kept)


def _keep_fields(running: _Section, loaded: _Section, names: frozenset[str], prefix: str, kept: list[str]) -> _Section:
    changes = {n: getattr(running, n) for n in sorted(names) if getattr(running, n) != getattr(loaded, n)}
    kept.extend(f"{prefix}.{name}" for name in changes)
    return dataclasses.replace(loaded, **changes)


def _load_checked(path: str) -> Config:
    config = load_config(path)
    check_config(config, path)
    return config


async def reload_config(holder: ConfigHolder, path: str) -> ReloadOutcome:
    """Read `path` again and make it the running config (SIGHUP; one function for any other trigger).

    New submissions, binds and receipts follow the new config at once and no bind is dropped. A file with an
    error changes nothing (the error is logged); a change only a restart can apply is logged and not applied."""
    try:
        # Off the event loop: a plain-text password in the file costs an scrypt hash.
        loaded = await trio.to_thread.run_sync(_load_checked, path)
        config, kept = keep_running(holder.current, loaded)
        check_config(config, path)  # e.g. a new route's modem group that only a restart's modems would have
        holder.replace(config)
    except (ConfigError, ValueError, OSError) as exc:
        log.error("config reload refused, running config kept path=%s error=%s", path, exc)
        return ReloadOutcome(applied=False, error=str(exc))
    for key in kept:
        log.warning("config change needs a restart, not applied path=%s key=%s", path, key)
    log.info("config reloaded path=%s accounts=%d routes=%d not_applied=%d", path, len(config.accounts),
             len(config.routes), len(kept))
    return ReloadOutcome(applied=True, needs_restart=kept)


def demo_msisdns(count: int) -> tuple[str, ...]:
    return tuple(str(DEMO_FIRST_MSISDN + i) for i in range(count))


def demo_config(
    base: Config, *, port: int, db_path: str, modem_links: Sequence[tuple[str, Path]], http_port: int | None = None
) -> Config:
    """`base` (the embedded defaults unless a test or benchmark tunes it) with the demo's own parts: SMPP on
    127.0.0.1:`port`, HTTP on 127.0.0.1:`http_port` (None: no HTTP), the account demo/demo first, the virtual
    modems in the group of the default route."""
    return dataclasses.replace(
        base,
        smpp=dataclasses.replace(base.smpp, host="127.0.0.1", port=port),
        http=dataclasses.replace(
            base.http, enabled=http_port is not None, host="127.0.0.1", port=http_port or 0
        ),
        accounts=(AccountConfig(system_id=DEMO_SYSTEM_ID, password_hash=hash_password(DEMO_PASSWORD),
                                callback_secret=DEMO_CALLBACK_SECRET),)
        + base.accounts,
        operators=(OperatorConfig(DEMO_OPERATOR, hash_password(DEMO_PASSWORD)),) + base.operators,
        modems=tuple(
            ModemConfig(name=f"virtual{i}", port=str(link), msisdn=msisdn, group=DEMO_MODEM_GROUP)
            for i, (msisdn, link) in enumerate(modem_links, start=1)
        ),
        store=dataclasses.replace(base.store, path=db_path),
        # MO that no reply or keyword claims shows up at the demo account instead of staying in the store.
        messages=dataclasses.replace(
            base.messages, mo_default_account=base.messages.mo_default_account or DEMO_SYSTEM_ID
        ),
    )


async def run_demo(
    *,
    port: int = 2775,
    modems: int = 4,
    db_path: str = DEMO_DB_PATH,
    http_port: int | None = None,
    base: Config | None = None,
    stop: trio.Event | None = None,
    task_status: trio.TaskStatus[GatewayStarted] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The gateway with `modems` virtual modems on real ptys, all on one virtual network (see `demo_config`);
    HTTP on `http_port` (0: any free port) unless None."""
    base = base or Config()
    with tempfile.TemporaryDirectory(prefix="smsgw-demo-") as links_dir:
        network = VirtualNetwork(base.virtual_network, now=trio.current_time())
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_network, network)
            links: list[tuple[str, Path]] = []
            for index, msisdn in enumerate(demo_msisdns(modems), start=1):
                modem = VirtualModem(network, msisdn, base.virtual_network)
                link: Path = await nursery.start(serve_pty, modem, Path(links_dir) / f"modem{index}")
                links.append((msisdn, link))
            config = demo_config(base, port=port, db_path=db_path, modem_links=links, http_port=http_port)
            check_config(config, "<demo>")
            infos = tuple(VirtualModemInfo(m.name, m.msisdn, Path(m.port)) for m in config.modems)
            async with trio.open_nursery() as gateway:
                started: GatewayStarted = await gateway.start(
                    functools.partial(run_gateway, config, stop=stop, extra_http_routes=(demo_receipts,))
                )
                task_status.started(dataclasses.replace(started, virtual_modems=infos))
            # The virtual modems outlive the gateway's shutdown, as hardware would, so in-flight AT commands end.
            nursery.cancel_scope.cancel()
