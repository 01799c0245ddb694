"""The HTTP face over real sockets, inside the whole gateway as `smsgw demo` runs it (virtual modems on ptys, the
real driver, SQLite, SMPP and HTTP on port 0), with httpx as the client: the ops endpoints, problem+json errors,
body limits, Basic auth under the SMPP bind guard, and graceful stop."""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import smpplib.exceptions
import trio
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

import smsgw.http.app
from smsgw.app import GatewayStarted, run_demo, run_gateway
from smsgw.config import DEMO_CALLBACK_SECRET, AccountConfig, Config, ModemConfig, SmppConfig, StoreConfig
from smsgw.http import ops
from smsgw.http.auth import authenticate
from smsgw.http.deps import HttpDeps
from smsgw.http.problems import PROBLEM_JSON
from smsgw.passwords import hash_password
from smsgw.pdu.constants import CommandStatus
from smsgw.scheduler.callback import sign

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from esme import Esme  # noqa: E402
from harness import FAST, in_thread  # noqa: E402

pytestmark = pytest.mark.timeout(90)

LOCKOUT_FAILURES = 3
BASE = dataclasses.replace(
    FAST, smpp=dataclasses.replace(FAST.smpp, bind_lockout_failures=LOCKOUT_FAILURES, bind_failure_delay_max_s=0.02)
)
# Set by the test routes below: lets one request wait while the gateway is told to stop.
SLOW_RELEASE: dict[str, trio.Event] = {}


def _test_routes(deps: HttpDeps) -> list[BaseRoute]:
    """A route module like the API's will be, to test what the foundation gives them."""

    async def whoami(request: Request) -> Response:
        account = await authenticate(request, deps)
        return JSONResponse({"system_id": account.system_id})

    async def echo(request: Request) -> Response:
        return Response(await request.body())

    async def boom(request: Request) -> Response:
        raise RuntimeError("a bug in a route")

    async def slow(request: Request) -> Response:
        SLOW_RELEASE["entered"].set()
        await SLOW_RELEASE["release"].wait()
        return JSONResponse({"finished": True})

    return [
        Route("/api/test/whoami", whoami, methods=["GET"]),
        Route("/api/test/echo", echo, methods=["POST"]),
        Route("/api/test/boom", boom, methods=["GET"]),
        Route("/api/test/slow", slow, methods=["GET"]),
    ]


_TEST_MODULE = ModuleType("test_routes")
_TEST_MODULE.routes = _test_routes  # type: ignore[attr-defined]


@pytest.fixture
async def gateway(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[GatewayStarted, trio.Event]]:
    monkeypatch.setattr(smsgw.http.app, "ROUTE_MODULES", (ops, _TEST_MODULE))
    stop = trio.Event()
    started: GatewayStarted = await nursery.start(functools.partial(
        run_demo, port=0, http_port=0, modems=1, db_path=str(tmp_path / "gateway.db"), base=BASE, stop=stop
    ))
    yield started, stop
    stop.set()


def _url(started: GatewayStarted) -> str:
    assert started.http is not None
    return started.http.url


async def _wait_ready(client: httpx.AsyncClient) -> httpx.Response:
    with trio.fail_after(30):  # a hang guard: the virtual modem registers in well under a second
        while (response := await client.get("/readyz")).status_code != 200:
            await trio.sleep(0.05)
    return response


