"""REST API v1 over real sockets, inside the whole gateway as `smsgw demo` runs it (virtual modems on ptys, SQLite,
SMPP and HTTP on port 0), with httpx as the client: every endpoint, Basic and Bearer auth, every error status,
pagination and CSV, the OpenAPI document, and HTTP send -> virtual modem -> DELIVERED seen through GET."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import io
import sys
from datetime import UTC, datetime, timedelta
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from smsgw import cli
from smsgw.app import DEMO_MODEM_GROUP, GatewayStarted, run_demo
from smsgw.config import AccountConfig, RouteConfig
from smsgw.http import api, openapi
from smsgw.http.deps import HttpDeps
from smsgw.http.problems import PROBLEM_JSON
from smsgw.passwords import hash_password
from smsgw.scheduler.history import COLUMNS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from harness import FAST  # noqa: E402

pytestmark = pytest.mark.timeout(90)

DEMO = ("demo", "demo")
SHOP = ("shop", "shop-pw")
SLOW = ("slow", "slow-pw")
PAID = "447911123456"  # a real-looking UK mobile: priced (the virtual network's 4477009... numbers are free)
FREE = "447700900123"  # the virtual network delivers it after a short delay
MAX_BODY = 64 * 1024
# Schedules are at most [messages] max_schedule_ahead_s ahead: a day is well inside, and whole seconds print back as given.
TOMORROW = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat()
BASE = dataclasses.replace(
    FAST,
    http=dataclasses.replace(FAST.http, max_body_bytes=MAX_BODY, max_page_size=50),
    accounts=(
        AccountConfig("shop", hash_password("shop-pw"), sender_ids=("SHOP",)),
        AccountConfig("slow", hash_password("slow-pw"), throughput_per_s=0.5, throughput_burst=2),
        AccountConfig("fenced", hash_password("fenced-pw"), allowed_networks=("192.0.2.0/24",)),
    ),
    routes=(RouteConfig(name="default", modem_group=DEMO_MODEM_GROUP, price_per_segment=0.05),),
)


@dataclasses.dataclass
class Gateway:
    started: GatewayStarted
    db: str

    @property
    def url(self) -> str:
        assert self.started.http is not None
        return self.started.http.url


@pytest.fixture
async def gateway(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Gateway]:
    stop = trio.Event()
    db = str(tmp_path / "gateway.db")
    started: GatewayStarted = await nursery.start(functools.partial(
        run_demo, port=0, http_port=0, modems=1, db_path=db, base=BASE, stop=stop
    ))
    yield Gateway(started, db)
    stop.set()


@contextlib.asynccontextmanager
async def client(gateway: Gateway, auth: tuple[str, str] | None = DEMO) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url + api.PREFIX, auth=auth) as c:
        yield c


async def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """`smsgw ARGV` in a thread (it runs its own trio loop), with what it printed on stdout."""
    capsys.readouterr()
    code = await trio.to_thread.run_sync(cli.main, list(argv))
    return code, capsys.readouterr().out


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def wait_for_state(c: httpx.AsyncClient, message_id: str, state: str) -> dict[str, Any]:
    with trio.fail_after(30):  # a hang guard: the virtual network delivers within a second
        while (message := (await c.get(f"/messages/{message_id}")).json())["state"] != state:
            await trio.sleep(0.05)
    return message  # type: ignore[no-any-return]


async def test_send_is_delivered_through_the_virtual_modem_and_seen_by_get(gateway: Gateway) -> None:
    async with client(gateway) as c:
        sent = await c.post("/messages", json={"to": [FREE, "+44 7700 900124"], "text": "hello", "from": "DEMO",
                                               "client_ref": "order-1"})
        assert sent.status_code == 201, sent.text
        body = sent.json()
        assert body["rejected"] == []
        assert [(m["to"], m["segments"], m["charge"], m["state"]) for m in body["messages"]] == [
            (FREE, 1, "0.00", "ACCEPTED"), ("+44 7700 900124", 1, "0.00", "ACCEPTED")
        ]
        first, second = (m["message_id"] for m in body["messages"])
        assert first != second  # one message_id per number
        delivered = await wait_for_state(c, first, "DELIVERED")
        assert delivered == delivered | {
            "message_id": first, "to": FREE, "from": "DEMO", "state": "DELIVERED", "state_code": 22,
            "smpp_state": "DELIVERED", "error_code": "000", "segments": 1, "charge": "0.00", "scheduled_at": None,
            "client_ref": "order-1",
        }
        assert delivered["done_at"] is not None and delivered["submitted_at"] <= delivered["done_at"]
        assert (await wait_for_state(c, second, "DELIVERED"))["to"] == "447700900124"  # stored normalised
        metrics = await c.get(gateway.url + "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    (ok,) = [s for s in families["smsgw_submissions"].samples
             if s.labels == {"interface": "http", "result": "ESME_ROK"} and s.name.endswith("_total")]
    assert ok.value == 2


async def test_partial_acceptance_lists_each_refused_number(gateway: Gateway) -> None:
    async with client(gateway) as c:
        sent = await c.post("/messages", json={"to": [FREE, "12", "not a number"], "text": "hi"})
        assert sent.status_code == 201
        assert len(sent.json()["messages"]) == 1
        assert [(r["to"], r["code"]) for r in sent.json()["rejected"]] == [
            ("12", "ESME_RINVDSTADR"), ("not a number", "ESME_RINVDSTADR")
        ]
        none = problem(await c.post("/messages", json={"to": ["12"], "text": "hi"}), 400)
        assert none["rejected"][0]["code"] == "ESME_RINVDSTADR"


async def test_balance_402_topup_then_charge_in_balance_and_ledger(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    async with client(gateway, SHOP) as c:
        poor = problem(await c.post("/messages", json={"to": [PAID], "text": "buy"}), 402)
        assert poor["rejected"] == [{"to": PAID, "code": "VENDOR_INSUFFICIENT_BALANCE",
                                     "reason": "insufficient balance"}]
        assert (await run_cli(capsys, "account", "topup", "shop", "1.00", "--db", gateway.db))[0] == 0
        sent = await c.post("/messages", json={"to": [PAID], "text": "buy"})
        assert sent.status_code == 201 and sent.json()["messages"][0]["charge"] == "0.05"
        assert (await c.get("/balance")).json() == {"account": "shop", "balance": "0.95", "currency": "EUR"}
        ledger = (await c.get("/ledger")).json()
        assert [(e["kind"], e["amount"], e["balance_after"]) for e in ledger["entries"]] == [
            ("topup", "1.00", "1.00"), ("charge", "-0.05", "0.95")
        ]
        assert ledger["entries"][1]["message_id"] == sent.json()["messages"][0]["message_id"]
        assert [e["kind"] for e in (await c.get("/ledger", params={"limit": 1})).json()["entries"]] == ["charge"]


async def test_sender_not_allowed_is_403(gateway: Gateway) -> None:
    async with client(gateway, SHOP) as c:
        refused = problem(await c.post("/messages", json={"to": [FREE], "text": "hi", "from": "OTHER"}), 403)
        assert refused["rejected"][0]["code"] == "VENDOR_SENDER_NOT_ALLOWED"
        assert (await c.post("/messages", json={"to": [FREE], "text": "hi", "from": "SHOP"})).status_code == 201


async def test_throttled_by_the_accounts_smpp_rate_is_429_with_retry_after(gateway: Gateway) -> None:
    async with client(gateway, SLOW) as c:
        assert (await c.post("/messages", json={"to": [FREE, FREE], "text": "hi"})).status_code == 201
        throttled = await c.post("/messages", json={"to": [FREE], "text": "hi"})
        problem(throttled, 429)
        # The bucket is empty and refills at 0.5 segments/s: one segment in 2 s.
        assert throttled.headers["retry-after"] == "2"


async def test_the_throttle_takes_the_segments_the_accept_path_built(gateway: Gateway) -> None:
    """Charged with the accept path's count (the one stored): a number it refuses costs nothing."""
    async with client(gateway, SLOW) as c:
        one = await c.post("/messages", json={"to": [FREE, "12"], "text": "hi"})
        assert one.status_code == 201 and len(one.json()["rejected"]) == 1
        assert (await c.post("/messages", json={"to": [FREE], "text": "hi"})).status_code == 201
        problem(await c.post("/messages", json={"to": [FREE], "text": "hi"}), 429)


