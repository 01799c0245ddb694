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
from smsgw.scheduler import writer as writer_module
from smsgw.scheduler.sqlite import accepting
from smsgw.scheduler.model import Address, NewSegment
from smsgw.scheduler.states import State
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
    await sqlite_store.writer.expanded()  # uncharged: committed as an intake row first
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


def _rows(path: str | Path, table: str) -> int:
    with sqlite3.connect(path) as connection:
        (count,) = connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    return int(count)


async def test_uncharged_messages_are_acknowledged_after_an_intake_row_and_read_in_full(
    sqlite_store: SqliteStore,
) -> None:
    messages = [new_message(destination=f"44791100000{i}") for i in range(3)]
    assert await sqlite_store.accept(messages) == (True,) * 3
    # Acknowledged: committed as one compact row, the full rows not written yet.
    assert (_rows(sqlite_store.path, "intake"), _rows(sqlite_store.path, "messages")) == (1, 0)
    # The dispatcher learns when they are due without having them written in full (its claim does that).
    assert await sqlite_store.next_due_ms() == T0 and _rows(sqlite_store.path, "intake") == 1
    # A read expands the intake first, so it finds the message; the intake row is gone with it.
    (found,) = await sqlite_store.find("acme", messages[1].message_id)
    assert found.destination.addr == "447911000001"
    assert (_rows(sqlite_store.path, "intake"), _rows(sqlite_store.path, "messages")) == (0, 3)
    assert _rows(sqlite_store.path, "segments") == 3


async def test_over_the_intake_limit_messages_are_stored_in_full_at_once(
    sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accepting, "INTAKE_LIMIT", 2)
    for i in range(3):
        await sqlite_store.accept([new_message(destination=f"44791100000{i}")])
    # Two wait in the intake (up to the limit); the third is stored in full, and nothing else is expanded for it.
    assert (_rows(sqlite_store.path, "intake"), _rows(sqlite_store.path, "messages")) == (2, 1)


async def test_a_charged_message_is_stored_in_full_at_once(sqlite_store: SqliteStore) -> None:
    await sqlite_store.topup("acme", 100, T0)
    assert await sqlite_store.accept([new_message(price=10)]) == (True,)
    assert (_rows(sqlite_store.path, "intake"), _rows(sqlite_store.path, "messages")) == (0, 1)


async def test_any_other_write_expands_the_intake_first(sqlite_store: SqliteStore) -> None:
    message = new_message()
    await sqlite_store.accept([message])
    assert (await sqlite_store.claim_due(T0, 10))[0].segment_id == f"{message.message_id}.0.0"
    assert _rows(sqlite_store.path, "intake") == 0


async def test_an_intake_row_left_by_a_crash_is_stored_in_full_when_the_store_opens(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    path = tmp_path / "kill.db"
    message = new_message()
    async with open_store(path, store_config) as store:
        await store.accept([message])
    # Closing does not expand it: the store stopped as a kill -9 would leave it, the compact row committed.
    assert (_rows(path, "intake"), _rows(path, "messages")) == (1, 0)
    async with open_store(path, store_config) as store:
        assert (_rows(path, "intake"), _rows(path, "messages")) == (0, 1)
        (found,) = await store.find("acme", message.message_id)
        assert found.state == State.ACCEPTED


async def test_a_quiet_writer_expands_the_intake_on_its_own(sqlite_store: SqliteStore) -> None:
    await sqlite_store.accept([new_message(start_ms=T0 + 3_600_000)])
    with trio.fail_after(30):  # a bound on a hang, not a timing assertion
        while _rows(sqlite_store.path, "intake"):
            await trio.sleep(writer_module.EXPAND_WHEN_QUIET_S)
    assert _rows(sqlite_store.path, "messages") == 1 and sqlite_store.waiting() == 0


async def test_an_expanded_message_whose_id_was_taken_is_kept_under_a_new_one(
    sqlite_store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    await sqlite_store.topup("acme", 100, T0)
    existing = new_message(price=1)  # stored in full at once
    await sqlite_store.accept([existing])
    other = new_message()
    duplicate = replace(existing, destination=Address("447911000002"), price_per_segment_micro=0)
    assert await sqlite_store.accept([duplicate]) == (True,)  # the id is checked only when it is expanded
    assert await sqlite_store.accept([other]) == (True,)
    assert len(await sqlite_store.find("acme", other.message_id)) == 1
    assert [m.destination.addr for m in await sqlite_store.find("acme", existing.message_id)] == ["447911000001"]
    with sqlite3.connect(sqlite_store.path) as connection:
        renamed = connection.execute(
            "SELECT message_id FROM messages WHERE destination_addr = '447911000002'"
        ).fetchall()
    assert len(renamed) == 1 and renamed[0][0] != existing.message_id
    assert f"new_message_id={renamed[0][0]}" in caplog.text


async def test_a_store_holding_intake_rows_of_another_layout_refuses_to_open(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    path = tmp_path / "layout.db"
    async with open_store(path, store_config) as store:
        await store.accept([new_message()])
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE intake SET format = 99")
    with pytest.raises(sqlite3.DatabaseError, match="intake rows of layout 99, this smsgw reads 1"):
        async with open_store(path, store_config):
            pass
    assert _rows(path, "intake") == 1  # kept for the smsgw that wrote it


class _Backlog:
    def __init__(self, waiting: int) -> None:
        self.waiting_units = waiting
        self.expanded: list[int | None] = []

    def waiting(self) -> int:
        return self.waiting_units

    def expand(self, connection: sqlite3.Connection, limit: int | None) -> None:
        self.expanded.append(limit)


async def test_the_writer_expands_all_before_other_writes_and_nothing_before_compact_ones(
    sqlite_store: SqliteStore,
) -> None:
    writer = sqlite_store.writer

    def compact(connection: sqlite3.Connection, items: list[int]) -> list[int]:
        return items

    for waiting, write, expected in [
        (5, "compact", []),  # a burst's compact writes: nothing expanded beside them
        (5, "other", [None]),  # any other write may read any row: all of it first
        (0, "other", []),
    ]:
        backlog = _Backlog(waiting)
        writer.keep_backlog(backlog)
        if write == "compact":
            await writer.write_combined(compact, 1, reads_backlog=False)
        else:
            await writer.write(lambda connection: None)
        assert backlog.expanded == expected, (waiting, write)
    writer.keep_backlog(sqlite_store)


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
