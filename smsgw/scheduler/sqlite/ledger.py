"""Prepaid balances as an operator sees them: top-ups, transfers, the ledger, and the unpaid messages (err 800)
that `smsgw resend` re-submits. The rules (`billing`) are pure; this reads and writes the rows."""

from __future__ import annotations

import sqlite3

from smsgw.scheduler import billing
from smsgw.scheduler.model import Address, LedgerEntry, NewMessage, NewSegment
from smsgw.scheduler.sqlite.accepting import INSUFFICIENT_BALANCE, RESENT
from smsgw.scheduler.sqlite.base import SqliteBase
from smsgw.scheduler.states import State


class Ledger(SqliteBase):
    async def topup(self, account: str, amount_micro: int, now_ms: int, note: str = "") -> int:
        """Credit (or, negative, debit) an account as an operator; returns the new balance."""
        kind = billing.topup_kind(amount_micro)

        def op(c: sqlite3.Connection) -> int:
            balance = self._ledger(c, account, kind, amount_micro, now_ms, None, note)
            self._audit(c, now_ms, kind, account, None, f"amount={amount_micro} note={note}")
            return balance

        return await self._writer.write(op)

    async def transfer(
        self, from_account: str, to_account: str, amount_micro: int, now_ms: int, note: str = ""
    ) -> tuple[int, int]:
        """Move a positive amount between two accounts as an operator: a `transfer_out` row on one side and a
        `transfer_in` row on the other in one transaction; InsufficientBalance (nothing written) when it would
        overdraw `from_account`. Returns both new balances. Who may transfer to whom is `policy.check_transfer`."""
        billing.check_transfer_amount(amount_micro)
        out_note, in_note = billing.transfer_notes(from_account, to_account, note)

        def op(c: sqlite3.Connection) -> tuple[int, int]:
            billing.check_transfer_cover(from_account, amount_micro, self._locked_balance(c, from_account))
            sent = self._ledger(c, from_account, billing.TRANSFER_OUT, -amount_micro, now_ms, None, out_note)
            received = self._ledger(c, to_account, billing.TRANSFER_IN, amount_micro, now_ms, None, in_note)
            self._audit(c, now_ms, "transfer", from_account, None, f"to={to_account} amount={amount_micro} note={note}")
            return sent, received

        return await self._writer.write(op)

    async def unpaid_messages(self, account: str, start_ms: int, end_ms: int) -> list[NewMessage]:
        """The account's messages submitted in [start_ms, end_ms) that the balance could not cover (REJECTED,
        err 800) and that no `smsgw resend` re-submitted yet, oldest first, as they were submitted."""

        def fn(c: sqlite3.Connection) -> list[NewMessage]:
            resent = {
                row["message_id"]
                for row in c.execute(
                    "SELECT message_id FROM audit WHERE at >= ? AND event = ? AND account = ?",
                    (start_ms, RESENT, account),
                )
            }
            rows = c.execute(
                "SELECT id, message_id, dest_index, service_type, source_addr, source_addr_ton, source_addr_npi,"
                " destination_addr, dest_addr_ton, dest_addr_npi, route, modem_group, esm_class, registered_delivery,"
                " data_coding, flash, gateway_split, text, submitted_at, start_at, expires_at FROM messages"
                " WHERE account = ? AND submitted_at >= ? AND submitted_at < ? AND state = ? AND error_code = ?"
                " ORDER BY id",
                (account, start_ms, end_ms, int(State.REJECTED), INSUFFICIENT_BALANCE),
            ).fetchall()
            return [
                NewMessage(
                    message_id=row["message_id"],
                    dest_index=row["dest_index"],
                    account=account,
                    service_type=row["service_type"],
                    source=Address(row["source_addr"], row["source_addr_ton"], row["source_addr_npi"]),
                    destination=Address(row["destination_addr"], row["dest_addr_ton"], row["dest_addr_npi"]),
                    route=row["route"],
                    modem_group=row["modem_group"],
                    esm_class=row["esm_class"],
                    registered_delivery=row["registered_delivery"],
                    data_coding=row["data_coding"],
                    flash=bool(row["flash"]),
                    gateway_split=bool(row["gateway_split"]),
                    text=row["text"],
                    submitted_ms=row["submitted_at"],
                    start_ms=row["start_at"],
                    expires_ms=row["expires_at"],
                    price_per_segment_micro=0,
                    segments=tuple(
                        NewSegment(segment["data_coding"], bytes(segment["user_data"]), bytes(segment["udh"]))
                        for segment in c.execute(
                            "SELECT data_coding, user_data, udh FROM segments WHERE message = ? ORDER BY seq",
                            (row["id"],),
                        )
                    ),
                )
                for row in rows
                if row["message_id"] not in resent
            ]

        return await self._read(fn)

    async def balance(self, account: str) -> int:
        return await self._read(lambda c: self._balance(c, account))

    async def ledger(self, account: str, limit: int) -> list[LedgerEntry]:
        """The account's latest `limit` ledger entries, oldest first."""

        def fn(c: sqlite3.Connection) -> list[LedgerEntry]:
            rows = c.execute(
                "SELECT at AS at_ms, kind, amount AS amount_micro, balance_after AS balance_after_micro, message_id,"
                " note FROM ledger WHERE account = ? ORDER BY id DESC LIMIT ?",
                (account, limit),
            ).fetchall()
            return [LedgerEntry(**row) for row in reversed(rows)]

        return await self._read(fn)
