"""Run a worker script until a random moment under load, then kill -9 it (crash tests)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time


def run_until_killed(argv: list[str], seconds: float) -> list[str]:
    """Start `python argv...`, which prints READY, then `ACK <id>` after each thing it made durable; kill -9 it
    after `seconds`. Returns the acknowledged ids."""
    process = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, text=True, bufsize=1)
    acknowledged: list[str] = []
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "READY"
        deadline = time.monotonic() + seconds
        for line in process.stdout:
            if line.startswith("ACK "):
                acknowledged.append(line.split()[1])
            if time.monotonic() >= deadline:
                break
        process.send_signal(signal.SIGKILL)
        # Whatever the pipe still holds was acknowledged before the kill, but for a last line the kill cut short
        # (`ACK ` and part of an id): only whole lines name what was made durable.
        rest, _ = process.communicate(timeout=10)
        acknowledged += [
            line.split()[1] for line in rest.splitlines(keepends=True)
            if line.startswith("ACK ") and line.endswith("\n")
        ]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return acknowledged
