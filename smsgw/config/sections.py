"""Configuration: frozen dataclasses loaded from TOML. Every timeout, size and limit lives here.

Each section is a dataclass whose defaults are the embedded defaults (`smsgw demo` runs on them). `load_config`
(`smsgw.config.load`) reads a TOML file and reports problems as `ConfigError` naming the file, the key and what is
wrong. Each part adds the fields it needs to its own section; a field has one meaning and its unit in its name.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

DEMO_SYSTEM_ID: Final = "demo"
DEMO_PASSWORD: Final = "demo"
DEMO_OPERATOR: Final = "operator"  # the demo's portal operator login, with DEMO_PASSWORD
DEMO_CALLBACK_SECRET: Final = "demo-secret"  # signs the demo account's JSON callbacks (its receipt sink checks it)

# SMPP 3.4 C-Octet Strings: password 9 and system_id 16 octets, the NUL included. A longer password in the config
# could never be sent by any ESME (every bind would be ESME_RINVPASWD), so it is refused at load.
MAX_PASSWORD_CHARS: Final = 8
MAX_SYSTEM_ID_CHARS: Final = 15

# After deliver_sm_resp, for writing the item's deletion while the node still holds its claim.
OUTBOX_ANSWER_MARGIN_S: Final = 5.0


# The values of SQLite's `PRAGMA synchronous` that [store] synchronous may name.
SQLITE_SYNCHRONOUS: Final = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})


@dataclass(frozen=True, slots=True)
class SmppConfig:
    host: str = "127.0.0.1"
    port: int = 2775
    tls_port: int | None = None
    tls_cert_path: str | None = None
    tls_key_path: str | None = None
    system_id: str = "smsgw"
    max_pdu_bytes: int = 65536
    # Outstanding deliver_sm we send to one ESME before waiting for responses.
    window: int = 10
    enquire_link_interval_s: float = 30.0
    response_timeout_s: float = 10.0
    # A node's claim on the receipts/MO it reads ahead and offers (`claimed_until` in the store): a node that dies
    # leaves them to the others after this. Longer than response_timeout_s + OUTBOX_ANSWER_MARGIN_S, the most an
    # offered item needs until its deliver_sm_resp is answered and its deletion written.
    outbox_claim_s: float = 60.0
    # A bound session without traffic (enquire_link aside) this long is unbound; 0 disables the timer.
    inactivity_timeout_s: float = 300.0
    session_init_timeout_s: float = 10.0
    shutdown_grace_s: float = 5.0
    # Failed binds: answered after base * 2**(failures-1) seconds, capped; locked out after `lockout_failures`.
    bind_failure_delay_base_s: float = 0.5
    bind_failure_delay_max_s: float = 8.0
    # Counted per account and source address; `bind_lockout_address_failures` of all accounts together lock the
    # whole address (higher, so that other accounts behind the same NAT can still bind).
    bind_lockout_failures: int = 10
    bind_lockout_address_failures: int = 30
    bind_lockout_s: float = 300.0
    # Password checks (scrypt, 16 MB each) in progress at once over all connections; one per source address.
    # A bind that finds no slot is refused at once with ESME_RBINDFAIL.
    max_password_checks: int = 2
    # Connections at once (accepted ones; outbinds aside), and from one source address; more are closed at once.
    max_connections: int = 1000
    max_connections_per_address: int = 50
    # A PDU whose first octets came must be complete this long after them, else the connection is closed.
    pdu_read_timeout_s: float = 30.0
    # Requests of one connection waiting for the backend; at this many the connection is not read any further.
    max_pending_requests: int = 100
    # Backend operations (submit, query, ...) in progress at once over all connections, and how many more may
    # queue for them before every reader waits.
    workers: int = 64
    request_queue_size: int = 256
    # A message (message_payload) needing more segments is refused at submit with 0x406 (too many segments).
    max_segments: int = 8
    # The connection audit log also goes to this file as JSON lines; None: only the `smsgw.audit` logger.
    audit_log_path: str | None = None


@dataclass(frozen=True, slots=True)
class AccountConfig:
    system_id: str
    # scrypt hash as written by `smsgw.passwords.hash_password`; a plain `password` is hashed at load.
    password_hash: str
    allowed_networks: tuple[str, ...] = ()
    allowed_bind_types: tuple[Literal["transmitter", "receiver", "transceiver"], ...] = (
        "transmitter", "receiver", "transceiver",
    )
    max_binds: int = 10
    throughput_per_s: float = 100.0
    throughput_burst: int = 200
    # Outbind: while the account has no receiver bind, connect to this ESME and send outbind every interval.
    outbind_host: str | None = None
    outbind_port: int | None = None
    outbind_password: str = ""
    outbind_interval_s: float = 60.0
    default_country_code: str = ""
    # Registered sender IDs (at most 5; alphanumeric 1-11 of A-Za-z0-9, or an international MSISDN without '+').
    # Empty: any well-formed sender. The first one is used when a submission gives no source_addr.
    sender_ids: tuple[str, ...] = ()
    # Every message of this account is promotional (do-not-call register, unsubscribe statement).
    promotional: bool = False
    # A sub-account of this system_id: own credentials, sender IDs, history and receipts; its balance moves to
    # and from the parent only by operator transfer. One level: a sub-account has no sub-accounts.
    parent: str = ""
    # MO whose first word is one of these (any case) comes to this account, unless it answers a message another
    # account sent to that handset within `messages.reply_window_s` (shared short code style).
    keywords: tuple[str, ...] = ()
    # Every MO routed to this account is also POSTed here as JSON (retried with backoff); the deliver_sm to its
    # receiver binds is sent either way.
    mo_callback_url: str | None = None
    # Delivery reports of this account's messages without a dlr_url of their own are POSTed here as JSON (final
    # states; retried with backoff like MO callbacks). None: only messages that give a dlr_url get them.
    dlr_callback_url: str | None = None
    # JSON callbacks (MO and delivery reports) carry `X-Smsgw-Signature: sha256=<HMAC-SHA256 of the body>` with
    # this key; '' sends them unsigned.
    callback_secret: str = ""
    # The operator "SMS receipt" service: once this account's ESME takes an MO, the handset gets a notice of it
    # (`messages.mo_receipt_text`), flash (class 0) unless that handset chose normal SMS by texting the toggle.
    mo_receipts: bool = False
    # IANA time zone the portal shows and takes this account's times in ("Europe/London"); empty: UTC.
    time_zone: str = ""


@dataclass(frozen=True, slots=True)
class ModemConfig:
    name: str
    port: str
    baudrate: int = 115200
    rtscts: bool = False
    pin: str | None = None
    msisdn: str = ""
    group: str = "default"
    command_timeout_s: float = 10.0
    send_timeout_s: float = 60.0
    messages_per_minute: int | None = None
    messages_per_day: int | None = None
    messages_per_month: int | None = None
    # Start-up: how long the SIM may stay busy (+CME ERROR: 14) and how long to wait for network registration.
    sim_ready_timeout_s: float = 30.0
    registration_timeout_s: float = 120.0
    # Signal quality (+CSQ), registration (+CREG) and operator (+COPS) are polled this often.
    poll_interval_s: float = 60.0
    # Watchdog: `AT` after this long without traffic; a modem silent `watchdog_failures` times in a row is reset.
    watchdog_interval_s: float = 30.0
    watchdog_timeout_s: float = 5.0
    watchdog_failures: int = 2
    # A vanished or reset modem is re-opened after this delay, doubling up to the maximum.
    reopen_delay_s: float = 2.0
    reopen_delay_max_s: float = 60.0
    # After AT+CFUN=1,1 a modem reboots (and a USB modem re-enumerates) before its port opens again.
    reset_settle_s: float = 15.0
    # After the ESC that ends a prompt a crash may have left open, before the first command of a session.
    escape_settle_s: float = 0.2
    # Directory of per-model quirks.toml files; empty: the hw_fixtures directory of this installation.
    quirks_dir: str = ""
    smsc: str = ""  # SMSC address set with AT+CSCA; empty: keep the one on the SIM


@dataclass(frozen=True, slots=True)
class RouteConfig:
    name: str
    prefixes: tuple[str, ...] = ("",)
    modem_group: str = "default"
    max_segments: int = 3
    price_per_segment: float = 0.0
    allowed_sender_ids: tuple[str, ...] = ()
    # Every message on this route is sent from this sender instead of the submitted one ('' = keep it).
    sender_override: str = ""
    # Registered senders may be submitted with a leading '#' on this route.
    allow_hash_sender: bool = False
    # Signature prefixed to every message; `signature_added_upstream`: the operator adds it, so only its length
    # is kept free in the first part (the China route: 62 characters left in the first UCS-2 part).
    signature: str = ""
    signature_added_upstream: bool = False
    # Appended only when it fits in the last segment without adding one.
    suffix: str = ""
    # Appended to promotional messages, same rule as `suffix` (e.g. the service's "EN/UN<hotline>").
    unsubscribe_statement: str = ""
    # One entry a line: a word (whole word, any case) or `re:` and a regular expression; re-read when it changes.
    blocked_keywords_path: str = ""
    # "crlf": CR LF kept and counted as two characters; "lf": CR LF and lone CR normalised to LF.
    line_breaks: str = "crlf"
    # Connectors tried in order, each "upstream:NAME" ([[upstreams]]) or "modems:GROUP"; empty: modems:modem_group.
    via: tuple[str, ...] = ()
    # False: ask the upstream for no delivery receipts (an "economic" route); the message ends DELIVERED once the
    # upstream accepted it. Modems always ask for status reports.
    receipts: bool = True

    @property
    def connectors(self) -> tuple[str, ...]:
        return self.via or (f"{MODEMS_CONNECTOR}{self.modem_group}",)


UPSTREAM_CONNECTOR: Final = "upstream:"
MODEMS_CONNECTOR: Final = "modems:"


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """An operator's SMSC the gateway binds to as an ESME (`[[upstreams]]`)."""

    name: str
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = ""
    password: str = ""  # at most 8 characters (SMPP 3.4)
    system_type: str = ""
    # "transceiver": one bind per session; "transmitter+receiver": two (submits on one, receipts/MO on the other).
    bind: Literal["transceiver", "transmitter+receiver"] = "transceiver"
    sessions: int = 1
    window: int = 10  # submit_sm outstanding per bind
    throughput_per_s: float = 100.0  # the operator's contracted rate, over all sessions
    tls: bool = False
    tls_ca_path: str = ""  # CA file to verify the SMSC's certificate; empty: the system's CAs
    # A bind (and each reconnect) waits this long for bind_resp; submit_sm and enquire_link for their responses.
    bind_timeout_s: float = 10.0
    response_timeout_s: float = 10.0
    enquire_link_interval_s: float = 30.0
    # After a lost connection or a refused bind: min * 2**(failures-1), capped at max, with +-jitter_ratio.
    reconnect_delay_min_s: float = 1.0
    reconnect_delay_max_s: float = 60.0
    reconnect_jitter_ratio: float = 0.2
    # After ESME_RTHROTTLED / ESME_RMSGQFUL: submits to this upstream pause this long (doubled while it goes on,
    # capped at reconnect_delay_max_s), then the segment is tried here again.
    throttled_pause_s: float = 1.0
    # A submit waits at most this long for a bound session with room in its window before the next connector.
    submit_wait_s: float = 5.0


