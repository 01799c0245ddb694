"""Benchmarks: `python -m smsgw.bench NAME [--json]`; each NAME is a module `smsgw.bench.NAME` with `main(argv)`."""

from __future__ import annotations

import platform


def cpu_model() -> str:
    """The CPU model name for benchmark records (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
