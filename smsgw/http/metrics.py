"""Prometheus metrics of one gateway, in a registry of its own (not the process-wide default), so several
gateways in one process (tests) do not mix. Nothing is counted on the hot paths for this: a collector reads the
parts' own counters and status at scrape time (SMPP binds and answers, modem and upstream status, the bind guard,
the store's commits) and the queue counts come from the store in one read per scrape (`refresh`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from smsgw.config import ConfigHolder
from smsgw.modem.driver import ModemState
from smsgw.modem.pool import ModemPool
from smsgw.pdu.constants import CommandStatus
from smsgw.scheduler.model import QueueCounts
from smsgw.scheduler.store import MessageStore
from smsgw.smpp_server.login import Login
from smsgw.smpp_server.server import SmppServer
from smsgw.smpp_server.upstream import SessionState, SubmitResult, Upstreams

_LIMIT_PERIODS: Final = ("minute", "day", "month")


class GatewayMetrics:
    """The registry and its collector; `submitted` lets other fronts (the HTTP API) count their submissions
    beside SMPP's, by command_status as SMPP answers them."""

    def __init__(
        self,
        config: ConfigHolder,
        smpp: SmppServer,
        modems: ModemPool,
        store: MessageStore,
        login: Login,
        upstreams: Upstreams,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = _GatewayCollector(config, smpp, modems, store, login, upstreams)
        self.registry.register(self._collector)
        self._store = store

    def submitted(self, interface: str, command_status: int, count: int = 1) -> None:
        self._collector.submissions[interface, command_status] += count

    async def exposition(self) -> bytes:
        """The text format, with the store's queue counts read now."""
        self._collector.queues = await self._store.queue_counts(int(time.time() * 1000))
        return generate_latest(self.registry)


def _result(command_status: int) -> str:
    try:
        return CommandStatus(command_status).name
    except ValueError:
        return f"0x{command_status:08X}"


class _GatewayCollector(Collector):
    def __init__(
        self,
        config: ConfigHolder,
        smpp: SmppServer,
        modems: ModemPool,
        store: MessageStore,
        login: Login,
        upstreams: Upstreams,
    ) -> None:
        self._config = config
        self._upstreams = upstreams
        self._smpp = smpp
        self._modems = modems
        self._store = store
        self._login = login
        self.submissions: Counter[tuple[str, int]] = Counter()
        self.queues = QueueCounts()

    def collect(self) -> Iterator[Metric]:
        yield from self._smpp_metrics()
        yield from self._queue_metrics()
        yield from self._modem_metrics()
        yield from self._upstream_metrics()
        commits = CounterMetricFamily("smsgw_store_commits", "Store transactions committed (group commits)")
        commits.add_metric([], self._store.commits())
        yield commits
        operations = CounterMetricFamily("smsgw_store_operations", "Store write operations, in all commits")
        operations.add_metric([], self._store.operations())
        yield operations
        yield self._commit_latency_metric()
        lockouts = CounterMetricFamily(
            "smsgw_login_lockouts", "Lockouts begun after failed logins (SMPP binds and HTTP Basic together)"
        )
        lockouts.add_metric([], self._login.guard.lockouts)
        yield lockouts

    def _commit_latency_metric(self) -> Metric:
        latency = self._store.commit_latency()
        buckets = [(f"{bound:g}", n) for bound, n in zip(latency.bounds, latency.cumulative, strict=True)]
        return HistogramMetricFamily(
            "smsgw_store_commit_seconds", "Store group commits by how long each took (BEGIN to COMMIT, the fsync)",
            buckets=[*buckets, ("+Inf", latency.count)], sum_value=latency.sum_s,
        )

    def _smpp_metrics(self) -> Iterator[Metric]:
        sessions = GaugeMetricFamily("smsgw_smpp_sessions", "Bound SMPP sessions", labels=["account", "bind_type"])
        for (account, bind_type), n in sorted(self._smpp.sessions().items()):
            sessions.add_metric([account, bind_type], n)
        yield sessions
        submissions = CounterMetricFamily(
            "smsgw_submissions", "Submissions answered, by front and result (the SMPP command_status name)",
            labels=["interface", "result"],
        )
        totals = self.submissions + Counter({("smpp", s): n for s, n in self._smpp.submissions.items()})
        for (interface, status), n in sorted(totals.items()):
            submissions.add_metric([interface, _result(status)], n)
        yield submissions

    def _queue_metrics(self) -> Iterator[Metric]:
        queues = self.queues
        messages = GaugeMetricFamily("smsgw_messages_open", "Messages not final yet, by state", labels=["state"])
        for state, n in sorted(queues.open_messages.items()):
            messages.add_metric([state.name], n)
        yield messages
        segments = GaugeMetricFamily(
            "smsgw_queue_segments", "Segments waiting: due now, scheduled later, or in flight on a modem",
            labels=["account", "queue"],
        )
        for queue, counts in (("due", queues.due), ("scheduled", queues.scheduled), ("in_flight", queues.in_flight)):
            for account, n in sorted(counts.items()):
                segments.add_metric([account, queue], n)
        yield segments
        routes = GaugeMetricFamily("smsgw_route_segments_due", "Segments due now by route, on every node's store",
                                   labels=["route"])
        waiting = GaugeMetricFamily(
            "smsgw_route_oldest_due_seconds",
            "How long the route's longest-waiting due segment has waited: grows when no node hands it out",
            labels=["route"],
        )
        now_ms = int(time.time() * 1000)
        for route, n in sorted(queues.due_by_route.items()):
            routes.add_metric([route], n)
            waiting.add_metric([route], max(0, now_ms - queues.oldest_due_ms[route]) / 1000)
        yield routes
        yield waiting
        outbox = GaugeMetricFamily("smsgw_outbox_items", "Receipts and MO waiting for the account's ESME",
                                   labels=["account"])
        for account, n in sorted(queues.outbox.items()):
            outbox.add_metric([account], n)
        yield outbox
        callbacks = GaugeMetricFamily("smsgw_callbacks", "HTTP callbacks stored: pending (the backlog) or failed",
                                      labels=["account", "state"])
        for (account, callback_state), n in sorted(queues.callbacks.items()):
            callbacks.add_metric([account, callback_state], n)
        yield callbacks

    def _modem_metrics(self) -> Iterator[Metric]:
        configs = {m.name: m for m in self._config.current.modems}
        state = GaugeMetricFamily("smsgw_modem_state", "1 for the modem's current state", labels=["modem", "state"])
        signal = GaugeMetricFamily("smsgw_modem_signal_rssi", "+CSQ RSSI (0-31) of the modem, when known",
                                   labels=["modem"])
        sent = GaugeMetricFamily("smsgw_modem_sent", "SMS sent in the current minute, day and month",
                                 labels=["modem", "period"])
        limit = GaugeMetricFamily("smsgw_modem_limit", "The modem's configured limit per minute, day and month",
                                  labels=["modem", "period"])
        for status in self._modems.status():
            for candidate in ModemState:
                state.add_metric([status.name, candidate.value], float(candidate is status.state))
            if status.signal_rssi is not None and status.signal_rssi != 99:
                signal.add_metric([status.name], status.signal_rssi)
            counts = (status.sent_last_minute, status.sent_today, status.sent_this_month)
            config = configs.get(status.name)
            limits = (None, None, None) if config is None else (
                config.messages_per_minute, config.messages_per_day, config.messages_per_month
            )
            for period, count, most in zip(_LIMIT_PERIODS, counts, limits, strict=True):
                sent.add_metric([status.name, period], count)
                if most is not None:
                    limit.add_metric([status.name, period], most)
        yield from (state, signal, sent, limit)

    def _upstream_metrics(self) -> Iterator[Metric]:
        sessions = GaugeMetricFamily("smsgw_upstream_sessions", "Binds to the upstream SMSC, by state",
                                     labels=["upstream", "state"])
        window = GaugeMetricFamily("smsgw_upstream_window_in_use", "submit_sm awaiting their answer, over its binds",
                                   labels=["upstream"])
        submits = CounterMetricFamily(
            "smsgw_upstream_submits", "submit_sm answered: submitted, refused, throttled, or not sent (down, no room, "
            "no answer)", labels=["upstream", "result"],
        )
        for upstream in self._upstreams.by_name.values():
            statuses = upstream.status()
            by_state = Counter(status.state for status in statuses)
            for state in SessionState:
                sessions.add_metric([upstream.name, state.value], by_state[state])
            window.add_metric([upstream.name], sum(status.window_in_use for status in statuses))
            for result in SubmitResult:
                submits.add_metric([upstream.name, result.value], upstream.submits[result])
        yield from (sessions, window, submits)
