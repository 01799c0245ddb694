"""kill -9 under load, several times, then restart: every acknowledged message is stored exactly once, charged
exactly once, and reaches a final state."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from pathlib import Path

from killing import run_until_killed

WORKER = Path(__file__).with_name("crash_worker.py")


def test_sigkill_under_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    rng = random.Random()
    acknowledged: list[str] = []
    for _ in range(4):
        acknowledged += run_until_killed([str(WORKER), "submit", str(db)], rng.uniform(0.3, 1.5))
    assert len(acknowledged) > 50 and len(set(acknowledged)) == len(acknowledged)
    subprocess.run([sys.executable, str(WORKER), "finish", str(db)], check=True, timeout=60)
    with sqlite3.connect(db) as connection:
        rows = dict(
            connection.execute("SELECT message_id, COUNT(*) FROM messages GROUP BY message_id HAVING COUNT(*) > 0")
        )
        charges = dict(
            connection.execute(
                "SELECT message_id, COUNT(*) FROM ledger WHERE kind = 'charge' GROUP BY message_id"
            )
        )
        open_count = connection.execute("SELECT COUNT(*) FROM messages WHERE final_at IS NULL").fetchone()[0]
        undelivered = connection.execute("SELECT COUNT(*) FROM messages WHERE state != 22").fetchone()[0]
    missing = [m for m in acknowledged if rows.get(m) != 1]
    assert missing == []
    assert all(charges.get(m) == 1 for m in acknowledged)
    assert open_count == 0 and undelivered == 0
