"""`python -m smsgw.bench upstream [--json] [--messages N]`: submit -> DELIVRD at the ESME through an upstream route.

The gateway runs in a child process (SQLite store with synchronous=FULL, as `smsgw demo` has it) with one route,
`via = ["upstream:smsc"]`, and no modems; the upstream SMSC runs in a second child process and answers each
submit_sm at once and sends its DELIVRD receipt right after (hex message_ids, receipted_message_id and the text's
`id:`). The gateway's bind to it has window 100. The load generator (this process, the e2e benchmark's) keeps 100
submit_sm outstanding on one transceiver bind and measures, on the same gateway in the same run:
- durable ingest: submit_sm -> submit_sm_resp, the messages scheduled an hour ahead (not dispatched meanwhile);
- through the upstream: from the first submit_sm to the DELIVRD receipt of the last message at the ESME (each
  costs its accept, the hand-off, the upstream's message_id, the receipt and the ESME's ack: about four group
  commits). Target: >= 0.25 x durable ingest.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import logging
import sys
import tempfile
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Final

import trio

from smsgw.app import GatewayStarted, demo_config, run_gateway
from smsgw.bench.e2e import PASSWORD, SYSTEM_ID, measure, start_process
from smsgw.config import AccountConfig, Config, MessageConfig, RouteConfig, SmppConfig, UpstreamConfig
from smsgw.passwords import hash_password
from smsgw.pdu.constants import CommandId, EsmClass, MessageState
from smsgw.pdu.dlr import DeliveryReceipt, format_receipt
from smsgw.pdu.framing import PduFramer
from smsgw.pdu.smpp import DeliverSm, SubmitSm, SubmitSmResp, decode_pdu, encode_pdu, response_for
from smsgw.pdu.tlv import Tlvs

_WINDOW: Final = 100
_TARGET_RATIO: Final = 0.25
_MAX_PDU: Final = 65536
_SMSC_NAME: Final = "smsc"


async def _serve_smsc(report: Connection) -> None:
    """Binds anyone; answers each submit_sm and sends its receipt in the same write; reports the first bind."""
    ids = itertools.count(0x10000)
    bound = False

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal bound
        framer = PduFramer(_MAX_PDU)
        sequence = itertools.count(1)
        while data := await stream.receive_some(65536):
            out = bytearray()
            for frame in framer.feed(data):
                pdu = decode_pdu(frame)
                if pdu.command_id & 0x80000000:
                    continue  # deliver_sm_resp
                if isinstance(pdu, SubmitSm):
                    message_id = f"{next(ids):x}"
                    out += encode_pdu(SubmitSmResp(sequence_number=pdu.sequence_number, message_id=message_id))
                    text = format_receipt(DeliveryReceipt(message_id, 1, 1, None, None, "DELIVRD", "000", ""))
                    out += encode_pdu(DeliverSm(
                        sequence_number=next(sequence), source_addr=pdu.destination_addr,
                        destination_addr=pdu.source_addr, esm_class=EsmClass.DELIVERY_RECEIPT,
                        short_message=text.encode(),
                        tlvs=Tlvs(receipted_message_id=message_id, message_state=MessageState.DELIVERED),
                    ))
                else:  # bind, enquire_link, unbind
                    out += encode_pdu(response_for(pdu))
                    if pdu.command_id == CommandId.BIND_TRANSCEIVER and not bound:
                        bound = True
                        report.send("bound")
            if out:
                await stream.send_all(out)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    report.send(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


def _smsc_main(report: Connection) -> None:
    logging.basicConfig(level=logging.WARNING)
    trio.run(_serve_smsc, report)


def _gateway_main(smsc_port: int, db_path: str, report: Connection) -> None:
    logging.basicConfig(level=logging.WARNING)
    account = AccountConfig(system_id=SYSTEM_ID, password_hash=hash_password(PASSWORD), throughput_per_s=1e9,
                            throughput_burst=1_000_000)
    upstream = UpstreamConfig(name=_SMSC_NAME, port=smsc_port, system_id="gw", password="gw", window=_WINDOW,
                              throughput_per_s=1e9)
    base = Config(
        smpp=SmppConfig(window=_WINDOW),
        accounts=(account,),
        upstreams=(upstream,),
        routes=(RouteConfig(name="upstream", prefixes=("",), via=(f"upstream:{_SMSC_NAME}",)),),
        messages=MessageConfig(max_in_flight_segments=2 * _WINDOW),
    )
    config = demo_config(base, port=0, db_path=db_path, modem_links=())

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            started: GatewayStarted = await nursery.start(functools.partial(run_gateway, config))
            report.send(started.smpp.port)

    trio.run(run)


@dataclass(frozen=True, slots=True)
class Result:
    messages: int
    window: int
    ingest_per_s: float
    through_upstream_per_s: float
    ratio: float


def _run(messages: int, directory: str) -> Result:
    smsc, port, receiving = start_process(_smsc_main)
    processes = [smsc]
    try:
        gateway, gateway_port, _ = start_process(_gateway_main, port, str(Path(directory) / "bench.db"))
        processes.append(gateway)
        assert isinstance(gateway_port, int)
        if not receiving.poll(60):  # the gateway's bind: before it, the route has nowhere to send
            raise RuntimeError("the gateway did not bind to the SMSC")
        receiving.recv()
        ingest = trio.run(functools.partial(measure, gateway_port, _WINDOW, messages, 2, end_to_end=False))
        through = trio.run(functools.partial(measure, gateway_port, _WINDOW, messages, 2 + messages,
                                             end_to_end=True))
        return Result(messages, _WINDOW, ingest, through, through / ingest)
    finally:
        for process in reversed(processes):
            process.terminate()
            process.join(10)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m smsgw.bench upstream", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--messages", type=int, default=5000, help="messages per measurement (default 5000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="smsgw-bench-") as directory:
        result = _run(args.messages, directory)
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        print("| window | messages | durable ingest msg/s | submit -> upstream -> DELIVRD msg/s | ratio |")
        print("|---:|---:|---:|---:|---:|")
        print(f"| {result.window} | {result.messages} | {result.ingest_per_s:,.0f} | "
              f"{result.through_upstream_per_s:,.0f} | {result.ratio:.2f} |")
    if result.ratio < _TARGET_RATIO:
        print(f"through the upstream {result.ratio:.2f} x durable ingest, below {_TARGET_RATIO}", file=sys.stderr)
    return 0
