"""Interop with an independent SMPP implementation: smpplib builds PDUs we decode, and decodes PDUs we build."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smpplib import pdu as smpplib_pdu
from smpplib.smpp import make_pdu

from smsgw.pdu.constants import CommandStatus, EsmClass, MessageState, RegisteredDelivery
from smsgw.pdu.smpp import (
    AlertNotification,
    BindReceiver,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    QuerySm,
    QuerySmResp,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    decode_pdu,
    encode_pdu,
)
from smsgw.pdu.tlv import Tlvs

UDH_PART = b"\x05\x00\x03\x2a\x02\x01" + b"first half of a two-part message"


def _smpplib_command(name: str, values: dict[str, Any]) -> Any:
    # Most smpplib responses fix need_sequence themselves and refuse it as an argument.
    try:
        return make_pdu(name, client=None, need_sequence=False, **values)
    except TypeError:
        return make_pdu(name, client=None, **values)


def _smpplib_build(name: str, sequence: int, values: dict[str, Any]) -> bytes:
    command = _smpplib_command(name, values)
    command.sequence = sequence
    data: bytes = command.generate()
    return data


def _smpplib_parse(data: bytes) -> Any:
    command = _smpplib_command(smpplib_pdu.extract_command(data), {})
    command.parse(data)
    return command


def _assert_same_fields(theirs: Any, ours: Pdu) -> None:
    for key, value in _flat(ours).items():
        got = getattr(theirs, key)
        if value == b"" and got is None:  # smpplib leaves a zero-length short_message unset
            continue
        assert got == value, key


def _flat(pdu: Pdu) -> dict[str, Any]:
    """Our PDU as smpplib names it: TLVs flattened next to the body fields, strings as octets."""
    flat: dict[str, Any] = {}
    for f in fields(pdu):
        value = getattr(pdu, f.name)
        if f.name == "tlvs":
            flat.update(value.present())
        elif f.name not in ("sequence_number", "command_status"):
            flat[f.name] = value
    return {k: v.encode("latin-1") if isinstance(v, str) else v for k, v in flat.items()}


# (smpplib command name, smpplib field values, the PDU we expect for them)
CASES: list[tuple[str, dict[str, Any], Pdu]] = [
    (
        "bind_transceiver",
        {"system_id": "demo", "password": "secret", "system_type": "VMA", "addr_ton": 1, "addr_npi": 1},
        BindTransceiver(sequence_number=1, system_id="demo", password="secret", system_type="VMA", addr_ton=1, addr_npi=1),
    ),
    ("bind_transmitter", {"system_id": "tx"}, BindTransmitter(sequence_number=2, system_id="tx")),
    ("bind_receiver", {"system_id": "rx", "address_range": "^4477"}, BindReceiver(sequence_number=3, system_id="rx", address_range="^4477")),
    (
        "bind_transceiver_resp",
        {"system_id": "smsgw", "sc_interface_version": 0x34},
        BindTransceiverResp(sequence_number=4, system_id="smsgw", tlvs=Tlvs(sc_interface_version=0x34)),
    ),
    (
        "submit_sm",
        {
            "source_addr_ton": 5,
            "source_addr": "Shop",
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
            "destination_addr": "447700900001",
            "esm_class": EsmClass.UDHI,
            "registered_delivery": RegisteredDelivery.RECEIPT_ALWAYS,
            "validity_period": "000001000000000R",
            "schedule_delivery_time": "261123120000004+",
            "data_coding": 0,
            "short_message": UDH_PART,
            "user_message_reference": 77,
            "source_port": 9200,
        },
        SubmitSm(
            sequence_number=5,
            source_addr_ton=5,
            source_addr="Shop",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="447700900001",
            esm_class=EsmClass.UDHI,
            registered_delivery=RegisteredDelivery.RECEIPT_ALWAYS,
            validity_period="000001000000000R",
            schedule_delivery_time="261123120000004+",
            short_message=UDH_PART,
            tlvs=Tlvs(user_message_reference=77, source_port=9200),
        ),
    ),
    (
        "submit_sm",
        {"destination_addr": "447700900002", "message_payload": b"x" * 400, "data_coding": 8,
         "sar_msg_ref_num": 513, "sar_total_segments": 2, "sar_segment_seqnum": 1},
        SubmitSm(sequence_number=6, destination_addr="447700900002", data_coding=8,
                 tlvs=Tlvs(message_payload=b"x" * 400, sar_msg_ref_num=513, sar_total_segments=2, sar_segment_seqnum=1)),
    ),  # fmt: skip
    ("submit_sm_resp", {"message_id": "5f1e2d3c"}, SubmitSmResp(sequence_number=7, message_id="5f1e2d3c")),
    (
        "deliver_sm",
        {
            "source_addr": "447700900001",
            "destination_addr": "Shop",
            "esm_class": EsmClass.DELIVERY_RECEIPT,
            "short_message": b"id:5f1e2d3c sub:001 dlvrd:001 submit date:2611231200 done date:2611231201 stat:DELIVRD err:000 text:",
            "receipted_message_id": "5f1e2d3c",
            "message_state": MessageState.DELIVERED,
            "network_error_code": b"\x03\x00\x00",
        },
        DeliverSm(
            sequence_number=8,
            source_addr="447700900001",
            destination_addr="Shop",
            esm_class=EsmClass.DELIVERY_RECEIPT,
            short_message=b"id:5f1e2d3c sub:001 dlvrd:001 submit date:2611231200 done date:2611231201 stat:DELIVRD err:000 text:",
            tlvs=Tlvs(receipted_message_id="5f1e2d3c", message_state=MessageState.DELIVERED, network_error_code=b"\x03\x00\x00"),
        ),
    ),
    ("deliver_sm_resp", {}, DeliverSmResp(sequence_number=9)),
    (
        "data_sm",
        {"source_addr": "Shop", "destination_addr": "447700900003", "data_coding": 4, "message_payload": b"\x00\x01binary"},
        DataSm(sequence_number=10, source_addr="Shop", destination_addr="447700900003", data_coding=4,
               tlvs=Tlvs(message_payload=b"\x00\x01binary")),
    ),  # fmt: skip
    ("data_sm_resp", {"message_id": "ab12"}, DataSmResp(sequence_number=11, message_id="ab12")),
    ("query_sm", {"message_id": "ab12", "source_addr": "Shop"}, QuerySm(sequence_number=12, message_id="ab12", source_addr="Shop")),
    (
        "query_sm_resp",
        {"message_id": "ab12", "final_date": "261123120500000+", "message_state": 2, "error_code": 0},
        QuerySmResp(sequence_number=13, message_id="ab12", final_date="261123120500000+", message_state=2),
    ),
    ("unbind", {}, Unbind(sequence_number=14)),
    ("unbind_resp", {}, UnbindResp(sequence_number=15)),
    ("enquire_link", {}, EnquireLink(sequence_number=16)),
    ("enquire_link_resp", {}, EnquireLinkResp(sequence_number=17)),
    ("generic_nack", {"status": CommandStatus.ESME_RINVCMDID}, GenericNack(sequence_number=18, command_status=CommandStatus.ESME_RINVCMDID)),
    (
        "alert_notification",
        {"source_addr": "447700900001", "esme_addr": "Shop", "ms_availability_status": 0},
        AlertNotification(sequence_number=19, source_addr="447700900001", esme_addr="Shop", tlvs=Tlvs(ms_availability_status=0)),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "values", "expected"), CASES, ids=[c[0] for c in CASES])
def test_smpplib_built_pdus_decode_to_the_same_fields(name: str, values: dict[str, Any], expected: Pdu) -> None:
    assert decode_pdu(_smpplib_build(name, expected.sequence_number, values)) == expected


@pytest.mark.parametrize(("name", "values", "expected"), CASES, ids=[c[0] for c in CASES])
def test_our_pdus_decode_with_smpplib(name: str, values: dict[str, Any], expected: Pdu) -> None:
    theirs = _smpplib_parse(encode_pdu(expected))
    assert theirs.command == name
    assert (theirs.sequence, theirs.status) == (expected.sequence_number, expected.command_status)
    _assert_same_fields(theirs, expected)


def test_same_octets_when_tlv_order_agrees() -> None:
    name, values, expected = CASES[4]
    assert encode_pdu(expected) == _smpplib_build(name, expected.sequence_number, values)


_address = st.text(alphabet="0123456789", max_size=20)
_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
_octet = st.integers(0, 255)


@settings(max_examples=60, deadline=None)
@given(
    source_addr=_text,
    destination_addr=_address,
    esm_class=_octet,
    data_coding=_octet,
    registered_delivery=_octet,
    short_message=st.binary(max_size=254),
    user_message_reference=st.none() | st.integers(0, 0xFFFF),
    sequence=st.integers(1, 0x7FFFFFFF),
)
def test_random_submit_sm_both_ways(
    source_addr: str,
    destination_addr: str,
    esm_class: int,
    data_coding: int,
    registered_delivery: int,
    short_message: bytes,
    user_message_reference: int | None,
    sequence: int,
) -> None:
    ours = SubmitSm(
        sequence_number=sequence,
        source_addr=source_addr,
        destination_addr=destination_addr,
        esm_class=esm_class,
        data_coding=data_coding,
        registered_delivery=registered_delivery,
        short_message=short_message,
        tlvs=Tlvs(user_message_reference=user_message_reference),
    )
    values: dict[str, Any] = {
        "source_addr": source_addr,
        "destination_addr": destination_addr,
        "esm_class": esm_class,
        "data_coding": data_coding,
        "registered_delivery": registered_delivery,
        "short_message": short_message,
    }
    if user_message_reference is not None:
        values["user_message_reference"] = user_message_reference
    assert decode_pdu(_smpplib_build("submit_sm", sequence, values)) == ours
    _assert_same_fields(_smpplib_parse(encode_pdu(ours)), ours)
