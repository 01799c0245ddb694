"""Command line: the only place that parses argv.

One module per command group (gateway: serve and demo; client: send and receive; virtual_modem; pdu; dnc; account;
history: history export and resend; modems: modems and upstreams; callbacks; notices; store), each with an
`add_<group>(commands)` that `_build_parser` calls and `_cmd_<name>` handlers registered through set_defaults;
handlers return the exit code.
What the groups share (exit codes, CliError, the store options) is in `common`.
Exit codes: 0 success, 1 runtime failure, 2 bad input (usage, bad config, bad hex).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Final

from smsgw import __version__
from smsgw.cli.account import add_account
from smsgw.cli.callbacks import add_callbacks
from smsgw.cli.client import add_receive, add_send
from smsgw.cli.common import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, CliError, silence_stdout
from smsgw.cli.dnc import add_dnc
from smsgw.cli.gateway import add_demo, add_serve
from smsgw.cli.history import add_history, add_resend
from smsgw.cli.modems import add_modems, add_upstreams
from smsgw.cli.notices import add_notices
from smsgw.cli.pdu import add_pdu
from smsgw.cli.store import add_store
from smsgw.cli.virtual_modem import add_virtual_modem

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILURE", "EXIT_OK", "CliError", "main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smsgw", description="SMS gateway: SMPP 3.4, a REST API, Kannel/Jasmin endpoints and a portal in; GSM modems and upstream SMSCs out")
    parser.add_argument("--version", action="version", version=f"smsgw {__version__}")
    _add_logging_options(parser, LOG_DEFAULTS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # One `add_<group>(commands)` call per command group; each sets `handler` via set_defaults.
    add_serve(commands)
    add_demo(commands)
    add_send(commands)
    add_virtual_modem(commands)
    add_pdu(commands)
    add_dnc(commands)
    add_account(commands)
    add_history(commands)
    add_resend(commands)
    add_modems(commands)
    add_upstreams(commands)
    add_callbacks(commands)
    add_notices(commands)
    add_receive(commands)
    add_store(commands)
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
        silence_stdout()
        return EXIT_OK
