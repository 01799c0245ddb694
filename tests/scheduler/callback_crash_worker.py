"""MO callbacks for the crash test: the real store and scheduler, MO fed by direct calls. `mo DB URL`: MO from
10 concurrent tasks forever, printing `ACK <text>` once each is stored, its callback to URL pending. `finish DB
URL`: run the scheduler until no callback is pending, then exit 0.
"""

from __future__ import annotations

import random
import sqlite3
import sys
from datetime import UTC, datetime

import trio

from smsgw.config import AccountConfig, Config, MessageConfig, StoreConfig
from smsgw.modem.seams import IncomingSms, OutgoingSms, SendOutcome
from smsgw.scheduler.service import Scheduler
from smsgw.scheduler.sqlite_store import open_store
from smsgw.scheduler.timing import WallClock


class NoModems:
    async def send(self, sms: OutgoingSms) -> SendOutcome:
        raise AssertionError("nothing is sent in this test")


async def handset(scheduler: Scheduler, number: int) -> None:
    while True:
        text = f"mo-{number}-{random.randrange(10**9)}"
        await scheduler.mo.incoming_sms(IncomingSms("m1", "447700900001", f"4479110{number:05d}", text, 0,
                                                 datetime.now(UTC)))
        print("ACK", text, flush=True)


def pending(path: str) -> int:
    with sqlite3.connect(path) as connection:
        (count,) = connection.execute("SELECT COUNT(*) FROM mo_callbacks WHERE state = 'pending'").fetchone()
        return int(count)


async def main(mode: str, path: str, url: str) -> None:
    config = Config(
        accounts=(AccountConfig("shop", "x", mo_callback_url=url),),
        # Retries soon: the finishing run should not wait the production backoff for the POSTs the kill cut off.
        messages=MessageConfig(mo_default_account="shop", retry_backoff_base_s=0.1, retry_backoff_max_s=0.5),
        store=StoreConfig(path=path),
    )
    async with open_store(path, config.store) as store:
        scheduler = Scheduler(store, config, WallClock())
        async with trio.open_nursery() as nursery:
            await nursery.start(scheduler.run, NoModems())
            if mode == "mo":
                for number in range(10):
                    nursery.start_soon(handset, scheduler, number)
                print("READY", flush=True)
            else:
                while await trio.to_thread.run_sync(pending, path):
                    await trio.sleep(0.1)
                nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:4])
