"""End to end: an account with `mo_receipts` takes an MO over SMPP, and the handset that sent it (a virtual modem
of the demo network) receives the gateway's notice as a class 0 (flash) SMS."""

from __future__ import annotations

import dataclasses
import functools
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from esme import Esme
from harness import FAST, SHOP_PASSWORD, in_thread

from smsgw.app import GatewayStarted, run_demo
from smsgw.pdu.constants import CommandStatus

pytestmark = pytest.mark.timeout(90)

NOTICE = "Your message was delivered to shop"


@pytest.fixture
def mo_default_account() -> str:
    return ""  # the demo's own default: the demo account


@pytest.fixture
async def gateway(nursery: trio.Nursery, tmp_path: Path, mo_default_account: str) -> AsyncIterator[GatewayStarted]:
    (shop,) = FAST.accounts
    config = dataclasses.replace(
        FAST,
        accounts=(dataclasses.replace(shop, mo_receipts=True),),
        messages=dataclasses.replace(FAST.messages, mo_default_account=mo_default_account),
    )
    stop = trio.Event()
    started: GatewayStarted = await nursery.start(
        functools.partial(run_demo, port=0, modems=4, db_path=str(tmp_path / "gateway.db"), base=config, stop=stop)
    )
    yield started
    stop.set()


def _received(db_path: Path, text: str) -> list[tuple[str, str, int]]:
    """(modem, originator, flash) of each SMS the gateway's modems received with this text."""
    with sqlite3.connect(db_path) as connection:
        rows = connection.execute("SELECT modem, originator, flash FROM mo_messages WHERE text = ?", (text,))
        return [(str(modem), str(originator), int(flash)) for modem, originator, flash in rows]


async def test_handset_gets_a_flash_notice_once_the_esme_takes_its_mo(
    gateway: GatewayStarted, tmp_path: Path
) -> None:
    demo = await in_thread(Esme, gateway.smpp.port, "demo", "demo")
    shop = await in_thread(Esme, gateway.smpp.port, "shop", SHOP_PASSWORD, bind="receiver")
    try:
        # A virtual modem texts another with the shop's keyword: that is the handset's MO to the shop.
        status, _ = await in_thread(demo.submit, "447700900002", b"shop where is my order")
        assert status == CommandStatus.ESME_ROK
        items = await in_thread(shop.wait_for, lambda items: any(not d.is_receipt for d in items), 30.0)
        (mo,) = [d for d in items if not d.is_receipt]  # smpplib acknowledged it: the shop took it
        handset = mo.source_addr
        with trio.fail_after(30):
            while not (received := _received(tmp_path / "gateway.db", NOTICE)):
                await trio.sleep(0.1)
        # The notice reached the handset's own modem (a modem of the same demo network) as a class 0 SMS.
        (modem, _, flash) = received[0]
        assert flash == 1
        assert [m.msisdn for m in gateway.virtual_modems if m.name == modem] == [handset]
    finally:
        await in_thread(shop.close)
        await in_thread(demo.close)


@pytest.mark.parametrize("mo_default_account", ["shop"])
async def test_a_notice_to_one_of_the_gateways_own_modems_does_not_loop(
    gateway: GatewayStarted, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The handset is a modem of the gateway itself, so the notice comes back as an MO, and the shop takes
    # everything: its own texts' replies, and (default account) whatever else arrives.
    caplog.set_level(logging.INFO, "smsgw.scheduler.mo")
    shop = await in_thread(Esme, gateway.smpp.port, "shop", SHOP_PASSWORD)
    try:
        status, _ = await in_thread(shop.submit, "447700900002", b"SHOP where is my order")
        assert status == CommandStatus.ESME_ROK
        # The handset's MO, then the notice the gateway sent that handset, arriving at its modem as an MO.
        items = await in_thread(shop.wait_for, lambda items: sum(not d.is_receipt for d in items) >= 2, 30.0)
        first, echo = [d for d in items if not d.is_receipt][:2]
        assert (first.text, echo.text) == ("SHOP where is my order", NOTICE)
        with trio.fail_after(30):
            while "reason=own notice came back" not in caplog.text:
                await trio.sleep(0.1)
        await trio.sleep(1)  # a second notice, if the loop were not broken, would be stored by now
        with sqlite3.connect(tmp_path / "gateway.db") as connection:
            (notices,) = connection.execute("SELECT COUNT(*) FROM messages WHERE text = ?", (NOTICE,)).fetchone()
        assert notices == 1
        # It arrived once, at the modem of the handset that wrote.
        ((modem, _, _),) = _received(tmp_path / "gateway.db", NOTICE)
        assert [m.msisdn for m in gateway.virtual_modems if m.name == modem] == [first.source_addr]
    finally:
        await in_thread(shop.close)