@dataclass(frozen=True, slots=True)
class MessageConfig:
    default_validity_s: float = 120 * 60
    min_validity_s: float = 10 * 60
    max_validity_s: float = 23 * 3600
    max_schedule_ahead_s: float = 5 * 365.25 * 24 * 3600
    retry_backoff_base_s: float = 30.0
    retry_backoff_max_s: float = 600.0
    reply_window_s: float = 7 * 24 * 3600
    multipart_reassembly_timeout_s: float = 30 * 60
    # A segment sent with TP-SRR but never reported on is EXPIRED this long after its validity ends.
    status_report_grace_s: float = 10 * 60
    # A status report matches the latest segment sent from that modem with its TP-MR within this window.
    status_report_match_window_s: float = 3 * 24 * 3600
    # The dispatcher also looks for due work this often, for messages another process stored (`smsgw resend`),
    # and a waiting receiver bind for outbox items (another node's whose NOTIFY was lost);
    # 0: only when this process stores or finishes something.
    foreign_writes_poll_s: float = 5.0
    # Segments on modems at once; the dispatcher claims no more than this.
    max_in_flight_segments: int = 64
    # A segment a restart finds handed to a modem without an outcome (the process died inside AT+CMGS) may or may
    # not have reached the handset: "resend" sends it again (never lost, perhaps a duplicate); "fail" ends it
    # UNDELIVERABLE with err 807 (never a duplicate, perhaps not delivered).
    interrupted_handoff: Literal["resend", "fail"] = "resend"
    # A receipt/MO an ESME did not take (error, timeout, unbind) is offered again after this delay.
    outbox_redelivery_delay_s: float = 5.0
    # The account that receives MO no other rule claims ('' = keep it stored, deliver it to nobody).
    mo_default_account: str = ""
    # MO HTTP callbacks (pending in the store, so they survive a restart): each POST's timeout; attempts and age
    # (from the MO's arrival) before one is given up, kept as 'failed' (backoff as for segments); POSTs in flight
    # at once, and per account, so that one slow endpoint cannot hold up the others.
    mo_callback_timeout_s: float = 10.0
    mo_callback_max_attempts: int = 8
    mo_callback_max_age_s: float = 24 * 3600
    mo_callback_concurrency: int = 16
    mo_callback_concurrency_per_account: int = 4
    # Notices of the accounts with `mo_receipts`; {account} is the account's system_id. An MO that is just the
    # toggle (any case) switches that handset between flash and normal notices, and goes to no account.
    mo_receipt_text: str = "Your message was delivered to {account}"
    mo_receipt_toggle: str = "PT"
    mo_receipt_normal_text: str = "Delivery notices will now come as normal SMS. Send PT to get them as flash SMS."
    mo_receipt_flash_text: str = "Delivery notices will now come as flash SMS. Send PT to get them as normal SMS."
    # At most this many notices (MO receipts, toggle and opt-out confirmations) to one handset per window; more
    # are not sent (0: no limit). Stops a loop with an auto-responder that answers every notice.
    notices_per_handset_max: int = 10
    notices_per_handset_window_s: float = 3600.0