async def test_invalid_requests_are_400_and_a_large_body_413(gateway: Gateway) -> None:
    async with client(gateway) as c:
        cases: list[tuple[Any, str]] = [
            ({"text": "hi"}, "'to'"),
            ({"to": [], "text": "hi"}, "'to'"),
            ({"to": [FREE] * (api.MAX_RECIPIENTS + 1), "text": "hi"}, "'to'"),
            ({"to": [FREE]}, "'text'"),
            ({"to": [FREE], "text": "hi", "colour": "red"}, "unknown field(s): colour"),
            ({"to": [FREE], "text": "hi", "schedule_at": "tomorrow"}, "'schedule_at'"),
            ({"to": [FREE], "text": "hi", "schedule_at": "2030-01-01T10:00:00"}, "UTC offset"),
            ({"to": [FREE], "text": "hi", "validity_minutes": 0}, "'validity_minutes'"),
            ({"to": [FREE], "text": "hi", "flash": "yes"}, "'flash'"),
            ({"to": [FREE], "text": "hi", "dlr_url": "ftp://x"}, "'dlr_url'"),
            ([FREE], "JSON object"),
        ]
        for body, detail in cases:
            assert detail in problem(await c.post("/messages", json=body), 400)["detail"], body
        assert "not JSON" in problem(await c.post("/messages", content=b"{"), 400)["detail"]
        # A validity the accept path refuses is each number's refusal: all refused is 400 with the reasons.
        long = problem(await c.post("/messages", json={"to": [FREE], "text": "hi", "validity_minutes": 100_000}), 400)
        assert long["rejected"][0]["code"] == "ESME_RINVEXPIRY"
        for params in ({"cursor": "!!"}, {"state": "LOST"}, {"limit": "0"}, {"limit": "51"}, {"from": "x"},
                       {"number": "12"}):
            problem(await c.get("/messages", params=params), 400)
        problem(await c.get("/inbox", params={"after": "-1"}), 400)
        too_large = await c.post("/messages", json={"to": [FREE], "text": "x" * MAX_BODY})
        problem(too_large, 413)


