"""`SmppSession`: one SMPP 3.4 connection as a sans-IO state machine (no sockets, no clock of its own).

The shell feeds bytes with `receive_data(data, now)`, takes events with `next_event()`, turns PDUs into bytes with
`send(pdu, now)`, and calls `handle_timers(now)` when `next_deadline()` passes. Bind states follow the table in
`states.py`; requests we send get sequence numbers from `new_sequence_number()` and are matched to their responses
by sequence number; what the peer does wrong becomes a `RequestRejected` event carrying the response to send
(generic_nack for an unknown command id or a broken header, echoing the sequence number when readable). The
submit_sm/data_sm an SMSC accepts come as one `SubmissionsReceived` per run of them in a read, the unit the server
answers them in, rather than an event each.
"""

from __future__ import annotations

import logging
import math
import struct
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from smsgw.config import SmppConfig
from smsgw.pdu.constants import CommandId, CommandStatus
from smsgw.pdu.errors import PduError
from smsgw.pdu.framing import PduFramer
from smsgw.pdu.smpp import (
    PDU_CLASSES,
    DataSm,
    DataSmResp,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    decode_pdu,
    encode_pdu,
    response_class,
)
from smsgw.smpp_server.states import (
    BIND_TRANSITIONS,
    BOUND,
    NOWHERE,
    BindState,
    Role,
    Transition,
    allowed_requests,
    may_send,
    next_state,
    originates,
)
from smsgw.smpp_server.validation import validate_request

wire_log = logging.getLogger("smsgw.wire")

MAX_SEQUENCE_NUMBER: Final = 0x7FFFFFFF
_MAX_STATUS: Final = 0xFFFFFFFF
_HEADER: Final = struct.Struct(">IIII")
_RESPONSE_BIT: Final = 0x80000000
_UNBIND: Final = int(CommandId.UNBIND)  # a plain int: enum member lookups cost on the per-PDU path
_SUBMIT_SM: Final = int(CommandId.SUBMIT_SM)
# What an SMSC hands on as `SubmissionsReceived`.
_SUBMISSIONS: Final = (SubmitSm, DataSm)
_BIND_REQUESTS: Final = frozenset({CommandId.BIND_TRANSMITTER, CommandId.BIND_RECEIVER, CommandId.BIND_TRANSCEIVER})
# Requests that count against the window; enquire_link and unbind must get through even when it is full.
_WINDOWED: Final = frozenset(
    {
        CommandId.DELIVER_SM,
        CommandId.DATA_SM,
        CommandId.SUBMIT_SM,
        CommandId.SUBMIT_MULTI,
        CommandId.QUERY_SM,
        CommandId.CANCEL_SM,
        CommandId.REPLACE_SM,
        CommandId.ALERT_NOTIFICATION,
    }
)
# The answers `send_submission_responses` packs itself: request class -> response command_id and class (by class:
# reading the command_id class constant through an instance is the slow attribute lookup).
_SUBMISSION_RESPONSES: Final[dict[type[Pdu], tuple[int, type[SubmitSmResp] | type[DataSmResp]]]] = {
    SubmitSm: (int(CommandId.SUBMIT_SM_RESP), SubmitSmResp),
    DataSm: (int(CommandId.DATA_SM_RESP), DataSmResp),
}
# A message_id packed without the codec: ASCII, no NUL, shorter than the 65-octet C-octet string limit.
_PACKED_MESSAGE_ID_MAX: Final = 64
# The packer of a whole message_id response (header, message_id, NUL) by message_id length: one call and one
# allocation per answer instead of a header and two concatenations.
_MESSAGE_ID_RESPONSES: Final = tuple(struct.Struct(f">IIII{n}sx").pack for n in range(_PACKED_MESSAGE_ID_MAX + 1))
# Keep-alive traffic does not count as activity for the inactivity timer.
_KEEPALIVE: Final = frozenset({CommandId.ENQUIRE_LINK, CommandId.ENQUIRE_LINK_RESP})


class LocalProtocolError(Exception):
    """We tried to send something the protocol forbids right now: a bug in the caller, never the peer's fault."""


# ---- events ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A valid request for the current state; the application answers it with `send(response)`."""

    pdu: Pdu


