"""SMPP 3.4 PDU codec: golden vectors from public sources, field rules and their command_status."""

from __future__ import annotations

import struct
from dataclasses import FrozenInstanceError, replace
from typing import Any, cast

import pytest

from smsgw.pdu.constants import CommandId, CommandStatus, EsmClass, MessageState, NetworkErrorType, Ton
from smsgw.pdu.errors import PduError
from smsgw.pdu.smpp import (
    PDU_CLASSES,
    BindTransceiver,
    BindTransceiverResp,
    DeliverSm,
    DeliverSmResp,
    DistributionList,
    EnquireLink,
    GenericNack,
    QuerySmResp,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
    UnsuccessSme,
    decode_pdu,
    encode_pdu,
    generic_nack_for,
    response_for,
)
from smsgw.pdu.tlv import RawTlv, Tlvs

S = CommandStatus

# smpplib 2.2.4, smpplib/tests/test_command.py::test_parse_deliver_sm: a receipt in message_payload, TLVs.
SMPPLIB_DELIVER_SM_RECEIPT = (
    b"\x00\x00\x00\xcb\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x01\x00"
    b"\x01\x0131600000000\x00\x05\x00XXX YYYY\x00\x04\x00\x00\x00\x00\x00"
    b"\x00\x00\x00\x00\x00\x0e\x00\x01\x01\x00\x06\x00\x01\x01\x00\x1e\x00"
    b"\t1d305b4c\x00\x04'\x00\x01\x02\x04$\x00rid:0489708364 sub:001"
    b" dlvrd:001 submit date:1810151907 done date:1810151907 stat:DELIVRD"
    b" err:000 text:\x04\x1f\x04@\x048\x042\x045\x04B\x04&\x00\x01\x01"
)
# smpplib 2.2.4, smpplib/tests/test_command.py::test_unrecognised_optional_parameters: vendor TLVs 0x1403/0x1402.
SMPPLIB_DELIVER_SM_UNKNOWN_TLVS = (
    b"\x00\x00\x00\xa8\x00\x00\x00\x05\x00\x00\x00\x00/p\xc6"
    b"\x9a\x00\x00\x0022549909028\x00\x01\x00\x00\x04\x00\x00"
    b"\x00\x00\x00\x00\x00\x00iid:795920026 sub:001 dlvrd:001 "
    b"submit date:200319131913 done date:200319131913 stat:DELIVRD err:000 text:"
    b"\x14\x03\x00\x07(null)\x00\x14\x02\x00\x04612\x00"
)


def test_smpplib_receipt_with_tlvs() -> None:
    pdu = decode_pdu(SMPPLIB_DELIVER_SM_RECEIPT)
    assert isinstance(pdu, DeliverSm)
    assert (pdu.sequence_number, pdu.source_addr_ton, pdu.source_addr) == (1, Ton.INTERNATIONAL, "31600000000")
    assert (pdu.dest_addr_ton, pdu.destination_addr) == (Ton.ALPHANUMERIC, "XXX YYYY")
    assert pdu.esm_class == EsmClass.DELIVERY_RECEIPT
    assert pdu.short_message == b""
    assert pdu.tlvs.receipted_message_id == "1d305b4c"
    assert pdu.tlvs.message_state == MessageState.DELIVERED
    assert pdu.tlvs.source_network_type == 1
    assert pdu.tlvs.more_messages_to_send == 1
    assert pdu.tlvs.user_message_reference is None
    assert pdu.tlvs.message_payload is not None
    assert pdu.tlvs.message_payload.startswith(b"id:0489708364 sub:001 dlvrd:001 submit date:1810151907")
    # Decoded TLVs are written back in the order they came, so the octets are unchanged.
    assert encode_pdu(pdu) == SMPPLIB_DELIVER_SM_RECEIPT
    reordered = Tlvs(**cast(dict[str, Any], pdu.tlvs.present()))
    assert reordered == pdu.tlvs
    assert decode_pdu(encode_pdu(replace(pdu, tlvs=reordered))) == pdu


