"""`smsgw serve` and `smsgw demo`: run the gateway until it is stopped."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Awaitable, Callable

from smsgw.cli.common import EXIT_FAILURE, EXIT_OK, CliError


def add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the gateway from a config file (SMPP server, store, GSM modems)",
        description="Runs until SIGINT or SIGTERM, then shuts down gracefully; SIGHUP reloads the config file "
        "(accounts, routes, policy...; a change that needs a restart is logged and not applied; a file with an error "
        "is refused and the running config kept). A config error at start names the file, the key and the problem, "
        "and exits 2 before anything is opened. Example: smsgw.example.toml.",
    )
    serve.add_argument("--config", required=True, metavar="TOML")
    serve.set_defaults(handler=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from smsgw.app import check_config, run_gateway
    from smsgw.config import ConfigError, check_store_path, load_config

    try:
        config = load_config(args.config)
        check_config(config, args.config)
        check_store_path(config, args.config)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    return _run_until_stopped(functools.partial(run_gateway, config, config_path=args.config))


def add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the whole gateway on embedded defaults with virtual modems (account demo / password demo)",
        description="SMPP on 127.0.0.1, account demo / demo, virtual modems 447700900001... on ptys on the "
        "virtual GSM network, SQLite store. Ctrl-C stops gracefully.",
    )
    demo.add_argument("--port", type=int, default=2775, help="SMPP port (0: any free port; default %(default)s)")
    demo.add_argument("--http-port", type=int, default=8080,
                      help="HTTP port: API, metrics, health (0: any free port; default %(default)s)")
    demo.add_argument("--modems", type=int, default=4, help="number of virtual modems (default %(default)s)")
    demo.add_argument("--db", default="smsgw-demo.db", metavar="PATH", help="SQLite store (default %(default)s)")
    demo.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    import trio

    from smsgw.app import GatewayStarted, run_demo
    from smsgw.config import DEMO_OPERATOR, DEMO_PASSWORD, DEMO_SYSTEM_ID

    if not 1 <= args.modems <= 99:
        raise CliError("--modems must be 1 to 99")
    if not 0 <= args.port <= 65535:
        raise CliError("--port must be 0 to 65535")
    if not 0 <= args.http_port <= 65535:
        raise CliError("--http-port must be 0 to 65535")

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            started: GatewayStarted = await nursery.start(
                functools.partial(run_demo, port=args.port, modems=args.modems, db_path=args.db,
                                  http_port=args.http_port)
            )
            print(
                f"smsgw demo: SMPP on {started.host}:{started.smpp.port}, system_id {DEMO_SYSTEM_ID} / password "
                f"{DEMO_PASSWORD}, store {args.db}",
                flush=True,
            )
            if started.http is not None:
                print(f"  HTTP on {started.http.url} (metrics {started.http.url}/metrics, health "
                      f"{started.http.url}/readyz)", flush=True)
                print(f"  portal on {started.http.url}/ (customer {DEMO_SYSTEM_ID} / {DEMO_PASSWORD}, operator "
                      f"{DEMO_OPERATOR} / {DEMO_PASSWORD})", flush=True)
            for modem in started.virtual_modems:
                print(f"  virtual modem {modem.name} {modem.msisdn} on {modem.link}", flush=True)
            login = f"--port {started.smpp.port} --system-id {DEMO_SYSTEM_ID} --password {DEMO_PASSWORD}"
            command = f"{_own_command()} send {login} --to 447700900999 --text 'Hello from smsgw' --wait-receipts"
            print(f"Send a first message (447700900999 answers 'RE: ...'):\n  {command}", flush=True)
            if started.http is not None:
                _print_demo_curl(started.http.url)
            print(f"See the reply (in another terminal):\n  {_own_command()} receive {login}\nCtrl-C stops.", flush=True)
            if quiet_start:
                logging.getLogger().setLevel(logging.INFO)

    # The banner is what a first-time user needs; the start-up's INFO lines (each modem's registration...) would
    # bury it, so unless a level was asked for they are left out and INFO logging starts after the banner.
    quiet_start = args.log_level is None
    if quiet_start:
        logging.getLogger().setLevel(logging.WARNING)
    return _run_until_stopped(run)


def _print_demo_curl(url: str) -> None:
    """The demo's REST API example: a send as a user would paste it (Basic auth with the demo account), whose
    delivery report goes to the demo's own receipt sink, so it arrives with nothing else running."""
    from smsgw.config import DEMO_CALLBACK_SECRET, DEMO_PASSWORD, DEMO_SYSTEM_ID
    from smsgw.http.demo_receipts import PATH

    sink = f"{url}{PATH}"
    body = f'{{"to": ["447700900123"], "text": "Hello over HTTP", "client_ref": "demo-1", "dlr_url": "{sink}"}}'
    curl = (f"curl -u {DEMO_SYSTEM_ID}:{DEMO_PASSWORD} -H 'Content-Type: application/json' -d '{body}' "
            f"{url}/api/v1/messages")
    print(f"Or over the REST API (docs {url}/api/docs):\n  {curl}", flush=True)
    print(f"Its delivery report is POSTed to dlr_url as JSON, signed with callback_secret {DEMO_CALLBACK_SECRET} "
          f"(X-Smsgw-Signature); see what arrived:\n  curl {sink}", flush=True)


def _own_command() -> str:
    """How this smsgw was started, so a printed command can be pasted as is (`.venv/bin/smsgw`, `python -m`)."""
    import shlex

    if os.path.basename(sys.argv[0]) == "smsgw":
        return shlex.quote(sys.argv[0])
    return f"{shlex.quote(sys.executable)} -m smsgw"


def _run_until_stopped(main: Callable[[], Awaitable[None]]) -> int:
    """Run a gateway until it stops by itself (SIGINT/SIGTERM are handled inside); start-up failures such as a
    port in use or an unreadable store are one line on stderr and exit 1. A second Ctrl-C during the graceful
    stop ends it at once (what was acknowledged is in the store already), also with one line and exit 1."""
    import sqlite3

    import trio

    failures: list[BaseException | str] = []
    try:
        trio.run(main)
    except* KeyboardInterrupt:
        failures.append("interrupted during the graceful stop; stopped at once")
    except* (OSError, sqlite3.Error) as group:
        failures.extend(_leaves(group))
    for error in failures:
        print(f"smsgw: error: {error}", file=sys.stderr)
    return EXIT_FAILURE if failures else EXIT_OK


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for error in group.exceptions:
        leaves.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return leaves
