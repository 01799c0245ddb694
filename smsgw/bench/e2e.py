"""`python -m smsgw.bench e2e [--json] [--messages N] [--modems 16] [--ingest-only] [--store URL] [--nodes N]`: the
whole gateway, end to end.

The gateway runs in a child process as `smsgw demo` does (SQLite store with synchronous=FULL, the SMPP server,
the scheduler, the real driver and pool), on 16 virtual modems over real ptys with zero network delay that run in
a second child process, as a modem rack is hardware outside the gateway's CPU. The load
generator (this process) encodes its submit_sm before the clock starts, keeps `window` of them outstanding on one
transceiver bind, answers every deliver_sm at once, and measures two rates per window:
- durable ingest: submit_sm -> submit_sm_resp (each response means the message is in the store), next to the
  minimal Trio baseline of the SMPP benchmark (a server that only answers headers) in the same run;
- end to end: from the first submit_sm to the DELIVRD receipt of the last message at the ESME.

`--store postgresql://...` puts the store in PostgreSQL (an existing database; migrated on start), and with
`--nodes N` (ingest only) N gateway processes share it, the first with the modems: the generator keeps `window`
outstanding on one bind per node, and the rate is all messages over the slowest node's time.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Final

import trio

from smsgw.app import GatewayStarted, demo_config, demo_msisdns, run_gateway
# The SMPP benchmark's baseline server, so both benchmarks compare against the same minimal Trio server.
from smsgw.bench.smpp import ONE_HOUR_AHEAD
from smsgw.bench.smpp import server_process_main as smpp_server_main
from smsgw.config import AccountConfig, Config, MessageConfig, NodeConfig, SmppConfig, StoreConfig, VirtualNetworkConfig
from smsgw.modem.virtual.modem import VirtualModem
from smsgw.modem.virtual.network import VirtualNetwork, serve_network
from smsgw.modem.virtual.pty import serve_pty
from smsgw.passwords import hash_password
from smsgw.pdu.constants import CommandId, CommandStatus, MessageState
from smsgw.pdu.framing import PduFramer
from smsgw.pdu.smpp import BindTransceiver, DeliverSm, DeliverSmResp, SubmitSm, decode_pdu, encode_pdu

SYSTEM_ID: Final = "bench"
PASSWORD: Final = "bench"
_WINDOWS: Final = (1, 10, 100)
_INGEST_TARGET_RATIO: Final = 0.20
_E2E_TARGET_PER_S: Final = 500.0
_MAX_PDU: Final = 65536


def _modems_main(count: int, directory: str, report: Connection) -> None:
    """The hardware: `count` virtual modems on real ptys on one virtual network with zero delay, in their own
    process as a modem rack is outside the gateway's CPU."""
    logging.basicConfig(level=logging.WARNING)
    config = VirtualNetworkConfig(delivery_delay_s=0.0, mt_interval_s=0.0, unsolicited_gap_s=0.0)

    async def run() -> None:
        network = VirtualNetwork(config, now=trio.current_time())
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_network, network)
            links = []
            for index, msisdn in enumerate(demo_msisdns(count), start=1):
                modem = VirtualModem(network, msisdn, config)
                links.append((msisdn, await nursery.start(serve_pty, modem, Path(directory) / f"modem{index}")))
            report.send(links)

    trio.run(run)


def gateway_main(
    modem_links: list[tuple[str, Path]], db_path: str, store_url: str, node: str, report: Connection
) -> None:
    """`smsgw demo`'s gateway (SQLite or `store_url`, SMPP, scheduler, driver and pool) on the rack's ptys."""
    logging.basicConfig(level=logging.WARNING)
    account = AccountConfig(
        system_id=SYSTEM_ID,
        password_hash=hash_password(PASSWORD),
        throughput_per_s=1e9,
        throughput_burst=1_000_000,
    )
    base = Config(
        smpp=SmppConfig(window=100),
        accounts=(account,),
        messages=MessageConfig(max_in_flight_segments=4 * max(1, len(modem_links))),
        store=StoreConfig(url=store_url),
        node=NodeConfig(name=node),
    )
    config = demo_config(base, port=0, db_path=db_path, modem_links=modem_links)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            started: GatewayStarted = await nursery.start(functools.partial(run_gateway, config))
            report.send(started.smpp.port)

    trio.run(run)


