"""Golden PDUs published by other SMPP implementations: each decodes to the fields their authors assert and
re-encodes to the same octets."""

from __future__ import annotations

from typing import Any

import pytest

from smsgw.pdu.constants import CommandStatus, DataCoding, EsmClass, MessageState, MsAvailabilityStatus, Npi, Ton
from smsgw.pdu.smpp import (
    AlertNotification,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DeliverSm,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    QuerySmResp,
    SubmitSm,
    Unbind,
    UnbindResp,
    decode_pdu,
    encode_pdu,
)
from smsgw.pdu.tlv import Tlvs

# mozes/smpp.pdu tests/test_pdu_encoding.py (Apache-2.0), PDUEncoderTest; the same vectors are in Jasmin's vendored
# copy. The bind request/response pair is shared by the three bind operations, only the command_id differs.
MOZES = "mozes/smpp.pdu tests/test_pdu_encoding.py"
BIND_BODY = "7465737400736563726574004f5441003402063132372e302e302e2a00"
BIND_RESP_BODY = "54534937353838000210000134"
_BIND: dict[str, Any] = dict(system_id="test", password="secret", system_type="OTA", addr_ton=Ton.NATIONAL, addr_npi=Npi.LAND_MOBILE,
             address_range="127.0.0.*")  # fmt: skip
_BIND_RESP: dict[str, Any] = dict(system_id="TSI7588", tlvs=Tlvs(sc_interface_version=0x34))

HANDSET_ACK_SM = (
    b"id:1891273321 sub:001 dlvrd:001 submit date:1305050826 done date:1305050826 stat:DELIVRD err:000 "
    b"Text:DLVRD TO MOBILE\x00"
)
NEC_SM = (
    b"id:bc59b8aa-2fd2-4035-8113-19301e050079 sub:001 dlvrd:001 submit date:150508144058 done date:150508144058 "
    b"stat:DELIVRD err:000 text:-"
)
RINGTONE = bytes.fromhex(
    "06050415811581024a3a5db5a5cdcda5bdb8040084d8c51381481381481381481381481381381481581681781881881061881061b810811"
    "81081881061881061681081781081881061881061b81081181081881061881061681081781081b81881321081b81881221081b81881121"
    "0824dc1446000"
)

