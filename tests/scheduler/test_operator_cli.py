from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest
import trio

from smsgw.cli import main
from smsgw.config import StoreConfig
from smsgw.modem.seams import IncomingSms
from smsgw.passwords import hash_password
from smsgw.scheduler.sqlite_store import open_store
from smsgw.scheduler.timing import from_ms
from tests.scheduler.test_store import T0, new_message


def make_store(path: Path) -> None:
    async def run() -> None:
        async with open_store(path, StoreConfig(synchronous="NORMAL")) as store:
            await store.topup("acme", 1_000_000, T0)
            await store.accept([new_message(price=50_000, segments=2), new_message(account="other")])

    trio.run(run)


def test_account_topup_balance_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "gw.db"
    make_store(db)
    assert main(["account", "topup", "acme", "2.50", "--note", "invoice 7", "--db", str(db)]) == 0
    assert main(["account", "balance", "acme", "--db", str(db)]) == 0
    assert main(["account", "ledger", "acme", "--limit", "2", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "acme 3.40 EUR" and lines[1] == "acme 3.40 EUR"
    assert "charge" in lines[2] and "-0.10 EUR" in lines[2]
    assert "topup" in lines[3] and "note=invoice 7" in lines[3]
    assert main(["account", "topup", "acme", "lots", "--db", str(db)]) == 2


def test_history_export_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "gw.db"
    make_store(db)
    out = tmp_path / "acme.csv"
    args = ["history", "export", "--from", "2026-01-01", "--to", "2026-01-01", "--account", "acme"]
    assert main([*args, "--output", str(out), "--db", str(db)]) == 0
    with open(out, newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 1
    assert rows[0]["account"] == "acme" and rows[0]["state"] == "ACCEPTED" and rows[0]["charged"] == "0.10"
    assert main(["history", "export", "--from", "2026-01-02", "--to", "2026-01-03", "--db", str(db)]) == 0
    assert capsys.readouterr().out.count("\n") == 1  # header only
    assert main(["history", "export", "--from", "2026-02-01", "--to", "2026-01-01", "--db", str(db)]) == 2
    assert main(["history", "export", "--from", "x", "--to", "2026-01-01", "--db", str(tmp_path / "none.db")]) == 2


def test_account_transfer_between_parent_and_sub_account_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "gw.db"
    make_store(db)  # acme: 1.00 topped up, 0.10 charged
    config = tmp_path / "smsgw.toml"
    password_hash = hash_password("pw")
    config.write_text(
        "\n".join(
            f'[[accounts]]\nsystem_id = "{name}"\npassword_hash = "{password_hash}"\nparent = "{parent}"\n'
            for name, parent in (("acme", ""), ("acme-sales", "acme"), ("acme-support", "acme"), ("other", ""))
        )
        + f'\n[store]\npath = "{db}"\n',
        encoding="utf-8",
    )
    transfer = ["account", "transfer", "--config", str(config)]
    assert main([*transfer, "--from", "acme", "--to", "acme-sales", "--amount", "0.4", "--note", "q1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["acme 0.50 EUR", "acme-sales 0.40 EUR"]
    assert main([*transfer, "--from", "acme-sales", "--to", "acme", "--amount", "0.1", "--db", str(db)]) == 0
    assert capsys.readouterr().out.splitlines() == ["acme-sales 0.30 EUR", "acme 0.60 EUR"]
    for source, target, amount, reason in (
        ("acme-sales", "acme-support", "0.1", "not a parent and its sub-account"),
        ("acme", "other", "0.1", "not a parent and its sub-account"),
        ("acme", "nobody", "0.1", "no account 'nobody'"),
        ("acme", "acme-sales", "-1", "positive amount"),
        ("acme", "acme-sales", "0.7", "refused"),  # more than acme has
    ):
        assert main([*transfer, "--from", source, "--to", target, "--amount", amount]) == 2
        assert reason in capsys.readouterr().err
    assert main(["account", "ledger", "acme-sales", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["transfer_in", "transfer_out"]
    assert "note=from acme q1" in lines[0]


def test_callbacks_list_and_retry_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "gw.db"

    async def store_callbacks() -> None:
        async with open_store(db, StoreConfig(synchronous="NORMAL")) as store:
            for text in ("first", "second", "third"):
                sms = IncomingSms("m1", "447700900001", "447700900555", text, 0, from_ms(T0))
                await store.store_mo(sms, "shop", "447700900001", T0, callback=True)
            await store.callback_failed("mo", 1, 3, "HTTP 503", T0 + 1000)
            await store.callback_failed("mo", 2, 1, "HTTP 404", T0 + 2000)

    trio.run(store_callbacks)
    assert main(["callbacks", "list", "--state", "failed", "--db", str(db)]) == 0
    header, *failed = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["KIND", "ID", "MO"]
    assert [line.split()[:2] for line in failed] == [["mo", "1"], ["mo", "2"]]
    assert failed[0].endswith("HTTP 503") and " failed " in failed[0]

    assert main(["callbacks", "retry", "2", "--db", str(db)]) == 0
    assert main(["callbacks", "retry", "2", "--db", str(db)]) == 1  # pending now: nothing to requeue
    assert main(["callbacks", "retry", "--all-failed", "--account", "other", "--db", str(db)]) == 1
    assert main(["callbacks", "retry", "--db", str(db)]) == 2  # neither ids nor --all-failed
    assert main(["callbacks", "retry", "1", "--all-failed", "--db", str(db)]) == 2
    assert capsys.readouterr().out.splitlines() == [
        "requeued 1 failed callback", "requeued 0 failed callbacks", "requeued 0 failed callbacks"
    ]
    with sqlite3.connect(db) as connection:
        states = connection.execute("SELECT id, state, attempts, failed_at FROM mo_callbacks ORDER BY id").fetchall()
    assert states == [(1, "failed", 3, T0 + 1000), (2, "pending", 0, None), (3, "pending", 0, None)]
    assert main(["callbacks", "list", "--state", "pending", "--account", "shop", "--db", str(db)]) == 0
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]] == ["2", "3"]


def test_notices_list_shows_each_notice_with_its_message_state_and_the_handsets_choice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "gw.db"
    receipt = new_message(account="shop", destination="447700900555")

    async def store_notices() -> None:
        async with open_store(db, StoreConfig(synchronous="NORMAL")) as store:
            await store.accept([receipt])
            for handset, message_id, purpose, at in (
                ("447700900555", receipt.message_id, "mo-receipt", T0),
                ("447700900777", "00000000000000000001", "opt-out", T0 + 1000),  # its message purged since
                ("447700900555", "00000000000000000002", "toggle", T0 + 2000),
            ):
                assert await store.record_notice(handset, message_id, purpose, "Received", at, at + 60_000,
                                                 since_ms=0, limit=0)
            assert await store.toggle_handset_notices("447700900555", T0 + 2000)

    trio.run(store_notices)
    assert main(["notices", "list", "--db", str(db)]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["ID", "SENT", "HANDSET", "PURPOSE"]
    assert [row.split()[:4] for row in rows] == [
        ["1", from_ms(T0).isoformat(timespec="seconds"), "447700900555", "mo-receipt"],
        ["2", from_ms(T0 + 1000).isoformat(timespec="seconds"), "447700900777", "opt-out"],
        ["3", from_ms(T0 + 2000).isoformat(timespec="seconds"), "447700900555", "toggle"],
    ]
    assert rows[0].split()[4:7] == [receipt.message_id, "shop", "ACCEPTED"]
    assert rows[1].split()[5:7] == ["-", "purged"]
    assert "normal SMS" in rows[0] and "flash" in rows[1]
    assert main(["notices", "list", "--handset", "+44 7700 900555", "--limit", "1", "--db", str(db)]) == 0
    assert [row.split()[0] for row in capsys.readouterr().out.splitlines()[1:]] == ["3"]  # the latest one
    assert main(["notices", "list", "--handset", "07700 900555", "--db", str(db)]) == 2
    assert "national number" in capsys.readouterr().err
