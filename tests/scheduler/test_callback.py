"""MO HTTP callbacks against a real HTTP server on 127.0.0.1: pending in the store, delivered after a restart,
retried with backoff (MockClock), given up and kept 'failed', bounded per account so a slow endpoint holds up
only its own account.

The receiver runs in the test's own Trio run (`callback_receiver`) and the callbacks use httpx on Trio, so
MockClock's autojump sees no thread: it jumps only when the receiver sleeps on purpose."""

from __future__ import annotations

import logging
import random
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

import smsgw
from callback_receiver import LATE, Receiver
from http_endpoint import Endpoint, serve_endpoint
from killing import run_until_killed
from trio.testing import MockClock

from smsgw.config import AccountConfig, Config, ConfigHolder, MessageConfig, RouteConfig, StoreConfig
from smsgw.modem.seams import IncomingSms, OutgoingSms, SendOutcome
from smsgw.scheduler.callback import USER_AGENT, Callbacks, MoKind, sign
from smsgw.scheduler.model import DlrCallback, MoCallback
from smsgw.scheduler.service import Scheduler
from smsgw.scheduler.sqlite_store import SqliteStore, open_store
from smsgw.scheduler.timing import WallClock, to_ms

pytestmark = pytest.mark.timeout(60)

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HANDSET = "447700900555"
MODEM_MSISDN = "447700900001"


@pytest.fixture
async def endpoint(nursery: trio.Nursery) -> Receiver:
    receiver: Receiver = await nursery.start(Receiver().serve)
    return receiver


@pytest.fixture
def thread_endpoint() -> Iterator[Endpoint]:
    """For the worker processes of the kill test, which outlive any one Trio run."""
    with serve_endpoint() as state:
        yield state


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str  # delivered, retry, failed
    rowid: int
    at_ms: int  # on the callbacks' clock
    attempts: int = 0
    next_try_ms: int = 0
    error: str = ""


class RecordingStore:
    """The callbacks' store seam around the real store: records each outcome at its Trio time, so tests wait for
    outcomes instead of polling on a clock that MockClock moves."""

    def __init__(self, store: SqliteStore, clock: WallClock) -> None:
        self.store = store
        self.clock = clock
        self.outcomes: list[Outcome] = []
        self._changed = trio.Event()

    async def mo_callbacks_due(
        self, now_ms: int, busy: frozenset[int], full_accounts: frozenset[str], limit: int
    ) -> list[MoCallback]:
        return await self.store.mo_callbacks_due(now_ms, busy, full_accounts, limit)

    async def dlr_callbacks_due(
        self, now_ms: int, busy: frozenset[int], full_accounts: frozenset[str], limit: int
    ) -> list[DlrCallback]:
        return await self.store.dlr_callbacks_due(now_ms, busy, full_accounts, limit)

    async def callback_next_ms(self, kind: str, busy: frozenset[int], full_accounts: frozenset[str]) -> int | None:
        return await self.store.callback_next_ms(kind, busy, full_accounts)

    async def callback_delivered(self, kind: str, rowid: int) -> None:
        await self.store.callback_delivered(kind, rowid)
        self._record(Outcome("delivered", rowid, self.clock.now_ms()))

    async def callback_retry(self, kind: str, rowid: int, attempts: int, next_try_ms: int, error: str) -> None:
        await self.store.callback_retry(kind, rowid, attempts, next_try_ms, error)
        self._record(Outcome("retry", rowid, self.clock.now_ms(), attempts, next_try_ms, error))

    async def callback_failed(self, kind: str, rowid: int, attempts: int, error: str, now_ms: int) -> None:
        await self.store.callback_failed(kind, rowid, attempts, error, now_ms)
        self._record(Outcome("failed", rowid, self.clock.now_ms(), attempts, error=error))

    def _record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self._changed.set()
        self._changed = trio.Event()

    async def final(self, count: int) -> list[Outcome]:
        """Wait until `count` callbacks were delivered or given up; all outcomes so far."""
        while sum(o.kind != "retry" for o in self.outcomes) < count:
            await self._changed.wait()
        return self.outcomes


