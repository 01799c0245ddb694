"""`smsgw history export` and `smsgw resend`: an account's messages of a period."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from smsgw.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    CliError,
    add_config_store_arguments,
    add_store_arguments,
    load_config_and_store,
    silence_stdout,
    with_store,
)

if TYPE_CHECKING:
    from smsgw.scheduler.store import MessageStore


def add_history(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    add_store_arguments(export)
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
                silence_stdout()
                return EXIT_OK
        else:
            try:
                with open(args.output, "w", encoding="utf-8", newline="") as out:
                    count = write_history_csv(rows, out)
            except OSError as exc:
                raise CliError(f"{args.output}: {exc.strerror or exc}") from None
        print(f"exported {count} messages", file=sys.stderr)
        return EXIT_OK

    return with_store(args, action)


def add_resend(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    add_config_store_arguments(resend)
    resend.set_defaults(handler=_cmd_resend)


def _cmd_resend(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from smsgw.scheduler.resend import resend_unpaid
    from smsgw.scheduler.timing import to_ms

    start = _parse_when(args.start, "--from", end=False)
    end = _parse_when(args.end, "--to", end=True)
    if end <= start:
        raise CliError("--to must be after --from")
    config = load_config_and_store(args)
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

    return with_store(args, action)
