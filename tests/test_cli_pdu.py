"""`smsgw pdu decode` and `smsgw pdu encode-sms`, run through `smsgw.cli.main`."""

from __future__ import annotations

import json
from typing import Any

import gsmmodem.pdu
import pytest

from smsgw.cli import main
from smsgw.pdu.tpdu import SmsSubmit, split_smsc

# python-smpplib tests/test_command.py test_parse_deliver_sm: a real delivery receipt whose text travels in
# message_payload, with receipted_message_id, message_state, network types and more_messages_to_send TLVs.
# Header | source 1/1 "31600000000" | destination 5/0 "XXX YYYY" | esm_class 0x04 ... sm_length 0 | TLVs.
RECEIPT_DELIVER_SM = bytes.fromhex(
    "000000CB0000000500000000000000010001013331363030303030303030000500585858205959595900040000000000"
    "00000000000E0001010006000101001E000931643330356234630004270001020424007269643A303438393730383336"
    "34207375623A30303120646C7672643A303031207375626D697420646174653A3138313031353139303720646F6E6520"
    "646174653A3138313031353139303720737461743A44454C49565244206572723A30303020746578743A041F04400438"
    "0432043504420426000101"
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def decode(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run(capsys, "pdu", "decode", *argv)
    assert (code, err) == (0, "")
    described: dict[str, Any] = json.loads(out)
    return described


def encode_lines(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    code, out, err = run(capsys, "pdu", "encode-sms", *argv)
    assert (code, err) == (0, "")
    return [json.loads(line) for line in out.splitlines()]


def test_decode_receipt_deliver_sm_prints_every_field_and_the_receipt(capsys: pytest.CaptureFixture[str]) -> None:
    described = decode(capsys, RECEIPT_DELIVER_SM.hex())
    assert described["kind"] == "smpp"
    assert (described["command_id"], described["command_name"]) == ("0x00000005", "DELIVER_SM")
    assert (described["command_status"], described["command_status_name"]) == (0, "ESME_ROK")
    assert described["sequence_number"] == 1
    source = (described["source_addr_ton"], described["source_addr_npi"], described["source_addr"])
    destination = (described["dest_addr_ton"], described["dest_addr_npi"], described["destination_addr"])
    assert (source, destination) == ((1, 1, "31600000000"), (5, 0, "XXX YYYY"))
    assert described["esm_class"] == 4 and described["data_coding"] == 0 and described["short_message"] == ""
    for name in ("service_type", "protocol_id", "priority_flag", "schedule_delivery_time", "validity_period",
                 "registered_delivery", "replace_if_present_flag", "sm_default_msg_id"):
        assert name in described
    tlvs = described["tlvs"]
    assert tlvs["receipted_message_id"] == "1d305b4c"
    assert tlvs["message_state"] == 2
    assert (tlvs["source_network_type"], tlvs["dest_network_type"], tlvs["more_messages_to_send"]) == (1, 1, 1)
    assert bytes.fromhex(tlvs["message_payload"]).startswith(b"id:0489708364 sub:001")
    assert tlvs["unknown"] == []
    receipt = described["receipt"]
    # The TLV id wins over the text's decimal id.
    assert receipt["message_id"] == "1d305b4c"
    assert (receipt["submitted"], receipt["delivered"]) == (1, 1)
    assert receipt["submit_date"] == receipt["done_date"] == "2018-10-15T19:07:00"
    assert (receipt["stat"], receipt["err"], receipt["message_state"], receipt["is_final"]) == (
        "DELIVRD",
        "000",
        "DELIVERED",
        True,
    )
    assert described["text"].startswith("id:0489708364")


def test_decode_unknown_tlv_is_shown(capsys: pytest.CaptureFixture[str]) -> None:
    # enquire_link cannot carry TLVs; a deliver_sm with a vendor TLV 0x1401 (value "AB") can.
    body = RECEIPT_DELIVER_SM[16:] + b"\x14\x01\x00\x02AB"
    data = (16 + len(body)).to_bytes(4, "big") + RECEIPT_DELIVER_SM[4:16] + body
    described = decode(capsys, data.hex(), "--kind", "smpp")
    assert described["tlvs"]["unknown"] == [{"tag": "0x1401", "value": "4142"}]


def test_decode_submit_tpdu_with_smsc_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    # Lars Pettersson, "SMS and the PDU format" (dreamfabric.com/sms): the "hellohello" SMS-SUBMIT.
    described = decode(capsys, "00 11 00 0B 91 64 07 28 15 53 F8 00 00 AA 0A E8 32 9B FD 46 97 D9 EC 37")
    assert described["kind"] == "tpdu" and described["type"] == "SMS-SUBMIT"
    assert (described["smsc_prefix"], described["smsc"], described["tpdu_length"]) == (True, None, 23)
    assert described["destination"] == {"number": "+46708251358", "ton": "INTERNATIONAL", "npi": "ISDN"}
    assert described["dcs"]["encoding"] == "GSM7" and described["message_class"] is None
    assert described["validity"] == 4 * 24 * 3600
    assert described["text"] == "hellohello"
    assert described["user_data"] == b"hellohello".hex().upper()


def test_decode_deliver_with_udh_and_status_reports(capsys: pytest.CaptureFixture[str]) -> None:
    # python-gsmmodem test/test_pdu.py test_decode: a concatenated SMS-DELIVER.
    deliver = decode(
        capsys,
        "0591721891F1400781721881F800003160526104848059050003C30101916536FB1DCABEEB2074D85E064941B19CAB060319A5C522"
        "289C96D3D3ED32286C0FA7D96131BBEC024941B19CAB0603DDD36C36A88C87A7E565D0DB0D82C55EB0DB4B068BCD5C20",
    )
    assert deliver["type"] == "SMS-DELIVER" and deliver["smsc"] == "+2781191"
    assert deliver["originator"] == {"number": "2781188", "ton": "UNKNOWN", "npi": "ISDN"}
    assert deliver["scts"] == "2013-06-25T16:40:48+02:00"
    assert deliver["udh_elements"] == [
        {"element": "Concatenation", "reference": 0xC3, "total": 1, "sequence": 1, "reference_bits": 8}
    ]
    assert deliver["text"].startswith("Hello!You have R 19.50 FREE airtime")
    # ModemManager src/tests/test-modem-helpers.c test_parse_cds.
    report = decode(capsys, "07914356060013F1065A098136395339F6219011700463802190117004638030")
    assert report["type"] == "SMS-STATUS-REPORT" and report["smsc"] == "+34656000311"
    assert (report["tp_mr"], report["tp_st"], report["status_meaning"], report["is_final"]) == (
        0x5A,
        0x30,
        "temporary_still_trying",
        False,
    )
    # nRF Connect SDK tests/lib/sms/src/main.c: no SMSC prefix at all.
    report = decode(capsys, "06550A912143658709122022118314801220221183148000", "--kind", "status-report")
    assert (report["smsc_prefix"], report["smsc"], report["tpdu_length"]) == (False, None, 24)
    assert (report["status_name"], report["status_meaning"]) == ("RECEIVED_BY_SME", "delivered")
    assert report["recipient"]["number"] == "+1234567890"
    assert report["discharge_time"] == "2021-02-22T11:38:41+02:00"


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["zz"], "bad hex"),
        (["0"], "bad hex"),
        ([""], "0 octets cannot be a PDU"),
        (["0000"], "2 octets cannot be a PDU: an SMPP PDU has at least 16 octets"),
        (["0011000B916407281553F80000AA0AE8329BFD4697D9"], "neither an SMPP PDU"),
        (["0011000B916407281553F80000AA0AE8329BFD4697D9EC37", "--kind", "deliver"], "not an SMS-DELIVER"),
        (["0011000B916407281553F80000AA0AE8329BFD4697D9EC37", "--kind", "smpp"], "command_length 1114123 but 24"),
        # command_length says 17 octets, 16 given: auto-detection sees no SMPP PDU, --kind smpp names the length.
        (["00000011000000150000000000000001", "--kind", "smpp"], "command_length"),
    ],
)
def test_decode_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], problem: str) -> None:
    code, out, err = run(capsys, "pdu", "decode", *argv)
    assert code == 2 and out == ""
    assert err.startswith("smsgw: error: ") and problem in err and err.count("\n") == 1


