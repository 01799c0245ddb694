"""Message policy: the business rules between "submitted" and "sent", pure and sans-IO.

Each rule is a function of values (config, text, numbers, facts already looked up) and its outcome carries its
documented code (DESIGN.md): a refusal at submit raises a `PolicyError` with the `command_status` for
`submit_sm_resp`; a refusal after acceptance is a `Rejection` value with the receipt's `err:` 8xx, never charged.

- numbers: `smsgw.numbers.normalise_number` (their one home) -> `InvalidNumber` (ESME_RINVDSTADR)
- sender IDs: `resolve_sender` -> `SenderAddress`, `InvalidSender` (malformed, ESME_RINVSRCADR) or
  `SenderNotAllowed` (not registered for the account or not carried by the route, 0x405 / err 805)
- content per route: `ContentRules` (signature, suffix, unsubscribe statement, line breaks, maximum segments)
  and `KeywordRules` (from `parse_keywords` / `KeywordFile`), applied by `content.prepare_content` ->
  `BlockedContent` (0x402, err 802) or the codec's `TooManySegments` (0x406, err 806)
- recipients: `check_recipient` (`check_recipients` for a batch) over `PolicyFacts` -> `Rejection` 803
  (opted out) or 801 (do-not-call)
- opt-out: `is_opt_out` / `record_opt_out` for MO texts

Sub-accounts: `visible_accounts` and `check_transfer`.

`MessagePolicy` puts the submit-time rules of one config together for the scheduler's accept path, and
`check_policy_config` reports a bad policy setting at start-up as a `ConfigError` naming the key.

`KeywordFile` is the one thin I/O shell here: it re-reads a route's keyword file when its mtime changes.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from smsgw.config import AccountConfig, Config, ConfigError, PolicyConfig, RouteConfig
from smsgw.numbers import InvalidNumber, check_country_code, normalise_number
from smsgw.pdu.constants import CommandStatus, GatewayError, Npi, Ton
from smsgw.pdu.segmentation import TooManySegments
from smsgw.scheduler.routing import format_micro

log = logging.getLogger(__name__)

MAX_SENDER_IDS: Final = 5
MAX_ALPHANUMERIC_SENDER: Final = 11
# The service allows chains of up to 8 segments on a route (DESIGN.md "Defaults").
MAX_ROUTE_SEGMENTS: Final = 8
# A signature leaves a first UCS-2 part (67 units) room for at least a few characters of the message.
MAX_SIGNATURE_UNITS: Final = 60
_ALPHANUMERIC: Final = re.compile(r"[A-Za-z0-9]{1,11}")


class PolicyError(Exception):
    """A submission the rules refuse at submit: nothing is stored, `command_status` goes in `submit_sm_resp`."""

    def __init__(self, reason: str, *, command_status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command_status = command_status


class InvalidSender(PolicyError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason, command_status=CommandStatus.ESME_RINVSRCADR)


class SenderNotAllowed(PolicyError):
    """A well-formed sender the account has not registered or the route does not carry (0x405, err 805)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, command_status=GatewayError.SENDER_NOT_ALLOWED.command_status)


