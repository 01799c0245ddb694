"""MO and the outbox: incoming SMS stored and queued for their account, outbox items claimed by a node, released
and deleted when acknowledged, where a reply belongs (`last_sent_to`), and the handsets' notices and their choices."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from typing import Final

from smsgw.modem.seams import IncomingSms
from smsgw.numbers import handset_key
from smsgw.scheduler import outbox_codec
from smsgw.scheduler.dialect import Dialect
from smsgw.scheduler.model import Address, LastSent, MoRecord, NoticeRow, OutboxClaim, OutboxEntry, StoreUnavailable
from smsgw.scheduler.sqlite.base import SqliteBase
from smsgw.scheduler.timing import to_ms


# Outbox items per DELETE: far below SQLite's limit on bound parameters.
_DELETE_CHUNK: Final = 500


class Outbox(SqliteBase):
    async def last_sent_to(
        self, handset: str, modem: str, modem_msisdn: str, since_ms: int, *, upstream: str | None = None
    ) -> LastSent | None:
        """Who last sent a segment to `handset` from that modem (by name, or by its SIM's number) since `since_ms`;
        with `upstream`, who last sent one to it through that upstream SMSC instead."""
        by: tuple[str, ...]
        if upstream is None:
            sent_by, by = "(s.modem = ? OR (s.modem_msisdn = ? AND s.modem_msisdn != ''))", (modem, modem_msisdn)
        else:
            sent_by, by = "s.upstream = ?", (upstream,)

        def fn(c: sqlite3.Connection) -> LastSent | None:
            row = c.execute(
                "SELECT m.account, m.source_addr, m.source_addr_ton, m.source_addr_npi, s.sent_at"
                " FROM segments s INDEXED BY segments_sent_to JOIN messages m ON m.id = s.message"
                f" WHERE s.destination = ? AND s.sent_at IS NOT NULL AND s.sent_at >= ? AND {sent_by}"
                " ORDER BY s.sent_at DESC, s.id DESC LIMIT 1",
                (handset_key(handset), since_ms, *by),
            ).fetchone()
            if row is None:
                return None
            source = Address(row["source_addr"], row["source_addr_ton"], row["source_addr_npi"])
            return LastSent(row["account"], source, row["sent_at"])

        return await self._read(fn)

    async def store_mo(
        self, sms: IncomingSms, account: str | None, recipient: str, now_ms: int, *, callback: bool = False
    ) -> int:
        """Persist an incoming SMS; with an account it also waits in that account's outbox, addressed to
        `recipient` (the sender ID the handset answered, or the modem's MSISDN), and with `callback` its HTTP
        callback is pending, due at once (same transaction: a crash loses neither without the other)."""

        def op(c: sqlite3.Connection) -> int:
            received_ms = to_ms(sms.received_at)
            cursor = c.execute(
                "INSERT INTO mo_messages (received_at, modem, modem_msisdn, originator, data_coding, text, user_data,"
                " flash, incomplete, account) VALUES (?,?,?,?,?,?,?,?,?,?) RETURNING id",
                (
                    now_ms,
                    sms.modem,
                    sms.modem_msisdn,
                    sms.originator,
                    sms.data_coding,
                    sms.text,
                    sms.user_data,
                    int(sms.flash),
                    int(sms.incomplete),
                    account,
                ),
            )
            rowid = int(cursor.fetchone()["id"])
            if account is not None:
                record = MoRecord(
                    mo_rowid=rowid,
                    originator=sms.originator,
                    recipient=recipient,
                    text=sms.text,
                    data_coding=sms.data_coding,
                    user_data=sms.user_data,
                    received_ms=received_ms,
                    flash=sms.flash,
                )
                self._outbox_add(c, account, record, now_ms)
                if callback:
                    c.execute(
                        "INSERT INTO mo_callbacks (mo, account, recipient, received_at, state, created_at,"
                        " next_try_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                        (rowid, account, recipient, received_ms, now_ms, now_ms),
                    )
            return rowid

        return await self._writer.write(op)

    async def outbox_claim(self, account: str, node: str, now_ms: int, until_ms: int, limit: int) -> OutboxClaim:
        def op(c: sqlite3.Connection, claims: list[tuple[str, str, int, int, int]]) -> list[OutboxClaim]:
            return [_outbox_claim(c, self._dialect, *claim) for claim in claims]

        # Ahead of queued writes: receipts wait on it, and there is at most one claim per account's pusher.
        try:
            # Not durable: a claim lost to a power failure only lets the items be offered again, as a restart does.
            claim: OutboxClaim = await self._writer.write_first(
                op, (account, node, now_ms, until_ms, limit), durable=False
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"outbox claim failed: {exc}") from exc
        return claim

    async def outbox_release(self, node: str, offer_at_ms: int, item_ids: Sequence[str] | None) -> int:
        def op(c: sqlite3.Connection) -> int:
            if item_ids is None:
                rows = c.execute(
                    "UPDATE outbox SET claimed_by = NULL, claimed_until = ? WHERE claimed_by = ? RETURNING account",
                    (offer_at_ms, node),
                ).fetchall()
            else:
                rows = [
                    row
                    for i in item_ids
                    for row in c.execute(
                        "UPDATE outbox SET claimed_by = NULL, claimed_until = ? WHERE id = ? AND claimed_by = ?"
                        " RETURNING account",
                        (offer_at_ms, int(i), node),
                    )
                ]
            # Whoever waits for these accounts looks again, and learns when the cool-down ends.
            for account in {row["account"] for row in rows}:
                self._writer.after_commit(functools.partial(self.notify_outbox, account))
            return len(rows)

        return await self._writer.write(op)

    async def outbox_delete(self, item_ids: Sequence[str]) -> list[bool]:
        """Delete taken items in the writer's next commit, ahead of queued writes (a crash before it commits
        offers them again, as does a power failure before the next durable commit: receipts are delivered at
        least once); for each, whether it was still there."""
        try:
            deleted: list[bool] = await self._writer.write_first(_outbox_delete_batch, item_ids, durable=False)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"outbox delete failed: {exc}") from exc
        return deleted

    async def handset_wants_normal_sms(self, number: str) -> bool:
        """Whether `number` switched its MO notices from flash to normal SMS."""

        def fn(c: sqlite3.Connection) -> bool:
            row = c.execute("SELECT normal_sms FROM handset_notices WHERE number = ?", (number,)).fetchone()
            return row is not None and bool(row["normal_sms"])

        return await self._read(fn)

    async def toggle_handset_notices(self, number: str, now_ms: int) -> bool:
        """Switch `number`'s MO notices between flash and normal SMS; True when they are now normal SMS."""

        def op(c: sqlite3.Connection) -> bool:
            row = c.execute(
                "INSERT INTO handset_notices (number, normal_sms, changed_at) VALUES (?, 1, ?)"
                " ON CONFLICT (number) DO UPDATE SET normal_sms = 1 - handset_notices.normal_sms,"
                " changed_at = excluded.changed_at"
                " RETURNING normal_sms",
                (number, now_ms),
            ).fetchone()
            return bool(row["normal_sms"])

        return await self._writer.write(op)

    async def record_notice(
        self, handset: str, message_id: str, purpose: str, text: str, now_ms: int, expires_ms: int, *,
        since_ms: int, limit: int,
    ) -> bool:
        """Record a notice about to be sent to `handset`, unless `limit` (0: none) notices went to it since
        `since_ms`; False (nothing written) when the limit is reached."""

        def op(c: sqlite3.Connection) -> bool:
            if limit > 0:
                count = c.execute(
                    "SELECT COUNT(*) AS sent FROM notices_sent WHERE handset = ? AND at > ?", (handset, since_ms)
                ).fetchone()["sent"]
                if count >= limit:
                    return False
            c.execute(
                "INSERT INTO notices_sent (handset, message_id, purpose, text, at, expires_at) VALUES (?,?,?,?,?,?)",
                (handset, message_id, purpose, text, now_ms, expires_ms),
            )
            return True

        return await self._writer.write(op)

    async def notices_listing(self, handset: str | None, limit: int) -> list[NoticeRow]:
        """The latest `limit` notices (to `handset` when given, in international digits), oldest first."""

        def fn(c: sqlite3.Connection) -> list[NoticeRow]:
            rows = c.execute(
                "SELECT * FROM (SELECT n.id, n.handset, n.at, n.purpose, n.message_id, m.account, m.state, n.text,"
                " COALESCE(h.normal_sms, 0) AS normal_sms FROM notices_sent n"
                " LEFT JOIN messages m ON m.message_id = n.message_id AND m.dest_index = 0"
                " LEFT JOIN handset_notices h ON h.number = n.handset"
                " WHERE ?1 IS NULL OR n.handset = ?1 ORDER BY n.id DESC LIMIT ?2) AS latest ORDER BY id",
                (handset, limit),
            )
            return [
                NoticeRow(
                    rowid=row["id"],
                    handset=row["handset"],
                    at_ms=row["at"],
                    purpose=row["purpose"],
                    message_id=row["message_id"],
                    account=row["account"],
                    state=row["state"],
                    text=row["text"],
                    normal_sms=bool(row["normal_sms"]),
                )
                for row in rows
            ]

        return await self._read(fn)

    async def is_notice_echo(self, mo_rowid: int, grace_ms: int) -> bool:
        """Whether MO `mo_rowid` is one of the gateway's own notices come back: the modem that received it has the
        number a notice with the same text went to, and that notice was still valid (`grace_ms` allowed)."""

        def fn(c: sqlite3.Connection) -> bool:
            mo = c.execute(
                "SELECT modem_msisdn, text, received_at FROM mo_messages WHERE id = ?", (mo_rowid,)
            ).fetchone()
            if mo is None:
                return False
            row = c.execute(
                "SELECT 1 FROM notices_sent WHERE handset = ? AND text = ? AND at <= ? AND expires_at + ? >= ? LIMIT 1",
                (handset_key(mo["modem_msisdn"]), mo["text"], mo["received_at"], grace_ms, mo["received_at"]),
            ).fetchone()
            return row is not None

        return await self._read(fn)


def _outbox_claim(
    c: sqlite3.Connection, dialect: Dialect, account: str, node: str, now_ms: int, until_ms: int, limit: int
) -> OutboxClaim:
    rows = c.execute(
        "UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id IN (SELECT id FROM outbox"
        " WHERE account = ? AND (claimed_until IS NULL OR claimed_until <= ?)"
        f" ORDER BY id LIMIT ?{dialect.skip_locked})"
        " RETURNING id, kind, record",
        (node, until_ms, account, now_ms, limit),
    ).fetchall()
    entries = sorted(
        (OutboxEntry(str(row["id"]), account, outbox_codec.decode(row["kind"], row["record"])) for row in rows),
        key=lambda entry: int(entry.item_id),
    )
    if entries:
        return OutboxClaim(tuple(entries), until_ms)
    row = c.execute(
        "SELECT MIN(claimed_until) AS next FROM outbox WHERE account = ? AND claimed_until > ?", (account, now_ms)
    ).fetchone()
    return OutboxClaim((), until_ms, row["next"])


def _outbox_delete_batch(c: sqlite3.Connection, batches: list[Sequence[str]]) -> list[list[bool]]:
    """One DELETE for every batch's items (in chunks below the bound-parameter limits); for each item, whether it
    was still there."""
    ids = [int(i) for item_ids in batches for i in item_ids]
    gone: set[int] = set()
    for start in range(0, len(ids), _DELETE_CHUNK):
        chunk = ids[start:start + _DELETE_CHUNK]
        gone.update(row[0] for row in c.execute(
            f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(chunk))}) RETURNING id", chunk
        ))
    # An item named twice counts as deleted for the first only, as when each was deleted in turn.
    return [[_take(gone, int(i)) for i in item_ids] for item_ids in batches]


def _take(ids: set[int], item: int) -> bool:
    if item in ids:
        ids.remove(item)
        return True
    return False
