"""`python -m smsgw.bench smpp [--json] [--messages N] [--durable]`: submit_sm -> submit_sm_resp through the SMPP
server.

The server runs in a child process, once as the full `serve_smpp` with an in-memory backend that accepts every
submission (`submit_many` per read, as the scheduler's group commit is called), once as a minimal Trio baseline
that reads headers and answers with a response and nothing else. `--durable` adds two servers that answer only
after a commit: `sqlite-row`, the baseline plus a group-commit writer thread that stores one row per message in
SQLite (synchronous=FULL), the least a durable Python server does; and `smsgw-durable`, the whole gateway
(`bench e2e`'s, without modems) on a SQLite file, every message scheduled an hour ahead so dispatch does not
compete.
The load generator (this process) pre-encodes its PDUs, patches only the sequence number, parses only response
headers, and keeps `window` requests outstanding on each of 1 or 4 connections. Reported: messages per second,
p50/p99 latency, and at each window the full server's throughput as a fraction of the baseline's.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import multiprocessing
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Final

import trio

from smsgw.config import AccountConfig, Config, SmppConfig
from smsgw.passwords import hash_password
from smsgw.pdu.constants import CommandId, CommandStatus, RESPONSE_BIT
from smsgw.pdu.smpp import BindTransmitter, SubmitMulti, SubmitSm, encode_pdu
from smsgw.smpp_server.backend import BackendError, MessageStatus, MultiResult, OutboundItem
from smsgw.smpp_server.server import SmppListeners, serve_smpp
from smsgw.smpp_server.throttle import Throttle

_HEADER: Final = struct.Struct(">IIII")
_SYSTEM_ID: Final = "bench"
_PASSWORD: Final = "bench"
_WINDOWS: Final = (1, 10, 100)
_CONNECTIONS: Final = (1, 4)
_TARGET_RATIO: Final = 0.40
_DURABLE_TARGET_RATIO: Final = 0.20  # issue 20: durable ingest against the bare Trio server
# SMPP relative time: the durable servers keep the messages for later, so no dispatch competes with the intake.
ONE_HOUR_AHEAD: Final = "000000010000000R"
_THROTTLED: Final = BackendError("throughput limit reached", command_status=CommandStatus.ESME_RTHROTTLED)


# ---- servers (child process) -------------------------------------------------------------------------------


class AcceptAllBackend:
    """Accepts every submission the throttle lets through at once with a new message_id, each as one segment;
    never has receipts to push."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    async def submit(self, account: str, pdu: object) -> str:
        return f"{next(self._ids):x}"

    async def submit_many(self, account: str, pdus: Sequence[object], throttle: Throttle) -> list[str | BackendError]:
        ids = self._ids
        return [f"{next(ids):x}" if ok else _THROTTLED for ok in throttle([1] * len(pdus))]

    async def submit_multi(self, account: str, pdu: SubmitMulti, throttle: Throttle) -> MultiResult:
        if not throttle([len(pdu.destinations)])[0]:
            raise BackendError(str(_THROTTLED), command_status=_THROTTLED.command_status)
        return MultiResult(f"{next(self._ids):x}")

    async def query(self, account: str, message_id: str, source_addr: str) -> MessageStatus:
        return MessageStatus(message_id, 1, None, 0)

    async def cancel(self, account: str, pdu: object) -> None:
        return None

    async def replace(self, account: str, pdu: object) -> None:
        return None

    async def next_outbound(self, account: str) -> OutboundItem:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def acknowledge(self, item_id: str) -> None:
        return None

    async def release(self, item_id: str) -> None:
        return None


def _answer_frames(buffer: bytearray) -> tuple[bytearray, list[bytes]]:
    """The baseline's work on one read: frame by the header's command_length, a header-only response to each
    request (a message_id for submit_sm); also the submit_sm bodies, for a server that stores them."""
    out = bytearray()
    bodies: list[bytes] = []
    while len(buffer) >= 16:
        length, command_id, _, sequence = _HEADER.unpack_from(buffer)
        if len(buffer) < length:
            break
        if command_id == CommandId.SUBMIT_SM:
            bodies.append(bytes(buffer[16:length]))
        del buffer[:length]
        body = b"1\x00" if command_id in (CommandId.SUBMIT_SM, CommandId.BIND_TRANSMITTER) else b""
        out += _HEADER.pack(16 + len(body), command_id | RESPONSE_BIT, 0, sequence) + body
    return out, bodies