async def test_auth_basic_bearer_revoke_and_401(gateway: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    async with client(gateway, None) as anonymous:
        missing = await anonymous.get("/balance")
        problem(missing, 401)
        assert missing.headers["www-authenticate"].startswith("Basic")
        problem(await anonymous.get("/balance", headers={"Authorization": "Bearer smsgw_nope"}), 401)
    async with client(gateway, ("demo", "wrong")) as wrong:
        problem(await wrong.get("/balance"), 401)
    code, key = await run_cli(capsys, "account", "api-key", "create", "demo", "--name", "ci", "--db", gateway.db)
    assert code == 0
    bearer = {"Authorization": f"Bearer {key.strip()}"}
    async with client(gateway, None) as c:
        answer = await c.get("/balance", headers=bearer)
        assert answer.status_code == 200 and answer.json()["account"] == "demo"
        assert (await c.post("/messages", headers=bearer, json={"to": [FREE], "text": "hi"})).status_code == 201
        code, listing = await run_cli(capsys, "account", "api-key", "list", "demo", "--db", gateway.db)
        (row,) = listing.splitlines()[1:]
        key_id, account, name, _, last_used = row.split("\t")
        assert (account, name) == ("demo", "ci") and last_used != "never"  # touched by the first use
        assert key.strip() not in listing
        assert (await run_cli(capsys, "account", "api-key", "revoke", key_id, "--db", gateway.db))[0] == 0
        problem(await c.get("/balance", headers=bearer), 401)


async def test_a_key_is_refused_from_outside_the_accounts_allowed_networks_like_its_password(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    code, key = await run_cli(capsys, "account", "api-key", "create", "fenced", "--db", gateway.db)
    assert code == 0
    async with client(gateway, ("fenced", "fenced-pw")) as basic:
        problem(await basic.get("/balance"), 401)  # 127.0.0.1 is not in 192.0.2.0/24
    async with client(gateway, None) as c:
        problem(await c.get("/balance", headers={"Authorization": f"Bearer {key.strip()}"}), 401)
        code, listing = await run_cli(capsys, "account", "api-key", "list", "fenced", "--db", gateway.db)
    assert listing.splitlines()[1].split("\t")[-1] == "never"  # a refused key is not "used"


async def test_cancel_refunds_a_scheduled_message_and_409_once_it_cannot(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (await run_cli(capsys, "account", "topup", "shop", "1.00", "--db", gateway.db))[0] == 0
    async with client(gateway, SHOP) as c:
        later = await c.post("/messages", json={"to": [PAID], "text": "later", "schedule_at": TOMORROW})
        assert later.status_code == 201
        (message,) = later.json()["messages"]
        assert message["state"] == "SCHEDULED"
        got = (await c.get(f"/messages/{message['message_id']}")).json()
        assert got["state"] == "SCHEDULED" and got["scheduled_at"] == TOMORROW
        assert (await c.get("/balance")).json()["balance"] == "0.95"
        cancelled = await c.delete(f"/messages/{message['message_id']}")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "CANCELLED"
        assert cancelled.json()["smpp_state"] == "DELETED" and cancelled.json()["done_at"] is not None
        assert (await c.get("/balance")).json()["balance"] == "1.00"  # refunded, as cancel_sm does
        problem(await c.delete(f"/messages/{message['message_id']}"), 409)
        problem(await c.delete("/messages/nosuch"), 404)
        problem(await c.get("/messages/nosuch"), 404)
    async with client(gateway) as demo:  # another account's message is not found, not 403: ids are not confirmed
        problem(await demo.get(f"/messages/{message['message_id']}"), 404)
        delivered = (await demo.post("/messages", json={"to": [FREE], "text": "now"})).json()["messages"][0]
        await wait_for_state(demo, delivered["message_id"], "DELIVERED")
        problem(await demo.delete(f"/messages/{delivered['message_id']}"), 409)


async def test_list_pages_by_cursor_filters_and_csv_like_history_export(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    numbers = [f"4477009001{i:02d}" for i in range(5)]
    async with client(gateway) as c:
        sent = await c.post("/messages", json={"to": numbers, "text": "page", "schedule_at": TOMORROW})
        ids = [m["message_id"] for m in sent.json()["messages"]]
        other = (await c.post("/messages", json={"to": [FREE], "text": "now", "client_ref": "x"})).json()
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": "2"} | ({} if cursor is None else {"cursor": cursor})
            page = (await c.get("/messages", params=params)).json()
            seen += [m["message_id"] for m in page["messages"]]
            pages += 1
            if (cursor := page["next_cursor"]) is None:
                break
        assert seen == [*ids, other["messages"][0]["message_id"]] and pages == 3
        scheduled = (await c.get("/messages", params={"state": "scheduled"})).json()["messages"]
        assert [m["message_id"] for m in scheduled] == ids
        by_number = (await c.get("/messages", params={"number": "+44 7700 900102"})).json()["messages"]
        assert [m["message_id"] for m in by_number] == [ids[2]]
        assert (await c.get("/messages", params={"to": "2000-01-01T00:00:00Z"})).json() == {
            "messages": [], "next_cursor": None
        }
        # Both exports below must see the same rows: the message sent now must not change state between them.
        await wait_for_state(c, other["messages"][0]["message_id"], "DELIVERED")
        exported = await c.get("/messages", headers={"Accept": "text/csv"})
        assert exported.headers["content-type"].startswith("text/csv")
    code, history = await run_cli(capsys, "history", "export", "--from", "2000-01-01", "--to", "2098-12-31",
                                   "--account", "demo", "--db", gateway.db)
    assert code == 0
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == list(COLUMNS)
    assert rows == list(csv.reader(io.StringIO(history)))


async def test_inbox_has_the_accounts_mo(gateway: Gateway) -> None:
    (modem,) = gateway.started.virtual_modems
    async with client(gateway) as c:
        # To the modem's own number: the network delivers it back to that modem as an MO, routed to demo.
        assert (await c.post("/messages", json={"to": [modem.msisdn], "text": "ping"})).status_code == 201
        with trio.fail_after(30):
            while not (inbox := (await c.get("/inbox")).json())["messages"]:
                await trio.sleep(0.05)
        (mo,) = inbox["messages"]
        assert (mo["text"], mo["to"], inbox["next_after"]) == ("ping", modem.msisdn, None)
        assert (await c.get("/inbox", params={"after": str(mo["id"])})).json() == {"messages": [], "next_after": None}
    async with client(gateway, SHOP) as shop:
        assert (await shop.get("/inbox")).json()["messages"] == []


async def test_segments_are_counted_by_the_routes_rules(gateway: Gateway) -> None:
    async with client(gateway) as c:
        async def count(body: dict[str, Any]) -> dict[str, Any]:
            response = await c.post("/segments", json=body)
            assert response.status_code == 200, response.text
            result: dict[str, Any] = response.json()
            return result

        assert await count({"text": "hello"}) == {"encoding": "GSM7", "characters": 5, "segments": 1,
                                                   "max_segments": 3, "fits": True}
        assert await count({"text": "x" * 161, "to": FREE}) == {
            "encoding": "GSM7", "characters": 161, "segments": 2, "max_segments": 3, "fits": True}
        assert (await count({"text": "€" * 80}))["characters"] == 160  # an extension character counts 2
        assert await count({"text": "é" * 500}) == {"encoding": "GSM7", "characters": 500, "segments": 4,
                                                   "max_segments": 3, "fits": False}
        assert await count({"text": "привет"}) == {"encoding": "UCS2", "characters": 6, "segments": 1,
                                                    "max_segments": 3, "fits": True}
        problem(await c.post("/segments", json={"text": "hi", "to": "12"}), 400)
        problem(await c.post("/segments", json={}), 400)
        too_long = problem(await c.post("/messages", json={"to": [FREE], "text": "é" * 500}), 400)
        assert too_long["rejected"][0]["code"] == "VENDOR_TOO_MANY_SEGMENTS"


def _served(deps: HttpDeps | None = None) -> Iterator[tuple[str, str]]:
    for route in api.routes(deps):  # type: ignore[arg-type]  # building routes reads nothing of deps
        for method in getattr(route, "methods", ()) or ():
            if method != "HEAD":
                yield getattr(route, "path"), method.lower()


async def test_openapi_document_is_valid_describes_every_route_and_is_served(gateway: Gateway) -> None:
    validate(openapi.DOCUMENT)
    documented = {(path, method) for path, item in openapi.DOCUMENT["paths"].items() for method in item}
    assert documented == set(_served())
    async with client(gateway, None) as c:
        served = await c.get("/openapi.json")
        assert served.status_code == 200 and served.json() == openapi.DOCUMENT
        docs = await c.get(gateway.url + "/api/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    for path in openapi.DOCUMENT["paths"]:
        assert f"<code>{path}</code>" in docs.text
    assert "<script" not in docs.text and "http://" not in docs.text and "https://" not in docs.text
