"""The SQLite message store: one file in WAL mode, one group-commit writer, a separate reader connection.

`SqliteStore` implements `store.MessageStore`; its jobs are in `smsgw.scheduler.sqlite` (accepting, the
dispatcher's side, ESME operations on messages, ledger, MO and outbox, callbacks, retention, the HTTP API's pages
and keys, the nodes' SMPP binds), over the transaction steps of `sqlite.base`. The rules it applies are pure
modules: `billing` (charges, err 800, refunds), `outcomes` (which receipt follows a change), `outbox_codec`. Only
`store.open_store` and tests that test SQLite itself import this module.

Every state change of a segment goes through `_change`, which applies the transition table, refunds what was
never sent, re-derives the message state and queues the receipts the ESME asked for, all inside the writer's
transaction, so a crash can never leave a state change without its receipt or its refund.

Recovery rule for hand-offs (DESIGN.md, issue 4): a hand-off is committed (PROCESSING, `handoff_at`, no
`sent_at`) before the modem gets the segment. If the process stops before the outcome is committed, the modem may
or may not have sent it, and without its TP-MR there is no way to ask. On start such segments go back to RETRY,
due at once, with an `handoff_interrupted` audit row and a warning: an acknowledged message is never lost, and a
duplicate is possible only for a segment that was inside one AT+CMGS exchange when the process died. With
`[messages] interrupted_handoff = "fail"` they end UNDELIVERABLE with err 807 instead (refunded, as nothing proves
they were sent): never a duplicate, but perhaps a message the handset did get reported as failed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from smsgw.config import StoreConfig
from smsgw.scheduler.policy_store import SqlitePolicyFacts
from smsgw.scheduler.sqlite.accepting import Accepting
from smsgw.scheduler.sqlite.api import Api
from smsgw.scheduler.sqlite.base import connect
from smsgw.scheduler.sqlite.binds import Binds
from smsgw.scheduler.sqlite.callbacks import Callbacks
from smsgw.scheduler.sqlite.dispatch import Dispatch
from smsgw.scheduler.sqlite.ledger import Ledger
from smsgw.scheduler.sqlite.messages import Messages
from smsgw.scheduler.sqlite.outbox import Outbox
from smsgw.scheduler.sqlite.retention import Retention
from smsgw.scheduler.sqlite.stats import Stats
from smsgw.scheduler.sqlite.upstreams import Upstreams

__all__ = ["SqliteStore", "open_store"]


class SqliteStore(
    Accepting, Dispatch, Upstreams, Messages, Ledger, Outbox, Callbacks, Retention, Stats, Api, Binds
):
    """Use `async with open_store(path, config) as store:`, which runs migrations and the writer task."""


@asynccontextmanager
async def open_store(path: str | Path, config: StoreConfig) -> AsyncIterator[SqliteStore]:
    """The store with its writer task running; closed (after pending writes finish) when the block exits."""
    connections = await trio.to_thread.run_sync(connect, str(path), config)
    facts = await trio.to_thread.run_sync(SqlitePolicyFacts.open, str(path), config.busy_timeout_s)
    store = SqliteStore(str(path), config, connections, facts)
    try:
        await trio.to_thread.run_sync(store.keep_intake)
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.writer.expanded()  # what a kill -9 left in the intake, in full before anything reads it
            yield store
            nursery.cancel_scope.cancel()
    finally:
        store.close()
