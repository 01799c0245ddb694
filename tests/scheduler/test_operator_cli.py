from __future__ import annotations

import csv
from pathlib import Path

import pytest
import trio

from smsgw.cli import main
from smsgw.config import StoreConfig
from smsgw.scheduler.sqlite_store import open_store
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
    assert lines[0] == "acme 3.4" and lines[1] == "acme 3.4"
    assert "charge" in lines[2] and "-0.1" in lines[2]
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
    assert rows[0]["account"] == "acme" and rows[0]["state"] == "ACCEPTED" and rows[0]["charged"] == "0.1"
    assert main(["history", "export", "--from", "2026-01-02", "--to", "2026-01-03", "--db", str(db)]) == 0
    assert capsys.readouterr().out.count("\n") == 1  # header only
    assert main(["history", "export", "--from", "2026-02-01", "--to", "2026-01-01", "--db", str(db)]) == 2
    assert main(["history", "export", "--from", "x", "--to", "2026-01-01", "--db", str(tmp_path / "none.db")]) == 2
