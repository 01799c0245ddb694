"""`smsgw send` and `smsgw receive`: an SMPP client of this gateway or any SMSC."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from typing import TYPE_CHECKING

from smsgw.cli.common import EXIT_FAILURE, EXIT_OK, CliError, plural, require_at_least_one

if TYPE_CHECKING:
    from smsgw import client


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


def add_send(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = commands.add_parser(
        "send",
        help="submit SMS over SMPP (to this gateway or any SMSC), optionally wait for receipts",
        description="Prints one line per message (one per destination): number, OK or the SMPP error status "
        "name, message ids. Exit 0 when every number was valid and every message accepted (and, with "
        "--wait-receipts, delivered).",
        formatter_class=_DefaultsHelpFormatter,
    )
    _add_smpp_client_arguments(send)
    to = send.add_mutually_exclusive_group(required=True)
    to.add_argument("--to", metavar="N", action="append",
                    help="a destination number; repeat it for several (each gets its own message and line)")
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

    if not args.text:
        raise CliError("--text is empty")
    require_at_least_one(args.window, "--window")
    settings = dataclasses.replace(_client_settings(args), source_addr=args.source_addr, window=args.window)
    if args.to is not None:
        # Typed on the command line: a bad or repeated number is a mistake to fix before anything is sent.
        recipients = client.number_list(enumerate(args.to, 1), args.default_country_code, place="--to number")
        if recipients.rejected:
            raise CliError("; ".join(f"--to {r.raw!r}: {r.reason}" for r in recipients.rejected))
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
            require_at_least_one(args.max_parts, "--max-parts")
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


def add_receive(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        require_at_least_one(args.count, "--count")
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
    print(f"received {plural(receiver.received, 'item')}", file=sys.stderr)
    return EXIT_OK
