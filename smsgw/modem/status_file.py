"""The modem status file: the running gateway's snapshot of its modems, as JSON next to the store.

`smsgw modems` reads it from another process (the gateway has no control port), and the next run of the gateway
restores the SIMs' limit counters from it, so a restart does not reset a monthly bundle. It is replaced
atomically (a temporary file renamed over it), so a reader sees the previous snapshot or the next, never half.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

from smsgw import status_snapshot
from smsgw.modem.driver import ModemState, ModemStatus
from smsgw.modem.limits import LimitUsage

FORMAT_VERSION: Final = 1
SUFFIX: Final = ".modems.json"
_STATUS_FIELDS: Final = tuple(f.name for f in dataclasses.fields(ModemStatus))


class StatusFileError(Exception):
    """The file exists but is not a status snapshot this version understands."""


@dataclass(frozen=True, slots=True)
class ModemRecord:
    status: ModemStatus
    usage: LimitUsage
    usage_imsi: str  # the SIM `usage` was counted for ('' before the modem ever identified its SIM)
    # The configured limits, so that the reader needs no config to show "used of allowed".
    per_minute: int | None
    per_day: int | None
    per_month: int | None


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    written_at: datetime  # UTC wall clock
    interval_s: float  # the writer's promise: a snapshot much older than this means it stopped
    modems: tuple[ModemRecord, ...]


def status_path(store_path: str) -> Path:
    """Where the gateway with this [store] path keeps its modem status."""
    return Path(store_path + SUFFIX)


def encode_snapshot(snapshot: StatusSnapshot) -> bytes:
    modems = []
    for record in snapshot.modems:
        status = {name: getattr(record.status, name) for name in _STATUS_FIELDS}
        status["state"] = record.status.state.value
        modems.append(
            {
                **status,
                "limits": {"per_minute": record.per_minute, "per_day": record.per_day, "per_month": record.per_month},
                "usage": {
                    "imsi": record.usage_imsi,
                    "day": record.usage.day.isoformat(),
                    "today": record.usage.today,
                    "this_month": record.usage.this_month,
                    "recent_ages_s": list(record.usage.recent_ages_s),
                },
            }
        )
    return status_snapshot.encode(FORMAT_VERSION, snapshot.written_at, snapshot.interval_s, "modems", modems)


def decode_snapshot(data: bytes) -> StatusSnapshot:
    return StatusSnapshot(*status_snapshot.decode(
        data, FORMAT_VERSION, "modems", _decode_record, StatusFileError, "a modem status snapshot"
    ))


def _decode_record(item: dict[str, Any]) -> ModemRecord:
    # A field added in a later version has a default, and is missing from an older snapshot.
    values = {name: item[name] for name in _STATUS_FIELDS if name in item}
    status = ModemStatus(**values | {"state": ModemState(item["state"])})
    usage = item["usage"]
    limits = item["limits"]
    return ModemRecord(
        status=status,
        usage=LimitUsage(
            day=date.fromisoformat(usage["day"]),
            today=int(usage["today"]),
            this_month=int(usage["this_month"]),
            recent_ages_s=tuple(float(age) for age in usage["recent_ages_s"]),
        ),
        usage_imsi=str(usage["imsi"]),
        per_minute=limits["per_minute"],
        per_day=limits["per_day"],
        per_month=limits["per_month"],
    )


def write_snapshot(path: Path, snapshot: StatusSnapshot) -> None:
    """Replace `path` atomically (see `status_snapshot.replace_file`)."""
    status_snapshot.replace_file(path, encode_snapshot(snapshot))


def read_snapshot(path: Path) -> StatusSnapshot | None:
    """The snapshot at `path`, None when there is none (the gateway never ran with this store)."""
    data = status_snapshot.read(path)
    return None if data is None else decode_snapshot(data)
