"""`SmppConnection`: one connection of the server, in the SMSC role: binds (authenticated against the accounts),
requests handed to the server's workers and answered in batches, receipts/MO pushed as deliver_sm.

The Trio machinery (reader, timer, one writer) is `connection.SessionShell`'s; the server-wide state (accounts,
workers, pushers, throttles) is `server.SmppServer`'s.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Final

import trio

from smsgw.config import AccountConfig
from smsgw.pdu.constants import CommandId, CommandStatus, InterfaceVersion
from smsgw.pdu.errors import PduError
from smsgw.pdu.smpp import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CancelSm,
    EnquireLink,
    EnquireLinkResp,
    Outbind,
    Pdu,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    Unbind,
    UnbindResp,
    UnsuccessSme,
    response_for,
)
from smsgw.pdu.smpp_time import format_absolute
from smsgw.pdu.tlv import Tlvs
from smsgw.smpp_server.accounts import BIND_TYPES, BindRefused
from smsgw.smpp_server.backend import BackendError, OutboundItem
from smsgw.smpp_server.connection import SessionShell
from smsgw.smpp_server.session import (
    ConnectionClosed,
    EnquireLinkDue,
    Event,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    ResponseTimedOut,
    SessionTimedOut,
    SmppSession,
    SubmissionsReceived,
    UnexpectedResponse,
    submission_response,
)
from smsgw.smpp_server.states import BOUND, BindState, Role
from smsgw.smpp_server.validation import multi_address_error

if TYPE_CHECKING:
    from smsgw.smpp_server.server import SmppServer

log = logging.getLogger(__name__)

_PUSHED: Final = frozenset({CommandId.DELIVER_SM, CommandId.DATA_SM})
# Unique within the process: the server's registry rows are (node, bind id), and a node's start clears its own.
_BIND_IDS: Final = itertools.count(1)
# Answered one by one by the workers (submit_sm/data_sm come as `SubmissionsReceived`, answered in batches).
_BACKEND_OPERATIONS: Final = frozenset(
    {
        CommandId.SUBMIT_MULTI,
        CommandId.QUERY_SM,
        CommandId.CANCEL_SM,
        CommandId.REPLACE_SM,
    }
)
RECEIVER_BINDS: Final = frozenset({BindState.BOUND_RX, BindState.BOUND_TRX})
BIND_TYPE_OF_STATE: Final = {
    BindState.BOUND_TX: "transmitter", BindState.BOUND_RX: "receiver", BindState.BOUND_TRX: "transceiver"
}
_BIND_RESPONSES: Final[dict[int, type[BindTransmitterResp] | type[BindReceiverResp] | type[BindTransceiverResp]]] = {
    CommandId.BIND_TRANSMITTER: BindTransmitterResp,
    CommandId.BIND_RECEIVER: BindReceiverResp,
    CommandId.BIND_TRANSCEIVER: BindTransceiverResp,
}


class SmppConnection(SessionShell):
    """One TCP/TLS connection (accepted, or opened by us for outbind) and its session, in the SMSC role."""

    def __init__(
        self,
        server: SmppServer,
        stream: trio.abc.Stream,
        peer: tuple[str, int],
        *,
        outbind: AccountConfig | None = None,
    ) -> None:
        super().__init__(
            stream, SmppSession(Role.SMSC, server.config.smpp, opened_at=trio.current_time()), f"{peer[0]}:{peer[1]}"
        )
        self.server = server
        self.peer = peer
        self.account: AccountConfig | None = None
        self._outbind = outbind
        # Requests handed to the workers and not answered yet; the reader waits on `_room` at the limit.
        self._pending = 0
        self._room = trio.Event()
        self._pushed: dict[int, OutboundItem] = {}
        self._registered = False
        self.bind_id = next(_BIND_IDS)  # names its bind in the store's registry, with the node's name
        self._attempt_audited = False  # every connection leaves one audit record of how its bind attempt ended

    # ---- main loop -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        self.server.opened(self)
        log.debug("connection opened source=%s", self.source)
        await super().run()

    async def _started(self) -> None:
        if self._outbind is not None:
            await self._send_outbind(self._outbind)

    async def _before_eof(self) -> None:
        # A half-closed ESME may still read: what it submitted before its EOF is stored, so its acknowledgements
        # are written before the session learns of the close (which would drop them).
        await self._settle("eof")

    async def _cleanup(self) -> None:
        self.server.ended(self)
        items = list(self._pushed.values())
        self._pushed.clear()
        if self.account is not None and self._registered:
            await self.server.unregister(self, self.account)
            self.server.audit.record(
                source=self.source, event="disconnect", outcome="closed", system_id=self.account.system_id
            )
        else:
            self._audit_attempt("closed before bind")
        await self.server.release_items(items)
        await super()._cleanup()
        log.debug("connection closed source=%s released=%d", self.source, len(items))

    def _audit_attempt(self, outcome: str) -> None:
        """Audit a connection that ends without a bind, unless its refused bind was audited already."""
        if not self._attempt_audited:
            self._attempt_audited = True
            self.server.audit.record(source=self.source, event="connect", outcome=outcome)

    def close(self) -> None:
        """Stop reading; `run` then cleans up (releases pushed items, unregisters the bind, closes the stream)."""
        super().close()
        self._room.set()  # a reader settling its pending requests stops waiting for them

    async def _settle(self, reason: str, final: Pdu | None = None) -> None:
        """Before the connection ends (unbind either way, EOF), with no new request read meanwhile: wait for every
        request handed to the workers to be answered, queue `final` after those answers, and write it all; each
        wait at most `response_timeout_s`. An ESME told nothing about a stored submission resubmits it."""
        timeout = self.server.config.smpp.response_timeout_s
        with trio.move_on_after(timeout):
            while self._pending and not self._closing:
                self._room = trio.Event()
                await self._room.wait()
        if self._pending:
            log.warning("closing with requests unanswered source=%s reason=%s pending=%d", self.source, reason,
                        self._pending)
        if final is not None:
            self._queue(final)
        with trio.move_on_after(timeout):
            await self.flush(wait=True)
        if self._outbox:
            log.warning("closing with responses unwritten source=%s reason=%s bytes=%d", self.source, reason,
                        len(self._outbox))

    async def shutdown(self) -> None:
        """Graceful: unbind if bound (the ESME answers outstanding deliver_sm first), else close; wait for the end."""
        if self.session.state is BindState.OPEN:
            self.close()
        else:
            await self._unbind()
        await self.closed.wait()

    async def _unbind(self) -> None:
        """Ask the ESME to unbind; its unbind_resp (or the response timeout) then closes the connection."""
        if self.session.state in BOUND:
            await self._send_request(Unbind(sequence_number=0))

    # ---- writing -------------------------------------------------------------------------------------------

    def push(self, item: OutboundItem) -> bool:
        """Queue a receipt/MO as the next deliver_sm, written by the next `flush`; the item is ours to
        acknowledge or release from now on."""
        if self.session.state not in RECEIVER_BINDS or self.session.window_available <= 0:
            return False
        pdu = replace(item.pdu, sequence_number=self.session.new_sequence_number())
        self._pushed[pdu.sequence_number] = item
        self._queue(pdu)
        return True

    async def _send_outbind(self, account: AccountConfig) -> None:
        await self._send_request(
            Outbind(sequence_number=0, system_id=account.system_id, password=account.outbind_password)
        )
        self.server.audit.record(source=self.source, event="outbind", outcome="sent", system_id=account.system_id)

    # ---- events --------------------------------------------------------------------------------------------

    async def _handle_events(self) -> None:
        self._reschedule()  # once per read, so the timer does not sleep towards a deadline that has moved
        while (event := self.session.next_event()) is not None:
            if isinstance(event, SubmissionsReceived):
                await self._dispatch(event)
            else:
                await self._handle_event(event)

    async def _dispatch(self, requests: SubmissionsReceived | RequestReceived) -> None:
        """Hand `requests` (submissions of one read, or one other operation) to the workers, at most
        `max_pending_requests` outstanding: at the limit the reader waits here (backpressure) until answers are
        out, and submissions beyond the room left go in a later job."""
        limit = self.server.config.smpp.max_pending_requests
        while True:
            while self._pending >= limit:
                self._room = trio.Event()
                await self._room.wait()
            room = limit - self._pending
            if isinstance(requests, RequestReceived) or len(requests.pdus) <= room:
                self._pending += 1 if isinstance(requests, RequestReceived) else len(requests.pdus)
                await self.server.enqueue(self, requests)
                return
            self._pending += room
            await self.server.enqueue(self, SubmissionsReceived(requests.pdus[:room]))
            requests = SubmissionsReceived(requests.pdus[room:])

    async def _handle_event(self, event: Event) -> None:
        match event:
            case RequestReceived(pdu=pdu):
                await self._handle_request(pdu)
            case ResponseReceived(request=request, response=response):
                await self._handle_response(request, response)
            case RequestRejected(response=response, reason=reason, close=close):
                log.info("rejected source=%s reason=%r command_status=0x%08X", self.source, reason,
                         response.command_status)
                await self._send(response)
                if close:
                    self.close()
            case ResponseTimedOut(request=request):
                log.info("response timeout source=%s command_id=0x%08X", self.source, request.command_id)
                await self._response_failed(request)
                if request.command_id == CommandId.ENQUIRE_LINK or request.command_id == CommandId.UNBIND:
                    self.close()
            case EnquireLinkDue():
                if self.session.state in BOUND:  # not if an unbind came in since the timer fired
                    await self._send_request(EnquireLink(sequence_number=0))
            case SessionTimedOut(reason="pdu_read"):
                log.info("incomplete pdu timeout source=%s", self.source)
                self._audit_attempt("incomplete PDU")
                self.close()
            case SessionTimedOut(reason="session_init"):
                self._audit_attempt("no bind before timeout")
                self.close()
            case SessionTimedOut():
                log.info("inactivity source=%s", self.source)
                await self._unbind()
            case UnexpectedResponse(pdu=pdu):
                log.info("unexpected response source=%s command_id=0x%08X sequence_number=%d", self.source,
                         pdu.command_id, pdu.sequence_number)
            case ConnectionClosed():
                pass  # the read loop ends on the closed state

    async def _handle_request(self, pdu: Pdu) -> None:
        command_id = pdu.command_id
        if command_id in _BACKEND_OPERATIONS:
            await self._dispatch(RequestReceived(pdu))
        elif isinstance(pdu, BindTransmitter | BindReceiver | BindTransceiver):
            await self._bind(pdu)
        elif command_id == CommandId.ENQUIRE_LINK:
            await self._send(EnquireLinkResp(sequence_number=pdu.sequence_number))
        elif command_id == CommandId.UNBIND:
            # SMPP 3.4 4.2: outstanding requests are answered before unbind_resp. The reader is here, so nothing
            # new is read meanwhile; the session refuses whatever follows in the same read (it is unbound).
            await self._settle("unbind", UnbindResp(sequence_number=pdu.sequence_number))
            if self.account is not None:
                self.server.audit.record(
                    source=self.source, event="unbind", outcome="ok", system_id=self.account.system_id
                )
            self.close()

    async def _handle_response(self, request: Pdu, response: Pdu) -> None:
        if request.command_id == CommandId.UNBIND:
            await self._settle("unbind_resp")
            self.close()
        elif response.command_status != CommandStatus.ESME_ROK:
            await self._response_failed(request, response.command_status)
        elif request.command_id in _PUSHED:
            item = self._pushed.pop(request.sequence_number, None)
            if item is not None:
                try:
                    await self.server.backend.acknowledge(item.item_id)
                except Exception:
                    log.exception("acknowledge failed item_id=%s", item.item_id)
                self.server.window_freed(item.account)

    async def _response_failed(self, request: Pdu, command_status: int | None = None) -> None:
        item = self._pushed.pop(request.sequence_number, None)
        if item is not None:
            log.info("deliver_sm not taken item_id=%s command_status=%s", item.item_id, command_status)
            await self.server.release_items([item])
            self.server.window_freed(item.account)

    # ---- bind ----------------------------------------------------------------------------------------------

    async def _bind(self, pdu: BindTransmitter | BindReceiver | BindTransceiver) -> None:
        server = self.server
        bind_type = BIND_TYPES[CommandId(pdu.command_id)]
        ip = self.peer[0]
        try:
            account = await server.login.authenticate(pdu.system_id, pdu.password, ip, CommandId(pdu.command_id))
            await server.register(self, account)
        except BindRefused as exc:
            self._attempt_audited = True
            server.audit.record(
                source=self.source,
                event="bind",
                outcome=exc.reason,
                system_id=pdu.system_id,
                bind_type=bind_type,
                command_status=exc.command_status,
            )
            await self._send(response_for(pdu, command_status=exc.command_status))
            self.close()
            return
        self.account = account
        self._registered = True
        response = _BIND_RESPONSES[pdu.command_id](
            sequence_number=pdu.sequence_number,
            system_id=server.config.smpp.system_id,
            tlvs=Tlvs(sc_interface_version=InterfaceVersion.SMPP_3_4),
        )
        if not await self._send(response):
            return
        self._attempt_audited = True
        server.audit.record(source=self.source, event="bind", outcome="ok", system_id=account.system_id,
                            bind_type=bind_type)
        server.bound(self, account)

    # ---- operations ----------------------------------------------------------------------------------------

    async def answer(self, requests: SubmissionsReceived | RequestReceived) -> None:
        """Run in a server worker: call the backend, answer, and let the reader take as many more requests."""
        try:
            if isinstance(requests, SubmissionsReceived):
                await self._answer_submissions(requests)
            else:
                await self._answer_operation(requests.pdu)
        finally:
            self._pending -= len(requests.pdus) if isinstance(requests, SubmissionsReceived) else 1
            self._room.set()

    async def _answer_submissions(self, submissions: SubmissionsReceived) -> None:
        """Give the backend the submissions in one `submit_many`, which charges the account's throttle with the
        segments it prepared (those over the rate are answered ESME_RTHROTTLED); write every answer at once (in
        the order of the requests)."""
        account = self.account
        assert account is not None  # the session only lets these through in a bound state
        pdus = submissions.pdus
        try:
            results = await self.server.backend.submit_many(account.system_id, pdus, self.server.throttle(account))
            if len(results) != len(pdus):
                raise AssertionError(f"submit_many answered {len(results)} of {len(pdus)} submissions")
        except BackendError as exc:
            results = [exc] * len(pdus)
        except Exception:
            log.exception("submit_many failed source=%s count=%d", self.source, len(pdus))
            results = [BackendError("backend failed", command_status=CommandStatus.ESME_RSYSERR)] * len(pdus)
        if self.session.state is BindState.CLOSED:
            # Only after the wait for answers at close ran out (or the stream broke): the ESME will resubmit these.
            stored = [result for result in results if isinstance(result, str)]
            if stored:
                log.warning("stored submissions not acknowledged source=%s count=%d message_ids=%s", self.source,
                            len(stored), ",".join(stored))
            return
        outcomes: list[str | int] = [result if isinstance(result, str) else result.command_status for result in results]
        self.server.submissions.update(CommandStatus.ESME_ROK if isinstance(o, str) else o for o in outcomes)
        now = trio.current_time()
        try:
            self._outbox += self.session.send_submission_responses(pdus, outcomes, now)
        except PduError:  # one of them cannot be encoded: find it
            for pdu, outcome in zip(pdus, outcomes):
                self._answer(pdu, submission_response(pdu, outcome), now)
        await self.flush()

    def _answer(self, request: Pdu, response: Pdu, now: float) -> None:
        """Queue the response to a request of the bound session (no bind response, nothing that reschedules)."""
        try:
            self._outbox += self.session.send(response, now)
        except PduError as exc:  # e.g. a message_id from the backend longer than SMPP allows
            log.error("response not encodable source=%s error=%s", self.source, exc)
            self._outbox += self.session.send(response_for(request, command_status=CommandStatus.ESME_RSYSERR), now)

    async def _answer_operation(self, pdu: Pdu) -> None:
        try:
            response = await self._operation(pdu)
        except BackendError as exc:
            response = response_for(pdu, command_status=exc.command_status)
        except Exception:
            log.exception("operation failed source=%s command_id=0x%08X", self.source, pdu.command_id)
            response = response_for(pdu, command_status=CommandStatus.ESME_RSYSERR)
        if self.session.state is BindState.CLOSED:
            log.warning("response not sent, connection closed source=%s command_id=0x%08X command_status=0x%08X",
                        self.source, response.command_id, response.command_status)
            return
        self._answer(pdu, response, trio.current_time())
        await self.flush()

    async def _operation(self, pdu: Pdu) -> Pdu:
        """Answer one bound request other than a submission through the backend; BackendError becomes the
        response's status."""
        account = self.account
        assert account is not None  # the session only lets these through in a bound state
        backend = self.server.backend
        match pdu:
            case SubmitMulti():
                return await self._submit_multi(account, pdu)
            case QuerySm():
                status = await backend.query(account.system_id, pdu.message_id, pdu.source_addr)
                return QuerySmResp(
                    sequence_number=pdu.sequence_number,
                    message_id=status.message_id,
                    final_date="" if status.final_date is None else format_absolute(status.final_date),
                    message_state=status.message_state,
                    error_code=status.error_code,
                )
            case CancelSm():
                await backend.cancel(account.system_id, pdu)
                return response_for(pdu)
            case ReplaceSm():
                await backend.replace(account.system_id, pdu)
                return response_for(pdu)
        raise AssertionError(f"no operation for {type(pdu).__name__}")

    async def _submit_multi(self, account: AccountConfig, pdu: SubmitMulti) -> Pdu:
        """Refuse bad destinations one by one (unsuccess_sme); the rest go to the backend together, which charges
        the throttle with all their segments at once (ESME_RTHROTTLED for the whole PDU over the rate)."""
        accepted: list[SmeAddress] = []
        refused: list[UnsuccessSme] = []
        for destination in pdu.destinations:
            if not isinstance(destination, SmeAddress):
                # No distribution lists are kept here; SMPP has no unsuccess_sme entry for a list name.
                return response_for(pdu, command_status=CommandStatus.ESME_RCNTSUBDL)
            status = multi_address_error(destination.dest_addr_ton, destination.dest_addr_npi,
                                         destination.destination_addr)
            if status is None:
                accepted.append(destination)
            else:
                refused.append(UnsuccessSme(destination.dest_addr_ton, destination.dest_addr_npi,
                                            destination.destination_addr, status))
        if not accepted:
            return response_for(pdu, command_status=CommandStatus.ESME_RINVDSTADR)
        result = await self.server.backend.submit_multi(account.system_id, replace(pdu, destinations=tuple(accepted)),
                                                        self.server.throttle(account))
        refused.extend(
            UnsuccessSme(u.dest_addr_ton, u.dest_addr_npi, u.destination_addr, u.error_status_code)
            for u in result.unsuccessful
        )
        return SubmitMultiResp(
            sequence_number=pdu.sequence_number, message_id=result.message_id, unsuccess_sme=tuple(refused)
        )
