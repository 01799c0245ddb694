"""Command line: the only place that parses argv.

Each command is a `_cmd_<name>` handler registered in `_build_parser`; handlers return the exit code.
Exit codes: 0 success, 1 runtime failure, 2 bad input (usage, bad config, bad hex).
"""

from __future__ import annotations

import argparse
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
    del commands
    return parser


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
