"""End to end through an upstream SMPP route: an ESME -> gateway A -> upstream B (a second whole gateway, as
`smsgw demo` runs it) -> B's virtual network -> B's receipt -> A -> the ESME, with A's message_id; and failover to
A's own modems when B is gone."""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from esme import Delivered, Esme
from harness import FAST, in_thread
from processes import Process
from smsgw import cli
from smsgw.app import GatewayStarted, run_demo
from smsgw.config import ModemsStatusConfig, OperatorConfig, RouteConfig, UpstreamConfig
from smsgw.passwords import hash_password
from smsgw.pdu.constants import CommandStatus
from smsgw.pdu.dlr import DeliveryReceipt
from smsgw.smpp_server.upstream_status import read_snapshot, status_path

pytestmark = pytest.mark.timeout(120)

OPERATOR, OPERATOR_PASSWORD = "ops", "ops-secret"


async def start_demo(
    nursery: trio.Nursery, db: Path, http_port: int | None = None, **base: object
) -> tuple[GatewayStarted, trio.Event]:
    stop = trio.Event()
    started: GatewayStarted = await nursery.start(
        functools.partial(run_demo, port=0, modems=2, db_path=str(db), base=dataclasses.replace(FAST, **base),
                          stop=stop, http_port=http_port)
    )
    return started, stop


