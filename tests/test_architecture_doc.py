"""docs/architecture.md names modules by path: every one it names must exist, so the map cannot drift from the
code unnoticed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "smsgw"


def test_every_module_the_architecture_names_exists() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    # `scheduler/accept.py`, `pdu/`, `sqlite/` (relative to smsgw/, or to the room named before it in a table row)
    named = set(re.findall(r"`([a-z_]+(?:/[a-z_]+)*(?:\.py|/))`", text))
    missing = [
        path for path in sorted(named)
        if not (PACKAGE / path).exists() and not any(PACKAGE.glob(f"**/{path}")) and not (ROOT / path).exists()
    ]
    assert missing == []
