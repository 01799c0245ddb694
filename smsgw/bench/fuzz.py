"""`python -m smsgw.bench fuzz [--json] [--inputs N] [--seed S] [--concurrency C]`: fuzzed PDUs against the server.

`serve_smpp` (with the bench's accept-all backend) listens on 127.0.0.1 in this process. One good ESME binds and
keeps submitting, each answer checked, while `concurrency` fuzz connections at a time each send one input: random
bytes and mutations of valid PDUs (flipped octets, truncation, false command_length, other command_id, appended
garbage), half of them after a valid bind, then an enquire_link and their EOF; every PDU the server answers must
decode. A failure is: an answer that does not decode, the good session refused or cut off, or anything the server
logs at ERROR (a task that crashed is logged there with its traceback). The suite runs the same on a few hundred
inputs (tests/smpp_server/test_fuzz.py); reported here: inputs per second and every failure, reproducible by seed.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import random
import struct
import time
from dataclasses import dataclass, field, replace
from typing import Final

import trio

from smsgw.config import AccountConfig, Config, SmppConfig
from smsgw.pdu.constants import CommandId, CommandStatus
from smsgw.pdu.errors import PduError
from smsgw.pdu.framing import PduFramer
from smsgw.pdu.smpp import (
    BindTransceiver,
    BindTransmitter,
    CancelSm,
    DataSm,
    DeliverSmResp,
    EnquireLink,
    GenericNack,
    Outbind,
    QuerySm,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitSm,
    Unbind,
    decode_pdu,
    encode_pdu,
)
from smsgw.pdu.tlv import Tlvs
from smsgw.smpp_server.server import SmppListeners, serve_smpp

from smsgw.bench.smpp import AcceptAllBackend

SYSTEM_ID: Final = "fuzz"
PASSWORD: Final = "fuzz"
_MUTATIONS: Final = ("flip", "truncate", "length", "command_id", "append")
_HEADER: Final = struct.Struct(">IIII")
_PROBE_SEQUENCE: Final = 0x7FFFFFFE
_SUBMIT: Final = SubmitSm(
    sequence_number=0,
    source_addr="447700900001",
    source_addr_ton=1,
    source_addr_npi=1,
    destination_addr="447700900002",
    dest_addr_ton=1,
    dest_addr_npi=1,
    short_message=b"hello",
)


def seed_pdus(system_id: str, password: str) -> list[bytes]:
    """Valid PDUs of every kind an ESME sends (and some it should not) to mutate; the first is a good bind."""
    return [
        encode_pdu(pdu)
        for pdu in (
            BindTransmitter(sequence_number=1, system_id=system_id, password=password),
            BindTransceiver(sequence_number=1, system_id=system_id, password="nope"),
            replace(_SUBMIT, sequence_number=2),
            replace(_SUBMIT, sequence_number=3, short_message=b"", tlvs=Tlvs(message_payload=b"x" * 300)),
            SubmitMulti(sequence_number=4, destinations=(SmeAddress(1, 1, "447700900002"),), short_message=b"m"),
            DataSm(sequence_number=5, destination_addr="447700900002", tlvs=Tlvs(message_payload=b"d")),
            QuerySm(sequence_number=6, message_id="m1"),
            CancelSm(sequence_number=7, message_id="m1"),
            ReplaceSm(sequence_number=8, message_id="m1", short_message=b"r"),
            DeliverSmResp(sequence_number=9),
            GenericNack(sequence_number=10),
            Outbind(sequence_number=11, system_id="x"),
            EnquireLink(sequence_number=12),
            Unbind(sequence_number=13),
        )
    ]


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    """One of `seeds` with 0-4 mutations."""
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(0, 4)):
        match rng.choice(_MUTATIONS):
            case "flip" if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            case "truncate":
                del data[rng.randint(0, len(data)) :]
            case "length" if len(data) >= 4:
                length = rng.choice([0, 15, 16, len(data) - 1, len(data) + 3, 0xFFFFFFFF])
                struct.pack_into(">I", data, 0, max(0, length))
            case "command_id" if len(data) >= 8:
                struct.pack_into(">I", data, 4, rng.choice([*map(int, CommandId), 0x999, 0x80000999]))
            case "append":
                data += rng.randbytes(rng.randint(0, 40))
    return bytes(data)


def fuzz_input(rng: random.Random, seeds: list[bytes]) -> list[bytes]:
    """1-4 chunks, each a mutated PDU or random bytes."""
    return [
        mutate(rng, seeds) if rng.random() < 0.75 else rng.randbytes(rng.randint(0, 200))
        for _ in range(rng.randint(1, 4))
    ]


def _cheap_hash(password: str) -> str:
    """A hash in `smsgw.passwords`' format with scrypt's smallest cost: every mutated bind with a wrong password
    would otherwise cost a full scrypt run, and the fuzz would measure that instead of the protocol."""
    salt = b"fuzz-salt-16byte"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2, r=1, p=1, dklen=32)
    return f"scrypt$2$1$1${salt.hex()}${digest.hex()}"


def fuzz_config(inputs: int) -> Config:
    """A server for a fuzz from one address: no bind delays or lockouts, room for every connection."""
    account = AccountConfig(
        system_id=SYSTEM_ID,
        password_hash=_cheap_hash(PASSWORD),
        max_binds=1_000_000,
        throughput_per_s=1e9,
        throughput_burst=1_000_000,
    )
    smpp = SmppConfig(
        port=0,
        bind_failure_delay_base_s=0.0,
        bind_failure_delay_max_s=0.0,
        bind_lockout_failures=inputs + 1,
        bind_lockout_address_failures=inputs + 1,
        max_connections_per_address=1_000_000,
        max_connections=1_000_000,
        max_password_checks=1_000_000,
    )
    return Config(smpp=smpp, accounts=(account,))


@dataclass(slots=True)
class FuzzReport:
    inputs: int = 0
    answers: int = 0  # PDUs the server sent to fuzz connections (each decoded)
    good_submits: int = 0  # submit_sm the good session got ESME_ROK for
    failures: list[str] = field(default_factory=list)


async def _read_pdus(stream: trio.SocketStream, framer: PduFramer) -> list[bytes] | None:
    """The next complete PDUs; None at EOF."""
    while True:
        data = await stream.receive_some(65536)
        if not data:
            return None
        frames = framer.feed(bytes(data))
        if frames:
            return frames


async def _good_session(
    port: int, report: FuzzReport, stop: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Bind (started: then the fuzz may begin; its binds from the same address would take the address's password
    check), then submit one at a time until `stop`; every answer must be submit_sm_resp OK for that request."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        framer = PduFramer(1 << 20)
        await stream.send_all(encode_pdu(BindTransmitter(sequence_number=1, system_id=SYSTEM_ID, password=PASSWORD)))
        frames = await _read_pdus(stream, framer)
        task_status.started()
        if frames is None or decode_pdu(frames[0]).command_status != CommandStatus.ESME_ROK:
            report.failures.append("good session: bind refused or closed")
            return
        sequence = 1
        while not stop.is_set():
            sequence += 1
            await stream.send_all(encode_pdu(replace(_SUBMIT, sequence_number=sequence)))
            answered = False
            while not answered:  # an enquire_link from the server may come first
                frames = await _read_pdus(stream, framer)
                if frames is None:
                    report.failures.append(f"good session: closed by the server after {report.good_submits} submits")
                    return
                for pdu in map(decode_pdu, frames):
                    if pdu.command_id == CommandId.ENQUIRE_LINK:
                        await stream.send_all(_HEADER.pack(16, CommandId.ENQUIRE_LINK_RESP, 0, pdu.sequence_number))
                    elif (pdu.command_id, pdu.command_status, pdu.sequence_number) == (
                        CommandId.SUBMIT_SM_RESP, CommandStatus.ESME_ROK, sequence
                    ):
                        report.good_submits += 1
                        answered = True
                    else:
                        report.failures.append(f"good session: unexpected answer {pdu!r}")
                        return


async def _fuzz_connection(port: int, chunks: list[bytes], bind_first: bool, bind: bytes, report: FuzzReport) -> None:
    """Send one input, an enquire_link and EOF; read until the server closes, decoding every answer."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        probe = encode_pdu(EnquireLink(sequence_number=_PROBE_SEQUENCE))
        try:
            await stream.send_all((bind if bind_first else b"") + b"".join(chunks) + probe)
            await stream.send_eof()
        except trio.BrokenResourceError:
            return  # the server closed on a broken header already: a clean end
        framer = PduFramer(1 << 20)
        while True:
            try:
                frames = await _read_pdus(stream, framer)
            except trio.BrokenResourceError:
                return  # reset by the server closing with our bytes unread
            if frames is None:
                return
            for frame in frames:
                try:
                    decode_pdu(frame)
                except PduError as exc:
                    report.failures.append(f"undecodable answer {frame.hex()} to input {[c.hex() for c in chunks]}: {exc}")
                report.answers += 1


