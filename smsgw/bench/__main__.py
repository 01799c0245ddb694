"""Dispatch `python -m smsgw.bench NAME [args]` to `smsgw.bench.NAME.main(args)`."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import smsgw.bench


def _available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(smsgw.bench.__path__) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    names = _available()
    if not argv or argv[0] in {"-h", "--help"}:
        print(f"usage: python -m smsgw.bench {{{','.join(names + ['all'])}}} [--json]")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "all":
        return max((importlib.import_module(f"smsgw.bench.{n}").main(rest) for n in names), default=0)
    if name not in names:
        print(f"unknown benchmark {name!r}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    result: int = importlib.import_module(f"smsgw.bench.{name}").main(rest)
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
