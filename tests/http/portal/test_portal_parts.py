"""The portal's sans-IO parts without a browser: sessions, the numbers check, the counter's preview (the accept
path's own rules), a batch under the account's throughput limit, signal bars, and the config and login of
operators."""

from __future__ import annotations

import io
from collections.abc import Collection, Sequence
from pathlib import Path

import openpyxl
import pytest
import trio
from trio.testing import MockClock

from smsgw.config import (
    AccountConfig,
    Config,
    ConfigError,
    ConfigHolder,
    OperatorConfig,
    RouteConfig,
    StoreConfig,
    config_from_mapping,
)
from smsgw.http.portal.batches import Batch, BatchState, CheckedNumbers, SendRequest, check_numbers, run
from smsgw.http.portal.operator import signal_bars
from smsgw.http.portal.session import decode_session, encode_session, new_session, session_key
from smsgw.passwords import hash_password
from smsgw.scheduler.accept import THROTTLED, AcceptPath, Timing
from smsgw.scheduler.number_files import read_number_file
from smsgw.scheduler.store import open_store
from smsgw.scheduler.timing import WallClock
from smsgw.smpp_server.accounts import BindRefused
from smsgw.smpp_server.login import LOCKED_OUT, Login
from smsgw.smpp_server.throttle import Throttle, TokenBucket

KEY = b"k" * 32


def test_a_session_round_trips_and_a_changed_or_expired_one_is_refused() -> None:
    session = new_session("customer", "demo", 1000.0, 60.0)
    cookie = encode_session(session, KEY)
    assert decode_session(cookie, KEY, 1059.0) == session
    assert decode_session(cookie, KEY, 1060.0) is None  # expired
    assert decode_session(cookie, b"x" * 32, 1001.0) is None  # another gateway's key
    body, _, signature = cookie.partition(".")
    forged = encode_session(new_session("operator", "demo", 1000.0, 60.0), b"x" * 32).partition(".")[0]
    assert decode_session(f"{forged}.{signature}", KEY, 1001.0) is None
    assert decode_session("garbage", KEY, 1001.0) is None
    assert decode_session(f"{body}.", KEY, 1001.0) is None


def test_the_session_key_is_generated_once_beside_the_store(tmp_path: object) -> None:
    path = f"{tmp_path}/gw.db"
    first = session_key("", path)
    assert session_key("", path) == first
    assert session_key("configured", path) != first


class _Facts:
    """Recipient facts: 447700900003 opted out of every account, 447700900004 on the do-not-call register."""

    def suppressed_among(self, account: str, numbers: Collection[str]) -> set[str]:
        return {n for n in numbers if n == "447700900003"}

    def dnc_among(self, numbers: Collection[str]) -> set[str]:
        return {n for n in numbers if n == "447700900004"}

    def consented_among(self, account: str, numbers: Collection[str]) -> set[str]:
        return set()


def _read(data: bytes) -> list[tuple[int, object]]:
    with read_number_file(io.BytesIO(data)) as numbered:
        return list(numbered)


def test_numbers_are_checked_by_line_invalid_repeated_opted_out_and_do_not_call() -> None:
    typed = b"Number\n447700900001\n\nnope\n+44 7700 900001\n447700900003\n447700900004\n447700900002\n"
    checked = check_numbers(_read(typed), _Facts(), "demo", promotional=True, limit=10)  # type: ignore[arg-type]
    assert checked.numbers == ("447700900001", "447700900002")
    assert [(p.line, p.reason) for p in checked.problems] == [
        (4, "'nope' is not a phone number (only digits, spaces, dashes, dots and parentheses)"),
        (5, "repeats line 2"),
        (6, "447700900003 opted out of account demo"),
        (7, "447700900004 is on the do-not-call register"),
    ]
    not_promotional = check_numbers(_read(typed), _Facts(), "demo", promotional=False, limit=10)  # type: ignore[arg-type]
    assert "447700900004" in not_promotional.numbers
    too_many = check_numbers(_read(typed), _Facts(), "demo", promotional=True, limit=1)  # type: ignore[arg-type]
    assert too_many.too_many and too_many.numbers == ()


