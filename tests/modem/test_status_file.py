"""The modem status file: snapshot format, atomic replacement, limit counters across restarts, `smsgw modems`."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import trio
import trio.testing

from smsgw.cli import main
from smsgw.config import ModemConfig, VirtualNetworkConfig
from smsgw.modem.driver import ModemDriver, ModemState, ModemStatus
from smsgw.modem.limits import LimitUsage, SendLimits
from smsgw.modem.pool import ModemPool
from smsgw.modem.seams import OutgoingSms, Sent
from smsgw.modem.status_file import (
    ModemRecord,
    StatusFileError,
    StatusSnapshot,
    decode_snapshot,
    encode_snapshot,
    read_snapshot,
    status_path,
    write_snapshot,
)
from smsgw.modem.virtual.modem import VirtualModem
from smsgw.modem.virtual.network import VirtualNetwork, serve_network
from smsgw.pdu.text import Encoding, encode_text

from modem_fakes import RecordingSink, virtual_opener

A, B = "447700900001", "447700900002"
NETWORK = VirtualNetworkConfig(delivery_delay_s=0.0)


def _status(name: str, **changes: object) -> ModemStatus:
    values: dict[str, object] = dict(
        name=name, port=f"/dev/serial/by-id/{name}", group="uk", msisdn=A, state=ModemState.READY,
        manufacturer="huawei", model="E173", imei="356938035643809", imsi="234150000000001", quirks="huawei-e173",
        signal_rssi=20, registration=1, operator="Vodafone UK", sent=7, failed=1, received=2, status_reports=5,
        sent_last_minute=1, sent_today=3, sent_this_month=40, limit_reached=None, last_error="",
    )  # fmt: skip
    values.update(changes)
    return ModemStatus(**values)  # type: ignore[arg-type]


def _snapshot(written_at: datetime, day: date) -> StatusSnapshot:
    return StatusSnapshot(
        written_at,
        5.0,
        (
            ModemRecord(_status("gsm1"), LimitUsage(day, 3, 40, (1.5, 20.0)), "234150000000001", 10, 100, 1000),
            ModemRecord(
                _status("gsm2", state=ModemState.DOWN, signal_rssi=None, operator="", last_error="SIM PIN wrong"),
                LimitUsage(day, 0, 0, ()),
                "",
                None,
                None,
                None,
            ),
        ),
    )


def test_snapshot_round_trip() -> None:
    snapshot = _snapshot(datetime(2026, 11, 23, 12, 0, 5, tzinfo=UTC), date(2026, 11, 23))
    assert decode_snapshot(encode_snapshot(snapshot)) == snapshot


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"[]", b'{"version": 2}', b'{"version": 1, "written_at": "2026-11-23T12:00:00", "modems": []}',
     b'{"version": 1, "written_at": "2026-11-23T12:00:00+00:00", "modems": [{"name": "x"}]}'],
)  # fmt: skip
def test_a_foreign_file_is_refused(data: bytes) -> None:
    with pytest.raises(StatusFileError):
        decode_snapshot(data)


def test_write_replaces_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = status_path(str(tmp_path / "smsgw.db"))
    first = _snapshot(datetime(2026, 11, 23, 12, 0, tzinfo=UTC), date(2026, 11, 23))
    write_snapshot(path, first)
    assert read_snapshot(path) == first

    def fail(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)  # the new content is half on disk when this fails
    with pytest.raises(OSError):
        write_snapshot(path, _snapshot(datetime(2026, 11, 23, 12, 0, 5, tzinfo=UTC), date(2026, 11, 23)))
    assert read_snapshot(path) == first  # the reader still sees the previous snapshot, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smsgw.db.modems.json"]  # no temporary left behind


def test_missing_file_is_none(tmp_path: Path) -> None:
    assert read_snapshot(tmp_path / "absent.modems.json") is None


def test_counters_restored_within_the_day_and_month() -> None:
    before = SendLimits(per_minute=2, per_day=5, per_month=6)
    day = date(2026, 11, 23)
    for second in (0.0, 30.0, 50.0):
        before.record(second, day)
    usage = before.usage(55.0, day)
    assert usage == LimitUsage(day, 3, 3, (55.0, 25.0, 5.0))

    after = SendLimits(per_minute=2, per_day=5, per_month=6)
    after.restore(usage, now=1000.0, today=day, elapsed_s=20.0)  # restarted 20 s later, a new monotonic clock
    counters = after.counters(1000.0, day)
    assert (counters.last_minute, counters.today, counters.this_month) == (2, 3, 3)  # the send 75 s ago left
    assert after.exhausted(1000.0, day) == "per_minute"
    assert after.exhausted(1035.1, day) is None  # the 25+20 s old send leaves the window 15 s later
    after.record(1040.0, day)
    after.record(1041.0, day)
    assert after.exhausted(1200.0, day) == "per_day"


def test_counters_of_an_earlier_day_keep_only_the_month() -> None:
    usage = LimitUsage(date(2026, 11, 22), 4, 9, ())
    limits = SendLimits(None, per_day=5, per_month=10)
    limits.restore(usage, now=0.0, today=date(2026, 11, 23), elapsed_s=3600.0)
    counters = limits.counters(0.0, date(2026, 11, 23))
    assert (counters.today, counters.this_month) == (0, 9)


def test_counters_of_an_earlier_month_are_not_restored() -> None:
    usage = LimitUsage(date(2026, 10, 31), 4, 9, (1.0,))
    limits = SendLimits(per_minute=1, per_day=5, per_month=10)
    limits.restore(usage, now=0.0, today=date(2026, 11, 1), elapsed_s=30.0)
    counters = limits.counters(0.0, date(2026, 11, 1))
    assert (counters.last_minute, counters.today, counters.this_month) == (1, 0, 0)  # the minute is still the minute


def test_restore_ignores_a_wall_clock_set_back() -> None:
    day = date(2026, 11, 23)
    limits = SendLimits(per_minute=1, per_day=None, per_month=None)
    limits.restore(LimitUsage(day, 1, 1, (59.0,)), now=100.0, today=day, elapsed_s=-3600.0)
    assert limits.exhausted(100.0, day) == "per_minute"
    assert limits.exhausted(101.5, day) is None


async def test_pool_restores_counters_by_modem_name() -> None:
    today = datetime.now(UTC).date()
    configs = [ModemConfig(name=name, port=f"/dev/{name}", messages_per_month=50) for name in ("gsm1", "gsm2")]
    pool = ModemPool([ModemDriver(config, RecordingSink()) for config in configs])
    now = datetime.now(UTC)
    last_month = today.replace(day=1) - timedelta(days=1)
    snapshot = StatusSnapshot(
        now - timedelta(seconds=10),
        5.0,
        (
            ModemRecord(_status("gsm1"), LimitUsage(today, 3, 49, ()), "", None, None, 50),
            ModemRecord(_status("gsm2"), LimitUsage(last_month, 3, 49, ()), "", None, None, 50),
            ModemRecord(_status("unplugged"), LimitUsage(today, 1, 1, ()), "", None, None, None),
        ),
    )
    pool.restore_counters(snapshot, now)
    gsm1, gsm2 = pool.drivers
    assert (gsm1.limit_usage().today, gsm1.limit_usage().this_month) == (3, 49)
    assert (gsm2.limit_usage().today, gsm2.limit_usage().this_month) == (0, 0)
    written = pool.snapshot(now, 5.0)
    assert [(r.status.name, r.usage.this_month, r.per_month) for r in written.modems] == [
        ("gsm1", 49, 50),
        ("gsm2", 0, 50),
    ]


async def _virtual_drivers(nursery: trio.Nursery) -> list[ModemDriver]:
    """Drivers "a" and "b" of two virtual modems on one network, allowed 100 messages a month each."""
    network = VirtualNetwork(NETWORK, now=trio.current_time())
    await nursery.start(serve_network, network)
    return [
        ModemDriver(
            ModemConfig(name=name, port=f"virtual:{msisdn}", msisdn=msisdn, messages_per_month=100),
            RecordingSink(),
            opener=virtual_opener(VirtualModem(network, msisdn, NETWORK), nursery),
        )
        for name, msisdn in (("a", A), ("b", B))
    ]


async def _run_pool(path: Path, *, send: bool) -> ModemPool:
    """Two virtual modems in a pool that keeps its status file; sends one SMS when asked."""
    async with trio.open_nursery() as nursery:
        drivers = await _virtual_drivers(nursery)
        pool = ModemPool(drivers)
        await nursery.start(pool.keep_status_file, path, 5.0)
        await nursery.start(pool.run)
        for driver in drivers:
            assert await driver.wait_state(ModemState.READY, ModemState.DOWN) is ModemState.READY
        if send:
            sms = OutgoingSms(segment_id="s1", destination=B, data_coding=0, user_data=encode_text("hi", Encoding.GSM7))
            assert isinstance(await pool.send(sms), Sent)
        # A periodic write shows them ready. The write runs in a thread, which the autojumping clock does not
        # wait for: poll on the virtual clock while the real one lets the thread finish.
        expected = [("a", A, ModemState.READY), ("b", B, ModemState.READY)]
        with trio.fail_after(3600):
            while (written := read_snapshot(path)) is None or (
                [(r.status.name, r.status.msisdn, r.status.state) for r in written.modems] != expected
                or sum(r.usage.today for r in written.modems) != 1  # sent in this run or restored from the last
            ):
                await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    return pool


async def _after_one_send(tmp_path: Path) -> tuple[Path, StatusSnapshot]:
    path = status_path(str(tmp_path / "smsgw.db"))
    await _run_pool(path, send=True)
    snapshot = read_snapshot(path)
    assert snapshot is not None
    return path, snapshot


async def test_gateway_pool_writes_the_file_and_the_next_run_counts_on(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path, first = await _after_one_send(tmp_path)
    assert [r.status.signal_rssi for r in first.modems] == [NETWORK.signal_rssi] * 2
    sent_by = [(r.usage.today, r.usage.this_month) for r in first.modems]
    assert sorted(sent_by) == [(0, 0), (1, 1)]  # whichever modem the pool chose
    restarted = await _run_pool(path, send=False)
    # A restart did not reset the SIM.
    assert [(d.limit_usage().today, d.limit_usage().this_month) for d in restarted.drivers] == sent_by
    second = read_snapshot(path)
    assert second is not None and second.written_at > first.written_at


def test_cli_prints_the_modems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "smsgw.db"
    now = datetime.now(UTC)
    write_snapshot(status_path(str(store)), _snapshot(now - timedelta(seconds=3), now.date()))
    assert main(["modems", "--db", str(store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(" s old")  # fresh: written 3 s ago, renewed every 5 s
    assert lines[1].split() == ["NAME", "MSISDN", "GROUP", "STATE", "SIGNAL", "OPERATOR", "TODAY", "MONTH", "LAST",
                                "ERROR"]  # fmt: skip
    assert lines[2].split() == ["gsm1", A, "uk", "ready", "20", "(-73", "dBm)", "Vodafone", "UK", "3/100", "40/1000",
                                "-"]  # fmt: skip
    assert lines[3].split() == ["gsm2", A, "uk", "down", "-", "-", "0", "0", "SIM", "PIN", "wrong"]


def test_cli_counts_of_a_past_month_show_as_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "smsgw.db"
    config = tmp_path / "smsgw.toml"
    config.write_text(f'[store]\npath = "{store}"\n')
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=40)
    write_snapshot(status_path(str(store)), _snapshot(long_ago, long_ago.date()))
    assert main(["modems", "--config", str(config)]) == 0
    header, _, row, *_ = capsys.readouterr().out.splitlines()
    assert header.endswith("s old; stale: the gateway stopped or is hung")
    assert row.split()[-3:] == ["0/100", "0/1000", "-"]


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "smsgw.db"
    now = datetime.now(UTC)
    write_snapshot(status_path(str(store)), _snapshot(now - timedelta(seconds=3), now.date()))
    assert main(["modems", "--db", str(store), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["age_s"] >= 3
    assert [m["name"] for m in document["modems"]] == ["gsm1", "gsm2"]
    assert document["modems"][0]["usage"]["this_month"] == 40


def test_cli_without_a_status_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["modems", "--db", str(tmp_path / "smsgw.db")]) == 1
    assert "the gateway is not running or never ran" in capsys.readouterr().err


def test_cli_with_a_damaged_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "smsgw.db"
    status_path(str(store)).write_text("{")
    assert main(["modems", "--db", str(store)]) == 1
    assert "not a modem status snapshot" in capsys.readouterr().err


async def test_counts_of_another_sim_are_dropped_when_the_modem_identifies_its_sim(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    _, first = await _after_one_send(tmp_path)
    assert all(r.usage_imsi for r in first.modems)
    sender = next(r for r in first.modems if r.usage.today == 1)
    swapped = dataclasses.replace(sender, usage_imsi="234159999999999")  # the operator put in a fresh SIM
    async with trio.open_nursery() as nursery:
        drivers = await _virtual_drivers(nursery)
        pool = ModemPool(drivers)
        pool.restore_counters(
            dataclasses.replace(first, modems=tuple(swapped if r is sender else r for r in first.modems)),
            datetime.now(UTC),
        )
        (restored,) = (d for d in drivers if d.name == sender.status.name)
        assert restored.limit_usage().today == 1  # until the modem says which SIM it has
        await nursery.start(pool.run)
        assert await restored.wait_state(ModemState.READY, ModemState.DOWN) is ModemState.READY
        assert (restored.limit_usage().today, restored.limits_imsi) == (0, sender.usage_imsi)
        nursery.cancel_scope.cancel()
