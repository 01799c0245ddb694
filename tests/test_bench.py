"""Each benchmark runs end to end on a small load and reports rates (their values are for BENCHMARKS.md, not tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

SMALL_RUNS = {
    "codec": ["--seconds", "0.02"],
    "modem": ["--messages", "40", "--rounds", "1"],
    "store": ["--messages", "50"],
    "smpp": ["--messages", "400", "--rounds", "1", "--durable"],
    "e2e": ["--messages", "100", "--modems", "2"],
    "http": ["--messages", "200", "--clients", "4"],
    "fuzz": ["--inputs", "200", "--seed", "1"],
    "upstream": ["--messages", "100"],
}


def _rates(report: object) -> Iterator[tuple[str, object]]:
    """Every rate (`..._per_s`, `per_second`) in a benchmark's JSON report, wherever it is nested."""
    if isinstance(report, dict):
        for key, value in report.items():
            if key.endswith(("per_s", "per_second")) and value is not None:
                yield key, value
            yield from _rates(value)
    elif isinstance(report, list):
        for item in report:
            yield from _rates(item)


@pytest.mark.parametrize("name", sorted(SMALL_RUNS))
def test_benchmark_runs_and_reports_rates(name: str) -> None:
    # A session of its own, so a hung run takes its gateway and modem children with it when it is killed.
    with subprocess.Popen(
        [sys.executable, "-m", "smsgw.bench", name, "--json", *SMALL_RUNS[name]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as run:
        try:
            stdout, stderr = run.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            raise
    assert run.returncode in (0, 1), stderr  # 1: a target missed, which a small run says nothing about
    rates = list(_rates(json.loads(stdout)))
    assert rates, stdout
    assert all(isinstance(value, float | int) and value > 0 for _, value in rates), rates
