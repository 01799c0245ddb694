"""Dispatch: hands due segments to their route's connectors and records what became of them.

A route's connectors (`RouteConfig.connectors`: "modems:GROUP" -> the modems' `SmsSender`, "upstream:NAME" -> an
upstream SMSC through `UpstreamSubmitter`) are tried in order: one that cannot take the segment now (no modem
free, upstream down, not bound, throttled beyond its wait, no answer) passes it to the next; a permanent refusal
ends it without failover; when every connector failed for now, the segment is retried later from the first.

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

from smsgw.config import MODEMS_CONNECTOR, UPSTREAM_CONNECTOR, Config, ConfigHolder, MessageConfig, RouteConfig, holding
from smsgw.modem.seams import OutgoingSms, SendFailed, SendOutcome, Sent, SmsSender, StatusReport
from smsgw.scheduler import upstream_outcomes
from smsgw.scheduler.error_codes import is_tp_status
from smsgw.scheduler.model import Claimant, Handoff, StoreUnavailable
from smsgw.scheduler.store import MessageStore
from smsgw.scheduler.timing import WallClock, retry_delay_ms
from smsgw.scheduler.upstream_route import UpstreamSubmitter, submit_sm_for
from smsgw.smpp_server.upstream import THROTTLING, NotSent, Refused, Submitted

log = logging.getLogger(__name__)

_MS = 1000
# Hand-offs under a lease are renewed this many times per lease: one renewal that fails (the store briefly
# unreachable) still leaves another before the lease ends and a live node's segment is sent again by another.
_RENEWALS_PER_LEASE = 3


class Dispatcher:
    def __init__(
        self,
        store: MessageStore,
        config: Config | ConfigHolder,
        clock: WallClock,
        rng: random.Random,
        upstreams: UpstreamSubmitter | None = None,
    ) -> None:
        """`upstreams`: the gateway's binds to upstream SMSCs (None: "upstream:" connectors fail over at once)."""
        self._upstreams = upstreams
        self._store = store
        self._holder = holding(config)
        self._clock = clock
        self._rng = rng
        self._in_flight = 0
        self._leased: dict[int, None] = {}  # segment rowids of this node's hand-offs under a lease, in progress
        self._leased_added = trio.Event()

    @property
    def _messages(self) -> MessageConfig:
        return self._holder.current.messages

    def _claimant(self) -> Claimant | None:
        """On a store several nodes share: this node, the routes it has a connector for, its hand-off lease."""
        config = self._holder.current
        if not config.store.url:
            return None
        groups = {f"{MODEMS_CONNECTOR}{modem.group}" for modem in config.modems}
        upstreams = {f"{UPSTREAM_CONNECTOR}{upstream.name}" for upstream in config.upstreams}
        routes = frozenset(
            route.name for route in config.routes if any(c in groups or c in upstreams for c in route.connectors)
        )
        return Claimant(config.node.name, routes, int(config.node.handoff_lease_s * _MS))

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
            self._clock.now_ms(), fail_interrupted=self._messages.interrupted_handoff == "fail",
            claimant=self._claimant(),
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
            nursery.start_soon(self._renew_leases)
            nursery.start_soon(self._watch_unserved_routes)
            task_status.started()

    async def _dispatch(self, sender: SmsSender, nursery: trio.Nursery, after: trio.Event | None) -> None:
        if after is not None:
            await after.wait()
        limit = self._messages.max_in_flight_segments
        while True:
            wake = self._store.work_event()
            now = self._clock.now_ms()
            free = limit - self._in_flight
            claimant = self._claimant()
            claimed = await self._store.claim_due(now, free, claimant) if free > 0 else []
            for handoff in claimed:
                self._in_flight += 1
                if claimant is not None:
                    self._leased[handoff.segment_rowid] = None
                    self._leased_added.set()
                nursery.start_soon(self._send, sender, handoff)
            if free <= 0:
                deadline = math.inf  # nothing can be claimed until a send finishes, which sets `wake`
            elif len(claimed) == free:
                continue  # a full batch: more may be due, claimed as soon as a slot is free
            else:
                due = await self._store.next_due_ms(claimant)
                if due is not None and due <= now:
                    continue  # the batch had expiries in it: claim again at once
                # Rows another process wrote (`smsgw resend`) set no `wake` here: look again now and then.
                poll_s = self._messages.foreign_writes_poll_s
                poll = trio.current_time() + poll_s if poll_s > 0 else math.inf
                deadline = poll if due is None else min(poll, self._clock.trio_deadline(due))
            with trio.move_on_at(deadline):
                await wake.wait()

    def _connectors(self, handoff: Handoff) -> tuple[RouteConfig | None, tuple[str, ...]]:
        for route in self._holder.current.routes:
            if route.name == handoff.route:
                return route, route.connectors
        # The route left the config since the message was accepted: its modem group still names where it goes.
        return None, (f"{MODEMS_CONNECTOR}{handoff.modem_group}",)

    async def _send(self, sender: SmsSender, handoff: Handoff) -> None:
        try:
            await self._send_and_record(sender, handoff)
        finally:
            self._leased.pop(handoff.segment_rowid, None)  # its outcome is recorded: nothing left to hold

    async def _send_and_record(self, sender: SmsSender, handoff: Handoff) -> None:
        try:
            route, connectors = self._connectors(handoff)
            outcome: SendOutcome | None = None
            for position, connector in enumerate(connectors, start=1):
                if connector.startswith(UPSTREAM_CONNECTOR):
                    outcome = await self._send_upstream(connector.removeprefix(UPSTREAM_CONNECTOR), handoff,
                                                        receipts=route is None or route.receipts)
                    if outcome is None:
                        return  # taken or refused for good: recorded
                else:
                    outcome = await self._send_modems(sender, handoff, connector.removeprefix(MODEMS_CONNECTOR))
                    if isinstance(outcome, Sent) or not outcome.temporary:
                        break
                if position < len(connectors):  # after the last one, the retry's own log line says it
                    log.info("connector failed, next segment_id=%s connector=%s reason=%s", handoff.segment_id,
                             connector, outcome.reason)
        finally:
            self._in_flight -= 1
            self._store.notify_work()
        assert outcome is not None  # a route has at least one connector
        await self._record_modem_outcome(handoff, outcome)

    async def _send_upstream(self, name: str, handoff: Handoff, *, receipts: bool) -> SendFailed | None:
        """Submit to upstream `name`; None when its verdict is recorded (taken, or refused for good), else why the
        next connector should try."""
        if self._upstreams is None:
            return SendFailed(temporary=True, reason="no upstreams running")
        try:
            verdict = await self._upstreams.submit(name, submit_sm_for(handoff, receipts=receipts))
        except Exception:
            log.exception("upstream submit failed segment_id=%s upstream=%s", handoff.segment_id, name)
            return SendFailed(temporary=True, reason="upstream submit raised")
        now = self._clock.now_ms()
        match verdict:
            case Submitted(message_id=upstream_id):
                await self._store.record_upstream_sent(
                    handoff.segment_rowid, name, upstream_id, receipts=receipts,
                    report_deadline_ms=self._report_deadline_ms(handoff),
                    now_ms=now,
                )
                log.info("segment sent segment_id=%s upstream=%s upstream_id=%s", handoff.segment_id, name,
                         upstream_id)
                return None
            case Refused(command_status=status) if status not in THROTTLING:
                error = upstream_outcomes.refusal_error(status)
                state = await self._store.record_failure(
                    handoff.segment_rowid, temporary=False, error_code=error, retry_at_ms=now, now_ms=now
                )
                log.info("segment refused by upstream segment_id=%s upstream=%s command_status=0x%08X state=%s",
                         handoff.segment_id, name, status, state.name)
                return None
            case Refused(command_status=status):
                return SendFailed(temporary=True, reason=f"upstream {name} throttling command_status=0x{status:08X}")
            case NotSent(reason=reason):
                return SendFailed(temporary=True, reason=f"upstream {name}: {reason}")
        raise AssertionError(f"unknown upstream verdict {verdict!r}")

    async def _send_modems(self, sender: SmsSender, handoff: Handoff, group: str) -> SendOutcome:
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
            modem_group=group,
        )
        try:
            return await sender.send(sms)
        except Exception:
            log.exception("modem sender failed segment_id=%s", handoff.segment_id)
            return SendFailed(temporary=True, reason="sender raised")

    def _report_deadline_ms(self, handoff: Handoff) -> int:
        """Until when a sent segment waits for its status report or receipt: its validity and the grace after."""
        return handoff.expires_ms + int(self._messages.status_report_grace_s * _MS)

    async def _record_modem_outcome(self, handoff: Handoff, outcome: SendOutcome) -> None:
        """Sent by a modem, or failed on every connector (the last one's failure is recorded)."""
        now = self._clock.now_ms()
        retry_at = now + retry_delay_ms(handoff.attempts, self._messages, self._rng)
        if isinstance(outcome, Sent):
            await self._store.record_sent(handoff.segment_rowid, outcome, self._report_deadline_ms(handoff), now,
                                          retry_at)
            log.info(
                "segment sent segment_id=%s modem=%s tp_mr=%d", handoff.segment_id, outcome.modem, outcome.tp_mr
            )
            return
        error = outcome.cms_error if outcome.cms_error is not None and is_tp_status(outcome.cms_error) else 0
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

    async def _renew_leases(self) -> None:
        """Hold this node's hand-offs in progress for another lease, well before theirs ends, in one UPDATE: so a
        hand-off slower than `[node] handoff_lease_s` (connectors timing out in turn, an upstream throttling) is
        not taken for a dead node's and sent again by another node; only a node that stopped renewing loses them."""
        while True:
            claimant = self._claimant()
            if claimant is None or not self._leased:  # one node alone takes no leases
                self._leased_added = trio.Event()
                await self._leased_added.wait()
                continue
            await trio.sleep(claimant.lease_ms / _MS / _RENEWALS_PER_LEASE)
            if not self._leased:
                continue
            try:
                await self._store.renew_handoffs(
                    claimant.node, list(self._leased), self._clock.now_ms() + claimant.lease_ms
                )
            except StoreUnavailable as exc:
                log.error("hand-off leases not renewed count=%d error=%s", len(self._leased), exc)

    async def _watch_unserved_routes(self) -> None:
        """With several nodes, a route this node has no connector for is another node's to serve; if no running
        node serves it, its segments stay due and nothing else says so. Once per lease, warn naming such a route
        whose oldest due segment has waited longer than a lease (a node serving it claims due work at once)."""
        while (claimant := self._claimant()) is not None:
            await trio.sleep(claimant.lease_ms / _MS)
            unserved = {route.name for route in self._holder.current.routes} - claimant.routes
            if not unserved:
                continue
            now = self._clock.now_ms()
            counts = await self._store.queue_counts(now)
            for route in sorted(unserved & counts.oldest_due_ms.keys()):
                waited_ms = now - counts.oldest_due_ms[route]
                if waited_ms >= claimant.lease_ms:
                    log.warning("segments of a route this node does not serve wait unclaimed, is a node serving it"
                                " running? route=%s due=%d waited_s=%d node=%s", route, counts.due_by_route[route],
                                waited_ms // _MS, claimant.node)

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