async def test_health_ready_and_metrics_after_an_smpp_submission(gateway: tuple[GatewayStarted, trio.Event]) -> None:
    started, _ = gateway
    async with httpx.AsyncClient(base_url=_url(started)) as client:
        health = await client.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = await _wait_ready(client)
        assert ready.json() == {"status": "ready", "checks": {"store": "ok", "smpp": "ok", "routes": "ok"}}

        esme = await in_thread(Esme, started.smpp.port, "demo", "demo")
        try:
            status, _ = await in_thread(esme.submit, "447700911000", b"held: the handset is off")
            assert status == CommandStatus.ESME_ROK
            response = await client.get("/metrics")
        finally:
            await in_thread(esme.close)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert {
        "smsgw_smpp_sessions", "smsgw_submissions", "smsgw_messages_open", "smsgw_queue_segments",
        "smsgw_outbox_items", "smsgw_callbacks", "smsgw_modem_state", "smsgw_modem_signal_rssi", "smsgw_modem_sent",
        "smsgw_store_commits", "smsgw_store_operations", "smsgw_login_lockouts", "smsgw_route_segments_due",
        "smsgw_route_oldest_due_seconds",
    } <= set(families)

    def value(family: str, **labels: str) -> float:
        (sample,) = [s for s in families[family].samples if s.labels == labels and not s.name.endswith("_created")]
        return sample.value

    assert value("smsgw_smpp_sessions", account="demo", bind_type="transceiver") == 1
    assert value("smsgw_submissions", interface="smpp", result="ESME_ROK") == 1
    assert value("smsgw_modem_state", modem="virtual1", state="ready") == 1
    assert value("smsgw_modem_state", modem="virtual1", state="down") == 0
    assert value("smsgw_modem_signal_rssi", modem="virtual1") == BASE.virtual_network.signal_rssi
    assert value("smsgw_store_commits") >= 1
    # Every commit is in the latency histogram: its +Inf bucket and count are the commits, the buckets cumulative.
    latency = families["smsgw_store_commit_seconds"]
    assert latency.type == "histogram"
    buckets = [s for s in latency.samples if s.name == "smsgw_store_commit_seconds_bucket"]
    assert buckets[-1].labels == {"le": "+Inf"} and buckets[-1].value == value("smsgw_store_commits")
    assert [b.value for b in buckets] == sorted(b.value for b in buckets) and len(buckets) > 1
    (count,) = [s for s in latency.samples if s.name == "smsgw_store_commit_seconds_count"]
    (total,) = [s for s in latency.samples if s.name == "smsgw_store_commit_seconds_sum"]
    assert count.value == value("smsgw_store_commits") and total.value > 0
    assert value("smsgw_login_lockouts") == 0
    # The message is open (accepted, or on the modem by now) and counted once, wherever it is.
    assert sum(s.value for s in families["smsgw_messages_open"].samples) == 1
    # Due by route: none, or this one still waiting for its hand-off (the modem takes it at once).
    due = {s.labels["route"]: s.value for s in families["smsgw_route_segments_due"].samples}
    waited = {s.labels["route"]: s.value for s in families["smsgw_route_oldest_due_seconds"].samples}
    assert set(due) == set(waited) and sum(due.values()) <= 1 and all(w >= 0 for w in waited.values())


async def test_not_ready_names_what_is_missing(nursery: trio.Nursery, tmp_path: Path) -> None:
    """A modem whose port does not exist: the gateway runs, but no route can send."""
    config = Config(
        smpp=SmppConfig(port=0, shutdown_grace_s=1.0),
        http=dataclasses.replace(Config().http, port=0),
        accounts=(AccountConfig("acme", hash_password("acme-pw")),),
        modems=(ModemConfig(name="sim1", port=str(tmp_path / "ttyUSB-missing"), reopen_delay_s=0.05),),
        store=StoreConfig(path=str(tmp_path / "gw.db")),
    )
    stop = trio.Event()
    started: GatewayStarted = await nursery.start(functools.partial(run_gateway, config, stop=stop))
    try:
        async with httpx.AsyncClient(base_url=_url(started)) as client:
            response = await client.get("/readyz")
            sink = await client.get("/demo/receipts")
    finally:
        stop.set()
    assert sink.status_code == 404  # the receipt sink is the demo's only
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["status"] == 503 and problem["title"] == "Not ready"
    assert "no modem READY in group(s) default" in problem["detail"]
    assert problem["checks"] == {
        "store": "ok", "smpp": "ok", "routes": "no route usable: no modem READY in group(s) default"
    }


async def test_the_demos_receipt_sink_keeps_what_is_posted_and_checks_its_signature(
    gateway: tuple[GatewayStarted, trio.Event]
) -> None:
    started, _ = gateway
    report = b'{"message_id": "m1", "state": "DELIVERED"}'
    sink = _url(started) + "/demo/receipts"
    async with httpx.AsyncClient() as client:
        assert (await client.get(sink)).json() == {"receipts": []}
        for signature in (sign(report, DEMO_CALLBACK_SECRET), sign(report, "another secret")):
            answer = await client.post(sink, content=report, headers={"X-Smsgw-Signature": signature})
            assert answer.status_code == 204
        assert (await client.post(sink, content=b"id=m1&level=2")).status_code == 204  # a Jasmin form, say
        receipts = (await client.get(sink)).json()["receipts"]
    assert [(r["body"], r["signature_valid"]) for r in receipts] == [
        ({"message_id": "m1", "state": "DELIVERED"}, True), ({"message_id": "m1", "state": "DELIVERED"}, False),
        ("id=m1&level=2", False),
    ]