def test_smpplib_unknown_tlvs_are_kept_byte_exact() -> None:
    pdu = decode_pdu(SMPPLIB_DELIVER_SM_UNKNOWN_TLVS)
    assert isinstance(pdu, DeliverSm)
    assert pdu.sequence_number == 0x2F70C69A
    assert pdu.short_message.startswith(b"id:795920026 sub:001")
    assert pdu.tlvs.unknown == (RawTlv(0x1403, b"(null)\x00"), RawTlv(0x1402, b"612\x00"))
    assert encode_pdu(pdu) == SMPPLIB_DELIVER_SM_UNKNOWN_TLVS


def test_submit_sm_defaults_and_exact_bytes() -> None:
    pdu = SubmitSm(sequence_number=1, source_addr="x", destination_addr="447700900001", short_message=b"hi")
    wire = encode_pdu(pdu)
    body = b"\x00" + b"\x00\x00x\x00" + b"\x00\x00447700900001\x00" + b"\x00\x00\x00" + b"\x00\x00" + b"\x00" * 4
    body += b"\x02hi"
    assert wire == struct.pack(">IIII", 16 + len(body), CommandId.SUBMIT_SM, 0, 1) + body
    assert decode_pdu(wire) == pdu


@pytest.mark.parametrize("cls", [SubmitSm, DeliverSm])
def test_fast_decoded_short_message_is_the_frozen_class(cls: type[SubmitSm] | type[DeliverSm]) -> None:
    # The fast decoder fills a mutable twin and switches its class: what comes out must be the real frozen value.
    pdu = cls(sequence_number=3, source_addr="447700900001", destination_addr="447700900002", short_message=b"hi")
    decoded = decode_pdu(encode_pdu(pdu))
    assert type(decoded) is cls
    assert decoded == pdu and hash(decoded) == hash(pdu)
    assert repr(decoded) == repr(pdu)
    assert not hasattr(decoded, "__dict__")
    with pytest.raises(FrozenInstanceError):
        decoded.source_addr = "1"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del decoded.short_message
    assert replace(decoded, short_message=b"ho") == replace(pdu, short_message=b"ho")


@pytest.mark.parametrize("cls", [c for c in PDU_CLASSES.values() if c is not SubmitMulti])
def test_every_pdu_with_defaults_round_trips(cls: type) -> None:
    pdu = cls(sequence_number=7)
    assert decode_pdu(encode_pdu(pdu)) == pdu


def test_submit_multi_and_resp() -> None:
    pdu = SubmitMulti(
        sequence_number=9,
        source_addr="Shop",
        destinations=(SmeAddress(1, 1, "447700900001"), DistributionList("friends")),
        short_message=b"sale",
    )
    assert decode_pdu(encode_pdu(pdu)) == pdu
    resp = SubmitMultiResp(
        sequence_number=9, message_id="m1", unsuccess_sme=(UnsuccessSme(1, 1, "447700922000", S.ESME_RINVDSTADR),)
    )
    assert decode_pdu(encode_pdu(resp)) == resp


def test_bind_resp_with_sc_interface_version() -> None:
    resp = BindTransceiverResp(sequence_number=2, system_id="smsgw", tlvs=Tlvs(sc_interface_version=0x34))
    wire = encode_pdu(resp)
    assert wire.endswith(b"smsgw\x00\x02\x10\x00\x01\x34")
    assert decode_pdu(wire) == resp


def test_error_response_without_body() -> None:
    resp = SubmitSmResp(sequence_number=4, command_status=S.ESME_RTHROTTLED)
    wire = encode_pdu(resp)
    assert len(wire) == 16
    assert decode_pdu(wire) == resp
    nack = encode_pdu(GenericNack(sequence_number=4, command_status=S.ESME_RINVCMDID))
    assert nack == struct.pack(">IIII", 16, CommandId.GENERIC_NACK, S.ESME_RINVCMDID, 4)


