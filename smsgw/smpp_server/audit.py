"""The connection audit log promised to customers: every connection attempt with time, source, system_id, outcome.

Records go to the `smsgw.audit` logger (so they follow the process's logging setup) and, when
`[smpp] audit_log_path` is set, also to that file as one JSON object per line, flushed per record.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import IO, Final

log = logging.getLogger("smsgw.audit")

# The latest records kept in memory for the portal's operator page (the file, when configured, keeps them all).
RECENT_RECORDS: Final = 500


@dataclass(frozen=True, slots=True)
class AuditRecord:
    time: str  # ISO 8601 UTC wall-clock time
    source: str  # "ip:port"
    event: str  # "bind", "outbind", "unbind", "disconnect"
    outcome: str  # "ok" or the refusal reason
    system_id: str = ""
    bind_type: str = ""
    command_status: int = 0


class AuditLog:
    def __init__(self, path: str | None = None) -> None:
        self._file: IO[str] | None = None if path is None else open(path, "a", encoding="utf-8")  # noqa: SIM115
        self._recent: deque[AuditRecord] = deque(maxlen=RECENT_RECORDS)

    def record(
        self,
        *,
        source: str,
        event: str,
        outcome: str,
        system_id: str = "",
        bind_type: str = "",
        command_status: int = 0,
    ) -> None:
        entry = AuditRecord(
            time=datetime.now(UTC).isoformat(timespec="milliseconds"),
            source=source,
            event=event,
            outcome=outcome,
            system_id=system_id,
            bind_type=bind_type,
            command_status=command_status,
        )
        log.info(
            "event=%s source=%s system_id=%r bind_type=%s outcome=%r command_status=0x%08X",
            event,
            source,
            system_id,
            bind_type or "-",
            outcome,
            command_status,
        )
        self._recent.append(entry)
        if self._file is not None:
            self._file.write(json.dumps(asdict(entry)) + "\n")
            self._file.flush()

    def recent(self) -> tuple[AuditRecord, ...]:
        """The latest records, newest first."""
        return tuple(reversed(self._recent))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
