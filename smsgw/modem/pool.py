"""ModemPool: many modems behind one `SmsSender`.

A segment goes to a modem of its `modem_group` that is READY and under its limits, preferring one that is not
busy, then one whose last attempt did not fail, then the least used, with a rotating start among equals (round robin), so a rack wears its SIMs evenly. A
temporary failure on one modem is retried at once on the next candidate; a permanent one (the destination
refuses) is returned as it is, since another SIM would get the same answer.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import trio

from smsgw.config import ModemConfig
from smsgw.modem.driver import ModemDriver, ModemStatus, StreamOpener
from smsgw.modem.quirks import DEFAULT_QUIRKS_DIR, load_quirks
from smsgw.modem.seams import ModemEventSink, OutgoingSms, SendFailed, SendOutcome, Sent

log = logging.getLogger(__name__)


class ModemPool:
    def __init__(self, drivers: Sequence[ModemDriver]) -> None:
        names = [driver.name for driver in drivers]
        if len(set(names)) != len(names):
            raise ValueError(f"modem names must be unique, got {names}")
        self._drivers = tuple(drivers)
        self._turn = itertools.count()

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
            ]
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
        tried: set[str] = set()
        failure: SendFailed | None = None
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
        candidates = [
            d for d in self._drivers if d.config.group == group and d.name not in exclude and d.can_send()
        ]
        if not candidates:
            return None
        start = next(self._turn) % len(candidates)
        rotated = candidates[start:] + candidates[:start]
        return min(rotated, key=lambda d: (d.busy, d.failures_in_a_row, d.sent_count))

    def status(self) -> tuple[ModemStatus, ...]:
        """A snapshot of every modem (state, signal, operator, counters) for `smsgw modems` and logs."""
        return tuple(driver.status() for driver in self._drivers)
