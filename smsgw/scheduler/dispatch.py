"""Dispatch: hands due segments to the modems' `SmsSender` and records what became of them.

`Dispatcher.run(sender)` recovers interrupted hand-offs, then hands due segments out (at most
`max_in_flight_segments` at once) and purges final messages past `retention_days`, until cancelled.
`status_report` applies a network's status report to its segment. All times come from a `WallClock` on the Trio
clock, so `MockClock` tests run schedules, retries and expiry instantly.
"""

from __future__ import annotations

import logging
import math
import random
from datetime import timedelta

import trio

from smsgw.config import Config, ConfigHolder, MessageConfig, holding
from smsgw.modem.seams import OutgoingSms, SendFailed, SendOutcome, Sent, SmsSender, StatusReport
from smsgw.scheduler.model import Handoff
from smsgw.scheduler.store import MessageStore
from smsgw.scheduler.timing import WallClock, retry_delay_ms

log = logging.getLogger(__name__)

_MAX_TP_STATUS = 0xFF
_MS = 1000


class Dispatcher:
    def __init__(
        self, store: MessageStore, config: Config | ConfigHolder, clock: WallClock, rng: random.Random
    ) -> None:
        self._store = store
        self._holder = holding(config)
        self._clock = clock
        self._rng = rng
        self._in_flight = 0

    @property
    def _messages(self) -> MessageConfig:
        return self._holder.current.messages

    async def run(
        self,
        sender: SmsSender,
        *,
        dispatch_after: trio.Event | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """`dispatch_after`: hand out no segment before it is set (the gateway waits for its modems to start, so
        messages accepted meanwhile wait in the store instead of failing on modems still starting)."""
        recovery = await self._store.recover(
            self._clock.now_ms(), fail_interrupted=self._messages.interrupted_handoff == "fail"
        )
        log.info(
            "scheduler started interrupted_handoffs=%d resent=%d failed=%d open_segments=%d",
            recovery.interrupted_handoffs,
            recovery.interrupted_handoffs - recovery.failed_handoffs,
            recovery.failed_handoffs,
            recovery.open_segments,
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._dispatch, sender, nursery, dispatch_after)
            nursery.start_soon(self._purge_loop)
            task_status.started()

    async def _dispatch(self, sender: SmsSender, nursery: trio.Nursery, after: trio.Event | None) -> None:
        if after is not None:
            await after.wait()
        limit = self._messages.max_in_flight_segments
        while True:
            wake = self._store.work_event()
            now = self._clock.now_ms()
            free = limit - self._in_flight
            claimed = await self._store.claim_due(now, free) if free > 0 else []
            for handoff in claimed:
                self._in_flight += 1
                nursery.start_soon(self._send, sender, handoff)
            if free <= 0:
                deadline = math.inf  # nothing can be claimed until a send finishes, which sets `wake`
            elif len(claimed) == free:
                continue  # a full batch: more may be due, claimed as soon as a slot is free
            else:
                due = await self._store.next_due_ms()
                if due is not None and due <= now:
                    continue  # the batch had expiries in it: claim again at once
                # Rows another process wrote (`smsgw resend`) set no `wake` here: look again now and then.
                poll_s = self._messages.foreign_writes_poll_s
                poll = trio.current_time() + poll_s if poll_s > 0 else math.inf
                deadline = poll if due is None else min(poll, self._clock.trio_deadline(due))
            with trio.move_on_at(deadline):
                await wake.wait()

    async def _send(self, sender: SmsSender, handoff: Handoff) -> None:
        now = self._clock.now_ms()
        sms = OutgoingSms(
            segment_id=handoff.segment_id,
            destination=handoff.destination,
            data_coding=handoff.data_coding,
            user_data=handoff.user_data,
            udh=handoff.udh,
            status_report=True,  # always: the report is how the gateway learns the final state
            validity=timedelta(milliseconds=max(0, handoff.expires_ms - now)),
            flash=handoff.flash,
            modem_group=handoff.modem_group,
        )
        try:
            outcome: SendOutcome = await sender.send(sms)
        except Exception:
            log.exception("modem sender failed segment_id=%s", handoff.segment_id)
            outcome = SendFailed(temporary=True, reason="sender raised")
        finally:
            self._in_flight -= 1
            self._store.notify_work()
        now = self._clock.now_ms()
        retry_at = now + retry_delay_ms(handoff.attempts, self._messages, self._rng)
        if isinstance(outcome, Sent):
            deadline = handoff.expires_ms + int(self._messages.status_report_grace_s * _MS)
            await self._store.record_sent(handoff.segment_rowid, outcome, deadline, now, retry_at)
            log.info(
                "segment sent segment_id=%s modem=%s tp_mr=%d", handoff.segment_id, outcome.modem, outcome.tp_mr
            )
            return
        error = outcome.cms_error if outcome.cms_error is not None and 0 < outcome.cms_error <= _MAX_TP_STATUS else 0
        state = await self._store.record_failure(
            handoff.segment_rowid, temporary=outcome.temporary, error_code=error, retry_at_ms=retry_at, now_ms=now
        )
        log.info(
            "segment not sent segment_id=%s temporary=%s reason=%s state=%s",
            handoff.segment_id,
            outcome.temporary,
            outcome.reason,
            state.name,
        )

    async def _purge_loop(self) -> None:
        config = self._holder.current.store
        while True:
            before = self._clock.now_ms() - config.retention_days * 24 * 3600 * _MS
            purged = 0
            while (count := await self._store.purge(before, config.purge_batch_size)) > 0:
                purged += count
                await trio.sleep(0)  # small batches, other writes in between
            if purged:
                log.info("purged final messages count=%d before_ms=%d", purged, before)
            await trio.sleep(config.purge_interval_s)

    async def status_report(self, report: StatusReport) -> None:
        now = self._clock.now_ms()
        window = int(self._messages.status_report_match_window_s * _MS)
        retry_at = now + retry_delay_ms(1, self._messages, self._rng)
        state = await self._store.apply_status_report(report, now, window, retry_at)
        if state is None:
            # Usually a report that overtook the write of its own send (zero network delay): kept unmatched, and
            # `record_sent` applies it. One that never finds its segment stays in status_reports for inspection.
            log.info("status report not matched yet modem=%s tp_mr=%d tp_st=%d", report.modem, report.tp_mr,
                     report.tp_st)
        else:
            log.info("status report modem=%s tp_mr=%d tp_st=%d state=%s", report.modem, report.tp_mr, report.tp_st,
                     state.name)
