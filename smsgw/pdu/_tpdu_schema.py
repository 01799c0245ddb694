"""Construct declarations of the 3GPP TS 23.040 TPDU layouts; `tpdu.py` hides them behind typed values.

Section numbers are those of TS 23.040 (9.2.2 layouts, 9.1.2.5 addresses, 9.2.3.x fields) and TS 24.011
(8.2.5.x, the RP address that modems put in front of the TPDU in PDU mode).
"""

from __future__ import annotations

from typing import Final

from construct import (
    BitsInteger,
    BitStruct,
    Bytes,
    Flag,
    GreedyBytes,
    If,
    Int8ub,
    Padding,
    Pass,
    RepeatUntil,
    Struct,
    Switch,
    this,
)

# 9.1.2.5: bit 7 is always 1 on the wire ("extension"), then 3 bits type of number, 4 bits numbering plan.
TypeOfAddress: Final = BitStruct("extension" / Flag, "ton" / BitsInteger(3), "npi" / BitsInteger(4))

# 9.1.2.5: the length counts the *useful semi-octets* of the value (digits, or 4-bit units of packed text).
AddressField: Final = Struct(
    "length" / Int8ub,
    "toa" / TypeOfAddress,
    "value" / Bytes((this.length + 1) // 2),
)

# TS 24.011 8.2.5.1: the SMSC (RP) address counts *octets*, type octet included; 0 means "no address".
SmscField: Final = Struct(
    "length" / Int8ub,
    "address" / If(this.length > 0, Struct("toa" / TypeOfAddress, "value" / Bytes(this._.length - 1))),
)

# 9.2.3.11: seven semi-octet pairs YY MM DD hh mm ss zz (time zone in quarter hours with a sign bit).
TimeStamp: Final = Bytes(7)

# 9.2.3.3: TP-VPF selects the TP-VP layout. 0 none, 2 relative (one octet), 1 enhanced and 3 absolute (7 octets).
VPF_NONE: Final = 0
VPF_ENHANCED: Final = 1
VPF_RELATIVE: Final = 2
VPF_ABSOLUTE: Final = 3

MTI_DELIVER: Final = 0
MTI_SUBMIT: Final = 1
MTI_STATUS_REPORT: Final = 2
MTI_RESERVED: Final = 3

SubmitFirstOctet: Final = BitStruct(
    "tp_rp" / Flag,
    "tp_udhi" / Flag,
    "tp_srr" / Flag,
    "tp_vpf" / BitsInteger(2),
    "tp_rd" / Flag,
    "tp_mti" / BitsInteger(2),
)

DeliverFirstOctet: Final = BitStruct(
    "tp_rp" / Flag,
    "tp_udhi" / Flag,
    "tp_sri" / Flag,
    Padding(1),
    "tp_lp" / Flag,
    "tp_mms" / Flag,
    "tp_mti" / BitsInteger(2),
)

StatusReportFirstOctet: Final = BitStruct(
    Padding(1),
    "tp_udhi" / Flag,
    "tp_srq" / Flag,
    Padding(1),
    "tp_lp" / Flag,
    "tp_mms" / Flag,
    "tp_mti" / BitsInteger(2),
)

# 9.2.2.2 SMS-SUBMIT. TP-UD is taken greedily; its length against TP-UDL depends on the DCS, checked in tpdu.py.
SmsSubmitLayout: Final = Struct(
    "first" / SubmitFirstOctet,
    "tp_mr" / Int8ub,
    "tp_da" / AddressField,
    "tp_pid" / Int8ub,
    "tp_dcs" / Int8ub,
    "tp_vp"
    / Switch(
        this.first.tp_vpf,
        {VPF_NONE: Pass, VPF_RELATIVE: Int8ub, VPF_ENHANCED: Bytes(7), VPF_ABSOLUTE: TimeStamp},
    ),
    "tp_udl" / Int8ub,
    "tp_ud" / GreedyBytes,
)

# 9.2.2.1 SMS-DELIVER.
SmsDeliverLayout: Final = Struct(
    "first" / DeliverFirstOctet,
    "tp_oa" / AddressField,
    "tp_pid" / Int8ub,
    "tp_dcs" / Int8ub,
    "tp_scts" / TimeStamp,
    "tp_udl" / Int8ub,
    "tp_ud" / GreedyBytes,
)

# 9.2.2.3 SMS-STATUS-REPORT. Everything after TP-ST is optional (TP-PI and the fields it announces).
SmsStatusReportLayout: Final = Struct(
    "first" / StatusReportFirstOctet,
    "tp_mr" / Int8ub,
    "tp_ra" / AddressField,
    "tp_scts" / TimeStamp,
    "tp_dt" / TimeStamp,
    "tp_st" / Int8ub,
    "tail" / GreedyBytes,
)

# 9.2.3.27 TP-PI: bit 0 TP-PID, bit 1 TP-DCS, bit 2 TP-UDL present; bit 7 says another TP-PI octet follows
# (its bits are reserved, so they are read and ignored as the spec asks).
PI_PID: Final = 0x01
PI_DCS: Final = 0x02
PI_UDL: Final = 0x04
PI_EXTENSION: Final = 0x80

StatusReportParameters: Final = Struct(
    "tp_pi" / Int8ub,
    "tp_pi_extension"
    / If(this.tp_pi & PI_EXTENSION, RepeatUntil(lambda octet, _, __: not octet & PI_EXTENSION, Int8ub)),
    "tp_pid" / If(this.tp_pi & PI_PID, Int8ub),
    "tp_dcs" / If(this.tp_pi & PI_DCS, Int8ub),
    "tp_udl" / If(this.tp_pi & PI_UDL, Int8ub),
    "tp_ud" / GreedyBytes,
)