def start_process(
    target: Callable[..., None], *args: object
) -> tuple[multiprocessing.process.BaseProcess, object, Connection]:
    """A child process running `target(*args, report)`, the first thing it reports, and the pipe of what follows."""
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(target=target, args=(*args, sending), daemon=True)
    process.start()
    if not receiving.poll(60):
        process.terminate()
        raise RuntimeError(f"{target.__name__} did not start")
    return process, receiving.recv(), receiving


@dataclass(frozen=True, slots=True)
class Result:
    server: str
    window: int
    messages: int
    ingest_per_s: float
    e2e_per_s: float | None  # None for the baseline, which sends no receipts


async def measure(port: int, window: int, messages: int, first_sequence: int, *, end_to_end: bool) -> float:
    """Messages per second: submit `messages` with `window` outstanding, until the last submit_sm_resp, or with
    `end_to_end` until the last DELIVRD receipt. Without `end_to_end` the messages are scheduled an hour ahead,
    so ingest is measured alone, not competing with the dispatch to the modems."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        framer = PduFramer(_MAX_PDU)
        await stream.send_all(encode_pdu(BindTransceiver(sequence_number=1, system_id=SYSTEM_ID,
                                                         password=PASSWORD)))
        frames: list[bytes] = []
        while not frames:
            frames = framer.feed(await stream.receive_some(65536))
        if int.from_bytes(frames[0][8:12], "big") != CommandStatus.ESME_ROK:
            raise ConnectionError(f"bind refused: status 0x{int.from_bytes(frames[0][8:12], 'big'):08X}")
        # Encoded before the clock starts, as the SMPP benchmark's generator does: encoding a PDU (~20 us) costs
        # several times what the baseline server spends on one, so encoding here timed the generator instead.
        submissions = [
            encode_pdu(SubmitSm(sequence_number=first_sequence + n,
                                destination_addr=f"44770012{n % 10000:04d}",  # any other number: delivered, no MO
                                dest_addr_ton=1, dest_addr_npi=1, registered_delivery=1 if end_to_end else 0,
                                schedule_delivery_time="" if end_to_end else ONE_HOUR_AHEAD,
                                short_message=b"Benchmark message of a typical length."))
            for n in range(messages)
        ]
        submitted = answered = delivered = 0
        start = time.perf_counter()
        done = 0.0
        out = bytearray()
        while answered < messages or (end_to_end and delivered < messages):
            if submitted < messages and submitted - answered < window:
                more = min(messages, answered + window)
                out += b"".join(submissions[submitted:more])
                submitted = more
            if out:
                await stream.send_all(out)
                out = bytearray()
            data = await stream.receive_some(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            for frame in framer.feed(data):
                command_id = int.from_bytes(frame[4:8], "big")
                if command_id == CommandId.SUBMIT_SM_RESP:
                    status = int.from_bytes(frame[8:12], "big")
                    if status != CommandStatus.ESME_ROK:
                        raise ConnectionError(f"submit_sm refused: status 0x{status:08X}")
                    answered += 1
                    if answered == messages and not end_to_end:
                        done = time.perf_counter()
                elif command_id == CommandId.DELIVER_SM:
                    receipt = decode_pdu(frame)
                    assert isinstance(receipt, DeliverSm)
                    out += encode_pdu(DeliverSmResp(sequence_number=receipt.sequence_number))
                    if receipt.tlvs.message_state == MessageState.DELIVERED:
                        delivered += 1
                        if delivered == messages:
                            done = time.perf_counter()
        if out:
            await stream.send_all(out)
    return messages / (done - start)


async def measure_nodes(
    ports: list[int], window: int, messages: int, first_sequence: int, *, end_to_end: bool
) -> float:
    """`measure` on every node at once, `messages` split between them: all of them over the slowest one's time."""
    share = messages // len(ports)
    seconds: list[float] = []

    async def one(index: int, port: int) -> None:
        seconds.append(share / await measure(port, window, share, first_sequence + index * share,
                                             end_to_end=end_to_end))

    async with trio.open_nursery() as nursery:
        for index, port in enumerate(ports):
            nursery.start_soon(one, index, port)
    return share * len(ports) / max(seconds)


