from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from smsgw.modem.limits import LimitUsage, SendLimits, SimLimits
from smsgw.modem.quirks import GENERIC, QuirksError, find_quirks, load_quirks, load_quirks_file


def test_minute_window_slides_and_calendar_limits_reset() -> None:
    limits = SendLimits(per_minute=2, per_day=3, per_month=4)
    day = date(2026, 11, 29)
    limits.record(0.0, day)
    limits.record(10.0, day)
    assert limits.exhausted(30.0, day) == "per_minute"
    assert limits.exhausted(60.5, day) is None  # the first one left the window
    limits.record(61.0, day)
    assert limits.exhausted(200.0, day) == "per_day"
    next_day = date(2026, 11, 30)
    assert limits.exhausted(200.0, next_day) is None
    limits.record(300.0, next_day)
    assert limits.exhausted(400.0, next_day) == "per_month"
    counters = limits.counters(400.0, next_day)
    assert (counters.last_minute, counters.today, counters.this_month) == (0, 1, 4)
    assert limits.exhausted(500.0, date(2026, 12, 1)) is None  # a new month


def test_unlimited() -> None:
    limits = SendLimits(None, None, None)
    assert limits.unlimited
    for second in range(1000):
        limits.record(float(second), date(2026, 1, 1))
    assert limits.exhausted(1000.0, date(2026, 1, 1)) is None


def test_bundled_quirks_match_their_models() -> None:
    table = load_quirks()
    assert find_quirks(table, "huawei", "E173").name == "huawei-e173"
    assert find_quirks(table, "SIMCOM_Ltd", "SIMCOM_SIM800L").name == "simcom-sim800"
    assert find_quirks(table, "Quectel", "EC25").needs_cnma is False
    assert find_quirks(table, "Acme", "X1") is GENERIC
    assert all(q.source for q in table)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('vendor = "A"\nmodel = "B"\nmanufacturer_pattern = "a"\n', "model_pattern"),
        ('vendor = "A"\nmodel = "B"\nmanufacturer_pattern = "a"\nmodel_pattern = "b"\ncnmi = [2, 1]\n', "cnmi"),
        ('vendor = "A"\nmodel = "B"\nmanufacturer_pattern = "a"\nmodel_pattern = "b"\nneeds_cnma = "yes"\n', "needs_cnma"),
        ('vendor = "A"\nmodel = "B"\nmanufacturer_pattern = "a"\nmodel_pattern = "b"\nspeed = 1\n', "speed"),
        ("vendor = \n", "quirks.toml"),
    ],
)
def test_bad_quirks_file_names_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "acme-x1" / "quirks.toml"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(QuirksError, match=problem):
        load_quirks_file(path)


def test_missing_directory_means_generic(tmp_path: Path) -> None:
    assert load_quirks(tmp_path / "nowhere") == ()


def test_sim_limits_follow_the_sim_not_the_port() -> None:
    day = date(2026, 11, 29)
    sim = SimLimits(per_minute=None, per_day=2, per_month=None)
    assert sim.sim_found("") is None and sim.imsi == ""
    sim.limits.record(0.0, day)
    assert sim.sim_found("234150000000001") is None  # the first IMSI learnt keeps what was counted
    sim.limits.record(1.0, day)
    assert sim.limits.exhausted(2.0, day) == "per_day"
    assert sim.sim_found("") is None and sim.imsi == "234150000000001"  # an unanswered AT+CIMI changes nothing
    assert sim.sim_found("234150000000001") is None
    assert sim.limits.exhausted(2.0, day) == "per_day"
    assert sim.sim_found("234150000000002") == "234150000000001"  # another SIM: its own, empty bundle
    assert sim.imsi == "234150000000002"
    assert sim.limits.counters(3.0, day).today == 0


def test_sim_limits_restore_counts_for_the_sim_named() -> None:
    day = date(2026, 11, 29)
    sim = SimLimits(per_minute=None, per_day=5, per_month=None)
    sim.restore(LimitUsage(day, today=5, this_month=5, recent_ages_s=()), 0.0, day, 10.0, "234150000000001")
    assert sim.imsi == "234150000000001"
    assert sim.limits.exhausted(0.0, day) == "per_day"
    assert sim.sim_found("234150000000001") is None
    assert sim.limits.exhausted(0.0, day) == "per_day"
