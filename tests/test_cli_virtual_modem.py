"""`smsgw virtual-modem` as a real process: started in the background by a shell (SIGINT ignored, as `&` does) it
still stops on SIGINT, and SIGTERM stops it too; either way its symlink is removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)


def _start(link: Path) -> subprocess.Popen[str]:
    def as_a_background_job() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    process = subprocess.Popen(
        [sys.executable, "-m", "smsgw", "virtual-modem", "--link", str(link)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=as_a_background_job,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert process.stdout is not None
    for line in process.stdout:  # log lines first, then the one saying where it listens
        if line.startswith("virtual modem 447700900001 on "):
            break
    else:
        raise AssertionError("the virtual modem never said where it listens")
    assert link.is_symlink()
    return process


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT-in-background", "SIGTERM"])
def test_virtual_modem_stops_on_the_signal_and_removes_its_link(tmp_path: Path, sig: signal.Signals) -> None:
    link = tmp_path / "modem"
    process = _start(link)
    try:
        process.send_signal(sig)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()
    assert not link.exists() and not link.is_symlink()
