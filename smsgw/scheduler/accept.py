"""The one accept path: every message the gateway stores is built here, from plain values, by `_build`.

Callers hand over (account, submissions) where a submission is (destinations, content, sender, timing, options) —
no SMPP types — and get one result per destination: `Accepted` (message_id, segments, charge, state) or
`Rejected` (the SMPP `command_status`, the vendor ones being `GatewayError`'s, and a reason). The callers are thin:
the SMPP adapter (`smpp_intake`), the gateway's own notices to handsets (`mo`), `smsgw resend`, and the HTTP API.

Three origins, one builder (`Origin`): an account's submission goes through every rule (number, route, schedule
and validity, sender, content, price; the recipient rules — opt-out, do-not-call — are the store's, applied in its
accepting transaction so no rule change lands between check and store); a notice of the gateway's own is sent as
given, free, without receipt or recipient rules; a resend takes a stored message's segments and sender as they
are and routes, prices and checks its recipient again.

`prepare` builds (sans-IO but for the clock) and, given a front's `Throttle`, charges its rate limit with the
segments it built (the one count of a submission's segments: the limit, the charge and the stored rows use it),
`commit` stores in one durable commit and says which messages were paid, `results` turns that into the values
above; `accept` does all three. A caller answering in its own terms (the SMPP adapter) reads the message ids from
`Prepared` instead. A
submission with several destinations (SMPP submit_multi) shares one message_id, each destination its `dest_index`;
a caller wanting an id per destination (the HTTP API) passes one submission per destination, sharing the values.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final, NamedTuple

from smsgw.config import AccountConfig, Config, ConfigHolder, MessageConfig, RouteConfig, holding
from smsgw.numbers import InvalidNumber, normalise_number
from smsgw.pdu.constants import CommandStatus, Npi, Ton
from smsgw.pdu.segmentation import MAX_SEGMENTS_LIMIT, TooManySegments
from smsgw.pdu.text import Encoding, choose_encoding, units
# `Text` and `Encoded` are part of a `Submission`: callers take them from here.
from smsgw.scheduler.content import Content, prepare_content
from smsgw.scheduler.content import Encoded as Encoded
from smsgw.scheduler.content import Text as Text
from smsgw.scheduler.dlr import FINAL_MASK
from smsgw.scheduler.ids import MessageIdGenerator
from smsgw.scheduler.model import Address, DlrRequest, InsufficientBalance, NewMessage, NewSegment, Refused
from smsgw.scheduler.policy import NO_KEYWORDS, KeywordRules, MessagePolicy, PolicyError, resolve_sender
from smsgw.scheduler.routing import NoRoute, find_route, segment_price_micro
from smsgw.scheduler.states import State
from smsgw.scheduler.store import MessageStore
from smsgw.scheduler.timing import WallClock, Window, delivery_window
from smsgw.smpp_server.throttle import Throttle

log = logging.getLogger(__name__)

RECEIPT_WANTED: Final = 1  # `Options.registered_delivery`: a receipt of the final state (SMPP 3.4 5.2.17)
# What a destination the balance could not cover is refused with (its submission then stores nothing).
INSUFFICIENT_BALANCE: Final = "insufficient balance"
_INSUFFICIENT_BALANCE_STATUS: Final = InsufficientBalance.command_status
# What a destination its front's `Throttle` held back is refused with (nothing of its submission is stored).
THROTTLED: Final = "throughput limit reached"
THROTTLED_STATUS: Final = int(CommandStatus.ESME_RTHROTTLED)
_ACCEPTED: Final = State.ACCEPTED
_SCHEDULED: Final = State.SCHEDULED


class Origin(enum.Enum):
    CUSTOMER = "customer"  # an account's submission: every rule
    NOTICE = "notice"  # the gateway's own notice to a handset: as given, free, no receipt, no recipient rules
    RESEND = "resend"  # a stored unpaid message again: its segments and sender as stored, routed and priced anew


# Module constants for what `_build` compares per message: an enum member's lookup through its class costs more.
_CUSTOMER: Final = Origin.CUSTOMER
_NOTICE: Final = Origin.NOTICE
_INTERNATIONAL: Final = int(Ton.INTERNATIONAL)
_INTERNATIONAL_TON: Final = Ton.INTERNATIONAL  # the members a normalised destination is stored with
_ISDN: Final = Npi.ISDN


# NamedTuples, not frozen dataclasses: the SMPP adapter builds these for every submission (see model.py).
class Stored(NamedTuple):
    """The content of stored message `message_id`, as it was accepted: sent again as it is (`Origin.RESEND`)."""

    message_id: str
    segments: tuple[NewSegment, ...]
    text: str
    data_coding: int
    esm_class: int
    flash: bool
    gateway_split: bool


class Timing(NamedTuple):
    """When a message may first be sent and until when: absolute, or relative (the schedule to acceptance, the
    validity to the schedule). No schedule, or one past, is now; no validity is `default_validity_s`."""

    schedule: datetime | timedelta | None = None
    validity: datetime | timedelta | None = None


class Options(NamedTuple):
    service_type: str = ""  # SMPP's; also what makes a submission promotional (`promotional_service_types`)
    registered_delivery: int = 0  # RECEIPT_WANTED, or SMPP's full field
    flash: bool = False  # for `Text` (`Encoded` says it with its data_coding's message class)
    # The HTTP fronts'. `client_ref` is stored with the message and returned with it. A dlr_url has the
    # message's delivery reports sent there (`scheduler.dlr`): in `dlr_format` ('json', 'kannel' with its escape
    # codes, 'jasmin') by `dlr_method`, for the events of `dlr_mask` (Kannel's dlr-mask bits); without one, an
    # account's dlr_callback_url gets the final state as JSON.
    client_ref: str = ""
    dlr_url: str = ""
    dlr_format: str = "json"
    dlr_method: str = "POST"
    dlr_mask: int = FINAL_MASK


class Submission(NamedTuple):
    destinations: Sequence[Address]  # as the caller has them: normalised to international digits here
    content: Text | Encoded | Stored
    sender: Address  # an account's is resolved by its sender rules (only `addr` counts); others are taken as given
    timing: Timing = Timing()
    options: Options = Options()


class Accepted(NamedTuple):
    destination: Address  # as given
    message_id: str
    segments: int
    charge_micro: int  # 0 when the recipient rules have it REJECTED in the store (its receipt says so)
    state: State  # ACCEPTED or SCHEDULED


class Rejected(NamedTuple):
    destination: Address  # as given
    command_status: int  # an SMPP command_status; GatewayError's vendor ones (0x400 + nn) for err 8nn
    reason: str


Result = Accepted | Rejected


class Preview(NamedTuple):
    """What a text costs as the accept path would send it now (the API's segment count, the portal's live
    counter): the text with the route's signature, suffix and unsubscribe statement as they would be added, its
    length in the units SMS limits count (GSM septets, an extension character 2; UTF-16 units for UCS-2), the
    encoding, segments (also beyond the route's maximum, so a text over it says by how much) and the charge per
    recipient. `refused` says why the accept path would refuse it (too many segments, blocked content), else ''."""

    text: str
    characters: int
    encoding: Encoding
    segments: int
    max_segments: int
    charge_micro: int
    refused: str

    @property
    def fits(self) -> bool:
        return not self.refused


class Prepared(NamedTuple):
    """Built and not yet stored: per submission and destination, the message to store or its refusal. A caller
    that answers in its own terms (the SMPP adapter) reads the message ids here and the paid flags from `commit`,
    without a `Result` per message."""

    submissions: Sequence[Submission]
    built: list[list[NewMessage | Rejected]]
    messages: list[NewMessage]  # the ones to store, in order
    segments: list[int]  # per submission, the segments of its messages to store (what a throttle charges)


class AcceptPath:
    """Builds and stores accepted messages; owns the process's message_id generator. A `ConfigHolder` is followed
    through reloads: accounts, routes, prices and policy are read from its current config at each call."""

    def __init__(
        self, store: MessageStore, config: Config | ConfigHolder, clock: WallClock, rng: random.Random | None = None
    ) -> None:
        self._store = store
        self._holder = holding(config)
        self._clock = clock
        self._rng = rng or random.Random()
        self._ids = MessageIdGenerator()

    async def accept(
        self,
        account: str,
        submissions: Sequence[Submission],
        origin: Origin = Origin.CUSTOMER,
        throttle: Throttle | None = None,
    ) -> list[list[Result]]:
        """Per submission, one result per destination, in order; all accepted ones in one durable commit.
        StoreUnavailable when the store could not write (nothing is accepted then)."""
        prepared = self.prepare(account, submissions, origin, throttle)
        return results(prepared, await self.commit(prepared))

    def prepare(
        self,
        account: str,
        submissions: Sequence[Submission],
        origin: Origin = Origin.CUSTOMER,
        throttle: Throttle | None = None,
    ) -> Prepared:
        """Build every submission; then `throttle` (if any) is asked once, with the segments each one built, and a
        submission it holds back has its messages refused `THROTTLED` (one that built none costs 0)."""
        batch = self._batch(account)
        built: list[list[NewMessage | Rejected]] = []
        messages: list[NewMessage] = []
        counts: list[int] = []
        for submission in submissions:
            message_id = self._ids.next(batch.now)
            outcomes: list[NewMessage | Rejected] = []
            count = 0
            for index, destination in enumerate(submission.destinations):
                outcome = _build(batch, submission, origin, message_id, index, destination)
                outcomes.append(outcome)
                if type(outcome) is NewMessage:
                    messages.append(outcome)
                    count += len(outcome.segments)
            built.append(outcomes)
            counts.append(count)
        prepared = Prepared(submissions, built, messages, counts)
        if throttle is not None:
            allowed = throttle(counts)
            if False in allowed:
                return _held_back(prepared, allowed, account)
        return prepared

    async def commit(self, prepared: Prepared) -> Sequence[bool]:
        """Stores `prepared.messages` in one durable commit: whether each was paid (one that was not is refused,
        `INSUFFICIENT_BALANCE`). StoreUnavailable when the store could not write (nothing is accepted then)."""
        return await self._store.accept(prepared.messages) if prepared.messages else ()

    def replacement(self, account: str, number: str, sender: str, content: Encoded) -> tuple[Content, int]:
        """replace_sm's new content for a stored message to `number` from `sender`, by the rules a submission's
        would meet now: its segments and the price per segment. Refused (or its kin) with the status to answer."""
        batch = self._batch(account)
        route = find_route(batch.routes, number)
        batch.sender(route, sender)
        built = batch.content(route, content, flash=False, promotional=batch.is_promotional(""))
        return built, segment_price_micro(route, number)

    def preview(self, account: str, text: str, number: str = "", *, promotional: bool = False) -> Preview:
        """The content rules `accept` applies to a `Text` for `account`, to a recipient `number` (international
        digits; '' for the route of numbers without a longer prefix, else the first route), without storing
        anything. NoRoute when no route takes the number."""
        batch = self._batch(account)
        try:
            route = find_route(batch.routes, number)
        except NoRoute:
            if number or not batch.routes:
                raise
            route = batch.routes[0]
        price = segment_price_micro(route, number)
        promotional = promotional or batch.is_promotional("")
        refused = ""
        try:
            try:
                built = batch.content(route, Text(text), flash=False, promotional=promotional)
            except TooManySegments as exc:
                # Counted by the same rules without the route's maximum, so the counter says how far over it is.
                policy = self._holder.derived(MessagePolicy)
                unlimited = dataclasses.replace(policy.rules(route), max_segments=MAX_SEGMENTS_LIMIT)
                refused = str(exc)
                built = prepare_content(Text(text), unlimited, flash=False, keywords=policy.keywords(route),
                                        promotional=promotional, reference=0)
        except (PolicyError, Refused) as exc:
            encoding = choose_encoding(text)
            return Preview(text, units(text, encoding), encoding, 0, route.max_segments, 0, refused or str(exc))
        encoding = Encoding(built.segments[0].data_coding)
        segments = len(built.segments)
        return Preview(built.text, units(built.text, encoding), encoding, segments, route.max_segments,
                       price * segments, refused)

    def account(self, account: str) -> AccountConfig:
        return account_settings(self._holder, account)

    def now_ms(self) -> int:
        """The wall clock the accept path stamps messages with (MockClock-driven in tests)."""
        return self._clock.now_ms()

    def window(self, timing: Timing, now_ms: int) -> Window:
        """The delivery window `timing` gives at `now_ms` (replace_sm's new one); Refused as at submit."""
        return delivery_window(now_ms, self._holder.current.messages, *timing)

    def _batch(self, account: str) -> _Batch:
        config = self._holder.current
        return _Batch(
            self._holder.derived(MessagePolicy), self.account(account), config.routes, config.messages,
            self._clock.now_ms(), self._rng.randrange(256),
        )


def _held_back(prepared: Prepared, allowed: Sequence[bool], account: str) -> Prepared:
    """`prepared` with the messages of each submission not `allowed` refused `THROTTLED` instead."""
    built: list[list[NewMessage | Rejected]] = []
    counts: list[int] = []
    held = 0
    for submission, outcomes, count, ok in zip(prepared.submissions, prepared.built, prepared.segments, allowed):
        if ok or not count:
            built.append(outcomes)
            counts.append(count)
            continue
        held += 1
        built.append([m if type(m) is Rejected else Rejected(destination, THROTTLED_STATUS, THROTTLED)
                      for destination, m in zip(submission.destinations, outcomes)])
        counts.append(0)
    messages = [m for outcomes in built for m in outcomes if type(m) is NewMessage]
    log.info("submissions throttled account=%s submissions=%d", account, held)
    return Prepared(prepared.submissions, built, messages, counts)


def results(prepared: Prepared, paid: Sequence[bool]) -> list[list[Result]]:
    """Per submission, one result per destination, in order, once `commit` said which messages were `paid`."""
    stored = iter(paid)
    built: list[list[Result]] = []
    for submission, outcomes in zip(prepared.submissions, prepared.built):
        accepted: list[Result] = []
        for destination, m in zip(submission.destinations, outcomes):
            if type(m) is Rejected:
                accepted.append(m)
            elif not next(stored):
                accepted.append(Rejected(destination, _INSUFFICIENT_BALANCE_STATUS, INSUFFICIENT_BALANCE))
            else:
                assert type(m) is NewMessage
                state = _SCHEDULED if m.start_ms > m.submitted_ms else _ACCEPTED
                segments = len(m.segments)
                accepted.append(Accepted(destination, m.message_id, segments, m.price_per_segment_micro * segments,
                                         state))
        built.append(accepted)
    return built


def _build(
    batch: _Batch, submission: Submission, origin: Origin, message_id: str, dest_index: int, destination: Address
) -> NewMessage | Rejected:
    """The one builder of an accepted message: the message to store, or the refusal of this destination."""
    settings = batch.account
    content = submission.content
    options = submission.options
    customer = origin is _CUSTOMER
    try:
        if customer:
            number = normalise_number(
                destination.addr, settings.default_country_code, international=destination.ton == _INTERNATIONAL
            )
        else:  # the gateway's own, or as stored: normalised already
            number = destination.addr
        route = find_route(batch.routes, number)
        window = batch.window(submission.timing)
        resends = None
        if isinstance(content, Stored):  # narrows both branches for mypy
            sender = submission.sender
            promotional = batch.is_promotional(options.service_type)
            built = Content(content.segments, content.text, content.flash, content.gateway_split)
            data_coding, esm_class, resends = content.data_coding, content.esm_class, content.message_id
        else:
            if customer:
                sender = batch.sender(route, submission.sender.addr)
                promotional = batch.is_promotional(options.service_type)
                built = batch.content(route, content, flash=options.flash, promotional=promotional)
            else:
                sender, promotional = submission.sender, False
                built = batch.notice(route, content, flash=options.flash)
            if type(content) is Encoded:
                data_coding, esm_class = content.data_coding, content.esm_class
            else:
                data_coding, esm_class = built.segments[0].data_coding, 0
    except (InvalidNumber, PolicyError, TooManySegments, NoRoute, Refused) as exc:
        log.info("submission refused account=%s destination=%r status=0x%x reason=%s", settings.system_id,
                 destination.addr, exc.command_status, exc)
        return Rejected(destination, exc.command_status, str(exc))
    # In field order, not by keyword: a class called with 23 keywords packs them into a dict first, which was
    # 1 us of every submission. test_the_accepted_message_carries_each_field_of_the_submission checks the order.
    return NewMessage(
        message_id,
        dest_index,
        settings.system_id,  # account
        options.service_type,
        sender,  # source
        Address(number, _INTERNATIONAL_TON, _ISDN),  # destination, normalised: receipts quote it so
        route.name,
        route.modem_group,
        esm_class,
        options.registered_delivery,
        data_coding,
        built.flash,
        built.gateway_split,
        built.text,
        batch.now,  # submitted_ms
        window.start_ms,
        window.expires_ms,
        0 if origin is _NOTICE else segment_price_micro(route, number),  # price_per_segment_micro
        built.segments,
        0,  # rejected_error: the store sets it when the recipient rules refuse
        resends,
        origin is not _NOTICE,  # check_recipient: in the store's accepting transaction
        promotional,
        options.client_ref,
        None if origin is _NOTICE else _dlr_request(options, settings),
    )


def _dlr_request(options: Options, account: AccountConfig) -> DlrRequest | None:
    """Where the message's delivery reports go over HTTP: its own dlr_url, else its account's dlr_callback_url
    (stored as '': the account's URL when the report is sent), else nowhere."""
    if options.dlr_url:
        return DlrRequest(options.dlr_url, options.dlr_format, options.dlr_method, options.dlr_mask,
                          options.client_ref)
    if account.dlr_callback_url:
        return DlrRequest("", "json", "POST", FINAL_MASK, options.client_ref)
    return None


def account_settings(holder: ConfigHolder, account: str) -> AccountConfig:
    # An account outside the config (one the operator tops up by name) has no sender or country rules.
    return holder.derived(_accounts_by_id).get(account) or AccountConfig(system_id=account, password_hash="")


def _accounts_by_id(config: Config) -> dict[str, AccountConfig]:
    return {account.system_id: account for account in config.accounts}


class _Batch:
    """One call's account and moment, and what its messages share: the submissions of one call mostly repeat the
    same timing, sender, service_type and route, so each is worked out once per call (only successes are kept: a
    refusal is raised again for each message that asks)."""

    __slots__ = (
        "_policy", "account", "routes", "_messages", "now", "_windows", "_senders", "_promotional", "_keywords",
        "_reference",
    )

    def __init__(
        self,
        policy: MessagePolicy,
        account: AccountConfig,
        routes: Sequence[RouteConfig],
        messages: MessageConfig,
        now: int,
        reference: int,
    ) -> None:
        self._policy = policy
        self.account = account
        self.routes = routes
        self._messages = messages
        self.now = now
        # The concatenation references of the call's messages count up from a random start, so a handset that
        # gets several split messages from one call gets distinct references.
        self._reference = reference
        self._windows: dict[Timing, Window] = {}
        self._senders: dict[tuple[str, str], Address] = {}
        self._promotional: dict[str, bool] = {}
        self._keywords: dict[str, KeywordRules] = {}

    def reference(self) -> int:
        """The concatenation reference for the next message's parts."""
        reference = self._reference
        self._reference = (reference + 1) & 0xFF
        return reference

    def window(self, timing: Timing) -> Window:
        """When the message may first be sent and when it expires; Refused for a bad schedule or validity."""
        window = self._windows.get(timing)
        if window is None:
            window = self._windows[timing] = delivery_window(self.now, self._messages, *timing)
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

    def content(self, route: RouteConfig, content: Text | Encoded, *, flash: bool, promotional: bool) -> Content:
        """The segments of an account's message under the route's content rules (`content.prepare_content`);
        encoded bytes (SMPP's) under SMPP's segment limit too."""
        keywords = self._keywords.get(route.name)
        if keywords is None:
            keywords = self._keywords[route.name] = self._policy.keywords(route)
        policy = self._policy
        rules = policy.encoded_rules(route) if type(content) is Encoded else policy.rules(route)
        return prepare_content(content, rules, flash=flash, keywords=keywords, promotional=promotional,
                               reference=self.reference())

    def notice(self, route: RouteConfig, content: Text | Encoded, *, flash: bool) -> Content:
        """The segments of a notice of the gateway's own: split within the route's limit, nothing added or refused
        for its words."""
        return prepare_content(content, self._policy.notice_rules(route), flash=flash, keywords=NO_KEYWORDS,
                               promotional=False, reference=self.reference())
