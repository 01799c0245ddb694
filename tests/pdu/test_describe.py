"""`decode_any`/`describe_*`: whatever bytes come in, a JSON-ready description or one PduError."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.pdu.describe import KINDS, Kind, decode_any, describe_tpdu
from smsgw.pdu.errors import PduError
from smsgw.pdu.gsm7 import encode_gsm7
from smsgw.pdu.smpp import DeliverSm, encode_pdu
from smsgw.pdu.tlv import Tlvs
from smsgw.pdu.tpdu import Address, Dcs, SmsDeliver, SmsStatusReport, encode_with_smsc


@settings(max_examples=300)
@given(st.binary(max_size=120), st.sampled_from(KINDS), st.booleans())
def test_random_bytes_describe_or_raise_pdu_error(data: bytes, kind: Kind, length_prefixed: bool) -> None:
    if length_prefixed:  # so that auto-detection takes the SMPP path
        data = (len(data) + 4).to_bytes(4, "big") + data
    try:
        described = decode_any(data, kind)
    except PduError:
        return
    json.dumps(described)
    assert described["kind"] in ("smpp", "tpdu")


def test_status_report_kind_and_auto_agree() -> None:
    report = SmsStatusReport(
        7,
        Address.international("447700922001"),
        datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc),
        datetime(2026, 11, 23, 12, 1, tzinfo=timezone.utc),
        0x41,
    )
    pdu = encode_with_smsc(report.to_bytes(), "+447700900000")
    described = decode_any(pdu)
    assert described == decode_any(pdu, "status-report")
    assert described["status_name"] == "INCOMPATIBLE_DESTINATION"
    assert (described["status_meaning"], described["is_final"]) == ("permanent", True)
    assert described["recipient"] == {"number": "+447700922001", "ton": "INTERNATIONAL", "npi": "ISDN"}


def test_undecodable_text_and_udh_are_reported_not_raised() -> None:
    # An odd number of UCS-2 octets, and a UDH whose element runs past its UDHL.
    deliver = SmsDeliver(
        Address.alphanumeric("Info"),
        datetime(2026, 1, 1, tzinfo=timezone.utc),
        b"\x00A\x00",
        Dcs.ucs2(),
        udh=b"\x02\x00\x03",
    )
    described = describe_tpdu(deliver, smsc=None, smsc_prefix=False, tpdu_length=len(deliver.to_bytes()))
    assert described["text"] is None and "UCS2" in described["text_error"]
    assert "runs past UDHL" in described["udh_error"]
    assert described["originator"] == {"number": "Info", "ton": "ALPHANUMERIC", "npi": "UNKNOWN"}


def test_mobile_originated_deliver_sm_text_and_udh() -> None:
    udh = b"\x05\x00\x03\x2a\x02\x01"
    pdu = DeliverSm(
        sequence_number=9,
        source_addr="447700900001",
        esm_class=0x40,
        data_coding=0,
        short_message=udh + encode_gsm7("first half"),
        tlvs=Tlvs(user_message_reference=3),
    )
    described = decode_any(encode_pdu(pdu))
    assert described["text"] == "first half" and "receipt" not in described
    assert described["udh_elements"] == [
        {"element": "Concatenation", "reference": 0x2A, "total": 2, "sequence": 1, "reference_bits": 8}
    ]
    assert described["tlvs"] == {"user_message_reference": 3, "unknown": []}
