"""What is particular to the SQLite engine: its group-commit writer, the rows in its file, its audit rows and
its migrations. The behaviour every engine shares is the contract suite, test_store.py."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest
import trio
import trio.testing

from smsgw.config import StoreConfig
from smsgw.scheduler.dialect import Conflict
from smsgw.scheduler.migrations import MIGRATIONS, migrate
from smsgw.scheduler.model import NewSegment
from smsgw.scheduler.sqlite_store import SqliteStore, open_store
from tests.scheduler.test_store import T0, new_message


@pytest.fixture
async def sqlite_store(tmp_path: Path, store_config: StoreConfig) -> AsyncIterator[SqliteStore]:
    async with open_store(tmp_path / "store.db", store_config) as opened:
        yield opened


async def test_a_failed_interrupted_hand_off_leaves_its_audit_row(tmp_path: Path, store_config: StoreConfig) -> None:
    path = tmp_path / "f.db"
    async with open_store(path, store_config) as store:
        await store.accept([new_message()])
        await store.claim_due(T0, 10)
    async with open_store(path, store_config) as store:
        await store.recover(T0 + 5, fail_interrupted=True)
    with sqlite3.connect(path) as connection:
        (detail,) = connection.execute("SELECT detail FROM audit WHERE event = 'handoff_interrupted'").fetchone()
    assert detail == "segment=0 resend=0 error_code=807"


async def test_write_first_goes_into_the_next_commit_ahead_of_queued_writes(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    """An acknowledgement's deletion is not held up behind a queue longer than one batch (issue 13)."""
    ran: list[str] = []
    held, release = trio.Event(), threading.Event()

    def hold(connection: sqlite3.Connection) -> None:
        trio.from_thread.run_sync(held.set)
        release.wait()

    def plain(name: str) -> Callable[[sqlite3.Connection], None]:
        return lambda connection: ran.append(name)

    def first(connection: sqlite3.Connection, items: list[str]) -> list[None]:
        ran.extend(items)
        return [None for _ in items]

    async with open_store(tmp_path / "first.db", replace(store_config, writer_max_batch=2)) as store:
        writer = store.writer
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.write, hold)
            await held.wait()
            for name in ("w1", "w2", "w3"):
                nursery.start_soon(writer.write, plain(name))
                await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(writer.write_first, first, "ack")
            await trio.testing.wait_all_tasks_blocked()
            batches = writer.batches
            release.set()
        # The batch after the held one: the acknowledgement and one queued write (max_batch 2).
        assert ran == ["w1", "ack", "w2", "w3"] and writer.batches - batches == 3


async def test_a_batch_of_only_writes_that_need_no_fsync_commits_at_synchronous_normal(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    """Outbox claims and deletions (`durable=False`) alone in a batch commit without an fsync of their own; a batch
    with any other write commits at the configured level, which the connection is back at after each batch."""
    held, release = trio.Event(), threading.Event()

    def hold(connection: sqlite3.Connection) -> None:
        trio.from_thread.run_sync(held.set)
        release.wait()

    def level(connection: sqlite3.Connection, items: list[str]) -> list[int]:
        return [int(connection.execute("PRAGMA synchronous").fetchone()[0]) for _ in items]

    normal, full = 1, 2
    levels: list[int] = []
    async with open_store(tmp_path / "full.db", replace(store_config, synchronous="FULL")) as store:
        writer = store.writer

        async def beside(durable: bool) -> None:
            levels.append(await writer.write_first(level, "mixed", durable=durable))

        assert await writer.write_first(level, "claim", durable=False) == normal
        assert await writer.write_first(level, "ack") == full
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.write, hold)
            await held.wait()
            nursery.start_soon(beside, False)
            nursery.start_soon(beside, True)
            await trio.testing.wait_all_tasks_blocked()
            release.set()
        assert levels == [full, full] and writer.relaxed_batches == 1
        assert await writer.write(lambda c: int(c.execute("PRAGMA synchronous").fetchone()[0])) == full
    # Configured NORMAL already: nothing to relax.
    async with open_store(tmp_path / "normal.db", store_config) as store:
        assert await store.writer.write_first(level, "claim", durable=False) == normal
        assert store.writer.relaxed_batches == 0


