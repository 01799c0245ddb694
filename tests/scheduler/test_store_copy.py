"""`smsgw store copy --from sqlite:PATH --to postgresql://...`: a single box's store moved into PostgreSQL."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio

from smsgw import cli
from smsgw.config import StoreConfig
from smsgw.modem.seams import IncomingSms
from smsgw.scheduler.migrations import migrate
from smsgw.scheduler.model import Claimant
from smsgw.scheduler.postgres.connection import PgConnection
from smsgw.scheduler.postgres.copy import CopyRefused, copy_store
from smsgw.scheduler.store import open_store
from smsgw.scheduler.timing import from_ms
from tests.scheduler.conftest import outbox_items
from tests.scheduler.test_store import T0, new_message


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def _single_box(path: Path) -> str:
    """A store with something in every kind of state: a balance and its ledger, a message with one segment on a
    modem and one due, an MO waiting in the outbox. The message's id."""
    async with open_store(StoreConfig(path=str(path), synchronous="NORMAL")) as store:
        await store.topup("acme", 1_000_000, T0)
        message = new_message(segments=2, price=1000)
        await store.accept([message])
        await store.claim_due(T0, 1)
        sms = IncomingSms("m1", "447700900001", "447700900555", "hello box", 0, from_ms(T0))
        await store.store_mo(sms, "acme", "447700900001", T0)
        return message.message_id


def _sqlite_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with contextlib.closing(sqlite3.connect(path)) as c:
        names = [n for (n,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                          " AND name NOT LIKE 'sqlite_%'")]
        return {name: sorted(c.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr) for name in names}


def _postgres_tables(url: str, names: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as c:
        return {name: sorted((tuple(row) for row in c.execute(f'SELECT * FROM "{name}"')), key=repr) for name in names}


async def test_a_sqlite_store_is_copied_whole_and_the_nodes_carry_on_from_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, postgres_url: str
) -> None:
    path = tmp_path / "box.db"
    message_id = await _single_box(path)
    code, out, err = run(capsys, "store", "copy", "--from", f"sqlite:{path}", "--to", postgres_url)
    assert err == "" and code == 0
    assert out.startswith("store copied schema_version=") and " messages=1 " in out

    tables = _sqlite_tables(path)
    assert all(tables[name] for name in ("messages", "segments", "outbox", "ledger"))
    assert _postgres_tables(postgres_url, list(tables)) == tables  # every row of every table, as it was

    async with open_store(StoreConfig(url=postgres_url)) as store:
        (copied,) = await store.find("acme", message_id)
        assert copied.account == "acme"
        assert [item.record for item in await outbox_items(store, "acme")] != []
        # New rows continue after the copied ids (the sequences were moved on), and the box's hand-off, which
        # names no node, is the first node's to recover.
        assert await store.accept([new_message()]) == (True,)
        assert (await store.recover(T0 + 1, claimant=Claimant("n1", frozenset({"default"}), 1000))) \
            .interrupted_handoffs == 1

    # A second copy would merge two stores: refused, nothing written.
    code, _, err = run(capsys, "store", "copy", "--from", f"sqlite:{path}", "--to", postgres_url)
    assert code == 1 and "already has rows" in err and "nothing copied" in err


def test_a_missing_store_or_one_of_another_version_is_not_copied(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, postgres_url: str
) -> None:
    code, _, err = run(capsys, "store", "copy", "--from", f"sqlite:{tmp_path / 'none.db'}", "--to", postgres_url)
    assert code == 2 and f"no SQLite store at {tmp_path / 'none.db'}" in err  # the path named, bad input
    assert not (tmp_path / "none.db").exists()
    old = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(old)) as c:
        c.execute("PRAGMA user_version = 3")
    code, _, err = run(capsys, "store", "copy", "--from", f"sqlite:{old}", "--to", postgres_url)
    assert code == 1 and "schema version 3" in err and "smsgw store migrate" in err
    code, _, err = run(capsys, "store", "copy", "--from", str(old), "--to", postgres_url)
    assert code != 0 and "--from must be sqlite:PATH" in err


def test_messages_a_killed_gateway_left_in_its_intake_are_copied_in_full(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, postgres_url: str
) -> None:
    # Not a Trio test: the command runs Trio itself (to open the store), as from a shell.
    path = tmp_path / "killed.db"
    message = new_message()

    async def accept() -> None:
        async with open_store(StoreConfig(path=str(path))) as store:
            await store.accept([message])  # uncharged: an intake row, left as a kill -9 would leave it

    async def find() -> int:
        async with open_store(StoreConfig(url=postgres_url)) as copied:
            return len(await copied.find("acme", message.message_id))

    trio.run(accept)
    code, out, err = run(capsys, "store", "copy", "--from", f"sqlite:{path}", "--to", postgres_url)
    assert err == "" and code == 0 and " messages=1 " in out and "intake=" not in out
    assert trio.run(find) == 1


def test_a_store_whose_intake_holds_messages_is_not_copied_as_it_is(
    tmp_path: Path, postgres_url: str
) -> None:
    """`copy_store` itself, on a store a running gateway still writes its intake to (the command writes a killed
    one's in full first)."""
    path = tmp_path / "live.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as c:
        migrate(c)
        c.execute("INSERT INTO intake (messages, due_at, format, batch) VALUES (3, 0, 1, x'')")
        target = PgConnection(postgres_url)
        try:
            with pytest.raises(CopyRefused, match="holds 3 accepted messages not yet written in full"):
                copy_store(c, target)
        finally:
            target.close()
    assert _postgres_tables(postgres_url, ["messages"]) == {"messages": []}
