"""Kannel's /cgi-bin/sendsms and Jasmin's /send and /balance over real sockets, inside the whole gateway as
`smsgw demo` runs it: the requests those projects document, through a virtual modem, to the status report and the
dlr-url callback received by an HTTP server on 127.0.0.1 (Kannel's escapes expanded, Jasmin's fields)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from smsgw.app import DEMO_MODEM_GROUP, GatewayStarted, run_demo
from smsgw.config import Config, RouteConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from harness import FAST, SHOP_PASSWORD  # noqa: E402

from callback_receiver import Receiver  # noqa: E402

pytestmark = pytest.mark.timeout(90)

HANDSET = "447700900123"  # the virtual network delivers it after a short delay
PAID = "447911123456"  # a real-looking UK mobile: priced (the virtual network's numbers are free)
UNROUTED = "33612345678"  # no route below takes French numbers


@contextlib.asynccontextmanager
async def running(nursery: trio.Nursery, tmp_path: Path, base: Config = FAST) -> AsyncIterator[str]:
    """The demo gateway on `base` (ports 0) for the block: its HTTP URL."""
    stop = trio.Event()
    started: GatewayStarted = await nursery.start(functools.partial(
        run_demo, port=0, http_port=0, modems=1, db_path=str(tmp_path / "gateway.db"), base=base, stop=stop
    ))
    assert started.http is not None
    try:
        yield started.http.url
    finally:
        stop.set()


@pytest.fixture
async def gateway(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[str]:
    async with running(nursery, tmp_path) as url:
        yield url


@pytest.fixture
async def receiver(nursery: trio.Nursery) -> Receiver:
    started: Receiver = await nursery.start(Receiver().serve)
    return started


@pytest.fixture
async def client(gateway: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway) as http:
        with trio.fail_after(30):  # the virtual modem registers well within this
            while (await http.get("/readyz")).status_code != 200:
                await trio.sleep(0.05)
        yield http


async def test_kannel_sendsms_with_dlr_url_escapes(client: httpx.AsyncClient, receiver: Receiver) -> None:
    dlr_url = f"{receiver.url}/kannel?type=%d&to=%p&from=%P&id=%I&reply=%A&ts=%T"
    response = await client.get("/cgi-bin/sendsms", params={
        "username": "demo", "password": "demo", "from": "447700900001", "to": HANDSET, "text": "Hello Kannel",
        "dlr-mask": "3", "dlr-url": dlr_url,
    })
    assert (response.status_code, response.text) == (202, "0: Accepted for delivery")
    with trio.fail_after(30):
        (report,) = await receiver.wait_for(1)
    assert report.method == "GET" and report.path == "/kannel"
    assert report.query["type"] == "1"  # delivered to the handset
    assert (report.query["to"], report.query["from"]) == (HANDSET, "447700900001")
    assert "stat:DELIVRD" in report.query["reply"] and report.query["ts"].isdigit()
    assert report.query["id"] in report.query["reply"]


async def test_kannel_answers_and_several_receivers(client: httpx.AsyncClient) -> None:
    wrong = await client.get("/cgi-bin/sendsms", params={"username": "demo", "password": "x", "to": HANDSET,
                                                          "text": "hi"})
    assert (wrong.status_code, wrong.text) == (403, "Authorization failed for sendsms")
    missing = await client.get("/cgi-bin/sendsms", params={"username": "demo", "password": "demo", "text": "hi"})
    assert (missing.status_code, missing.text) == (400, "Missing receiver number, rejected")
    empty = await client.get("/cgi-bin/sendsms", params={"username": "demo", "password": "demo", "to": " ",
                                                          "text": "hi"})
    assert (empty.status_code, empty.text) == (400, "Empty receiver number not allowed, rejected")
    mask = await client.get("/cgi-bin/sendsms", params={"username": "demo", "password": "demo", "to": HANDSET,
                                                         "text": "hi", "dlr-mask": "64"})
    assert (mask.status_code, mask.text) == (400, "DLR-Mask field misformed, rejected")
    validity = await client.get("/cgi-bin/sendsms", params={"username": "demo", "password": "demo", "to": HANDSET,
                                                             "text": "hi", "validity": "-2"})
    assert (validity.status_code, validity.text) == (400, "Validity field misformed, rejected")
    denied = await client.get("/cgi-bin/sendsms", params={"username": "demo", "password": "demo",
                                                           "to": f"{HANDSET} 12", "text": "hi"})
    assert (denied.status_code, denied.text) == (202, "0: Accepted for delivery Denied receivers are: 12")
    coding = await client.get("/cgi-bin/sendsms", params={"username": "demo", "password": "demo", "to": HANDSET,
                                                           "text": "hi", "coding": "7"})
    assert (coding.status_code, coding.text) == (400, "Coding field misformed, rejected")
    # Two receivers separated by '+' (a space once decoded), UCS-2 from UTF-8 text, flash (mclass 0).
    several = await client.get(
        f"/cgi-bin/sendsms?username=demo&password=demo&to={HANDSET}+447700900124&text=%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82"
        "&coding=2&charset=utf-8&mclass=0&validity=30"
    )
    assert (several.status_code, several.text) == (202, "0: Accepted for delivery")
    later = await client.get("/cgi-bin/sendsms", params={"username": "demo", "password": "demo", "to": HANDSET,
                                                          "text": "later", "deferred": "10"})
    assert (later.status_code, later.text) == (202, "3: Queued for later delivery")


async def test_jasmin_send_with_both_dlr_levels_and_balance(client: httpx.AsyncClient, receiver: Receiver) -> None:
    response = await client.post("/send", data={
        "username": "demo", "password": "demo", "to": HANDSET, "content": "Hello world !", "from": "447700900001",
        "dlr": "yes", "dlr-url": f"{receiver.url}/jasmin", "dlr-level": "3", "dlr-method": "POST",
    })
    assert response.status_code == 200 and response.text.startswith('Success "')
    message_id = response.text.removeprefix('Success "').removesuffix('"')
    with trio.fail_after(30):
        smsc, handset = await receiver.wait_for(2)
    assert smsc.method == handset.method == "POST"
    assert smsc.form == {"id": message_id, "message_status": "ESME_ROK", "level": "1", "connector": "smsgw"}
    fields = handset.form
    assert {k: fields[k] for k in ("id", "message_status", "level", "id_smsc", "sub", "dlvrd", "err", "text")} == {
        "id": message_id, "message_status": "DELIVRD", "level": "2", "id_smsc": message_id, "sub": "001",
        "dlvrd": "001", "err": "000", "text": "Hello world !",
    }
    assert len(fields["subdate"]) == len(fields["donedate"]) == 10
    balance = await client.get("/balance", params={"username": "demo", "password": "demo"})
    # The demo's routes are free: nothing was charged; Jasmin says "ND" for a quota it does not define.
    assert balance.status_code == 200 and balance.json() == {"balance": 0.0, "sms_count": "ND"}


async def test_jasmin_errors(client: httpx.AsyncClient) -> None:
    answers = [
        await client.get("/send", params={"username": "demo", "password": "demo", "to": HANDSET}),
        await client.get("/send", params={"username": "demo", "password": "demo", "to": HANDSET, "content": "x",
                                          "colour": "red"}),
        await client.get("/send", params={"username": "demo", "password": "bad", "to": HANDSET, "content": "x"}),
        await client.get("/send", params={"username": "demo", "password": "demo", "to": HANDSET, "content": "x",
                                          "dlr": "yes", "dlr-url": "http://127.0.0.1/x", "dlr-level": "5",
                                          "dlr-method": "GET"}),
    ]
    assert [(a.status_code, a.text) for a in answers] == [
        (400, 'Error "Mandatory arguments not found, please refer to the HTTPAPI specifications."'),
        (400, 'Error "Argument colour is unknown."'),
        (403, 'Error "Authentication failure for username:demo"'),
        (400, 'Error "Argument dlr-level has an invalid value: 5."'),
    ]


async def test_the_compatibility_endpoints_share_the_accounts_throughput_limit(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """One segment a burst and almost no refill: the second message of each face is over the rate, answered as
    Kannel (503, try again later) and Jasmin (403 "User throughput exceeded") answer it."""
    slow = dataclasses.replace(FAST.accounts[0], throughput_per_s=0.001, throughput_burst=1.0)
    login = {"username": "shop", "password": SHOP_PASSWORD}
    async with running(nursery, tmp_path, dataclasses.replace(FAST, accounts=(slow,))) as url, \
            httpx.AsyncClient(base_url=url) as http:
        kannel = {**login, "to": HANDSET, "text": "hello"}
        assert (await http.get("/cgi-bin/sendsms", params=kannel)).status_code == 202
        over = await http.get("/cgi-bin/sendsms", params=kannel)
        assert (over.status_code, over.text) == (503, "Temporal failure, try again later.")
        jasmin = await http.get("/send", params={**login, "to": HANDSET, "content": "hello"})
        assert (jasmin.status_code, jasmin.text) == (403, 'Error "User throughput exceeded"')


async def test_refusals_for_balance_and_route_answer_as_each_product_and_store_nothing(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Kannel's 402 (every receiver refused for want of balance: Kannel itself has no billing, so the status is
    the gateway's) and 403 "Not routable. Do not try again." (bearerbox's ack_failed); Jasmin's 412 "No route
    found" (its documented routing error) and 403 "Cannot charge submit_sm" (its charging error). Over a priced
    route for UK numbers only and an account with no balance; none of the refused messages is stored: the
    account's history holds only the one message sent as a control."""
    uk = RouteConfig(name="uk", prefixes=("44",), modem_group=DEMO_MODEM_GROUP, price_per_segment=0.05)
    login = {"username": "shop", "password": SHOP_PASSWORD}
    async with running(nursery, tmp_path, dataclasses.replace(FAST, routes=(uk,))) as url, \
            httpx.AsyncClient(base_url=url) as http:
        poor = await http.get("/cgi-bin/sendsms", params={**login, "to": PAID, "text": "buy"})
        assert (poor.status_code, poor.text) == (402, "insufficient balance, rejected")
        # The status is the first refused receiver's: here the balance, though the second has no route either.
        both = await http.get("/cgi-bin/sendsms", params={**login, "to": f"{PAID} {UNROUTED}", "text": "buy"})
        assert (both.status_code, both.text) == (402, "insufficient balance, rejected")
        unrouted = await http.get("/cgi-bin/sendsms", params={**login, "to": UNROUTED, "text": "hi"})
        assert (unrouted.status_code, unrouted.text) == (403, "Not routable. Do not try again.")
        no_route = await http.get("/send", params={**login, "to": UNROUTED, "content": "hi"})
        assert (no_route.status_code, no_route.text) == (412, 'Error "No route found"')
        no_charge = await http.post("/send", data={**login, "to": PAID, "content": "buy"})
        assert (no_charge.status_code, no_charge.text) == (
            403, 'Error "Cannot charge submit_sm, check RouterPB log file for details"')
        control = await http.get("/send", params={**login, "to": HANDSET, "content": "free"})
        assert control.status_code == 200, control.text
        history = await http.get("/api/v1/messages", auth=("shop", SHOP_PASSWORD))
        assert [(m["to"], m["message_id"]) for m in history.json()["messages"]] == [
            (HANDSET, control.text.removeprefix('Success "').removesuffix('"'))
        ]
        balance = await http.get("/balance", params=login)
        assert balance.json() == {"balance": 0.0, "sms_count": "ND"}
