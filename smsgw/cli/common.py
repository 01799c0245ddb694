"""What every command group shares: exit codes, the one-line error, the store options and opening."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smsgw.config import Config
    from smsgw.scheduler.store import MessageStore


EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A user-facing problem: printed as one line on stderr, exit 2."""


def require_at_least_one(value: int, option: str) -> None:
    if value < 1:
        raise CliError(f"{option} must be at least 1")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def silence_stdout() -> None:
    """After the reader of stdout went away: Python's own flush at exit would fail again and print a warning."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; the last (free text, e.g. an error) is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", metavar="PATH", help="the gateway's SQLite store")
    where.add_argument("--config", metavar="FILE", help="a gateway config; its [store] path is used")


def given_store_path(args: argparse.Namespace) -> str:
    from smsgw.config import ConfigError, load_config

    if args.db is not None:
        path: str = args.db
        return path
    try:
        return load_config(args.config).store.path
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def store_path(args: argparse.Namespace) -> str:
    path = given_store_path(args)
    # Opening would create a mistyped path as an empty store and report an empty balance or history.
    if not os.path.isfile(path):
        raise CliError(f"{path}: no such store (start the gateway once, or give its [store] path)")
    return path


def with_store(args: argparse.Namespace, action: Callable[[MessageStore], Awaitable[int]]) -> int:
    import sqlite3

    import trio

    from smsgw.config import StoreConfig
    from smsgw.scheduler.store import open_store

    path = store_path(args)

    async def run() -> int:
        async with open_store(StoreConfig(path=path)) as store:
            try:
                return await action(store)
            except Refused as exc:  # here, before the store's nursery wraps it in an ExceptionGroup
                print(f"smsgw: error: {exc}", file=sys.stderr)
                return EXIT_FAILURE

    try:
        return trio.run(run)
    except sqlite3.Error as exc:
        raise CliError(f"{path}: {exc}") from None


class Refused(Exception):
    """Raised inside `with_store`'s action; reported as one line with exit 1 (not an ExceptionGroup)."""


def add_config_store_arguments(parser: argparse.ArgumentParser) -> None:
    """For commands that need the config's accounts and routes, not only the store."""
    parser.add_argument("--config", required=True, metavar="FILE", help="the gateway config")
    parser.add_argument("--db", metavar="PATH", help="the gateway's SQLite store (default: the config's [store] path)")


def load_config_and_store(args: argparse.Namespace) -> Config:
    """The config of `add_config_store_arguments`; `args.db` becomes the store path `with_store` opens."""
    from smsgw.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if args.db is None:
        args.db = config.store.path
    return config
