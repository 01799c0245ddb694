"""`smsgw dnc import` and `smsgw dnc consent`: the do-not-call register."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from smsgw.cli.common import EXIT_FAILURE, EXIT_OK, CliError, plural, require_at_least_one

if TYPE_CHECKING:
    from smsgw.scheduler.number_files import InvalidLine
    from smsgw.scheduler.policy_store import SqlitePolicyFacts


def add_dnc(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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

    from smsgw.scheduler.number_files import InvalidLine

    require_at_least_one(args.batch_size, "--batch-size")
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
        f"{args.file}: {plural(counts['numbers'], 'number')}, {added} new on the register, "
        f"{counts['numbers'] - added} already on it or repeated, {plural(counts['invalid'], 'invalid line')}"
    )
    return EXIT_FAILURE if counts["invalid"] else EXIT_OK


@contextlib.contextmanager
def _dnc_source(path: str, default_country_code: str) -> Iterator[Iterator[str | InvalidLine]]:
    """The numbers of a CSV file (its delimiter sniffed) or of an Excel workbook's first sheet, as read."""
    from smsgw.scheduler.number_files import read_number_file

    try:
        with open(path, "rb") as file, read_number_file(file, default_country_code) as numbered:
            yield (item for _, item in numbered)
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or exc}") from None


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