class BlockedContent(PolicyError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason, command_status=GatewayError.BLOCKED_CONTENT.command_status)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message accepted but not sent: it ends REJECTED with `error_code` in its receipt and is not charged."""

    error_code: GatewayError
    reason: str

    @property
    def command_status(self) -> int:
        """0x400 + the code's last two digits, for a caller that refuses at submit instead of storing the message
        REJECTED (a single destination the facts already decide)."""
        return self.error_code.command_status


# --- sender IDs ------------------------------------------------------------------------------------------------


def _is_ascii_digits(text: str) -> bool:
    # str.isdigit alone accepts Arabic-Indic and superscript digits, which no network routes.
    return text.isascii() and text.isdigit()


@dataclass(frozen=True, slots=True)
class SenderAddress:
    """The source address a message is sent with."""

    addr: str
    ton: Ton
    npi: Npi


# No sender chosen: the route's own, as a GSM modem always sends from its SIM's number.
NETWORK_SENDER: Final = SenderAddress("", Ton.UNKNOWN, Npi.UNKNOWN)


def parse_sender_id(sender_id: str) -> SenderAddress:
    """A sender ID's address: an international MSISDN without '+' (TON 1, NPI 1) when it is all digits, else
    1-11 characters of A-Z a-z 0-9 (TON 5, not a phone number). InvalidSender (ESME_RINVSRCADR) otherwise,
    for a numeric sender that is not a valid number of its country too."""
    if _is_ascii_digits(sender_id):
        try:
            normalise_number(sender_id, international=True)
        except InvalidNumber as exc:
            raise InvalidSender(
                f"numeric sender {exc.reason}: not an international number (country code first, no leading 0 or '+')"
            ) from None
        return SenderAddress(sender_id, Ton.INTERNATIONAL, Npi.ISDN)
    if not _ALPHANUMERIC.fullmatch(sender_id):
        raise InvalidSender(
            f"sender {sender_id!r} is neither 1-{MAX_ALPHANUMERIC_SENDER} letters and digits (A-Z a-z 0-9) "
            "nor an international number without '+'"
        )
    return SenderAddress(sender_id, Ton.ALPHANUMERIC, Npi.UNKNOWN)


def check_sender_ids(account: AccountConfig) -> tuple[SenderAddress, ...]:
    """The account's registered sender IDs; InvalidSender for more than 5 or a malformed one (a config error)."""
    if len(account.sender_ids) > MAX_SENDER_IDS:
        raise InvalidSender(
            f"account {account.system_id!r} has {len(account.sender_ids)} sender IDs; at most {MAX_SENDER_IDS}"
        )
    return tuple(parse_sender_id(sender_id) for sender_id in account.sender_ids)


def resolve_sender(source_addr: str, account: AccountConfig, route: RouteConfig) -> SenderAddress:
    """The sender a submission goes out with; InvalidSender (ESME_RINVSRCADR) for a malformed sender,
    SenderNotAllowed (0x405) for a well-formed one this account or route may not use, each saying why.

    The route's `sender_override` replaces any sender. Otherwise `source_addr` must be well formed, registered
    for the account (when it registered any; an empty `source_addr` means its first one) and carried by the
    route (`allowed_sender_ids`); a leading `#` is allowed on routes with `allow_hash_sender` and is sent as is.
    An empty `source_addr` of an account without registered IDs is `NETWORK_SENDER`.
    """
    if route.sender_override:
        return parse_sender_id(route.sender_override)
    registered = check_sender_ids(account)
    if not source_addr:
        if not registered:
            return NETWORK_SENDER
        source_addr = registered[0].addr
    hashed = source_addr.startswith("#")
    if hashed and not route.allow_hash_sender:
        raise SenderNotAllowed(f"route {route.name!r} does not allow '#' senders ({source_addr!r})")
    sender = parse_sender_id(source_addr[1:] if hashed else source_addr)
    if registered and sender.addr not in {r.addr for r in registered}:
        raise SenderNotAllowed(f"sender {sender.addr!r} is not registered for account {account.system_id!r}")
    if route.allowed_sender_ids and sender.addr not in {s.lstrip("#") for s in route.allowed_sender_ids}:
        raise SenderNotAllowed(f"route {route.name!r} does not carry sender {sender.addr!r}")
    if hashed:
        return SenderAddress(source_addr, sender.ton, sender.npi)
    return sender


# --- content ---------------------------------------------------------------------------------------------------


class LineBreaks(enum.Enum):
    CRLF = "crlf"  # kept as sent: CR LF counts as two characters, as the service counts it
    LF = "lf"  # CR LF and a lone CR become LF: one character


