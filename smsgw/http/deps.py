"""What the HTTP routes may use of the running gateway, as one typed value in `app.state.deps`.

The parts are the gateway's own (the SMPP server's accept path through the scheduler, the store, the modem
pool, the upstream binds), so HTTP and SMPP share one implementation of each rule; routes never build parts of their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from smsgw.config import AccountConfig, ConfigHolder
from smsgw.http.metrics import GatewayMetrics
from smsgw.modem.pool import ModemPool
from smsgw.scheduler.service import Scheduler
from smsgw.scheduler.store import MessageStore
from smsgw.smpp_server.login import Login
from smsgw.smpp_server.server import SmppServer
from smsgw.smpp_server.upstream import Upstreams

# (Bearer token, client address) -> its account, or None when no key matches or the account's access rules refuse
# the address (the API keys' store lookup plugs in here).
ApiKeyLookup = Callable[[str, str], Awaitable[AccountConfig | None]]


@dataclass(frozen=True, slots=True)
class HttpDeps:
    config: ConfigHolder  # the running config: read `config.current` at each use (reloads replace it)
    store: MessageStore  # also the readiness probe and queue counts for /readyz and /metrics
    scheduler: Scheduler  # the accept path SMPP uses (submissions, query, cancel)
    modems: ModemPool  # `status()`: state, signal, counters of every modem
    upstreams: Upstreams  # the binds to upstream SMSCs: `by_name`, each with `status()` and `submits`
    smpp: SmppServer  # binds, `listening`, submission counters
    login: Login  # credentials under the SMPP bind guard (Basic auth)
    metrics: GatewayMetrics  # this gateway's Prometheus registry
    api_keys: ApiKeyLookup | None = None  # None: Bearer keys are refused
