"""Values that cross the store boundary: what is accepted, what is handed to a modem, what comes back out.

The small values built for every submission (`Address`, `NewSegment`) are NamedTuples: as immutable as a frozen
dataclass, and several times cheaper to build, which the accept path does a few times per message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from smsgw.pdu.constants import vendor_status
from smsgw.scheduler.states import State


class Refused(Exception):
    """A submission or request the gateway turns down; `command_status` is the SMPP status to answer with."""

    def __init__(self, message: str, *, command_status: int) -> None:
        super().__init__(message)
        self.command_status = command_status


class StoreUnavailable(Exception):
    """The store could not durably perform a write (I/O error, locked too long, shut down)."""


class InsufficientBalance(Exception):
    command_status = vendor_status(0)  # err 800: insufficient balance


class NotCancellable(Exception):
    """The message is on a modem, already sent, final, or not the caller's."""


class NewSegment(NamedTuple):
    data_coding: int  # 0 GSM (unpacked septets), 4 8-bit, 8 UCS-2: what the modem seam takes
    user_data: bytes
    udh: bytes


class Address(NamedTuple):
    addr: str
    ton: int = 0
    npi: int = 0


@dataclass(slots=True)  # not frozen: see the docstring
class NewMessage:
    """One submission to one destination, validated, segmented and priced, ready to be stored.

    Treated as a value (the store derives others with `dataclasses.replace`), but not a frozen dataclass: its
    generated __init__ would set each of the 23 fields through `object.__setattr__`, which was about a
    seventh of what preparing a submission for the store cost."""

    message_id: str
    dest_index: int
    account: str
    service_type: str
    source: Address
    destination: Address
    route: str
    modem_group: str
    esm_class: int
    registered_delivery: int
    data_coding: int
    flash: bool
    gateway_split: bool  # the gateway segmented the text: one receipt for the whole message
    text: str  # the message as text ('' for binary data); receipts quote its start, exports carry it
    submitted_ms: int
    start_ms: int
    expires_ms: int
    price_per_segment_micro: int
    segments: tuple[NewSegment, ...]
    # A policy err code (8xx): the message is kept REJECTED with it, never sent (and priced at 0).
    rejected_error: int = 0
    # `smsgw resend`: the id of the unpaid message this one re-submits; stored with it as a "resent" audit row.
    resends: str | None = None
    # The recipient rules (opt-out, and the do-not-call register when `promotional`) are read when the store
    # accepts the message, in the same transaction; a refused recipient's message is kept REJECTED with the
    # rule's err code. False for the gateway's own notices and for messages checked already (`smsgw resend`).
    check_recipient: bool = False
    promotional: bool = False
    client_ref: str = ""  # the HTTP caller's own reference, stored and returned with the message
    # Where this message's delivery reports go over HTTP (`smsgw.scheduler.dlr`); None: nowhere.
    dlr: DlrRequest | None = None

    @property
    def charge_micro(self) -> int:
        return self.price_per_segment_micro * len(self.segments)


@dataclass(frozen=True, slots=True)
class Handoff:
    """A segment claimed for a modem; its PROCESSING state is committed before this value exists."""

    segment_rowid: int
    segment_id: str  # "<message_id>.<dest_index>.<seq>" for logs
    destination: str
    data_coding: int
    user_data: bytes
    udh: bytes
    flash: bool
    modem_group: str
    expires_ms: int
    attempts: int  # including this one
    # What an upstream SMSC needs besides the segment: the route (its connectors) and the sender.
    route: str = ""
    source_addr: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    """A delivery receipt waiting in the outbox; rendered to deliver_sm when offered."""

    message_id: str
    source: Address  # the handset (the original destination)
    destination: Address  # the ESME's original source
    state: State
    error_code: int
    submitted_ms: int
    done_ms: int
    submitted_segments: int
    delivered_segments: int
    text: str  # start of the message text
    service_type: str


@dataclass(frozen=True, slots=True)
class LastSent:
    """The latest segment sent to a handset from one modem: where a reply from that handset belongs."""

    account: str
    source: Address  # the sender ID (or number) the message went out with; '' when the modem's own number
    sent_ms: int


@dataclass(frozen=True, slots=True)
class MoRecord:
    """An SMS from a handset waiting in the outbox for the account it was routed to."""

    mo_rowid: int
    originator: str
    recipient: str  # what the handset answered: the original sender ID, else the modem's MSISDN
    text: str
    data_coding: int
    user_data: bytes
    received_ms: int
    flash: bool


@dataclass(frozen=True, slots=True)
class MoCallback:
    """A pending HTTP callback of an MO: what its POST carries, and how far its delivery got."""

    rowid: int
    account: str
    mo_id: int
    originator: str
    recipient: str
    text: str
    data_coding: int
    received_ms: int  # the MO's TP-SCTS
    created_ms: int  # when the MO was stored: the callback's age counts from here
    attempts: int


class DlrRequest(NamedTuple):
    """A message's delivery-report callback, stored with it: to `url` ('' for JSON: the account's current
    `dlr_callback_url`) in `format` ('json', 'kannel', 'jasmin') by `method`, for the events of `mask` (Kannel's
    dlr-mask bits, `smsgw.scheduler.dlr`); `client_ref` is the caller's own reference, echoed back (stored in the
    message's own row, not with the request)."""

    url: str
    format: str = "json"
    method: str = "POST"
    mask: int = 3  # delivered and failed: the final state
    client_ref: str = ""


@dataclass(frozen=True, slots=True)
class DlrCallback:
    """A pending delivery-report callback: its request rendered when the state changed, and how far its
    delivery got."""

    rowid: int
    account: str
    message_id: str
    url: str  # '' for JSON: the account's current dlr_callback_url
    method: str
    format: str
    body: str  # JSON, or the form fields (Jasmin's; a query string for GET)
    created_ms: int
    attempts: int


