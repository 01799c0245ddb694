"""`python -m smsgw.bench codec [--json] [--seconds S]`: SMPP codec rates next to a plain `struct` baseline.

Two PDUs, each decoded and encoded: a submit_sm carrying one part of a concatenated message (esm_class UDHI,
short_message starting with a 6-octet concatenation UDH) plus two TLVs, and a deliver_sm delivery receipt with
receipted_message_id and message_state. The baseline unpacks (and packs) the same fields with `struct`, slices
and `bytes.find`, without checks or typed values; it is measured in the same run, and each of our rates is
reported as a fraction of it.
"""

from __future__ import annotations

import argparse
import json
import platform
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Final

from smsgw.bench import cpu_model as _cpu_model
from smsgw.pdu.constants import EsmClass, MessageState, RegisteredDelivery, Ton
from smsgw.pdu.smpp import DeliverSm, SubmitSm, decode_pdu, encode_pdu
from smsgw.pdu.tlv import Tlvs

_TARGET_RATIO: Final = 0.40
_ROUNDS: Final = 40
_HEADER: Final = struct.Struct(">IIII")
_TLV_HEADER: Final = struct.Struct(">HH")


def sample_pdus() -> dict[str, SubmitSm | DeliverSm]:
    text = "Part two of a longer message from the codec benchmark".encode("latin-1")
    return {
        "submit_sm (UDH part + 2 TLVs)": SubmitSm(
            sequence_number=1234,
            source_addr_ton=Ton.ALPHANUMERIC,
            source_addr="SmsGw",
            dest_addr_ton=Ton.INTERNATIONAL,
            dest_addr_npi=1,
            destination_addr="447700900001",
            esm_class=EsmClass.UDHI,
            registered_delivery=RegisteredDelivery.RECEIPT_ALWAYS,
            validity_period="000000020000000R",
            short_message=b"\x05\x00\x03\x2a\x02\x02" + text,
            tlvs=Tlvs(user_message_reference=4242, more_messages_to_send=0),
        ),
        "deliver_sm receipt": DeliverSm(
            sequence_number=98765,
            source_addr_ton=Ton.INTERNATIONAL,
            source_addr_npi=1,
            source_addr="447700900001",
            destination_addr="SmsGw",
            esm_class=EsmClass.DELIVERY_RECEIPT,
            short_message=(
                b"id:1f3a9c2b sub:001 dlvrd:001 submit date:2611231200 done date:2611231201 stat:DELIVRD err:000"
                b" text:Part two of a lo"
            ),
            tlvs=Tlvs(receipted_message_id="1f3a9c2b", message_state=MessageState.DELIVERED),
        ),
    }


def baseline_decode(data: bytes) -> tuple[Any, ...]:
    """The same fields as `decode_pdu` of a submit_sm/deliver_sm, with no validation and raw values."""
    length, command_id, command_status, sequence_number = _HEADER.unpack_from(data)
    find = data.find
    end = find(0, 16)
    service_type = data[16:end]
    source_addr_ton, source_addr_npi = data[end + 1], data[end + 2]
    start, end = end + 3, find(0, end + 3)
    source_addr = data[start:end]
    dest_addr_ton, dest_addr_npi = data[end + 1], data[end + 2]
    start, end = end + 3, find(0, end + 3)
    destination_addr = data[start:end]
    esm_class, protocol_id, priority_flag = data[end + 1], data[end + 2], data[end + 3]
    start, end = end + 4, find(0, end + 4)
    schedule_delivery_time = data[start:end]
    start, end = end + 1, find(0, end + 1)
    validity_period = data[start:end]
    registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id, sm_length = data[end + 1 : end + 6]
    pos = end + 6
    short_message = data[pos : pos + sm_length]
    pos += sm_length
    tlvs = {}
    while pos < length:
        tag, size = _TLV_HEADER.unpack_from(data, pos)
        tlvs[tag] = data[pos + 4 : pos + 4 + size]
        pos += 4 + size
    return (
        command_id, command_status, sequence_number, service_type, source_addr_ton, source_addr_npi, source_addr,
        dest_addr_ton, dest_addr_npi, destination_addr, esm_class, protocol_id, priority_flag,
        schedule_delivery_time, validity_period, registered_delivery, replace_if_present_flag, data_coding,
        sm_default_msg_id, short_message, tlvs,
    )  # fmt: skip