@dataclass(frozen=True, slots=True)
class SubmissionsReceived:
    """submit_sm/data_sm an SMSC received that are valid for the state and passed the field checks: consecutive
    ones of one `receive_data` come as one event, in wire order, to be answered together (see
    `send_submission_responses`). The list is complete when `receive_data` returns and not changed after. (How
    many segments each will be sent as is the accept path's count, not the session's.)"""

    pdus: list[SubmitSm | DataSm]


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    request: Pdu
    response: Pdu  # the matching *_resp, or generic_nack


@dataclass(frozen=True, slots=True)
class RequestRejected:
    """The peer sent something we refuse: send `response`; if `close`, the stream cannot be trusted any more."""

    response: Pdu
    reason: str
    close: bool = False


@dataclass(frozen=True, slots=True)
class UnexpectedResponse:
    """A response that matches no outstanding request (late, after its timeout, or invented): logged, dropped."""

    pdu: Pdu


@dataclass(frozen=True, slots=True)
class ResponseTimedOut:
    request: Pdu


@dataclass(frozen=True, slots=True)
class EnquireLinkDue:
    """Nothing heard from the peer for `enquire_link_interval_s`: send an enquire_link."""


@dataclass(frozen=True, slots=True)
class SessionTimedOut:
    """`reason` is "session_init" (no bind in time) or "inactivity" (no traffic in time): unbind or close;
    "pdu_read" (a PDU begun but not completed within `pdu_read_timeout_s`): close."""

    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its side of the stream."""


Event = (
    RequestReceived
    | SubmissionsReceived
    | ResponseReceived
    | RequestRejected
    | UnexpectedResponse
    | ResponseTimedOut
    | EnquireLinkDue
    | SessionTimedOut
    | ConnectionClosed
)


def _error_response_to(request: type[Pdu] | None, sequence_number: int, command_status: int) -> Pdu:
    """The request's own `_resp` carrying the error, or generic_nack when there is none (unknown command id,
    a response, outbind, alert_notification)."""
    if request is None:
        return GenericNack(sequence_number=sequence_number, command_status=CommandStatus.ESME_RINVCMDID)
    try:
        cls = response_class(request)
    except PduError:
        return GenericNack(sequence_number=sequence_number, command_status=command_status)
    return cls(sequence_number=sequence_number, command_status=command_status)


def submission_response(request: SubmitSm | DataSm, outcome: str | int) -> Pdu:
    """The answer to a submission: its message_id (accepted, ESME_ROK) or the error command_status."""
    if isinstance(outcome, str):
        cls = SubmitSmResp if request.__class__ is SubmitSm else DataSmResp
        return cls(sequence_number=request.sequence_number, message_id=outcome)
    return _error_response_to(type(request), request.sequence_number, outcome)


@dataclass(slots=True)
class _Outstanding:
    request: Pdu
    deadline: float


@dataclass(slots=True)
class SmppSession:
    role: Role
    config: SmppConfig
    opened_at: float
    state: BindState = BindState.OPEN
    _framer: PduFramer = field(init=False)
    _events: deque[Event] = field(init=False, default_factory=deque)
    _outstanding: dict[int, _Outstanding] = field(init=False, default_factory=dict)
    _windowed: int = field(init=False, default=0)
    _next_sequence: int = field(init=False, default=1)
    _last_received: float = field(init=False)
    _last_activity: float = field(init=False)
    _enquire_pending: bool = field(init=False, default=False)
    _timed_out: bool = field(init=False, default=False)
    # The session-init timer stops while a bind is being answered: a slow (or deliberately delayed) answer to a
    # bind that came in time must not be cut off by it.
    _bind_pending: bool = field(init=False, default=False)
    _broken: bool = field(init=False, default=False)
    _peer: Role = field(init=False)
    _peer_requests: Mapping[int, frozenset[BindState]] = field(init=False)  # what the peer may send, and when
    _validates: bool = field(init=False)  # as the SMSC we check the fields of what the ESME sends
    # The `SubmissionsReceived` the current `receive_data` is filling, while it is the newest event.
    _submissions: SubmissionsReceived | None = field(init=False, default=None)
    # When the first octets of the PDU still incomplete came; None when no part of a PDU is waiting.
    _partial_since: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._framer = PduFramer(self.config.max_pdu_bytes)
        self._peer = self.role.peer
        self._peer_requests = allowed_requests(self._peer)
        self._validates = self.role is Role.SMSC
        self._last_received = self.opened_at
        self._last_activity = self.opened_at

    # ---- input ----------------------------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray, now: float) -> None:
        """Feed bytes from the peer; `b""` means the peer closed. Events queue up for `next_event()`."""
        if self._broken or self.state is BindState.CLOSED:
            return
        if not data:
            self.state = next_state(self.state, Transition.CLOSE)
            self._events.append(ConnectionClosed())
            return
        try:
            frames = self._framer.feed(data)
        except PduError:
            frames = []  # the framer keeps the error
        if frames:
            if wire_log.isEnabledFor(logging.DEBUG):
                for frame in frames:
                    wire_log.debug("direction=in role=%s hex=%s", self.role.value, frame.hex())
            self._last_received = now
            # The per-PDU step is inlined here: a call per PDU is a measurable part of a submit_sm's cost. A bound
            # ESME's submit_sm is nearly all the traffic, and only another PDU can change the state, so whether the
            # state takes submit_sm is looked up once per read and again after any other PDU.
            submitting = self._takes_submissions()
            for frame in frames:
                try:
                    pdu = decode_pdu(frame)
                except PduError as exc:
                    _, command_id, _, sequence_number = _HEADER.unpack_from(frame)  # the framer saw >= 16 octets
                    self._reject_undecodable(command_id, sequence_number, exc)
                    continue
                if submitting and type(pdu) is SubmitSm:
                    self._last_activity = now
                    self._receive_submission(pdu)
                    continue
                command_id = pdu.command_id
                if command_id not in _KEEPALIVE:
                    self._last_activity = now
                if command_id & _RESPONSE_BIT:
                    self._receive_response(pdu)
                else:
                    self._receive_request(pdu, command_id)
                submitting = self._takes_submissions()
            self._submissions = None
        if not self._framer.buffered:
            self._partial_since = None
        elif frames or self._partial_since is None:
            self._partial_since = now  # what is left began in this read
        error = self._framer.error
        if error is not None:
            # A length we cannot believe: every later byte is misaligned, so answer once and give up the stream
            # (after the whole PDUs that came before it).
            self._broken = True
            nack = GenericNack(command_status=error.command_status, sequence_number=error.sequence_number or 0)
            self._events.append(RequestRejected(nack, f"broken header: {error}", close=True))

    def _reject_undecodable(self, command_id: int, sequence_number: int, exc: PduError) -> None:
        cls = PDU_CLASSES.get(command_id)
        response = _error_response_to(cls, sequence_number, exc.command_status)
        self._events.append(RequestRejected(response, f"undecodable command_id=0x{command_id:08X}: {exc}"))

    def _receive_request(self, pdu: Pdu, command_id: int) -> None:
        if self.state not in self._peer_requests.get(command_id, NOWHERE) or (
            command_id in _BIND_REQUESTS and self._bind_pending
        ):
            if command_id in _BIND_REQUESTS and (self.state in BOUND or self._bind_pending):
                status, reason = CommandStatus.ESME_RALYBND, "already bound"
            elif originates(self._peer, command_id):
                status, reason = CommandStatus.ESME_RINVBNDSTS, f"not allowed in state {self.state.value}"
            else:
                status, reason = CommandStatus.ESME_RINVCMDID, f"a {self.role.value} does not accept this request"
            response = _error_response_to(type(pdu), pdu.sequence_number, status)
            self._events.append(RequestRejected(response, f"{CommandId(command_id).name}: {reason}"))
            return
        if self._validates:
            if isinstance(pdu, _SUBMISSIONS):
                self._receive_submission(pdu)
                return
            try:
                validate_request(pdu)
            except PduError as exc:
                self._reject_invalid(pdu, exc)
                return
        if command_id == _UNBIND:
            self.state = next_state(self.state, Transition.UNBIND)
        elif command_id in _BIND_REQUESTS:
            self._bind_pending = True
        self._events.append(RequestReceived(pdu))

    def _takes_submissions(self) -> bool:
        """Whether a submit_sm now goes straight to `_receive_submission` (the checks of `_receive_request` would
        let it through)."""
        return self._validates and self.state in self._peer_requests.get(_SUBMIT_SM, NOWHERE)

    def _receive_submission(self, pdu: SubmitSm | DataSm) -> None:
        """A submission the state allows, as the SMSC: checked, then added to this read's run of them (one event
        per run: added to while it is the newest event)."""
        try:
            validate_request(pdu)
        except PduError as exc:
            self._reject_invalid(pdu, exc)
            return
        submissions = self._submissions
        if submissions is None or self._events[-1] is not submissions:
            submissions = self._submissions = SubmissionsReceived([])
            self._events.append(submissions)
        submissions.pdus.append(pdu)

    def _reject_invalid(self, pdu: Pdu, exc: PduError) -> None:
        response = _error_response_to(type(pdu), pdu.sequence_number, exc.command_status)
        self._events.append(RequestRejected(response, str(exc)))

    def _receive_response(self, pdu: Pdu) -> None:
        outstanding = self._outstanding.get(pdu.sequence_number)
        if outstanding is None or (
            pdu.command_id != CommandId.GENERIC_NACK
            and pdu.command_id != outstanding.request.command_id | _RESPONSE_BIT
        ):
            self._events.append(UnexpectedResponse(pdu))
            return
        request = self._forget(pdu.sequence_number)
        if request.command_id == CommandId.ENQUIRE_LINK:
            self._enquire_pending = False
        if pdu.command_status == CommandStatus.ESME_ROK:
            transition = BIND_TRANSITIONS.get(pdu.command_id)
            if transition is not None and self.role is Role.ESME:
                self.state = next_state(self.state, transition)
        self._events.append(ResponseReceived(request, pdu))

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    # ---- output ---------------------------------------------------------------------------------------------

    def new_sequence_number(self) -> int:
        """The next free number in 1..0x7FFFFFFF, wrapping, never one that is still outstanding."""
        while True:
            number = self._next_sequence
            self._next_sequence = 1 if number >= MAX_SEQUENCE_NUMBER else number + 1
            if number not in self._outstanding:
                return number

    @property
    def window_available(self) -> int:
        return max(0, self.config.window - self._windowed)

    def send(self, pdu: Pdu, now: float) -> bytes:
        """Encode `pdu` and account for it: a request becomes outstanding, a bind response may change state.

        PduError (nothing accounted) for a PDU that cannot be encoded."""
        if self.state is BindState.CLOSED:
            raise LocalProtocolError(f"cannot send {type(pdu).__name__}: session is closed")
        data = encode_pdu(pdu)
        command_id = pdu.command_id
        if command_id & _RESPONSE_BIT:  # generic_nack included
            transition = BIND_TRANSITIONS.get(command_id)
            if transition is not None and self.role is Role.SMSC:
                self._bind_pending = False
                if pdu.command_status == CommandStatus.ESME_ROK:
                    self.state = next_state(self.state, transition)
        else:
            self._account_request(pdu, command_id, now)
        if command_id not in _KEEPALIVE:
            self._last_activity = now
        if wire_log.isEnabledFor(logging.DEBUG):
            wire_log.debug("direction=out role=%s hex=%s", self.role.value, data.hex())
        return data

    def send_submission_responses(
        self, requests: Sequence[SubmitSm | DataSm], outcomes: Sequence[str | int], now: float
    ) -> bytes:
        """`send` of `submission_response(request, outcome)` for a batch, in one buffer, without building the
        response values: an ordinary message_id or an error status is packed straight into a header (the
        codec's octets; a property test compares them), anything else goes through the codec.

        PduError (nothing accounted) if one of them cannot be encoded."""
        if self.state is BindState.CLOSED:
            raise LocalProtocolError(f"cannot send {len(requests)} responses: session is closed")
        if len(requests) != len(outcomes):
            raise LocalProtocolError(f"{len(outcomes)} outcomes for {len(requests)} submissions")
        pack = _HEADER.pack
        packers = _MESSAGE_ID_RESPONSES
        parts: list[bytes] = []
        for request, outcome in zip(requests, outcomes):
            known = _SUBMISSION_RESPONSES.get(type(request))
            if known is None:
                raise LocalProtocolError(f"send_submission_responses cannot answer {type(request).__name__}")
            response_id = known[0]
            sequence_number = request.sequence_number
            if isinstance(outcome, str):
                length = len(outcome)
                if length <= _PACKED_MESSAGE_ID_MAX and outcome.isascii() and "\0" not in outcome:
                    parts.append(packers[length](17 + length, response_id, 0, sequence_number, outcome.encode()))
                    continue
            elif 0 < outcome <= _MAX_STATUS:
                parts.append(pack(16, response_id, outcome, sequence_number))
                continue
            parts.append(encode_pdu(submission_response(request, outcome)))
        data = b"".join(parts)
        self._last_activity = now
        if wire_log.isEnabledFor(logging.DEBUG):
            wire_log.debug("direction=out role=%s hex=%s", self.role.value, data.hex())
        return data

    def _account_request(self, pdu: Pdu, command_id: int, now: float) -> None:
        if not may_send(self.role, command_id, self.state):
            raise LocalProtocolError(
                f"a {self.role.value} may not send {CommandId(command_id).name} in state {self.state.value}"
            )
        if not 1 <= pdu.sequence_number <= MAX_SEQUENCE_NUMBER or pdu.sequence_number in self._outstanding:
            raise LocalProtocolError(f"sequence_number {pdu.sequence_number} is not from new_sequence_number()")
        if command_id in _WINDOWED:
            if self._windowed >= self.config.window:
                raise LocalProtocolError(f"window of {self.config.window} outstanding requests is full")
            self._windowed += 1
        if command_id == CommandId.OUTBIND:
            return  # outbind has no response; the ESME answers by binding
        self._outstanding[pdu.sequence_number] = _Outstanding(pdu, now + self.config.response_timeout_s)
        if command_id == CommandId.ENQUIRE_LINK:
            self._enquire_pending = True
        elif command_id == CommandId.UNBIND:
            self.state = next_state(self.state, Transition.UNBIND)

    def _forget(self, sequence_number: int) -> Pdu:
        request = self._outstanding.pop(sequence_number).request
        if request.command_id in _WINDOWED:
            self._windowed -= 1
        return request

    def close(self) -> list[Pdu]:
        """We are dropping the connection: returns the requests that will never get an answer."""
        self.state = next_state(self.state, Transition.CLOSE)
        abandoned = [self._forget(number) for number in list(self._outstanding)]
        self._enquire_pending = False
        return abandoned

    # ---- timers ---------------------------------------------------------------------------------------------

    def next_deadline(self) -> float:
        """When `handle_timers` next has something to do; `math.inf` if never."""
        if self.state is BindState.CLOSED:
            return math.inf
        deadlines = [entry.deadline for entry in self._outstanding.values()]
        if not self._timed_out:
            if self.state is BindState.OPEN and not self._bind_pending:
                deadlines.append(self.opened_at + self.config.session_init_timeout_s)
            elif self.state in BOUND and self.config.inactivity_timeout_s > 0:
                deadlines.append(self._last_activity + self.config.inactivity_timeout_s)
        if self.state in BOUND and not self._enquire_pending:
            deadlines.append(self._last_received + self.config.enquire_link_interval_s)
        if self._partial_since is not None:
            deadlines.append(self._partial_since + self.config.pdu_read_timeout_s)
        return min(deadlines, default=math.inf)

    def handle_timers(self, now: float) -> None:
        if self._partial_since is not None and now >= self._partial_since + self.config.pdu_read_timeout_s:
            # A peer that holds half a PDU open would hold the connection forever (enquire_link cannot help: it
            # would be read as the rest of that PDU). Nothing after it can be framed, so this ends the session.
            self._partial_since = None
            self._broken = True
            self._events.append(SessionTimedOut("pdu_read"))
        for number, entry in list(self._outstanding.items()):
            if now >= entry.deadline:
                # An unanswered enquire_link leaves `_enquire_pending` set: the link is dead, no point asking again.
                self._events.append(ResponseTimedOut(self._forget(number)))
        if not self._timed_out:
            if (
                self.state is BindState.OPEN
                and not self._bind_pending
                and now >= self.opened_at + self.config.session_init_timeout_s
            ):
                self._timed_out = True
                self._events.append(SessionTimedOut("session_init"))
            elif (
                self.state in BOUND
                and self.config.inactivity_timeout_s > 0
                and now >= self._last_activity + self.config.inactivity_timeout_s
            ):
                self._timed_out = True
                self._events.append(SessionTimedOut("inactivity"))
        if (
            self.state in BOUND
            and not self._enquire_pending
            and now >= self._last_received + self.config.enquire_link_interval_s
        ):
            # Marked pending now so the event is not repeated before the shell has sent the enquire_link.
            self._enquire_pending = True
            self._events.append(EnquireLinkDue())