def test_encode_sms_single_part(capsys: pytest.CaptureFixture[str]) -> None:
    (line,) = encode_lines(capsys, "--to", "+46708251358", "--text", "hellohello", "--validity", "5760")
    # Lars Pettersson's published SMS-SUBMIT: same number, text and 4-day validity.
    assert line == {"part": 1, "parts": 1, "length": 23, "pdu": "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"}


def test_encode_sms_flash_unicode_srr_smsc(capsys: pytest.CaptureFixture[str]) -> None:
    (line,) = encode_lines(
        capsys, "--to", "447700900001", "--text", "hi", "--flash", "--unicode", "--srr", "--smsc", "+447700900999",
        "--mr", "9",
    )
    pdu = bytes.fromhex(line["pdu"])
    smsc, tpdu = split_smsc(pdu)
    assert smsc == "+447700900999" and line["length"] == len(tpdu) == len(pdu) - 8
    submit = SmsSubmit.from_bytes(tpdu)
    assert submit.dcs.value == 0x18 and submit.message_class == 0 and submit.text == "hi"
    assert submit.status_report_request and submit.tp_mr == 9 and submit.validity is None
    assert submit.destination.number == "447700900001" and submit.destination.ton == 0


def test_encode_sms_multipart_decodes_back_and_with_python_gsmmodem(capsys: pytest.CaptureFixture[str]) -> None:
    text = "Ünïcödé text that needs UCS-2 and more than one part: " + "ж" * 80
    lines = encode_lines(capsys, "--to", "+447700900002", "--text", text, "--reference", "77", "--mr", "255")
    assert [(line["part"], line["parts"]) for line in lines] == [(1, 2), (2, 2)]
    decoded = [decode(capsys, line["pdu"]) for line in lines]
    assert [d["tp_mr"] for d in decoded] == [255, 0]
    assert [d["tpdu_length"] for d in decoded] == [line["length"] for line in lines]
    assert "".join(d["text"] for d in decoded) == text
    assert [d["udh_elements"][0]["reference"] for d in decoded] == [77, 77]
    theirs = [gsmmodem.pdu.decodeSmsPdu(line["pdu"]) for line in lines]
    assert "".join(t["text"] for t in theirs) == text
    assert {t["number"] for t in theirs} == {"+447700900002"}


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--to", "Shop", "--text", "x"], "not a number"),
        (["--to", "+4477", "--text", "x" * 460], "segments"),
        (["--to", "+4477", "--text", "x", "--validity", "0"], "validity"),
        (["--to", "+4477", "--text", "x", "--reference", "256"], "reference"),
        (["--to", "+4477", "--text", "x", "--mr", "-1"], "--mr"),
        (["--to", "+4477", "--text", "x", "--smsc", "SMSC"], "SMSC"),
    ],
)
def test_encode_sms_errors_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], problem: str
) -> None:
    code, out, err = run(capsys, "pdu", "encode-sms", *argv)
    assert code == 2 and out == ""
    assert err.startswith("smsgw: error: ") and problem in err and err.count("\n") == 1