def test_response_for_and_generic_nack_for() -> None:
    request = BindTransceiver(sequence_number=11, system_id="demo", password="demo")
    resp = response_for(request, command_status=S.ESME_RINVPASWD)
    assert isinstance(resp, BindTransceiverResp)
    assert (resp.sequence_number, resp.command_status) == (11, S.ESME_RINVPASWD)
    deliver_resp = response_for(DeliverSm(sequence_number=3))
    assert deliver_resp == DeliverSmResp(sequence_number=3)
    with pytest.raises(PduError):
        response_for(GenericNack(sequence_number=1))
    nack = generic_nack_for(PduError("x", command_status=S.ESME_RINVCMDLEN, sequence_number=5))
    assert nack == GenericNack(sequence_number=5, command_status=S.ESME_RINVCMDLEN)


def _submit_wire(**fields: Any) -> bytes:
    return encode_pdu(replace(SubmitSm(sequence_number=77, destination_addr="447700900001"), **fields))


def _with_field(wire: bytes, old: bytes, new: bytes) -> bytes:
    body = wire[16:].replace(old, new, 1)
    return struct.pack(">I", 16 + len(body)) + wire[4:16] + body


@pytest.mark.parametrize(
    ("old", "new", "status"),
    [
        (b"447700900001\x00", b"4" * 21 + b"\x00", S.ESME_RINVDSTADR),
        (b"\x00\x00src\x00", b"\x00\x00" + b"s" * 21 + b"\x00", S.ESME_RINVSRCADR),
        (b"\x00\x00\x00src", b"abcdef\x00\x00\x00src", S.ESME_RINVSERTYP),
        (b"\x00\x02hi", b"\x00\xffhi", S.ESME_RINVMSGLEN),
        (b"\x00\x02hi", b"\x00\x03hi", S.ESME_RINVMSGLEN),
        (b"\x00\x02hi", b"\x00\x02hi\x00\x20", S.ESME_RINVTLVSTREAM),
        (b"\x00\x02hi", b"\x00\x02hi\x02\x0c\x00\x01\x05", S.ESME_RINVTLVLEN),
        (b"\x00\x02hi", b"\x00\x02hi\x02\x0c\x00\x02\x00\x05", S.ESME_RMISSINGTLV),
        (b"\x00\x02hi", b"\x00\x02hi\x04\x27\x00\x01\x02\x04\x27\x00\x01\x02", S.ESME_RINVTLVSTREAM),
        (b"\x00\x02hi", b"\x00\x02hi\x04\x27\x00\x05\x02", S.ESME_RINVTLVSTREAM),
    ],
)
def test_decode_errors_carry_status_and_sequence(old: bytes, new: bytes, status: int) -> None:
    wire = _with_field(_submit_wire(source_addr="src", short_message=b"hi"), old, new)
    with pytest.raises(PduError) as info:
        decode_pdu(wire)
    assert info.value.command_status == status
    assert info.value.sequence_number == 77


def test_time_fields_validated_with_their_status() -> None:
    good = _submit_wire(schedule_delivery_time="260101120000004+", validity_period="000001000000000R")
    pdu = decode_pdu(good)
    assert isinstance(pdu, SubmitSm)
    assert pdu.validity_period == "000001000000000R"
    bad_expiry = _with_field(good, b"000001000000000R", b"000001000000000X")
    with pytest.raises(PduError) as info:
        decode_pdu(bad_expiry)
    assert info.value.command_status == S.ESME_RINVEXPIRY
    bad_sched = _with_field(good, b"260101120000004+", b"261301120000004+")
    with pytest.raises(PduError) as info:
        decode_pdu(bad_sched)
    assert info.value.command_status == S.ESME_RINVSCHED