def baseline_encode(fields: tuple[Any, ...]) -> bytes:
    """`baseline_decode`'s tuple back to octets: struct and join, no checks."""
    (command_id, command_status, sequence_number, service_type, source_addr_ton, source_addr_npi, source_addr,
     dest_addr_ton, dest_addr_npi, destination_addr, esm_class, protocol_id, priority_flag, schedule_delivery_time,
     validity_period, registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id, short_message,
     tlvs) = fields  # fmt: skip
    parts = [
        service_type, b"\x00", bytes((source_addr_ton, source_addr_npi)), source_addr, b"\x00",
        bytes((dest_addr_ton, dest_addr_npi)), destination_addr, b"\x00",
        bytes((esm_class, protocol_id, priority_flag)), schedule_delivery_time, b"\x00", validity_period, b"\x00",
        bytes((registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id, len(short_message))),
        short_message,
    ]  # fmt: skip
    for tag, value in tlvs.items():
        parts.append(_TLV_HEADER.pack(tag, len(value)))
        parts.append(value)
    body = b"".join(parts)
    return _HEADER.pack(16 + len(body), command_id, command_status, sequence_number) + body


def _batch_seconds(operation: Callable[[], object], batch: int) -> float:
    start = time.process_time()
    for _ in range(batch):
        operation()
    return time.process_time() - start


def _batch_for(operation: Callable[[], object], seconds: float) -> int:
    batch = 100
    while _batch_seconds(operation, batch) < seconds:
        batch *= 2
    return batch


def _rates(ours: Callable[[], object], baseline: Callable[[], object], seconds: float) -> tuple[float, float]:
    """Operations per second of CPU time for each: the best of many short rounds that alternate between the two,
    each round sized to take the same time for both. CPU time rather than wall time, so that other processes on a
    shared machine do not count; the best round, so that cache and scheduler disturbances do not either."""
    round_seconds = seconds / (2 * _ROUNDS)
    ours_batch = _batch_for(ours, round_seconds)
    baseline_batch = _batch_for(baseline, round_seconds)
    best_ours = best_baseline = float("inf")
    for _ in range(_ROUNDS):
        best_ours = min(best_ours, _batch_seconds(ours, ours_batch) / ours_batch)
        best_baseline = min(best_baseline, _batch_seconds(baseline, baseline_batch) / baseline_batch)
    return 1 / best_ours, 1 / best_baseline


@dataclass(frozen=True, slots=True)
class Row:
    pdu: str
    operation: str
    ours_per_s: float
    baseline_per_s: float
    ratio: float
    meets_target: bool


def measure(seconds: float) -> list[Row]:
    rows: list[Row] = []
    for name, pdu in sample_pdus().items():
        wire = encode_pdu(pdu)
        fields = baseline_decode(wire)
        if baseline_encode(fields) != wire:
            raise AssertionError(f"baseline does not round-trip {name}")
        if decode_pdu(wire) != pdu:
            raise AssertionError(f"codec does not round-trip {name}")
        pairs = {
            "decode": (lambda: decode_pdu(wire), lambda: baseline_decode(wire)),
            "encode": (lambda: encode_pdu(pdu), lambda: baseline_encode(fields)),
        }
        for operation, (ours, baseline) in pairs.items():
            ours_rate, baseline_rate = _rates(ours, baseline, seconds)
            ratio = ours_rate / baseline_rate
            rows.append(Row(name, operation, ours_rate, baseline_rate, ratio, ratio >= _TARGET_RATIO))
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m smsgw.bench codec", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement (default 1.0)")
    args = parser.parse_args(argv)
    rows = measure(args.seconds)
    if args.json:
        json.dump(
            {"benchmark": "codec", "target_ratio": _TARGET_RATIO, "python": platform.python_version(),
             "cpu": _cpu_model(), "rows": [asdict(r) for r in rows]},
            sys.stdout,
            indent=2,
        )  # fmt: skip
        print()
    else:
        print(f"| PDU | operation | smsgw /s | struct baseline /s | ratio (target >= {_TARGET_RATIO:.2f}) |")
        print("|---|---|---:|---:|---:|")
        for r in rows:
            mark = "" if r.meets_target else " (below target)"
            print(f"| {r.pdu} | {r.operation} | {r.ours_per_s:,.0f} | {r.baseline_per_s:,.0f} | {r.ratio:.2f}{mark} |")
    return 0 if all(r.meets_target for r in rows) else 1
