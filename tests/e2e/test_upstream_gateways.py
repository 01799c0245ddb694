"""End to end through an upstream SMPP route: an ESME -> gateway A -> upstream B (a second whole gateway, as
`smsgw demo` runs it) -> B's virtual network -> B's receipt -> A -> the ESME, with A's message_id; and failover to
A's own modems when B is gone."""

from __future__ import annotations

import dataclasses
import functools
import sqlite3
from pathlib import Path

import pytest
import trio

from esme import Esme
from harness import FAST, in_thread
from smsgw.app import GatewayStarted, run_demo
from smsgw.config import RouteConfig, UpstreamConfig
from smsgw.pdu.constants import CommandStatus

pytestmark = pytest.mark.timeout(120)


async def start_demo(nursery: trio.Nursery, db: Path, **base: object) -> tuple[GatewayStarted, trio.Event]:
    stop = trio.Event()
    started: GatewayStarted = await nursery.start(
        functools.partial(run_demo, port=0, modems=2, db_path=str(db), base=dataclasses.replace(FAST, **base),
                          stop=stop)
    )
    return started, stop


async def test_a_message_through_an_upstream_gateway_and_failover_when_it_goes(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    b, stop_b = await start_demo(nursery, tmp_path / "b.db")
    upstream = UpstreamConfig(name="opB", port=b.smpp.port, system_id="demo", password="demo",
                              reconnect_delay_min_s=0.1, reconnect_delay_max_s=0.5, submit_wait_s=0.5,
                              response_timeout_s=2.0)
    route = RouteConfig(name="default", via=("upstream:opB", "modems:default"))
    a, stop_a = await start_demo(nursery, tmp_path / "a.db", upstreams=(upstream,), routes=(route,))
    esme = await in_thread(Esme, a.smpp.port, "demo", "demo")
    try:
        # Until A's bind to B is up, a message goes to A's modems (the route's next connector): send until one
        # went through B.
        with trio.fail_after(30):
            while True:
                status, message_id = await in_thread(esme.submit, "447700123456", b"via B", registered_delivery=1)
                assert status == CommandStatus.ESME_ROK
                receipts = await in_thread(esme.receipts, len(esme_receipts(esme)) + 1, 30.0)
                if _sent_by(tmp_path / "a.db", message_id) == "opB":
                    break
        (receipt,) = [r for r in receipts if r.message_id == message_id]
        assert receipt.stat == "DELIVRD" and receipt.err == "000"
        earlier = len(receipts)

        stop_b.set()  # B goes away: the route fails over to A's own modems, nothing lost
        ids = []
        for n in range(3):
            status, message_id = await in_thread(esme.submit, "447700123456", f"after B {n}".encode(),
                                                 registered_delivery=1)
            assert status == CommandStatus.ESME_ROK
            ids.append(message_id)
        receipts = (await in_thread(esme.receipts, earlier + 3, 60.0))[earlier:]
        assert sorted(r.message_id for r in receipts) == sorted(ids)
        assert {r.stat for r in receipts} == {"DELIVRD"}
        assert {_sent_by(tmp_path / "a.db", i) for i in ids} == {"modem"}
    finally:
        await in_thread(esme.close)
        stop_a.set()


def esme_receipts(esme: Esme) -> list[object]:
    return [d for d in esme.delivered if d.is_receipt]


def _sent_by(db: Path, message_id: str) -> str:
    with sqlite3.connect(db) as connection:
        upstream, modem = connection.execute(
            "SELECT s.upstream, s.modem FROM segments s JOIN messages m ON m.id = s.message WHERE m.message_id = ?",
            (message_id,),
        ).fetchone()
    return upstream or ("modem" if modem else "")