@dataclass(frozen=True, slots=True)
class NoticeRow:
    """A notice the gateway sent a handset (MO receipt, toggle confirmation, opt-out confirmation) as an operator
    sees it (`smsgw notices list`), with its message's state while the message is kept."""

    rowid: int
    handset: str
    at_ms: int
    purpose: str
    message_id: str
    account: str | None  # None once the message was purged
    state: int | None
    text: str
    normal_sms: bool  # the handset's current choice: notices as normal SMS instead of flash


@dataclass(frozen=True, slots=True)
class CallbackRow:
    """A stored callback as an operator sees it (`smsgw callbacks list`): an MO's or a delivery report's."""

    kind: str  # 'mo' or 'dlr'; ids are per kind
    rowid: int
    subject: str  # the MO's id, or the message_id of the report
    account: str
    party: str  # the MO's originator, or the message's destination
    state: str  # 'pending' or 'failed'
    attempts: int
    last_error: str
    created_ms: int
    next_try_ms: int | None  # None once failed


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    item_id: str
    account: str
    record: ReceiptRecord | MoRecord


@dataclass(frozen=True, slots=True)
class OutboxClaim:
    """What one claim took (oldest first), held until `until_ms`; when it took nothing, `next_ms` is when the
    first claim keeping one of the account's items from it ends (another node's, a cool-down), None if none."""

    entries: tuple[OutboxEntry, ...]
    until_ms: int
    next_ms: int | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One stored destination of a submission, for query_sm, export and tests."""

    message_id: str
    dest_index: int
    account: str
    source: Address
    destination: Address
    state: State
    submitted_ms: int
    final_ms: int | None
    error_code: int
    segment_count: int
    charged_micro: int
    segment_states: tuple[State, ...]
    route: str
    data_coding: int
    esm_class: int
    start_ms: int
    expires_ms: int
    client_ref: str = ""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    at_ms: int
    kind: str
    amount_micro: int
    balance_after_micro: int
    message_id: str | None
    note: str


@dataclass(frozen=True, slots=True)
class Claimant:
    """A node claiming due segments from a store other nodes share (DESIGN.md, "Several nodes").

    It claims only segments of `routes` (those it has a connector for), names itself in each hand-off so its
    restart recovers only its own, and holds each hand-off for `lease_ms`: a hand-off without an outcome by then
    (the node died in it) is due again, and any node serving the route sends it again, as a restart would."""

    node: str
    routes: frozenset[str]
    lease_ms: int


@dataclass(frozen=True, slots=True)
class Recovery:
    interrupted_handoffs: int  # segments that were on a modem when the process stopped
    failed_handoffs: int  # of those, ended UNDELIVERABLE (err 807, `interrupted_handoff = "fail"`); the rest are due
    open_segments: int


class HistoryRow(NamedTuple):
    """One stored destination as `smsgw history export` writes it (a NamedTuple: an export streams many)."""

    message_id: str
    dest_index: int
    account: str
    source_addr: str
    destination_addr: str
    submitted_ms: int
    state: int
    final_ms: int | None
    error_code: int
    segment_count: int
    charged_micro: int
    text: str


class ListedMessage(NamedTuple):
    """One stored destination as the HTTP API lists it: the export's row, and what the API adds to it."""

    history: HistoryRow
    start_ms: int
    client_ref: str
    key: tuple[int, int]  # (submitted_ms, row id): the page's position, so the next page starts after it


class MessageFilter(NamedTuple):
    """Which of an account's messages a listing returns: submitted in [from_ms, to_ms), in `state`, to `number`,
    with the receipt's `error_code`."""

    from_ms: int
    to_ms: int
    state: State | None = None
    number: str | None = None  # normalised international digits, as stored
    error_code: int | None = None


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """An MO routed to an account, as its HTTP inbox lists it."""

    mo_id: int
    originator: str
    recipient: str  # the modem's MSISDN the handset sent to
    text: str
    received_ms: int
    answers: AnsweredMessage | None = None  # what the account last sent that handset from that modem before it


@dataclass(frozen=True, slots=True)
class AnsweredMessage:
    """The message an MO answers: the account's last one sent to the handset from the modem the MO came to (the
    rule two-way routing uses, `MessageStore.last_sent_to`)."""

    message_id: str
    source_addr: str
    text: str
    sent_ms: int


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as the store keeps it: never the key itself, only its hash."""

    key_id: int
    account: str
    name: str
    created_ms: int
    last_used_ms: int | None


@dataclass(frozen=True, slots=True)
class LatencyHistogram:
    """Observed durations as Prometheus histograms keep them: `cumulative[i]` of the `count` were at most
    `bounds[i]` seconds; `sum_s` their total."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    count: int
    sum_s: float


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """The open work in the store now, for /metrics: counted from the indexes of open work only."""

    open_messages: dict[State, int] = field(default_factory=dict)  # messages not final, by state
    due: dict[str, int] = field(default_factory=dict)  # segments by account: due now
    scheduled: dict[str, int] = field(default_factory=dict)  # segments waiting for a later time
    in_flight: dict[str, int] = field(default_factory=dict)  # handed to a modem, no answer yet
    # Segments due now by route, and since when the longest-waiting of them is due (epoch ms): with several nodes,
    # a route that no running node serves keeps its segments due, unclaimed, and this age grows.
    due_by_route: dict[str, int] = field(default_factory=dict)
    oldest_due_ms: dict[str, int] = field(default_factory=dict)
    outbox: dict[str, int] = field(default_factory=dict)  # receipts and MO waiting for the account's ESME
    callbacks: dict[tuple[str, str], int] = field(default_factory=dict)  # MO callbacks by (account, state)
