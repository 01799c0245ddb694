"""Command line: the only place that parses argv.

Each command is a `_cmd_<name>` handler registered in `_build_parser`; handlers return the exit code.
Exit codes: 0 success, 1 runtime failure, 2 bad input (usage, bad config, bad hex).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Final, TextIO

from smsgw import __version__

if TYPE_CHECKING:
    import trio

    from smsgw import client
    from smsgw.scheduler.policy import InvalidLine
    from smsgw.config import Config
    from smsgw.scheduler.policy_store import SqlitePolicyFacts
    from smsgw.scheduler.store import MessageStore

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A user-facing problem: printed as one line on stderr, exit 2."""


def _require_at_least_one(value: int, option: str) -> None:
    if value < 1:
        raise CliError(f"{option} must be at least 1")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smsgw", description="SMPP 3.4 SMS gateway for GSM modems")
    parser.add_argument("--version", action="version", version=f"smsgw {__version__}")
    _add_logging_options(parser, LOG_DEFAULTS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # One `_add_<group>(commands)` call per command group; each sets `handler` via set_defaults.
    _add_serve(commands)
    _add_demo(commands)
    _add_send(commands)
    _add_virtual_modem(commands)
    _add_pdu(commands)
    _add_dnc(commands)
    _add_account(commands)
    _add_history(commands)
    _add_resend(commands)
    _add_modems(commands)
    _add_upstreams(commands)
    _add_callbacks(commands)
    _add_notices(commands)
    _add_receive(commands)
    _give_logging_options(commands)
    return parser


# The logging options; given before or after the command (`smsgw demo --log-level DEBUG`). The level's default,
# None, is INFO, except while `smsgw demo` starts: its banner comes first, the start-up's INFO lines not at all.
LOG_DEFAULTS: Final[Mapping[str, str | None]] = {"log_level": None, "log_format": "text", "log_file": None}
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")


def _add_logging_options(parser: argparse.ArgumentParser, defaults: Mapping[str, object]) -> None:
    group = parser.add_argument_group("logging")
    group.add_argument("--log-level", choices=LOG_LEVELS, default=defaults["log_level"], help="default: INFO")
    group.add_argument(
        "--log-format", choices=("text", "json"), default=defaults["log_format"], help="json: one object a line"
    )
    group.add_argument("--log-file", metavar="PATH", default=defaults["log_file"], help="append here, not stderr")


def _give_logging_options(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Every command and action also takes the logging options; SUPPRESS keeps a value given before the command
    from being reset by the subparser's default."""
    for subparser in commands.choices.values():
        nested = [a for a in subparser._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            for action in nested:
                _give_logging_options(action)
        else:
            _add_logging_options(subparser, dict.fromkeys(LOG_DEFAULTS, argparse.SUPPRESS))


class _JsonFormatter(logging.Formatter):
    """One JSON object a line, for log collectors: time, level, logger, message (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        document = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)


def _configure_logging(args: argparse.Namespace) -> None:
    handler: logging.Handler
    if args.log_file is None:
        handler = logging.StreamHandler()
    else:
        try:
            handler = logging.FileHandler(args.log_file, encoding="utf-8")
        except OSError as exc:
            raise CliError(f"--log-file {args.log_file}: {exc.strerror or exc}") from None
    if args.log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=args.log_level or "INFO", handlers=[handler])


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    from smsgw.config import DEMO_PASSWORD, DEMO_SYSTEM_ID

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
            for modem in started.virtual_modems:
                print(f"  virtual modem {modem.name} {modem.msisdn} on {modem.link}", flush=True)
            login = f"--port {started.smpp.port} --system-id {DEMO_SYSTEM_ID} --password {DEMO_PASSWORD}"
            command = f"{_own_command()} send {login} --to 447700900999 --text 'Hello from smsgw' --wait-receipts"
            print(f"Send a first message (447700900999 answers 'RE: ...'):\n  {command}", flush=True)
            print(f"See the reply (in another terminal):\n  {_own_command()} receive {login}\nCtrl-C stops.", flush=True)
            if quiet_start:
                logging.getLogger().setLevel(logging.INFO)

    # The banner is what a first-time user needs; the start-up's INFO lines (each modem's registration...) would
    # bury it, so unless a level was asked for they are left out and INFO logging starts after the banner.
    quiet_start = args.log_level is None
    if quiet_start:
        logging.getLogger().setLevel(logging.WARNING)
    return _run_until_stopped(run)


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


class _DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default, except the ones that mean "not given" (None, False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _add_smpp_client_arguments(parser: argparse.ArgumentParser) -> None:
    """Where and as whom `send` and `receive` bind."""
    parser.add_argument("--host", default="127.0.0.1", help="the SMSC (this gateway's [smpp] host)")
    parser.add_argument("--port", type=int, default=2775, help="its SMPP port")
    parser.add_argument("--system-id", required=True, help="the account")
    parser.add_argument("--password", help="default: the SMSGW_PASSWORD environment variable")
    parser.add_argument("--tls", action="store_true", help="SMPP over TLS (the gateway's [smpp] tls_port)")
    parser.add_argument("--tls-ca", metavar="PEM", help="trust this CA or self-signed certificate (with --tls)")
    parser.add_argument(
        "--response-timeout", type=float, default=10.0, metavar="SECONDS", help="for each response of the SMSC"
    )


def _client_settings(args: argparse.Namespace) -> client.ClientSettings:
    import ssl

    from smsgw import client

    # smpplib logs its own state machine at INFO and WARNING; what matters reaches the user as one line.
    if args.log_level != "DEBUG":
        logging.getLogger(client.SMPPLIB_LOGGER).setLevel(logging.ERROR)
    password = args.password if args.password is not None else os.environ.get("SMSGW_PASSWORD")
    if password is None:
        raise CliError("give --password or set SMSGW_PASSWORD")
    if args.tls_ca is not None and not args.tls:
        raise CliError("--tls-ca needs --tls")
    tls = None
    if args.tls:
        try:
            tls = ssl.create_default_context(cafile=args.tls_ca)
        except (OSError, ssl.SSLError) as exc:
            raise CliError(f"--tls-ca {args.tls_ca}: {exc}") from None
    return client.ClientSettings(
        host=args.host,
        port=args.port,
        system_id=args.system_id,
        password=password,
        response_timeout_s=args.response_timeout,
        tls=tls,
    )


def _add_send(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = commands.add_parser(
        "send",
        help="submit SMS over SMPP (to this gateway or any SMSC), optionally wait for receipts",
        description="Prints one line per message: number, OK or the SMPP error status name, message ids. "
        "Exit 0 when every number was valid and every message accepted (and, with --wait-receipts, delivered).",
        formatter_class=_DefaultsHelpFormatter,
    )
    _add_smpp_client_arguments(send)
    to = send.add_mutually_exclusive_group(required=True)
    to.add_argument("--to", metavar="N", help="one destination number")
    to.add_argument("--to-file", metavar="numbers.csv", help="one number per line (first CSV column)")
    send.add_argument("--text", required=True, help="GSM 7-bit when every character fits, else UCS-2")
    send.add_argument("--from", dest="source_addr", default="", metavar="SENDER", help="sender ID or number")
    send.add_argument("--default-country-code", default="", metavar="CC", help="for national numbers, e.g. 44")
    send.add_argument(
        "--max-parts",
        type=int,
        metavar="N",
        help="split long text here into at most N UDH parts (one receipt each); default: the SMSC splits it "
        "(message_payload) and holds it to its route's limit",
    )
    send.add_argument("--wait-receipts", action="store_true", help="wait for delivery receipts, print a summary")
    send.add_argument(
        "--receipt-timeout", type=float, default=300.0, metavar="SECONDS", help="with --wait-receipts: the longest wait"
    )
    send.add_argument("--window", type=int, default=10, help="submit_sm sent before waiting for responses")
    send.set_defaults(handler=_cmd_send)


def _cmd_send(args: argparse.Namespace) -> int:
    from smsgw import client
    from smsgw.pdu.errors import PduError
    from smsgw.numbers import InvalidNumber, normalise_number

    if not args.text:
        raise CliError("--text is empty")
    _require_at_least_one(args.window, "--window")
    settings = dataclasses.replace(_client_settings(args), source_addr=args.source_addr, window=args.window)
    if args.to is not None:
        try:
            number = normalise_number(args.to, args.default_country_code)
        except InvalidNumber as exc:
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
        if args.max_parts is None:
            parts: tuple[client.SubmitPart, ...] = (client.whole_text(args.text),)
        else:
            _require_at_least_one(args.max_parts, "--max-parts")
            parts = client.split_text(args.text, max_segments=args.max_parts)
    except PduError as exc:
        raise CliError(f"--text: {exc}") from exc
    # A progress bar only for a person watching: on a pipe or in a log it would be noise.
    show_progress = sys.stderr.isatty() and (args.to_file is not None or args.wait_receipts)
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
        print(client.format_summary(report.outcomes, report.failures))
    ok = report.all_accepted and report.all_delivered and not recipients.rejected
    return EXIT_OK if ok else EXIT_FAILURE


def _add_receive(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    receive = commands.add_parser(
        "receive",
        help="bind as a receiver and print each MO (handset message) and delivery receipt, acknowledged",
        description="One line per item, tab-separated: MO FROM TO TEXT, or RECEIPT MESSAGE_ID STAT err:ERR FROM TO "
        "(--json: one JSON object a line). Each is acknowledged (deliver_sm_resp) once printed, so the gateway "
        "drops it from its store. Stops after --count items, after --timeout, or on Ctrl-C.",
        formatter_class=_DefaultsHelpFormatter,
    )
    _add_smpp_client_arguments(receive)
    receive.add_argument("--count", type=int, metavar="N", help="stop after N items (default: no limit)")
    receive.add_argument("--timeout", type=float, metavar="SECONDS", help="stop after this long (default: none)")
    receive.add_argument("--json", action="store_true", help="one JSON object a line")
    receive.set_defaults(handler=_cmd_receive)


def _cmd_receive(args: argparse.Namespace) -> int:
    import json

    from smsgw import client

    if args.count is not None:
        _require_at_least_one(args.count, "--count")
    settings = _client_settings(args)

    def show(item: client.Received) -> None:
        print(json.dumps(item.as_json(), ensure_ascii=False) if args.json else item.line(), flush=True)

    receiver = client.SmppReceiver(settings, show)
    try:
        with receiver:
            receiver.run(args.count, args.timeout)
    except client.SendError as exc:
        print(f"smsgw: receive failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        pass  # the usual way to stop: the bind was unbound on the way out
    print(f"received {_plural(receiver.received, 'item')}", file=sys.stderr)
    return EXIT_OK


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _add_virtual_modem(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    modem = commands.add_parser(
        "virtual-modem",
        help="run one virtual GSM modem on a pty, for gammu, python-gsmmodem, Kannel or `smsgw serve`",
        description="Creates a pty that answers AT commands as a GSM modem on the virtual network of docs/virtual-network.md "
        "and symlinks its device at PATH. Runs until Ctrl-C.",
    )
    modem.add_argument("--link", required=True, metavar="PATH", help="where to symlink the pty device")
    modem.add_argument("--msisdn", default="447700900001", help="the modem's own number (default %(default)s)")
    modem.add_argument("--pin", default=None, help="SIM PIN the host must enter (default: no PIN)")
    modem.add_argument("--config", default=None, metavar="TOML", help="read the [virtual_network] section")
    modem.add_argument(
        "--persona",
        default="generic",
        help="answer like this firmware (generic, huawei, sim800): identification and vendor unsolicited lines",
    )
    modem.set_defaults(handler=_cmd_virtual_modem)


def _cmd_virtual_modem(args: argparse.Namespace) -> int:
    import trio

    from smsgw.config import ConfigError, VirtualNetworkConfig, load_config
    from smsgw.modem.virtual.persona import personas
    from smsgw.modem.virtual.pty import LinkError, run_standalone

    if args.persona not in personas():
        raise CliError(f"--persona {args.persona!r}: known personas are {', '.join(sorted(personas()))}")
    if not args.msisdn.isdigit() or not 5 <= len(args.msisdn) <= 15:
        raise CliError(f"--msisdn {args.msisdn!r}: give 5 to 15 digits, international form without '+'")
    try:
        config = load_config(args.config).virtual_network if args.config else VirtualNetworkConfig()
    except ConfigError as error:
        raise CliError(str(error)) from None

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            # SIGTERM (kill, a service manager) stops like Ctrl-C: cancelled, the pty's symlink is removed.
            nursery.start_soon(_cancel_on_sigterm, nursery.cancel_scope)
            standalone = functools.partial(run_standalone, pin=args.pin, persona=personas()[args.persona])
            path = await nursery.start(standalone, args.link, args.msisdn, config)
            print(f"virtual modem {args.msisdn} on {path} (Ctrl-C stops)", flush=True)

    # A shell starts a background job (`&`) with SIGINT ignored, and Trio then leaves it ignored: Ctrl-C and
    # `kill -INT` would do nothing. Asked to run until Ctrl-C, it must stop on it however it was started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
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


async def _cancel_on_sigterm(scope: trio.CancelScope) -> None:
    import trio

    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async for _ in signals:
            log.info("SIGTERM received; stopping")
            scope.cancel()
            return


def _add_pdu(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from smsgw.pdu.describe import KINDS

    pdu = commands.add_parser("pdu", help="decode SMPP PDUs and GSM TPDUs, build the TPDUs AT+CMGS takes")
    actions = pdu.add_subparsers(dest="pdu_command", metavar="ACTION", required=True)
    decode = actions.add_parser(
        "decode",
        help="print an SMPP PDU or a TS 23.040 TPDU as JSON",
        description="Auto-detection: an SMPP PDU starts with its own length; anything else is read as a TPDU, "
        "with the SMSC prefix of PDU mode and then without it.",
    )
    decode.add_argument("hex", metavar="HEX", help="the PDU in hex (spaces allowed)")
    decode.add_argument("--kind", choices=KINDS, default="auto")
    decode.set_defaults(handler=_cmd_pdu_decode)
    encode = actions.add_parser(
        "encode-sms",
        help="print the SMS-SUBMIT TPDUs of a text, one JSON line per part: AT+CMGS=<length>, then <pdu>",
        description="GSM 7-bit when every character fits, else UCS-2; long texts become concatenated parts.",
    )
    encode.add_argument("--to", required=True, metavar="N", help="+international or digits of unknown type")
    encode.add_argument("--text", required=True, metavar="T")
    encode.add_argument("--flash", action="store_true", help="message class 0: shown at once, not stored")
    encode.add_argument("--srr", action="store_true", help="request a status report (TP-SRR)")
    encode.add_argument("--unicode", action="store_true", help="UCS-2 even when GSM 7-bit would do")
    encode.add_argument("--smsc", metavar="N", help="SMSC number (default: the one stored in the modem)")
    encode.add_argument("--validity", type=int, metavar="MINUTES", help="relative validity period (TP-VP)")
    encode.add_argument("--reference", type=int, metavar="N", help="concatenation reference 0-255 (default random)")
    encode.add_argument("--mr", type=int, default=0, metavar="N", help="TP-MR of the first part (a modem may reassign)")
    encode.add_argument("--max-parts", type=int, default=3, metavar="N")
    encode.set_defaults(handler=_cmd_pdu_encode_sms)


# An SMS-SUBMIT with an empty destination and no user data: first octet, TP-MR, address length and type,
# TP-PID, TP-DCS, TP-UDL.
_SHORTEST_TPDU: Final = 7


def _cmd_pdu_decode(args: argparse.Namespace) -> int:
    import json

    from smsgw.pdu.describe import decode_any
    from smsgw.pdu.errors import PduError

    try:
        data = bytes.fromhex(args.hex)
    except ValueError as exc:
        raise CliError(f"bad hex {args.hex[:40]!r}: {exc}") from None
    if len(data) < _SHORTEST_TPDU:
        raise CliError(
            f"{_plural(len(data), 'octet')} cannot be a PDU: an SMPP PDU has at least 16 octets (its header), "
            f"a TPDU at least {_SHORTEST_TPDU}"
        )
    try:
        described = decode_any(data, args.kind)
    except PduError as exc:
        raise CliError(exc.message) from None
    print(json.dumps(described, indent=2, ensure_ascii=False))
    return EXIT_OK


def _cmd_pdu_encode_sms(args: argparse.Namespace) -> int:
    import json
    import random
    from datetime import timedelta

    from smsgw.pdu.errors import PduError
    from smsgw.pdu.segmentation import segment_text
    from smsgw.pdu.text import Encoding
    from smsgw.pdu.tpdu import Address, Dcs, SmsSubmit, TypeOfNumber, cmgs_length, encode_with_smsc

    reference = random.randrange(256) if args.reference is None else args.reference
    if not 0 <= args.mr <= 255:
        raise CliError(f"--mr {args.mr} is not 0-255")
    try:
        destination = Address.parse(args.to)
        if destination.ton == TypeOfNumber.ALPHANUMERIC:
            raise CliError(f"--to {args.to!r} is not a number")
        segmented = segment_text(
            args.text,
            encoding=Encoding.UCS2 if args.unicode else None,
            max_segments=args.max_parts,
            reference=reference,
        )
        dcs = Dcs.for_encoding(segmented.encoding, 0 if args.flash else None)
        validity = None if args.validity is None else timedelta(minutes=args.validity)
        for index, part in enumerate(segmented.parts):
            submit = SmsSubmit(
                destination,
                part.user_data,
                dcs,
                part.udh,
                tp_mr=(args.mr + index) % 256,
                validity=validity,
                status_report_request=args.srr,
            )
            pdu = encode_with_smsc(submit.to_bytes(), args.smsc)
            line = {"part": part.sequence, "parts": part.total, "length": cmgs_length(pdu), "pdu": pdu.hex().upper()}
            print(json.dumps(line))
    except (PduError, ValueError) as exc:
        raise CliError(getattr(exc, "message", str(exc))) from None
    return EXIT_OK


def _add_dnc(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from smsgw.config import PolicyConfig

    dnc = commands.add_parser("dnc", help="the do-not-call register (promotional messages to it end err 801)")
    actions = dnc.add_subparsers(dest="dnc_command", metavar="ACTION", required=True)
    load = actions.add_parser(
        "import",
        help="add the numbers in the first column of a CSV file or Excel workbook (.xlsx) to the register",
        description="CSV separated by commas, semicolons or tabs (detected), or the first sheet of an .xlsx "
        "workbook. Numbers are normalised like destinations; blank lines, # comments and a header line are "
        "skipped. Lines that are not numbers are listed on stderr with their line numbers and the rest is "
        "imported; the exit status is then 1.",
    )
    load.add_argument("file", metavar="FILE.csv")
    load.add_argument("--db", required=True, metavar="PATH", help="the gateway's SQLite store ([store] path)")
    load.add_argument("--default-country-code", default="", metavar="CC", help="for national numbers (0...)")
    load.add_argument("--batch-size", type=int, default=PolicyConfig().dnc_import_batch_size, metavar="N")
    load.set_defaults(handler=_cmd_dnc_import)
    consent = actions.add_parser(
        "consent",
        help="record (or with --remove withdraw) an account's consent that overrides the register",
        description="A number on the register that consented to an account's promotional messages gets them.",
    )
    consent.add_argument("account", metavar="SYSTEM_ID")
    consent.add_argument("numbers", nargs="+", metavar="NUMBER")
    consent.add_argument("--db", required=True, metavar="PATH", help="the gateway's SQLite store ([store] path)")
    consent.add_argument("--default-country-code", default="", metavar="CC", help="for national numbers (0...)")
    consent.add_argument("--remove", action="store_true", help="withdraw the consent")
    consent.set_defaults(handler=_cmd_dnc_consent)


def _open_policy_facts(db: str) -> SqlitePolicyFacts:
    import sqlite3

    from smsgw.scheduler.policy_store import SqlitePolicyFacts

    # sqlite3 would create a mistyped path silently, and the gateway would never see what was written to it.
    if not os.path.isfile(db):
        raise CliError(f"--db {db}: no such store (start the gateway once, or give its [store] path)")
    try:
        return SqlitePolicyFacts.open(db)
    except sqlite3.Error as exc:
        raise CliError(f"--db {db}: {exc}") from None


def _cmd_dnc_import(args: argparse.Namespace) -> int:
    import csv
    import sqlite3
    import zipfile

    from smsgw.scheduler.policy import InvalidLine

    _require_at_least_one(args.batch_size, "--batch-size")
    _check_country_code(args.default_country_code)
    counts = {"numbers": 0, "invalid": 0}

    def numbers(items: Iterator[str | InvalidLine]) -> Iterator[str]:
        for item in items:
            if isinstance(item, InvalidLine):
                counts["invalid"] += 1
                print(f"{args.file}:{item.line}: {item.reason}", file=sys.stderr)
            else:
                counts["numbers"] += 1
                yield item

    with _dnc_source(args.file, args.default_country_code) as items:
        facts = _open_policy_facts(args.db)
        try:
            added = facts.add_dnc(numbers(items), source=os.path.basename(args.file), batch_size=args.batch_size)
        except (csv.Error, zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise CliError(
                f"{args.file}: {exc}; the import stopped there (earlier batches are committed; importing again is safe)"
            ) from None
        except sqlite3.Error as exc:
            raise CliError(f"--db {args.db}: {exc}") from None
        finally:
            facts.close()
    print(
        f"{args.file}: {_plural(counts['numbers'], 'number')}, {added} new on the register, "
        f"{counts['numbers'] - added} already on it or repeated, {_plural(counts['invalid'], 'invalid line')}"
    )
    return EXIT_FAILURE if counts["invalid"] else EXIT_OK


_SNIFF_OCTETS: Final = 64 * 1024
_DNC_DELIMITERS: Final = ",;\t"  # what spreadsheets export as "CSV" in different locales


@contextlib.contextmanager
def _dnc_source(path: str, default_country_code: str) -> Iterator[Iterator[str | InvalidLine]]:
    """The numbers of a CSV file (its delimiter sniffed) or of an Excel workbook's first sheet, as read."""
    import csv

    from smsgw.scheduler.policy import iter_dnc_cells, iter_dnc_csv

    try:
        with open(path, "rb") as probe:
            is_xlsx = probe.read(4) == b"PK\x03\x04"  # a zip container: .xlsx (a CSV never starts so)
        if is_xlsx:
            import openpyxl

            workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
            try:
                rows = workbook.worksheets[0].iter_rows(max_col=1, values_only=True)
                yield iter_dnc_cells(((i, _cell_text(row[0] if row else None)) for i, row in enumerate(rows, 1)),
                                     default_country_code)
            finally:
                workbook.close()
            return
        # A stray byte in a note column (a cp1252 export) must not stop the import; in the number column it
        # makes that line invalid like any other non-digit.
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as file:
            try:
                dialect: type[csv.Dialect] = csv.Sniffer().sniff(file.read(_SNIFF_OCTETS), _DNC_DELIMITERS)
            except csv.Error:  # one column: no delimiter to find
                dialect = csv.excel
            file.seek(0)
            yield iter_dnc_csv(file, default_country_code, dialect)
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or exc}") from None


def _cell_text(value: object) -> str:
    """A spreadsheet cell as text: Excel keeps numbers typed in as numbers (447700900001.0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def _check_country_code(default_country_code: str) -> None:
    from smsgw.numbers import InvalidNumber, check_country_code

    try:
        check_country_code(default_country_code)
    except InvalidNumber as exc:
        raise CliError(f"--default-country-code: {exc.reason}") from None


def _cmd_dnc_consent(args: argparse.Namespace) -> int:
    from smsgw.numbers import InvalidNumber, normalise_number

    _check_country_code(args.default_country_code)
    try:
        numbers = [normalise_number(raw, args.default_country_code) for raw in args.numbers]
    except InvalidNumber as exc:
        raise CliError(exc.reason) from None
    facts = _open_policy_facts(args.db)
    try:
        for number in numbers:
            if args.remove:
                changed = facts.remove_consent(args.account, number)
                print(f"{number}: consent for {args.account} {'withdrawn' if changed else 'was not recorded'}")
            else:
                changed = facts.add_consent(args.account, number)
                print(f"{number}: consent for {args.account} {'recorded' if changed else 'already recorded'}")
    finally:
        facts.close()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        _configure_logging(args)
        result: int = args.handler(args)
        return result
    except CliError as exc:
        print(f"smsgw: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except BrokenPipeError:  # output piped into `head` or a pager that quit: not an error worth a traceback
        _silence_stdout()
        return EXIT_OK


def _silence_stdout() -> None:
    """After the reader of stdout went away: Python's own flush at exit would fail again and print a warning."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _add_store_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", metavar="PATH", help="the gateway's SQLite store")
    where.add_argument("--config", metavar="FILE", help="a gateway config; its [store] path is used")


def _given_store_path(args: argparse.Namespace) -> str:
    from smsgw.config import ConfigError, load_config

    if args.db is not None:
        path: str = args.db
        return path
    try:
        return load_config(args.config).store.path
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _store_path(args: argparse.Namespace) -> str:
    path = _given_store_path(args)
    # Opening would create a mistyped path as an empty store and report an empty balance or history.
    if not os.path.isfile(path):
        raise CliError(f"{path}: no such store (start the gateway once, or give its [store] path)")
    return path


def _with_store(args: argparse.Namespace, action: Callable[[MessageStore], Awaitable[int]]) -> int:
    import sqlite3

    import trio

    from smsgw.config import StoreConfig
    from smsgw.scheduler.store import open_store

    path = _store_path(args)

    async def run() -> int:
        async with open_store(StoreConfig(path=path)) as store:
            try:
                return await action(store)
            except _Refused as exc:  # here, before the store's nursery wraps it in an ExceptionGroup
                print(f"smsgw: error: {exc}", file=sys.stderr)
                return EXIT_FAILURE

    try:
        return trio.run(run)
    except sqlite3.Error as exc:
        raise CliError(f"{path}: {exc}") from None


def _add_account(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    account = commands.add_parser("account", help="prepaid balances: show, top up, list the ledger")
    actions = account.add_subparsers(dest="account_command", metavar="ACTION", required=True)
    balance = actions.add_parser("balance", help="print an account's balance")
    balance.add_argument("account", metavar="SYSTEM_ID")
    _add_store_arguments(balance)
    balance.set_defaults(handler=_cmd_account_balance)
    topup = actions.add_parser(
        "topup", help="credit an account (a negative amount debits it, as a correction); a ledger row either way"
    )
    topup.add_argument("account", metavar="SYSTEM_ID")
    topup.add_argument("amount", metavar="AMOUNT", help="decimal, in the currency of route prices (e.g. 25.50)")
    topup.add_argument("--note", default="", help="kept in the ledger row")
    _add_store_arguments(topup)
    topup.set_defaults(handler=_cmd_account_topup)
    transfer = actions.add_parser(
        "transfer",
        help="move balance between a parent account and one of its sub-accounts (a ledger row on each side)",
        description="The parent/sub-account relation is the config's, so the config is required; the store is its "
        "[store] path unless --db names another.",
    )
    transfer.add_argument("--from", dest="from_account", required=True, metavar="SYSTEM_ID")
    transfer.add_argument("--to", dest="to_account", required=True, metavar="SYSTEM_ID")
    transfer.add_argument("--amount", required=True, help="decimal, in the currency of route prices (e.g. 25.50)")
    transfer.add_argument("--note", default="", help="kept in both ledger rows")
    _add_config_store_arguments(transfer)
    transfer.set_defaults(handler=_cmd_account_transfer)
    ledger = actions.add_parser("ledger", help="the account's latest ledger rows, oldest first")
    ledger.add_argument("account", metavar="SYSTEM_ID")
    ledger.add_argument("--limit", type=int, default=50, metavar="N")
    _add_store_arguments(ledger)
    ledger.set_defaults(handler=_cmd_account_ledger)
    hash_password = actions.add_parser(
        "hash-password",
        help="read a password without echo and print the account's password_hash line for the config",
        description="At most 8 characters (SMPP 3.4 carries no longer password). Reads one line from stdin when "
        "it is not a terminal. Paste the printed line into the account's [[accounts]] table.",
    )
    hash_password.set_defaults(handler=_cmd_account_hash_password)


def _cmd_account_hash_password(args: argparse.Namespace) -> int:
    import getpass

    from smsgw.config import MAX_PASSWORD_CHARS
    from smsgw.passwords import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise CliError("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CliError("empty password")
    if len(password) > MAX_PASSWORD_CHARS:
        raise CliError(f"{len(password)} characters: SMPP 3.4 carries at most {MAX_PASSWORD_CHARS}, no ESME could bind")
    print(f'password_hash = "{hash_password(password)}"')
    return EXIT_OK


def _money(micro: int, args: argparse.Namespace) -> str:
    """Every amount the CLI prints: decimal with at least two places, then the config's currency."""
    from smsgw.config import BillingConfig
    from smsgw.scheduler.routing import format_micro

    config: Config | None = getattr(args, "loaded_config", None)
    currency = (config.billing if config is not None else BillingConfig()).currency
    return f"{format_micro(micro)} {currency}"


async def _check_account(store: MessageStore, args: argparse.Namespace) -> None:
    """An account unknown to the config given, or (with --db alone) without a single ledger row: a mistyped name
    would otherwise show 0.00 and exit 0."""
    config: Config | None = getattr(args, "loaded_config", None)
    if config is not None:
        if not any(account.system_id == args.account for account in config.accounts):
            raise _Refused(f"no account {args.account!r} in {args.config}")
    elif not await store.ledger(args.account, 1):
        raise _Refused(f"{args.account!r} has no ledger rows in {args.db}: unknown account (or never topped up)")


class _Refused(Exception):
    """Raised inside `_with_store`'s action; reported as one line with exit 1 (not an ExceptionGroup)."""


def _cmd_account_balance(args: argparse.Namespace) -> int:
    _note_config(args)

    async def action(store: MessageStore) -> int:
        await _check_account(store, args)
        print(f"{args.account} {_money(await store.balance(args.account), args)}")
        return EXIT_OK

    return _with_store(args, action)


def _cmd_account_topup(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from smsgw.scheduler.routing import to_micro
    from smsgw.scheduler.timing import to_ms

    try:
        amount = to_micro(args.amount)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if amount == 0:
        raise CliError("amount must not be zero")
    config = _note_config(args)
    if config is not None and not any(account.system_id == args.account for account in config.accounts):
        raise CliError(f"no account {args.account!r} in {args.config}")

    async def action(store: MessageStore) -> int:
        balance = await store.topup(args.account, amount, to_ms(datetime.now(UTC)), args.note)
        print(f"{args.account} {_money(balance, args)}")
        return EXIT_OK

    return _with_store(args, action)


def _note_config(args: argparse.Namespace) -> Config | None:
    """The config of --config (for accounts and the currency), kept on `args`; None with --db."""
    from smsgw.config import ConfigError, load_config

    if getattr(args, "config", None) is None:
        return None
    try:
        args.loaded_config = load_config(args.config)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    config: Config = args.loaded_config
    return config


def _add_config_store_arguments(parser: argparse.ArgumentParser) -> None:
    """For commands that need the config's accounts and routes, not only the store."""
    parser.add_argument("--config", required=True, metavar="FILE", help="the gateway config")
    parser.add_argument("--db", metavar="PATH", help="the gateway's SQLite store (default: the config's [store] path)")


def _load_config_and_store(args: argparse.Namespace) -> Config:
    """The config of `_add_config_store_arguments`; `args.db` becomes the store path `_with_store` opens."""
    from smsgw.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if args.db is None:
        args.db = config.store.path
    return config


def _cmd_account_transfer(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from smsgw.scheduler.model import InsufficientBalance
    from smsgw.scheduler.policy import check_transfer
    from smsgw.scheduler.routing import to_micro
    from smsgw.scheduler.timing import to_ms

    config = _load_config_and_store(args)
    args.loaded_config = config
    try:
        amount = to_micro(args.amount)
        check_transfer(config, args.from_account, args.to_account, amount)
    except ValueError as exc:
        raise CliError(str(exc)) from None

    refused: list[str] = []  # raised outside the store's nursery, which would wrap it in an ExceptionGroup

    async def action(store: MessageStore) -> int:
        try:
            sent, received = await store.transfer(
                args.from_account, args.to_account, amount, to_ms(datetime.now(UTC)), args.note
            )
        except InsufficientBalance as exc:
            refused.append(f"refused: {exc}")
            return EXIT_BAD_INPUT
        print(f"{args.from_account} {_money(sent, args)}")
        print(f"{args.to_account} {_money(received, args)}")
        return EXIT_OK

    code = _with_store(args, action)
    if refused:
        raise CliError(refused[0])
    return code


def _cmd_account_ledger(args: argparse.Namespace) -> int:
    from smsgw.scheduler.timing import from_ms

    _require_at_least_one(args.limit, "--limit")
    _note_config(args)

    async def action(store: MessageStore) -> int:
        await _check_account(store, args)
        for entry in await store.ledger(args.account, args.limit):
            print(
                f"{from_ms(entry.at_ms).isoformat()} {entry.kind:<12} {_money(entry.amount_micro, args):>18} "
                f"balance={_money(entry.balance_after_micro, args)} message_id={entry.message_id or '-'} "
                f"note={entry.note}"
            )
        return EXIT_OK

    return _with_store(args, action)


def _add_history(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    history = commands.add_parser("history", help="delivery records (kept [store] retention_days)")
    actions = history.add_subparsers(dest="history_command", metavar="ACTION", required=True)
    export = actions.add_parser(
        "export",
        help="messages submitted in a period as CSV",
        description="Dates are UTC: YYYY-MM-DD or an ISO date-time. --to is inclusive for a date (the whole "
        "day) and exclusive for a date-time.",
    )
    export.add_argument("--from", dest="start", required=True, metavar="DATE")
    export.add_argument("--to", dest="end", required=True, metavar="DATE")
    export.add_argument("--account", metavar="SYSTEM_ID", help="only this account's messages")
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    _add_store_arguments(export)
    export.set_defaults(handler=_cmd_history_export)


def _parse_when(text: str, option: str, *, end: bool) -> int:
    from datetime import UTC, date, datetime, timedelta

    from smsgw.scheduler.timing import to_ms

    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + (timedelta(days=1) if end else timedelta())
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option} {text!r}: expected YYYY-MM-DD or an ISO date-time") from None
    return to_ms(moment)


def _cmd_history_export(args: argparse.Namespace) -> int:
    from smsgw.scheduler.history import write_history_csv

    start = _parse_when(args.start, "--from", end=False)
    end = _parse_when(args.end, "--to", end=True)
    if end <= start:
        raise CliError("--to must be after --from")

    async def action(store: MessageStore) -> int:
        rows = store.history_rows(start, end, args.account)
        if args.output is None:
            try:
                count = write_history_csv(rows, sys.stdout)
                sys.stdout.flush()
            except BrokenPipeError:  # `| head`: the reader has what it wanted
                _silence_stdout()
                return EXIT_OK
        else:
            try:
                with open(args.output, "w", encoding="utf-8", newline="") as out:
                    count = write_history_csv(rows, out)
            except OSError as exc:
                raise CliError(f"{args.output}: {exc.strerror or exc}") from None
        print(f"exported {count} messages", file=sys.stderr)
        return EXIT_OK

    return _with_store(args, action)


def _add_resend(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    resend = commands.add_parser(
        "resend",
        help="re-submit, as a new batch with new ids, an account's messages refused for insufficient balance",
        description="The messages of --account submitted in the period that the balance could not cover "
        "(err 800) are sent again now, routed, priced and charged by the config as it is; each is resent once. "
        "Prints OLD_ID -> NEW_ID per message, or why it was not resent. Exit 1 when any was not. A running gateway "
        "picks them up within [messages] foreign_writes_poll_s.",
    )
    resend.add_argument("--account", required=True, metavar="SYSTEM_ID")
    resend.add_argument("--from", dest="start", required=True, metavar="DATE", help="UTC, as for history export")
    resend.add_argument("--to", dest="end", required=True, metavar="DATE", help="UTC, inclusive for a date")
    resend.add_argument(
        "--error", type=int, required=True, choices=(800,), help="800 (insufficient balance): the only one resendable"
    )
    _add_config_store_arguments(resend)
    resend.set_defaults(handler=_cmd_resend)


def _cmd_resend(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from smsgw.scheduler.resend import resend_unpaid
    from smsgw.scheduler.timing import to_ms

    start = _parse_when(args.start, "--from", end=False)
    end = _parse_when(args.end, "--to", end=True)
    if end <= start:
        raise CliError("--to must be after --from")
    config = _load_config_and_store(args)
    if not any(account.system_id == args.account for account in config.accounts):
        raise CliError(f"no account {args.account!r} in {args.config}")

    async def action(store: MessageStore) -> int:
        outcomes = await resend_unpaid(store, config, args.account, start, end, to_ms(datetime.now(UTC)))
        for outcome in outcomes:
            note = f" ({outcome.reason})" if outcome.reason else ""
            print(f"{outcome.old_id} -> {outcome.new_id or '-'}{note}")
        missed = sum(outcome.new_id is None for outcome in outcomes)
        print(f"resent {len(outcomes) - missed} of {len(outcomes)} messages", file=sys.stderr)
        return EXIT_FAILURE if missed else EXIT_OK

    return _with_store(args, action)


def _add_callbacks(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    callbacks = commands.add_parser("callbacks", help="MO HTTP callbacks: list pending and failed, retry failed")
    actions = callbacks.add_subparsers(dest="callbacks_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="stored callbacks, oldest first (delivered ones are not kept)")
    listing.add_argument("--state", choices=("pending", "failed"), help="only callbacks in this state")
    listing.add_argument("--account", metavar="SYSTEM_ID", help="only this account's callbacks")
    listing.add_argument("--limit", type=int, default=100, metavar="N")
    _add_store_arguments(listing)
    listing.set_defaults(handler=_cmd_callbacks_list)
    retry = actions.add_parser(
        "retry",
        help="make failed callbacks pending again, attempts and age counted afresh",
        description="Once the endpoint is fixed (or the account's mo_callback_url corrected), failed callbacks are "
        "POSTed again to the account's current URL. A running gateway picks them up within [messages] "
        "foreign_writes_poll_s. Prints how many were requeued; exit 1 when none was.",
    )
    retry.add_argument("ids", nargs="*", type=int, metavar="ID", help="callback ids (from list)")
    retry.add_argument("--all-failed", action="store_true", help="every failed callback (of --account if given)")
    retry.add_argument("--account", metavar="SYSTEM_ID", help="only this account's callbacks")
    _add_store_arguments(retry)
    retry.set_defaults(handler=_cmd_callbacks_retry)


def _cmd_callbacks_list(args: argparse.Namespace) -> int:
    from smsgw.scheduler.timing import from_ms

    _require_at_least_one(args.limit, "--limit")

    async def action(store: MessageStore) -> int:
        rows: list[tuple[str, ...]] = [
            ("ID", "MO", "ACCOUNT", "FROM", "STATE", "ATTEMPTS", "CREATED", "NEXT TRY", "LAST ERROR")
        ]
        for row in await store.mo_callbacks_listing(args.state, args.account, args.limit):
            next_try = "-" if row.next_try_ms is None else from_ms(row.next_try_ms).isoformat(timespec="seconds")
            rows.append(
                (
                    str(row.rowid), str(row.mo_id), row.account, row.originator, row.state, str(row.attempts),
                    from_ms(row.created_ms).isoformat(timespec="seconds"), next_try, row.last_error or "-",
                )
            )
        _print_table(rows)
        return EXIT_OK

    return _with_store(args, action)


def _cmd_callbacks_retry(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from smsgw.scheduler.timing import to_ms

    if args.all_failed == bool(args.ids):
        raise CliError("name the callback ids to retry, or give --all-failed (not both)")

    async def action(store: MessageStore) -> int:
        rowids = None if args.all_failed else args.ids
        if rowids is not None:
            # Say which ids cannot be requeued and why, not only how many were.
            stored = {row.rowid: row for row in await store.mo_callbacks_listing(None, None, _EVERY_ROW)}
            for rowid in dict.fromkeys(rowids):
                row = stored.get(rowid)
                if row is None:
                    print(f"smsgw: callback {rowid}: no such callback (delivered ones are not kept)", file=sys.stderr)
                elif args.account is not None and row.account != args.account:
                    print(f"smsgw: callback {rowid}: belongs to {row.account!r}, not {args.account!r}", file=sys.stderr)
                elif row.state != "failed":
                    print(f"smsgw: callback {rowid}: {row.state}, not failed", file=sys.stderr)
        count = await store.mo_callbacks_requeue(rowids, args.account, to_ms(datetime.now(UTC)))
        print(f"requeued {_plural(count, 'failed callback')}")
        return EXIT_OK if count else EXIT_FAILURE

    return _with_store(args, action)


_EVERY_ROW: Final = 2**62  # a LIMIT that is no limit


def _add_notices(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    notices = commands.add_parser(
        "notices", help="the notices the gateway sent handsets (MO receipts, PT and STOP confirmations)"
    )
    actions = notices.add_subparsers(dest="notices_command", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list",
        help="the latest notices, oldest first",
        description="Each notice with its message's state, and whether the handset now takes its notices as "
        "normal SMS (it texted PT) instead of flash. Kept [store] retention_days.",
    )
    listing.add_argument("--handset", metavar="NUMBER", help="only notices to this number (international format)")
    listing.add_argument("--limit", type=int, default=100, metavar="N")
    _add_store_arguments(listing)
    listing.set_defaults(handler=_cmd_notices_list)


def _cmd_notices_list(args: argparse.Namespace) -> int:
    from smsgw.numbers import InvalidNumber, normalise_number
    from smsgw.scheduler.states import State
    from smsgw.scheduler.timing import from_ms

    _require_at_least_one(args.limit, "--limit")
    handset = None
    if args.handset is not None:
        try:
            handset = normalise_number(args.handset, "")
        except InvalidNumber as exc:
            raise CliError(f"--handset {args.handset!r}: {exc.reason}") from None

    async def action(store: MessageStore) -> int:
        rows: list[tuple[str, ...]] = [
            ("ID", "SENT", "HANDSET", "PURPOSE", "MESSAGE ID", "ACCOUNT", "STATE", "HANDSET TAKES", "TEXT")
        ]
        for row in await store.notices_listing(handset, args.limit):
            rows.append(
                (
                    str(row.rowid), from_ms(row.at_ms).isoformat(timespec="seconds"), row.handset, row.purpose,
                    row.message_id, row.account or "-", "purged" if row.state is None else State(row.state).name,
                    "normal SMS" if row.normal_sms else "flash", row.text,
                )
            )
        _print_table(rows)
        return EXIT_OK

    return _with_store(args, action)


def _add_modems(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    modems = commands.add_parser(
        "modems",
        help="the running gateway's modems: state, signal, operator, sent today and this month vs limits",
        description="Reads the snapshot the gateway writes next to its store (<store path>.modems.json) every "
        "[modems_status] interval_s. Exit 1 when there is none (the gateway is not running or never ran).",
    )
    _add_store_arguments(modems)
    modems.add_argument("--json", action="store_true", help="the whole snapshot as JSON, with its age_s")
    modems.set_defaults(handler=_cmd_modems)


def _cmd_modems(args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from smsgw.modem.status_file import StatusFileError, encode_snapshot, read_snapshot, status_path

    path = status_path(_given_store_path(args))
    try:
        snapshot = read_snapshot(path)
    except (OSError, StatusFileError) as exc:
        print(f"smsgw: {path}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if snapshot is None:
        print(f"smsgw: {path}: no modem status: the gateway is not running or never ran with this store",
              file=sys.stderr)
        return EXIT_FAILURE
    now = datetime.now(UTC)
    age_s = (now - snapshot.written_at).total_seconds()
    if args.json:
        document = json.loads(encode_snapshot(snapshot))
        print(json.dumps({**document, "age_s": round(age_s, 1)}, indent=2, ensure_ascii=False))
        return EXIT_OK
    # A few missed renewals (a busy disk) are normal; many mean the writer, the gateway, is gone.
    stale = "; stale: the gateway stopped or is hung" if age_s > _STALE_RENEWALS * snapshot.interval_s else ""
    print(f"snapshot of {snapshot.written_at.isoformat(timespec='seconds')}, {age_s:.0f} s old{stale}")
    header = ("NAME", "MSISDN", "GROUP", "STATE", "SIGNAL", "OPERATOR", "TODAY", "MONTH", "LAST ERROR")
    rows = [header]
    for record in snapshot.modems:
        status, usage = record.status, record.usage
        # Counts of a past day or month are spent: the SIM starts afresh, as the gateway would on restoring them.
        today = usage.today if usage.day == now.date() else 0
        month = usage.this_month if (usage.day.year, usage.day.month) == (now.year, now.month) else 0
        state = status.state.value + (f" ({status.limit_reached})" if status.limit_reached else "")
        signal = "-" if status.signal_rssi is None else f"{status.signal_rssi} ({-113 + 2 * status.signal_rssi} dBm)"
        rows.append(
            (
                status.name,
                status.msisdn or "-",
                status.group,
                state,
                signal,
                status.operator or "-",
                _used_of(today, record.per_day),
                _used_of(month, record.per_month),
                status.last_error or "-",
            )
        )
    _print_table(rows)
    return EXIT_OK


_STALE_RENEWALS = 3


def _add_upstreams(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    upstreams = commands.add_parser(
        "upstreams",
        help="the running gateway's binds to upstream SMSCs: state per session, window in use, throughput, errors",
        description="Reads the snapshot the gateway writes next to its store (<store path>.upstreams.json) every "
        "[modems_status] interval_s. Exit 1 when there is none (no gateway with [[upstreams]] ran with this store).",
    )
    _add_store_arguments(upstreams)
    upstreams.add_argument("--json", action="store_true", help="the whole snapshot as JSON, with its age_s")
    upstreams.set_defaults(handler=_cmd_upstreams)


def _cmd_upstreams(args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from smsgw.smpp_server.upstream import SubmitResult
    from smsgw.smpp_server.upstream_status import UpstreamStatusError, encode_snapshot, read_snapshot, status_path

    path = status_path(_given_store_path(args))
    try:
        snapshot = read_snapshot(path)
    except (OSError, UpstreamStatusError) as exc:
        print(f"smsgw: {path}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if snapshot is None:
        print(f"smsgw: {path}: no upstream status: no gateway with [[upstreams]] is running or ran with this store",
              file=sys.stderr)
        return EXIT_FAILURE
    age_s = (datetime.now(UTC) - snapshot.written_at).total_seconds()
    if args.json:
        document = json.loads(encode_snapshot(snapshot))
        print(json.dumps({**document, "age_s": round(age_s, 1)}, indent=2, ensure_ascii=False))
        return EXIT_OK
    stale = "; stale: the gateway stopped or is hung" if age_s > _STALE_RENEWALS * snapshot.interval_s else ""
    print(f"snapshot of {snapshot.written_at.isoformat(timespec='seconds')}, {age_s:.0f} s old{stale}")
    rows: list[tuple[str, ...]] = [
        ("UPSTREAM", "ADDRESS", "SENT/S", "CONTRACT/S", *(r.value.upper().replace("_", " ") for r in SubmitResult))
    ]
    rows += [
        (u.name, u.address, f"{u.sent_per_s:.1f}", f"{u.throughput_per_s:g}",
         *(str(u.submits.get(result, 0)) for result in SubmitResult))
        for u in snapshot.upstreams
    ]
    _print_table(rows)
    print()
    rows = [("UPSTREAM", "SESSION", "BIND", "STATE", "WINDOW", "LAST ERROR")]
    rows += [
        (s.upstream, str(s.session), s.bind, s.state.value, f"{s.window_in_use}/{u.window}", s.last_error or "-")
        for u in snapshot.upstreams
        for s in u.sessions
    ]
    _print_table(rows)
    return EXIT_OK


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; the last (free text, e.g. an error) is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


def _used_of(used: int, limit: int | None) -> str:
    return str(used) if limit is None else f"{used}/{limit}"
