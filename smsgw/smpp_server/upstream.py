"""Binds to upstream SMSCs (`[[upstreams]]`): the gateway in the ESME role, on the same sans-IO `SmppSession`
(role ESME) and the same Trio `SessionShell` as the server's connections.

`Upstream` keeps `sessions` binds to one SMSC (transceiver, or a transmitter and a receiver each), reconnecting
with exponential backoff and jitter, and answers `submit(pdu)` with the SMSC's verdict: `Submitted` (its
message_id), `Refused` (its error command_status) or `NotSent` (down, not bound, no room in time, no answer, the
connection dropped with the submit_sm outstanding). Submits honour the operator's throughput (one token bucket
over all sessions) and each bind's window; a throttling answer (ESME_RTHROTTLED, ESME_RMSGQFUL) pauses the
upstream, doubling while it goes on, and the submit is tried again on it within `submit_wait_s`.

Receipts and MO (deliver_sm, data_sm) go to an `UpstreamSink`; deliver_sm_resp is written only after the sink
returned, i.e. after the store committed them, so a crash in between makes the SMSC deliver them again.
"""

from __future__ import annotations

import enum
import logging
import random
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Final, Protocol

import trio

from smsgw.config import SmppConfig, UpstreamConfig
from smsgw.pdu.constants import CommandId, CommandStatus
from smsgw.pdu.smpp import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DataSm,
    DeliverSm,
    EnquireLink,
    EnquireLinkResp,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    response_for,
)
from smsgw.smpp_server.connection import SessionShell
from smsgw.smpp_server.session import (
    EnquireLinkDue,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    ResponseTimedOut,
    SessionTimedOut,
    SmppSession,
    UnexpectedResponse,
)
from smsgw.smpp_server.states import BOUND, BindState, Role
from smsgw.smpp_server.throttle import TokenBucket

log = logging.getLogger(__name__)

THROTTLING: Final = frozenset({CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL})
_TRANSMITTERS: Final = frozenset({BindState.BOUND_TX, BindState.BOUND_TRX})
_BIND_REQUESTS: Final = frozenset({CommandId.BIND_TRANSMITTER, CommandId.BIND_RECEIVER, CommandId.BIND_TRANSCEIVER})
BindRequest = BindTransmitter | BindReceiver | BindTransceiver
_BindKind = type[BindTransmitter] | type[BindReceiver] | type[BindTransceiver]
_BIND_KINDS: Final[dict[str, tuple[_BindKind, ...]]] = {
    "transceiver": (BindTransceiver,),
    "transmitter+receiver": (BindTransmitter, BindReceiver),
}
_KIND_NAMES: Final[dict[_BindKind, str]] = {BindTransceiver: "trx", BindTransmitter: "tx", BindReceiver: "rx"}


@dataclass(frozen=True, slots=True)
class Submitted:
    message_id: str


@dataclass(frozen=True, slots=True)
class Refused:
    """The SMSC answered with an error status (generic_nack included)."""

    command_status: int


@dataclass(frozen=True, slots=True)
class NotSent:
    """The SMSC has not taken it, as far as we know: the next connector may try."""

    reason: str
    # True when the submit_sm was written and its answer never came: the SMSC may have it (a duplicate possible).
    maybe_sent: bool = False


UpstreamOutcome = Submitted | Refused | NotSent


class SubmitResult(enum.StrEnum):
    SUBMITTED = "submitted"
    REFUSED = "refused"
    THROTTLED = "throttled"
    NOT_SENT = "not_sent"


def submit_result(outcome: UpstreamOutcome) -> SubmitResult:
    match outcome:
        case Submitted():
            return SubmitResult.SUBMITTED
        case Refused(command_status=status):
            return SubmitResult.THROTTLED if status in THROTTLING else SubmitResult.REFUSED
        case NotSent():
            return SubmitResult.NOT_SENT
    raise AssertionError(f"unknown upstream outcome {outcome!r}")


class UpstreamSink(Protocol):
    async def deliver(self, upstream: str, pdu: DeliverSm | DataSm) -> int:
        """Store a receipt or MO from `upstream` durably; the command_status for its deliver_sm_resp."""


