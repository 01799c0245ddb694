"""The upstream status file: the running gateway's snapshot of its binds to upstream SMSCs, as JSON next to the
store (`<store path>.upstreams.json`), for `smsgw upstreams` in another process (the gateway has no control port),
the same way `smsgw modems` reads `<store path>.modems.json`. Replaced atomically every `[modems_status]
interval_s` and once more at shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import trio

from smsgw import status_snapshot
from smsgw.smpp_server.upstream import SessionState, SessionStatus, SubmitResult, Upstream, Upstreams

log = logging.getLogger(__name__)

FORMAT_VERSION: Final = 1
SUFFIX: Final = ".upstreams.json"


class UpstreamStatusError(Exception):
    """The file exists but is not an upstream snapshot this version understands."""


@dataclass(frozen=True, slots=True)
class UpstreamRecord:
    name: str
    address: str  # host:port
    throughput_per_s: float  # the contracted rate
    window: int  # per bind
    submits: Mapping[str, int]  # by SubmitResult, since the gateway started
    sent_per_s: float  # submit_sm taken by the SMSC per second over the writer's last interval
    sessions: tuple[SessionStatus, ...]


@dataclass(frozen=True, slots=True)
class UpstreamsSnapshot:
    written_at: datetime  # UTC wall clock
    interval_s: float  # the writer's promise: a snapshot much older than this means it stopped
    upstreams: tuple[UpstreamRecord, ...]


def status_path(store_path: str) -> Path:
    return Path(store_path + SUFFIX)


def encode_snapshot(snapshot: UpstreamsSnapshot) -> bytes:
    return status_snapshot.encode(
        FORMAT_VERSION, snapshot.written_at, snapshot.interval_s, "upstreams", [
            {
                "name": record.name,
                "address": record.address,
                "throughput_per_s": record.throughput_per_s,
                "window": record.window,
                "submits": dict(record.submits),
                "sent_per_s": record.sent_per_s,
                "sessions": [
                    {"session": s.session, "bind": s.bind, "state": s.state.value,
                     "window_in_use": s.window_in_use, "last_error": s.last_error}
                    for s in record.sessions
                ],
            }
            for record in snapshot.upstreams
        ],
    )


def decode_snapshot(data: bytes) -> UpstreamsSnapshot:
    return UpstreamsSnapshot(*status_snapshot.decode(
        data, FORMAT_VERSION, "upstreams", _decode_record, UpstreamStatusError, "an upstream status snapshot"
    ))


def _decode_record(item: dict[str, Any]) -> UpstreamRecord:
    name = str(item["name"])
    sessions = tuple(
        SessionStatus(name, int(s["session"]), str(s["bind"]), SessionState(s["state"]), int(s["window_in_use"]),
                      str(s["last_error"]))
        for s in item["sessions"]
    )
    return UpstreamRecord(
        name=name,
        address=str(item["address"]),
        throughput_per_s=float(item["throughput_per_s"]),
        window=int(item["window"]),
        submits={str(result): int(n) for result, n in item["submits"].items()},
        sent_per_s=float(item["sent_per_s"]),
        sessions=sessions,
    )


def read_snapshot(path: Path) -> UpstreamsSnapshot | None:
    """The snapshot at `path`, None when there is none (no gateway with upstreams ever ran with this store)."""
    data = status_snapshot.read(path)
    return None if data is None else decode_snapshot(data)


class _Rates:
    """Submits taken per second between two snapshots, per upstream."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}

    def sent_per_s(self, upstream: Upstream, now: float) -> float:
        submitted = upstream.submits[SubmitResult.SUBMITTED]
        then, before = self._last.get(upstream.name, (now, submitted))
        self._last[upstream.name] = (now, submitted)
        return (submitted - before) / (now - then) if now > then else 0.0


def snapshot_of(upstreams: Upstreams, rates: _Rates, interval_s: float) -> UpstreamsSnapshot:
    now = trio.current_time()
    records = tuple(
        UpstreamRecord(
            name=upstream.name,
            address=f"{upstream.config.host}:{upstream.config.port}",
            throughput_per_s=upstream.config.throughput_per_s,
            window=upstream.config.window,
            submits={result.value: upstream.submits[result] for result in SubmitResult},
            sent_per_s=rates.sent_per_s(upstream, now),
            sessions=tuple(upstream.status()),
        )
        for upstream in upstreams.by_name.values()
    )
    return UpstreamsSnapshot(datetime.now(UTC), interval_s, records)


async def keep_status_file(
    upstreams: Upstreams, path: Path, interval_s: float, *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Write the snapshot to `path` every `interval_s` and once more when cancelled (the binds stopped)."""
    rates = _Rates()
    task_status.started()
    try:
        while True:
            await trio.to_thread.run_sync(_write, path, snapshot_of(upstreams, rates, interval_s))
            await trio.sleep(interval_s)
    finally:
        _write(path, snapshot_of(upstreams, rates, interval_s))


def _write(path: Path, snapshot: UpstreamsSnapshot) -> None:
    try:
        status_snapshot.replace_file(path, encode_snapshot(snapshot))
    except OSError as exc:  # a full disk must not stop the upstreams; the next write tries again
        log.warning("cannot write upstream status path=%s error=%s", path, exc)
