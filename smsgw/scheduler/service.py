"""The scheduler's rooms, built from one store, config and clock, and the tasks they run.

- `accept.AcceptPath`: the one accept path (every stored message is built there);
- `smpp_intake.SmppIntake`: the SMPP server's `SmppBackend` (`smpp`), a thin adapter over the accept path and
  the outbox;
- `dispatch.Dispatcher`: hands due segments to the modems and applies status reports;
- `mo.MoRouter`: routes MO, records opt-outs, sends the gateway's notices, runs the MO HTTP callbacks;
- `dlr_callbacks`: the delivery-report HTTP callbacks the store queues with the state changes (`callback`);
- `outbox.Outbox`: offers receipts and MO to receiver binds;
- `upstream_route.UpstreamReceiver`: the upstream SMSCs' receipts to the store, their MO to the router.

`app.py` hands `smpp` to the SMPP server, `modem_events` to the modem pool, `upstream_receiver` to the upstream
binds and runs `run(sender)`.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import trio

from smsgw.config import Config, ConfigHolder, holding
from smsgw.modem.seams import IncomingSms, SmsSender, StatusReport
from smsgw.scheduler.accept import AcceptPath
from smsgw.scheduler.callback import Callbacks, DlrKind, open_http_client
from smsgw.scheduler.dispatch import Dispatcher
from smsgw.scheduler.mo import MoRouter
from smsgw.scheduler.outbox import Outbox
from smsgw.scheduler.smpp_intake import SmppIntake
from smsgw.scheduler.store import MessageStore
from smsgw.scheduler.timing import WallClock
from smsgw.scheduler.upstream_route import UpstreamReceiver, UpstreamSubmitter


@dataclass(frozen=True, slots=True)
class ModemEvents:
    """The modem pool's `ModemEventSink`: MO to the router, status reports to the dispatcher."""

    incoming_sms: Callable[[IncomingSms], Coroutine[Any, Any, None]]
    status_report: Callable[[StatusReport], Coroutine[Any, Any, None]]


class Scheduler:
    def __init__(
        self,
        store: MessageStore,
        config: Config | ConfigHolder,
        clock: WallClock,
        *,
        rng: random.Random | None = None,
        upstreams: UpstreamSubmitter | None = None,
    ) -> None:
        """A `ConfigHolder` is followed through reloads: accounts, routes, prices, keywords, policy and message
        settings are read from its current config at each use. `upstreams`: where "upstream:" connectors submit."""
        holder = holding(config)
        rng = rng or random.Random()
        self.accept = AcceptPath(store, holder, clock, rng)
        self.dispatcher = Dispatcher(store, holder, clock, rng, upstreams)
        self.mo = MoRouter(store, holder, clock, self.accept, rng)
        self.dlr_callbacks = Callbacks(DlrKind(store), store, holder, clock, rng)
        store.on_dlr_callback(self.dlr_callbacks.wake)
        self.upstream_receiver = UpstreamReceiver(store, clock, self.mo.incoming_sms)
        self.outbox = Outbox(store, holder, clock, self.mo.mo_taken)
        self.smpp = SmppIntake(store, self.accept, self.outbox, clock)
        self.modem_events = ModemEvents(self.mo.incoming_sms, self.dispatcher.status_report)

    async def run(
        self,
        sender: SmsSender,
        *,
        dispatch_after: trio.Event | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Recovers interrupted hand-offs, then runs the dispatcher (not before `dispatch_after`), the retention
        purge, the HTTP callbacks (MO and delivery reports, over one client) and the writer of acknowledged
        receipts/MO, until cancelled."""
        async with open_http_client() as client, trio.open_nursery() as nursery:
            await nursery.start(functools.partial(self.dispatcher.run, sender, dispatch_after=dispatch_after))
            nursery.start_soon(self.mo.callbacks.run, client)
            nursery.start_soon(self.dlr_callbacks.run, client)
            await nursery.start(self.outbox.run)  # before any bind claims: it releases the previous run's claims
            task_status.started()