class _RowWriter:
    """Group commit at its plainest: one thread commits, as one transaction of one row per message, whatever all
    connections handed in since its last commit (SQLite, WAL, synchronous=FULL)."""

    def __init__(self, path: Path) -> None:
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode = WAL")
        self._connection.execute("PRAGMA synchronous = FULL")
        self._connection.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        self._batch: list[tuple[list[bytes], trio.Event]] = []
        self._ready = trio.Event()

    async def store(self, bodies: list[bytes]) -> None:
        """Returns once `bodies` are committed."""
        committed = trio.Event()
        self._batch.append((bodies, committed))
        self._ready.set()
        await committed.wait()

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready = trio.Event()
            batch, self._batch = self._batch, []
            await trio.to_thread.run_sync(self._commit, [(body,) for bodies, _ in batch for body in bodies])
            for _, committed in batch:
                committed.set()

    def _commit(self, rows: list[tuple[bytes]]) -> None:
        self._connection.execute("BEGIN")
        self._connection.executemany("INSERT INTO messages (body) VALUES (?)", rows)
        self._connection.execute("COMMIT")


async def _serve_baseline(report: Connection, writer: _RowWriter | None = None) -> None:
    """Answer each read's requests with one write; with `writer`, only after their submit_sm are committed."""

    async def handle(stream: trio.SocketStream) -> None:
        buffer = bytearray()
        while data := await stream.receive_some(65536):
            buffer += data
            out, bodies = _answer_frames(buffer)
            if writer is not None and bodies:
                await writer.store(bodies)
            await stream.send_all(out)

    async with trio.open_nursery() as nursery:
        if writer is not None:
            nursery.start_soon(writer.run)
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        report.send(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(handle, listeners)


async def _serve_smsgw(report: Connection) -> None:
    account = AccountConfig(
        system_id=_SYSTEM_ID,
        password_hash=hash_password(_PASSWORD),
        max_binds=16,
        throughput_per_s=1e9,
        throughput_burst=1_000_000,
    )
    config = Config(smpp=SmppConfig(port=0, max_pending_requests=256), accounts=(account,))
    async with trio.open_nursery() as nursery:
        listeners: SmppListeners = await nursery.start(serve_smpp, config, AcceptAllBackend())
        report.send(listeners.port)


def server_process_main(kind: str, report: Connection) -> None:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="smsgw-bench-") as directory:
        if kind == "baseline":
            trio.run(_serve_baseline, report)
        elif kind == "sqlite-row":
            trio.run(_serve_baseline, report, _RowWriter(Path(directory) / "rows.db"))
        elif kind == "smsgw-durable":
            # Imported here: the e2e benchmark imports this module for its baseline server.
            from smsgw.bench.e2e import gateway_main

            gateway_main([], str(Path(directory) / "bench.db"), "", "bench", report)
        else:
            trio.run(_serve_smsgw, report)


# ---- load generator ----------------------------------------------------------------------------------------