_WORD: Final = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class KeywordRules:
    """Blocked content of a route. Words and phrases match whole words in any case, with any spaces or punctuation
    between a phrase's words; entries in scripts written without spaces (Chinese, Japanese; Korean attaches
    particles) match anywhere; regular expressions match as written. Lookups are by word, so a list of thousands
    of entries costs what a short one does."""

    phrases: Mapping[tuple[str, ...], str]  # casefolded words -> the entry
    phrase_lengths: tuple[int, ...]
    fragments: Mapping[str, str]  # casefolded text of a spaceless script -> the entry
    patterns: tuple[re.Pattern[str], ...]

    def find(self, text: str) -> str | None:
        """The first blocked entry found in `text` (as listed), or None."""
        if not (self.phrases or self.fragments or self.patterns):
            return None
        folded = text.casefold()
        if self.phrases:
            words = tuple(_WORD.findall(folded))
            for length in self.phrase_lengths:
                for start in range(len(words) - length + 1):
                    entry = self.phrases.get(words[start : start + length])
                    if entry is not None:
                        return entry
        for fragment, entry in self.fragments.items():
            if fragment in folded:
                return entry
        for pattern in self.patterns:
            if pattern.search(text) is not None:
                return f"re:{pattern.pattern}"
        return None


NO_KEYWORDS: Final = KeywordRules({}, (), {}, ())


