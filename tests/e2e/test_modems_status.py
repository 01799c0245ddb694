"""`smsgw modems` on a running demo gateway, and the SIMs' send counts surviving a restart of the gateway."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import pytest
import trio

from harness import FAST, in_thread
from esme import Esme
from smsgw import cli
from smsgw.app import GatewayStarted, run_demo
from smsgw.config import ModemsStatusConfig
from smsgw.modem.driver import ModemState
from smsgw.modem.status_file import StatusSnapshot, read_snapshot, status_path
from smsgw.pdu.constants import CommandStatus

pytestmark = pytest.mark.timeout(90)

CONFIG = dataclasses.replace(FAST, modems_status=ModemsStatusConfig(interval_s=0.1))


async def _snapshot_where(path: Path, sent_today: int) -> StatusSnapshot:
    """The first snapshot with both modems ready and `sent_today` messages counted between them."""
    with trio.fail_after(30):
        while True:
            snapshot = read_snapshot(path)
            if (
                snapshot is not None
                and [r.status.state for r in snapshot.modems] == [ModemState.READY] * 2
                and sum(r.usage.today for r in snapshot.modems) == sent_today
            ):
                return snapshot
            await trio.sleep(0.05)


async def test_modems_listed_and_counts_kept_across_a_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "gateway.db")
    path = status_path(db)
    run = functools.partial(run_demo, port=0, modems=2, db_path=db, base=CONFIG)

    async with trio.open_nursery() as nursery:
        started: GatewayStarted = await nursery.start(functools.partial(run, stop=(stop := trio.Event())))
        esme = await in_thread(Esme, started.smpp.port, "demo", "demo")
        try:
            status, _ = await in_thread(esme.submit, "447700900123", b"counted")
            assert status == CommandStatus.ESME_ROK
        finally:
            await in_thread(esme.close)
        first = await _snapshot_where(path, sent_today=1)
        assert cli.main(["modems", "--db", db]) == cli.EXIT_OK
        rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
        assert [(row[0], row[1], row[3]) for row in rows] == [
            ("virtual1", "447700900001", "ready"),
            ("virtual2", "447700900002", "ready"),
        ]
        stop.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(run, stop=(stop := trio.Event())))
        again = await _snapshot_where(path, sent_today=1)  # restored, nothing sent in this run
        assert [r.usage.this_month for r in again.modems] == [r.usage.this_month for r in first.modems]
        stop.set()