@pytest.mark.parametrize(
    ("pdu", "status"),
    [
        (SubmitSm(sequence_number=1, destination_addr="4" * 21), S.ESME_RINVDSTADR),
        (SubmitSm(sequence_number=1, source_addr="s" * 21), S.ESME_RINVSRCADR),
        (SubmitSm(sequence_number=1, short_message=b"x" * 255), S.ESME_RINVMSGLEN),
        (SubmitSm(sequence_number=1, validity_period="soon"), S.ESME_RINVEXPIRY),
        (BindTransceiver(sequence_number=1, system_id="s" * 16), S.ESME_RINVSYSID),
        (BindTransceiver(sequence_number=1, password="p" * 9), S.ESME_RINVPASWD),
        (QuerySmResp(sequence_number=1, final_date="x"), S.ESME_RINVPARLEN),
        (SubmitSm(sequence_number=1, tlvs=Tlvs(sar_msg_ref_num=1)), S.ESME_RMISSINGTLV),
        (SubmitSm(sequence_number=1, tlvs=Tlvs(network_error_code=b"\x03")), S.ESME_RINVTLVLEN),
        (SubmitSm(sequence_number=1, tlvs=Tlvs(message_state=256)), S.ESME_RINVTLVVAL),
        (SubmitSm(sequence_number=1, source_addr_ton=256), S.ESME_RSYSERR),
        (SubmitMulti(sequence_number=1), S.ESME_RINVNUMDESTS),
        (EnquireLink(sequence_number=-1), S.ESME_RSYSERR),
    ],
)
def test_encode_refuses_bad_fields(pdu: object, status: int) -> None:
    with pytest.raises(PduError) as info:
        encode_pdu(pdu)  # type: ignore[arg-type]
    assert info.value.command_status == status


def test_header_errors() -> None:
    with pytest.raises(PduError) as info:
        decode_pdu(b"\x00\x00\x00\x10\x00\x00")
    assert (info.value.command_status, info.value.sequence_number) == (S.ESME_RINVCMDLEN, None)
    with pytest.raises(PduError) as info:
        decode_pdu(struct.pack(">IIII", 16, 0x00000099, 0, 42))
    assert (info.value.command_status, info.value.sequence_number) == (S.ESME_RINVCMDID, 42)
    with pytest.raises(PduError) as info:
        decode_pdu(struct.pack(">IIII", 17, CommandId.ENQUIRE_LINK, 0, 43))
    assert (info.value.command_status, info.value.sequence_number) == (S.ESME_RINVCMDLEN, 43)
    with pytest.raises(PduError) as info:
        decode_pdu(struct.pack(">IIII", 17, CommandId.ENQUIRE_LINK, 0, 44) + b"\x00")
    assert (info.value.command_status, info.value.sequence_number) == (S.ESME_RINVCMDLEN, 44)


def test_network_error_code_tlv() -> None:
    pdu = DeliverSm(
        sequence_number=3,
        esm_class=EsmClass.DELIVERY_RECEIPT,
        tlvs=Tlvs(receipted_message_id="abc", message_state=5, network_error_code=bytes((NetworkErrorType.GSM, 0, 1))),
    )
    back = decode_pdu(encode_pdu(pdu))
    assert isinstance(back, DeliverSm)
    assert back == pdu
    assert back.tlvs.network_error_code == b"\x03\x00\x01"


def test_status_names_and_vendor_range() -> None:
    from smsgw.pdu.constants import is_vendor_status, status_description, status_name, vendor_status

    assert status_name(0x0B) == "ESME_RINVDSTADR"
    assert status_name(0xC0) == "ESME_RINVOPTPARSTREAM"
    assert status_name(vendor_status(4)) == "VENDOR_NO_ROUTE" and is_vendor_status(0x404)
    assert status_description(0x400) == "smsgw: insufficient balance (err 800)"
    assert status_name(vendor_status(0x7F)) == "VENDOR_0x47F"
    assert status_name(0x09) == "RESERVED_0x00000009"
    assert status_description(0x58).startswith("Throttling")
    with pytest.raises(PduError):
        vendor_status(256)


def test_tlvs_value_semantics() -> None:
    built = Tlvs(message_state=2, receipted_message_id="a1")
    assert bool(built) and not bool(Tlvs())
    assert repr(built) == "Tlvs(receipted_message_id='a1', message_state=2)"
    assert built.present() == {"receipted_message_id": "a1", "message_state": 2}
    assert replace(built, message_state=None) == Tlvs(receipted_message_id="a1")
    assert hash(built) == hash(Tlvs(receipted_message_id="a1", message_state=2))
    pdu = DeliverSm(sequence_number=1, tlvs=built)
    assert decode_pdu(encode_pdu(pdu)).tlvs == built  # type: ignore[attr-defined]
