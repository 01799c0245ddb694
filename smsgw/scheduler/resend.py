"""`smsgw resend`: re-submit the messages an account's balance could not cover (err 800), as the service's
"resend" action does once the account is topped up.

The store keeps such a submission REJECTED with err 800 and uncharged (`MessageStore.accept`). A resend takes the
ones of a period that were not resent yet and stores them again as one new batch: new message ids, sent now with
the validity they had, routed and priced by the current config and charged normally, the do-not-call and opt-out
rules applied again by the store in its accepting transaction (`accept.Origin.RESEND`). Each original gets a
"resent" audit row with its new id in the same transaction, so a second run does not send it twice; one the
balance still cannot cover stays unpaid for a later run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from smsgw.config import Config
from smsgw.scheduler.accept import AcceptPath, Options, Origin, Rejected, Stored, Submission, Timing
from smsgw.scheduler.model import InsufficientBalance
from smsgw.scheduler.states import State
from smsgw.scheduler.store import MessageStore
from smsgw.scheduler.timing import WallClock, from_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Resent:
    """One original and what became of it: `new_id` None when nothing was stored (`reason` says why);
    a new id with a `reason` is a message stored REJECTED by the recipient rules (uncharged)."""

    old_id: str
    new_id: str | None
    reason: str = ""


async def resend_unpaid(
    store: MessageStore, config: Config, account: str, start_ms: int, end_ms: int, now_ms: int
) -> list[Resent]:
    """Re-submit `account`'s unpaid messages submitted in [start_ms, end_ms), oldest first, in one commit.
    ValueError for an account the config does not know."""
    if not any(a.system_id == account for a in config.accounts):
        raise ValueError(f"no account {account!r} in the config")
    originals = await store.unpaid_messages(account, start_ms, end_ms)
    submissions = [
        Submission(
            (original.destination,),
            Stored(original.message_id, original.segments, original.text, original.data_coding,
                   original.esm_class, original.flash, original.gateway_split),
            original.source,
            Timing(validity=timedelta(milliseconds=original.expires_ms - original.start_ms)),
            Options(original.service_type, original.registered_delivery),
        )
        for original in originals
    ]
    accept = AcceptPath(store, config, WallClock(from_ms(now_ms)))
    results = await accept.accept(account, submissions, Origin.RESEND)
    outcomes: list[Resent] = []
    for original, (result,) in zip(originals, results, strict=True):
        old_id = original.message_id
        if isinstance(result, Rejected):
            unpaid = result.command_status == InsufficientBalance.command_status
            reason = "insufficient balance (still unpaid)" if unpaid else result.reason
            outcomes.append(Resent(old_id, None, f"not resent: {reason}"))
            log.info("resend account=%s old_id=%s new_id=- stored=False reason=%s", account, old_id, reason)
            continue
        # The recipient rules are the store's, applied as it accepted the message: what they decided is stored.
        (stored,) = await store.find(account, result.message_id)
        rejected = stored.error_code if stored.state is State.REJECTED else 0
        outcomes.append(Resent(old_id, result.message_id, f"REJECTED err {rejected}" if rejected else ""))
        log.info("resend account=%s old_id=%s new_id=%s stored=True err=%d", account, old_id, result.message_id,
                 rejected)
    return outcomes