@dataclass
class Harness:
    store: SqliteStore
    recording: RecordingStore
    clock: WallClock
    endpoint: Receiver

    async def mo(self, account: str, text: str = "hello", *, age: timedelta = timedelta(0)) -> int:
        sms = IncomingSms("m1", MODEM_MSISDN, HANDSET, text, 0, START - age)
        now = self.clock.now_ms() - int(age.total_seconds() * 1000)
        return await self.store.store_mo(sms, account, MODEM_MSISDN, now, callback=True)


@pytest.fixture
def messages_config() -> MessageConfig:
    return MessageConfig(mo_callback_timeout_s=0.3)


@pytest.fixture
async def harness(
    tmp_path: Path, endpoint: Receiver, messages_config: MessageConfig
) -> AsyncIterator[tuple[Harness, Callbacks[MoCallback]]]:
    accounts = [AccountConfig(name, "x", mo_callback_url=f"{endpoint.url}/{name}", callback_secret=f"{name}-key")
                for name in ("shop", "acme", "slow")]
    async with open_store(tmp_path / "cb.db", StoreConfig(synchronous="NORMAL")) as store:
        clock = WallClock(START)
        recording = RecordingStore(store, clock)
        holder = ConfigHolder(Config(accounts=tuple(accounts), messages=messages_config))
        callbacks = Callbacks(MoKind(recording), recording, holder, clock, random.Random(7))
        yield Harness(store, recording, clock, endpoint), callbacks


def rows(path: Path) -> list[tuple[str, int, str]]:
    """(state, attempts, last_error) of every callback row."""
    with sqlite3.connect(path) as connection:
        return [(str(s), int(a), str(e)) for s, a, e in
                connection.execute("SELECT state, attempts, last_error FROM mo_callbacks ORDER BY id")]


