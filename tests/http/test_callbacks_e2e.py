"""The delivery-report callbacks end to end, inside the whole gateway as `smsgw demo` runs it (virtual modem on a
pty, the real driver, SQLite, SMPP and HTTP on port 0): a REST send with a dlr_url -> virtual modem -> status
report -> the signed JSON report received by an HTTP server on 127.0.0.1; and an SMPP submission of an account with
`dlr_callback_url` -> its JSON report there too, while its SMPP receipt still arrives on the bind."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import trio

from smsgw.app import DEMO_MODEM_GROUP, GatewayStarted, run_demo
from smsgw.config import AccountConfig, RouteConfig
from smsgw.passwords import hash_password

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from esme import Esme  # noqa: E402
from harness import FAST, in_thread  # noqa: E402

from callback_receiver import Received, Receiver  # noqa: E402

pytestmark = pytest.mark.timeout(90)

HANDSET = "447700900123"  # the virtual network delivers it after a short delay
SHOP_SECRET = "shop-key"
HOOKED_SECRET = "hooked-key"
# DESIGN.md, "Delivery-report callbacks": exactly these members.
REPORT_FIELDS = {"message_id", "to", "state", "state_code", "error_code", "done_at", "client_ref"}


@pytest.fixture
async def receiver(nursery: trio.Nursery) -> Receiver:
    started: Receiver = await nursery.start(Receiver().serve)
    return started


@pytest.fixture
async def gateway(nursery: trio.Nursery, tmp_path: Path, receiver: Receiver) -> AsyncIterator[GatewayStarted]:
    base = dataclasses.replace(
        FAST,
        accounts=(
            AccountConfig("shop", hash_password("shop-pw"), callback_secret=SHOP_SECRET),
            AccountConfig("hooked", hash_password("hook-pw"), callback_secret=HOOKED_SECRET,
                          dlr_callback_url=f"{receiver.url}/account"),
        ),
        routes=(RouteConfig(name="default", modem_group=DEMO_MODEM_GROUP),),
    )
    stop = trio.Event()
    started: GatewayStarted = await nursery.start(functools.partial(
        run_demo, port=0, http_port=0, modems=1, db_path=str(tmp_path / "gateway.db"), base=base, stop=stop
    ))
    assert started.http is not None
    async with httpx.AsyncClient(base_url=started.http.url) as http:
        with trio.fail_after(30):  # a hang guard: the virtual modem registers well within this
            while (await http.get("/readyz")).status_code != 200:
                await trio.sleep(0.05)
    yield started
    stop.set()


def signed_report(request: Received, secret: str) -> dict[str, object]:
    """The JSON report of `request`, once its signature is checked as a receiver would check it."""
    assert request.method == "POST"
    assert request.headers["content-type"].startswith("application/json")
    assert request.headers["user-agent"].startswith("smsgw/")
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-smsgw-signature"], expected)
    report: dict[str, object] = json.loads(request.body)
    assert set(report) == REPORT_FIELDS
    done_at = datetime.fromisoformat(str(report["done_at"]))
    assert done_at.utcoffset() == UTC.utcoffset(None)
    return report


async def test_a_rest_send_with_dlr_url_gets_its_signed_json_report(
    gateway: GatewayStarted, receiver: Receiver
) -> None:
    assert gateway.http is not None
    async with httpx.AsyncClient(base_url=gateway.http.url, auth=("shop", "shop-pw")) as client:
        sent = await client.post("/api/v1/messages", json={
            "to": [HANDSET], "text": "Your code is 4711", "dlr_url": f"{receiver.url}/rest", "client_ref": "order-9",
        })
    assert sent.status_code == 201, sent.text
    (message,) = sent.json()["messages"]
    with trio.fail_after(30):  # a hang guard: the virtual network delivers within a second
        (request,) = await receiver.wait_for(1)
    assert request.path == "/rest"
    report = signed_report(request, SHOP_SECRET)
    assert {k: v for k, v in report.items() if k != "done_at"} == {
        "message_id": message["message_id"], "to": HANDSET, "state": "DELIVERED", "state_code": 22,
        "error_code": "000", "client_ref": "order-9",
    }


async def test_an_smpp_submission_gets_its_receipt_on_the_bind_and_the_accounts_json_report(
    gateway: GatewayStarted, receiver: Receiver
) -> None:
    esme = await in_thread(Esme, gateway.smpp.port, "hooked", "hook-pw")
    try:
        status, message_id = await in_thread(esme.submit, HANDSET, b"over SMPP", registered_delivery=1)
        assert status == 0
        (receipt,) = await in_thread(esme.receipts, 1)
    finally:
        await in_thread(esme.close)
    assert (receipt.message_id, receipt.stat) == (message_id, "DELIVRD")
    with trio.fail_after(30):  # the report is queued in the same transaction as the receipt
        (request,) = await receiver.wait_for(1)
    assert request.path == "/account"
    report = signed_report(request, HOOKED_SECRET)
    assert {k: v for k, v in report.items() if k != "done_at"} == {
        "message_id": message_id, "to": HANDSET, "state": "DELIVERED", "state_code": 22, "error_code": "000",
        "client_ref": None,
    }
