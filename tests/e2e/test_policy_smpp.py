"""End to end through SMPP (smpplib): the message policy's codes at submit, its receipts (err 8xx) and that what
it refuses or rejects is neither stored nor charged."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio

from esme import Delivered, Esme
from harness import FAST, in_thread, read_store
from smsgw.app import GatewayStarted, run_demo
from smsgw.cli import main
from smsgw.config import AccountConfig, RouteConfig
from smsgw.pdu.constants import CommandStatus, GatewayError
from smsgw.pdu.text import Encoding, encode_text
from smsgw.passwords import hash_password
from smsgw.scheduler.policy_store import SqlitePolicyFacts

pytestmark = pytest.mark.timeout(90)

BRAND_PASSWORD = "brand-pw"
PRICE_MICRO = 50_000  # 0.05 per segment
DNC_NUMBER = "447700123001"


@dataclasses.dataclass(frozen=True)
class PolicyGateway:
    started: GatewayStarted
    db: str


@pytest.fixture
async def policy_gateway(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[PolicyGateway]:
    keywords = tmp_path / "blocked.txt"
    keywords.write_text("casino\nre:free\\s+money\n", encoding="utf-8")
    base = dataclasses.replace(
        FAST,
        accounts=(
            *FAST.accounts,
            AccountConfig(system_id="brand", password_hash=hash_password(BRAND_PASSWORD), sender_ids=("Brand",)),
        ),
        routes=(RouteConfig(name="all", price_per_segment=0.05, blocked_keywords_path=str(keywords)),),
    )
    db = str(tmp_path / "gateway.db")
    stop = trio.Event()
    started: GatewayStarted = await nursery.start(
        functools.partial(run_demo, port=0, modems=2, db_path=db, base=base, stop=stop)
    )
    for account in ("brand", "demo"):
        assert await in_thread(main, ["account", "topup", account, "1.00", "--db", db]) == 0
    yield PolicyGateway(started, db)
    stop.set()


@pytest.fixture
async def brand(policy_gateway: PolicyGateway) -> AsyncIterator[Esme]:
    esme = await in_thread(Esme, policy_gateway.started.smpp.port, "brand", BRAND_PASSWORD)
    yield esme
    await in_thread(esme.close)


async def _read(db: str, query: str, *parameters: object) -> int:
    row = await read_store(db, query, *parameters)
    return int(row[0]) if row is not None else 0


async def _balance(db: str, account: str) -> int:
    return await _read(db, "SELECT balance FROM accounts WHERE name = ?", account)


async def _stored(db: str, account: str) -> int:
    return await _read(db, "SELECT count(*) FROM messages WHERE account = ?", account)


async def _brand_submit(brand: Esme, destination: str, text: bytes, **fields: object) -> tuple[int, str]:
    fields = {"source_addr": "Brand", "source_addr_ton": 5, "source_addr_npi": 0, **fields}
    return await in_thread(brand.submit, destination, text, **fields)


async def test_refused_at_submit_nothing_stored_or_charged(policy_gateway: PolicyGateway, brand: Esme) -> None:
    db = policy_gateway.db
    before = await _balance(db, "brand")
    status, _ = await _brand_submit(brand, "12ab34567", b"hello")
    assert status == CommandStatus.ESME_RINVDSTADR
    status, _ = await _brand_submit(brand, "447700123456", b"hello", source_addr="Other")
    assert status == GatewayError.SENDER_NOT_ALLOWED.command_status == 0x405
    status, _ = await _brand_submit(brand, "447700123456", b"hello", source_addr="Bad-Sender!")
    assert status == CommandStatus.ESME_RINVSRCADR
    for text in (b"Win big at the CASINO tonight", b"free   money for you"):
        status, _ = await _brand_submit(brand, "447700123456", text)
        assert status == GatewayError.BLOCKED_CONTENT.command_status == 0x402
    four_segments = encode_text("Longer than the three segments the route allows. " * 11, Encoding.GSM7)
    status, _ = await _brand_submit(brand, "447700123456", b"", message_payload=four_segments)
    assert status == GatewayError.TOO_MANY_SEGMENTS.command_status == 0x406
    assert await _stored(db, "brand") == 0
    assert await _balance(db, "brand") == before

    status, message_id = await _brand_submit(brand, "447700123456", b"allowed", registered_delivery=1)
    assert status == CommandStatus.ESME_ROK
    receipts = await in_thread(brand.receipts, 1, 30.0)
    assert [(r.message_id, r.stat) for r in receipts] == [(message_id, "DELIVRD")]
    assert await _balance(db, "brand") == before - PRICE_MICRO  # the one allowed message is charged


async def test_promotional_to_do_not_call_number_rejected_801_uncharged(
    policy_gateway: PolicyGateway, brand: Esme
) -> None:
    db = policy_gateway.db
    facts = await in_thread(SqlitePolicyFacts.open, db)
    try:
        assert await in_thread(facts.add_dnc, [DNC_NUMBER], source="test") == 1
    finally:
        await in_thread(facts.close)
    before = await _balance(db, "brand")
    status, promo_id = await _brand_submit(brand, DNC_NUMBER, b"50% off today", service_type="PROMO",
                                           registered_delivery=1)
    assert status == CommandStatus.ESME_ROK
    (receipt,) = await in_thread(brand.receipts, 1, 30.0)
    assert (receipt.message_id, receipt.stat, receipt.err) == (promo_id, "REJECTD", "801")
    assert await _balance(db, "brand") == before
    # Not promotional: the register does not apply, the message goes and is charged.
    status, plain_id = await _brand_submit(brand, DNC_NUMBER, b"your order shipped", registered_delivery=1)
    assert status == CommandStatus.ESME_ROK
    receipts = await in_thread(brand.receipts, 2, 30.0)
    assert (receipts[1].message_id, receipts[1].stat) == (plain_id, "DELIVRD")
    assert await _balance(db, "brand") == before - PRICE_MICRO


def _mo(items: list[Delivered]) -> list[Delivered]:
    return [d for d in items if not d.is_receipt]


async def test_opted_out_handset_rejected_803_uncharged(policy_gateway: PolicyGateway) -> None:
    db = policy_gateway.db
    demo = await in_thread(Esme, policy_gateway.started.smpp.port, "demo", "demo")
    try:
        # A modem sends STOP to the other one; the MO belongs to demo (the demo's default MO account), so its
        # sender - the handset here - opts out of demo and gets one confirmation.
        status, _ = await in_thread(demo.submit, "447700900002", b"STOP")
        assert status == CommandStatus.ESME_ROK
        confirmation = FAST.policy.opt_out_confirmation
        items = await in_thread(demo.wait_for, lambda items: any(d.text == confirmation for d in _mo(items)), 30.0)
        (stop,) = [d for d in _mo(items) if d.text == "STOP"]
        handset = stop.source_addr
        before = await _balance(db, "demo")
        status, message_id = await in_thread(demo.submit, handset, b"are you still there?", registered_delivery=1)
        assert status == CommandStatus.ESME_ROK
        (receipt,) = await in_thread(demo.receipts, 1, 30.0)
        assert (receipt.message_id, receipt.stat, receipt.err) == (message_id, "REJECTD", "803")
        assert await _balance(db, "demo") == before
    finally:
        await in_thread(demo.close)


async def test_unpaid_submission_resent_by_the_operator_is_sent_with_a_new_id(
    policy_gateway: PolicyGateway, brand: Esme, tmp_path: Path
) -> None:
    db = policy_gateway.db
    assert await in_thread(main, ["account", "topup", "brand", "-1.00", "--db", db]) == 0  # empty again
    status, _ = await _brand_submit(brand, "447700123456", b"pay me later", registered_delivery=1)
    assert status == GatewayError.INSUFFICIENT_BALANCE.command_status == 0x400
    assert await _stored(db, "brand") == 0 and await _balance(db, "brand") == 0  # refused at submit: never stored

    # A submit_multi whose free destination (the test range) is accepted: the one the balance cannot cover
    # belongs to that acknowledged message, kept REJECTED err 800 and uncharged, for the operator's resend.
    multi = await in_thread(
        brand.submit_multi, ["447700900999", "447700123456"], b"pay me later",
        source_addr="Brand", source_addr_ton=5, source_addr_npi=0, registered_delivery=1,
    )
    assert multi.command_status == 0
    assert [(u.destination_addr, u.error_status_code) for u in multi.unsuccess_sme] == [("447700123456", 0x400)]
    assert await _stored(db, "brand") == 2 and await _balance(db, "brand") == 0
    await in_thread(brand.receipts, 1, 30.0)  # the free destination's receipt
    brand.delivered.clear()

    assert await in_thread(main, ["account", "topup", "brand", "0.05", "--db", db]) == 0
    config = tmp_path / "operator.toml"
    config.write_text(
        f'[[accounts]]\nsystem_id = "brand"\npassword_hash = "{hash_password(BRAND_PASSWORD)}"\n\n'
        '[[routes]]\nname = "all"\nprice_per_segment = 0.05\n\n'
        f'[store]\npath = "{db}"\n',
        encoding="utf-8",
    )
    today = datetime.now(UTC).date().isoformat()
    resend = ["resend", "--account", "brand", "--from", today, "--to", today, "--error", "800", "--config", str(config)]
    assert await in_thread(main, resend) == 0
    (receipt,) = await in_thread(brand.receipts, 1, 30.0)  # the running gateway found it in the store
    assert receipt.stat == "DELIVRD"
    assert await _stored(db, "brand") == 3  # the free part, the unpaid original kept, and its resend under a new id
    assert await _read(db, "SELECT error_code FROM messages WHERE message_id = ?", receipt.message_id) == 0
    assert await _balance(db, "brand") == 0  # charged normally


async def test_numbers_not_valid_for_their_country_are_refused_and_named(
    policy_gateway: PolicyGateway, brand: Esme
) -> None:
    """issue 14 item 2 over SMPP: a destination or numeric sender libphonenumber does not know is refused, never
    rewritten into another number; the virtual network's numbers (unallocated in libphonenumber) go out."""
    db = policy_gateway.db
    status, _ = await _brand_submit(brand, "4412345", b"hello")
    assert status == CommandStatus.ESME_RINVDSTADR
    status, _ = await _brand_submit(brand, "00447700900123", b"hello", dest_addr_ton=0, dest_addr_npi=0)
    assert status == CommandStatus.ESME_ROK
    assert await _read(db, "SELECT count(*) FROM messages WHERE destination_addr = '447700900123'") == 1
    status, _ = await _brand_submit(brand, "447700922000", b"hello")  # the network's "unknown subscriber" row
    assert status == CommandStatus.ESME_ROK
    demo = await in_thread(Esme, policy_gateway.started.smpp.port, "demo", "demo")
    try:
        numeric = {"source_addr": "44791112345", "source_addr_ton": 1, "source_addr_npi": 1}
        status, _ = await in_thread(demo.submit, "447700123456", b"hello", **numeric)
        assert status == CommandStatus.ESME_RINVSRCADR
    finally:
        await in_thread(demo.close)
    assert await _stored(db, "demo") == 0