async def test_retried_with_backoff_then_delivered(
    harness: tuple[Harness, Callbacks[MoCallback]], db_clock: MockClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "smsgw.scheduler.callback")
    h, callbacks = harness
    h.endpoint.answers["shop"] = [503, 500, LATE]  # 5xx and a timeout are retried
    mo_id = await h.mo("shop", "Pizza 2 large 🍕")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(callbacks.run)
        first, second, third, delivered = await h.recording.final(1)
        nursery.cancel_scope.cancel()
    assert [o.kind for o in (first, second, third, delivered)] == ["retry", "retry", "retry", "delivered"]
    assert [o.error for o in (first, second)] == ["HTTP 503", "HTTP 500"] and "timed out" in third.error
    # The segments' backoff (base 30 s, doubling, jitter in the upper half), on the Trio clock, each attempt when
    # it was due.
    retries = (first, second, third)
    assert [o.next_try_ms - o.at_ms for o in retries] == [
        pytest.approx(mid, abs=mid // 3) for mid in (22_500, 45_000, 90_000)
    ]
    # The timeout runs on the Trio clock too: the third attempt ends exactly mo_callback_timeout_s after it began.
    assert [second.at_ms, third.at_ms - 300, delivered.at_ms] == [
        pytest.approx(o.next_try_ms, abs=5) for o in retries
    ]
    assert len(h.endpoint.bodies["shop"]) == 4
    assert h.endpoint.bodies["shop"][0] == {
        "mo_id": mo_id, "account": "shop", "from": HANDSET, "to": MODEM_MSISDN, "text": "Pizza 2 large 🍕",
        "data_coding": 0, "received_at": START.isoformat(),
    }
    assert rows(tmp_path / "cb.db") == []  # delivered: gone from the store
    assert "mo callback delivered" in caplog.text
    # Signed with the account's secret, named by the User-Agent, all four over one kept-alive connection.
    request = h.endpoint.requests[-1]
    assert request.headers["x-smsgw-signature"] == sign(request.body, "shop-key")
    assert request.headers["user-agent"] == USER_AGENT == f"smsgw/{smsgw.__version__}"


async def test_4xx_gives_up_at_once_and_is_kept_failed(
    harness: tuple[Harness, Callbacks[MoCallback]], db_clock: MockClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h, callbacks = harness
    h.endpoint.answers["acme"] = [404]
    await h.mo("acme")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(callbacks.run)
        (failed,) = await h.recording.final(1)
        await trio.sleep(24 * 3600)
        nursery.cancel_scope.cancel()
    assert (failed.kind, failed.attempts, failed.error) == ("failed", 1, "HTTP 404")
    assert len(h.endpoint.bodies["acme"]) == 1  # never tried again
    assert rows(tmp_path / "cb.db") == [("failed", 1, "HTTP 404")]
    (record,) = [r for r in caplog.records if "given up" in r.getMessage()]
    assert record.levelno == logging.ERROR and "reason=HTTP 404" in record.getMessage()


@pytest.mark.parametrize("messages_config", [MessageConfig(mo_callback_timeout_s=0.3, foreign_writes_poll_s=5)])
async def test_a_failed_callback_requeued_by_another_process_is_posted_again(
    harness: tuple[Harness, Callbacks[MoCallback]], db_clock: MockClock, tmp_path: Path
) -> None:
    h, callbacks = harness
    h.endpoint.answers["acme"] = [404]
    await h.mo("acme", "pizza")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(callbacks.run)
        await h.recording.final(1)
        await trio.sleep(3600)  # idle: nothing pending wakes it
        # What `smsgw callbacks retry` does, through a connection of its own: no `wake` reaches the callbacks.
        with sqlite3.connect(tmp_path / "cb.db") as connection:
            connection.execute("UPDATE mo_callbacks SET state = 'pending', attempts = 0, next_try_at = 0")
        with trio.fail_after(60):  # on MockClock: fails at once if nothing but a wake could start it
            (_, delivered) = await h.recording.final(2)
        nursery.cancel_scope.cancel()
    assert delivered.kind == "delivered"
    assert [b["text"] for b in h.endpoint.bodies["acme"]] == ["pizza", "pizza"]
    assert rows(tmp_path / "cb.db") == []


async def test_pending_callbacks_follow_the_accounts_current_url(
    harness: tuple[Harness, Callbacks[MoCallback]], db_clock: MockClock, tmp_path: Path
) -> None:
    h, callbacks = harness
    await h.mo("closed")  # stored while the account had a URL; the config no longer gives it one
    await h.mo("shop")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(callbacks.run)
        outcomes = await h.recording.final(2)
        nursery.cancel_scope.cancel()
    assert sorted((o.rowid, o.kind) for o in outcomes) == [(1, "failed"), (2, "delivered")]
    assert rows(tmp_path / "cb.db") == [("failed", 0, "the account has no mo_callback_url any more")]
    assert list(h.endpoint.bodies) == ["shop"]


@pytest.mark.parametrize("messages_config", [MessageConfig(mo_callback_max_attempts=3)])
async def test_given_up_after_the_configured_attempts(
    harness: tuple[Harness, Callbacks[MoCallback]], db_clock: MockClock, tmp_path: Path
) -> None:
    h, callbacks = harness
    h.endpoint.answers["shop"] = [500] * 10
    await h.mo("shop")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(callbacks.run)
        outcomes = await h.recording.final(1)
        nursery.cancel_scope.cancel()
    assert [o.kind for o in outcomes] == ["retry", "retry", "failed"]
    assert rows(tmp_path / "cb.db") == [("failed", 3, "HTTP 500")]


@pytest.mark.parametrize("messages_config", [MessageConfig(mo_callback_max_age_s=120)])
async def test_given_up_when_too_old(harness: tuple[Harness, Callbacks[MoCallback]], db_clock: MockClock, tmp_path: Path) -> None:
    h, callbacks = harness
    h.endpoint.answers["shop"] = [503] * 10
    await h.mo("shop")
    # Stored two days ago and never tried (the gateway was down since): not POSTed now.
    await h.mo("acme", age=timedelta(days=2))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(callbacks.run)
        outcomes = await h.recording.final(2)
        nursery.cancel_scope.cancel()
    assert "acme" not in h.endpoint.bodies
    assert [(o.kind, o.error) for o in outcomes if o.rowid == 2] == [("failed", "too old")]
    shop = [o for o in outcomes if o.rowid == 1]
    assert shop[-1].kind == "failed" and len(shop) < 8  # the age ended it before the attempts did
    assert all(o.next_try_ms - to_ms(START) <= 120_000 for o in shop if o.kind == "retry")
    assert shop[-1].at_ms - to_ms(START) <= 120_000


@pytest.mark.parametrize(
    "messages_config",
    [MessageConfig(mo_callback_concurrency=4, mo_callback_concurrency_per_account=2, mo_callback_timeout_s=30)],
)
async def test_a_slow_endpoint_holds_up_only_its_own_account(
    harness: tuple[Harness, Callbacks[MoCallback]], db_clock: MockClock
) -> None:
    h, callbacks = harness
    h.endpoint.held.add("slow")
    for _ in range(5):
        await h.mo("slow")
    for _ in range(3):
        await h.mo("shop")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(callbacks.run)
        # The other account's three get through while the slow endpoint answers nothing.
        first = await h.recording.final(3)
        assert sorted(o.rowid for o in first) == [6, 7, 8]
        h.endpoint.release.set()
        outcomes = await h.recording.final(8)
        nursery.cancel_scope.cancel()
    assert [o.kind for o in outcomes] == ["delivered"] * 8
    assert h.endpoint.peak["slow"] == 2 and h.endpoint.peak_total <= 4


async def test_a_pending_callback_is_delivered_after_a_restart(tmp_path: Path, endpoint: Receiver,
                                                              db_clock: MockClock) -> None:
    endpoint.answers["mo"] = [503] * 1000  # down until the restart
    config = Config(
        accounts=(AccountConfig("shop", "x", keywords=("pizza",), mo_callback_url=f"{endpoint.url}/mo"),),
        routes=(RouteConfig(name="uk", prefixes=("44",)),),
        store=StoreConfig(synchronous="NORMAL"),
    )
    path = tmp_path / "restart.db"
    async with open_store(path, config.store) as store:
        scheduler = Scheduler(store, config, WallClock(START))
        async with trio.open_nursery() as nursery:
            await nursery.start(scheduler.run, NoSender())
            await scheduler.mo.incoming_sms(IncomingSms("m1", MODEM_MSISDN, HANDSET, "pizza tried", 0, START))
            while not any(attempts for _, attempts, _ in rows(path)):
                await trio.sleep(1)
            nursery.cancel_scope.cancel()
        # The process stops right after this MO is committed: its callback was never tried.
        later = START + timedelta(minutes=1)
        await store.store_mo(IncomingSms("m1", MODEM_MSISDN, HANDSET, "pizza untried", 0, later), "shop",
                             MODEM_MSISDN, to_ms(later), callback=True)
    assert [state for state, _, _ in rows(path)] == ["pending", "pending"]
    tried = len(endpoint.bodies["mo"])
    endpoint.answers["mo"] = []
    async with open_store(path, config.store) as store:
        scheduler = Scheduler(store, config, WallClock(START + timedelta(hours=1)))
        async with trio.open_nursery() as nursery:
            await nursery.start(scheduler.run, NoSender())
            while rows(path):
                await trio.sleep(1)
            for text in ("pizza tried", "pizza untried"):  # the SMPP copies wait whatever the callbacks did
                item = await scheduler.smpp.next_outbound("shop")
                assert item.pdu.short_message == text.encode()
                await scheduler.smpp.acknowledge(item.item_id)
            nursery.cancel_scope.cancel()
    after = endpoint.bodies["mo"][tried:]
    assert sorted((b["mo_id"], b["text"]) for b in after) == [(1, "pizza tried"), (2, "pizza untried")]
    assert endpoint.bodies["mo"][0] == next(b for b in after if b["mo_id"] == 1)  # the same POST as before


class NoSender:
    async def send(self, sms: OutgoingSms) -> SendOutcome:
        raise AssertionError("nothing is sent in these tests")


def test_sigkill_while_callbacks_are_posted_loses_none(tmp_path: Path, thread_endpoint: Endpoint) -> None:
    """kill -9 several times while MO arrive and their callbacks are POSTed, then restart: every MO that was
    stored has its callback delivered (a POST the kill cut off may come twice)."""
    worker = str(Path(__file__).with_name("callback_crash_worker.py"))
    endpoint = thread_endpoint
    db, url = str(tmp_path / "crash.db"), f"{endpoint.url}/mo"
    rng = random.Random()
    stored: list[str] = []
    for _ in range(3):
        stored += run_until_killed([worker, "mo", db, url], rng.uniform(0.3, 1.0))
    assert len(stored) > 20
    subprocess.run([sys.executable, worker, "finish", db, url], check=True, timeout=60)
    posted = {str(body["text"]) for body in endpoint.bodies["mo"]}
    assert set(stored) <= posted
    assert rows(Path(db)) == []


async def test_a_json_delivery_report_is_signed_retried_and_listed(
    tmp_path: Path, endpoint: Receiver, db_clock: MockClock
) -> None:
    """A message with a dlr_url that fails for good: its JSON report is queued in the failure's transaction,
    retried after a 503, signed with the account's secret, and listed as a 'dlr' callback meanwhile."""
    from smsgw.scheduler.accept import AcceptPath, Options, Submission, Text
    from smsgw.scheduler.callback import DlrKind
    from smsgw.scheduler.model import Address

    endpoint.answers["dlr"] = [503]
    config = Config(
        accounts=(AccountConfig("shop", "x", callback_secret="s3cret"),),
        routes=(RouteConfig(name="uk", prefixes=("44",)),),
        store=StoreConfig(synchronous="NORMAL"),
    )
    async with open_store(tmp_path / "dlr.db", config.store) as store:
        clock = WallClock(START)
        holder = ConfigHolder(config)
        accept = AcceptPath(store, holder, clock)
        ((accepted,),) = await accept.accept("shop", [Submission(
            [Address("447700922001")], Text("hi"), Address("shop"),
            options=Options(dlr_url=f"{endpoint.url}/dlr", client_ref="order-7"),
        )])
        (handoff,) = await store.claim_due(clock.now_ms(), 10)
        await store.record_failure(handoff.segment_rowid, temporary=False, error_code=0x41, retry_at_ms=0,
                                   now_ms=clock.now_ms())
        (listed,) = await store.callbacks_listing("dlr", None, None, 10)
        assert (listed.kind, listed.subject, listed.party, listed.state) == (
            "dlr", accepted.message_id, "447700922001", "pending")
        recording = RecordingStore(store, clock)
        callbacks = Callbacks(DlrKind(recording), recording, holder, clock, random.Random(7))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(callbacks.run)
            outcomes = await recording.final(1)
            nursery.cancel_scope.cancel()
    assert [o.kind for o in outcomes] == ["retry", "delivered"]
    first, second = endpoint.requests
    assert first.body == second.body and second.headers["x-smsgw-signature"] == sign(second.body, "s3cret")
    assert endpoint.bodies["dlr"][0] == {
        "message_id": accepted.message_id, "to": "447700922001", "state": "UNDELIVERABLE", "state_code": 21,
        "error_code": "065", "done_at": START.isoformat(), "client_ref": "order-7",
    }
