"""`python -m smsgw.bench http [--json] [--messages N] [--clients 50]`: durable ingest through the REST API.

The gateway runs in a child process as `smsgw demo` does (SQLite with synchronous=FULL, SMPP and HTTP, the
scheduler, the real driver and pool on virtual modems in a second child process), as in the e2e benchmark. This
process is the load: `clients` concurrent HTTP/1.1 keep-alive connections (httpx) POST /api/v1/messages with Basic
auth, with 100 numbers a request and with 1, each request's body encoded before the clock starts; each 201 means
its messages are in the store. The messages are scheduled an hour ahead, so ingest is measured alone, not
competing with the dispatch to the modems. Reported: messages/s and per-request p50/p99 latency, next to the SMPP
durable ingest (submit_sm at window 100, the e2e benchmark's generator) of the same gateway in the same run.
Targets: 100 a request >= 0.5 x the SMPP ingest; 1 a request p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Final

import httpx
import trio

from smsgw.app import GatewayStarted, demo_config, run_gateway
# The e2e benchmark's rack, child-process starter and SMPP generator: the SMPP ingest here is measured the same way.
from smsgw.bench.e2e import _modems_main, start_process
from smsgw.bench.e2e import measure as measure_smpp
from smsgw.config import AccountConfig, Config, MessageConfig, SmppConfig
from smsgw.passwords import hash_password

_SYSTEM_ID: Final = "bench"
_PASSWORD: Final = "bench"
_BATCH: Final = 100
_SMPP_WINDOW: Final = 100
_MODEMS: Final = 2  # the gateway needs a READY route; ingest sends nothing to them (scheduled an hour ahead)
_BATCH_TARGET_RATIO: Final = 0.5
_SINGLE_P99_TARGET_MS: Final = 20.0


def _gateway_main(modem_links: list[tuple[str, Path]], db_path: str, report: Connection) -> None:
    logging.basicConfig(level=logging.WARNING)
    account = AccountConfig(
        system_id=_SYSTEM_ID, password_hash=hash_password(_PASSWORD), throughput_per_s=1e9, throughput_burst=1_000_000
    )
    base = Config(smpp=SmppConfig(window=_SMPP_WINDOW), accounts=(account,), messages=MessageConfig())
    config = demo_config(base, port=0, db_path=db_path, modem_links=modem_links, http_port=0)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            started: GatewayStarted = await nursery.start(functools.partial(run_gateway, config))
            assert started.http is not None
            report.send((started.smpp.port, started.http.url))

    trio.run(run)


@dataclass(frozen=True, slots=True)
class Result:
    interface: str  # "http" or "smpp"
    numbers_per_request: int  # SMPP: 1 (one submit_sm a message)
    concurrency: int  # HTTP clients, or the SMPP window
    messages: int
    messages_per_s: float
    p50_ms: float | None
    p99_ms: float | None


async def _measure_http(url: str, per_request: int, clients: int, messages: int) -> Result:
    schedule = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    requests = messages // per_request
    bodies = [
        json.dumps({"to": [f"44770012{(n * per_request + i) % 10000:04d}" for i in range(per_request)],
                    "text": "Benchmark message of a typical length.", "schedule_at": schedule}).encode()
        for n in range(requests)
    ]
    headers = {"Authorization": "Basic " + base64.b64encode(f"{_SYSTEM_ID}:{_PASSWORD}".encode()).decode(),
               "Content-Type": "application/json"}
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, headers=headers, timeout=60) as client:
        # Warm up: the connections, and the password check (scrypt once, then cached by the gateway).
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(client.get, "/api/v1/balance")
        queue = iter(bodies)

        async def worker() -> None:
            for body in queue:
                started = time.perf_counter()
                response = await client.post("/api/v1/messages", content=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 201:
                    raise RuntimeError(f"POST answered {response.status_code}: {response.text[:200]}")

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(worker)
        elapsed = time.perf_counter() - start
    cuts = statistics.quantiles(latencies, n=100)
    return Result("http", per_request, clients, requests * per_request, requests * per_request / elapsed,
                  cuts[49] * 1000, cuts[98] * 1000)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m smsgw.bench http", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--messages", type=int, default=20000, help="messages per measurement (default 20000)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent HTTP clients (default 50)")
    args = parser.parse_args(argv)
    single_messages = max(args.clients * 2, args.messages // 5)  # one POST each: fewer, as each costs a round trip
    with tempfile.TemporaryDirectory(prefix="smsgw-bench-") as directory:
        rack, links, _ = start_process(_modems_main, _MODEMS, directory)
        try:
            gateway, listening, _ = start_process(_gateway_main, links, str(Path(directory) / "bench.db"))
            assert isinstance(listening, tuple)
            smpp_port, url = listening
            try:
                smpp = trio.run(functools.partial(measure_smpp, smpp_port, _SMPP_WINDOW, args.messages, 2,
                                                  end_to_end=False))
                results = [
                    Result("smpp", 1, _SMPP_WINDOW, args.messages, smpp, None, None),
                    trio.run(_measure_http, url, _BATCH, args.clients, args.messages),
                    trio.run(_measure_http, url, 1, args.clients, single_messages),
                ]
            finally:
                gateway.terminate()
                gateway.join(10)
        finally:
            rack.terminate()
            rack.join(10)
    _, batch, single = results
    ratio = batch.messages_per_s / smpp
    if args.json:
        print(json.dumps({"results": [asdict(r) for r in results], "batch_ratio_vs_smpp": ratio}, indent=2))
    else:
        print("| interface | numbers/request | concurrency | messages | msg/s | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in results:
            p50 = "" if r.p50_ms is None else f"{r.p50_ms:.1f}"
            p99 = "" if r.p99_ms is None else f"{r.p99_ms:.1f}"
            print(f"| {r.interface} | {r.numbers_per_request} | {r.concurrency} | {r.messages} | "
                  f"{r.messages_per_s:,.0f} | {p50} | {p99} |")
        print(f"100 a request: {ratio:.2f} x the SMPP durable ingest")
    missed = False
    if ratio < _BATCH_TARGET_RATIO:
        print(f"100 a request is {ratio:.2f} x SMPP ingest, below {_BATCH_TARGET_RATIO}", file=sys.stderr)
        missed = True
    assert single.p99_ms is not None
    if single.p99_ms > _SINGLE_P99_TARGET_MS:
        print(f"1 a request p99 {single.p99_ms:.1f} ms is above {_SINGLE_P99_TARGET_MS} ms", file=sys.stderr)
        missed = True
    return 1 if missed else 0
