"""`smsgw store ...`: the store's schema. `migrate` creates or upgrades it, for SQLite (`[store] path`) or
PostgreSQL (`[store] url`); a gateway also migrates when it opens the store, so this is for doing it ahead of a
deployment, once for all nodes, and to see the version. `copy` moves a single box's SQLite store into PostgreSQL
(`smsgw.scheduler.postgres.copy`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys

from smsgw.cli.common import EXIT_FAILURE, EXIT_OK, CliError

_SQLITE = "sqlite:"


def add_store(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    store = commands.add_parser("store", help="the message store's schema")
    actions = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    migrate = actions.add_parser(
        "migrate",
        help="create the store's schema or bring it to this version's (SQLite at [store] path, or [store] url)",
    )
    migrate.add_argument("--config", required=True, metavar="FILE", help="the gateway config")
    migrate.set_defaults(handler=_cmd_store_migrate)
    copy = actions.add_parser(
        "copy",
        help="copy a SQLite store (its gateway stopped) into an empty PostgreSQL database, to run it on several nodes",
    )
    copy.add_argument("--from", dest="source", required=True, metavar=f"{_SQLITE}PATH", help="the SQLite store")
    copy.add_argument("--to", dest="target", required=True, metavar="postgresql://...",
                      help="the PostgreSQL database ([store] url of the nodes); migrated, must hold no rows")
    copy.set_defaults(handler=_cmd_store_copy)


def _cmd_store_copy(args: argparse.Namespace) -> int:
    import psycopg

    from smsgw.scheduler.postgres.connection import PgConnection
    from smsgw.scheduler.postgres.copy import CopyRefused, copy_store

    if not args.source.startswith(_SQLITE):
        raise CliError(f"--from must be {_SQLITE}PATH, not {args.source!r}")
    if not args.target.startswith(("postgresql://", "postgres://")):
        raise CliError(f"--to must be a postgresql:// URL, not {args.target!r}")
    path = args.source.removeprefix(_SQLITE)
    if not os.path.isfile(path):  # sqlite3 would only say "unable to open database file"
        raise CliError(f"no SQLite store at {path}")
    try:
        # mode=rw: a missing file is an error, not a new empty store copied as such.
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)) as source:
            _write_intake_in_full(source, path)
            target = PgConnection(args.target)
            try:
                copied = copy_store(source, target)
            finally:
                target.close()
    except (CopyRefused, sqlite3.Error, psycopg.Error) as exc:
        print(f"smsgw: error: {exc} (nothing copied)", file=sys.stderr)
        return EXIT_FAILURE
    tables = " ".join(f"{table}={n}" for table, n in copied.rows.items() if n)
    print(f"store copied schema_version={copied.version} rows={sum(copied.rows.values())} {tables}".rstrip())
    return EXIT_OK


def _write_intake_in_full(source: sqlite3.Connection, path: str) -> None:
    """What a killed gateway left in its store's intake (`smsgw.scheduler.sqlite.accepting`), written in full by
    opening the store, as a gateway does at start: PostgreSQL keeps no intake. Only for a store at this smsgw's
    schema version, which opening it leaves as it is (the copy refuses another)."""
    import trio

    from smsgw.config import StoreConfig
    from smsgw.scheduler.migrations import MIGRATIONS
    from smsgw.scheduler.store import open_store

    if source.execute("PRAGMA user_version").fetchone()[0] != len(MIGRATIONS):
        return
    if not source.execute("SELECT EXISTS (SELECT 1 FROM intake)").fetchone()[0]:
        return

    async def open_and_close() -> None:
        async with open_store(StoreConfig(path=path)):
            pass

    trio.run(open_and_close)


def _cmd_store_migrate(args: argparse.Namespace) -> int:
    from smsgw.config import ConfigError, load_config
    from smsgw.scheduler.migrations import SchemaTooNew
    from smsgw.scheduler.migrations import migrate as migrate_sqlite

    try:
        store = load_config(args.config).store
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    try:
        if store.url:
            from smsgw.scheduler.postgres.connection import PgConnection
            from smsgw.scheduler.postgres.schema import migrate as migrate_postgres

            connection = PgConnection(store.url)
            try:
                version = migrate_postgres(connection)
            finally:
                connection.close()
            where = "postgresql"
        else:
            with contextlib.closing(sqlite3.connect(store.path, isolation_level=None)) as sqlite:
                version = migrate_sqlite(sqlite)
            where = store.path
    except (SchemaTooNew, sqlite3.Error) as exc:
        print(f"smsgw: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"store schema version {version} ({where})")
    return EXIT_OK
