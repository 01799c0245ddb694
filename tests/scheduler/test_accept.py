"""The one accept path as a plain-values API (`smsgw.scheduler.accept`), on a real SQLite store and MockClock:
what an HTTP request would hand it (text, numbers as people write them, an absolute schedule, a validity in
minutes, flash), what the SMPP adapter hands it (encoded bytes), and the gateway's own notices."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
import trio
from trio.testing import MockClock

from smsgw.config import AccountConfig, Config, MessageConfig, RouteConfig, SmppConfig
from smsgw.pdu.constants import CommandStatus, GatewayError, Npi, Ton
from smsgw.scheduler.accept import (
    RECEIPT_WANTED,
    AcceptPath,
    Accepted,
    Encoded,
    Options,
    Origin,
    Rejected,
    Submission,
    Text,
    Timing,
)
from smsgw.scheduler.model import Address, Handoff
from smsgw.scheduler.sqlite_store import SqliteStore
from smsgw.scheduler.states import State
from smsgw.scheduler.timing import WallClock, from_ms, to_ms
from tests.scheduler.test_scheduler import START

PAID = "441234567890"
OPTED_OUT = "447911000009"
CONFIG = Config(
    accounts=(AccountConfig("acme", "x", default_country_code="44", sender_ids=("ACME",)),),
    routes=(
        RouteConfig(name="uk", prefixes=("44",), price_per_segment=0.05, signature="ACME: "),
        RouteConfig(name="fr", prefixes=("33",), price_per_segment=0.05, max_segments=1),
    ),
    messages=MessageConfig(foreign_writes_poll_s=0),
)
HOUR = timedelta(hours=1)


@pytest.fixture
async def path(store: SqliteStore, db_clock: MockClock) -> AcceptPath:
    clock = WallClock(START)
    await store.topup("acme", 1_000_000, clock.now_ms())
    return AcceptPath(store, CONFIG, clock)


def http_like(to: str, text: str, **options: object) -> Submission:
    """What the HTTP API will build from one "to" of POST /api/v1/messages: an id per destination."""
    return Submission(
        (Address(to),),  # TON unknown: read in the account's region, as a person wrote it
        Text(text),
        Address(""),  # no "from": the account's first sender ID
        Timing(START + HOUR, timedelta(minutes=30)),
        Options(registered_delivery=RECEIPT_WANTED, client_ref="order-17", **options),  # type: ignore[arg-type]
    )


async def test_a_non_smpp_caller_gets_one_result_per_destination(path: AcceptPath, store: SqliteStore) -> None:
    text = "Your order is ready"
    results = await path.accept("acme", [
        http_like("01234 567890", text),
        http_like("12", text),  # not a number
        http_like("+33 6 12 34 56 78", "x" * 200),  # more than the route's one segment
        http_like("+1 212 555 0100", text),  # no route
    ])
    ((ok,), (bad_number,), (too_long,), (no_route,)) = results
    assert isinstance(ok, Accepted)
    assert (ok.destination, ok.segments, ok.charge_micro, ok.state) == (
        Address("01234 567890"), 1, 50_000, State.SCHEDULED
    )
    assert isinstance(bad_number, Rejected) and isinstance(too_long, Rejected) and isinstance(no_route, Rejected)
    assert (bad_number.destination, bad_number.command_status) == (Address("12"), CommandStatus.ESME_RINVDSTADR)
    assert "'12' is too short for GB" in bad_number.reason
    assert too_long.command_status == GatewayError.TOO_MANY_SEGMENTS.command_status
    assert no_route.command_status == GatewayError.NO_ROUTE.command_status
    (stored,) = await store.find("acme", ok.message_id)
    assert stored.destination == Address(PAID, Ton.INTERNATIONAL, Npi.ISDN)
    assert stored.source.addr == "ACME" and stored.route == "uk" and stored.charged_micro == 50_000
    assert from_ms(stored.start_ms) == START + HOUR and from_ms(stored.expires_ms) == START + HOUR + HOUR / 2
    assert await store.balance("acme") == 950_000


async def test_text_gets_the_routes_content_rules_and_the_gateway_chooses_the_alphabet(
    path: AcceptPath, store: SqliteStore
) -> None:
    ((gsm,), (ucs2,)) = await path.accept("acme", [http_like(PAID, "a" * 150), http_like(PAID, "Привет")])
    assert isinstance(gsm, Accepted) and isinstance(ucs2, Accepted)
    assert gsm.segments == 1  # 6 + 150 characters: one GSM part
    handoffs = await _handoffs(store, START + HOUR)
    assert [h.data_coding for h in handoffs] == [0, 8]
    assert handoffs[0].user_data.startswith(b"ACME: ")


async def test_flash_and_encoded_content(path: AcceptPath, store: SqliteStore) -> None:
    ((flash,), (binary,)) = await path.accept("acme", [
        http_like(PAID, "now", flash=True),
        Submission((Address(PAID, Ton.INTERNATIONAL),), Encoded(b"\x01\x02", data_coding=4), Address("ACME")),
    ])
    assert isinstance(flash, Accepted) and isinstance(binary, Accepted) and binary.state is State.ACCEPTED
    handoffs = {h.segment_id.split(".")[0]: h for h in await _handoffs(store, START + HOUR)}
    assert handoffs[flash.message_id].flash and not handoffs[binary.message_id].flash
    assert (handoffs[binary.message_id].data_coding, handoffs[binary.message_id].user_data) == (4, b"\x01\x02")


async def test_destinations_of_one_submission_share_its_message_id(path: AcceptPath, store: SqliteStore) -> None:
    (results,) = await path.accept("acme", [
        Submission((Address(PAID), Address("12"), Address("441234567891")), Text("hi"), Address("ACME"))
    ])
    first, refused, second = results
    assert isinstance(first, Accepted) and isinstance(second, Accepted) and isinstance(refused, Rejected)
    assert first.message_id == second.message_id
    assert [m.dest_index for m in await store.find("acme", first.message_id)] == [0, 2]


async def test_what_the_balance_cannot_cover_is_rejected_with_0x400(path: AcceptPath, store: SqliteStore) -> None:
    await store.topup("acme", -950_000, 0)  # 0.05 left: one segment
    ((first,), (second,)) = await path.accept("acme", [http_like(PAID, "one"), http_like(PAID, "two")])
    assert isinstance(first, Accepted)
    assert second == Rejected(Address(PAID), GatewayError.INSUFFICIENT_BALANCE.command_status, "insufficient balance")
    # Refused whole (0x400), so nothing of it is stored, though a submission of the same call was paid: no
    # REJECTED err 800 copy waits for `smsgw resend`.
    assert await store.unpaid_messages("acme", 0, to_ms(START + 2 * HOUR)) == []


async def test_recipient_rules_are_the_stores_and_notices_skip_them(path: AcceptPath, store: SqliteStore) -> None:
    await trio.to_thread.run_sync(store.policy_facts().suppress, "acme", OPTED_OUT)
    ((customer,),) = await path.accept("acme", [http_like(OPTED_OUT, "offer")])
    notice = Submission((Address(OPTED_OUT, Ton.INTERNATIONAL, Npi.ISDN),), Text("You are unsubscribed"),
                        Address("ACME", Ton.ALPHANUMERIC))
    ((gateways,),) = await path.accept("acme", [notice], Origin.NOTICE)
    assert isinstance(customer, Accepted) and isinstance(gateways, Accepted)
    (refused,) = await store.find("acme", customer.message_id)
    assert refused.state is State.REJECTED and refused.error_code == GatewayError.OPTED_OUT
    (sent,) = await store.find("acme", gateways.message_id)
    assert sent.state is State.ACCEPTED and sent.charged_micro == 0 and gateways.charge_micro == 0
    assert sent.source == Address("ACME", Ton.ALPHANUMERIC, 0)  # as given: not the account's sender rules


async def test_a_bad_window_is_refused_with_its_smpp_status(path: AcceptPath) -> None:
    too_short = http_like(PAID, "x")._replace(timing=Timing(validity=timedelta(minutes=1)))
    too_far = http_like(PAID, "x")._replace(timing=Timing(schedule=START + timedelta(days=3650)))
    ((short,), (far,)) = await path.accept("acme", [too_short, too_far])
    assert isinstance(short, Rejected) and isinstance(far, Rejected)
    assert (short.command_status, far.command_status) == (CommandStatus.ESME_RINVEXPIRY, CommandStatus.ESME_RINVSCHED)


async def _handoffs(store: SqliteStore, at: datetime) -> list[Handoff]:
    return await store.claim_due(to_ms(at), 10)


async def test_the_throttle_is_charged_the_segments_that_are_stored(path: AcceptPath, store: SqliteStore) -> None:
    """One count: the throttle gets per submission the segments of its messages as built (the signature
    included), 0 for one refused anyway; a submission it holds back is refused ESME_RTHROTTLED and not stored."""
    asked: list[list[int]] = []

    def throttle(segments: Sequence[int]) -> list[bool]:
        asked.append(list(segments))
        return [count != 2 for count in segments]  # holds back the two-part one

    results = await path.accept("acme", [
        http_like(PAID, "a" * 154),  # 160 with the signature "ACME: ": one part
        http_like(PAID, "a" * 155),  # 161 with it: two parts, though the text alone fits one
        http_like("12", "hi"),  # refused: costs nothing
        Submission((Address(PAID, Ton.INTERNATIONAL), Address("441234567891", Ton.INTERNATIONAL)),
                   Encoded(b"a" * 200, 0), Address("ACME")),  # two destinations of two parts each
    ], throttle=throttle)
    assert asked == [[1, 2, 0, 4]]
    ((one,), (held,), (refused,), both) = results
    assert isinstance(one, Accepted) and one.segments == 1
    assert isinstance(held, Rejected) and held.command_status == CommandStatus.ESME_RTHROTTLED
    assert isinstance(refused, Rejected) and refused.command_status == CommandStatus.ESME_RINVDSTADR
    assert [type(r) for r in both] == [Accepted, Accepted] and [r.segments for r in both] == [2, 2]  # type: ignore[union-attr]
    assert [len(await store.find("acme", r.message_id)) for r in (one, *both)] == [1, 2, 2]  # type: ignore[union-attr]
    assert await store.balance("acme") == 1_000_000 - 5 * 50_000  # the charge is the same count


async def test_smpps_segment_limit_holds_encoded_content_with_the_routes(store: SqliteStore, db_clock: MockClock) -> None:
    """`[smpp] max_segments` is counted by the accept path (the session counts nothing): encoded bytes, as SMPP
    sends them, are held to it as well as to the route's `max_segments`; a text (HTTP's) to the route's only."""
    clock = WallClock(START)
    await store.topup("acme", 1_000_000, clock.now_ms())
    config = dataclasses.replace(CONFIG, smpp=SmppConfig(max_segments=2))
    path = AcceptPath(store, config, clock)
    results = await path.accept("acme", [
        Submission((Address(PAID, Ton.INTERNATIONAL),), Encoded(b"a" * 300, 0), Address("ACME")),  # 2 with signature
        Submission((Address(PAID, Ton.INTERNATIONAL),), Encoded(b"a" * 310, 0), Address("ACME")),  # 3 with signature
        http_like(PAID, "a" * 310),  # 3: within the route's 3
    ])
    ((two,), (three,), (text,)) = results
    assert isinstance(two, Accepted) and two.segments == 2
    assert isinstance(three, Rejected) and three.command_status == GatewayError.TOO_MANY_SEGMENTS.command_status
    assert isinstance(text, Accepted) and text.segments == 3
