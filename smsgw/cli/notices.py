"""`smsgw notices list`: the notices the gateway sent handsets."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from smsgw.cli.common import EXIT_OK, CliError, add_store_arguments, print_table, require_at_least_one, with_store

if TYPE_CHECKING:
    from smsgw.scheduler.store import MessageStore


def add_notices(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    add_store_arguments(listing)
    listing.set_defaults(handler=_cmd_notices_list)


def _cmd_notices_list(args: argparse.Namespace) -> int:
    from smsgw.numbers import InvalidNumber, normalise_number
    from smsgw.scheduler.states import State
    from smsgw.scheduler.timing import from_ms

    require_at_least_one(args.limit, "--limit")
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
        print_table(rows)
        return EXIT_OK

    return with_store(args, action)
