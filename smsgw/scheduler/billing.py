"""Billing decisions, pure: what a submission is charged and which of its messages go unpaid (err 800), what a
segment's change refunds, what a replacement or a transfer costs. A store engine applies them inside its own
transaction (the balances it passes in are read there) and writes the ledger rows they return: the rules live here
once, whatever engine stores the rows.

Charging (DESIGN.md): once per segment when a message is accepted, never per retry; refunded when the segment
ends without having been sent (policy rejection, expiry before sending, cancellation, interrupted hand-off).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Final, NamedTuple

from smsgw.scheduler.model import InsufficientBalance, NewMessage
from smsgw.scheduler.routing import format_micro
from smsgw.scheduler.states import FINAL, State

CHARGE: Final = "charge"
REFUND: Final = "refund"
TOPUP: Final = "topup"
ADJUST: Final = "adjust"
TRANSFER_OUT: Final = "transfer_out"
TRANSFER_IN: Final = "transfer_in"


class LedgerRow(NamedTuple):
    """One ledger entry to insert, in the ledger's column order (a NamedTuple: built once per charged message on
    the accept path, where a dataclass costs more)."""

    account: str
    at_ms: int
    kind: str
    amount_micro: int  # negative for a debit
    balance_after_micro: int
    message_id: str | None
    note: str = ""


def charge_request(balances: dict[str, int], request: Sequence[NewMessage], ledger: list[LedgerRow]) -> list[bool]:
    """Debit one submission's messages in order from `balances` (updated in place; they must hold every charged
    message's account); whether each was paid. Each charge's ledger row is appended to `ledger`.

    The engine reads the balances inside its writing transaction and applies every submission of a batch in turn:
    that serial order is what keeps concurrent submissions from overdrawing."""
    paid: list[bool] = []
    for message in request:
        charge = message.charge_micro
        if not charge:
            paid.append(True)
            continue
        balance = balances[message.account]
        if balance < charge:
            paid.append(False)
            continue
        balance -= charge
        balances[message.account] = balance
        ledger.append(LedgerRow(message.account, message.submitted_ms, CHARGE, -charge, balance, message.message_id))
        paid.append(True)
    return paid


def acknowledged(request: Sequence[NewMessage], paid: Sequence[bool]) -> set[str]:
    """The message_ids of the submissions in `request` (as `charge_request` paid them) that are acknowledged: those
    with a paid destination. A submission is the messages sharing a message_id, so a request of several
    submissions (an SMPP read's submit_sm, one `AcceptPath.accept` call) acknowledges each on its own."""
    return {message.message_id for message, is_paid in zip(request, paid) if is_paid}


def keeps_unpaid(acknowledged: Collection[str], message: NewMessage) -> bool:
    """Whether an unpaid `message` is kept (REJECTED, err 800, uncharged, without a receipt) for `smsgw resend`:
    only when its submission is `acknowledged`. A submission refused whole stores nothing (DESIGN.md), even when
    another one of the same request was paid; in one that is acknowledged, the destination the balance could not
    cover belongs to it. A resend's own unpaid copy is not kept twice: the original still waits."""
    return message.message_id in acknowledged and message.resends is None


class Refund(NamedTuple):
    amount_micro: int
    note: str


def refund(new: State, sent_at_ms: int | None, charge_micro: int) -> Refund | None:
    """What a segment's change to `new` gives back: its charge when it ends, other than DELIVERED, without having
    been sent."""
    if new in FINAL and new is not State.DELIVERED and sent_at_ms is None and charge_micro:
        return Refund(charge_micro, f"segment not sent: {new.name}")
    return None


def replacement_difference(charged_micro: int, new_charge_micro: int, balance_micro: int) -> int:
    """What replacing a message's segments costs more (negative: gives back); InsufficientBalance when the
    balance does not cover an increase."""
    difference = new_charge_micro - charged_micro
    if difference > 0 and balance_micro < difference:
        raise InsufficientBalance("balance does not cover the replacement")
    return difference


def replacement_kind(difference: int) -> str:
    return CHARGE if difference > 0 else REFUND


def topup_kind(amount_micro: int) -> str:
    """An operator's credit is a top-up, a debit an adjustment."""
    return TOPUP if amount_micro >= 0 else ADJUST


def check_transfer_amount(amount_micro: int) -> None:
    """A transfer moves a positive amount (ValueError). Who may transfer to whom is `policy.check_transfer`."""
    if amount_micro <= 0:
        raise ValueError(f"a transfer moves a positive amount, got {format_micro(amount_micro)}")


def check_transfer_cover(from_account: str, amount_micro: int, from_balance_micro: int) -> None:
    """A transfer never overdraws its sender (InsufficientBalance, checked on the balance read in its transaction)."""
    if from_balance_micro < amount_micro:
        raise InsufficientBalance(f"{from_account} has less than the {format_micro(amount_micro)} to transfer")


def transfer_notes(from_account: str, to_account: str, note: str) -> tuple[str, str]:
    """The ledger notes of a transfer's two rows: (the sender's, the receiver's)."""
    return f"to {to_account} {note}".rstrip(), f"from {from_account} {note}".rstrip()