async def test_errors_are_problem_json(gateway: tuple[GatewayStarted, trio.Event]) -> None:
    started, _ = gateway
    limit = BASE.http.max_body_bytes
    async with httpx.AsyncClient(base_url=_url(started)) as client:
        not_found = await client.get("/api/v1/nothing")
        wrong_method = await client.delete("/api/test/echo")
        too_large = await client.post("/api/test/echo", content=b"x" * (limit + 1))

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while the route reads
            yield b"y" * limit
            yield b"y"

        too_large_chunked = await client.post("/api/test/echo", content=chunks())
        fits = await client.post("/api/test/echo", content=b"z" * limit)
        failed = await client.get("/api/test/boom")
    for response, status in ((not_found, 404), (wrong_method, 405), (too_large, 413), (too_large_chunked, 413),
                             (failed, 500)):
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == PROBLEM_JSON
        body = response.json()
        assert body["status"] == status and body["type"] == "about:blank" and body["title"]
    assert wrong_method.headers["allow"] == "POST"
    assert too_large.json()["detail"] == f"the request body is larger than {limit} bytes"
    # Its body was not read: the client must not send the next request on that connection (it did, and got
    # "server disconnected" now and then).
    assert too_large.headers["connection"] == "close" and too_large_chunked.headers["connection"] == "close"
    assert fits.status_code == 200 and len(fits.content) == limit


async def test_basic_auth_and_the_lockout_shared_with_smpp(gateway: tuple[GatewayStarted, trio.Event]) -> None:
    started, _ = gateway
    async with httpx.AsyncClient(base_url=_url(started)) as client:
        right = await client.get("/api/test/whoami", auth=("demo", "demo"))
        assert right.status_code == 200 and right.json() == {"system_id": "demo"}
        missing = await client.get("/api/test/whoami")
        assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Basic ")

        # HTTP failures lock the account out of SMPP binds from the same address ...
        for _ in range(LOCKOUT_FAILURES):
            wrong = await client.get("/api/test/whoami", auth=("demo", "wrong"))
            assert wrong.status_code == 401 and wrong.json()["detail"] == "invalid credentials"
        with pytest.raises(smpplib.exceptions.PDUError) as refused:
            await in_thread(Esme, started.smpp.port, "demo", "demo")
        assert int(refused.value.args[1]) == CommandStatus.ESME_RBINDFAIL
        locked = await client.get("/api/test/whoami", auth=("demo", "demo"))
        assert locked.status_code == 429 and "retry-after" in locked.headers

        # ... and SMPP failures lock the account out of HTTP.
        for _ in range(LOCKOUT_FAILURES):
            with pytest.raises(smpplib.exceptions.PDUError):
                await in_thread(Esme, started.smpp.port, "shop", "wrong")
        shop = await client.get("/api/test/whoami", auth=("shop", "shop-pw"))
        assert shop.status_code == 429
        metrics = await client.get("/metrics")
    (lockouts,) = [s for f in text_string_to_metric_families(metrics.text) if f.name == "smsgw_login_lockouts"
                   for s in f.samples if s.name == "smsgw_login_lockouts_total"]
    assert lockouts.value == 2


async def test_graceful_stop_finishes_a_request_in_progress(gateway: tuple[GatewayStarted, trio.Event]) -> None:
    started, stop = gateway
    SLOW_RELEASE.update(entered=trio.Event(), release=trio.Event())
    url = _url(started)
    results: dict[str, httpx.Response] = {}

    async def slow_request() -> None:
        async with httpx.AsyncClient(base_url=url) as client:
            results["slow"] = await client.get("/api/test/slow")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_request)
        await SLOW_RELEASE["entered"].wait()
        stop.set()
        # Accepting stops first: a new connection is refused while the request in progress still runs.
        with trio.fail_after(10):
            while True:
                try:
                    async with httpx.AsyncClient(base_url=url) as client:
                        await client.get("/healthz")
                except httpx.ConnectError:
                    break
                await trio.sleep(0.01)
        SLOW_RELEASE["release"].set()
    assert results["slow"].status_code == 200 and results["slow"].json() == {"finished": True}