def test_a_workbook_is_read_with_its_row_numbers() -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in ("Number", 447700900001, "x", 447700900002.0):
        sheet.append([row])
    data = io.BytesIO()
    workbook.save(data)
    items = _read(data.getvalue())
    assert [(line, item if isinstance(item, str) else "invalid") for line, item in items] == [
        (2, "447700900001"), (3, "invalid"), (4, "447700900002")]


@pytest.mark.parametrize(
    ("text", "characters", "encoding", "segments"),
    [
        ("a" * 160, 160, "GSM7", 1),
        ("a" * 161, 161, "GSM7", 2),
        ("ж" * 70, 70, "UCS2", 1),
        ("ж" * 71, 71, "UCS2", 2),
        ("a" * 159 + "€", 161, "GSM7", 2),  # an extension character counts two
        ("a" * 79 + "\r\n" + "a" * 79, 160, "GSM7", 1),  # a line break as the form sends it counts two
        ("a" * 80 + "\r\n" + "a" * 79, 161, "GSM7", 2),
    ],
)
async def test_the_preview_counts_as_the_accept_path_charges(text: str, characters: int, encoding: str,
                                                       segments: int) -> None:
    route = RouteConfig(name="default", price_per_segment=0.05)
    accept = AcceptPath(_NoStore(), Config(routes=(route,)), WallClock())  # type: ignore[arg-type]
    preview = accept.preview("demo", text, "447911123456")
    assert (preview.characters, preview.encoding.name, preview.segments) == (characters, encoding, segments)
    assert preview.charge_micro == segments * 50_000
    assert preview.refused == ""


async def test_the_preview_shows_the_signature_and_a_text_over_the_route_s_limit() -> None:
    route = RouteConfig(name="default", signature="Shop: ", max_segments=1)
    accept = AcceptPath(_NoStore(), Config(routes=(route,)), WallClock())  # type: ignore[arg-type]
    preview = accept.preview("demo", "hello")
    assert (preview.text, preview.characters) == ("Shop: hello", 11)
    too_long = accept.preview("demo", "a" * 200)
    assert too_long.segments == 2 and "at most 1 allowed" in too_long.refused


class _NoStore:
    def policy_facts(self) -> None:
        return None


RATE, BURST = 10.0, 20  # segments a second, and at once
PACED = AccountConfig("shop", "x", throughput_per_s=RATE, throughput_burst=BURST)


class _AccountLimit:
    """The account's one token bucket behind the `Throttle` seam, as `SmppServer.throttle` hands it out; it records
    when it let how many segments through."""

    def __init__(self) -> None:
        self._bucket = TokenBucket(RATE, BURST, trio.current_time())
        self.passed: list[tuple[float, int]] = []

    def throttle(self, account: AccountConfig) -> Throttle:
        assert account == PACED  # the accept path's current settings of the batch's account

        def charge(segments: Sequence[int]) -> Sequence[bool]:
            allowed = self._bucket.take_each(segments, trio.current_time())
            self.passed.append((trio.current_time(), sum(n for n, ok in zip(segments, allowed) if ok)))
            return allowed

        return charge

    def bucket(self, account: AccountConfig) -> TokenBucket:
        return self._bucket


async def _batch_run(tmp_path: Path, numbers: int, *, paced: bool) -> tuple[Batch, _AccountLimit, float]:
    limit = _AccountLimit()
    config = Config(accounts=(PACED,), routes=(RouteConfig(name="default"),))
    checked = CheckedNumbers(tuple(f"4477009{n:05d}" for n in range(numbers)), (), False)
    batch = Batch("b1", "shop", SendRequest("hello", "", Timing(), False), checked, BatchState.SENDING)
    async with open_store(StoreConfig(path=str(tmp_path / "store.db"), synchronous="NORMAL")) as store:
        start = trio.current_time()
        await run(batch, AcceptPath(store, config, WallClock()), limit, paced=paced)
        return batch, limit, trio.current_time() - start