GOLDEN: list[tuple[str, str, Pdu]] = [
    (MOZES + " bind_transmitter", "0000002d000000020000000000000002" + BIND_BODY, BindTransmitter(sequence_number=2, **_BIND)),
    (MOZES + " bind_receiver", "0000002d000000010000000000000002" + BIND_BODY, BindReceiver(sequence_number=2, **_BIND)),
    (MOZES + " bind_transceiver", "0000002d000000090000000000000002" + BIND_BODY, BindTransceiver(sequence_number=2, **_BIND)),
    (MOZES + " bind_transmitter_resp", "0000001d800000020000000000000001" + BIND_RESP_BODY, BindTransmitterResp(sequence_number=1, **_BIND_RESP)),
    (MOZES + " bind_receiver_resp", "0000001d800000010000000000000001" + BIND_RESP_BODY, BindReceiverResp(sequence_number=1, **_BIND_RESP)),
    (MOZES + " bind_transceiver_resp", "0000001d800000090000000000000001" + BIND_RESP_BODY, BindTransceiverResp(sequence_number=1, **_BIND_RESP)),
    (MOZES + " unbind", "00000010000000060000000000000004", Unbind(sequence_number=4)),
    (MOZES + " unbind_resp", "00000010800000060000000000000005", UnbindResp(sequence_number=5)),
    (MOZES + " generic_nack", "00000010800000000000000800000000", GenericNack(sequence_number=0, command_status=CommandStatus.ESME_RSYSERR)),
    (MOZES + " enquire_link", "00000010000000150000000000000006", EnquireLink(sequence_number=6)),
    (MOZES + " enquire_link_resp", "00000010800000150000000000000007", EnquireLinkResp(sequence_number=7)),
    (
        MOZES + " DeliverSM syniverse MO",
        "0000004d00000005000000009f88f12441575342440001013136353035353531323334000101313737333535353430373000000000"
        "000000000300117468657265206973206e6f2073706f6f6e",
        DeliverSm(sequence_number=2676551972, service_type="AWSBD", source_addr_ton=Ton.INTERNATIONAL,
                  source_addr_npi=Npi.ISDN, source_addr="16505551234", dest_addr_ton=Ton.INTERNATIONAL,
                  dest_addr_npi=Npi.ISDN, destination_addr="17735554070", data_coding=DataCoding.LATIN_1,
                  short_message=b"there is no spoon"),
    ),
    (
        MOZES + " DeliverSM handset ack (receipt, TLVs out of tag order)",
        "000000b900000005000000000000000a434d5400010036353135353535363738000100313233000400000000000000007669643a31"
        "383931323733333231207375623a30303120646c7672643a303031207375626d697420646174653a3133303530353038323620646f"
        "6e6520646174653a3133303530353038323620737461743a44454c49565244206572723a30303020546578743a444c56524420544f"
        "204d4f42494c45000427000102001e0009373042413841363900",
        DeliverSm(sequence_number=10, service_type="CMT", source_addr_ton=Ton.INTERNATIONAL, source_addr="6515555678",
                  dest_addr_ton=Ton.INTERNATIONAL, destination_addr="123", esm_class=EsmClass.DELIVERY_RECEIPT,
                  short_message=HANDSET_ACK_SM,
                  tlvs=Tlvs(message_state=MessageState.DELIVERED, receipted_message_id="70BA8A69")),
    ),
    (
        MOZES + " DeliverSM sybase MO",
        "0000003f000000050000000000000001434d540001003334313131343935303030303100010031323334353435350000000000000000"
        "f2000648454c4c4f00",
        DeliverSm(sequence_number=1, service_type="CMT", source_addr_ton=Ton.INTERNATIONAL, source_addr="3411149500001",
                  dest_addr_ton=Ton.INTERNATIONAL, destination_addr="12345455", data_coding=0xF2,
                  short_message=b"HELLO\x00"),
    ),
    (
        MOZES + " DeliverSM with subaddress",
        "00000066000000050000000000000001424d38000101343631323334353637383900010131343034363635333431300000000000000000"
        "f2001b48656c6c6f2049276d206120626967672066616e206f6620796f7502020004a037343202030005a034313331",
        DeliverSm(sequence_number=1, service_type="BM8", source_addr_ton=Ton.INTERNATIONAL, source_addr_npi=Npi.ISDN,
                  source_addr="46123456789", dest_addr_ton=Ton.INTERNATIONAL, dest_addr_npi=Npi.ISDN,
                  destination_addr="14046653410", data_coding=0xF2, short_message=b"Hello I'm a bigg fan of you",
                  tlvs=Tlvs(source_subaddress=b"\xa0742", dest_subaddress=b"\xa04131")),
    ),
    (
        MOZES + " SubmitSM 03.48",
        "0000005c00000004000000000006f391000500303334380001013339363938303933343200407f0000000100f6002d02700000281516"
        "2115150000001bb5b34a2fab312cfa8ecdd7779158747ac742c463cdd53b41963e49979d95ac",
        SubmitSm(sequence_number=455569, source_addr_ton=Ton.ALPHANUMERIC, source_addr="0348",
                 dest_addr_ton=Ton.INTERNATIONAL, dest_addr_npi=Npi.ISDN, destination_addr="3969809342",
                 esm_class=EsmClass.UDHI, protocol_id=0x7F, registered_delivery=1, data_coding=0xF6,
                 short_message=bytes.fromhex("027000002815162115150000001BB5B34A2FAB312CFA8ECDD7779158747AC742C463CDD53B41963E49979D95AC")),
    ),
    (
        MOZES + " AlertNotification",
        "00000089000001020000000000000000" + "0201" + "58" * 54 + "00" + "0106" + "59" * 56 + "00" + "0422000101",
        AlertNotification(sequence_number=0, source_addr_ton=Ton.NATIONAL, source_addr_npi=Npi.ISDN, source_addr="X" * 54,
                          esme_addr_ton=Ton.INTERNATIONAL, esme_addr_npi=Npi.LAND_MOBILE, esme_addr="Y" * 56,
                          tlvs=Tlvs(ms_availability_status=MsAvailabilityStatus.DENIED)),
    ),
    (
        MOZES + " QuerySMResp",
        "0000001c800000030000000000000000536d73633230303300000700",
        QuerySmResp(sequence_number=0, message_id="Smsc2003", message_state=MessageState.UNKNOWN),
    ),
    (
        MOZES + " SubmitSM",
        "000000360000000400000000000024440005006d6f62696c65776179000101313230383233300000000000000100f2000548454c4c4f",
        SubmitSm(sequence_number=9284, source_addr_ton=Ton.ALPHANUMERIC, source_addr="mobileway",
                 dest_addr_ton=Ton.INTERNATIONAL, dest_addr_npi=Npi.ISDN, destination_addr="1208230",
                 registered_delivery=1, data_coding=0xF2, short_message=b"HELLO"),
    ),
    (
        MOZES + " SubmitSM ringtone (UDH port addressing)",
        "000000a900000004000000000006f3910005006d6f62696c65776179000101333336393830393334320040000000000100f50075"
        + RINGTONE.hex(),
        SubmitSm(sequence_number=455569, source_addr_ton=Ton.ALPHANUMERIC, source_addr="mobileway",
                 dest_addr_ton=Ton.INTERNATIONAL, dest_addr_npi=Npi.ISDN, destination_addr="3369809342",
                 esm_class=EsmClass.UDHI, registered_delivery=1, data_coding=0xF5, short_message=RINGTONE),
    ),
    (
        MOZES + " DeliverSM with network_error_code",
        "000000f30000000500000000000000010001013439313532353637393438383700010130343035313330363939390000000000000000"
        "f2008569643a62633539623861612d326664322d343033352d383131332d313933303165303530303739207375623a3030312064"
        "6c7672643a303031207375626d697420646174653a31353035303831343430353820646f6e6520646174653a3135303530383134"
        "3430353820737461743a44454c49565244206572723a30303020746578743a2d042300030300000427000102001e00256263353962"
        "3861612d326664322d343033352d383131332d31393330316530353030373900",
        DeliverSm(sequence_number=1, source_addr_ton=Ton.INTERNATIONAL, source_addr_npi=Npi.ISDN,
                  source_addr="4915256794887", dest_addr_ton=Ton.INTERNATIONAL, dest_addr_npi=Npi.ISDN,
                  destination_addr="04051306999", data_coding=0xF2, short_message=NEC_SM,
                  tlvs=Tlvs(network_error_code=b"\x03\x00\x00", message_state=MessageState.DELIVERED,
                            receipted_message_id="bc59b8aa-2fd2-4035-8113-19301e050079")),
    ),
    (
        # jookies/jasmin jasmin/protocols/smpp/test/test_encoding.py::test_any_network_type ("Related to #120").
        "jasmin test_encoding.py test_any_network_type",
        "0000004500000005000000000000000100020135393232393631383600040933373435320000000000000000000000000e000101"
        "00060001010424000848692066696b7279",
        DeliverSm(sequence_number=1, source_addr_ton=Ton.NATIONAL, source_addr_npi=Npi.ISDN, source_addr="592296186",
                  dest_addr_ton=Ton.SUBSCRIBER_NUMBER, dest_addr_npi=9, destination_addr="37452",
                  tlvs=Tlvs(source_network_type=1, dest_network_type=1, message_payload=b"Hi fikry")),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("source", "wire_hex", "expected"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_pdu(source: str, wire_hex: str, expected: Pdu) -> None:
    wire = bytes.fromhex(wire_hex)
    assert decode_pdu(wire) == expected
    assert encode_pdu(decode_pdu(wire)) == wire


def test_jasmin_receipt_with_ascii_network_error_code() -> None:
    # jookies/jasmin test_encoding.py::test_deliver_sm_unknown_param_network_error_code: this SMSC puts "000" in
    # network_error_code; the codec keeps the 3 octets as they are (type 0x30, error 0x3030).
    wire = bytes.fromhex(
        "000000e40000000500000000542e0f21312e303030000101323434393335353535300005005a4150000400000000000000008069643a"
        "3661336564393861363634343465386162616333616364396262613836353666207375623a30303120646c7672643a30303020737562"
        "6d697420646174653a31343130313630303336353020646f6e6520646174653a31343130313630303338303020737461743a554e44"
        "454c4956206572723a30303020746578743a042300033030300427000105001e002136613365643938613636343434653861626163"
        "3361636439626261383635366600"
    )
    pdu = decode_pdu(wire)
    assert isinstance(pdu, DeliverSm)
    assert (pdu.service_type, pdu.source_addr, pdu.destination_addr) == ("1.000", "2449355550", "ZAP")
    assert pdu.tlvs.network_error_code == b"000"
    assert pdu.tlvs.message_state == MessageState.UNDELIVERABLE
    assert pdu.tlvs.receipted_message_id == "6a3ed98a66444e8abac3acd9bba8656f"
    assert b"stat:UNDELIV" in pdu.short_message
    assert encode_pdu(pdu) == wire