async def test_a_message_through_an_upstream_gateway_and_failover_when_it_goes(
    nursery: trio.Nursery, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    b, stop_b = await start_demo(nursery, tmp_path / "b.db")
    upstream = UpstreamConfig(name="opB", port=b.smpp.port, system_id="demo", password="demo",
                              reconnect_delay_min_s=0.1, reconnect_delay_max_s=0.5, submit_wait_s=0.5,
                              response_timeout_s=2.0)
    route = RouteConfig(name="default", via=("upstream:opB", "modems:default"))
    a, stop_a = await start_demo(nursery, tmp_path / "a.db", http_port=0, upstreams=(upstream,), routes=(route,),
                                 modems_status=ModemsStatusConfig(interval_s=0.1),
                                 operators=(OperatorConfig(OPERATOR, hash_password(OPERATOR_PASSWORD)),))
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
        await _upstream_visible(a, str(tmp_path / "a.db"), capsys)

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


async def _upstream_visible(a: GatewayStarted, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A's bind to B and what B took are in A's /metrics, on the operator's portal page and in `smsgw upstreams`."""
    assert a.http is not None
    async with httpx.AsyncClient(base_url=a.http.url, follow_redirects=True) as client:
        response = await client.get("/metrics")
        login = {"role": "operator", "name": OPERATOR, "password": OPERATOR_PASSWORD, "next": "/operator/modems"}
        page = await client.post("/login", data=login)
    assert page.status_code == 200 and page.url.path == "/operator/modems"
    card = page.text[page.text.index('id="upstream-opB"'):]
    assert f"127.0.0.1:{upstream_port(a)}" in card and "state-bound" in card
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if "upstream" in sample.labels
    }
    assert samples[("smsgw_upstream_sessions", (("state", "bound"), ("upstream", "opB")))] == 1
    assert samples[("smsgw_upstream_submits_total", (("result", "submitted"), ("upstream", "opB")))] >= 1
    assert ("smsgw_upstream_window_in_use", (("upstream", "opB"),)) in samples
    with trio.fail_after(10):  # the status file is written every 0.1 s
        while (snapshot := read_snapshot(status_path(db))) is None or not snapshot.upstreams[0].submits["submitted"]:
            await trio.sleep(0.05)
    capsys.readouterr()
    assert cli.main(["upstreams", "--db", db]) == cli.EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == ["UPSTREAM", "ADDRESS"]
    name, address, *_ = lines[2].split()
    assert (name, address) == ("opB", f"127.0.0.1:{upstream_port(a)}")
    sessions = [line.split() for line in lines[lines.index("") + 2:]]
    assert [(row[0], row[1], row[2], row[3]) for row in sessions] == [("opB", "0", "trx", "bound")]


def upstream_port(a: GatewayStarted) -> int:
    (upstream,) = a.config.current.upstreams
    return upstream.port


def esme_receipts(esme: Esme) -> list[object]:
    return [d for d in esme.delivered if d.is_receipt]


def _sent_by(db: Path, message_id: str) -> str:
    with sqlite3.connect(db) as connection:
        row = connection.execute(
            "SELECT s.upstream, s.modem FROM segments s JOIN messages m ON m.id = s.message WHERE m.message_id = ?",
            (message_id,),
        ).fetchone()
    if row is None:  # acknowledged but still in the gateway's intake row: not sent by anyone yet
        return ""
    upstream, modem = row
    return upstream or ("modem" if modem else "")


def _b_config(tmp_path: Path, links: list[Path], port: int) -> Path:
    """Upstream B as an operator runs it: `smsgw serve` on `virtual-modem` processes, which outlive a crash of B as
    hardware would (so reports of what B had sent still reach it after its restart)."""
    modems = "".join(
        f'[[modems]]\nname = "sim{i}"\nport = "{link}"\nmsisdn = "44770090000{i}"\nreopen_delay_s = 0.2\n'
        for i, link in enumerate(links, start=1)
    )
    path = tmp_path / "b.toml"
    path.write_text(
        f"[smpp]\nport = {port}\nshutdown_grace_s = 1.0\n"
        '[[accounts]]\nsystem_id = "demo"\npassword = "demo"\nthroughput_per_s = 100000.0\n'
        + modems
        + '[[routes]]\nname = "all"\n'
        "[messages]\nmin_validity_s = 1.0\nstatus_report_grace_s = 1.0\nretry_backoff_base_s = 0.2\n"
        "retry_backoff_max_s = 1.0\noutbox_redelivery_delay_s = 0.3\n"
        f'[store]\npath = "{tmp_path / "b.db"}"\n'
        "[virtual_network]\ndelivery_delay_s = 0.3\nretry_interval_s = 0.3\n"
    )
    return path


def _serve_b(config: Path, env: dict[str, str], processes: list[Process]) -> int:
    b = Process(["serve", "--config", str(config)], env)
    processes.append(b)
    return int(b.wait_for_line(r"gateway ready host=\S+ port=(\d+)", 60).group(1))


async def test_an_upstream_killed_under_load_fails_over_and_loses_nothing_then_comes_back(
    nursery: trio.Nursery, tmp_path: Path, processes: list[Process]
) -> None:
    """B is killed -9 with submits in flight: A sends the rest through its own modems; B restarted on its store
    finishes what it had taken and A binds to it again. Every message A accepted gets exactly one final receipt at
    A's ESME, with A's message_id."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    links = [tmp_path / f"modem{i}" for i in (1, 2)]
    config = _b_config(tmp_path, links, 0)
    for i, link in enumerate(links, start=1):
        modem = Process(["virtual-modem", "--link", str(link), "--msisdn", f"44770090000{i}", "--config",
                         str(config)], env)
        processes.append(modem)
        modem.wait_for_line(r"virtual modem .* on ")
    port = _serve_b(config, env, processes)
    config = _b_config(tmp_path, links, port)  # the restart listens where A binds
    upstream = UpstreamConfig(name="opB", port=port, system_id="demo", password="demo", window=10,
                              reconnect_delay_min_s=0.1, reconnect_delay_max_s=0.5, submit_wait_s=0.5,
                              response_timeout_s=2.0)
    route = RouteConfig(name="default", via=("upstream:opB", "modems:default"))
    a, stop_a = await start_demo(nursery, tmp_path / "a.db", upstreams=(upstream,), routes=(route,))
    esme = await in_thread(Esme, a.smpp.port, "demo", "demo")
    ids: list[str] = []

    async def submit(count: int) -> None:
        for _ in range(count):
            status, message_id = await in_thread(esme.submit, "447700123456", f"load {len(ids)}".encode(),
                                                 registered_delivery=1, validity_period=VALIDITY)
            assert status == CommandStatus.ESME_ROK
            ids.append(message_id)

    async def until_sent_by_b() -> None:
        with trio.fail_after(30):  # A binds to B: from then on the route sends through B
            while not any(_sent_by(tmp_path / "a.db", i) == "opB" for i in ids[first:]):
                await submit(1)
                await trio.sleep(0.1)

    try:
        first = 0
        await until_sent_by_b()
        await submit(10)
        processes[-1].stop(signal.SIGKILL)  # no unbind: whatever B had not answered is lost with it
        first = len(ids)
        await submit(10)
        _serve_b(config, env, processes)
        await until_sent_by_b()  # A binds to the restarted B again
        await in_thread(esme.wait_for, lambda items: len(_finals(items)) >= len(ids), 60.0)
        await trio.sleep(1.5)  # room for a duplicate to show up
        await in_thread(esme.wait_for, lambda items: True, 0.1)
        receipts = _finals(esme.delivered)
        assert sorted(r.message_id for r in receipts) == sorted(ids)  # each exactly once
        # A crash of B can lose the network's report of what B had sent: B expires those, as a crash of A would.
        assert {r.stat for r in receipts} <= {"DELIVRD", "EXPIRED"}
        routes = Counter(_sent_by(tmp_path / "a.db", i) for i in ids)
        assert routes["opB"] >= 2 and routes["modem"] >= 10, routes  # after the kill: A's own modems
    finally:
        await in_thread(esme.close)
        stop_a.set()


VALIDITY = "000000000030000R"  # 30 s: what B lost in the crash ends EXPIRED well within the test


def _finals(delivered: list[Delivered]) -> list[DeliveryReceipt]:
    return [r for r in (d.receipt() for d in delivered if d.is_receipt) if r.is_final]
