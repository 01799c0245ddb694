"""A gateway core for the crash test: the real store and scheduler, a fake modem pool, SMPP replaced by direct
calls. `submit DB`: submit from 20 concurrent tasks forever, printing `ACK <message_id>` after each acknowledged
submission. `finish DB`: run the scheduler until every stored message is final, then exit 0.
"""

from __future__ import annotations

import random
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import trio

from smsgw.config import Config, RouteConfig, StoreConfig
from smsgw.modem.seams import OutgoingSms, SendOutcome, Sent, StatusReport
from smsgw.pdu.smpp import SubmitSm
from smsgw.scheduler.service import Scheduler
from smsgw.scheduler.sqlite_store import open_store
from smsgw.scheduler.timing import WallClock

CONFIG = Config(routes=(RouteConfig(name="uk", prefixes=("44",), price_per_segment=0.01),))


class FakeModems:
    """Sends after a few milliseconds; the network reports delivery a little later."""

    def __init__(self, scheduler: Scheduler, nursery: trio.Nursery) -> None:
        self._scheduler = scheduler
        self._nursery = nursery
        self._tp_mr = 0

    async def send(self, sms: OutgoingSms) -> SendOutcome:
        await trio.sleep(random.uniform(0.005, 0.05))
        self._tp_mr = (self._tp_mr + 1) % 256
        self._nursery.start_soon(self._report, self._tp_mr, sms.destination)
        return Sent("m1", "447700900001", self._tp_mr, datetime.now(UTC))

    async def _report(self, tp_mr: int, destination: str) -> None:
        await trio.sleep(random.uniform(0.05, 0.2))
        now = datetime.now(UTC)
        await self._scheduler.dispatcher.status_report(StatusReport("m1", tp_mr, destination, 0x00, now, now))


async def submitter(scheduler: Scheduler, number: int) -> None:
    while True:
        text = f"crash test {number} {random.random()}".encode() * random.choice((1, 6))
        message_id = await scheduler.smpp.submit(
            "acme",
            SubmitSm(sequence_number=1, source_addr="ACME", destination_addr=f"4479110{number:05d}", short_message=text),
        )
        print("ACK", message_id, flush=True)


def open_messages(path: str) -> tuple[int, list[tuple[str, int, str]]]:
    """How many messages are not final, and the segments the network has but has not reported on yet."""
    with sqlite3.connect(path) as connection:
        (count,) = connection.execute("SELECT COUNT(*) FROM messages WHERE final_at IS NULL").fetchone()
        awaiting = connection.execute(
            "SELECT modem, tp_mr, destination FROM segments WHERE state = 4 AND sent_at IS NOT NULL"
        ).fetchall()
    return int(count), awaiting


async def main(mode: str, path: str) -> None:
    async with open_store(path, StoreConfig(path=path)) as store:
        scheduler = Scheduler(store, CONFIG, WallClock())
        if await store.balance("acme") == 0:
            await store.topup("acme", 10**12, WallClock().now_ms())
        async with trio.open_nursery() as nursery:
            await nursery.start(scheduler.run, FakeModems(scheduler, nursery))
            if mode == "submit":
                for number in range(20):
                    nursery.start_soon(submitter, scheduler, number)
                print("READY", flush=True)
            else:
                # Reports the killed process was waiting for come in now, as the network would send them again.
                while True:
                    count, awaiting = await trio.to_thread.run_sync(open_messages, path)
                    if not count:
                        break
                    now = datetime.now(UTC)
                    for modem, tp_mr, destination in awaiting:
                        await scheduler.dispatcher.status_report(StatusReport(modem, tp_mr, destination, 0x00, now, now))
                    await trio.sleep(0.2)
                nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], str(Path(sys.argv[2])))
