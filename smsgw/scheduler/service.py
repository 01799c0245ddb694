"""The scheduler: the SMPP server's backend, the modem pool's event sink, and the dispatcher between them.

`Scheduler.run(sender)` recovers interrupted hand-offs, then runs the dispatcher (hands due segments to the
`SmsSender`, at most `max_in_flight_segments` at once), the writer of acknowledged receipts/MO and the retention
purge, until cancelled. All times come from a `WallClock` on the Trio clock, so `MockClock` tests run schedules,
retries and expiry instantly.
"""

from __future__ import annotations

import collections
import functools
import logging
import math
import random
from collections.abc import Sequence
from datetime import datetime, timedelta

import trio

from smsgw.config import AccountConfig, Config, ConfigHolder, MessageConfig, RouteConfig, holding
from smsgw.modem.seams import IncomingSms, OutgoingSms, SendFailed, SendOutcome, Sent, SmsSender, StatusReport
from smsgw.numbers import InvalidNumber, handset_key, normalise_number
from smsgw.pdu.constants import CommandStatus, Npi, Ton
from smsgw.pdu.errors import PduError
from smsgw.pdu.segmentation import SarInfo, TooManySegments
from smsgw.pdu.smpp import CancelSm, DataSm, DeliverSm, ReplaceSm, SmeAddress, SubmitMulti, SubmitSm
from smsgw.pdu.smpp_time import parse_smpp_time
from smsgw.pdu.text import choose_encoding
from smsgw.pdu.tlv import Tlvs
from smsgw.scheduler.callback import MoCallbacks
from smsgw.scheduler.content import Content, Decoded, build_segments, decode_content
from smsgw.scheduler.ids import MessageIdGenerator, normalize_message_id
from smsgw.scheduler.model import (
    Address,
    Handoff,
    InsufficientBalance,
    MoRecord,
    NewMessage,
    NotCancellable,
    OutboxEntry,
    Refused,
    StoreUnavailable,
)
from smsgw.scheduler.policy import (
    KeywordRules,
    MessagePolicy,
    PolicyError,
    record_opt_out,
    resolve_sender,
)
from smsgw.scheduler.render import mo_pdu, receipt_pdu
from smsgw.scheduler.routing import NoRoute, find_route, segment_price_micro
from smsgw.scheduler.states import FINAL, message_state, smpp_message_state
from smsgw.scheduler.store import MessageStore
from smsgw.scheduler.timing import WallClock, Window, delivery_window, from_ms, retry_delay_ms
from smsgw.smpp_server.backend import (
    BackendError,
    MessageStatus,
    MultiResult,
    OutboundItem,
    UnsuccessfulDestination,
)

log = logging.getLogger(__name__)

_MAX_TP_STATUS = 0xFF
_MS = 1000
_OUTBOX_READ_AHEAD = 64  # outbox items read at once for one account's binds
_ACK_RETRY_S = 1.0  # after the store refused to write acknowledgements
_ACK_FLUSH_AT_STOP_S = 5.0  # at shutdown, for writing the last acknowledgements