async def test_a_batch_over_the_account_s_limit_is_paced_at_its_rate(tmp_path: Path, db_clock: MockClock) -> None:
    """The batch goes through the account's own limit (it once went around it): a burst at once, then the rest as
    the bucket refills, every number sent and none refused for the limit. Trio's MockClock: no real waiting."""
    batch, limit, took = await _batch_run(tmp_path, 100, paced=True)
    assert (batch.state, batch.accepted, batch.rejected, batch.paced) == (BatchState.DONE, 100, [], True)
    assert limit.passed[0][1] == BURST  # the first call: the whole burst and no more
    assert sum(n for _, n in limit.passed) == 100
    # Never more than the burst plus what the rate refilled since the start: the limit held.
    start = limit.passed[0][0]
    sent = 0
    for at, n in limit.passed:
        sent += n
        assert sent <= BURST + RATE * (at - start) + 1e-9
    assert took >= (100 - BURST) / RATE


async def test_an_unpaced_send_over_the_limit_is_refused_for_it(tmp_path: Path, db_clock: MockClock) -> None:
    """A send the customer waits for (an inbox reply) is refused over the limit, as the API answers 429."""
    batch, limit, _ = await _batch_run(tmp_path, BURST + 2, paced=False)
    assert (batch.state, batch.accepted, batch.paced) == (BatchState.DONE, BURST, False)
    assert batch.rejected == [("447700900020", THROTTLED), ("447700900021", THROTTLED)]
    assert len(limit.passed) == 1  # asked once: nothing is tried again


@pytest.mark.parametrize(("rssi", "bars"), [(None, 0), (99, 0), (0, 0), (1, 0), (2, 1), (11, 2), (12, 3),
                                             (19, 4), (20, 5), (31, 5)])
def test_signal_bars(rssi: int | None, bars: int) -> None:
    assert signal_bars(rssi) == bars


def test_operators_and_time_zones_in_the_config() -> None:
    config = config_from_mapping({"operators": [{"name": "ops", "password": "a long operator password"}],
                                  "accounts": [{"system_id": "a", "password": "pw", "time_zone": "Europe/London"}]})
    assert config.operators[0].name == "ops" and config.operators[0].password_hash.startswith("scrypt$")
    with pytest.raises(ConfigError, match=r"accounts\[0\]\.time_zone"):
        config_from_mapping({"accounts": [{"system_id": "a", "password": "pw", "time_zone": "Mars/Base"}]})


async def test_operator_logins_share_the_guard_and_lock_out() -> None:
    config = Config(
        accounts=(AccountConfig(system_id="demo", password_hash=hash_password("demo")),),
        operators=(OperatorConfig("ops", hash_password("right")),),
    )
    from dataclasses import replace

    config = replace(config, smpp=replace(config.smpp, bind_lockout_failures=2, bind_failure_delay_base_s=0.0,
                                          bind_failure_delay_max_s=0.0))
    login = Login(ConfigHolder(config))
    assert (await login.authenticate_operator("ops", "right", "10.0.0.1")).name == "ops"
    for _ in range(2):
        with pytest.raises(BindRefused):
            await login.authenticate_operator("ops", "wrong", "10.0.0.1")
    with pytest.raises(BindRefused) as refused:
        await login.authenticate_operator("ops", "right", "10.0.0.1")
    assert refused.value.reason == LOCKED_OUT
    with pytest.raises(BindRefused):  # an account's name is not an operator's
        await login.authenticate_operator("demo", "demo", "10.0.0.2")
    await trio.lowlevel.checkpoint()
