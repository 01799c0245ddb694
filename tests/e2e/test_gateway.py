"""End to end: smpplib ESMEs -> SMPP server -> scheduler and SQLite store -> driver -> pty -> virtual modem ->
virtual network, and the way back (status reports -> receipts, handsets' replies -> MO deliver_sm)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from harness import FAST, SHOP_PASSWORD, in_thread
from esme import Delivered, Esme
from smsgw.app import GatewayStarted, run_demo
from smsgw.client import split_text
from smsgw.config import RouteConfig
from smsgw.pdu.constants import CommandStatus, MessageState, vendor_status
from smsgw.pdu.text import Encoding, encode_text

pytestmark = pytest.mark.timeout(90)

# Relative SMPP times (SMPP 3.4 7.1.1): YYMMDDhhmmss t nn R.
TWO_SECONDS = "000000000002000R"
ONE_HOUR = "000000010000000R"


@pytest.fixture
async def demo(gateway: GatewayStarted) -> AsyncIterator[Esme]:
    esme = await in_thread(Esme, gateway.smpp.port, "demo", "demo")
    yield esme
    await in_thread(esme.close)


def _mo(items: list[Delivered]) -> list[Delivered]:
    return [d for d in items if not d.is_receipt]


async def test_every_row_of_the_virtual_network(gateway: GatewayStarted, demo: Esme) -> None:
    rows = {
        "447700900002": "DELIVRD",  # another virtual modem: arrives there as MO
        "447700900999": "DELIVRD",  # the handset answers "RE: ..."
        "447700911000": "EXPIRED",  # switched off until the validity ends
        "447700922000": "UNDELIV",  # unknown subscriber
        "447700933000": "DELIVRD",  # memory full on the first attempt
        "447700123456": "DELIVRD",  # any other number
    }
    ids = {}
    for destination in rows:
        status, message_id = await in_thread(
            demo.submit, destination, f"row {destination}".encode(), registered_delivery=1,
            validity_period=TWO_SECONDS,
        )
        assert status == CommandStatus.ESME_ROK
        ids[message_id] = destination
    receipts = await in_thread(demo.receipts, len(rows), 60.0)
    assert {ids[r.message_id]: r.stat for r in receipts} == rows
    assert all(r.err == "000" for r in receipts if r.stat == "DELIVRD")

    # Two MO: the reply of 447700900999 (to the account that wrote to it) and the SMS modem 2 received.
    mo = await in_thread(demo.wait_for, lambda items: len(_mo(items)) >= 2, 30.0)
    texts = {d.source_addr: (d.text, d.destination_addr, d.esm_class) for d in _mo(mo)}
    reply_text, reply_to, esm_class = texts["447700900999"]
    assert reply_text == "RE: row 447700900999" and esm_class == 0
    assert reply_to in {m.msisdn for m in gateway.virtual_modems}
    (modem_to_modem,) = [v for k, v in texts.items() if k != "447700900999"]
    assert modem_to_modem[:2] == ("row 447700900002", "447700900002")


async def test_reply_goes_to_the_account_that_wrote(gateway: GatewayStarted, demo: Esme) -> None:
    shop = await in_thread(Esme, gateway.smpp.port, "shop", SHOP_PASSWORD)
    try:
        status, _ = await in_thread(shop.submit, "447700900999", b"order 42 shipped")
        assert status == CommandStatus.ESME_ROK
        items = await in_thread(shop.wait_for, lambda items: len(_mo(items)) >= 1, 30.0)
        (reply,) = _mo(items)
        assert reply.text == "RE: order 42 shipped" and reply.source_addr == "447700900999"
        await trio.sleep(0.5)  # give a misrouted copy time to show up at the other account
        await in_thread(demo.wait_for, lambda items: True, 0.1)
        assert _mo(demo.delivered) == []
    finally:
        await in_thread(shop.close)


async def test_keyword_routes_an_mo_to_the_account_owning_it(gateway: GatewayStarted, demo: Esme) -> None:
    shop = await in_thread(Esme, gateway.smpp.port, "shop", SHOP_PASSWORD, bind="receiver")
    try:
        # One virtual modem texts another: the handset (a modem's number) never got a message from the receiving
        # modem, so no reply rule applies; the first word is the shop's keyword.
        status, _ = await in_thread(demo.submit, "447700900002", b"shop where is my order")
        assert status == CommandStatus.ESME_ROK
        items = await in_thread(shop.wait_for, lambda items: len(_mo(items)) >= 1, 30.0)
        (mo,) = _mo(items)
        assert mo.text == "shop where is my order" and mo.destination_addr == "447700900002"
        await trio.sleep(0.5)
        await in_thread(demo.wait_for, lambda items: True, 0.1)
        assert _mo(demo.delivered) == []
    finally:
        await in_thread(shop.close)


@pytest.mark.parametrize(
    ("text", "data_coding"),
    [("Long GSM text with escapes {€} " * 10, 0), ("Длинный текст на кириллице 😀 " * 6, 8)],
    ids=["gsm", "ucs2"],
)
async def test_gateway_splits_long_text_one_receipt(
    gateway: GatewayStarted, demo: Esme, text: str, data_coding: int
) -> None:
    payload = encode_text(text, Encoding(data_coding))
    status, message_id = await in_thread(
        demo.submit, "447700900003", b"", message_payload=payload, data_coding=data_coding, registered_delivery=1
    )
    assert status == CommandStatus.ESME_ROK
    receipts = await in_thread(demo.receipts, 1, 60.0)
    assert [(r.message_id, r.stat) for r in receipts] == [(message_id, "DELIVRD")]
    # The receiving modem reassembled the parts into the original text.
    items = await in_thread(demo.wait_for, lambda items: len(_mo(items)) >= 1, 30.0)
    assert _mo(items)[0].text == text
    await trio.sleep(0.5)
    await in_thread(demo.wait_for, lambda items: True, 0.1)
    assert len([d for d in demo.delivered if d.is_receipt]) == 1  # one receipt for the whole message


async def test_client_split_parts_one_receipt_per_part(gateway: GatewayStarted, demo: Esme) -> None:
    text = "Parts split by the client, each with its own UDH and message id. " * 5
    ids = []
    for part in split_text(text):
        status, message_id = await in_thread(
            demo.submit, "447700900004", part.short_message, esm_class=part.esm_class,
            data_coding=part.data_coding, registered_delivery=1,
        )
        assert status == CommandStatus.ESME_ROK
        ids.append(message_id)
    assert len(ids) == 3 and len(set(ids)) == 3
    receipts = await in_thread(demo.receipts, 3, 60.0)
    assert sorted(r.message_id for r in receipts) == sorted(ids)
    assert {r.stat for r in receipts} == {"DELIVRD"}
    items = await in_thread(demo.wait_for, lambda items: len(_mo(items)) >= 1, 30.0)
    assert _mo(items)[0].text == text


async def test_flash_message(gateway: GatewayStarted, demo: Esme) -> None:
    # data_coding 0x10: GSM 7-bit, message class 0 (TS 23.038), shown at once and not stored by the handset
    status, message_id = await in_thread(demo.submit, "447700900002", b"flash!", data_coding=0x10,
                                         registered_delivery=1)
    assert status == CommandStatus.ESME_ROK
    receipts = await in_thread(demo.receipts, 1, 30.0)
    assert [(r.message_id, r.stat) for r in receipts] == [(message_id, "DELIVRD")]
    items = await in_thread(demo.wait_for, lambda items: len(_mo(items)) >= 1, 30.0)
    assert _mo(items)[0].text == "flash!"


async def test_scheduled_then_cancelled(gateway: GatewayStarted, demo: Esme) -> None:
    status, message_id = await in_thread(
        demo.submit, "447700123456", b"later", schedule_delivery_time=ONE_HOUR, registered_delivery=1
    )
    assert status == CommandStatus.ESME_ROK
    assert await in_thread(demo.cancel, message_id, "447700123456") == CommandStatus.ESME_ROK
    query = await in_thread(demo.request, "query_sm", message_id=message_id)
    assert int(query.status) == CommandStatus.ESME_ROK
    assert int(query.message_state) == MessageState.DELETED
    assert await in_thread(demo.cancel, message_id, "447700123456") == CommandStatus.ESME_RCANCELFAIL


async def test_receipts_wait_for_a_receiver_bind(gateway: GatewayStarted) -> None:
    sender = await in_thread(Esme, gateway.smpp.port, "shop", SHOP_PASSWORD, bind="transmitter")
    try:
        status, message_id = await in_thread(sender.submit, "447700123456", b"queued", registered_delivery=1)
        assert status == CommandStatus.ESME_ROK
        with trio.fail_after(30):
            while True:
                query = await in_thread(sender.request, "query_sm", message_id=message_id)
                if int(query.message_state) == MessageState.DELIVERED:
                    break
                await trio.sleep(0.1)
    finally:
        await in_thread(sender.close)
    receiver = await in_thread(Esme, gateway.smpp.port, "shop", SHOP_PASSWORD, bind="receiver")
    try:
        receipts = await in_thread(receiver.receipts, 1, 30.0)
        assert [(r.message_id, r.stat) for r in receipts] == [(message_id, "DELIVRD")]
    finally:
        await in_thread(receiver.close)



async def test_routes_decide_at_submit(nursery: trio.Nursery, tmp_path: Path) -> None:
    routes = (RouteConfig(name="uk-test", prefixes=("447700",), max_segments=1),)
    started: GatewayStarted = await nursery.start(
        functools.partial(run_demo, port=0, modems=1, db_path=str(tmp_path / "gateway.db"),
                          base=dataclasses.replace(FAST, routes=routes), stop=trio.Event())
    )
    esme = await in_thread(Esme, started.smpp.port, "demo", "demo")
    try:
        status, _ = await in_thread(esme.submit, "4915112345678", b"no route to Germany")
        assert status == vendor_status(4)  # 0x404: no route (receipt err 804)
        long_text = encode_text("Two segments are more than this route allows. " * 4, Encoding.GSM7)
        status, _ = await in_thread(esme.submit, "447700123456", b"", message_payload=long_text)
        assert status == vendor_status(6)  # 0x406: too many segments (err 806)
        status, message_id = await in_thread(esme.submit, "447700123456", b"fits", registered_delivery=1)
        assert status == CommandStatus.ESME_ROK
        receipts = await in_thread(esme.receipts, 1, 30.0)
        assert [(r.message_id, r.stat) for r in receipts] == [(message_id, "DELIVRD")]
    finally:
        await in_thread(esme.close)


async def test_stop_unbinds_sessions_and_a_restart_knows_the_message(nursery: trio.Nursery, tmp_path: Path) -> None:
    db_path = str(tmp_path / "gateway.db")
    stop = trio.Event()
    done = trio.Event()

    async def gateway(*, task_status: trio.TaskStatus[GatewayStarted]) -> None:
        await run_demo(port=0, modems=1, db_path=db_path, base=FAST, stop=stop, task_status=task_status)
        done.set()

    started: GatewayStarted = await nursery.start(gateway)
    esme = await in_thread(Esme, started.smpp.port, "demo", "demo")
    try:
        status, message_id = await in_thread(esme.submit, "447700123456", b"later", schedule_delivery_time=ONE_HOUR)
        assert status == CommandStatus.ESME_ROK
        stop.set()
        await in_thread(esme.wait_unbound, 30.0)
    finally:
        esme.client.disconnect()
    with trio.fail_after(30):
        await done.wait()
    assert not started.virtual_modems[0].link.exists()  # the pty went with the demo

    again: GatewayStarted = await nursery.start(
        functools.partial(run_demo, port=0, modems=1, db_path=db_path, base=FAST, stop=trio.Event())
    )
    esme = await in_thread(Esme, again.smpp.port, "demo", "demo")
    try:
        query = await in_thread(esme.request, "query_sm", message_id=message_id)
        assert int(query.status) == CommandStatus.ESME_ROK
        assert int(query.message_state) == MessageState.ENROUTE  # still scheduled
    finally:
        await in_thread(esme.close)