# The `[store] url` schemes libpq takes.
POSTGRES_URL_SCHEMES: Final = ("postgresql://", "postgres://")


@dataclass(frozen=True, slots=True)
class StoreConfig:
    path: str = "smsgw.db"
    # "postgresql://..." (libpq's URL): the store is in PostgreSQL, shared by every node given the same URL
    # (DESIGN.md, "Several nodes"), and `path` only places the modem status file. Empty: SQLite at `path`.
    url: str = ""
    # SQLite `PRAGMA synchronous` (one of SQLITE_SYNCHRONOUS, any case): FULL makes an acknowledged submission
    # survive power loss, not just kill -9.
    synchronous: str = "FULL"
    retention_days: int = 61
    purge_batch_size: int = 500
    purge_interval_s: float = 600.0
    # Group commit: operations pending together are committed as one transaction of at most this many.
    writer_max_batch: int = 512
    writer_queue_size: int = 1024
    busy_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class ModemsStatusConfig:
    """The modem status file `<store path>.modems.json`: what `smsgw modems` shows, and the SIMs' limit counters
    that the next run restores."""

    # How often the running gateway rewrites it: its most sends a crash leaves uncounted, and the snapshot's age.
    interval_s: float = 5.0


@dataclass(frozen=True, slots=True)
class VirtualNetworkConfig:
    """The simulated GSM network of `smsgw demo`, tests and `smsgw virtual-modem` (numbers: docs/virtual-network.md)."""

    # From accepting an SMS-SUBMIT to the handset taking it; 0 for benchmarks.
    delivery_delay_s: float = 1.0
    # Wait before the next attempt after a temporary failure (absent handset, memory full).
    retry_interval_s: float = 30.0
    # Validity the network applies to an SMS-SUBMIT without TP-VP.
    default_validity_s: float = 24 * 3600.0
    # The auto-reply handset forgets parts of a concatenated message that never completed after this long.
    reassembly_timeout_s: float = 10 * 60.0
    smsc: str = "447700900000"
    # Virtual modem: the radio round trip between Ctrl-Z and `+CMGS: <mr>`.
    submit_delay_s: float = 0.0
    # Virtual modem: `+CPIN?` answers SIM busy for this long after power-on, as real SIMs do.
    sim_ready_delay_s: float = 0.0
    # Virtual modem: from SIM ready (or AT+CFUN=1) to registered on the network.
    registration_delay_s: float = 0.0
    sim_capacity: int = 30
    me_capacity: int = 100
    # `+CSQ` RSSI (0-31, 99 unknown).
    signal_rssi: int = 20
    # The network offers one handset its next MT (SMS, status report) no sooner than this after the last, so two
    # never reach a modem in the same instant (hosts such as python-gsmmodem lose all but the first). A real
    # network takes a few seconds per radio transaction, but the virtual modem also sends at once: at 2 s its four
    # modems could take only 2 receipts a second for all they send; 0.5 s keeps the spacing and the demo usable.
    mt_interval_s: float = 0.5
    # Virtual modem: quiet time on the line between two unsolicited result codes, as a real modem's UART has.
    unsolicited_gap_s: float = 0.1


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Rules shared by all accounts: opt-out keywords, what marks a message promotional, DNC import batches."""

    # A handset's whole MO text (any case, surrounding spaces ignored) that opts it out of the account's messages.
    opt_out_keywords: tuple[str, ...] = ("STOP", "UNSUBSCRIBE", "T", "退訂")
    # Sent once to a handset that opted out ('' = no confirmation).
    opt_out_confirmation: str = "You have been unsubscribed and will receive no further messages."
    # A submission with one of these service_type values is promotional (any case).
    promotional_service_types: tuple[str, ...] = ("PROMO",)
    dnc_import_batch_size: int = 1000


@dataclass(frozen=True, slots=True)
class BillingConfig:
    """How money is shown: route prices, balances and the ledger are amounts in this one currency."""

    # ISO 4217 code printed after every amount (`smsgw account`, `history export` stays numeric for spreadsheets).
    currency: str = "EUR"


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The HTTP face (REST API, compatibility endpoints, /metrics, /healthz, /readyz), served by hypercorn in the
    gateway's own process."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080  # 0: any free port
    # A request body longer than this is answered 413 (checked from Content-Length, and while the body is read).
    max_body_bytes: int = 1 << 20
    # The request line and headers; beyond it hypercorn closes the connection.
    max_header_bytes: int = 16384
    # The whole request, from its first byte to the end of its response; one still unanswered then gets 503.
    request_timeout_s: float = 30.0
    # Waiting for the next bytes of a request that has begun; the connection is closed after it.
    read_timeout_s: float = 30.0
    # An idle keep-alive connection is closed after this long.
    keep_alive_timeout_s: float = 5.0
    # Connections waiting in the kernel to be accepted.
    backlog: int = 100
    # At shutdown, after accepting stops: how long requests in progress may take to finish.
    shutdown_grace_s: float = 5.0
    # /readyz: how long the store's write round trip may take before the store counts as not writable.
    readiness_store_timeout_s: float = 2.0
    # REST API listings (messages, inbox, ledger): the most rows one page may ask for with `limit`.
    max_page_size: int = 1000
    # The key that signs portal session cookies; empty: a random one kept in a file beside the store
    # (`<store.path>.portal-secret`), so sessions survive a restart without any configuration.
    session_secret: str = ""
    # A portal session ends this long after its login.
    session_lifetime_s: float = 8 * 3600.0
    # Numbers one portal send may have (typed or in an uploaded file).
    portal_max_numbers: int = 100_000
    # A portal upload (numbers file, consent list) may be this large; the body limit above applies to forms.
    portal_max_upload_bytes: int = 16 << 20


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    """A login to the portal's operator pages (modems, queues, accounts, audit log); not an SMPP account."""

    name: str
    # scrypt hash as written by `smsgw.passwords.hash_password`; a plain `password` is hashed at load.
    password_hash: str


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """This gateway process among the nodes sharing one store (DESIGN.md, "Several nodes")."""

    # Names its claims in the store (outbox items it offers), so it must differ between nodes; a restart releases
    # the claims its previous run left under the same name.
    name: str = field(default_factory=socket.gethostname)
    # With a shared store (`[store] url`): how long a segment handed to this node's modem or upstream stays its own
    # without an outcome. The node renews the lease three times per lease while the hand-off is in progress, so
    # only a node that stopped (or cannot reach the store) for this long has the segment sent again by another.
    handoff_lease_s: float = 300.0
    # How long this node's SMPP binds count against their accounts' `max_binds` on the other nodes without a
    # heartbeat (three per lease; `smsgw.smpp_server.binds`): the binds of a node killed with -9 are free again
    # after at most this long. The heartbeat also brings other nodes' binds into this node's throughput shares.
    bind_lease_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Config:
    smpp: SmppConfig = field(default_factory=SmppConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    accounts: tuple[AccountConfig, ...] = ()
    operators: tuple[OperatorConfig, ...] = ()
    modems: tuple[ModemConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = (RouteConfig(name="default"),)
    upstreams: tuple[UpstreamConfig, ...] = ()
    messages: MessageConfig = field(default_factory=MessageConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    modems_status: ModemsStatusConfig = field(default_factory=ModemsStatusConfig)
    virtual_network: VirtualNetworkConfig = field(default_factory=VirtualNetworkConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    billing: BillingConfig = field(default_factory=BillingConfig)
    node: NodeConfig = field(default_factory=NodeConfig)


_T = TypeVar("_T")


class ConfigHolder:
    """The running gateway's config, replaced as a whole by a reload (`smsgw.app.reload_config`).

    Parts that follow reloads keep the holder, never a `Config` or a section of it, and read `current` at each
    use; what they build from the config (compiled rules, parsed networks) comes from `derived`, which builds it
    once per config, so a reload needs no call into each part."""

    def __init__(self, config: Config) -> None:
        self._current = config
        self._derived: dict[Callable[[Config], Any], Any] = {}

    @property
    def current(self) -> Config:
        return self._current

    def derived(self, build: Callable[[Config], _T]) -> _T:
        """`build(current)`, built at the first call after each replacement and shared until the next one."""
        try:
            value: _T = self._derived[build]
        except KeyError:
            value = self._derived[build] = build(self._current)
        return value

    def replace(self, config: Config) -> None:
        """Make `config` current, with everything derived so far built anew from it first: if a build raises
        (a CIDR or keyword file the parts cannot use), that is raised and the running config stays."""
        derived = {build: build(config) for build in self._derived}
        self._current, self._derived = config, derived


def holding(config: Config | ConfigHolder) -> ConfigHolder:
    """For parts that take either: a `Config` (tests, tools) is held as is and never reloaded."""
    return config if isinstance(config, ConfigHolder) else ConfigHolder(config)
