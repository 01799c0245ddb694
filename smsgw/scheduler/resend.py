"""`smsgw resend`: re-submit the messages an account's balance could not cover (err 800), as the service's
"resend" action does once the account is topped up.

The store keeps such a submission REJECTED with err 800 and uncharged (`MessageStore.accept`). A resend takes the
ones of a period that were not resent yet and stores them again as one new batch: new message ids, sent now with
the validity they had, routed and priced by the current config and charged normally, the do-not-call and opt-out
rules applied again. Each original gets a "resent" audit row with its new id in the same transaction, so a
second run does not send it twice; one the balance still cannot cover stays unpaid for a later run.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, replace

import trio

from smsgw.config import Config
from smsgw.scheduler.ids import MessageIdGenerator
from smsgw.scheduler.model import NewMessage
from smsgw.scheduler.policy import PolicyFacts, Rejection, check_recipient, is_promotional
from smsgw.scheduler.routing import NoRoute, find_route, segment_price_micro
from smsgw.scheduler.store import MessageStore

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
    settings = next((a for a in config.accounts if a.system_id == account), None)
    if settings is None:
        raise ValueError(f"no account {account!r} in the config")
    originals = await store.unpaid_messages(account, start_ms, end_ms)
    ids = MessageIdGenerator()
    outcomes: list[Resent] = []
    batch: list[tuple[NewMessage, bool]] = []
    for original in originals:
        number = original.destination.addr
        try:
            route = find_route(config.routes, number)
        except NoRoute as exc:
            outcomes.append(Resent(original.message_id, None, f"not resent: {exc}"))
            continue
        message = replace(
            original,
            message_id=ids.next(now_ms),
            route=route.name,
            modem_group=route.modem_group,
            submitted_ms=now_ms,
            start_ms=now_ms,
            expires_ms=now_ms + (original.expires_ms - original.start_ms),
            price_per_segment_micro=segment_price_micro(route, number),
            resends=original.message_id,
        )
        promotional = is_promotional(settings, original.service_type, config.policy.promotional_service_types)
        batch.append((message, promotional))
    rejections = await trio.to_thread.run_sync(
        functools.partial(_rejections, store.policy_facts(), batch)
    )
    messages = [
        m if r is None else replace(m, price_per_segment_micro=0, rejected_error=int(r.error_code))
        for (m, _), r in zip(batch, rejections, strict=True)
    ]
    stored = await store.accept(messages) if messages else ()
    for message, ok in zip(messages, stored, strict=True):
        assert message.resends is not None
        if not ok:
            outcomes.append(Resent(message.resends, None, "not resent: insufficient balance (still unpaid)"))
        elif message.rejected_error:
            outcomes.append(Resent(message.resends, message.message_id, f"REJECTED err {message.rejected_error}"))
        else:
            outcomes.append(Resent(message.resends, message.message_id))
        log.info("resend account=%s old_id=%s new_id=%s stored=%s err=%d", account, message.resends,
                 message.message_id, ok, message.rejected_error)
    return outcomes


def _rejections(facts: PolicyFacts, batch: list[tuple[NewMessage, bool]]) -> list[Rejection | None]:
    return [check_recipient(facts, m.account, m.destination.addr, promotional=p) for m, p in batch]