def _run_against(
    server: str, messages: int, modems: int, directory: str, *, end_to_end: bool, store_url: str = "", nodes: int = 1
) -> list[Result]:
    processes: list[multiprocessing.process.BaseProcess] = []
    try:
        ports: list[int] = []
        if server == "smsgw":
            rack, links, _ = start_process(_modems_main, modems, directory)
            processes.append(rack)
            for node in range(nodes):  # the first node drives the modems; the others only take submissions
                gateway, port, _ = start_process(gateway_main, links if node == 0 else [],
                                                 str(Path(directory) / f"bench{node}.db"), store_url, f"node{node}")
                processes.append(gateway)
                assert isinstance(port, int)
                ports.append(port)
        else:
            gateway, port, _ = start_process(smpp_server_main, "baseline")
            processes.append(gateway)
            assert isinstance(port, int)
            ports.append(port)
        results = []
        sequence = 2
        for window in _WINDOWS:
            count = messages // 10 if window == 1 else messages  # window 1 is bound by round trips
            ingest = trio.run(functools.partial(measure_nodes, ports, window, count, sequence, end_to_end=False))
            sequence += count
            e2e = None
            if server == "smsgw" and end_to_end:
                e2e = trio.run(functools.partial(measure_nodes, ports, window, count, sequence, end_to_end=True))
                sequence += count
            results.append(Result(server, window, count, ingest, e2e))
        return results
    finally:
        for process in reversed(processes):
            process.terminate()
            process.join(10)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m smsgw.bench e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--messages", type=int, default=5000, help="messages per window (default 5000)")
    parser.add_argument("--modems", type=int, default=16, help="virtual modems (default 16)")
    parser.add_argument("--ingest-only", action="store_true", help="measure durable ingest alone (no end to end)")
    parser.add_argument("--store", default="", metavar="URL", help="postgresql://... (default: SQLite in a temp dir)")
    parser.add_argument("--nodes", type=int, default=1, help="gateway processes sharing --store (ingest only)")
    args = parser.parse_args(argv)
    end_to_end = not args.ingest_only
    if args.nodes < 1 or (args.nodes > 1 and not (args.store and args.ingest_only)):
        parser.error("--nodes above 1 needs --store and --ingest-only")
    with tempfile.TemporaryDirectory(prefix="smsgw-bench-") as directory:
        results = _run_against(
            "baseline", args.messages, args.modems, directory, end_to_end=end_to_end
        ) + _run_against("smsgw", args.messages, args.modems, directory, end_to_end=end_to_end,
                         store_url=args.store, nodes=args.nodes)
    baseline = {r.window: r.ingest_per_s for r in results if r.server == "baseline"}
    ratios = {r.window: r.ingest_per_s / baseline[r.window] for r in results if r.server == "smsgw"}
    if args.json:
        print(json.dumps({"results": [asdict(r) for r in results],
                          "ingest_ratio_vs_baseline": {str(k): v for k, v in ratios.items()}}, indent=2))
    else:
        print("| server | window | messages | durable ingest msg/s | ratio vs baseline | submit -> DELIVRD msg/s |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in results:
            ratio = f"{ratios[r.window]:.2f}" if r.server == "smsgw" else ""
            e2e = f"{r.e2e_per_s:,.0f}" if r.e2e_per_s is not None else ""
            print(f"| {r.server} | {r.window} | {r.messages} | {r.ingest_per_s:,.0f} | {ratio} | {e2e} |")
    if ratios[100] < _INGEST_TARGET_RATIO:
        print(f"durable ingest at window 100 is {ratios[100]:.2f} x baseline, below {_INGEST_TARGET_RATIO}",
              file=sys.stderr)
    best_e2e = max(r.e2e_per_s or 0.0 for r in results)
    if end_to_end and best_e2e < _E2E_TARGET_PER_S:
        print(f"end-to-end {best_e2e:,.0f}/s is below {_E2E_TARGET_PER_S:,.0f}/s", file=sys.stderr)
    return 0
