"""The SMPP server's backend: SMPP requests in, the accept path's plain values out, and its results as SMPP answers.

submit_sm, data_sm and submit_multi become `Submission`s for `AcceptPath` (one `prepare` and `commit` per call, so
a read's submissions share one durable commit, the server's throttle charged in between with the segments
`prepare` built); its results become message ids, `BackendError`s and `unsuccess_sme` entries. query_sm, cancel_sm and replace_sm read and change stored messages; receipts and MO come from `Outbox`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from smsgw.numbers import InvalidNumber, normalise_number
from smsgw.pdu.constants import CommandStatus, Ton
from smsgw.pdu.errors import PduError
from smsgw.pdu.segmentation import SarInfo, TooManySegments
from smsgw.pdu.smpp import CancelSm, DataSm, ReplaceSm, SmeAddress, SubmitMulti, SubmitSm
from smsgw.pdu.smpp_time import parse_smpp_time
from smsgw.pdu.tlv import Tlvs
from smsgw.scheduler.accept import (
    INSUFFICIENT_BALANCE,
    THROTTLED,
    THROTTLED_STATUS,
    AcceptPath,
    Accepted,
    Encoded,
    Options,
    Prepared,
    Rejected,
    Result,
    Submission,
    Timing,
    results,
)
from smsgw.scheduler.ids import normalize_message_id
from smsgw.scheduler.model import Address, InsufficientBalance, NotCancellable, Refused, StoreUnavailable
from smsgw.scheduler.outbox import Outbox
from smsgw.scheduler.policy import PolicyError
from smsgw.scheduler.routing import NoRoute
from smsgw.scheduler.states import FINAL, message_state, smpp_message_state
from smsgw.scheduler.store import MessageStore
from smsgw.scheduler.timing import WallClock, from_ms
from smsgw.smpp_server.backend import (
    BackendError,
    MessageStatus,
    MultiResult,
    OutboundItem,
    UnsuccessfulDestination,
)
from smsgw.smpp_server.throttle import Throttle

log = logging.getLogger(__name__)

_INSUFFICIENT_BALANCE_STATUS: Final = InsufficientBalance.command_status


class SmppIntake:
    """`SmppBackend`: submissions through `accept`, receipts and MO from `outbox`."""

    def __init__(self, store: MessageStore, accept: AcceptPath, outbox: Outbox, clock: WallClock) -> None:
        self._store = store
        self._accept = accept
        self._outbox = outbox
        self._clock = clock

    async def submit(self, account: str, pdu: SubmitSm | DataSm) -> str:
        try:
            submission = _Shared().submission(pdu, (_destination(pdu),))
        except Refused as refused:
            raise BackendError(str(refused), command_status=refused.command_status) from None
        ((outcome,),) = await self._submit(account, [submission])
        if isinstance(outcome, Rejected):
            raise BackendError(outcome.reason, command_status=outcome.command_status)
        log.info("accepted message_id=%s account=%s segments=%d", outcome.message_id, account, outcome.segments)
        return outcome.message_id

    async def submit_many(
        self, account: str, pdus: Sequence[SubmitSm | DataSm], throttle: Throttle
    ) -> Sequence[str | BackendError]:
        """Each PDU as `submit` would take it, `throttle` charged with their segments, all accepted ones in one
        durable commit."""
        shared = _Shared()
        submissions: list[Submission] = []
        refused: list[tuple[int, BackendError]] = []  # a PDU the accept path never saw, by its place
        for index, pdu in enumerate(pdus):
            try:
                submissions.append(shared.submission(pdu, (_destination(pdu),)))
            except Refused as exc:
                refused.append((index, BackendError(str(exc), command_status=exc.command_status)))
        # Answered from the prepared messages and the paid flags: no `Result` per message on this hot path.
        answers: list[str | BackendError] = []
        if submissions:
            prepared = self._accept.prepare(account, submissions, throttle=throttle)
            paid = iter(await self._commit(prepared))
            for (outcome,) in prepared.built:
                if isinstance(outcome, Rejected):
                    answers.append(BackendError(outcome.reason, command_status=outcome.command_status))
                elif next(paid):
                    answers.append(outcome.message_id)
                else:
                    answers.append(BackendError(INSUFFICIENT_BALANCE, command_status=_INSUFFICIENT_BALANCE_STATUS))
        for index, error in refused:
            answers.insert(index, error)
        if log.isEnabledFor(logging.INFO):  # the count is a pass over the answers: not for a line nobody reads
            log.info("accepted account=%s submissions=%d refused=%d", account, len(pdus),
                     len(pdus) - sum(type(answer) is str for answer in answers))
        return answers

    async def submit_multi(self, account: str, pdu: SubmitMulti, throttle: Throttle) -> MultiResult:
        refused: list[UnsuccessfulDestination] = []
        destinations: list[Address] = []
        for entry in pdu.destinations:
            if isinstance(entry, SmeAddress):
                destinations.append(Address(entry.destination_addr, entry.dest_addr_ton, entry.dest_addr_npi))
            else:
                refused.append(UnsuccessfulDestination(0, 0, entry.dl_name, CommandStatus.ESME_RCNTSUBDL))
        try:
            submission = _Shared().submission(pdu, destinations)
        except Refused as exc:
            refused.extend(_unsuccessful(d, exc.command_status) for d in destinations)
            outcomes: list[Result] = []
        else:
            (outcomes,) = await self._submit(account, [submission], throttle) if destinations else ([],)
        message_id = ""
        for outcome in outcomes:
            if isinstance(outcome, Rejected):
                if outcome.command_status == THROTTLED_STATUS:  # held back as a whole, not per destination
                    raise BackendError(THROTTLED, command_status=THROTTLED_STATUS)
                refused.append(_unsuccessful(outcome.destination, outcome.command_status))
            else:
                message_id = outcome.message_id
        if not message_id:
            status = refused[0].error_status_code if refused else CommandStatus.ESME_RSUBMITFAIL
            raise BackendError("no destination accepted", command_status=status)
        log.info("accepted message_id=%s account=%s destinations=%d refused=%d", message_id, account,
                 sum(isinstance(o, Accepted) for o in outcomes), len(refused))
        return MultiResult(message_id, tuple(refused))

    async def _submit(
        self, account: str, submissions: Sequence[Submission], throttle: Throttle | None = None
    ) -> list[list[Result]]:
        prepared = self._accept.prepare(account, submissions, throttle=throttle)
        return results(prepared, await self._commit(prepared))

    async def _commit(self, prepared: Prepared) -> Sequence[bool]:
        try:
            return await self._accept.commit(prepared)
        except StoreUnavailable as exc:
            log.error("store refused a submission error=%s", exc)
            raise BackendError("store unavailable", command_status=CommandStatus.ESME_RSYSERR) from None

    async def query(self, account: str, message_id: str, source_addr: str) -> MessageStatus:
        normalized = normalize_message_id(message_id)
        found = await self._store.find(account, normalized) if normalized else []
        if source_addr:
            found = [m for m in found if m.source.addr == source_addr]
        if not found:
            raise BackendError(f"no message {message_id!r}", command_status=CommandStatus.ESME_RQUERYFAIL)
        state = message_state(s for m in found for s in m.segment_states)
        final_ms = max((m.final_ms for m in found if m.final_ms is not None), default=None)
        error = next((m.error_code for m in found if m.error_code), 0)
        return MessageStatus(
            message_id=found[0].message_id,
            message_state=smpp_message_state(state),
            final_date=from_ms(final_ms) if state in FINAL and final_ms is not None else None,
            error_code=error,
        )

    async def cancel(self, account: str, pdu: CancelSm) -> None:
        message_id: str | None = None
        if pdu.message_id:
            message_id = normalize_message_id(pdu.message_id)
            if message_id is None:
                raise BackendError(f"no message {pdu.message_id!r}", command_status=CommandStatus.ESME_RCANCELFAIL)
        elif not pdu.destination_addr:
            raise BackendError("cancel_sm needs message_id or addresses", command_status=CommandStatus.ESME_RCANCELFAIL)
        try:
            destination = pdu.destination_addr
            if destination:  # as stored: normalised the way the submission's was
                destination = normalise_number(
                    destination,
                    self._accept.account(account).default_country_code,
                    international=pdu.dest_addr_ton == Ton.INTERNATIONAL,
                )
            count = await self._store.cancel(account, message_id, pdu.source_addr, destination, self._clock.now_ms())
        except (NotCancellable, InvalidNumber) as exc:
            raise BackendError(str(exc), command_status=CommandStatus.ESME_RCANCELFAIL) from None
        log.info("cancelled account=%s message_id=%s messages=%d", account, message_id, count)

    async def replace(self, account: str, pdu: ReplaceSm) -> None:
        message_id = normalize_message_id(pdu.message_id)
        found = await self._store.find(account, message_id) if message_id else []
        if len(found) != 1 or (pdu.source_addr and found[0].source.addr != pdu.source_addr):
            raise BackendError(f"no message {pdu.message_id!r}", command_status=CommandStatus.ESME_RREPLACEFAIL)
        (original,) = found
        now = self._clock.now_ms()
        try:
            content, price = self._accept.replacement(
                account,
                original.destination.addr,
                original.source.addr,
                Encoded(pdu.short_message, original.data_coding, original.esm_class),
            )
            window = self._replacement_window(pdu, original.start_ms, original.expires_ms, now)
            await self._store.replace(
                account,
                original.message_id,
                segments=content.segments,
                text=content.text,
                window=window,
                registered_delivery=pdu.registered_delivery,
                price_per_segment_micro=price,
                now_ms=now,
            )
        except (NoRoute, Refused, InsufficientBalance, PolicyError, TooManySegments) as exc:
            raise BackendError(str(exc), command_status=exc.command_status) from None
        except NotCancellable as exc:
            raise BackendError(str(exc), command_status=CommandStatus.ESME_RREPLACEFAIL) from None
        log.info("replaced account=%s message_id=%s", account, original.message_id)

    def _replacement_window(self, pdu: ReplaceSm, start_ms: int, expires_ms: int, now: int) -> tuple[int, int]:
        """Empty schedule/validity keep the original (SMPP 3.4 4.10.1); new ones follow the submit rules."""
        if not pdu.schedule_delivery_time and not pdu.validity_period:
            return start_ms, expires_ms
        schedule: datetime | timedelta | None = from_ms(start_ms)
        validity: datetime | timedelta | None = from_ms(expires_ms)
        try:
            if pdu.schedule_delivery_time:
                schedule = parse_smpp_time(pdu.schedule_delivery_time, command_status=CommandStatus.ESME_RINVSCHED)
            if pdu.validity_period:
                validity = parse_smpp_time(pdu.validity_period, command_status=CommandStatus.ESME_RINVEXPIRY)
        except PduError as exc:
            raise Refused(exc.message, command_status=exc.command_status) from None
        window = self._accept.window(Timing(schedule, validity), now)
        return window.start_ms, window.expires_ms

    async def next_outbound(self, account: str) -> OutboundItem:
        return await self._outbox.next_outbound(account)

    async def acknowledge(self, item_id: str) -> None:
        await self._outbox.acknowledge(item_id)

    async def release(self, item_id: str) -> None:
        await self._outbox.release(item_id)


class _Shared:
    """What one call's PDUs mostly repeat (schedule and validity strings, sender, service_type), turned into the
    accept path's values once per call: a read of 100 submissions is built in a few microseconds each, and these
    values would be a fifth of that if built per PDU."""

    __slots__ = ("_timings", "_senders", "_options")

    def __init__(self) -> None:
        self._timings: dict[tuple[str, str] | int | None, Timing] = {}
        self._senders: dict[str, Address] = {}
        self._options: dict[tuple[str, int], Options] = {}

    def submission(self, pdu: SubmitSm | DataSm | SubmitMulti, destinations: Sequence[Address]) -> Submission:
        """The PDU as the accept path's values; Refused for a schedule, validity or SAR value it cannot take."""
        tlvs = pdu.tlvs
        if tlvs.message_payload is not None:
            payload = tlvs.message_payload
        else:
            payload = b"" if isinstance(pdu, DataSm) else pdu.short_message
        sar = None if tlvs.sar_msg_ref_num is None else _sar(tlvs)
        # An account's sender is resolved from its address alone (`Submission.sender`).
        sender = self._senders.get(pdu.source_addr)
        if sender is None:
            sender = self._senders[pdu.source_addr] = Address(pdu.source_addr)
        key = (pdu.service_type, pdu.registered_delivery)
        options = self._options.get(key)
        if options is None:
            options = self._options[key] = Options(pdu.service_type, pdu.registered_delivery)
        return Submission(
            destinations, Encoded(payload, pdu.data_coding, pdu.esm_class, sar), sender, self._timing(pdu), options
        )

    def _timing(self, pdu: SubmitSm | DataSm | SubmitMulti) -> Timing:
        key: tuple[str, str] | int | None
        key = pdu.tlvs.qos_time_to_live if isinstance(pdu, DataSm) else (pdu.schedule_delivery_time,
                                                                          pdu.validity_period)
        timing = self._timings.get(key)
        if timing is None:
            timing = self._timings[key] = _timing(pdu)
        return timing


