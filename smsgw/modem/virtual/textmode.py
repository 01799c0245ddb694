"""SMS as text mode (`+CMGF=1`) shows them (TS 27.005 3.1, 3.3.4, 4): times, status report fields, the `+CSDH`
header fields, and user data in the `+CSCS` character set."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from smsgw.modem.virtual.commands import CMS_INVALID_TEXT_PARAMETER, CmsError
from smsgw.pdu.errors import PduError
from smsgw.pdu.gsm7 import decode_gsm7, encode_gsm7
from smsgw.pdu.text import Encoding
from smsgw.pdu.tpdu import Dcs, SmsDeliver, SmsStatusReport

CHARSETS: Final = ("GSM", "IRA", "UCS2")


def text_time(moment: datetime) -> str:
    """TS 27.005 3.3.4 `yy/MM/dd,hh:mm:ss±zz` (zz in quarter hours)."""
    offset = moment.utcoffset() or timedelta(0)
    quarters = int(offset.total_seconds() // 900)
    return moment.strftime("%y/%m/%d,%H:%M:%S") + f"{'+' if quarters >= 0 else '-'}{abs(quarters):02d}"


def status_report_fields(report: SmsStatusReport) -> str:
    """`<fo>,<mr>,"<ra>",<tora>,"<scts>","<dt>",<st>` of a status report in text mode (TS 27.005 3.4.1)."""
    return (
        f'{report.to_bytes()[0]},{report.tp_mr},"{report.recipient}",{report.recipient.type_of_address},'
        f'"{text_time(report.scts)}","{text_time(report.discharge_time)}",{report.tp_st}'
    )


def csdh_fields(message: SmsDeliver, smsc: str) -> str:
    """`,<tooa>,<fo>,<pid>,<dcs>,<sca>,<tosca>,<length>`: what `+CSDH=1` adds to a text mode header."""
    tpdu = message.to_bytes()
    return (
        f",{message.originator.type_of_address},{tpdu[0]},{message.tp_pid},{message.dcs.value},"
        f'"+{smsc}",145,{len(message.user_data)}'
    )


def text_body(dcs: Dcs, user_data: bytes, charset: str) -> str:
    """User data as text mode shows it: in the +CSCS character set, or hex for 8-bit and UCS-2 data."""
    if dcs.encoding is Encoding.GSM7:
        return to_charset(decode_gsm7(user_data), charset)
    return user_data.hex().upper()


def to_charset(text: str, charset: str) -> str:
    if charset == "UCS2":
        return text.encode("utf-16-be").hex().upper()
    if charset == "GSM":
        return encode_gsm7(text.encode("ascii", "replace").decode()).decode("latin-1")
    return text.encode("ascii", "replace").decode("ascii")


def from_charset(data: bytes, charset: str) -> str:
    if charset == "UCS2":
        try:
            return bytes.fromhex(data.decode("ascii")).decode("utf-16-be")
        except (ValueError, UnicodeDecodeError):
            raise CmsError(CMS_INVALID_TEXT_PARAMETER) from None
    if charset == "GSM":
        try:
            return decode_gsm7(data)
        except PduError:
            raise CmsError(CMS_INVALID_TEXT_PARAMETER) from None
    return data.decode("latin-1")