class SessionState(enum.StrEnum):
    CONNECTING = "connecting"
    BOUND = "bound"
    BACKOFF = "backoff"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """One bind of an upstream, for `smsgw upstreams` and logs."""

    upstream: str
    session: int
    bind: str  # trx, tx, rx
    state: SessionState
    window_in_use: int
    last_error: str


def session_config(upstream: UpstreamConfig) -> SmppConfig:
    """The session settings of a bind to `upstream`: the bind timeout is the session-init timer; a bind to an
    operator is never dropped for inactivity (enquire_link keeps it alive)."""
    return SmppConfig(
        window=upstream.window,
        response_timeout_s=upstream.response_timeout_s,
        enquire_link_interval_s=upstream.enquire_link_interval_s,
        session_init_timeout_s=upstream.bind_timeout_s,
        inactivity_timeout_s=0.0,
    )


@dataclass(slots=True)
class _Waiter:
    done: trio.Event
    outcome: UpstreamOutcome | None = None


class UpstreamBind(SessionShell):
    """One connection to an SMSC in the ESME role: binds, submits, takes receipts/MO, answers enquire_link."""

    def __init__(
        self,
        upstream: UpstreamConfig,
        bind: BindRequest,
        stream: trio.abc.Stream,
        sink: UpstreamSink,
    ) -> None:
        session = SmppSession(Role.ESME, session_config(upstream), opened_at=trio.current_time())
        super().__init__(stream, session, f"{upstream.name}@{upstream.host}:{upstream.port}")
        self.upstream = upstream
        self._bind_request = bind
        self._sink = sink
        self.bound = trio.Event()
        self.refused: int | None = None  # the bind_resp's error status
        self._waiters: dict[int, _Waiter] = {}
        self._deliveries: trio.Nursery | None = None

    @property
    def window_in_use(self) -> int:
        return self.session.config.window - self.session.window_available

    @property
    def can_submit(self) -> bool:
        return self.session.state in _TRANSMITTERS and self.session.window_available > 0 and not self._closing

    async def run(self) -> None:
        async with trio.open_nursery() as self._deliveries:
            await super().run()

    async def _started(self) -> None:
        await self._send_request(self._bind_request)

    async def submit(self, pdu: SubmitSm) -> UpstreamOutcome:
        """Send `pdu` and wait for its answer (the session's response timeout bounds the wait)."""
        if not self.can_submit:
            return NotSent("not bound or window full")
        numbered = replace(pdu, sequence_number=self.session.new_sequence_number())
        waiter = self._waiters[numbered.sequence_number] = _Waiter(trio.Event())  # registered before writing
        if not await self._send(numbered):
            self._waiters.pop(numbered.sequence_number, None)
            return NotSent("connection closed")
        await waiter.done.wait()
        assert waiter.outcome is not None
        return waiter.outcome

    def _resolve(self, sequence_number: int, outcome: UpstreamOutcome) -> None:
        waiter = self._waiters.pop(sequence_number, None)
        if waiter is not None:
            waiter.outcome = outcome
            waiter.done.set()

    async def unbind(self) -> None:
        """Unbind cleanly (outstanding submits are answered first by the SMSC), then the connection closes."""
        if self.session.state in BOUND:
            await self._send_request(Unbind(sequence_number=0))
        else:
            self.close()

    async def _cleanup(self) -> None:
        for number in list(self._waiters):
            self._resolve(number, NotSent("connection lost with the submit_sm outstanding", maybe_sent=True))
        await super()._cleanup()

    async def _handle_events(self) -> None:
        self._reschedule()
        while (event := self.session.next_event()) is not None:
            match event:
                case ResponseReceived(request=request, response=response):
                    await self._handle_response(request, response)
                case RequestReceived(pdu=pdu):
                    await self._handle_request(pdu)
                case RequestRejected(response=response, reason=reason, close=close):
                    log.info("upstream sent what we refuse upstream=%s reason=%r", self.upstream.name, reason)
                    await self._send(response)
                    if close:
                        self.close()
                case ResponseTimedOut(request=request):
                    if request.command_id == CommandId.SUBMIT_SM:
                        self._resolve(request.sequence_number, NotSent("no submit_sm_resp", maybe_sent=True))
                    else:  # a bind, enquire_link or unbind without an answer: the link is dead
                        log.info("upstream did not answer upstream=%s command_id=0x%08X", self.upstream.name,
                                 request.command_id)
                        self.close()
                case EnquireLinkDue():
                    if self.session.state in BOUND:
                        await self._send_request(EnquireLink(sequence_number=0))
                case SessionTimedOut(reason=reason):
                    log.info("upstream session timed out upstream=%s reason=%s", self.upstream.name, reason)
                    self.close()
                case UnexpectedResponse(pdu=pdu):
                    log.info("unexpected response upstream=%s command_id=0x%08X sequence_number=%d",
                             self.upstream.name, pdu.command_id, pdu.sequence_number)
                case _:  # ConnectionClosed: the read loop ends on the closed state
                    pass

    async def _handle_response(self, request: Pdu, response: Pdu) -> None:
        command_id = request.command_id
        if command_id in _BIND_REQUESTS:
            if response.command_status == CommandStatus.ESME_ROK:
                self.bound.set()
            else:
                self.refused = response.command_status
                self.close()
        elif command_id == CommandId.SUBMIT_SM:
            if response.command_status == CommandStatus.ESME_ROK and isinstance(response, SubmitSmResp):
                self._resolve(request.sequence_number, Submitted(response.message_id))
            else:
                self._resolve(request.sequence_number, Refused(response.command_status))
        elif command_id == CommandId.UNBIND:
            self.close()

    async def _handle_request(self, pdu: Pdu) -> None:
        if isinstance(pdu, DeliverSm | DataSm):
            assert self._deliveries is not None
            self._deliveries.start_soon(self._deliver, pdu)
        elif isinstance(pdu, EnquireLink):
            await self._send(EnquireLinkResp(sequence_number=pdu.sequence_number))
        elif isinstance(pdu, Unbind):
            await self._send(UnbindResp(sequence_number=pdu.sequence_number))
            self.close()
        else:  # alert_notification: nothing to do, and it has no response
            log.debug("upstream request ignored upstream=%s command_id=0x%08X", self.upstream.name, pdu.command_id)

    async def _deliver(self, pdu: DeliverSm | DataSm) -> None:
        """Answer only after the sink stored it: an error status (or no answer) makes the SMSC deliver it again."""
        try:
            status = await self._sink.deliver(self.upstream.name, pdu)
        except Exception:
            log.exception("upstream deliver_sm not stored upstream=%s", self.upstream.name)
            status = CommandStatus.ESME_RX_T_APPN
        await self._send(response_for(pdu, command_status=status))


