"""The status snapshots another process reads while the gateway rewrites them (`<store>.modems.json` for `smsgw
modems`, `<store>.upstreams.json` for `smsgw upstreams`): one envelope for both (a format version, when it was
written, the writer's interval, the records under one key), replaced atomically so a reader sees the previous
version or the next, never half. Each snapshot module encodes and decodes only its own records."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def replace_file(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: written and synced under a temporary name in the same directory, then renamed."""
    descriptor, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def encode(version: int, written_at: datetime, interval_s: float, key: str, records: Sequence[Any]) -> bytes:
    document = {"version": version, "written_at": written_at.isoformat(), "interval_s": interval_s, key: records}
    return json.dumps(document, indent=1, ensure_ascii=False).encode()


def decode(
    data: bytes,
    version: int,
    key: str,
    record: Callable[[dict[str, Any]], T],
    error: type[Exception],
    what: str,
) -> tuple[datetime, float, tuple[T, ...]]:
    """(written_at, interval_s, records); anything else than a snapshot of `version` raises `error`."""
    try:
        document = json.loads(data)
        if document.get("version") != version:
            raise error(f"unknown format version {document.get('version')!r}")
        written_at = datetime.fromisoformat(document["written_at"])
        if written_at.tzinfo is None:
            raise error("written_at has no time zone")
        return written_at, float(document["interval_s"]), tuple(record(item) for item in document[key])
    except error:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise error(f"not {what}: {exc!r}") from None


def read(path: Path) -> bytes | None:
    """The file's bytes, None when there is none (the gateway never wrote one with this store)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