async def drive(port: int, inputs: int, seed: int, *, concurrency: int = 8) -> FuzzReport:
    """Run `inputs` fuzz connections (`concurrency` at a time) beside a good session; the report lists failures."""
    rng = random.Random(seed)
    seeds = seed_pdus(SYSTEM_ID, PASSWORD)
    report = FuzzReport()
    stop = trio.Event()
    taken = 0

    async def fuzzer() -> None:
        nonlocal taken
        while taken < inputs:
            taken += 1
            # Drawn in the order they are taken: the same seed gives the same inputs, whichever task sends them.
            chunks, bind_first = fuzz_input(rng, seeds), rng.random() < 0.5
            await _fuzz_connection(port, chunks, bind_first, seeds[0], report)
            report.inputs += 1

    async with trio.open_nursery() as nursery:
        await nursery.start(_good_session, port, report, stop)
        async with trio.open_nursery() as fuzzers:
            for _ in range(concurrency):
                fuzzers.start_soon(fuzzer)
        stop.set()
    if report.good_submits == 0:
        report.failures.append("good session: no submission answered")
    return report


class _ErrorLog(logging.Handler):
    """Records what the server logs at ERROR and above (a crashed task, an unexpected exception)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


async def _run(inputs: int, seed: int, concurrency: int) -> tuple[FuzzReport, float, list[str]]:
    errors = _ErrorLog()
    logging.getLogger().addHandler(errors)
    try:
        async with trio.open_nursery() as nursery:
            stopped = trio.Event()
            serve = functools.partial(serve_smpp, shutdown_trigger=stopped)
            listeners: SmppListeners = await nursery.start(serve, fuzz_config(inputs), AcceptAllBackend())
            start = time.perf_counter()
            report = await drive(listeners.port, inputs, seed, concurrency=concurrency)
            seconds = time.perf_counter() - start
            stopped.set()
    finally:
        logging.getLogger().removeHandler(errors)
    return report, seconds, errors.messages


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m smsgw.bench fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="fuzz connections (default 100000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed; the same seed replays the same inputs")
    parser.add_argument("--concurrency", type=int, default=8, help="fuzz connections at a time (default 8)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    report, seconds, errors = trio.run(_run, args.inputs, args.seed, args.concurrency)
    failures = report.failures + [f"logged: {message}" for message in errors]
    result = {
        "benchmark": "fuzz",
        "seed": args.seed,
        "inputs": report.inputs,
        "seconds": round(seconds, 3),
        "inputs_per_s": round(report.inputs / seconds, 1) if seconds else None,
        "answers": report.answers,
        "good_submits": report.good_submits,
        "failures": failures,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"fuzz seed={args.seed}: {report.inputs} inputs in {seconds:.1f} s ({result['inputs_per_s']} inputs/s), "
              f"{report.answers} answers decoded, good session {report.good_submits} submits answered")
        for failure in failures:
            print(f"FAILURE {failure}")
        print("no failure" if not failures else f"{len(failures)} failures")
    return 1 if failures else 0
