"""Portal benchmark: the Delivery results searches over a store of 1,000,000 stored messages of one account.

    python -m smsgw.bench portal [--messages 1000000] [--json]

The store is filled with executemany (not through SMPP: what is measured is the search, not the intake): the
messages of one account over the retention period (61 days), 90% delivered, 5% undeliverable (err 065), 5% expired
(err 070), to 100,000 numbers, plus another account's as many again. Each search is the portal's own call
(`smsgw.http.messages.search_page`, a page of 50 and whether there is a next), timed from the first call to its
answer through the open store, as the page handler awaits it; the goal is under 300 ms each.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import trio

from smsgw.bench.store import _machine
from smsgw.config import StoreConfig
from smsgw.http.messages import search_page
from smsgw.http.portal.messages import PAGE_ROWS
from smsgw.scheduler.migrations import migrate
from smsgw.scheduler.model import MessageFilter
from smsgw.scheduler.states import State
from smsgw.scheduler.store import open_store

T0: Final = 1_780_000_000_000
DAY_MS: Final = 86_400_000
DAYS: Final = 61
NUMBERS: Final = 100_000
GOAL_MS: Final = 300.0
RUNS: Final = 7
_BATCH: Final = 50_000


def _fill(path: Path, total: int) -> float:
    """`total` messages of account 'bench' spread over DAYS, and as many of 'other'; seconds it took."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = OFF")
    migrate(connection)
    rng = random.Random(18)
    step = DAYS * DAY_MS // total
    start = time.perf_counter()
    rowid = 0
    for account in ("bench", "other"):
        for first in range(0, total, _BATCH):
            rows = []
            for i in range(first, min(total, first + _BATCH)):
                rowid += 1
                roll = rng.random()
                state, error = ((State.DELIVERED, 0) if roll < 0.9 else (State.UNDELIVERABLE, 0x41)
                                if roll < 0.95 else (State.EXPIRED, 0x46))
                submitted = T0 + i * step
                rows.append((rowid, f"{rowid:016x}", account, "BENCH", 5, 0, f"4477{rng.randrange(NUMBERS):08d}", 1,
                             1, "default", "default", 0, 1, 0, 0, 0, "benchmark message text", submitted, submitted,
                             submitted + 7_200_000, int(state), submitted + 5_000, error, 1, 10_000))
            connection.execute("BEGIN")
            connection.executemany(
                "INSERT INTO messages (id, message_id, account, source_addr, source_addr_ton, source_addr_npi,"
                " destination_addr, dest_addr_ton, dest_addr_npi, route, modem_group, esm_class, registered_delivery,"
                " data_coding, flash, gateway_split, text, submitted_at, start_at, expires_at, state, final_at,"
                " error_code, segment_count, charged) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            connection.execute("COMMIT")
    connection.execute("ANALYZE")
    connection.close()
    return time.perf_counter() - start


SEARCHES: Final[dict[str, MessageFilter]] = {
    "last 7 days, any state": MessageFilter(T0 + (DAYS - 7) * DAY_MS, T0 + DAYS * DAY_MS),
    "whole retention, any state": MessageFilter(T0, T0 + DAYS * DAY_MS),
    "last 7 days, undeliverable": MessageFilter(T0 + (DAYS - 7) * DAY_MS, T0 + DAYS * DAY_MS,
                                                state=State.UNDELIVERABLE),
    "whole retention, error 070": MessageFilter(T0, T0 + DAYS * DAY_MS, error_code=0x46),
    "one day, one number": MessageFilter(T0 + 30 * DAY_MS, T0 + 31 * DAY_MS, number="447700012345"),
    "last 7 days, one number": MessageFilter(T0 + (DAYS - 7) * DAY_MS, T0 + DAYS * DAY_MS, number="447700012345"),
    "whole retention, one number": MessageFilter(T0, T0 + DAYS * DAY_MS, number="447700012345"),
    # Nothing matches: without an index of the filter's own, every message of the period would be read to find
    # that out (number, state and error code each have one: migration 9).
    "7 days, cancelled (none)": MessageFilter(T0 + (DAYS - 7) * DAY_MS, T0 + DAYS * DAY_MS, state=State.CANCELLED),
    "whole retention, cancelled (none)": MessageFilter(T0, T0 + DAYS * DAY_MS, state=State.CANCELLED),
    "7 days, error 999 (none)": MessageFilter(T0 + (DAYS - 7) * DAY_MS, T0 + DAYS * DAY_MS, error_code=999),
    "whole retention, error 999 (none)": MessageFilter(T0, T0 + DAYS * DAY_MS, error_code=999),
}


async def _measure(path: Path) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    async with open_store(StoreConfig(path=str(path))) as store:
        for name, where in SEARCHES.items():
            times = []
            rows = 0
            for _ in range(RUNS):
                start = time.perf_counter()
                page, next_cursor = await search_page(store, "bench", where, None, PAGE_ROWS)
                times.append((time.perf_counter() - start) * 1000)
                rows = len(page)
            # A deep page: the 50 after the middle of the period (keyset: no rows skipped).
            deep_ms = None
            if next_cursor is not None:
                middle = (where.from_ms + where.to_ms) // 2
                start = time.perf_counter()
                await search_page(store, "bench", where, (middle, 0), PAGE_ROWS)
                deep_ms = (time.perf_counter() - start) * 1000
            results[name] = {"rows": rows, "median_ms": round(statistics.median(times), 2),
                             "max_ms": round(max(times), 2),
                             "middle_page_ms": None if deep_ms is None else round(deep_ms, 2)}
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m smsgw.bench portal")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--messages", type=int, default=1_000_000, help="of the searched account (another as many)")
    parser.add_argument("--dir", default=None, help="where the database file goes (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "portal.db"
        fill_s = _fill(path, args.messages)
        searches = trio.run(_measure, path)
    worst = max(max(row["max_ms"], row["middle_page_ms"] or 0) for row in searches.values())
    results = {"machine": _machine(), "messages": args.messages, "fill_s": round(fill_s, 1), "searches": searches,
               "worst_ms": worst, "goal_ms": GOAL_MS, "ok": worst < GOAL_MS}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"portal benchmark  machine: {results['machine']}")
        print(f"{args.messages} messages of the searched account (+ as many of another), filled in {fill_s:.1f} s")
        print(f"{'search (page of ' + str(PAGE_ROWS) + ')':<34} {'rows':>5} {'median ms':>10} {'max ms':>8} "
              f"{'middle page ms':>15}")
        for name, row in searches.items():
            middle = "" if row["middle_page_ms"] is None else row["middle_page_ms"]
            print(f"{name:<34} {row['rows']:>5} {row['median_ms']:>10} {row['max_ms']:>8} {middle:>15}")
        print(f"worst {worst} ms: {'under' if results['ok'] else 'OVER'} the {GOAL_MS:g} ms goal")
    return 0 if results["ok"] else 1
