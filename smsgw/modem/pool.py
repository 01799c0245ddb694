"""ModemPool: many modems behind one `SmsSender`.

A segment goes to a modem of its `modem_group` that is READY and under its limits, preferring one that is not
busy, then one whose last attempt did not fail, then the least used, with a rotating start among equals (round robin), so a rack wears its SIMs evenly. A
temporary failure on one modem is retried at once on the next candidate; a permanent one (the destination
refuses) is returned as it is, since another SIM would get the same answer.

The parts of one concatenated message leave through the same modem: a handset joins parts by originator and
reference, so parts from two SIMs never join. A later part waits for the earlier one to be sent and follows it;
if that modem can no longer send, the part goes wherever the pool sends it (late and unjoinable beats never).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import trio

from smsgw.config import ModemConfig
from smsgw.modem.driver import ModemDriver, ModemStatus, StreamOpener
from smsgw.modem.quirks import DEFAULT_QUIRKS_DIR, load_quirks
from smsgw.modem.seams import ModemEventSink, OutgoingSms, SendFailed, SendOutcome, Sent
from smsgw.modem.status_file import ModemRecord, StatusFileError, StatusSnapshot, read_snapshot, write_snapshot
from smsgw.pdu.errors import PduError
from smsgw.pdu.udh import Concatenation, Udh

log = logging.getLogger(__name__)

_DEFAULT_AFFINITY_S = 30 * 60.0


@dataclass(slots=True)
class _Affinity:
    """Where the parts of one concatenated message go."""

    lock: trio.Lock
    created_at: float
    modem: str | None = None
    sent: set[int] = field(default_factory=set)


class ModemPool:
    def __init__(self, drivers: Sequence[ModemDriver], *, affinity_timeout_s: float = _DEFAULT_AFFINITY_S) -> None:
        """`affinity_timeout_s`: how long the parts of a concatenated message keep to their first part's modem
        (handsets give up on incomplete messages too)."""
        names = [driver.name for driver in drivers]
        if len(set(names)) != len(names):
            raise ValueError(f"modem names must be unique, got {names}")
        self._drivers = tuple(drivers)
        self._by_name = {driver.name: driver for driver in drivers}
        self._groups: dict[str, tuple[ModemDriver, ...]] = {}
        for driver in drivers:
            self._groups[driver.config.group] = (*self._groups.get(driver.config.group, ()), driver)
        self._turn = itertools.count()
        self._affinity_timeout_s = affinity_timeout_s
        self._affinities: dict[tuple[str, str, int, int], _Affinity] = {}

    @classmethod
    def from_config(
        cls,
        modems: Sequence[ModemConfig],
        sink: ModemEventSink,
        *,
        reassembly_timeout_s: float,
        openers: Mapping[str, StreamOpener] | None = None,
    ) -> ModemPool:
        """Drivers for `modems` sharing one quirks table; `openers` replaces the serial port of named modems
        (virtual modems in the demo)."""
        tables = {
            directory: load_quirks(Path(directory) if directory else DEFAULT_QUIRKS_DIR)
            for directory in {m.quirks_dir for m in modems}
        }
        return cls(
            [
                ModemDriver(
                    modem,
                    sink,
                    opener=(openers or {}).get(modem.name),
                    quirks_table=tables[modem.quirks_dir],
                    reassembly_timeout_s=reassembly_timeout_s,
                )
                for modem in modems
            ],
            affinity_timeout_s=reassembly_timeout_s,
        )

    @property
    def drivers(self) -> tuple[ModemDriver, ...]:
        return self._drivers

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every driver until cancelled; started at once (modems come up in the background)."""
        async with trio.open_nursery() as nursery:
            for driver in self._drivers:
                nursery.start_soon(driver.run)
            task_status.started()

    async def send(self, sms: OutgoingSms) -> SendOutcome:
        concatenation = _concatenation(sms)
        if concatenation is None:
            return await self._send_anywhere(sms)
        now = trio.current_time()
        self._forget_affinities(now)
        key = (sms.modem_group, sms.destination, concatenation.reference, concatenation.total)
        affinity = self._affinities.setdefault(key, _Affinity(trio.Lock(), now))
        async with affinity.lock:
            driver = self._by_name.get(affinity.modem) if affinity.modem is not None else None
            if driver is not None and driver.can_send():
                outcome = await driver.send(sms)
                if isinstance(outcome, SendFailed) and outcome.temporary:
                    outcome = await self._send_anywhere(sms, tried={driver.name}, failure=outcome)
            else:
                outcome = await self._send_anywhere(sms)
            if isinstance(outcome, Sent):
                affinity.modem = affinity.modem or outcome.modem
                affinity.sent.add(concatenation.sequence)
                if len(affinity.sent) >= concatenation.total and self._affinities.get(key) is affinity:
                    del self._affinities[key]
        return outcome

    def _forget_affinities(self, now: float) -> None:
        stale = [k for k, a in self._affinities.items() if now - a.created_at > self._affinity_timeout_s]
        for key in stale:
            del self._affinities[key]

    async def _send_anywhere(
        self, sms: OutgoingSms, *, tried: set[str] | None = None, failure: SendFailed | None = None
    ) -> SendOutcome:
        """Try the modems of the group in order of preference until one sends or refuses for good."""
        tried = set(tried or ())
        while True:
            driver = self._choose(sms.modem_group, tried)
            if driver is None:
                if failure is not None:
                    return failure
                return SendFailed(temporary=True, reason=f"no modem available in group {sms.modem_group!r}")
            tried.add(driver.name)
            outcome = await driver.send(sms)
            if isinstance(outcome, Sent) or not outcome.temporary:
                return outcome
            failure = outcome
            log.info("send retried on another modem segment=%s failed_on=%s", sms.segment_id, driver.name)

    def _choose(self, group: str, exclude: set[str]) -> ModemDriver | None:
        # One pass; the rotating start breaks ties between equally good modems (round robin).
        start = next(self._turn)
        members = self._groups.get(group, ())
        count = len(members)
        best: ModemDriver | None = None
        best_key: tuple[tuple[bool, int, int], int] | None = None
        for index, driver in enumerate(members):
            rank = driver.send_rank()
            if rank is None or driver.name in exclude:
                continue
            key = (rank, (index - start) % count)
            if best_key is None or key < best_key:
                best, best_key = driver, key
        return best

    def reset(self, name: str) -> bool:
        """Reset modem `name` (`ModemDriver.reset`); False when the pool has no such modem."""
        driver = next((d for d in self._drivers if d.name == name), None)
        if driver is None:
            return False
        driver.reset()
        return True

    def status(self) -> tuple[ModemStatus, ...]:
        """A snapshot of every modem (state, signal, operator, counters) for `smsgw modems` and logs."""
        return tuple(driver.status() for driver in self._drivers)

    def snapshot(self, written_at: datetime, interval_s: float) -> StatusSnapshot:
        """What the status file holds: every modem's status, limit usage and limits; `interval_s` is how often
        the writer renews it."""
        return StatusSnapshot(
            written_at,
            interval_s,
            tuple(
                ModemRecord(
                    driver.status(),
                    driver.limit_usage(),
                    driver.limits_imsi,
                    driver.config.messages_per_minute,
                    driver.config.messages_per_day,
                    driver.config.messages_per_month,
                )
                for driver in self._drivers
            ),
        )

    def restore_counters(self, snapshot: StatusSnapshot, now: datetime) -> None:
        """Count what each modem (by name) sent in the run that wrote `snapshot` against its limits; a modem that
        turns out to hold another SIM drops them at start-up."""
        elapsed_s = (now - snapshot.written_at).total_seconds()
        for record in snapshot.modems:
            driver = self._by_name.get(record.status.name)
            if driver is not None:
                driver.restore_limit_usage(record.usage, elapsed_s, record.usage_imsi)
                log.info(
                    "limit counters restored modem=%s day=%s today=%d this_month=%d",
                    driver.name,
                    record.usage.day,
                    record.usage.today,
                    record.usage.this_month,
                )

    async def keep_status_file(
        self, path: Path, interval_s: float, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Restore the limit counters from `path`, then write the snapshot there every `interval_s` and once more
        when cancelled, so that the next run starts from the last count (start before `run`)."""
        try:
            previous = read_snapshot(path)
        except (OSError, StatusFileError) as exc:
            # Refusing to start over a status file would take the whole gateway down for a counter.
            log.warning("modem status file unreadable, limit counters start at zero path=%s error=%s", path, exc)
            previous = None
        if previous is not None:
            self.restore_counters(previous, datetime.now(UTC))
        task_status.started()
        try:
            while True:
                await trio.to_thread.run_sync(_write_status, path, self.snapshot(datetime.now(UTC), interval_s))
                await trio.sleep(interval_s)
        finally:
            _write_status(path, self.snapshot(datetime.now(UTC), interval_s))


def _write_status(path: Path, snapshot: StatusSnapshot) -> None:
    try:
        write_snapshot(path, snapshot)
    except OSError as exc:  # a full disk must not stop the modems; the next write tries again
        log.warning("cannot write modem status path=%s error=%s", path, exc)


def _concatenation(sms: OutgoingSms) -> Concatenation | None:
    if not sms.udh:
        return None
    try:
        return Udh.from_bytes(sms.udh).concatenation
    except PduError:
        return None  # not ours to judge here: the TPDU encoder refuses a malformed UDH with a clear error
