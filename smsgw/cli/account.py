"""`smsgw account ...`: prepaid balances, top-ups, transfers, the ledger, password hashes."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from smsgw.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    CliError,
    Refused,
    add_config_store_arguments,
    add_store_arguments,
    load_config_and_store,
    require_at_least_one,
    with_store,
)

if TYPE_CHECKING:
    from smsgw.config import Config
    from smsgw.scheduler.store import MessageStore


def add_account(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    account = commands.add_parser("account", help="prepaid balances: show, top up, list the ledger")
    actions = account.add_subparsers(dest="account_command", metavar="ACTION", required=True)
    balance = actions.add_parser("balance", help="print an account's balance")
    balance.add_argument("account", metavar="SYSTEM_ID")
    add_store_arguments(balance)
    balance.set_defaults(handler=_cmd_account_balance)
    topup = actions.add_parser(
        "topup", help="credit an account (a negative amount debits it, as a correction); a ledger row either way"
    )
    topup.add_argument("account", metavar="SYSTEM_ID")
    topup.add_argument("amount", metavar="AMOUNT", help="decimal, in the currency of route prices (e.g. 25.50)")
    topup.add_argument("--note", default="", help="kept in the ledger row")
    add_store_arguments(topup)
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
    add_config_store_arguments(transfer)
    transfer.set_defaults(handler=_cmd_account_transfer)
    ledger = actions.add_parser("ledger", help="the account's latest ledger rows, oldest first")
    ledger.add_argument("account", metavar="SYSTEM_ID")
    ledger.add_argument("--limit", type=int, default=50, metavar="N")
    add_store_arguments(ledger)
    ledger.set_defaults(handler=_cmd_account_ledger)
    hash_password = actions.add_parser(
        "hash-password",
        help="read a password without echo and print the account's password_hash line for the config",
        description="At most 8 characters (SMPP 3.4 carries no longer password). Reads one line from stdin when "
        "it is not a terminal. Paste the printed line into the account's [[accounts]] table.",
    )
    hash_password.set_defaults(handler=_cmd_account_hash_password)
    _add_api_key(actions)


def _add_api_key(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    api_key = actions.add_parser(
        "api-key",
        help="REST API keys of an account: create (printed once), list, revoke",
        description="Keys are kept hashed: the key is printed once by create and cannot be shown again.",
    )
    key_actions = api_key.add_subparsers(dest="api_key_command", metavar="ACTION", required=True)
    create = key_actions.add_parser("create", help="make a key for the account and print it (only this once)")
    create.add_argument("account", metavar="SYSTEM_ID")
    create.add_argument("--name", default="", help="what the key is for, shown by list")
    listing = key_actions.add_parser("list", help="id, account, name, created and last used of each key")
    listing.add_argument("account", metavar="SYSTEM_ID", nargs="?", help="only this account's keys")
    revoke = key_actions.add_parser("revoke", help="delete a key: requests with it are refused at once")
    revoke.add_argument("key_id", metavar="ID", type=int)
    for parser in (create, listing, revoke):
        add_store_arguments(parser)
        parser.set_defaults(handler=_cmd_account_api_key)


def _cmd_account_api_key(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from smsgw.http.keys import new_api_key
    from smsgw.scheduler.timing import from_ms, to_ms

    config = _note_config(args)
    account = getattr(args, "account", None)
    if config is not None and account is not None and not any(a.system_id == account for a in config.accounts):
        raise CliError(f"no account {account!r} in {args.config}")
    now_ms = to_ms(datetime.now(UTC))

    async def action(store: MessageStore) -> int:
        if args.api_key_command == "create":
            key, key_hash = new_api_key()
            key_id = await store.api_key_add(args.account, args.name, key_hash, now_ms)
            # The key alone on stdout (KEY=$(smsgw account api-key create ...)); what it is on stderr.
            print(key)
            print(f"API key id {key_id} for {account}: shown this once, only its hash is kept", file=sys.stderr)
            return EXIT_OK
        if args.api_key_command == "revoke":
            revoked = await store.api_key_revoke(args.key_id, now_ms)
            if revoked is None:
                raise Refused(f"no API key with id {args.key_id}")
            print(f"revoked id {revoked.key_id} account {revoked.account} name {revoked.name!r}")
            return EXIT_OK
        print("id\taccount\tname\tcreated\tlast_used")
        for k in await store.api_keys(account):
            used = "never" if k.last_used_ms is None else from_ms(k.last_used_ms).isoformat(timespec="seconds")
            print(f"{k.key_id}\t{k.account}\t{k.name}\t{from_ms(k.created_ms).isoformat(timespec='seconds')}\t{used}")
        return EXIT_OK

    return with_store(args, action)


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
            raise Refused(f"no account {args.account!r} in {args.config}")
    elif not await store.ledger(args.account, 1):
        raise Refused(f"{args.account!r} has no ledger rows in {args.db}: unknown account (or never topped up)")


def _cmd_account_balance(args: argparse.Namespace) -> int:
    _note_config(args)

    async def action(store: MessageStore) -> int:
        await _check_account(store, args)
        print(f"{args.account} {_money(await store.balance(args.account), args)}")
        return EXIT_OK

    return with_store(args, action)


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

    return with_store(args, action)


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


def _cmd_account_transfer(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from smsgw.scheduler.model import InsufficientBalance
    from smsgw.scheduler.policy import check_transfer
    from smsgw.scheduler.routing import to_micro
    from smsgw.scheduler.timing import to_ms

    config = load_config_and_store(args)
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

    code = with_store(args, action)
    if refused:
        raise CliError(refused[0])
    return code


def _cmd_account_ledger(args: argparse.Namespace) -> int:
    from smsgw.scheduler.timing import from_ms

    require_at_least_one(args.limit, "--limit")
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

    return with_store(args, action)
