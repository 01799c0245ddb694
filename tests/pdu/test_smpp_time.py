"""SMPP time fields (SMPP 3.4 section 7.1.1), with the spec's own examples."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.pdu.constants import CommandStatus
from smsgw.pdu.errors import PduError
from smsgw.pdu.smpp_time import (
    check_smpp_time,
    format_absolute,
    format_relative,
    parse_absolute,
    parse_relative,
    parse_smpp_time,
    resolve_smpp_time,
)


def test_absolute_with_quarter_hour_offsets() -> None:
    # 2026-11-23 12:34:56.7, 4 quarter hours ahead of UTC (+01:00).
    moment = parse_absolute("261123123456704+")
    assert moment == datetime(2026, 11, 23, 12, 34, 56, 700_000, tzinfo=timezone(timedelta(hours=1)))
    assert moment.astimezone(timezone.utc).hour == 11
    behind = parse_absolute("261123123456022-")  # 22 quarters = 5h30 behind UTC
    assert behind.utcoffset() == -timedelta(hours=5, minutes=30)
    assert format_absolute(moment) == "261123123456704+"
    assert format_absolute(behind) == "261123123456022-"


def test_relative_from_the_spec_example() -> None:
    # SMPP 3.4 7.1.1.2: "020610233429000R" = 2 years, 6 months, 10 days, 23:34:29 from now.
    duration = parse_relative("020610233429000R")
    assert duration == timedelta(days=2 * 365 + 6 * 30 + 10, hours=23, minutes=34, seconds=29)
    assert format_relative(duration) == "020610233429000R"
    assert format_relative(timedelta(hours=2)) == "000000020000000R"


def test_parse_smpp_time_dispatches_and_resolves() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
    assert parse_smpp_time("") is None
    assert parse_smpp_time("000000020000000R") == timedelta(hours=2)
    assert resolve_smpp_time("000000020000000R", now) == now + timedelta(hours=2)
    assert resolve_smpp_time("261123140000000+", now) == datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)
    assert resolve_smpp_time("", now) is None


def test_format_absolute_falls_back_to_utc_for_offsets_smpp_cannot_express() -> None:
    odd = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(minutes=20)))
    assert format_absolute(odd) == "260101114000000+"
    with pytest.raises(PduError):
        format_absolute(datetime(2026, 1, 1))  # naive
    with pytest.raises(PduError):
        format_relative(timedelta(seconds=-1))


@pytest.mark.parametrize(
    "text",
    [
        "2611231234567",  # short
        "261123123456704*",  # bad sign
        "261323123456704+",  # month 13
        "260230123456704+",  # 30 February
        "261123243456704+",  # hour 24
        "261123123456749+",  # 49 quarter hours
        "26112312345670+4",
        "２61123123456704+",  # non-ASCII digit
    ],
)
def test_invalid_times_raise_with_the_chosen_status(text: str) -> None:
    with pytest.raises(PduError) as info:
        parse_smpp_time(text, command_status=CommandStatus.ESME_RINVEXPIRY)
    assert info.value.command_status == CommandStatus.ESME_RINVEXPIRY
    with pytest.raises(PduError) as info:
        check_smpp_time(text, CommandStatus.ESME_RINVSCHED)
    assert info.value.command_status == CommandStatus.ESME_RINVSCHED


def test_absolute_and_relative_are_not_interchangeable() -> None:
    with pytest.raises(PduError):
        parse_absolute("000000020000000R")
    with pytest.raises(PduError):
        parse_relative("261123123456704+")


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59)),
    st.integers(-48, 48),
)
def test_absolute_round_trip(moment: datetime, quarters: int) -> None:
    aware = moment.replace(microsecond=moment.microsecond // 100_000 * 100_000, tzinfo=timezone(timedelta(minutes=15 * quarters)))
    text = format_absolute(aware)
    assert len(text) == 16
    assert parse_absolute(text) == aware
    assert format_absolute(parse_absolute(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 99 * 365 * 86400 + 364 * 86400))
def test_relative_round_trip(seconds: int) -> None:
    text = format_relative(timedelta(seconds=seconds))
    assert len(text) == 16
    assert parse_relative(text) == timedelta(seconds=seconds)
