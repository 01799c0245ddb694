"""Command line: the only place that parses argv.

Each command is a `_cmd_<name>` handler registered in `_build_parser`; handlers return the exit code.
Exit codes: 0 success, 1 runtime failure, 2 bad input (usage, bad config, bad hex).
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Sequence

from smsgw import __version__

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A user-facing problem: printed as one line on stderr, exit 2."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smsgw", description="SMPP 3.4 SMS gateway for GSM modems")
    parser.add_argument("--version", action="version", version=f"smsgw {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # One `_add_<group>(commands)` call per command group; each sets `handler` via set_defaults.
    _add_virtual_modem(commands)
    return parser


def _add_virtual_modem(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    modem = commands.add_parser(
        "virtual-modem",
        help="run one virtual GSM modem on a pty, for gammu, python-gsmmodem, Kannel or `smsgw serve`",
        description="Creates a pty that answers AT commands as a GSM modem on the virtual network of DESIGN.md "
        "and symlinks its device at PATH. Runs until Ctrl-C.",
    )
    modem.add_argument("--link", required=True, metavar="PATH", help="where to symlink the pty device")
    modem.add_argument("--msisdn", default="447700900001", help="the modem's own number (default %(default)s)")
    modem.add_argument("--pin", default=None, help="SIM PIN the host must enter (default: no PIN)")
    modem.add_argument("--config", default=None, metavar="TOML", help="read the [virtual_network] section")
    modem.set_defaults(handler=_cmd_virtual_modem)


def _cmd_virtual_modem(args: argparse.Namespace) -> int:
    import trio

    from smsgw.config import ConfigError, VirtualNetworkConfig, load_config
    from smsgw.modem.virtual.pty import LinkError, run_standalone

    if not args.msisdn.isdigit() or not 5 <= len(args.msisdn) <= 15:
        raise CliError(f"--msisdn {args.msisdn!r}: give 5 to 15 digits, international form without '+'")
    try:
        config = load_config(args.config).virtual_network if args.config else VirtualNetworkConfig()
    except ConfigError as error:
        raise CliError(str(error)) from None

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            path = await nursery.start(functools.partial(run_standalone, pin=args.pin), args.link, args.msisdn, config)
            print(f"virtual modem {args.msisdn} on {path} (Ctrl-C stops)", flush=True)

    failure = None
    try:
        trio.run(run)
    except* LinkError as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        failure = str(leaf)
    except* KeyboardInterrupt:
        pass
    if failure is not None:
        raise CliError(failure)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        result: int = args.handler(args)
        return result
    except CliError as exc:
        print(f"smsgw: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_FAILURE
