"""`smsgw callbacks list` and `smsgw callbacks retry`: the MO HTTP callbacks in the store."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Final

from smsgw.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    CliError,
    add_store_arguments,
    plural,
    print_table,
    require_at_least_one,
    with_store,
)

if TYPE_CHECKING:
    from smsgw.scheduler.store import MessageStore


def add_callbacks(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    callbacks = commands.add_parser("callbacks", help="MO HTTP callbacks: list pending and failed, retry failed")
    actions = callbacks.add_subparsers(dest="callbacks_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="stored callbacks, oldest first (delivered ones are not kept)")
    listing.add_argument("--state", choices=("pending", "failed"), help="only callbacks in this state")
    listing.add_argument("--account", metavar="SYSTEM_ID", help="only this account's callbacks")
    listing.add_argument("--limit", type=int, default=100, metavar="N")
    add_store_arguments(listing)
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
    add_store_arguments(retry)
    retry.set_defaults(handler=_cmd_callbacks_retry)


def _cmd_callbacks_list(args: argparse.Namespace) -> int:
    from smsgw.scheduler.timing import from_ms

    require_at_least_one(args.limit, "--limit")

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
        print_table(rows)
        return EXIT_OK

    return with_store(args, action)


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
        print(f"requeued {plural(count, 'failed callback')}")
        return EXIT_OK if count else EXIT_FAILURE

    return with_store(args, action)


_EVERY_ROW: Final = 2**62  # a LIMIT that is no limit
