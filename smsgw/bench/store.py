"""Store benchmark: group-commit acceptance vs a bare executemany + commit baseline, due-pick rate, and (with
`--scheduled N`) restart time and RSS of a process that opens a store holding N scheduled messages.

    python -m smsgw.bench store [--json] [--scheduled 1000000]

Both sides write the same rows (message, segment, ledger charge, balance) with the same `synchronous` setting
to a file in the same directory. The baseline commits as often as the submitters would without group commit:
once per message for 1 submitter, once per 50 messages for 50 (the best case, as if the 50 were batched for
free); ours commits whatever the writer finds pending.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from smsgw.config import StoreConfig
from smsgw.scheduler.ids import MessageIdGenerator
from smsgw.scheduler.migrations import migrate
from smsgw.scheduler.model import Address, NewMessage, NewSegment
from smsgw.scheduler.store import open_store
from smsgw.scheduler.states import State

T0 = 1_780_000_000_000  # a fixed epoch-ms moment; the benchmark never waits on wall time
PRICE = 10_000


def _message(message_id: str, start_ms: int = T0) -> NewMessage:
    return NewMessage(
        message_id=message_id,
        dest_index=0,
        account="bench",
        service_type="",
        source=Address("BENCH", 5, 0),
        destination=Address("441234567890", 1, 1),
        route="default",
        modem_group="default",
        esm_class=0,
        registered_delivery=1,
        data_coding=0,
        flash=False,
        gateway_split=False,
        text="benchmark message text",
        submitted_ms=T0,
        start_ms=start_ms,
        expires_ms=start_ms + 7_200_000,
        price_per_segment_micro=PRICE,
        segments=(NewSegment(0, b"benchmark message text", b""),),
    )


async def _group_commit(path: Path, submitters: int, total: int, synchronous: str) -> tuple[float, float]:
    """Accepted messages/s through `MessageStore.accept`, and operations per commit."""
    ids = MessageIdGenerator()
    async with open_store(StoreConfig(path=str(path), synchronous=synchronous)) as store:
        await store.topup("bench", 10**15, T0)
        batches_before = store.commits()
        per_task = total // submitters

        async def submit() -> None:
            for _ in range(per_task):
                (ok,) = await store.accept([_message(ids.next(T0))])
                assert ok

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(submitters):
                nursery.start_soon(submit)
        elapsed = time.perf_counter() - start
        commits = store.commits() - batches_before
    return per_task * submitters / elapsed, per_task * submitters / max(1, commits)


def _baseline(path: Path, batch: int, total: int, synchronous: str) -> float:
    """The same rows with executemany, one commit per `batch` messages."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute(f"PRAGMA synchronous = {synchronous}")
    migrate(connection)
    ids = MessageIdGenerator()
    message = _message("")
    start = time.perf_counter()
    for first in range(0, total, batch):
        count = min(batch, total - first)
        rowids = range(first + 1, first + count + 1)
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO messages (id, message_id, account, source_addr, source_addr_ton, source_addr_npi,"
            " destination_addr, dest_addr_ton, dest_addr_npi, route, modem_group, esm_class, registered_delivery,"
            " data_coding, flash, gateway_split, text, submitted_at, start_at, expires_at, state, segment_count,"
            " charged) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (r, ids.next(T0), "bench", "BENCH", 5, 0, "441234567890", 1, 1, "default", "default", 0, 1, 0, 0,
                 0, message.text, T0, T0, T0 + 7_200_000, int(State.ACCEPTED), 1, PRICE)
                for r in rowids
            ],
        )
        connection.executemany(
            "INSERT INTO segments (message, seq, destination, data_coding, udh, user_data, state, due_at, charge)"
            " VALUES (?,0,?,0,x'',?,?,?,?)",
            [(r, "441234567890", b"benchmark message text", int(State.ACCEPTED), T0, PRICE) for r in rowids],
        )
        connection.executemany(
            "INSERT INTO ledger (account, at, kind, amount, balance_after, message_id) VALUES (?,?,?,?,?,?)",
            [("bench", T0, "charge", -PRICE, 0, None) for _ in rowids],
        )
        connection.execute(
            "INSERT INTO accounts (name, balance) VALUES ('bench', ?)"
            " ON CONFLICT (name) DO UPDATE SET balance = balance + excluded.balance",
            (-PRICE * count,),
        )
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    connection.close()
    return total / elapsed