async def open_upstream_stream(upstream: UpstreamConfig) -> trio.abc.Stream:
    """A TCP (or TLS, verifying the SMSC's certificate, handshake done) stream to the SMSC."""
    if not upstream.tls:
        return await trio.open_tcp_stream(upstream.host, upstream.port)
    context = ssl.create_default_context(cafile=upstream.tls_ca_path or None)
    stream = await trio.open_ssl_over_tcp_stream(upstream.host, upstream.port, ssl_context=context)
    try:
        # Here, not at the first bind: a certificate that fails verification is a connect failure naming why.
        await stream.do_handshake()
    except trio.BrokenResourceError as exc:
        await trio.aclose_forcefully(stream)
        if isinstance(exc.__cause__, OSError):  # ssl.SSLCertVerificationError and the other ssl.SSLErrors
            raise exc.__cause__ from None
        raise OSError(f"TLS handshake failed: {exc!r}") from exc
    return stream


class Upstream:
    """All binds to one SMSC, their reconnection, and submits through them."""

    def __init__(
        self,
        config: UpstreamConfig,
        rng: random.Random | None = None,
        connect: Callable[[UpstreamConfig], Awaitable[trio.abc.Stream]] = open_upstream_stream,
    ) -> None:
        """`connect` opens the stream to the SMSC (tests give memory streams)."""
        self.config = config
        self._connect = connect
        self._rng = rng or random.Random()
        self._transmitters: list[UpstreamBind] = []
        self._next = 0
        self._room = trio.Event()  # set when a bind becomes usable or a submit finished (window room)
        self._bucket = TokenBucket(config.throughput_per_s, max(1.0, config.throughput_per_s), trio.current_time())
        self._paused_until = 0.0
        self._pause_s = 0.0
        self._statuses: dict[tuple[int, str], SessionStatus] = {}
        self._bound_by_key: dict[tuple[int, str], UpstreamBind] = {}
        self._stopping = False
        # What the SMSC (or the lack of a bind) answered each submit_sm, by `submit_result`: /metrics, `smsgw upstreams`.
        self.submits: Counter[str] = Counter()

    @property
    def name(self) -> str:
        return self.config.name

    def status(self) -> list[SessionStatus]:
        """Every bind's state, with the submit_sm outstanding on the bound ones now."""
        return [
            replace(status, window_in_use=bind.window_in_use) if (bind := self._bound_by_key.get(key)) else status
            for key, status in sorted(self._statuses.items())
        ]

    @property
    def bound(self) -> bool:
        return bool(self._transmitters)

    async def run(self, sink: UpstreamSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep every session bound until cancelled (or until `unbind_all` ran); receipts and MO go to `sink`."""
        async with trio.open_nursery() as nursery:
            for index in range(self.config.sessions):
                for kind in _BIND_KINDS[self.config.bind]:
                    self._set_status(index, kind, SessionState.CONNECTING, 0, "")
                    nursery.start_soon(self._keep_bound, index, kind, sink)
            task_status.started()

    def _set_status(self, index: int, kind: _BindKind, state: SessionState, window: int, error: str) -> None:
        name = _KIND_NAMES[kind]
        self._statuses[(index, name)] = SessionStatus(self.config.name, index, name, state, window, error)

    def _bind_pdu(self, kind: _BindKind) -> BindRequest:
        return kind(
            sequence_number=0,
            system_id=self.config.system_id,
            password=self.config.password,
            system_type=self.config.system_type,
        )

    async def _keep_bound(self, index: int, kind: _BindKind, sink: UpstreamSink) -> None:
        config = self.config
        failures = 0
        problem = ""  # logged once per change, not once per attempt
        while not self._stopping:
            self._set_status(index, kind, SessionState.CONNECTING, 0, problem)
            try:
                with trio.fail_after(config.bind_timeout_s):
                    stream = await self._connect(config)
            except (OSError, trio.TooSlowError, ssl.SSLError) as exc:
                now_problem = f"connect failed: {exc!r}"
            else:
                bind = UpstreamBind(config, self._bind_pdu(kind), stream, sink)
                now_problem = await self._hold(index, kind, bind, problem)
                if bind.bound.is_set():
                    failures = 0
            if self._stopping:
                break
            failures += 1
            if now_problem != problem:
                log.warning("upstream not bound upstream=%s session=%d bind=%s problem=%s", config.name, index,
                            _KIND_NAMES[kind], now_problem)
                problem = now_problem
            delay = min(config.reconnect_delay_max_s, config.reconnect_delay_min_s * 2 ** (failures - 1))
            delay *= 1 + self._rng.uniform(-config.reconnect_jitter_ratio, config.reconnect_jitter_ratio)
            self._set_status(index, kind, SessionState.BACKOFF, 0, problem)
            await trio.sleep(delay)
        self._set_status(index, kind, SessionState.STOPPED, 0, problem)

    async def _hold(self, index: int, kind: _BindKind, bind: UpstreamBind, problem: str) -> str:
        """Run `bind` to its end; returns what ended it."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bind.run)
            with trio.move_on_after(self.config.bind_timeout_s + self.config.response_timeout_s):
                async with trio.open_nursery() as waiting:
                    async def bound() -> None:
                        await bind.bound.wait()
                        waiting.cancel_scope.cancel()

                    async def closed() -> None:
                        await bind.closed.wait()
                        waiting.cancel_scope.cancel()

                    waiting.start_soon(bound)
                    waiting.start_soon(closed)
            if not bind.bound.is_set():
                bind.close()
                if bind.refused is not None:
                    return f"bind refused command_status=0x{bind.refused:08X}"
                return "no bind_resp"
            log.info("upstream bound upstream=%s session=%d bind=%s", self.config.name, index, _KIND_NAMES[kind])
            self._bound_by_key[(index, _KIND_NAMES[kind])] = bind
            if bind.session.state in _TRANSMITTERS:
                self._transmitters.append(bind)
            self._set_status(index, kind, SessionState.BOUND, 0, problem)
            self._room.set()
            try:
                if self._stopping:  # bound while `unbind_all` ran
                    await bind.unbind()
                await bind.closed.wait()
            finally:
                self._bound_by_key.pop((index, _KIND_NAMES[kind]), None)
                if bind in self._transmitters:
                    self._transmitters.remove(bind)
        return "connection closed"

    async def submit(self, pdu: SubmitSm) -> UpstreamOutcome:
        """Submit through a bound session with room, within the throughput; retried here while throttled."""
        deadline = trio.current_time() + self.config.submit_wait_s
        while True:
            bind = await self._take_room(deadline)
            if bind is None:
                self.submits[SubmitResult.NOT_SENT] += 1
                return NotSent("no bound session with room" if not self._transmitters else "no room in time")
            outcome = await bind.submit(pdu)
            self.submits[submit_result(outcome)] += 1
            self._room.set()
            if isinstance(outcome, Refused) and outcome.command_status in THROTTLING:
                self._slow_down()
                if self._paused_until < deadline:
                    continue
                return outcome
            if isinstance(outcome, Submitted):
                self._pause_s = 0.0
            return outcome

    def _slow_down(self) -> None:
        config = self.config
        self._pause_s = min(config.reconnect_delay_max_s, max(config.throttled_pause_s, self._pause_s * 2))
        self._paused_until = trio.current_time() + self._pause_s
        log.info("upstream throttling upstream=%s pause_s=%.3f", config.name, self._pause_s)

    async def _take_room(self, deadline: float) -> UpstreamBind | None:
        """A bind with room in its window once the pause is over and a token is there; None at `deadline`."""
        with trio.move_on_at(deadline):
            if trio.current_time() < self._paused_until:
                await trio.sleep_until(self._paused_until)
            while True:
                bind = self._free_bind()
                if bind is None:
                    if self._room.is_set():  # every waiter waits on the same event; a setter wakes them all
                        self._room = trio.Event()
                    await self._room.wait()
                    continue
                now = trio.current_time()
                if self._bucket.try_take(1, now):
                    return bind
                await trio.sleep(1 / self.config.throughput_per_s)
        return None

    def _free_bind(self) -> UpstreamBind | None:
        binds = self._transmitters
        for offset in range(len(binds)):
            bind = binds[(self._next + offset) % len(binds)]
            if bind.can_submit:
                self._next = (self._next + offset + 1) % len(binds)
                return bind
        return None

    async def unbind_all(self) -> None:
        """Stop reconnecting and unbind every session; each waits at most its response timeout."""
        self._stopping = True
        with trio.move_on_after(self.config.response_timeout_s):
            async with trio.open_nursery() as nursery:
                for bind in list(self._bound_by_key.values()):
                    nursery.start_soon(self._unbind_one, bind)

    @staticmethod
    async def _unbind_one(bind: UpstreamBind) -> None:
        await bind.unbind()
        await bind.closed.wait()


class Upstreams:
    """Every configured upstream by name: what the dispatcher submits to (`submit(name, pdu)`). The sink of their
    receipts and MO is given to `run`, so the dispatcher can be built with them before the MO routing exists."""

    def __init__(
        self,
        configs: tuple[UpstreamConfig, ...],
        rng: random.Random | None = None,
        connect: Callable[[UpstreamConfig], Awaitable[trio.abc.Stream]] = open_upstream_stream,
    ) -> None:
        rng = rng or random.Random()
        self.by_name = {config.name: Upstream(config, rng, connect) for config in configs}

    async def submit(self, upstream: str, pdu: SubmitSm) -> UpstreamOutcome:
        found = self.by_name.get(upstream)
        if found is None:
            return NotSent(f"no upstream {upstream!r}")
        return await found.submit(pdu)

    def status(self) -> list[SessionStatus]:
        return [status for upstream in self.by_name.values() for status in upstream.status()]

    async def run(self, sink: UpstreamSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for upstream in self.by_name.values():
                await nursery.start(upstream.run, sink)
            task_status.started()

    async def unbind_all(self) -> None:
        async with trio.open_nursery() as nursery:
            for upstream in self.by_name.values():
                nursery.start_soon(upstream.unbind_all)
