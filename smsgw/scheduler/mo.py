"""MO routing and notices: what handsets send, to which account, and the gateway's own notices back to them.

`incoming_sms` routes an MO (a reply, a keyword, the default account), stores it for its account's receiver
binds (and its HTTP callback, `callback.MoKind`), records an opt-out and confirms it; `mo_taken` notices the handset
once its account took the MO. A notice is a message of the gateway's own through the one accept path
(`Origin.NOTICE`), at most `notices_per_handset_max` a window to one handset.
"""

from __future__ import annotations

import functools
import logging
import random

import trio

from smsgw.config import Config, ConfigHolder, MessageConfig, holding
from smsgw.modem.seams import IncomingSms
from smsgw.numbers import handset_key
from smsgw.pdu.constants import Npi, Ton
from smsgw.scheduler.accept import AcceptPath, Options, Origin, Rejected, Submission, Text, account_settings
from smsgw.scheduler.callback import Callbacks, MoKind
from smsgw.scheduler.model import Address, MoRecord
from smsgw.scheduler.policy import record_opt_out
from smsgw.scheduler.store import MessageStore
from smsgw.scheduler.timing import WallClock
from smsgw.scheduler.upstream_route import UPSTREAM_MO_PREFIX

log = logging.getLogger(__name__)

_MS = 1000


class MoRouter:
    def __init__(
        self,
        store: MessageStore,
        config: Config | ConfigHolder,
        clock: WallClock,
        accept: AcceptPath,
        rng: random.Random,
    ) -> None:
        self._store = store
        self._holder = holding(config)
        self._facts = store.policy_facts()  # blocking calls: always through trio.to_thread
        self._clock = clock
        self._accept = accept
        self.callbacks = Callbacks(MoKind(store), store, self._holder, clock, rng)

    @property
    def _config(self) -> Config:
        return self._holder.current

    @property
    def _messages(self) -> MessageConfig:
        return self._holder.current.messages

    async def incoming_sms(self, sms: IncomingSms) -> None:
        """Route an MO: a reply to whoever last wrote to that handset from that modem (within the reply window),
        else the owner of its first word as a keyword, else `mo_default_account`, else stored for nobody."""
        now = self._clock.now_ms()
        since = now - int(self._messages.reply_window_s * _MS)
        # An MO from an upstream SMSC answers what was sent through that upstream (its modem_msisdn is our sender).
        upstream = sms.modem.removeprefix(UPSTREAM_MO_PREFIX) if sms.modem.startswith(UPSTREAM_MO_PREFIX) else None
        last = await self._store.last_sent_to(sms.originator, sms.modem, sms.modem_msisdn, since, upstream=upstream)
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
        callback = account is not None and bool(account_settings(self._holder, account).mo_callback_url)
        rowid = await self._store.store_mo(sms, account, recipient, now, callback=callback)
        log.info("mo stored mo_id=%d modem=%s account=%s rule=%s", rowid, sms.modem, account, rule)
        if callback:
            self.callbacks.wake()
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
        return account_settings(self._holder, account).mo_receipts and bool(toggle) and text.strip().casefold() == toggle

    async def _toggle_notices(self, sms: IncomingSms, account: str, recipient: str, now: int) -> None:
        """The toggle is the gateway's, not the account's: kept as an MO for nobody, confirmed in the new mode."""
        rowid = await self._store.store_mo(sms, None, recipient, now)
        normal = await self._store.toggle_handset_notices(handset_key(sms.originator), now)
        log.info("mo notices toggled mo_id=%d handset=%s normal_sms=%s", rowid, sms.originator, normal)
        text = self._messages.mo_receipt_normal_text if normal else self._messages.mo_receipt_flash_text
        await self._notify_handset(account, sms.originator, recipient, text, now, flash=not normal, purpose="toggle")

    async def mo_taken(self, account: str, record: MoRecord) -> None:
        """The account took the MO (`Outbox`): its handset gets the `mo_receipt_text` notice."""
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
        recorded, so that one arriving back at a SIM of this gateway is recognised (`mo_taken`)."""
        number = handset_key(handset)
        if not text:
            return
        digits = sender.isdigit()
        notice = Submission(
            (Address(number, Ton.INTERNATIONAL, Npi.ISDN),),
            Text(text),
            Address(sender, Ton.INTERNATIONAL if digits else Ton.ALPHANUMERIC, Npi.ISDN if digits else Npi.UNKNOWN),
            options=Options(flash=flash),
        )
        prepared = self._accept.prepare(account, [notice], Origin.NOTICE)
        ((message,),) = prepared.built
        if isinstance(message, Rejected):
            log.warning("notice not sent purpose=%s account=%s handset=%s reason=%s", purpose, account, handset,
                        message.reason)
            return
        since = now - int(self._messages.notices_per_handset_window_s * _MS)
        if not await self._store.record_notice(
            number, message.message_id, purpose, text, now, message.expires_ms,
            since_ms=since, limit=self._messages.notices_per_handset_max,
        ):
            log.warning("notice not sent purpose=%s account=%s handset=%s reason=limit of %d per %.0f s reached",
                        purpose, account, handset, self._messages.notices_per_handset_max,
                        self._messages.notices_per_handset_window_s)
            return
        await self._accept.commit(prepared)
        log.info("notice queued purpose=%s account=%s handset=%s flash=%s message_id=%s", purpose, account, handset,
                 flash, message.message_id)

    def _keyword_owner(self, text: str) -> str | None:
        words = text.split(maxsplit=1)
        return self._holder.derived(_keyword_owners).get(words[0].casefold()) if words else None


def _keyword_owners(config: Config) -> dict[str, str]:
    return {k.casefold(): a.system_id for a in config.accounts for k in a.keywords}
