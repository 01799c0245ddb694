"""Benchmarks: `python -m smsgw.bench NAME [--json]`; each NAME is a module `smsgw.bench.NAME` with `main(argv)`."""
