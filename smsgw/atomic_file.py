"""Files another process reads while the gateway rewrites them (the status snapshots of `smsgw modems` and
`smsgw upstreams`): replaced atomically, so a reader sees the previous version or the next, never half."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
