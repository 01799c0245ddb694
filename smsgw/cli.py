"""Command line: the only place that parses argv.

Each command is a `_cmd_<name>` handler registered in `_build_parser`; handlers return the exit code.
Exit codes: 0 success, 1 runtime failure, 2 bad input (usage, bad config, bad hex).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
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
    _add_send(commands)
    _add_virtual_modem(commands)
    return parser


def _add_send(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = commands.add_parser(
        "send",
        help="submit SMS over SMPP (to this gateway or any SMSC), optionally wait for receipts",
        description="Prints one line per message: number, OK or the SMPP error status name, message ids. "
        "Exit 0 when every number was valid and every message accepted (and, with --wait-receipts, delivered).",
    )
    send.add_argument("--host", default="127.0.0.1")
    send.add_argument("--port", type=int, default=2775)
    send.add_argument("--system-id", required=True)
    send.add_argument("--password", help="default: the SMSGW_PASSWORD environment variable")
    to = send.add_mutually_exclusive_group(required=True)
    to.add_argument("--to", metavar="N", help="one destination number")
    to.add_argument("--to-file", metavar="numbers.csv", help="one number per line (first CSV column)")
    send.add_argument("--text", required=True)
    send.add_argument("--from", dest="source_addr", default="", metavar="SENDER", help="sender ID or number")
    send.add_argument("--default-country-code", default="", metavar="CC", help="for national numbers, e.g. 44")
    send.add_argument("--wait-receipts", action="store_true", help="wait for delivery receipts, print a summary")
    send.add_argument("--receipt-timeout", type=float, default=300.0, metavar="SECONDS")
    send.add_argument("--window", type=int, default=10, help="submit_sm sent before waiting for responses")
    send.add_argument("--response-timeout", type=float, default=10.0, metavar="SECONDS")
    send.set_defaults(handler=_cmd_send)


def _cmd_send(args: argparse.Namespace) -> int:
    from smsgw import client
    from smsgw.pdu.errors import PduError

    password = args.password if args.password is not None else os.environ.get("SMSGW_PASSWORD")
    if password is None:
        raise CliError("give --password or set SMSGW_PASSWORD")
    if not args.text:
        raise CliError("--text is empty")
    if args.window < 1:
        raise CliError("--window must be at least 1")
    if args.to is not None:
        try:
            number = client.normalise_number(args.to, args.default_country_code)
        except client.InvalidNumber as exc:
            raise CliError(f"--to {args.to!r}: {exc}") from exc
        recipients = client.RecipientList((client.Recipient(1, args.to, number),), ())
    else:
        try:
            with open(args.to_file, encoding="utf-8-sig") as file:
                recipients = client.read_recipients(file, args.default_country_code)
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"{args.to_file}: {exc}") from exc
        for rejected in recipients.rejected:
            print(f"smsgw: {args.to_file}:{rejected.line}: {rejected.raw!r} not sent: {rejected.reason}", file=sys.stderr)
        if not recipients.recipients:
            raise CliError(f"{args.to_file}: no valid numbers")
    try:
        parts = client.split_text(args.text)
    except PduError as exc:
        raise CliError(f"--text: {exc}") from exc
    settings = client.ClientSettings(
        host=args.host,
        port=args.port,
        system_id=args.system_id,
        password=password,
        source_addr=args.source_addr,
        window=args.window,
        response_timeout_s=args.response_timeout,
    )
    show_progress = args.to_file is not None and sys.stderr.isatty()
    try:
        report = client.send_batch(
            settings,
            recipients.recipients,
            parts,
            wait_receipts_s=args.receipt_timeout if args.wait_receipts else None,
            out=sys.stdout,
            progress=sys.stderr if show_progress else None,
        )
    except client.SendError as exc:
        print(f"smsgw: send failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if report.outcomes is not None:
        print(client.format_summary(report.outcomes))
    ok = report.all_accepted and report.all_delivered and not recipients.rejected
    return EXIT_OK if ok else EXIT_FAILURE


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