def parse_keywords(text: str, source: str = "<keywords>") -> KeywordRules:
    """One entry a line: `re:<expression>` or a word/phrase; blank lines and `#` comments are skipped.
    ValueError naming `source` and the line for an expression that does not compile or an entry without a
    letter or digit (symbols are matched with `re:`)."""
    phrases: dict[tuple[str, ...], str] = {}
    fragments: dict[str, str] = {}
    patterns: list[re.Pattern[str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.startswith("re:"):
            try:
                patterns.append(re.compile(entry[3:]))
            except re.error as exc:
                raise ValueError(f"{source}:{number}: bad regular expression {entry[3:]!r}: {exc}") from None
        elif any(_is_wide(char) for char in entry):
            fragments["".join(entry.split()).casefold()] = entry
        else:
            words = tuple(_WORD.findall(entry.casefold()))
            if not words:
                raise ValueError(f"{source}:{number}: {entry!r} has no letter or digit; write symbols as re:")
            phrases[words] = " ".join(entry.split())
    lengths = tuple(sorted({len(words) for words in phrases}))
    return KeywordRules(phrases, lengths, fragments, tuple(patterns))


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


class KeywordFile:
    """A route's keyword file, re-read when its modification time or size changes, so edits apply without a
    restart. A file that became unreadable or invalid keeps the last good rules (logged)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp = self._stat()
        self._rules = self._read()

    def _stat(self) -> tuple[int, int]:
        status = os.stat(self.path)
        return status.st_mtime_ns, status.st_size

    def _read(self) -> KeywordRules:
        with open(self.path, encoding="utf-8") as file:
            return parse_keywords(file.read(), self.path)

    def rules(self) -> KeywordRules:
        try:
            stamp = self._stat()
            if stamp != self._stamp:
                self._rules = self._read()
                self._stamp = stamp
                log.info("blocked keywords reloaded path=%s", self.path)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            log.error("blocked keywords not reloaded, keeping the previous list path=%s error=%s", self.path, exc)
        return self._rules


@dataclass(frozen=True, slots=True)
class ContentRules:
    """A route's content rules, checked once from its config."""

    signature: str
    signature_added_upstream: bool
    suffix: str
    unsubscribe_statement: str
    max_segments: int
    line_breaks: LineBreaks

    @classmethod
    def from_route(cls, route: RouteConfig) -> ContentRules:
        """ValueError naming the route for a maximum outside 1-8 or an unknown line-break policy."""
        if not 1 <= route.max_segments <= MAX_ROUTE_SEGMENTS:
            raise ValueError(f"route {route.name!r}: max_segments must be 1-{MAX_ROUTE_SEGMENTS}")
        if len(route.signature.encode("utf-16-be")) // 2 > MAX_SIGNATURE_UNITS:
            raise ValueError(f"route {route.name!r}: signature longer than {MAX_SIGNATURE_UNITS} characters")
        try:
            line_breaks = LineBreaks(route.line_breaks)
        except ValueError:
            known = ", ".join(repr(policy.value) for policy in LineBreaks)
            raise ValueError(f"route {route.name!r}: line_breaks must be one of {known}") from None
        return cls(
            route.signature,
            route.signature_added_upstream,
            route.suffix,
            route.unsubscribe_statement,
            route.max_segments,
            line_breaks,
        )


def check_keywords(keywords: KeywordRules, text: str) -> None:
    """BlockedContent (0x402, err 802) naming the first of the route's blocked `keywords` found in `text`."""
    blocked = keywords.find(text)
    if blocked is not None:
        raise BlockedContent(f"blocked content {blocked!r}")


def check_esme_parts(total: int, max_segments: int) -> None:
    """A part of a message the ESME split itself (UDH or SAR) whose message has `total` parts: the route's limit
    (`max_segments`) counts what reaches the handset however it was split, so every part of a message over it is
    refused with TooManySegments (0x406, err 806), from its first."""
    if total > max_segments:
        raise TooManySegments(total, max_segments)


# --- recipients: do-not-call register, consent, opt-out ---------------------------------------------------------


class PolicyFacts(Protocol):
    """What the rules need to know about a recipient; `smsgw.scheduler.policy_store` keeps it in SQLite."""

    def is_on_dnc(self, number: str) -> bool: ...

    def has_consent(self, account: str, number: str) -> bool: ...

    def is_suppressed(self, account: str, number: str) -> bool: ...

    # The same questions for a whole batch of submissions at once: which of `numbers` are so.
    def dnc_among(self, numbers: Collection[str]) -> set[str]: ...

    def consented_among(self, account: str, numbers: Collection[str]) -> set[str]: ...

    def suppressed_among(self, account: str, numbers: Collection[str]) -> set[str]: ...

    def suppress(self, account: str, number: str) -> bool:
        """Add `number` to the account's suppression list; True when it was not on it yet."""
        ...

    def add_consent(self, account: str, number: str) -> bool:
        """Record that `number` agreed to the account's promotional messages despite the do-not-call register;
        True when it was not recorded yet (`smsgw dnc consent`, the portal's consent upload)."""
        ...


def is_promotional(account: AccountConfig, service_type: str, promotional_service_types: Iterable[str]) -> bool:
    """Promotional by the account's setting, or per message by its service_type (any case)."""
    wanted = service_type.strip().casefold()
    return account.promotional or any(wanted == kind.casefold() for kind in promotional_service_types)


def check_recipient(facts: PolicyFacts, account: str, number: str, *, promotional: bool) -> Rejection | None:
    """None when the message may go to `number`. A recipient who opted out of the account gets nothing from it
    (err 803); a number on the do-not-call register gets no promotional message unless it consented to this
    account (err 801)."""
    if facts.is_suppressed(account, number):
        return _opted_out(account, number)
    if promotional and facts.is_on_dnc(number) and not facts.has_consent(account, number):
        return _do_not_call(number)
    return None


def check_recipients(
    facts: PolicyFacts, account: str, recipients: Sequence[tuple[str, bool]]
) -> list[Rejection | None]:
    """`check_recipient` for each (number, promotional) of one account's batch, with one question per kind of
    fact for the whole batch instead of one per recipient."""
    suppressed = facts.suppressed_among(account, {number for number, _ in recipients})
    wanted = {number for number, promotional in recipients if promotional and number not in suppressed}
    blocked = facts.dnc_among(wanted) if wanted else set()
    if blocked:
        blocked -= facts.consented_among(account, blocked)
    return [
        _opted_out(account, number)
        if number in suppressed
        else _do_not_call(number)
        if promotional and number in blocked
        else None
        for number, promotional in recipients
    ]


def _opted_out(account: str, number: str) -> Rejection:
    return Rejection(GatewayError.OPTED_OUT, f"{number} opted out of account {account}")


def _do_not_call(number: str) -> Rejection:
    return Rejection(GatewayError.DO_NOT_CALL, f"{number} is on the do-not-call register")


def _opt_out_form(text: str) -> str:
    # Full-width letters (ＳＴＯＰ) and any case or spacing mean the same to the person typing them.
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(folded.split())


def is_opt_out(text: str, keywords: Iterable[str]) -> bool:
    """Whether a handset's whole MO text is one of the opt-out keywords (any case, surrounding spaces ignored)."""
    form = _opt_out_form(text)
    return bool(form) and any(form == _opt_out_form(keyword) for keyword in keywords)


def record_opt_out(facts: PolicyFacts, account: str, originator: str, text: str, keywords: Iterable[str]) -> bool:
    """Suppress `originator` for `account` when `text` opts out. True when a confirmation is due: the first time
    only, so repeating STOP does not start a conversation."""
    if not is_opt_out(text, keywords):
        return False
    newly = facts.suppress(account, originator)
    log.info("opt-out account=%s originator=%s new=%s", account, originator, newly)
    return newly


# --- the accept path -------------------------------------------------------------------------------------------


class MessagePolicy:
    """The submit-time rules of one config: route content rules and keyword files are built once (ValueError or
    OSError for a bad one, see `check_policy_config`); keyword files are re-read when they change."""

    def __init__(self, config: Config) -> None:
        self.settings: PolicyConfig = config.policy
        self._rules = {route.name: ContentRules.from_route(route) for route in config.routes}
        self._notice_rules = {
            name: ContentRules("", False, "", "", rules.max_segments, LineBreaks.CRLF)
            for name, rules in self._rules.items()
        }
        # SMPP's own limit (`[smpp] max_segments`) holds what comes as encoded bytes, with the route's: counted
        # here, by the one count of the accept path, not again by the session.
        self._encoded_rules = {
            name: dataclasses.replace(rules, max_segments=min(rules.max_segments, config.smpp.max_segments))
            for name, rules in self._rules.items()
        }
        self._keywords = {
            route.name: KeywordFile(route.blocked_keywords_path)
            for route in config.routes
            if route.blocked_keywords_path
        }
        for account in config.accounts:
            check_sender_ids(account)

    def is_promotional(self, account: AccountConfig, service_type: str) -> bool:
        return is_promotional(account, service_type, self.settings.promotional_service_types)

    def keywords(self, route: RouteConfig) -> KeywordRules:
        """The route's blocked content as its keyword file says now (a stat per call: once per batch is enough)."""
        keyword_file = self._keywords.get(route.name)
        return keyword_file.rules() if keyword_file is not None else NO_KEYWORDS

    def rules(self, route: RouteConfig) -> ContentRules:
        """The route's content rules, for `content.prepare_content`."""
        return self._rules[route.name]

    def encoded_rules(self, route: RouteConfig) -> ContentRules:
        """The route's content rules for content given as encoded bytes (`content.Encoded`, as SMPP sends it)."""
        return self._encoded_rules[route.name]

    def notice_rules(self, route: RouteConfig) -> ContentRules:
        """The route's content rules for the gateway's own notices: its segment limit only, nothing added."""
        return self._notice_rules[route.name]

    def is_opt_out(self, text: str) -> bool:
        return is_opt_out(text, self.settings.opt_out_keywords)


def check_policy_config(config: Config, source: str) -> None:
    """Every policy setting of `config`, checked at start-up: ConfigError names the key and what is wrong."""
    parents = {account.system_id: account.parent for account in config.accounts}
    keyword_owners: dict[str, str] = {}
    for index, account in enumerate(config.accounts):
        try:
            check_sender_ids(account)
        except InvalidSender as exc:
            raise ConfigError(source, f"accounts[{index}].sender_ids", exc.reason) from None
        try:
            check_country_code(account.default_country_code)
        except InvalidNumber as exc:
            raise ConfigError(source, f"accounts[{index}].default_country_code", exc.reason) from None
        for keyword in account.keywords:
            if not keyword.strip() or len(keyword.split()) != 1:
                raise ConfigError(source, f"accounts[{index}].keywords", f"{keyword!r} is not one word")
            owner = keyword_owners.setdefault(keyword.casefold(), account.system_id)
            if owner != account.system_id:
                raise ConfigError(source, f"accounts[{index}].keywords", f"{keyword!r} already belongs to {owner!r}")
        if account.parent:
            if account.parent not in parents or account.parent == account.system_id:
                raise ConfigError(source, f"accounts[{index}].parent", f"no other account {account.parent!r}")
            if parents[account.parent]:
                raise ConfigError(
                    source, f"accounts[{index}].parent", f"{account.parent!r} is itself a sub-account (one level only)"
                )
    for index, modem in enumerate(config.modems):
        # A national msisdn (leading 0) cannot be checked without a region; the app warns of it where it matters.
        national = modem.msisdn.startswith("0") and not modem.msisdn.startswith("00")
        if modem.msisdn and not national:
            try:
                normalise_number(modem.msisdn)
            except InvalidNumber as exc:
                raise ConfigError(source, f"modems[{index}].msisdn", exc.reason) from None
    for index, route in enumerate(config.routes):
        key = f"routes[{index}]"
        try:
            ContentRules.from_route(route)
        except ValueError as exc:
            raise ConfigError(source, key, str(exc)) from None
        for prefix in route.prefixes:
            # Destinations are international digits without '+': any other prefix would never match one.
            if prefix and not (_is_ascii_digits(prefix) and not prefix.startswith("0")):
                problem = f"{prefix!r} is not the start of an international number (digits, no '+' or 0)"
                raise ConfigError(source, f"{key}.prefixes", problem)
        if route.sender_override:
            try:
                parse_sender_id(route.sender_override)
            except InvalidSender as exc:
                raise ConfigError(source, f"{key}.sender_override", exc.reason) from None
        if route.blocked_keywords_path:
            try:
                KeywordFile(route.blocked_keywords_path)
            except (OSError, ValueError) as exc:
                raise ConfigError(source, f"{key}.blocked_keywords_path", str(exc)) from None
    if any(not keyword.strip() for keyword in config.policy.opt_out_keywords):
        raise ConfigError(source, "policy.opt_out_keywords", "an empty keyword would match every empty message")
    if config.policy.dnc_import_batch_size < 1:
        raise ConfigError(source, "policy.dnc_import_batch_size", "must be at least 1")


# --- sub-accounts ----------------------------------------------------------------------------------------------


def sub_accounts(config: Config, parent: str) -> tuple[str, ...]:
    return tuple(account.system_id for account in config.accounts if account.parent == parent)


def visible_accounts(config: Config, account: str) -> frozenset[str]:
    """Whose messages, receipts and ledger `account` may see: its own, and a parent those of its sub-accounts.
    Sub-accounts never see each other's or their parent's."""
    return frozenset((account, *sub_accounts(config, account)))


def check_transfer(config: Config, from_account: str, to_account: str, amount_micro: int) -> None:
    """ValueError unless this is a positive transfer between a parent and one of its own sub-accounts (either
    way); the store writes it as one ledger row on each side."""
    if amount_micro <= 0:
        raise ValueError(f"a transfer moves a positive amount, got {format_micro(amount_micro)}")
    parents = {account.system_id: account.parent for account in config.accounts}
    for name in (from_account, to_account):
        if name not in parents:
            raise ValueError(f"no account {name!r}")
    if parents[to_account] != from_account and parents[from_account] != to_account:
        raise ValueError(f"{from_account!r} and {to_account!r} are not a parent and its sub-account")
