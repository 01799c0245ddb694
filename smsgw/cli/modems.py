"""`smsgw modems` and `smsgw upstreams`: the running gateway's modems and its binds to upstream SMSCs, from the
snapshots it writes next to its store."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from smsgw.cli.common import EXIT_FAILURE, EXIT_OK, add_store_arguments, given_store_path, print_table

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

_Snapshot = TypeVar("_Snapshot")


def add_modems(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    modems = commands.add_parser(
        "modems",
        help="the running gateway's modems: state, signal, operator, sent today and this month vs limits",
        description="Reads the snapshot the gateway writes next to its store (<store path>.modems.json) every "
        "[modems_status] interval_s. Exit 1 when there is none (the gateway is not running or never ran).",
    )
    add_store_arguments(modems)
    modems.add_argument("--json", action="store_true", help="the whole snapshot as JSON, with its age_s")
    modems.set_defaults(handler=_cmd_modems)


def _cmd_modems(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from smsgw.modem.status_file import StatusFileError, encode_snapshot, read_snapshot, status_path

    path = status_path(given_store_path(args))
    snapshot = _read_or_say(
        path, read_snapshot, StatusFileError, "no modem status: the gateway is not running or never ran with this store"
    )
    if snapshot is None:
        return EXIT_FAILURE
    now = datetime.now(UTC)
    if _printed_json_or_age(args, encode_snapshot(snapshot), snapshot.written_at, snapshot.interval_s, now):
        return EXIT_OK
    header = ("NAME", "MSISDN", "GROUP", "STATE", "SIGNAL", "OPERATOR", "TODAY", "MONTH", "LAST ERROR")
    rows = [header]
    for record in snapshot.modems:
        status, usage = record.status, record.usage
        # Counts of a past day or month are spent: the SIM starts afresh, as the gateway would on restoring them.
        today = usage.today if usage.day == now.date() else 0
        month = usage.this_month if (usage.day.year, usage.day.month) == (now.year, now.month) else 0
        state = status.state.value + (f" ({status.limit_reached})" if status.limit_reached else "")
        signal = "-" if status.signal_rssi is None else f"{status.signal_rssi} ({-113 + 2 * status.signal_rssi} dBm)"
        rows.append(
            (
                status.name,
                status.msisdn or "-",
                status.group,
                state,
                signal,
                status.operator or "-",
                _used_of(today, record.per_day),
                _used_of(month, record.per_month),
                status.last_error or "-",
            )
        )
    print_table(rows)
    return EXIT_OK


_STALE_RENEWALS = 3


def add_upstreams(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    upstreams = commands.add_parser(
        "upstreams",
        help="the running gateway's binds to upstream SMSCs: state per session, window in use, throughput, errors",
        description="Reads the snapshot the gateway writes next to its store (<store path>.upstreams.json) every "
        "[modems_status] interval_s. Exit 1 when there is none (no gateway with [[upstreams]] ran with this store).",
    )
    add_store_arguments(upstreams)
    upstreams.add_argument("--json", action="store_true", help="the whole snapshot as JSON, with its age_s")
    upstreams.set_defaults(handler=_cmd_upstreams)


def _cmd_upstreams(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from smsgw.smpp_server.upstream import SubmitResult
    from smsgw.smpp_server.upstream_status import UpstreamStatusError, encode_snapshot, read_snapshot, status_path

    path = status_path(given_store_path(args))
    snapshot = _read_or_say(
        path,
        read_snapshot,
        UpstreamStatusError,
        "no upstream status: no gateway with [[upstreams]] is running or ran with this store",
    )
    if snapshot is None:
        return EXIT_FAILURE
    if _printed_json_or_age(args, encode_snapshot(snapshot), snapshot.written_at, snapshot.interval_s,
                            datetime.now(UTC)):
        return EXIT_OK
    rows: list[tuple[str, ...]] = [
        ("UPSTREAM", "ADDRESS", "SENT/S", "CONTRACT/S", *(r.value.upper().replace("_", " ") for r in SubmitResult))
    ]
    rows += [
        (u.name, u.address, f"{u.sent_per_s:.1f}", f"{u.throughput_per_s:g}",
         *(str(u.submits.get(result, 0)) for result in SubmitResult))
        for u in snapshot.upstreams
    ]
    print_table(rows)
    print()
    rows = [("UPSTREAM", "SESSION", "BIND", "STATE", "WINDOW", "LAST ERROR")]
    rows += [
        (s.upstream, str(s.session), s.bind, s.state.value, f"{s.window_in_use}/{u.window}", s.last_error or "-")
        for u in snapshot.upstreams
        for s in u.sessions
    ]
    print_table(rows)
    return EXIT_OK


def _read_or_say(
    path: Path, read: Callable[[Path], _Snapshot | None], error: type[Exception], missing: str
) -> _Snapshot | None:
    """The snapshot at `path`; None once stderr says why there is none (unreadable, or `missing`)."""
    try:
        snapshot = read(path)
    except (OSError, error) as exc:
        print(f"smsgw: {path}: {exc}", file=sys.stderr)
        return None
    if snapshot is None:
        print(f"smsgw: {path}: {missing}", file=sys.stderr)
    return snapshot


def _printed_json_or_age(
    args: argparse.Namespace, encoded: bytes, written_at: datetime, interval_s: float, now: datetime
) -> bool:
    """With --json the whole snapshot and its age_s, True: nothing more to print; else the line of its age."""
    import json

    age_s = (now - written_at).total_seconds()
    if args.json:
        print(json.dumps({**json.loads(encoded), "age_s": round(age_s, 1)}, indent=2, ensure_ascii=False))
        return True
    # A few missed renewals (a busy disk) are normal; many mean the writer, the gateway, is gone.
    stale = "; stale: the gateway stopped or is hung" if age_s > _STALE_RENEWALS * interval_s else ""
    print(f"snapshot of {written_at.isoformat(timespec='seconds')}, {age_s:.0f} s old{stale}")
    return False


def _used_of(used: int, limit: int | None) -> str:
    return str(used) if limit is None else f"{used}/{limit}"
