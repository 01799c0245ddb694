"""SQLite schema, versioned by `PRAGMA user_version`; each entry of MIGRATIONS moves one version up.

Times are integer epoch milliseconds (UTC); money is integer micro-units. `segments.due_at` is the one scheduling
column: the next moment the scheduler must act on a segment (hand it off, or expire it), NULL when nothing is due
(final, or on a modem right now). The partial index on it lets the dispatcher find due work without a scan.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Final

log = logging.getLogger(__name__)

MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL,
        dest_index INTEGER NOT NULL DEFAULT 0,
        account TEXT NOT NULL,
        service_type TEXT NOT NULL DEFAULT '',
        source_addr TEXT NOT NULL,
        source_addr_ton INTEGER NOT NULL,
        source_addr_npi INTEGER NOT NULL,
        destination_addr TEXT NOT NULL,
        dest_addr_ton INTEGER NOT NULL,
        dest_addr_npi INTEGER NOT NULL,
        route TEXT NOT NULL,
        modem_group TEXT NOT NULL,
        esm_class INTEGER NOT NULL,
        registered_delivery INTEGER NOT NULL,
        data_coding INTEGER NOT NULL,
        flash INTEGER NOT NULL,
        gateway_split INTEGER NOT NULL,
        text TEXT NOT NULL,
        submitted_at INTEGER NOT NULL,
        start_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        state INTEGER NOT NULL,
        final_at INTEGER,
        error_code INTEGER NOT NULL DEFAULT 0,
        segment_count INTEGER NOT NULL,
        charged INTEGER NOT NULL DEFAULT 0,
        UNIQUE (message_id, dest_index)
    );
    CREATE INDEX messages_final ON messages (final_at) WHERE final_at IS NOT NULL;
    CREATE INDEX messages_account_submitted ON messages (account, submitted_at);
    CREATE INDEX messages_open_by_address ON messages (account, destination_addr) WHERE final_at IS NULL;

    CREATE TABLE segments (
        id INTEGER PRIMARY KEY,
        message INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        destination TEXT NOT NULL,
        data_coding INTEGER NOT NULL,
        udh BLOB NOT NULL,
        user_data BLOB NOT NULL,
        state INTEGER NOT NULL,
        due_at INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        handoff_at INTEGER,
        sent_at INTEGER,
        modem TEXT,
        modem_msisdn TEXT,
        tp_mr INTEGER,
        charge INTEGER NOT NULL DEFAULT 0,
        error_code INTEGER NOT NULL DEFAULT 0,
        final_at INTEGER
    );
    CREATE INDEX segments_due ON segments (due_at) WHERE due_at IS NOT NULL;
    CREATE INDEX segments_message ON segments (message);
    CREATE INDEX segments_awaiting_report ON segments (modem, tp_mr) WHERE state = 4 AND sent_at IS NOT NULL;
    CREATE INDEX segments_in_flight ON segments (handoff_at) WHERE state = 4 AND sent_at IS NULL;
    -- two-way reply matching: the last message sent to a handset, from which modem and sender
    CREATE INDEX segments_sent_to ON segments (destination, sent_at) WHERE sent_at IS NOT NULL;

    CREATE TABLE status_reports (
        id INTEGER PRIMARY KEY,
        received_at INTEGER NOT NULL,
        modem TEXT NOT NULL,
        tp_mr INTEGER NOT NULL,
        recipient TEXT NOT NULL,
        tp_st INTEGER NOT NULL,
        discharge_time INTEGER NOT NULL,
        segment INTEGER
    );
    CREATE INDEX status_reports_received ON status_reports (received_at);
    -- a report that overtook the write of its segment's TP-MR waits here for record_sent
    CREATE INDEX status_reports_unmatched ON status_reports (modem, tp_mr) WHERE segment IS NULL;

    CREATE TABLE mo_messages (
        id INTEGER PRIMARY KEY,
        received_at INTEGER NOT NULL,
        modem TEXT NOT NULL,
        modem_msisdn TEXT NOT NULL,
        originator TEXT NOT NULL,
        data_coding INTEGER NOT NULL,
        text TEXT NOT NULL,
        user_data BLOB NOT NULL,
        flash INTEGER NOT NULL,
        incomplete INTEGER NOT NULL,
        account TEXT
    );
    CREATE INDEX mo_messages_received ON mo_messages (received_at);

    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        kind TEXT NOT NULL,
        record TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX outbox_account ON outbox (account, id);

    CREATE TABLE accounts (
        name TEXT PRIMARY KEY,
        balance INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;

    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('charge', 'refund', 'topup', 'adjust')),
        amount INTEGER NOT NULL,
        balance_after INTEGER NOT NULL,
        message_id TEXT,
        note TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX ledger_account ON ledger (account, id);

    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        event TEXT NOT NULL,
        account TEXT,
        message_id TEXT,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_at ON audit (at);
    """,
    # Balance transfers between a parent and its sub-accounts: SQLite cannot alter a CHECK, so the ledger is
    # rebuilt with the two new kinds, rows and ids kept.
    """
    CREATE TABLE ledger_v2 (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL
            CHECK (kind IN ('charge', 'refund', 'topup', 'adjust', 'transfer_out', 'transfer_in')),
        amount INTEGER NOT NULL,
        balance_after INTEGER NOT NULL,
        message_id TEXT,
        note TEXT NOT NULL DEFAULT ''
    );
    INSERT INTO ledger_v2 (id, account, at, kind, amount, balance_after, message_id, note)
        SELECT id, account, at, kind, amount, balance_after, message_id, note FROM ledger;
    DROP TABLE ledger;
    ALTER TABLE ledger_v2 RENAME TO ledger;
    CREATE INDEX ledger_account ON ledger (account, id);
    """,
    # Handsets that texted the toggle an odd number of times: their MO notices come as normal SMS, not flash.
    """
    CREATE TABLE handset_notices (
        number TEXT PRIMARY KEY,
        normal_sms INTEGER NOT NULL CHECK (normal_sms IN (0, 1)),
        changed_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # MO HTTP callbacks, written in the MO's own transaction: 'pending' until a 2xx (then deleted), 'failed' once
    # given up, kept for the operator to see. The POST body comes from the MO row; `received_at` is its TP-SCTS.
    # And every notice the gateway sent a handset: the per-handset limit counts them, and an MO that is one of
    # them coming back (to one of the gateway's own SIMs) is recognised and gets no notice in turn.
    """
    CREATE TABLE mo_callbacks (
        id INTEGER PRIMARY KEY,
        mo INTEGER NOT NULL,
        account TEXT NOT NULL,
        recipient TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'failed')),
        created_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_try_at INTEGER,
        last_error TEXT NOT NULL DEFAULT '',
        failed_at INTEGER
    );
    CREATE INDEX mo_callbacks_due ON mo_callbacks (next_try_at) WHERE state = 'pending';
    CREATE INDEX mo_callbacks_created ON mo_callbacks (created_at);

    CREATE TABLE notices_sent (
        id INTEGER PRIMARY KEY,
        handset TEXT NOT NULL,
        message_id TEXT NOT NULL,
        purpose TEXT NOT NULL,
        text TEXT NOT NULL,
        at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX notices_sent_handset ON notices_sent (handset, at);
    CREATE INDEX notices_sent_at ON notices_sent (at);
    """,
    # An outbox id names one item for good: the scheduler keys reservations, acknowledgements and its read-ahead
    # by it, and a plain INTEGER PRIMARY KEY hands the id of a just-deleted newest item to the next insert. So
    # the outbox is rebuilt with AUTOINCREMENT, rows and ids kept (copying them sets the sequence to the highest).
    """
    CREATE TABLE outbox_v2 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        account TEXT NOT NULL,
        kind TEXT NOT NULL,
        record TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    INSERT INTO outbox_v2 (id, account, kind, record, created_at)
        SELECT id, account, kind, record, created_at FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_v2 RENAME TO outbox;
    CREATE INDEX outbox_account ON outbox (account, id);
    """,
    # Upstream SMPP routes: a segment sent through an upstream keeps the upstream's name and message_id, which its
    # receipt quotes (indexed); a receipt that came before its submit_sm_resp was stored waits unmatched here.
    """
    ALTER TABLE segments ADD COLUMN upstream TEXT;
    ALTER TABLE segments ADD COLUMN upstream_message_id TEXT;
    CREATE INDEX segments_upstream_id ON segments (upstream, upstream_message_id)
        WHERE upstream_message_id IS NOT NULL;
    CREATE TABLE upstream_receipts (
        id INTEGER PRIMARY KEY,
        received_at INTEGER NOT NULL,
        upstream TEXT NOT NULL,
        upstream_message_id TEXT NOT NULL,
        stat TEXT NOT NULL,
        err TEXT NOT NULL,
        segment INTEGER REFERENCES segments (id)
    );
    CREATE INDEX upstream_receipts_unmatched ON upstream_receipts (upstream, upstream_message_id)
        WHERE segment IS NULL;
    CREATE INDEX upstream_receipts_received ON upstream_receipts (received_at);
    """,
    # The HTTP API: a message's `client_ref` (the caller's own reference, returned with it), the account's MO read
    # as an inbox page by page, and API keys (only the SHA-256 of the key is kept; the key is shown once).
    """
    ALTER TABLE messages ADD COLUMN client_ref TEXT NOT NULL DEFAULT '';
    CREATE INDEX mo_messages_account ON mo_messages (account, id) WHERE account IS NOT NULL;

    CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        key_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER
    );
    CREATE INDEX api_keys_account ON api_keys (account, id);
    """,
    # Delivery-report callbacks over HTTP. `dlr_requests`: per message that asked (a dlr_url, or an account with
    # dlr_callback_url), where and how its reports go and for which events (Kannel's dlr-mask bits); deleted with
    # the message. `dlr_callbacks`: each report rendered in the transaction of the change it reports, pending
    # until a 2xx (then deleted), 'failed' once given up — as `mo_callbacks`. `url` '' (JSON): the account's
    # current dlr_callback_url.
    """
    CREATE TABLE dlr_requests (
        message INTEGER PRIMARY KEY,
        url TEXT NOT NULL,
        format TEXT NOT NULL CHECK (format IN ('json', 'kannel', 'jasmin')),
        method TEXT NOT NULL CHECK (method IN ('GET', 'POST')),
        mask INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE dlr_callbacks (
        id INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL,
        account TEXT NOT NULL,
        recipient TEXT NOT NULL,
        url TEXT NOT NULL,
        method TEXT NOT NULL,
        format TEXT NOT NULL,
        body TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'failed')),
        created_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_try_at INTEGER,
        last_error TEXT NOT NULL DEFAULT '',
        failed_at INTEGER
    );
    CREATE INDEX dlr_callbacks_due ON dlr_callbacks (next_try_at) WHERE state = 'pending';
    CREATE INDEX dlr_callbacks_created ON dlr_callbacks (created_at);
    """,
    # Outbox claims, so that several nodes can offer one outbox: an item offered by a node (`[node] name`) is
    # held until `claimed_until` (epoch ms); a released one has no `claimed_by` and waits out its cool-down there.
    """
    ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
    ALTER TABLE outbox ADD COLUMN claimed_until INTEGER;
    -- a node's start releases what its previous run held
    CREATE INDEX outbox_claimed_by ON outbox (claimed_by) WHERE claimed_by IS NOT NULL;
    """,
    # The portal's and the API's searches by number, state and error code: one handset's (one state's, one
    # code's) messages of an account in time order, without reading every message of the period to find them (a
    # search that matches little, over a full store's retention of 1,000,000 messages, took 0.3-0.6 s without;
    # `python -m smsgw.bench portal`).
    """
    CREATE INDEX messages_account_destination ON messages (account, destination_addr, submitted_at);
    CREATE INDEX messages_account_state ON messages (account, state, submitted_at);
    CREATE INDEX messages_account_error ON messages (account, error_code, submitted_at);
    """,
    # Hand-offs claimed by a node of several (`store.Claimant`): its name, so that its restart recovers only its
    # own in-flight segments, not those another node is sending right now.
    """
    ALTER TABLE segments ADD COLUMN claimed_by TEXT;
    """,
    # The SMPP binds of every node (`store.MessageStore.bind_take`), so an account's `max_binds` holds across the
    # nodes sharing the store: a row per bind, held by its node's heartbeat until `expires_at` (epoch ms), so a
    # node killed with its binds frees them once that passes.
    """
    CREATE TABLE binds (
        node TEXT NOT NULL,
        connection INTEGER NOT NULL,
        account TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (node, connection)
    ) WITHOUT ROWID;
    CREATE INDEX binds_account ON binds (account, expires_at);
    """,
    # Accepted messages committed in a compact form first (`sqlite.accepting`): a writer batch's messages in one
    # row, written in full to messages and segments by a later transaction that deletes the row.
    """
    CREATE TABLE intake (
        id INTEGER PRIMARY KEY,
        messages INTEGER NOT NULL,
        due_at INTEGER NOT NULL, -- the earliest start of its messages: a claim of due work expands it by then
        format INTEGER NOT NULL,
        batch BLOB NOT NULL
    );
    """,
)


class SchemaTooNew(Exception):
    pass


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the schema to the newest version, one transaction per step; returns the version."""
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise SchemaTooNew(f"store schema version {version} is newer than this smsgw ({len(MIGRATIONS)})")
    for number in range(version + 1, len(MIGRATIONS) + 1):
        connection.executescript(f"BEGIN IMMEDIATE; {MIGRATIONS[number - 1]}; PRAGMA user_version = {number}; COMMIT;")
        log.info("store migrated version=%d", number)
    return len(MIGRATIONS)