async def _read_frames(stream: trio.SocketStream, buffer: bytearray) -> list[tuple[int, int, int]]:
    """At least one complete PDU's (command_id, command_status, sequence_number); only headers are parsed."""
    frames: list[tuple[int, int, int]] = []
    while not frames:
        data = await stream.receive_some(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        buffer += data
        while len(buffer) >= 16:
            length, command_id, status, sequence = _HEADER.unpack_from(buffer)
            if len(buffer) < length:
                break
            del buffer[:length]
            frames.append((command_id, status, sequence))
    return frames


async def _client(port: int, window: int, count: int, latencies: list[float]) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        buffer = bytearray()
        await stream.send_all(encode_pdu(BindTransmitter(sequence_number=1, system_id=_SYSTEM_ID, password=_PASSWORD)))
        ((command_id, status, _),) = await _read_frames(stream, buffer)
        if command_id != CommandId.BIND_TRANSMITTER_RESP or status != CommandStatus.ESME_ROK:
            raise ConnectionError(f"bind refused: command_id=0x{command_id:08X} status=0x{status:08X}")
        template = bytearray(
            encode_pdu(
                SubmitSm(
                    sequence_number=1,
                    source_addr="447700900001",
                    source_addr_ton=1,
                    source_addr_npi=1,
                    destination_addr="447700900002",
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    schedule_delivery_time=ONE_HOUR_AHEAD,
                    short_message=b"Benchmark message of a typical length, about sixty characters.",
                )
            )
        )
        sent_at: dict[int, float] = {}
        next_sequence = 2
        done = 0

        async def send(n: int) -> None:
            nonlocal next_sequence
            out = bytearray()
            now = time.perf_counter()
            for _ in range(n):
                struct.pack_into(">I", template, 12, next_sequence)
                out += template
                sent_at[next_sequence] = now
                next_sequence += 1
            await stream.send_all(out)

        await send(min(window, count))
        while done < count:
            frames = await _read_frames(stream, buffer)
            now = time.perf_counter()
            for command_id, status, sequence in frames:
                if command_id != CommandId.SUBMIT_SM_RESP or status != CommandStatus.ESME_ROK:
                    raise ConnectionError(f"submit failed: command_id=0x{command_id:08X} status=0x{status:08X}")
                latencies.append(now - sent_at.pop(sequence))
            done += len(frames)
            await send(min(len(frames), count - done - len(sent_at)))


@dataclass(frozen=True, slots=True)
class Result:
    server: str
    connections: int
    window: int
    messages: int
    per_second: float
    p50_ms: float
    p99_ms: float


async def _measure(server: str, port: int, connections: int, window: int, messages: int) -> Result:
    latencies: list[float] = []
    per_connection = messages // connections
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(_client, port, window, per_connection, latencies)
    elapsed = time.perf_counter() - start
    quantiles = statistics.quantiles(latencies, n=100)
    return Result(server, connections, window, len(latencies), len(latencies) / elapsed,
                  quantiles[49] * 1000, quantiles[98] * 1000)


@contextmanager
def _server_process(kind: str) -> Iterator[int]:
    """A server of `kind` in a child process, so it does not share an interpreter with the load generator."""
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(target=server_process_main, args=(kind, sending), daemon=True)
    process.start()
    try:
        if not receiving.poll(30):
            raise RuntimeError(f"{kind} server did not start")
        yield receiving.recv()
    finally:
        process.terminate()
        process.join(10)


def _run(messages: int, rounds: int, servers: Sequence[str]) -> list[Result]:
    """All servers run at once; each configuration is measured `rounds` times alternating between them, and the
    best round of each is kept, so a burst of load from elsewhere on the machine hits all alike."""
    results: list[Result] = []
    with contextlib.ExitStack() as stack:
        ports = {kind: stack.enter_context(_server_process(kind)) for kind in servers}
        for connections in _CONNECTIONS:
            for window in _WINDOWS:
                # Window 1 is bound by round trips; fewer messages keep the run short.
                count = messages // 4 if window == 1 else messages
                best: dict[str, Result] = {}
                for _ in range(rounds):
                    for kind, port in ports.items():
                        result = trio.run(_measure, kind, port, connections, window, count)
                        if kind not in best or result.per_second > best[kind].per_second:
                            best[kind] = result
                results += best.values()
    return results


def _ratio_key(result: Result) -> str:
    # The in-memory server's keys stay "CxW" as before `--durable`; the others name their server.
    where = f"{result.connections}x{result.window}"
    return where if result.server == "smsgw" else f"{result.server}:{where}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m smsgw.bench smpp", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--messages", type=int, default=20000, help="submit_sm per measurement (default 20000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per configuration, best kept (default 3)")
    parser.add_argument("--durable", action="store_true",
                        help="also measure servers that answer after a commit: sqlite-row and smsgw-durable")
    args = parser.parse_args(argv)
    servers = ("baseline", "smsgw", *(("sqlite-row", "smsgw-durable") if args.durable else ()))
    results = _run(args.messages, args.rounds, servers)
    baseline = {(r.connections, r.window): r.per_second for r in results if r.server == "baseline"}
    ratios = {
        _ratio_key(r): r.per_second / baseline[(r.connections, r.window)] for r in results if r.server != "baseline"
    }
    if args.json:
        print(json.dumps({"results": [asdict(r) for r in results], "ratio_vs_baseline": ratios}, indent=2))
    else:
        print("| server | connections | window | msg/s | p50 ms | p99 ms | ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in results:
            ratio = ratios.get(_ratio_key(r)) if r.server != "baseline" else None
            print(f"| {r.server} | {r.connections} | {r.window} | {r.per_second:,.0f} | {r.p50_ms:.2f} | "
                  f"{r.p99_ms:.2f} | {'' if ratio is None else f'{ratio:.2f}'} |")
    worst = min(v for k, v in ratios.items() if k.endswith("x100") and ":" not in k)
    if worst < _TARGET_RATIO:
        print(f"window 100 ratio {worst:.2f} below target {_TARGET_RATIO}", file=sys.stderr)
    if args.durable:
        durable = min(v for k, v in ratios.items() if k.startswith("smsgw-durable:") and k.endswith("x100"))
        if durable < _DURABLE_TARGET_RATIO:
            print(f"durable window 100 ratio {durable:.2f} below target {_DURABLE_TARGET_RATIO}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
