"""Sending one segment, the pure half: the SMS-SUBMIT TPDU for an `OutgoingSms`, and what the modem's answer to
AT+CMGS means for the message (sent with its TP-MR, or failed for now or for good)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from smsgw.modem.at import Response
from smsgw.modem.seams import OutgoingSms, SendFailed, SendOutcome, Sent
from smsgw.pdu.text import parse_data_coding
from smsgw.pdu.tpdu import Address, Dcs, SmsSubmit, TypeOfNumber

# +CMS ERROR codes after which the same message will never be accepted, whichever modem sends it: the
# destination does not exist or refuses it, or the TPDU itself is wrong. Everything else (network trouble, SIM
# barred, busy SC, unknown codes) is temporary: later or on another modem it may pass.
PERMANENT_CMS_ERRORS: Final = frozenset(
    {1, 21, 28, 30, 95, 96, 97, 99, 128, 129, 143, 144, 145, 159, 176, 195, 196, 198, 199, 304, 305}
)


def submit_tpdu(sms: OutgoingSms) -> SmsSubmit:
    encoding = parse_data_coding(sms.data_coding).encoding
    return SmsSubmit(
        destination=_destination(sms.destination),
        user_data=sms.user_data,
        dcs=Dcs.for_encoding(encoding, 0 if sms.flash else None),
        udh=sms.udh,
        validity=sms.validity,
        status_report_request=sms.status_report,
    )


def send_outcome(command: str, reply: Response, modem: str, msisdn: str) -> SendOutcome:
    """What the final answer to `command` (AT+CMGS=<length>, then the PDU) says about the segment."""
    if reply.ok:
        values = reply.values("+CMGS:")
        try:
            tp_mr = int(values[0].split(",")[0])
        except (IndexError, ValueError):
            return SendFailed(temporary=True, reason=f"answer to {command} without +CMGS: <mr>")
        return Sent(modem=modem, modem_msisdn=msisdn, tp_mr=tp_mr, sent_at=datetime.now(UTC))
    cms = reply.result.cms_error
    return SendFailed(
        temporary=cms not in PERMANENT_CMS_ERRORS,
        reason=reply.result.meaning,
        cms_error=cms,
    )


def _destination(number: str) -> Address:
    """International digits (the seam's contract), '+digits', or national digits with their trunk prefix '0'."""
    digits = number.removeprefix("+")
    if digits.startswith("0") and not number.startswith("+"):
        return Address(digits, TypeOfNumber.UNKNOWN)
    return Address.international(digits)