async def _pick_rate(path: Path, due: int, limit: int) -> float:
    """Segments handed off per second by `claim_due` (each claim is one committed transaction)."""
    ids = MessageIdGenerator()
    async with open_store(StoreConfig(path=str(path), synchronous="FULL")) as store:
        batch = [_message(ids.next(T0)) for _ in range(500)]
        for _ in range(due // 500):
            await store.accept([dataclasses.replace(m, message_id=ids.next(T0), price_per_segment_micro=0)
                                for m in batch])
        start = time.perf_counter()
        picked = 0
        while handoffs := await store.claim_due(T0, limit):
            picked += len(handoffs)
        return picked / (time.perf_counter() - start)


def _generate_scheduled(path: Path, count: int) -> float:
    """`count` messages scheduled over the next year, written straight into the schema; returns seconds taken."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = OFF")
    migrate(connection)
    start = time.perf_counter()
    step = 50_000
    year_ms = 365 * 24 * 3600 * 1000
    ids = MessageIdGenerator()
    for first in range(0, count, step):
        connection.execute("BEGIN")
        n = min(step, count - first)
        starts = [T0 + 60_000 + ((first + i) * 7919 % count) * (year_ms // count) for i in range(n)]
        connection.executemany(
            "INSERT INTO messages (id, message_id, account, source_addr, source_addr_ton, source_addr_npi,"
            " destination_addr, dest_addr_ton, dest_addr_npi, route, modem_group, esm_class, registered_delivery,"
            " data_coding, flash, gateway_split, text, submitted_at, start_at, expires_at, state, segment_count)"
            " VALUES (?,?,'bench','BENCH',5,0,'441234567890',1,1,'default','default',0,1,0,0,0,'scheduled',?,?,?,?,1)",
            [(first + i + 1, ids.next(T0), T0, due, due + 7_200_000, int(State.SCHEDULED))
             for i, due in enumerate(starts)],
        )
        connection.executemany(
            "INSERT INTO segments (message, seq, destination, data_coding, udh, user_data, state, due_at)"
            " VALUES (?,0,'441234567890',0,x'',x'7363686564756c6564',?,?)",
            [(first + i + 1, int(State.SCHEDULED), due) for i, due in enumerate(starts)],
        )
        connection.execute("COMMIT")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return time.perf_counter() - start


async def _restart_probe(path: str) -> dict[str, float]:
    """Run in a fresh process: open (migrate + recover) a big store, find and claim due work, report RSS."""
    start = time.perf_counter()
    async with open_store(StoreConfig(path=str(path), synchronous="FULL")) as store:
        recovery = await store.recover(T0)
        next_due = await store.next_due_ms()
        restart_s = time.perf_counter() - start
        assert next_due is not None
        # Walk the front of the schedule as the dispatcher does: next due time, then claim what is due by then.
        picked = 0
        pick_start = time.perf_counter()
        while picked < 5_000:
            due = await store.next_due_ms()
            if due is None:
                break
            picked += len(await store.claim_due(due + 600_000, 64))
        pick_rate = picked / (time.perf_counter() - pick_start)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"restart_s": restart_s, "rss_mb": rss_mb, "pick_per_s": pick_rate,
            "open_segments": float(recovery.open_segments)}


def _machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} x {model}, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m smsgw.bench store")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--synchronous", default="FULL", choices=["NORMAL", "FULL"])
    parser.add_argument("--messages", type=int, default=5_000, help="per concurrency level (1 submitter: a fifth)")
    parser.add_argument("--scheduled", type=int, default=0, help="also measure restart/RSS with N scheduled")
    parser.add_argument("--restart-probe", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--dir", default=None, help="where the database files go (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.restart_probe:
        print(json.dumps(trio.run(_restart_probe, args.restart_probe)))
        return 0
    results: dict[str, Any] = {"machine": _machine(), "synchronous": args.synchronous}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        for submitters in (1, 50):
            total = args.messages // 5 if submitters == 1 else args.messages
            ours, per_commit = trio.run(_group_commit, directory / f"ours{submitters}.db", submitters, total,
                                        args.synchronous)
            baseline = _baseline(directory / f"base{submitters}.db", submitters, total, args.synchronous)
            results[f"submitters_{submitters}"] = {
                "messages": total,
                "group_commit_per_s": round(ours),
                "messages_per_commit": round(per_commit, 1),
                "baseline_per_s": round(baseline),
                "ratio": round(ours / baseline, 2),
            }
        results["due_pick_per_s"] = round(trio.run(_pick_rate, directory / "pick.db", 10_000, 64))
        if args.scheduled:
            big = directory / "scheduled.db"
            generate_s = _generate_scheduled(big, args.scheduled)
            probe = subprocess.run(
                [sys.executable, "-m", "smsgw.bench", "store", "--restart-probe", str(big)],
                check=True, capture_output=True, text=True,
            )
            measured = json.loads(probe.stdout)
            results["scheduled"] = {
                "messages": args.scheduled,
                "generate_s": round(generate_s, 1),
                "restart_s": round(measured["restart_s"], 3),
                "rss_mb": round(measured["rss_mb"], 1),
                "due_pick_per_s": round(measured["pick_per_s"]),
                "db_mb": round(big.stat().st_size / 2**20),
            }
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"store benchmark  machine: {results['machine']}  synchronous={args.synchronous}")
    print(f"{'submitters':>10} {'messages':>9} {'group commit/s':>15} {'msgs/commit':>12} {'baseline/s':>11} {'ratio':>6}")
    for submitters in (1, 50):
        row = results[f"submitters_{submitters}"]
        print(f"{submitters:>10} {row['messages']:>9} {row['group_commit_per_s']:>15} "
              f"{row['messages_per_commit']:>12} {row['baseline_per_s']:>11} {row['ratio']:>6}")
    print(f"due-pick rate (claim_due, 64 per transaction): {results['due_pick_per_s']} segments/s")
    if "scheduled" in results:
        row = results["scheduled"]
        print(f"{row['messages']} scheduled messages ({row['db_mb']} MB, generated in {row['generate_s']} s): "
              f"restart {row['restart_s']} s, RSS {row['rss_mb']} MB, due pick {row['due_pick_per_s']}/s")
    return 0
