"""SMPP 3.4 time fields (section 7.1.1): `YYMMDDhhmmsstnnp`.

Absolute times carry tenths of a second and the offset from UTC in quarter hours (`p` is `+` ahead of UTC or
`-` behind); relative times end in `R` and count years, months, days, hours, minutes and seconds from now.
SMPP does not say how long a relative year or month is; this codec counts 365 and 30 days, both ways, so
`format_relative(parse_relative(x))` is stable. Two-digit years are 2000-2099.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timedelta, timezone
from typing import Final

from smsgw.pdu.constants import CommandStatus
from smsgw.pdu.errors import InvalidField

TIME_LENGTH: Final = 16
_TIME_RE: Final = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9])([0-9]{2})([-+R])")
_MAX_QUARTERS: Final = 48
_DAYS_PER_YEAR: Final = 365
_DAYS_PER_MONTH: Final = 30


def _match(text: str, command_status: int) -> re.Match[str]:
    match = _TIME_RE.fullmatch(text)
    if match is None:
        raise InvalidField(f"time {text!r} is not YYMMDDhhmmsstnnp", command_status=command_status)
    return match


def parse_absolute(text: str, *, command_status: int = CommandStatus.ESME_RINVSCHED) -> datetime:
    match = _match(text, command_status)
    yy, mo, dd, hh, mi, ss, t, nn, p = match.groups()
    if p == "R":
        raise InvalidField(f"time {text!r} is relative, expected absolute", command_status=command_status)
    quarters = int(nn)
    if quarters > _MAX_QUARTERS:
        raise InvalidField(f"time {text!r} has a UTC offset beyond 48 quarter hours", command_status=command_status)
    offset = timedelta(minutes=15 * quarters)
    try:
        return datetime(
            2000 + int(yy),
            int(mo),
            int(dd),
            int(hh),
            int(mi),
            int(ss),
            int(t) * 100_000,
            tzinfo=timezone(offset if p == "+" else -offset),
        )
    except ValueError as exc:
        raise InvalidField(f"time {text!r}: {exc}", command_status=command_status) from None


def parse_relative(text: str, *, command_status: int = CommandStatus.ESME_RINVSCHED) -> timedelta:
    match = _match(text, command_status)
    yy, mo, dd, hh, mi, ss, _t, _nn, p = match.groups()
    if p != "R":
        raise InvalidField(f"time {text!r} is absolute, expected relative", command_status=command_status)
    days = int(yy) * _DAYS_PER_YEAR + int(mo) * _DAYS_PER_MONTH + int(dd)
    return timedelta(days=days, hours=int(hh), minutes=int(mi), seconds=int(ss))


def parse_smpp_time(
    text: str, *, command_status: int = CommandStatus.ESME_RINVSCHED
) -> datetime | timedelta | None:
    """An aware datetime (absolute), a timedelta (relative) or None (empty field: SMSC default / immediate).

    Pass `command_status=CommandStatus.ESME_RINVEXPIRY` for validity_period.
    """
    if not text:
        return None
    if text.endswith("R"):
        return parse_relative(text, command_status=command_status)
    return parse_absolute(text, command_status=command_status)


def resolve_smpp_time(
    text: str, now: datetime, *, command_status: int = CommandStatus.ESME_RINVSCHED
) -> datetime | None:
    """The moment a time field names: absolute as given, relative counted from `now` (aware); None if empty."""
    value = parse_smpp_time(text, command_status=command_status)
    if isinstance(value, timedelta):
        return now + value
    return value


# The codec checks every time field it decodes or encodes; ESMEs repeat the same few validity periods, so
# remembering the valid strings keeps the regex and datetime work off the hot path.
@functools.lru_cache(maxsize=4096)
def check_smpp_time(text: str, command_status: int) -> None:
    """Raise unless `text` is empty or a valid absolute or relative time."""
    if text:
        parse_smpp_time(text, command_status=command_status)


def format_absolute(moment: datetime) -> str:
    """`YYMMDDhhmmsstnn+`/`-`, keeping the datetime's own UTC offset when SMPP can express it, else in UTC."""
    offset = moment.utcoffset()
    if offset is None:
        raise InvalidField(f"time {moment!r} has no time zone", command_status=CommandStatus.ESME_RSYSERR)
    quarters, rest = divmod(abs(offset), timedelta(minutes=15))
    if rest or quarters > _MAX_QUARTERS:
        moment, quarters = moment.astimezone(timezone.utc), 0
        offset = timedelta(0)
    if not 2000 <= moment.year <= 2099:
        raise InvalidField(f"time {moment!r} outside 2000-2099", command_status=CommandStatus.ESME_RSYSERR)
    sign = "-" if offset < timedelta(0) else "+"
    return f"{moment:%y%m%d%H%M%S}{moment.microsecond // 100_000}{quarters:02d}{sign}"


def format_relative(duration: timedelta) -> str:
    """`YYMMDDhhmmss000R` for a non-negative duration (sub-second part dropped)."""
    if duration < timedelta(0):
        raise InvalidField(f"relative time {duration} is negative", command_status=CommandStatus.ESME_RSYSERR)
    years, days = divmod(duration.days, _DAYS_PER_YEAR)
    if years > 99:
        raise InvalidField(f"relative time {duration} exceeds 99 years", command_status=CommandStatus.ESME_RSYSERR)
    months, days = divmod(days, _DAYS_PER_MONTH)
    hours, rest = divmod(duration.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{years:02d}{months:02d}{days:02d}{hours:02d}{minutes:02d}{seconds:02d}000R"