async def test_a_batch_that_lost_a_conflict_runs_again_whole(sqlite_store: SqliteStore) -> None:
    """A deadlock with another node's writer (PostgreSQL) is the batch's, not one op's refusal: the batch is rolled
    back and run again, and its callers see the second run's results."""
    runs: list[str] = []

    def insert(connection: sqlite3.Connection) -> int:
        connection.execute("INSERT INTO audit (at, event, detail) VALUES (1, 'try', '')")
        if not runs:
            runs.append("conflict")
            raise Conflict("deadlock detected")
        runs.append("ok")
        return int(connection.execute("SELECT COUNT(*) FROM audit WHERE event = 'try'").fetchone()[0])

    assert await sqlite_store.writer.write(insert) == 1  # the first run's row was rolled back with it
    assert runs == ["conflict", "ok"]


async def test_a_large_batch_stores_every_message_with_its_own_segments_in_order(sqlite_store: SqliteStore) -> None:
    # 173 messages with 1-3 segments: inserted in multi-row chunks of several sizes, none lost or crossed over.
    messages = [
        replace(new_message(destination=f"4479110{i:05d}", segments=1 + i % 3),
                segments=tuple(NewSegment(0, f"{i}/{seq}".encode(), b"") for seq in range(1 + i % 3)))
        for i in range(173)
    ]
    assert await sqlite_store.accept(messages) == (True,) * 173
    with sqlite3.connect(sqlite_store.path) as connection:
        stored = connection.execute(
            "SELECT m.message_id, m.destination_addr, m.segment_count, s.seq, s.destination, s.user_data"
            " FROM messages m JOIN segments s ON s.message = m.id ORDER BY m.id, s.seq"
        ).fetchall()
    assert stored == [
        (m.message_id, m.destination.addr, len(m.segments), seq, m.destination.addr, segment.user_data)
        for m in messages
        for seq, segment in enumerate(m.segments)
    ]


def test_ledger_migration_keeps_rows_and_allows_transfers(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
    insert = "INSERT INTO ledger (account, at, kind, amount, balance_after) VALUES (?, 1, ?, 5, 5)"
    connection.execute(insert, ("acme", "topup"))
    with pytest.raises(sqlite3.IntegrityError):
        connection.execute(insert, ("a", "transfer_in"))
    assert migrate(connection) == len(MIGRATIONS)
    assert connection.execute("SELECT id, account, kind, amount FROM ledger").fetchall() == [(1, "acme", "topup", 5)]
    connection.execute(insert, ("a", "transfer_in"))
    with pytest.raises(sqlite3.IntegrityError):
        connection.execute(insert, ("a", "gift"))
    assert connection.execute("SELECT name FROM sqlite_master WHERE name = 'ledger_account'").fetchone() is not None
    connection.close()


def test_outbox_migration_keeps_items_and_stops_reusing_their_ids(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "previous.db", isolation_level=None)
    before = len(MIGRATIONS) - 1
    for number, script in enumerate(MIGRATIONS[:before], start=1):
        connection.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    insert = "INSERT INTO outbox (account, kind, record, created_at) VALUES ('acme', 'mo', ?, 1)"
    for record in ("first", "second"):
        connection.execute(insert, (record,))
    assert migrate(connection) == len(MIGRATIONS)
    assert connection.execute("SELECT id, record FROM outbox").fetchall() == [(1, "first"), (2, "second")]
    connection.execute("DELETE FROM outbox WHERE id = 2")
    connection.execute(insert, ("third",))
    assert connection.execute("SELECT id FROM outbox WHERE record = 'third'").fetchone() == (3,)
    assert connection.execute("SELECT name FROM sqlite_master WHERE name = 'outbox_account'").fetchone() is not None
    connection.close()