class Scheduler:
    def __init__(
        self,
        store: MessageStore,
        config: Config | ConfigHolder,
        clock: WallClock,
        *,
        rng: random.Random | None = None,
    ) -> None:
        """A `ConfigHolder` is followed through reloads: accounts, routes, prices, keywords, policy and message
        settings are read from its current config at each use."""
        self._store = store
        self._holder = holding(config)
        self._facts = store.policy_facts()  # blocking calls: always through trio.to_thread
        self._clock = clock
        self._rng = rng or random.Random()
        self._ids = MessageIdGenerator()
        self._in_flight = 0
        self._reserved: dict[str, str] = {}  # outbox item_id -> account, offered and not yet answered
        self._cooling: dict[str, tuple[str, float]] = {}  # released item_id -> (account, trio time to re-offer)
        self._offers: dict[str, collections.deque[OutboxEntry]] = {}  # read ahead per account, not yet reserved
        self._acknowledged: dict[str, None] = {}  # items the ESME took (in order), their deletion not yet written
        self._acknowledgements = trio.Event()
        self._callbacks = MoCallbacks(store, self._holder, clock, self._rng)
        # MO offered to an account with `mo_receipts`, by outbox item: its handset is notified when it is taken.
        self._noticed: dict[str, MoRecord] = {}

    # What the current config says (each read follows a reload; see `ConfigHolder`).
    @property
    def _config(self) -> Config:
        return self._holder.current

    @property
    def _messages(self) -> MessageConfig:
        return self._holder.current.messages

    @property
    def _policy(self) -> MessagePolicy:
        return self._holder.derived(MessagePolicy)

    @property
    def _accounts(self) -> dict[str, AccountConfig]:
        return self._holder.derived(_accounts_by_id)

    @property
    def _keywords(self) -> dict[str, str]:
        return self._holder.derived(_keyword_owners)

    # -- background work --------------------------------------------------------------------------------------

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
            nursery.start_soon(self._callbacks.run)
            nursery.start_soon(self._write_acknowledgements)
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
        config = self._config.store
        while True:
            before = self._clock.now_ms() - config.retention_days * 24 * 3600 * _MS
            purged = 0
            while (count := await self._store.purge(before, config.purge_batch_size)) > 0:
                purged += count
                await trio.sleep(0)  # small batches, other writes in between
            if purged:
                log.info("purged final messages count=%d before_ms=%d", purged, before)
            await trio.sleep(config.purge_interval_s)

    # -- ModemEventSink ---------------------------------------------------------------------------------------

    async def incoming_sms(self, sms: IncomingSms) -> None:
        """Route an MO: a reply to whoever last wrote to that handset from that modem (within the reply window),
        else the owner of its first word as a keyword, else `mo_default_account`, else stored for nobody."""
        now = self._clock.now_ms()
        since = now - int(self._messages.reply_window_s * _MS)
        last = await self._store.last_sent_to(sms.originator, sms.modem, sms.modem_msisdn, since)
        recipient = sms.modem_msisdn
        if last is not None:
            account: str | None = last.account
            rule = "reply"
            recipient = last.source.addr or recipient
        elif (owner := self._keyword_owner(sms.text)) is not None:
            account, rule = owner, "keyword"
        else:
            account, rule = self._messages.mo_default_account or None, "default"
        if account is not None and self._is_notice_toggle(account, sms.text):
            await self._toggle_notices(sms, account, recipient, now)
            return
        callback = account is not None and bool(self._account(account).mo_callback_url)
        rowid = await self._store.store_mo(sms, account, recipient, now, callback=callback)
        log.info("mo stored mo_id=%d modem=%s account=%s rule=%s", rowid, sms.modem, account, rule)
        if callback:
            self._callbacks.wake()
        if account is not None and await trio.to_thread.run_sync(
            functools.partial(
                record_opt_out, self._facts, account, sms.originator, sms.text, self._config.policy.opt_out_keywords
            )
        ):
            # The one confirmation, not subject to the suppression it confirms.
            await self._notify_handset(
                account, sms.originator, recipient, self._config.policy.opt_out_confirmation, now,
                flash=False, purpose="opt-out",
            )

    def _is_notice_toggle(self, account: str, text: str) -> bool:
        toggle = self._messages.mo_receipt_toggle.strip().casefold()
        return self._account(account).mo_receipts and bool(toggle) and text.strip().casefold() == toggle

    async def _toggle_notices(self, sms: IncomingSms, account: str, recipient: str, now: int) -> None:
        """The toggle is the gateway's, not the account's: kept as an MO for nobody, confirmed in the new mode."""
        rowid = await self._store.store_mo(sms, None, recipient, now)
        normal = await self._store.toggle_handset_notices(handset_key(sms.originator), now)
        log.info("mo notices toggled mo_id=%d handset=%s normal_sms=%s", rowid, sms.originator, normal)
        text = self._messages.mo_receipt_normal_text if normal else self._messages.mo_receipt_flash_text
        await self._notify_handset(account, sms.originator, recipient, text, now, flash=not normal, purpose="toggle")

    async def _notify_mo_taken(self, account: str, record: MoRecord) -> None:
        grace = int(self._messages.status_report_grace_s * _MS)
        if await self._store.is_notice_echo(record.mo_rowid, grace):
            # A notice of ours to one of our own SIMs came back as this MO: noticing it would start a loop.
            log.info("notice not sent purpose=mo-receipt account=%s handset=%s reason=own notice came back mo_id=%d",
                     account, record.originator, record.mo_rowid)
            return
        now = self._clock.now_ms()
        normal = await self._store.handset_wants_normal_sms(handset_key(record.originator))
        text = self._messages.mo_receipt_text.replace("{account}", account)
        await self._notify_handset(
            account, record.originator, record.recipient, text, now, flash=not normal, purpose="mo-receipt"
        )

    async def _notify_handset(
        self, account: str, handset: str, sender: str, text: str, now: int, *, flash: bool, purpose: str
    ) -> None:
        """A notice of the gateway's own to a handset, from the address it wrote to, on its route's modems: never
        charged, no receipt, plain esm_class; at most `notices_per_handset_max` a window to one handset. Each is
        recorded, so that one arriving back at a SIM of this gateway is recognised (`_notify_mo_taken`)."""
        number = handset_key(handset)
        if not text:
            return
        try:
            route = find_route(self._config.routes, number)
            content = build_segments(
                Decoded(b"", text, choose_encoding(text), False, None),
                None,
                max_segments=route.max_segments,
                reference=self._rng.randrange(256),
            )
        except (NoRoute, Refused) as exc:
            log.warning("notice not sent purpose=%s account=%s handset=%s reason=%s", purpose, account, handset, exc)
            return
        ton = Ton.INTERNATIONAL if sender.isdigit() else Ton.ALPHANUMERIC
        window = delivery_window(now, self._messages, None, None)
        message = NewMessage(
            message_id=self._ids.next(now),
            dest_index=0,
            account=account,
            service_type="",
            source=Address(sender, ton, 1 if sender.isdigit() else 0),
            destination=Address(number, Ton.INTERNATIONAL, 1),
            route=route.name,
            modem_group=route.modem_group,
            esm_class=0,
            registered_delivery=0,
            data_coding=content.segments[0].data_coding,
            flash=flash,
            gateway_split=content.gateway_split,
            text=content.text,
            submitted_ms=now,
            start_ms=window.start_ms,
            expires_ms=window.expires_ms,
            price_per_segment_micro=0,
            segments=content.segments,
        )
        since = now - int(self._messages.notices_per_handset_window_s * _MS)
        if not await self._store.record_notice(
            number, message.message_id, purpose, text, now, window.expires_ms,
            since_ms=since, limit=self._messages.notices_per_handset_max,
        ):
            log.warning("notice not sent purpose=%s account=%s handset=%s reason=limit of %d per %.0f s reached",
                        purpose, account, handset, self._messages.notices_per_handset_max,
                        self._messages.notices_per_handset_window_s)
            return
        await self._accept([message])
        log.info("notice queued purpose=%s account=%s handset=%s flash=%s message_id=%s", purpose, account, handset,
                 flash, message.message_id)

    def _keyword_owner(self, text: str) -> str | None:
        words = text.split(maxsplit=1)
        return self._keywords.get(words[0].casefold()) if words else None

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

    # -- SmppBackend ------------------------------------------------------------------------------------------

    async def submit(self, account: str, pdu: SubmitSm | DataSm) -> str:
        intake = self._intake(account)
        message_id = self._ids.next(intake.now)
        destination = Address(pdu.destination_addr, pdu.dest_addr_ton, pdu.dest_addr_npi)
        try:
            message = self._new_message(intake, pdu, message_id, 0, destination)
        except Refused as refused:
            raise BackendError(str(refused), command_status=refused.command_status) from None
        (stored,) = await self._accept([message])
        if not stored:
            raise BackendError("insufficient balance", command_status=InsufficientBalance.command_status)
        log.info("accepted message_id=%s account=%s segments=%d", message_id, account, len(message.segments))
        return message_id

    async def submit_many(self, account: str, pdus: Sequence[SubmitSm | DataSm]) -> Sequence[str | BackendError]:
        """Each PDU as `submit` would take it, all accepted ones in one durable commit."""
        intake = self._intake(account)
        results: list[str | BackendError] = []
        messages: list[NewMessage] = []
        for pdu in pdus:
            message_id = self._ids.next(intake.now)
            destination = Address(pdu.destination_addr, pdu.dest_addr_ton, pdu.dest_addr_npi)
            try:
                messages.append(self._new_message(intake, pdu, message_id, 0, destination))
                results.append(message_id)
            except Refused as refused:
                results.append(BackendError(str(refused), command_status=refused.command_status))
        stored = iter(await self._accept(messages) if messages else ())
        for index, result in enumerate(results):
            if isinstance(result, str) and not next(stored):
                results[index] = BackendError("insufficient balance", command_status=InsufficientBalance.command_status)
        log.info("accepted account=%s submissions=%d refused=%d", account, len(pdus),
                 sum(isinstance(r, BackendError) for r in results))
        return results

    async def submit_multi(self, account: str, pdu: SubmitMulti) -> MultiResult:
        intake = self._intake(account)
        message_id = self._ids.next(intake.now)
        messages: list[NewMessage] = []
        refused: list[UnsuccessfulDestination] = []
        for index, entry in enumerate(pdu.destinations):
            if not isinstance(entry, SmeAddress):
                refused.append(UnsuccessfulDestination(0, 0, entry.dl_name, CommandStatus.ESME_RCNTSUBDL))
                continue
            destination = Address(entry.destination_addr, entry.dest_addr_ton, entry.dest_addr_npi)
            try:
                messages.append(self._new_message(intake, pdu, message_id, index, destination))
            except Refused as exc:
                refused.append(_unsuccessful(destination, exc.command_status))
        stored = await self._accept(messages) if messages else ()
        for message, ok in zip(messages, stored, strict=True):
            if not ok:
                refused.append(_unsuccessful(message.destination, InsufficientBalance.command_status))
        if not any(stored):
            status = refused[0].error_status_code if refused else CommandStatus.ESME_RSUBMITFAIL
            raise BackendError("no destination accepted", command_status=status)
        log.info("accepted message_id=%s account=%s destinations=%d refused=%d", message_id, account,
                 sum(stored), len(refused))
        return MultiResult(message_id, tuple(refused))

    async def _accept(self, messages: Sequence[NewMessage]) -> tuple[bool, ...]:
        try:
            return await self._store.accept(messages)
        except StoreUnavailable as exc:
            log.error("store refused a submission error=%s", exc)
            raise BackendError("store unavailable", command_status=CommandStatus.ESME_RSYSERR) from None

    def _intake(self, account: str) -> _Intake:
        return _Intake(
            self._policy, self._account(account), self._messages, self._clock.now_ms(), self._rng.randrange(256)
        )

    def _new_message(
        self,
        intake: _Intake,
        pdu: SubmitSm | DataSm | SubmitMulti,
        message_id: str,
        dest_index: int,
        destination: Address,
    ) -> NewMessage:
        """The message to store (the recipient rules are the store's, at acceptance); Refused for what the
        submit-time rules refuse."""
        settings = intake.account
        try:
            number = normalise_number(
                destination.addr, settings.default_country_code, international=destination.ton == Ton.INTERNATIONAL
            )
            route = find_route(self._config.routes, number)
            window = intake.window(pdu)
            tlvs = pdu.tlvs
            payload = tlvs.message_payload if tlvs.message_payload is not None else _short_message(pdu)
            decoded = decode_content(payload, data_coding=pdu.data_coding, esm_class=pdu.esm_class, sar=_sar(tlvs))
            sender, promotional, content = self._apply_rules(
                intake, route, decoded, pdu.source_addr, pdu.service_type
            )
        except (InvalidNumber, PolicyError, TooManySegments, NoRoute, Refused) as exc:
            log.info("submission refused account=%s destination=%r status=0x%x reason=%s", settings.system_id,
                     destination.addr, exc.command_status, exc)
            raise Refused(str(exc), command_status=exc.command_status) from None
        # In field order, not by keyword: a class called with 21 keywords packs them into a dict first, which was
        # 1 us of every submission. test_the_accepted_message_carries_each_field_of_the_submission checks the order.
        return NewMessage(
            message_id,
            dest_index,
            settings.system_id,  # account
            pdu.service_type,
            sender,  # source
            Address(number, Ton.INTERNATIONAL, Npi.ISDN),  # destination, normalised: receipts quote it so
            route.name,
            route.modem_group,
            pdu.esm_class,
            pdu.registered_delivery,
            pdu.data_coding,
            content.flash,
            content.gateway_split,
            content.text,
            intake.now,  # submitted_ms
            window.start_ms,
            window.expires_ms,
            segment_price_micro(route, number),  # price_per_segment_micro
            content.segments,
            0,  # rejected_error
            None,  # resends
            True,  # check_recipient: the store reads the recipient rules when it accepts the message
            promotional,
        )

    def _account(self, account: str) -> AccountConfig:
        # An account outside the config (one the operator tops up by name) has no sender or country rules.
        return self._accounts.get(account) or AccountConfig(system_id=account, password_hash="")

    def _apply_rules(
        self, intake: _Intake, route: RouteConfig, decoded: Decoded, source_addr: str, service_type: str
    ) -> tuple[Address, bool, Content]:
        """The submit-time rules (sender, blocked content, signature, suffix, segments): the sender, whether the
        message is promotional, and its segments."""
        sender = intake.sender(route, source_addr)
        promotional = intake.is_promotional(service_type)
        reference = intake.reference()
        prepared = self._policy.check_text(
            route,
            decoded.text,
            esme_parts=decoded.esme_parts,
            encoding=None if decoded.text is None else decoded.encoding,
            promotional=promotional,
            keywords=intake.keywords(route),
            reference=reference,
        )
        content = build_segments(decoded, prepared, max_segments=route.max_segments, reference=reference)
        return sender, promotional, content

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
                    self._account(account).default_country_code,
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
            route = find_route(self._config.routes, original.destination.addr)
            decoded = decode_content(
                pdu.short_message, data_coding=original.data_coding, esm_class=original.esm_class, sar=None
            )
            _, _, content = self._apply_rules(self._intake(account), route, decoded, original.source.addr, "")
            window = self._replacement_window(pdu, original.start_ms, original.expires_ms, now)
            await self._store.replace(
                account,
                original.message_id,
                segments=content.segments,
                text=content.text,
                window=window,
                registered_delivery=pdu.registered_delivery,
                price_per_segment_micro=segment_price_micro(route, original.destination.addr),
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
            window = delivery_window(now, self._messages, schedule, validity)
        except PduError as exc:
            raise Refused(exc.message, command_status=exc.command_status) from None
        return window.start_ms, window.expires_ms

    async def next_outbound(self, account: str) -> OutboundItem:
        while True:
            wake = self._store.outbox_event(account)
            now = trio.current_time()
            cooling = {i: until for i, (a, until) in self._cooling.items() if a == account}
            for item_id in [i for i, until in cooling.items() if until <= now]:
                del self._cooling[item_id]
            offers = self._offers.setdefault(account, collections.deque())
            if not offers:
                # One read for a window's worth: a receipt stream would otherwise cost a read (and a worker
                # thread hop) per deliver_sm. Only `acknowledge` deletes outbox rows, and only reserved ones, so
                # what was read stays valid while it waits here.
                exclude = frozenset(self._reserved) | frozenset(i for i, until in cooling.items() if until > now)
                offers.extend(await self._store.outbox_fetch(account, exclude, _OUTBOX_READ_AHEAD))
            while offers:
                entry = offers.popleft()
                if entry.item_id in self._reserved or entry.item_id in self._cooling:
                    continue  # another bind took it while we read, or it came back and cools down
                self._reserved[entry.item_id] = account
                if isinstance(entry.record, MoRecord) and self._account(account).mo_receipts:
                    self._noticed[entry.item_id] = entry.record
                return OutboundItem(entry.item_id, account, _render(entry))
            next_offer = min((u for u in cooling.values() if u > now), default=math.inf)
            with trio.move_on_at(next_offer):
                await wake.wait()

    async def acknowledge(self, item_id: str) -> None:
        """Queue the item's deletion for `_write_acknowledgements` and return: the SMPP reader calls this per
        deliver_sm_resp, in turn, and a durable write each would cap receipts at one commit apiece. The item
        stays reserved (never offered again) until its deletion commits; if the process dies before that, it is
        offered again after the restart, as it would be had the deliver_sm_resp arrived a moment later."""
        self._acknowledged[item_id] = None
        self._acknowledgements.set()

    async def _write_acknowledgements(self) -> None:
        """Hand what was acknowledged meanwhile to the store as one deletion, at once, without waiting for the
        previous deletion to commit: the store puts it in its next commit, so a crash offers again only what
        was acknowledged during one commit (issue 13). On cancellation what is queued is still written."""
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    await self._acknowledgements.wait()
                    self._acknowledgements = trio.Event()
                    items = list(self._acknowledged)
                    self._acknowledged.clear()
                    nursery.start_soon(self._delete_acknowledged, items)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(_ACK_FLUSH_AT_STOP_S):
                await self._delete_acknowledged(list(self._acknowledged))

    async def _delete_acknowledged(self, items: list[str]) -> None:
        if not items:
            return
        try:
            with trio.CancelScope(shield=True):  # taken out of the queue: written even if the scheduler stops now
                deleted = await self._store.outbox_delete(items)
        except StoreUnavailable as exc:
            # Still reserved, so not offered again; the next batch tries again (or the next run offers them).
            log.error("acknowledgements not written count=%d error=%s", len(items), exc)
            self._acknowledged = dict.fromkeys(items) | self._acknowledged
            await trio.sleep(_ACK_RETRY_S)
            self._acknowledgements.set()
            return
        for item_id, was_deleted in zip(items, deleted, strict=True):
            account = self._reserved.pop(item_id, None)
            record = self._noticed.pop(item_id, None)
            if was_deleted and account is not None and record is not None:
                try:
                    await self._notify_mo_taken(account, record)
                except Exception:  # a task boundary: one notice must not stop the acknowledgements
                    log.exception("mo receipt failed item_id=%s account=%s", item_id, account)

    async def release(self, item_id: str) -> None:
        self._noticed.pop(item_id, None)
        account = self._reserved.pop(item_id, None)
        if account is None:
            return
        self._cooling[item_id] = (account, trio.current_time() + self._messages.outbox_redelivery_delay_s)
        self._store.notify_outbox(account)


def _accounts_by_id(config: Config) -> dict[str, AccountConfig]:
    return {account.system_id: account for account in config.accounts}


def _keyword_owners(config: Config) -> dict[str, str]:
    return {k.casefold(): a.system_id for a in config.accounts for k in a.keywords}


class _Intake:
    """One submission call's account and moment, and what its messages share: the PDUs of one read mostly repeat
    the same schedule and validity strings, sender, service_type and route, so each is worked out once per call
    (only successes are kept: a refusal is raised again for each message that asks)."""

    __slots__ = (
        "_policy", "account", "_messages", "now", "_windows", "_senders", "_promotional", "_keywords", "_reference"
    )

    def __init__(
        self, policy: MessagePolicy, account: AccountConfig, messages: MessageConfig, now: int, reference: int
    ) -> None:
        self._policy = policy
        self.account = account
        self._messages = messages
        self.now = now
        self._reference = reference
        self._windows: dict[tuple[str, str] | int | None, Window] = {}
        self._senders: dict[tuple[str, str], Address] = {}
        self._promotional: dict[str, bool] = {}
        self._keywords: dict[str, KeywordRules] = {}

    def reference(self) -> int:
        """The concatenation reference for the next message's parts: the call's messages count up from a random
        start, so a handset that gets several split messages from one call gets distinct references."""
        reference = self._reference
        self._reference = (reference + 1) & 0xFF
        return reference

    def window(self, pdu: SubmitSm | DataSm | SubmitMulti) -> Window:
        """When the message may first be sent and when it expires; Refused for a bad schedule or validity."""
        key: tuple[str, str] | int | None
        if isinstance(pdu, DataSm):
            key = pdu.tlvs.qos_time_to_live
        else:
            key = (pdu.schedule_delivery_time, pdu.validity_period)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _window(pdu, self.now, self._messages)
        return window

    def sender(self, route: RouteConfig, source_addr: str) -> Address:
        """The source address the message goes out with (`resolve_sender`), as stored."""
        key = (route.name, source_addr)
        sender = self._senders.get(key)
        if sender is None:
            resolved = resolve_sender(source_addr, self.account, route)
            sender = self._senders[key] = Address(resolved.addr, resolved.ton, resolved.npi)
        return sender

    def is_promotional(self, service_type: str) -> bool:
        promotional = self._promotional.get(service_type)
        if promotional is None:
            promotional = self._promotional[service_type] = self._policy.is_promotional(self.account, service_type)
        return promotional

    def keywords(self, route: RouteConfig) -> KeywordRules:
        rules = self._keywords.get(route.name)
        if rules is None:
            rules = self._keywords[route.name] = self._policy.keywords(route)
        return rules


def _window(pdu: SubmitSm | DataSm | SubmitMulti, now: int, messages: MessageConfig) -> Window:
    schedule: datetime | timedelta | None = None
    validity: datetime | timedelta | None = None
    if isinstance(pdu, DataSm):
        ttl = pdu.tlvs.qos_time_to_live
        validity = None if ttl is None else timedelta(seconds=ttl)
    else:
        try:
            schedule = parse_smpp_time(pdu.schedule_delivery_time, command_status=CommandStatus.ESME_RINVSCHED)
            validity = parse_smpp_time(pdu.validity_period, command_status=CommandStatus.ESME_RINVEXPIRY)
        except PduError as exc:
            raise Refused(exc.message, command_status=exc.command_status) from None
    return delivery_window(now, messages, schedule, validity)


def _unsuccessful(destination: Address, status: int) -> UnsuccessfulDestination:
    return UnsuccessfulDestination(destination.ton, destination.npi, destination.addr, status)


def _short_message(pdu: SubmitSm | DataSm | SubmitMulti) -> bytes:
    return b"" if isinstance(pdu, DataSm) else pdu.short_message


def _sar(tlvs: Tlvs) -> SarInfo | None:
    if tlvs.sar_msg_ref_num is None or tlvs.sar_total_segments is None or tlvs.sar_segment_seqnum is None:
        return None
    try:
        return SarInfo(tlvs.sar_msg_ref_num, tlvs.sar_total_segments, tlvs.sar_segment_seqnum)
    except ValueError as exc:
        raise Refused(str(exc), command_status=CommandStatus.ESME_RINVOPTPARAMVAL) from None


def _render(entry: OutboxEntry) -> DeliverSm:
    if isinstance(entry.record, MoRecord):
        return mo_pdu(entry.record)
    return receipt_pdu(entry.record)
