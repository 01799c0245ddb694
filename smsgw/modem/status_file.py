"""The modem status file: the running gateway's snapshot of its modems, as JSON next to the store.

`smsgw modems` reads it from another process (the gateway has no control port), and the next run of the gateway
restores the SIMs' limit counters from it, so a restart does not reset a monthly bundle. It is replaced
atomically (a temporary file renamed over it), so a reader sees the previous snapshot or the next, never half.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

from smsgw.atomic_file import replace_file
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
    document = {
        "version": FORMAT_VERSION,
        "written_at": snapshot.written_at.isoformat(),
        "interval_s": snapshot.interval_s,
        "modems": modems,
    }
    return json.dumps(document, indent=1, ensure_ascii=False).encode()


def decode_snapshot(data: bytes) -> StatusSnapshot:
    try:
        document = json.loads(data)
        if document.get("version") != FORMAT_VERSION:
            raise StatusFileError(f"unknown format version {document.get('version')!r}")
        written_at = datetime.fromisoformat(document["written_at"])
        if written_at.tzinfo is None:
            raise StatusFileError("written_at has no time zone")
        modems = tuple(_decode_record(item) for item in document["modems"])
        return StatusSnapshot(written_at, float(document["interval_s"]), modems)
    except StatusFileError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StatusFileError(f"not a modem status snapshot: {exc!r}") from None


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
    """Replace `path` atomically (see `replace_file`)."""
    replace_file(path, encode_snapshot(snapshot))


def read_snapshot(path: Path) -> StatusSnapshot | None:
    """The snapshot at `path`, None when there is none (the gateway never ran with this store)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return decode_snapshot(data)