@pytest.mark.parametrize("sar", [False, True], ids=["udh", "sar"])
async def test_a_message_the_esme_split_beyond_the_routes_segments_is_refused(
    policy_gateway: PolicyGateway, brand: Esme, sar: bool
) -> None:
    """issue 14 item 3: 4 parts on a 3-segment route, split by the ESME with a UDH or SAR TLVs: 0x406 from the first
    part, nothing stored or charged; 3 parts go out."""
    db = policy_gateway.db
    before = await _balance(db, "brand")

    async def part(total: int, sequence: int) -> int:
        if sar:
            fields: dict[str, object] = {
                "sar_msg_ref_num": 9, "sar_total_segments": total, "sar_segment_seqnum": sequence
            }
            status, _ = await _brand_submit(brand, "447700123456", b"part", **fields)
        else:
            udh = bytes((5, 0, 3, 9, total, sequence))
            status, _ = await _brand_submit(brand, "447700123456", udh + b"part", esm_class=0x40)
        return status

    assert await part(4, 1) == GatewayError.TOO_MANY_SEGMENTS.command_status == 0x406
    assert await _stored(db, "brand") == 0 and await _balance(db, "brand") == before
    assert [await part(3, sequence) for sequence in (1, 2, 3)] == [CommandStatus.ESME_ROK] * 3
