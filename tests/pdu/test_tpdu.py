"""3GPP TS 23.040 TPDUs: golden vectors from public sources, round trips, interop with python-gsmmodem."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import gsmmodem.pdu
import pytest
from construct import ConstructError
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.pdu import _tpdu_schema
from smsgw.pdu.constants import CommandStatus
from smsgw.pdu.errors import PduError
from smsgw.pdu.gsm7 import GSM7_BASIC, GSM7_EXTENSION, encode_gsm7
from smsgw.pdu.segmentation import segment_text
from smsgw.pdu.text import Encoding
from smsgw.pdu.tp_fields import _decode_semi_octets, _encode_semi_octets, encode_user_data
from smsgw.pdu.tpdu import (
    _status_report_head,
    _submit_fields,
    MAX_SMSC_OCTETS,
    Address,
    Dcs,
    DcsGroup,
    NumberingPlan,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    StatusMeaning,
    TypeOfNumber,
    cmgs_length,
    decode_relative_validity,
    decode_timestamp,
    decode_tpdu,
    dialled_type_of_address,
    encode_relative_validity,
    encode_timestamp,
    encode_with_smsc,
    split_smsc,
    status_meaning,
    status_name,
    type_of_address_octet,
)
from smsgw.pdu.udh import Concatenation, Udh


def tz(hours: float) -> timezone:
    return timezone(timedelta(hours=hours))


def split(hex_pdu: str) -> tuple[str | None, bytes]:
    return split_smsc(bytes.fromhex(hex_pdu))


# --- SMS-SUBMIT -----------------------------------------------------------------------------------------------------

# Lars Pettersson, "SMS and the PDU format" (dreamfabric.com/sms), the SMS-SUBMIT example: "hellohello" to
# +46708251358, validity 4 days.
HELLOHELLO = "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"


def test_submit_hellohello_encodes_to_the_published_pdu() -> None:
    submit = SmsSubmit(Address.international("46708251358"), encode_gsm7("hellohello"), validity=timedelta(days=4))
    pdu = encode_with_smsc(submit.to_bytes(), None)
    assert pdu.hex().upper() == HELLOHELLO
    assert cmgs_length(pdu) == 23


def test_submit_hellohello_decodes() -> None:
    smsc, tpdu = split(HELLOHELLO)
    assert smsc is None
    submit = decode_tpdu(tpdu, "mo")
    assert isinstance(submit, SmsSubmit)
    assert str(submit.destination) == "+46708251358"
    assert submit.text == "hellohello"
    assert submit.validity == timedelta(days=4)
    assert (submit.tp_mr, submit.status_report_request, submit.message_class) == (0, False, None)


# python-gsmmodem test/test_pdu.py, TestSmsPdu.test_encodeSmsSubmit (its 6th positional argument is
# requestStatusReport).
@pytest.mark.parametrize(
    ("submit", "smsc", "expected"),
    [
        (
            SmsSubmit(Address.international("27820001111"), encode_gsm7("Hello World!")),
            None,
            "0001000B917228001011F100000CC8329BFD065DDF72363904",
        ),
        (
            SmsSubmit(
                Address.international("123456789"),
                "世界您好！".encode("utf-16-be"),
                dcs=Dcs.ucs2(),
                validity=timedelta(weeks=52),
            ),
            "+44000000000",
            "07914400000000F01100099121436587F90008F40A4E16754C60A8597DFF01",
        ),
        (
            SmsSubmit(
                Address.international("27820001111"),
                encode_gsm7("Timestamp validity test"),
                validity=datetime(2013, 7, 10, 13, 39, tzinfo=tz(2)),
            ),
            None,
            "0019000B917228001011F100003170013193008017D474BB3CA787DB70903DCC4E93D3F43C885E9ED301",
        ),
    ],
)
def test_submit_matches_python_gsmmodem_vectors(submit: SmsSubmit, smsc: str | None, expected: str) -> None:
    assert encode_with_smsc(submit.to_bytes(), smsc).hex().upper() == expected
    decoded_smsc, tpdu = split(expected)
    assert decoded_smsc == smsc
    assert SmsSubmit.from_bytes(tpdu) == submit


def test_submit_national_numbers_python_gsmmodem_vector() -> None:
    # python-gsmmodem test_encodeSmsSubmit: national SMSC and destination (type of address 0xA1), TP-MR 13, SRR.
    expected = "04A12143F5310D0AA110624521430000A91BD4F29C0E6A97E7F3F0B9AC03B1DFE3301BE4AEB7C565F91C"
    smsc, tpdu = split(expected)
    assert smsc == "12345"
    submit = SmsSubmit(
        Address.national("0126541234"),
        encode_gsm7("Test message: local numbers"),
        tp_mr=13,
        validity=timedelta(days=3),
        status_report_request=True,
    )
    assert submit.to_bytes() == tpdu
    assert cmgs_length(bytes.fromhex(expected)) == len(tpdu) == 37


def test_concatenated_submit_matches_python_gsmmodem_vectors() -> None:
    # python-gsmmodem test_encodeSmsSubmit_concatenated: three parts, 8-bit reference 0, TP-RD set.
    text = (
        "Lorem ipsum dolor sit amet, consectetur adipisicing elit, sed do eiusmod tempor incididunt ut labore et "
        "dolore magna aliqua.Ut enim ad minim veniam, quinostrud exercitation ullamco laboris nisi ut aliquip ex ea "
        "commodo consequat.Duis aute irure dolor in reprehenderit in voluptate velit esse cillum doloe eu fugiat "
        "nulla pariatur.Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit "
        "anim id est laborum"
    )
    expected = [
        "0045000B915121551532F40000A0050003000301986F79B90D4AC3E7F53688FC66BFE5A0799A0E0AB7CB741668FC76CFCB637A995E"
        "9783C2E4343C3D4F8FD3EE33A8CC4ED359A079990C22BF41E5747DDE7E9341F4721BFE9683D2EE719A9C26D7DD74509D0E6287C56F"
        "791954A683C86FF65B5E06B5C36777181466A7E3F5B0AB4A0795DDE936284C06B5D3EE741B642FBBD3E1360B14AFA7DD",
        "0045000B915121551532F40000A0050003000302DE73BABC4E0695F165F9384D0FD3D36F37A8CE6687DBE337881D16BFE5E939C89D"
        "9EA741753A28CC4EC7EB6938A88C0795C3A0F1BBDD7E93DFA0F1DB3D2FC7EB61BA8B584FCF41E13ABD0C4ACBEBF23288FC66BFE5A0"
        "B41B242FC3E56574D94D2ECBD37450DA0DB2BFD975383D4C2F83EC65769A0E2ACFE765D038CD66D7DB20F29BFD2E83CA",
        "0045000B915121551532F400008C050003000303EA2073FD9C0ED341EE3A9B1D06C1C3F274985E97BB8AF871194E2FD7E5A079DA4D"
        "07BDC7E370791CA683C675789A1CA687E920F7DB0D82CBDF6972D94D6781E675371D947683C675363C0C8AD7D3A0B7D99C1EA7C320"
        "72795E96D7DD7450FBCD66A7E9A0B03BDD06A5C9A0F29C0E6287C56F79BD0D",
    ]
    destination = Address.international("15125551234")
    pdus = [
        encode_with_smsc(SmsSubmit(destination, part.user_data, udh=part.udh, reject_duplicates=True).to_bytes())
        for part in segment_text(text, reference=0).parts
    ]
    assert [pdu.hex().upper() for pdu in pdus] == expected
    assert [cmgs_length(pdu) for pdu in pdus] == [153, 153, 136]
    decoded = [SmsSubmit.from_bytes(split_smsc(pdu)[1]) for pdu in pdus]
    assert "".join(d.text or "" for d in decoded) == text
    assert [Udh.from_bytes(d.udh).concatenation for d in decoded] == [Concatenation(0, 3, n) for n in (1, 2, 3)]


def test_submit_with_ports_and_8bit_from_pysim() -> None:
    # osmocom pySim tests/unittests/test_sms.py Test_SUBMIT: vCard with port addressing + concatenation UDH.
    tpdu = bytes.fromhex(
        "550d0b911614261771f000f5a78c0b050423f423f40003010201424547494e3a56434152440d0a56455253494f4e3a322e310d0a4e3a"
        "4d650d0a54454c3b505245463b43454c4c3b564f4943453a2b36313431363237313137300d0a54454c3b484f4d453b564f4943453a2b"
        "36313339353337303437310d0a54454c3b574f524b3b564f4943453a2b36313339363734373031350d0a454e443a"
    )
    submit = SmsSubmit.from_bytes(tpdu)
    assert (submit.reject_duplicates, submit.status_report_request, submit.reply_path) == (True, False, False)
    assert submit.tp_mr == 13 and str(submit.destination) == "+61416271170"
    assert submit.dcs.encoding is Encoding.BINARY and submit.message_class == 1
    assert submit.text is None and submit.user_data.startswith(b"BEGIN:VCARD\r\n")
    udh = Udh.from_bytes(submit.udh)
    assert udh.port_addressing is not None and udh.port_addressing.destination_port == 9204
    assert udh.concatenation == Concatenation(1, 2, 1)
    assert submit.validity == timedelta(days=1)  # TP-VP 0xA7 = 167: 12 h + 24 * 30 min
    assert submit.to_bytes() == tpdu


def test_flash_srr_ucs2_submit() -> None:
    submit = SmsSubmit(
        Address.international("447700900001"),
        "Привет".encode("utf-16-be"),
        dcs=Dcs.ucs2(message_class=0),
        tp_mr=7,
        validity=timedelta(minutes=120),
        status_report_request=True,
    )
    tpdu = submit.to_bytes()
    # first octet: SRR 0x20 | VPF relative 0x10 | SMS-SUBMIT 0x01; DCS 0x18 = UCS-2 class 0; TP-VP 23 = 120 min
    assert tpdu[0] == 0x31 and tpdu[1] == 7
    assert tpdu.hex().upper().startswith("3107" "0C91447700090010" "00" "18" "17" "0C")
    decoded = SmsSubmit.from_bytes(tpdu)
    assert decoded == submit and decoded.text == "Привет" and decoded.message_class == 0


# --- SMS-DELIVER ----------------------------------------------------------------------------------------------------


# python-gsmmodem test/test_pdu.py TestSmsPdu.test_decode.
@pytest.mark.parametrize(
    ("hex_pdu", "smsc", "originator", "scts", "text"),
    [
        (
            "06917228195339040B917228214365F700003130805120618005D4F29C2E03",
            "+2782913593",
            "+27821234567",
            datetime(2013, 3, 8, 15, 2, 16, tzinfo=tz(2)),
            "Test2",
        ),
        (
            "07915892000000F0040B915892214365F700007040213252242331493A283D0795C3F33C88FE06C9CB6132885EC6D341EDF27C"
            "1E3E97E7207B3A0C0A5241E377BB1D7693E72E",
            "+85290000000",
            "+85291234567",
            datetime(2007, 4, 12, 23, 25, 42, tzinfo=tz(8)),
            "It is easy to read text messages via AT commands.",
        ),
        (
            "06917228195339040B917228214365F70000313062315352800A800D8A5E98D337A910",
            "+2782913593",
            "+27821234567",
            datetime(2013, 3, 26, 13, 35, 25, tzinfo=tz(2)),
            "@{tést}!",
        ),
    ],
)
def test_deliver_python_gsmmodem_vectors(hex_pdu: str, smsc: str, originator: str, scts: datetime, text: str) -> None:
    decoded_smsc, tpdu = split(hex_pdu)
    deliver = decode_tpdu(tpdu)
    assert isinstance(deliver, SmsDeliver)
    assert decoded_smsc == smsc
    assert str(deliver.originator) == originator
    assert deliver.scts == scts and deliver.scts.utcoffset() == scts.utcoffset()
    assert deliver.text == text
    assert deliver.more_messages is False and deliver.message_class is None
    assert deliver.to_bytes() == tpdu


def test_deliver_with_concatenation_udh_python_gsmmodem_vector() -> None:
    # python-gsmmodem test_decode: a network's airtime notice, part 1 of 1 with reference 0xC3, national originator.
    smsc, tpdu = split(
        "0591721891F1400781721881F800003160526104848059050003C30101916536FB1DCABEEB2074D85E064941B19CAB060319A5C522"
        "289C96D3D3ED32286C0FA7D96131BBEC024941B19CAB0603DDD36C36A88C87A7E565D0DB0D82C55EB0DB4B068BCD5C20"
    )
    deliver = SmsDeliver.from_bytes(tpdu)
    assert smsc == "+2781191"
    assert deliver.originator == Address("2781188", TypeOfNumber.UNKNOWN, NumberingPlan.ISDN)
    assert Udh.from_bytes(deliver.udh).concatenation == Concatenation(0xC3, 1, 1)
    assert deliver.text == "Hello!You have R 19.50 FREE airtime available. R 19.50 will expire on 01/07/2013. "
    # The sender set its single fill bit to 1; fill bits carry nothing, so ours re-encodes it as 0.
    reencoded = deliver.to_bytes()
    assert len(reencoded) == len(tpdu)
    assert [i for i, (a, b) in enumerate(zip(reencoded, tpdu, strict=True)) if a != b] == [23]
    assert tpdu[23] ^ reencoded[23] == 0x01


def test_deliver_smspdudecoder_readme_vector() -> None:
    # qotto/smspdudecoder README.md: "TEST" from +46705930301; the sender's year 98 reads as 2098, as there.
    smsc, tpdu = split("07916407058099F9040B916407950303F100008921222140140004D4E2940A")
    deliver = decode_tpdu(tpdu)
    assert isinstance(deliver, SmsDeliver) and smsc == "+46705008999"
    assert str(deliver.originator) == "+46705930301" and deliver.text == "TEST"
    assert deliver.scts == datetime(2098, 12, 22, 12, 4, 41, tzinfo=timezone.utc)
    assert (deliver.more_messages, deliver.reply_path, deliver.udh) == (False, False, b"")
    assert deliver.to_bytes() == tpdu


def test_deliver_alphanumeric_8bit_class2_from_pysim() -> None:
    # osmocom pySim tests/unittests/test_sms.py Test_DELIVER: SIM OTA data from alphanumeric originator "ekit".
    tpdu = bytes.fromhex("0408D0E5759A0E7FF6907090307513000824010101BB400101")
    deliver = SmsDeliver.from_bytes(tpdu)
    assert deliver.originator == Address.alphanumeric("ekit")
    assert deliver.tp_pid == 0x7F and deliver.dcs == Dcs(0xF6)
    assert deliver.dcs.group is DcsGroup.DATA_CODING_MESSAGE_CLASS
    assert deliver.dcs.encoding is Encoding.BINARY and deliver.message_class == 2
    assert deliver.user_data == bytes.fromhex("24010101BB400101") and deliver.text is None
    assert deliver.scts == datetime(2009, 7, 9, 3, 57, 31, tzinfo=timezone.utc)
    # pySim's sender counts 8 semi-octets for 4 characters (all of 4 octets); 9.1.2.5 counts useful ones: 7.
    assert deliver.to_bytes() == tpdu[:1] + b"\x07" + tpdu[2:]


def test_deliver_flash_alphanumeric_round_trip() -> None:
    deliver = SmsDeliver(
        Address.alphanumeric("Bank{1}"),
        datetime(2026, 11, 23, 12, 0, 5, tzinfo=tz(-3.5)),
        encode_gsm7("Your code is 1234 €"),
        dcs=Dcs.gsm7(message_class=0),
        more_messages=True,
        status_report_indication=True,
    )
    tpdu = deliver.to_bytes()
    assert tpdu[0] == 0x20  # TP-SRI, TP-MMS 0 (more messages), SMS-DELIVER
    # "Bank{1}" is 9 septets: 63 bits = 16 useful semi-octets
    assert tpdu[1:3] == bytes([16, 0xD0])
    # first octet, address (2 + 8), TP-PID, TP-DCS, then TP-SCTS
    assert tpdu[13:20] == bytes.fromhex("62113221005049")  # 14 quarter hours west: low nibble 1 | sign 8, high 4
    decoded = SmsDeliver.from_bytes(tpdu)
    assert decoded == deliver and decoded.text == "Your code is 1234 €" and decoded.message_class == 0


# --- SMS-STATUS-REPORT ----------------------------------------------------------------------------------------------


def test_status_report_python_gsmmodem_vector() -> None:
    # python-gsmmodem test_decode: status report for TP-MR 214.
    smsc, tpdu = split("0006D60B911326880736F4111011719551401110117195714000")
    report = decode_tpdu(tpdu)
    assert smsc is None and isinstance(report, SmsStatusReport)
    assert report.tp_mr == 214 and str(report.recipient) == "+31628870634"
    assert report.scts == datetime(2011, 1, 11, 17, 59, 15, tzinfo=tz(1))
    assert report.discharge_time == datetime(2011, 1, 11, 17, 59, 17, tzinfo=tz(1))
    assert (report.tp_st, report.status_meaning, report.status_name) == (0, StatusMeaning.DELIVERED, "RECEIVED_BY_SME")
    assert report.more_messages is False
    assert report.to_bytes() == tpdu


def test_status_report_modemmanager_vector() -> None:
    # ModemManager src/tests/test-modem-helpers.c test_parse_cds: "+CDS: 24" then this PDU.
    pdu = bytes.fromhex("07914356060013F1065A098136395339F6219011700463802190117004638030")
    smsc, tpdu = split_smsc(pdu)
    assert smsc == "+34656000311" and cmgs_length(pdu) == 24
    report = SmsStatusReport.from_bytes(tpdu)
    assert report.tp_mr == 0x5A
    assert report.recipient == Address("639335936", TypeOfNumber.UNKNOWN, NumberingPlan.ISDN)
    assert report.scts == report.discharge_time == datetime(2012, 9, 11, 7, 40, 36, tzinfo=tz(2))
    assert report.tp_st == 0x30
    assert report.status_meaning is StatusMeaning.TEMPORARY_STILL_TRYING and report.status_name == "SC_SPECIFIC_0x30"
    assert report.to_bytes() == tpdu


def test_status_report_without_smsc_prefix_nrf_vector() -> None:
    # nRF Connect SDK tests/lib/sms/src/main.c: "+CDS: 24" from a modem that sends no SMSC prefix.
    tpdu = bytes.fromhex("06550A912143658709122022118314801220221183148000")
    report = decode_tpdu(tpdu)
    assert isinstance(report, SmsStatusReport)
    assert report.tp_mr == 0x55 and str(report.recipient) == "+1234567890"
    assert report.scts == datetime(2021, 2, 22, 11, 38, 41, tzinfo=tz(2))
    assert report.status_meaning is StatusMeaning.DELIVERED
    assert report.to_bytes() == tpdu


def test_status_report_optional_parameters_round_trip() -> None:
    report = SmsStatusReport(
        tp_mr=255,
        recipient=Address.international("447700911000"),
        scts=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        discharge_time=datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone.utc),
        tp_st=0x46,
        tp_pid=0,
        dcs=Dcs.gsm7(),
        user_data=encode_gsm7("expired"),
        udh=b"\x00",
    )
    tpdu = report.to_bytes()
    assert tpdu[0] == 0x46  # TP-UDHI 0x40, TP-MMS 0x04, status report 0x02
    # TP-ST, TP-PI (PID|DCS|UDL), TP-PID, TP-DCS, TP-UDL (UDHL + 1 fill bit = 2 septets, + 7), 8 octets of TP-UD
    assert tpdu[-13:-8] == bytes([0x46, 0x07, 0x00, 0x00, 9])
    decoded = SmsStatusReport.from_bytes(tpdu)
    assert decoded == report and decoded.text == "expired"
    assert decoded.status_meaning is StatusMeaning.EXPIRED and decoded.status_name == "VALIDITY_PERIOD_EXPIRED"


def test_status_report_reserved_pi_extension_octets_are_ignored() -> None:
    base = bytes.fromhex("06550A912143658709122022118314801220221183148000")
    # TP-PI 0x81 (PID present, extension follows), extension octet 0x10 (reserved bits), TP-PID 0x00.
    report = SmsStatusReport.from_bytes(base + bytes([0x81, 0x10, 0x00]))
    assert report.tp_pid == 0 and report.dcs is None and report.user_data is None
    assert report.to_bytes() == base + bytes([0x01, 0x00])


@pytest.mark.parametrize(
    ("tp_st", "meaning", "name"),
    [
        (0x00, StatusMeaning.DELIVERED, "RECEIVED_BY_SME"),
        (0x01, StatusMeaning.DELIVERED, "FORWARDED_UNCONFIRMED"),
        (0x02, StatusMeaning.DELIVERED, "REPLACED_BY_SC"),
        (0x1F, StatusMeaning.DELIVERED, "SC_SPECIFIC_0x1F"),
        (0x20, StatusMeaning.TEMPORARY_STILL_TRYING, "CONGESTION"),
        (0x25, StatusMeaning.TEMPORARY_STILL_TRYING, "ERROR_IN_SME"),
        (0x3F, StatusMeaning.TEMPORARY_STILL_TRYING, "SC_SPECIFIC_0x3F"),
        (0x40, StatusMeaning.PERMANENT, "REMOTE_PROCEDURE_ERROR"),
        (0x43, StatusMeaning.PERMANENT, "NOT_OBTAINABLE"),
        (0x46, StatusMeaning.EXPIRED, "VALIDITY_PERIOD_EXPIRED"),
        (0x49, StatusMeaning.PERMANENT, "SM_DOES_NOT_EXIST"),
        (0x5A, StatusMeaning.PERMANENT, "SC_SPECIFIC_0x5A"),
        (0x60, StatusMeaning.TEMPORARY_GAVE_UP, "CONGESTION_GAVE_UP"),
        (0x65, StatusMeaning.TEMPORARY_GAVE_UP, "ERROR_IN_SME_GAVE_UP"),
        (0x7F, StatusMeaning.TEMPORARY_GAVE_UP, "SC_SPECIFIC_0x7F"),
        # 9.2.3.15: reserved values are treated as 0x63 "service rejected".
        (0x05, StatusMeaning.TEMPORARY_GAVE_UP, "RESERVED_0x05"),
        (0x4B, StatusMeaning.TEMPORARY_GAVE_UP, "RESERVED_0x4B"),
        (0x80, StatusMeaning.TEMPORARY_GAVE_UP, "RESERVED_0x80"),
        (0xFF, StatusMeaning.TEMPORARY_GAVE_UP, "RESERVED_0xFF"),
    ],
)
def test_status_meanings(tp_st: int, meaning: StatusMeaning, name: str) -> None:
    assert status_meaning(tp_st) is meaning
    assert status_name(tp_st) == name
    assert meaning.is_final is (meaning is not StatusMeaning.TEMPORARY_STILL_TRYING)


# --- fields ---------------------------------------------------------------------------------------------------------


# python-gsmmodem test/test_pdu.py TestSmsPduAddressFields (0xA1 = national, 0xD0 = alphanumeric).
@pytest.mark.parametrize(
    ("address", "hex_field"),
    [
        (Address.international("9876543210"), "0A918967452301"),
        (Address.international("987654321"), "099189674523F1"),
        (Address.international("27829135934"), "0B917228195339F4"),
        (Address.alphanumeric("abc"), "06D061F118"),
        (Address.alphanumeric("FRANCOIS"), "0ED04669D0397C26A7"),
        (Address.alphanumeric("a[]{}€"), "14D0E10D6FE3DBA036A94D19"),
        (Address.national("0129998765"), "0AA11092997856"),
        # qotto/smspdudecoder smspdudecoder/fields.py Address.decode docstring examples.
        (Address.international("15551234567"), "0B915155214365F7"),
        (Address.alphanumeric("MMoney"), "0BD0CDE6DB5DCE03"),
        (Address.alphanumeric("Design@Home"), "14D0C4F23C7D760390EF7619"),
    ],
)
def test_address_fields(address: Address, hex_field: str) -> None:
    assert address.to_bytes().hex().upper() == hex_field
    assert Address.from_bytes(bytes.fromhex(hex_field)) == address


def test_address_parse_and_limits() -> None:
    assert Address.parse("+447700900001") == Address("447700900001", TypeOfNumber.INTERNATIONAL, NumberingPlan.ISDN)
    assert Address.parse("447700900001") == Address("447700900001", TypeOfNumber.UNKNOWN, NumberingPlan.ISDN)
    assert Address.parse("*100#").to_bytes().hex().upper() == "05811A00FB"
    assert Address.parse("Shop") == Address("Shop", TypeOfNumber.ALPHANUMERIC, NumberingPlan.UNKNOWN)
    assert str(Address.international("+4477")) == "+4477"
    with pytest.raises(PduError) as error:
        Address.alphanumeric("TwelveChars!")
    assert error.value.command_status == CommandStatus.ESME_RINVDSTADR
    with pytest.raises(PduError):
        Address("1" * 21)
    with pytest.raises(PduError):
        Address("+44", TypeOfNumber.INTERNATIONAL)


def test_type_of_address_is_the_octet_the_address_field_carries() -> None:
    # TS 27.005 examples: +CSCA: "+447700900000",145 and <toda> 129 for a number of unknown type.
    assert Address.international("447700900000").type_of_address == 145
    assert Address.parse("0129998765").type_of_address == 129
    assert Address.national("0129998765").type_of_address == 0xA1
    assert Address.alphanumeric("Shop").type_of_address == 0xD0
    for address in (Address.international("1234"), Address.parse("*100#"), Address.alphanumeric("abc")):
        assert address.to_bytes()[1] == address.type_of_address
    assert type_of_address_octet(TypeOfNumber.INTERNATIONAL) == 145


def test_dialled_type_of_address_follows_the_plus() -> None:
    assert dialled_type_of_address("+447700900000") == 145
    assert dialled_type_of_address("447700900000") == 129  # no '+': the network reads the digits as they are
    assert dialled_type_of_address("00447700900000") == 129
    assert dialled_type_of_address("") == 129


# python-gsmmodem test/test_pdu.py TestSmsPduSmscFields, and one from smspdudecoder.
@pytest.mark.parametrize(
    ("smsc", "hex_field"),
    [
        ("+9876543210", "06918967452301"),
        ("+987654321", "069189674523F1"),
        ("+2782913593", "06917228195339"),
        ("+22997976852", "07912299976758F2"),  # qotto/smspdudecoder fields.py SMSC.decode docstring
    ],
)
def test_smsc_prefix(smsc: str, hex_field: str) -> None:
    tpdu = bytes.fromhex("0100")
    pdu = encode_with_smsc(tpdu, smsc)
    assert pdu.hex().upper() == hex_field + "0100"
    assert split_smsc(pdu) == (smsc, tpdu)
    assert cmgs_length(pdu) == 2
    assert encode_with_smsc(tpdu, "") == encode_with_smsc(tpdu, None) == b"\x00" + tpdu


# python-gsmmodem test/test_pdu.py TestTimestamp (its SimpleOffsetTzInfo takes hours).
@pytest.mark.parametrize(
    ("moment", "hex_stamp"),
    [
        (datetime(2015, 11, 27, 0, 0, 0, tzinfo=tz(0)), "51117200000000"),
        (datetime(2015, 11, 27, 0, 0, 0, tzinfo=tz(2)), "51117200000080"),
        (datetime(2007, 4, 12, 23, 25, 42, tzinfo=tz(8)), "70402132522423"),
        (datetime(2007, 4, 12, 23, 25, 42, tzinfo=tz(-8)), "7040213252242B"),
    ],
)
def test_timestamps(moment: datetime, hex_stamp: str) -> None:
    assert encode_timestamp(moment).hex().upper() == hex_stamp
    decoded = decode_timestamp(bytes.fromhex(hex_stamp))
    assert decoded == moment and decoded.utcoffset() == moment.utcoffset()


@pytest.mark.parametrize(
    "bad",
    [
        datetime(2026, 1, 1),  # naive
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(minutes=10))),  # not quarter hours
        datetime(1999, 12, 31, tzinfo=timezone.utc),  # not representable in two year digits from 2000
    ],
)
def test_timestamp_encode_refuses(bad: datetime) -> None:
    with pytest.raises(PduError):
        encode_timestamp(bad)


@pytest.mark.parametrize("hex_stamp", ["51137200000000", "511172000000A0", "511172000000", "51117200000600"])
def test_timestamp_decode_refuses(hex_stamp: str) -> None:
    with pytest.raises(PduError):
        decode_timestamp(bytes.fromhex(hex_stamp))


# python-gsmmodem TestRelativeValidityPeriod, then the edges of the TS 23.040 9.2.3.12.1 table.
@pytest.mark.parametrize(
    ("validity", "tp_vp"),
    [
        (timedelta(minutes=30), 5),
        (timedelta(hours=16), 151),
        (timedelta(days=3), 169),
        (timedelta(weeks=5), 197),
        (timedelta(minutes=5), 0),
        (timedelta(minutes=120), 23),
        (timedelta(hours=12), 143),
        (timedelta(hours=12, minutes=30), 144),
        (timedelta(hours=24), 167),
        (timedelta(days=2), 168),
        (timedelta(days=30), 196),
        (timedelta(weeks=63), 255),
    ],
)
def test_relative_validity_table(validity: timedelta, tp_vp: int) -> None:
    assert encode_relative_validity(validity) == tp_vp
    assert decode_relative_validity(tp_vp) == validity


def test_relative_validity_rounds_up_and_refuses_out_of_range() -> None:
    assert encode_relative_validity(timedelta(seconds=1)) == 0
    assert encode_relative_validity(timedelta(minutes=6)) == 1
    assert encode_relative_validity(timedelta(hours=25)) == 168  # 2 days, the next period not shorter
    assert encode_relative_validity(timedelta(days=31)) == 197  # 5 weeks
    for bad in (timedelta(0), timedelta(minutes=-5), timedelta(weeks=63, seconds=1)):
        with pytest.raises(PduError) as error:
            encode_relative_validity(bad)
        assert error.value.command_status == CommandStatus.ESME_RINVEXPIRY


@given(st.integers(0, 255))
def test_relative_validity_decode_encode(tp_vp: int) -> None:
    assert encode_relative_validity(decode_relative_validity(tp_vp)) == tp_vp


@given(st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(weeks=63)))
def test_relative_validity_is_the_shortest_period_not_shorter(validity: timedelta) -> None:
    tp_vp = encode_relative_validity(validity)
    assert decode_relative_validity(tp_vp) >= validity
    assert tp_vp == 0 or decode_relative_validity(tp_vp - 1) < validity


@pytest.mark.parametrize(
    ("value", "encoding", "message_class", "group", "compressed"),
    [
        (0x00, Encoding.GSM7, None, DcsGroup.GENERAL, False),
        (0x04, Encoding.BINARY, None, DcsGroup.GENERAL, False),
        (0x08, Encoding.UCS2, None, DcsGroup.GENERAL, False),
        (0x0C, Encoding.GSM7, None, DcsGroup.GENERAL, False),  # reserved alphabet: GSM 7-bit (TS 23.038 4)
        (0x10, Encoding.GSM7, 0, DcsGroup.GENERAL, False),
        (0x18, Encoding.UCS2, 0, DcsGroup.GENERAL, False),
        (0x15, Encoding.BINARY, 1, DcsGroup.GENERAL, False),
        (0x20, Encoding.GSM7, None, DcsGroup.GENERAL, True),
        (0x4A, Encoding.UCS2, None, DcsGroup.AUTOMATIC_DELETION, False),
        (0x80, Encoding.GSM7, None, DcsGroup.RESERVED, False),
        (0xC0, Encoding.GSM7, None, DcsGroup.MESSAGE_WAITING_DISCARD, False),
        (0xD8, Encoding.GSM7, None, DcsGroup.MESSAGE_WAITING_STORE, False),
        (0xE8, Encoding.UCS2, None, DcsGroup.MESSAGE_WAITING_STORE, False),
        (0xF0, Encoding.GSM7, 0, DcsGroup.DATA_CODING_MESSAGE_CLASS, False),
        (0xF6, Encoding.BINARY, 2, DcsGroup.DATA_CODING_MESSAGE_CLASS, False),
    ],
)
def test_dcs_meaning(
    value: int, encoding: Encoding, message_class: int | None, group: DcsGroup, compressed: bool
) -> None:
    dcs = Dcs(value)
    assert (dcs.encoding, dcs.message_class, dcs.group, dcs.compressed) == (encoding, message_class, group, compressed)


def test_dcs_helpers() -> None:
    assert [Dcs.gsm7().value, Dcs.eight_bit().value, Dcs.ucs2().value] == [0x00, 0x04, 0x08]
    assert [Dcs.gsm7(0).value, Dcs.eight_bit(1).value, Dcs.ucs2(0).value, Dcs.gsm7(3).value] == [0x10, 0x15, 0x18, 0x13]
    with pytest.raises(PduError):
        Dcs.gsm7(4)
    with pytest.raises(PduError):
        Dcs.for_encoding(Encoding.LATIN1)


def test_compressed_user_data_counts_octets_and_has_no_text() -> None:
    submit = SmsSubmit(Address.international("4477"), bytes([0xFF, 0x80, 0x01]), dcs=Dcs(0x20))
    tpdu = submit.to_bytes()
    assert tpdu[-4] == 3  # TP-UDL in octets
    assert SmsSubmit.from_bytes(tpdu) == submit and submit.text is None


def test_gsm7_user_data_with_udh_fill_bits() -> None:
    udh = Udh((Concatenation(0x42, 2, 1),)).to_bytes()
    submit = SmsSubmit(Address.international("4477"), encode_gsm7("A" * 153), udh=udh)
    tpdu = submit.to_bytes()
    # first octet, TP-MR, address (2 + 2), TP-PID, TP-DCS, TP-UDL = 6 + 153 septets, 140 octets of TP-UD
    assert tpdu[8] == 160 and len(tpdu) == 9 + 140
    assert SmsSubmit.from_bytes(tpdu) == submit
    with pytest.raises(PduError) as error:
        SmsSubmit(Address.international("4477"), encode_gsm7("A" * 154), udh=udh).to_bytes()
    assert error.value.command_status == CommandStatus.ESME_RINVMSGLEN


# --- broken input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hex_tpdu", "direction", "problem"),
    [
        # python-gsmmodem test_decode: "User data length is invalid in this PDU (too long)".
        ("41010C910661345542F60008A0050003000301306F3044", "mo", "TP-UDL 160 exceeds 140"),
        ("", "mt", "empty"),
        ("01", "mt", "SMS-SUBMIT-REPORT"),
        ("02", "mo", "SMS-COMMAND"),
        ("00", "mo", "SMS-DELIVER-REPORT"),
        ("09000B916407281553F80000AA0AE8329BFD4697D9EC37", "mo", "enhanced TP-VP"),
        ("11000B916407281553F80000AA0AE8329BFD4697D9EC", "mo", "needs 9 octets of TP-UD, got 8"),
        ("11000B916407281553F80000AA0AE8329BFD4697D9EC3700", "mo", "needs 9 octets of TP-UD, got 10"),
        ("11000B9164072815F3F80000AA0AE8329BFD4697D9EC37", "mo", "filler semi-octet"),
        ("040B917228214365F7000031", "mt", "truncated"),
        ("440B917228214365F700003130805120618005D4F29C2E03", "mt", "user data header does not fit"),
        ("06550A912143658709122022118314801220221183148000" + "04", "mt", "truncated"),
    ],
)
def test_broken_tpdus_name_the_problem(hex_tpdu: str, direction: str, problem: str) -> None:
    with pytest.raises(PduError, match=problem):
        decode_tpdu(bytes.fromhex(hex_tpdu), direction)  # type: ignore[arg-type]


def test_zte_semi_invalid_status_report_decodes() -> None:
    # python-gsmmodem test_decode: "Semi-invalid status report PDU captured from a ZTE modem". Its recipient starts
    # with semi-octet 0xB, which TS 23.040 9.1.2.3 defines as '#', so the layout is valid after all.
    smsc, tpdu = split("0297F1061C0F910B487228297020F5317062419272803170624192138000")
    report = decode_tpdu(tpdu)
    assert isinstance(report, SmsStatusReport) and smsc == "+1"
    assert report.tp_mr == 28 and str(report.recipient) == "+#08427829207025"
    assert report.scts == datetime(2013, 7, 26, 14, 29, 27, tzinfo=tz(2))
    assert report.discharge_time == datetime(2013, 7, 26, 14, 29, 31, tzinfo=tz(2))
    assert report.to_bytes() == tpdu


@settings(max_examples=400)
@given(st.binary(max_size=200), st.sampled_from(["mt", "mo"]))
def test_random_bytes_only_raise_pdu_error(data: bytes, direction: str) -> None:
    for decode in (
        lambda: decode_tpdu(data, direction),  # type: ignore[arg-type]
        lambda: split_smsc(data),
        lambda: Address.from_bytes(data),
        lambda: decode_timestamp(data[:7]),
    ):
        try:
            decode()
        except PduError:
            pass


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=200), st.integers(0, 3))
def test_random_bytes_with_a_given_mti_only_raise_pdu_error(data: bytes, mti: int) -> None:
    data = bytes([data[0] & 0xFC | mti]) + data[1:]
    for cls in (SmsSubmit, SmsDeliver, SmsStatusReport):
        try:
            decoded = cls.from_bytes(data)
        except PduError:
            continue
        # Whatever decodes re-encodes, and that re-encoding decodes to the same value.
        assert cls.from_bytes(decoded.to_bytes()) == decoded


# --- round trips --------------------------------------------------------------------------------------------------

GSM_CHARS = "".join(c for c in GSM7_BASIC if c != "\x1b") + "".join(GSM7_EXTENSION.values())

digits = st.text("0123456789", min_size=0, max_size=20)
addresses = st.one_of(
    digits.map(Address.international),
    digits.map(Address.national),
    st.builds(
        Address, st.text("0123456789*#abc", max_size=20), st.integers(0, 7).filter(lambda t: t != 5), st.integers(0, 15)
    ),
    st.text(GSM_CHARS, max_size=11).filter(lambda t: len(encode_gsm7(t)) <= 11).map(Address.alphanumeric),
)
moments = st.builds(
    lambda naive, quarters: naive.replace(tzinfo=timezone(timedelta(minutes=15 * quarters))),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59)).map(
        lambda d: d.replace(microsecond=0)
    ),
    st.integers(-79, 79),
)
udhs = st.one_of(st.just(b""), st.binary(max_size=20).map(lambda body: bytes([len(body)]) + body))


@st.composite
def user_data_for(draw: st.DrawFn, dcs: Dcs, udh: bytes) -> bytes:
    if dcs.septet_user_data:
        room = 160 - ((len(udh) * 8 + 6) // 7 if udh else 0)
        return draw(st.binary(max_size=max(room, 0)).map(lambda b: bytes(x & 0x7F for x in b)))
    return draw(st.binary(max_size=max(140 - len(udh), 0)))


@st.composite
def user_data_parts(draw: st.DrawFn) -> tuple[Dcs, bytes, bytes]:
    dcs = Dcs(draw(st.integers(0, 255)))
    udh = draw(udhs)
    return dcs, udh, draw(user_data_for(dcs, udh))


@st.composite
def submits(draw: st.DrawFn) -> SmsSubmit:
    dcs, udh, user_data = draw(user_data_parts())
    validity = draw(st.one_of(st.none(), st.integers(0, 255).map(decode_relative_validity), moments))
    return SmsSubmit(
        draw(addresses), user_data, dcs, udh, draw(st.integers(0, 255)), draw(st.integers(0, 255)), validity,
        draw(st.booleans()), draw(st.booleans()), draw(st.booleans()),
    )


@st.composite
def delivers(draw: st.DrawFn) -> SmsDeliver:
    dcs, udh, user_data = draw(user_data_parts())
    return SmsDeliver(
        draw(addresses), draw(moments), user_data, dcs, udh, draw(st.integers(0, 255)),
        draw(st.booleans()), draw(st.booleans()), draw(st.booleans()), draw(st.booleans()),
    )


@st.composite
def status_reports(draw: st.DrawFn) -> SmsStatusReport:
    dcs = draw(st.one_of(st.none(), st.integers(0, 255).map(Dcs)))
    user_data: bytes | None = None
    udh = b""
    if draw(st.booleans()):
        udh = draw(udhs)
        user_data = draw(user_data_for(dcs or Dcs(), udh))
    return SmsStatusReport(
        draw(st.integers(0, 255)), draw(addresses), draw(moments), draw(moments), draw(st.integers(0, 255)),
        draw(st.booleans()), draw(st.booleans()), draw(st.booleans()),
        draw(st.one_of(st.none(), st.integers(0, 255))), dcs, user_data, udh,
    )


@settings(max_examples=200)
@given(submits())
def test_submit_round_trip(submit: SmsSubmit) -> None:
    assert decode_tpdu(submit.to_bytes(), "mo") == submit


def _address_fields(address: Address) -> dict[str, object]:
    """The values of `schema.AddressField` for `address`."""
    length, value = address._length_and_value()
    return {"length": length, "toa": {"extension": True, "ton": address.ton, "npi": address.npi}, "value": value}


def _declared_submit(submit: SmsSubmit) -> bytes:
    """SMS-SUBMIT as the construct declaration builds it; `to_bytes` is built by hand."""
    udl, ud = encode_user_data(submit.dcs, submit.udh, submit.user_data)
    vpf, vp = _tpdu_schema.VPF_NONE, None
    if isinstance(submit.validity, datetime):
        vpf, vp = _tpdu_schema.VPF_ABSOLUTE, encode_timestamp(submit.validity)
    elif submit.validity is not None:
        vpf, vp = _tpdu_schema.VPF_RELATIVE, encode_relative_validity(submit.validity)
    first = {"tp_rp": submit.reply_path, "tp_udhi": bool(submit.udh), "tp_srr": submit.status_report_request,
             "tp_vpf": vpf, "tp_rd": submit.reject_duplicates, "tp_mti": _tpdu_schema.MTI_SUBMIT}
    return bytes(_tpdu_schema.SmsSubmitLayout.build({
        "first": first, "tp_mr": submit.tp_mr, "tp_da": _address_fields(submit.destination), "tp_pid": submit.tp_pid,
        "tp_dcs": submit.dcs.value, "tp_vp": vp, "tp_udl": udl, "tp_ud": ud,
    }))


@settings(max_examples=200)
@given(submits())
def test_submit_bytes_agree_with_the_construct_declaration(submit: SmsSubmit) -> None:
    assert submit.to_bytes() == _declared_submit(submit)
    assert submit.destination.to_bytes() == _tpdu_schema.AddressField.build(_address_fields(submit.destination))


def _declared_deliver(deliver: SmsDeliver) -> bytes:
    """SMS-DELIVER as the construct declaration builds it; `to_bytes` is built by hand."""
    udl, ud = encode_user_data(deliver.dcs, deliver.udh, deliver.user_data)
    first = {"tp_rp": deliver.reply_path, "tp_udhi": bool(deliver.udh), "tp_sri": deliver.status_report_indication,
             "tp_lp": deliver.loop_prevention, "tp_mms": not deliver.more_messages, "tp_mti": _tpdu_schema.MTI_DELIVER}
    return bytes(_tpdu_schema.SmsDeliverLayout.build({
        "first": first, "tp_oa": _address_fields(deliver.originator), "tp_pid": deliver.tp_pid,
        "tp_dcs": deliver.dcs.value, "tp_scts": encode_timestamp(deliver.scts), "tp_udl": udl, "tp_ud": ud,
    }))


def _declared_status_report_head(report: SmsStatusReport) -> bytes:
    """The SMS-STATUS-REPORT up to TP-ST as the construct declaration builds it; `to_bytes` builds it by hand."""
    first = {"tp_udhi": bool(report.udh), "tp_srq": report.status_report_qualifier, "tp_lp": report.loop_prevention,
             "tp_mms": not report.more_messages, "tp_mti": _tpdu_schema.MTI_STATUS_REPORT}
    return bytes(_tpdu_schema.SmsStatusReportLayout.build({
        "first": first, "tp_mr": report.tp_mr, "tp_ra": _address_fields(report.recipient),
        "tp_scts": encode_timestamp(report.scts), "tp_dt": encode_timestamp(report.discharge_time),
        "tp_st": report.tp_st, "tail": b"",
    }))


@settings(max_examples=200)
@given(delivers())
def test_deliver_bytes_agree_with_the_construct_declaration(deliver: SmsDeliver) -> None:
    assert deliver.to_bytes() == _declared_deliver(deliver)


@settings(max_examples=200)
@given(status_reports())
def test_status_report_head_bytes_agree_with_the_construct_declaration(report: SmsStatusReport) -> None:
    head = _declared_status_report_head(report)
    encoded = report.to_bytes()
    assert encoded[: len(head)] == head
    has_tail = report.tp_pid is not None or report.dcs is not None or report.user_data is not None
    assert (len(encoded) > len(head)) == has_tail


@given(st.text("0123456789", min_size=1, max_size=20), st.sampled_from(["+", ""]), st.binary(max_size=10))
def test_smsc_prefix_bytes_agree_with_the_construct_declaration(digits: str, plus: str, tpdu: bytes) -> None:
    address = Address.parse(plus + digits)
    field = _address_fields(address)
    declared = _tpdu_schema.SmscField.build(
        {"length": 1 + len(field["value"]), "address": {"toa": field["toa"], "value": field["value"]}}  # type: ignore[arg-type]
    )
    assert encode_with_smsc(tpdu, plus + digits) == declared + tpdu


def _not_octets_of(declared: Callable[[], bytes], encoded: Callable[[], bytes]) -> None:
    """Both refuse: construct with ConstructError, the hand-built encoder with PduError (ESME_RSYSERR)."""
    with pytest.raises(ConstructError):
        declared()
    with pytest.raises(PduError) as raised:
        encoded()
    assert raised.value.command_status == CommandStatus.ESME_RSYSERR


@pytest.mark.parametrize("value", [-1, 256])
def test_encoders_refuse_values_that_are_not_octets_as_construct_does(value: int) -> None:
    destination = Address.international("4477")
    moment = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
    for submit in (SmsSubmit(destination, tp_mr=value), SmsSubmit(destination, tp_pid=value)):
        _not_octets_of(lambda: _declared_submit(submit), submit.to_bytes)
    deliver = SmsDeliver(destination, moment, tp_pid=value)
    _not_octets_of(lambda: _declared_deliver(deliver), deliver.to_bytes)
    for report in (SmsStatusReport(value, destination, moment, moment, 0),
                   SmsStatusReport(0, destination, moment, moment, value)):
        _not_octets_of(lambda: _declared_status_report_head(report), report.to_bytes)


@settings(max_examples=200)
@given(delivers())
def test_deliver_round_trip(deliver: SmsDeliver) -> None:
    assert decode_tpdu(deliver.to_bytes(), "mt") == deliver


@settings(max_examples=200)
@given(status_reports())
def test_status_report_round_trip(report: SmsStatusReport) -> None:
    assert decode_tpdu(report.to_bytes(), "mt") == report


def _declared_or_error(layout: object, data: bytes) -> object:
    try:
        return layout.parse(data)  # type: ignore[attr-defined]
    except ConstructError:
        return None


@settings(max_examples=400)
@given(st.one_of(st.binary(max_size=60), status_reports().map(SmsStatusReport.to_bytes)))
def test_status_report_head_agrees_with_the_construct_declaration(data: bytes) -> None:
    declared = _declared_or_error(_tpdu_schema.SmsStatusReportLayout, data)
    try:
        head = _status_report_head(data)
    except PduError:
        assert declared is None
        return
    assert declared is not None
    first = declared.first
    assert (bool(head.first & 0x40), bool(head.first & 0x20), bool(head.first & 0x08), bool(head.first & 0x04),
            head.first & 0x03) == (first.tp_udhi, first.tp_srq, first.tp_lp, first.tp_mms, first.tp_mti)
    ra = declared.tp_ra
    assert (head.ra_length, head.ra_toa >> 4 & 0x07, head.ra_toa & 0x0F, head.ra_value) == (
        ra.length, ra.toa.ton, ra.toa.npi, ra.value)
    assert (head.tp_mr, head.tp_scts, head.tp_dt, head.tp_st, head.tail) == (
        declared.tp_mr, declared.tp_scts, declared.tp_dt, declared.tp_st, declared.tail)


@settings(max_examples=400)
@given(st.one_of(
    st.binary(max_size=60),
    submits().map(SmsSubmit.to_bytes),
    st.tuples(submits().map(SmsSubmit.to_bytes), st.integers(0, 40)).map(lambda t: t[0][: t[1]]),
))
def test_submit_fields_agree_with_the_construct_declaration(data: bytes) -> None:
    declared = _declared_or_error(_tpdu_schema.SmsSubmitLayout, data)
    try:
        fields = _submit_fields(data)
    except PduError as error:
        assert declared is None
        assert error.command_status == CommandStatus.ESME_RSYSERR
        return
    assert declared is not None
    first = declared.first
    assert (bool(fields.first & 0x80), bool(fields.first & 0x40), bool(fields.first & 0x20), fields.first >> 3 & 0x03,
            bool(fields.first & 0x04), fields.first & 0x03) == (
        first.tp_rp, first.tp_udhi, first.tp_srr, first.tp_vpf, first.tp_rd, first.tp_mti)
    da = declared.tp_da
    assert (fields.da_length, fields.da_toa >> 4 & 0x07, fields.da_toa & 0x0F, fields.da_value) == (
        da.length, da.toa.ton, da.toa.npi, da.value)
    vp = declared.tp_vp
    assert fields.tp_vp == (b"" if vp is None else bytes((vp,)) if isinstance(vp, int) else vp)
    assert (fields.tp_mr, fields.tp_pid, fields.tp_dcs, fields.tp_udl, fields.tp_ud) == (
        declared.tp_mr, declared.tp_pid, declared.tp_dcs, declared.tp_udl, declared.tp_ud)


@given(st.binary(max_size=11).flatmap(lambda value: st.tuples(st.just(value), st.integers(0, 2 * len(value)))))
def test_semi_octets_decode_nibble_by_nibble(value_and_count: tuple[bytes, int]) -> None:
    value, count = value_and_count
    nibbles = [nibble for octet in value for nibble in (octet & 0x0F, octet >> 4)][:count]
    try:
        digits = _decode_semi_octets(value, count, CommandStatus.ESME_RINVDSTADR)
    except PduError as error:
        assert 0xF in nibbles and error.command_status == CommandStatus.ESME_RINVDSTADR
        return
    assert digits == "".join("0123456789*#abc"[nibble] for nibble in nibbles)


@given(st.text("0123456789*#abc", max_size=20))
def test_semi_octets_encode_nibble_by_nibble(digits: str) -> None:
    nibbles = ["0123456789*#abc".index(char) for char in digits] + ([0xF] if len(digits) % 2 else [])
    assert _encode_semi_octets(digits) == bytes(low | high << 4 for low, high in zip(nibbles[::2], nibbles[1::2]))


def _declared_split_smsc(data: bytes) -> tuple[str | None, bytes] | None:
    """What `split_smsc` returned when it parsed with `schema.SmscField`; None where that refused."""
    parsed = _declared_or_error(_tpdu_schema.SmscField, data)
    if parsed is None:
        return None
    if parsed.address is None:  # type: ignore[attr-defined]
        return None, data[1:]
    toa, value = parsed.address.toa, parsed.address.value  # type: ignore[attr-defined]
    if parsed.length > MAX_SMSC_OCTETS:  # type: ignore[attr-defined]
        return None
    digits = len(value) * 2 - (1 if value and value[-1] >> 4 == 0xF else 0)
    try:
        number = _decode_semi_octets(value, digits, CommandStatus.ESME_RSYSERR)
        return str(Address(number, toa.ton, toa.npi)), data[parsed.length + 1:]  # type: ignore[attr-defined]
    except PduError:
        return None


@settings(max_examples=400)
@given(st.one_of(
    st.binary(max_size=30),
    st.tuples(st.one_of(st.none(), st.text("0123456789", min_size=1, max_size=20).map("+".__add__)),
              st.binary(max_size=10)).map(lambda t: encode_with_smsc(t[1], t[0])),
))
def test_split_smsc_agrees_with_the_construct_declaration(data: bytes) -> None:
    try:
        split = split_smsc(data)
    except PduError:
        split = None
    assert split == _declared_split_smsc(data)


@given(addresses, st.one_of(st.none(), st.just(""), st.text("0123456789", min_size=1, max_size=20).map("+".__add__)))
def test_smsc_prefix_round_trip(address: Address, smsc: str | None) -> None:
    tpdu = address.to_bytes()
    assert split_smsc(encode_with_smsc(tpdu, smsc)) == (smsc or None, tpdu)


@given(moments)
def test_timestamp_round_trip(moment: datetime) -> None:
    decoded = decode_timestamp(encode_timestamp(moment))
    assert decoded == moment and decoded.utcoffset() == moment.utcoffset()


# --- interop with python-gsmmodem (an independent implementation) -------------------------------------------------

# python-gsmmodem's GSM table has '`' where TS 23.038 has '§' (0x5F), and it lacks the form feed extension;
# its extension table maps 'ÿ' to an int (for the form feed) and then crashes encoding it. Neither '§' nor '`'
# can appear: a text all of whose characters are in its table is sent in its (wrong) 7-bit form.
GSMMODEM_CHARS = GSM_CHARS.replace("§", "").replace("\f", "")
single_part_texts = st.one_of(
    st.text(GSMMODEM_CHARS, max_size=60),
    st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0xD7FF, exclude_characters="§`\fÿ"),
        min_size=1,
        max_size=70,
    ),
)


@settings(max_examples=150)
@given(
    st.text("0123456789", min_size=3, max_size=15),
    single_part_texts,
    st.integers(0, 255),
    st.one_of(st.none(), st.integers(0, 255).map(decode_relative_validity)),
    st.booleans(),
    st.booleans(),
)
def test_python_gsmmodem_submits_decode_to_the_same_fields(
    number: str, text: str, reference: int, validity: timedelta | None, srr: bool, flash: bool
) -> None:
    (theirs,) = gsmmodem.pdu.encodeSmsSubmitPdu(
        "+" + number, text, reference, validity, None, srr, False, flash
    )
    smsc, tpdu = split_smsc(bytes(theirs.data))
    assert smsc is None and cmgs_length(bytes(theirs.data)) == theirs.tpduLength
    submit = SmsSubmit.from_bytes(tpdu)
    assert submit.destination == Address.international(number)
    assert submit.text == text
    assert (submit.tp_mr, submit.validity, submit.status_report_request) == (reference, validity, srr)
    assert submit.message_class == (0 if flash else None)
    # ...and ours encodes the very same octets from those fields.
    assert submit.to_bytes() == tpdu


# python-gsmmodem reads two-digit years as 1969-2068 and semi-octets 0xA-0xE as hex letters.
gsmmodem_moments = moments.filter(lambda moment: moment.year <= 2068)
gsmmodem_numbers = st.builds(
    Address, st.text("0123456789", min_size=1, max_size=20), st.sampled_from([0, 1, 2]), st.just(1)
)


@settings(max_examples=150)
@given(
    gsmmodem_numbers,
    gsmmodem_moments,
    single_part_texts,
    st.one_of(st.none(), st.text("0123456789", min_size=2, max_size=12).map("+".__add__)),
)
def test_our_delivers_decode_with_python_gsmmodem(
    originator: Address, scts: datetime, text: str, smsc: str | None
) -> None:
    try:
        user_data, dcs = encode_gsm7(text), Dcs.gsm7()
    except PduError:
        user_data, dcs = text.encode("utf-16-be"), Dcs.ucs2()
    deliver = SmsDeliver(originator, scts, user_data, dcs)
    theirs = gsmmodem.pdu.decodeSmsPdu(encode_with_smsc(deliver.to_bytes(), smsc).hex())
    assert theirs["type"] == "SMS-DELIVER"
    assert theirs["smsc"] == smsc
    assert theirs["number"] == str(originator)
    assert theirs["time"] == scts
    assert theirs["text"] == text


def test_our_segmented_delivers_decode_with_python_gsmmodem() -> None:
    text = "Ünïcödé needs UCS-2 ☺ " * 6
    scts = datetime(2026, 11, 23, 13, 0, tzinfo=tz(1))
    segmented = segment_text(text, reference=0x7B)
    assert segmented.encoding is Encoding.UCS2 and len(segmented.parts) == 2
    for part in segmented.parts:
        deliver = SmsDeliver(Address.international("447700900002"), scts, part.user_data, Dcs.ucs2(), part.udh)
        theirs = gsmmodem.pdu.decodeSmsPdu(encode_with_smsc(deliver.to_bytes()).hex())
        (concat,) = theirs["udh"]
        assert (concat.reference, concat.parts, concat.number) == (0x7B, 2, part.sequence)
        assert theirs["text"] == part.text


@settings(max_examples=100)
@given(status_reports())
def test_our_status_reports_decode_with_python_gsmmodem(report: SmsStatusReport) -> None:
    recipient = report.recipient
    if recipient.ton == TypeOfNumber.ALPHANUMERIC or not recipient.number.isdigit():
        return
    if max(report.scts.year, report.discharge_time.year) > 2068:
        return
    theirs = gsmmodem.pdu.decodeSmsPdu(encode_with_smsc(report.to_bytes()).hex())
    assert theirs["type"] == "SMS-STATUS-REPORT"
    assert (theirs["reference"], theirs["status"]) == (report.tp_mr, report.tp_st)
    assert theirs["number"] == str(report.recipient)
    assert (theirs["time"], theirs["discharge"]) == (report.scts, report.discharge_time)