def _timing(pdu: SubmitSm | DataSm | SubmitMulti) -> Timing:
    """Refused for a schedule or validity that is not an SMPP time."""
    if isinstance(pdu, DataSm):
        ttl = pdu.tlvs.qos_time_to_live
        return Timing(None, None if ttl is None else timedelta(seconds=ttl))
    try:
        return Timing(
            parse_smpp_time(pdu.schedule_delivery_time, command_status=CommandStatus.ESME_RINVSCHED),
            parse_smpp_time(pdu.validity_period, command_status=CommandStatus.ESME_RINVEXPIRY),
        )
    except PduError as exc:
        raise Refused(exc.message, command_status=exc.command_status) from None


def _destination(pdu: SubmitSm | DataSm) -> Address:
    return Address(pdu.destination_addr, pdu.dest_addr_ton, pdu.dest_addr_npi)


def _unsuccessful(destination: Address, status: int) -> UnsuccessfulDestination:
    return UnsuccessfulDestination(destination.ton, destination.npi, destination.addr, status)


def _sar(tlvs: Tlvs) -> SarInfo | None:
    if tlvs.sar_msg_ref_num is None or tlvs.sar_total_segments is None or tlvs.sar_segment_seqnum is None:
        return None
    try:
        return SarInfo(tlvs.sar_msg_ref_num, tlvs.sar_total_segments, tlvs.sar_segment_seqnum)
    except ValueError as exc:
        raise Refused(str(exc), command_status=CommandStatus.ESME_RINVOPTPARAMVAL) from None
