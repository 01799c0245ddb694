"""3GPP TS 23.040 TPDUs for GSM modems in PDU mode: SMS-SUBMIT, SMS-DELIVER and SMS-STATUS-REPORT, both ways.

The host (our modem driver) encodes SMS-SUBMIT and decodes SMS-DELIVER and SMS-STATUS-REPORT; the virtual modem
does the reverse, so every type has `to_bytes` and `from_bytes`. The layouts are the construct declarations of
`_tpdu_schema`; the field values (addresses, TP-DCS, timestamps, validity, user data, the SMSC prefix) are the
types of `tp_fields`, re-exported here so that callers import every TPDU name from this module.

User data is held as the UDH (its UDHL octet included, empty when TP-UDHI is 0) and the rest: for GSM 7-bit the
rest is *unpacked* septets, one per octet, as `segmentation` produces them; packing with the UDH fill bits happens
in `tp_fields`. In PDU mode a modem prefixes the TPDU with the SMSC address (`encode_with_smsc`, `split_smsc`), and
`AT+CMGS=<length>` counts only the TPDU (`cmgs_length`).

Decoding untrusted bytes raises only `PduError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, TypeAlias

from construct import ConstructError

from . import _tpdu_schema as schema
from .constants import CommandStatus
from .errors import PduError
from .tp_fields import (
    MALFORMED_TPDU,
    MAX_ADDRESS_SEMI_OCTETS,
    MAX_ALPHANUMERIC_SEPTETS,
    MAX_SMSC_OCTETS,
    MAX_USER_DATA_OCTETS,
    MAX_USER_DATA_SEPTETS,
    Address,
    Dcs,
    DcsGroup,
    NumberingPlan,
    TypeOfNumber,
    cmgs_length,
    decode_relative_validity,
    decode_timestamp,
    decode_user_data,
    dialled_type_of_address,
    encode_relative_validity,
    encode_timestamp,
    encode_user_data,
    encode_with_smsc,
    parse_layout,
    split_smsc,
    ton_npi,
    type_of_address_octet,
    user_data_text,
)

__all__ = [
    "MAX_ADDRESS_SEMI_OCTETS",
    "MAX_ALPHANUMERIC_SEPTETS",
    "MAX_SMSC_OCTETS",
    "MAX_USER_DATA_OCTETS",
    "MAX_USER_DATA_SEPTETS",
    "Address",
    "Dcs",
    "DcsGroup",
    "Direction",
    "NumberingPlan",
    "SmsDeliver",
    "SmsStatusReport",
    "SmsSubmit",
    "StatusMeaning",
    "TpStatus",
    "Tpdu",
    "TypeOfNumber",
    "cmgs_length",
    "decode_relative_validity",
    "decode_timestamp",
    "decode_tpdu",
    "dialled_type_of_address",
    "encode_relative_validity",
    "encode_timestamp",
    "encode_with_smsc",
    "split_smsc",
    "status_meaning",
    "status_name",
    "type_of_address_octet",
]

Direction: TypeAlias = Literal["mt", "mo"]


class _ShortMessage:
    """What SMS-SUBMIT and SMS-DELIVER say alike about their user data."""

    __slots__ = ()
    dcs: Dcs
    user_data: bytes

    @property
    def message_class(self) -> int | None:
        """0 is "flash" (shown at once, not stored); None when the TP-DCS gives no class."""
        return self.dcs.message_class

    @property
    def text(self) -> str | None:
        """The user data as text (without the UDH); None for 8-bit data or compressed text."""
        return user_data_text(self.dcs, self.user_data)


def _check_mti(data: bytes, accepted: tuple[int, ...], what: str) -> None:
    if not data:
        raise PduError(f"empty {what}", command_status=MALFORMED_TPDU)
    if data[0] & 0x03 not in accepted:
        raise PduError(f"TP-MTI {data[0] & 0x03} is not an {what}", command_status=MALFORMED_TPDU)


# --- the three TPDUs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmsSubmit(_ShortMessage):
    """SMS-SUBMIT (9.2.2.2), MS to SC. `validity` is relative (timedelta) or absolute (datetime) or absent."""

    destination: Address
    user_data: bytes = b""
    dcs: Dcs = Dcs()
    udh: bytes = b""
    tp_mr: int = 0
    tp_pid: int = 0
    validity: timedelta | datetime | None = None
    status_report_request: bool = False
    reject_duplicates: bool = False
    reply_path: bool = False

    def to_bytes(self) -> bytes:
        # Built by hand in the layout of schema.SmsSubmitLayout (a property test holds them equal): the modem
        # driver encodes one per segment, and the construct builder took a quarter of the driver's CPU.
        udl, ud = encode_user_data(self.dcs, self.udh, self.user_data)
        if isinstance(self.validity, datetime):
            vpf, vp = schema.VPF_ABSOLUTE, encode_timestamp(self.validity)
        elif self.validity is not None:
            vpf, vp = schema.VPF_RELATIVE, bytes((encode_relative_validity(self.validity),))
        else:
            vpf, vp = schema.VPF_NONE, b""
        _check_octets(("TP-MR", self.tp_mr), ("TP-PID", self.tp_pid))
        first = (
            bool(self.reply_path) << 7
            | bool(self.udh) << 6
            | bool(self.status_report_request) << 5
            | vpf << 3
            | bool(self.reject_duplicates) << 2
            | schema.MTI_SUBMIT
        )
        return (
            bytes((first, self.tp_mr))
            + self.destination.to_bytes()
            + bytes((self.tp_pid, self.dcs.value))
            + vp
            + bytes((udl,))
            + ud
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SmsSubmit:
        _check_mti(data, (schema.MTI_SUBMIT,), "SMS-SUBMIT")
        fields = _submit_fields(data)
        first = fields.first
        vpf = first >> 3 & 0x03
        validity: timedelta | datetime | None = None
        if vpf == schema.VPF_RELATIVE:
            validity = decode_relative_validity(fields.tp_vp[0])
        elif vpf == schema.VPF_ABSOLUTE:
            validity = decode_timestamp(fields.tp_vp, "TP-VP")
        elif vpf == schema.VPF_ENHANCED:
            raise PduError(
                "enhanced TP-VP format (9.2.3.12.3) is not supported", command_status=CommandStatus.ESME_RINVEXPIRY
            )
        dcs = Dcs(fields.tp_dcs)
        udh, user_data = decode_user_data(dcs, bool(first & 0x40), fields.tp_udl, fields.tp_ud)
        return cls(
            destination=Address.from_fields(
                *ton_npi(fields.da_toa), fields.da_length, fields.da_value, CommandStatus.ESME_RINVDSTADR
            ),
            user_data=user_data,
            dcs=dcs,
            udh=udh,
            tp_mr=fields.tp_mr,
            tp_pid=fields.tp_pid,
            validity=validity,
            status_report_request=bool(first & 0x20),
            reject_duplicates=bool(first & 0x04),
            reply_path=bool(first & 0x80),
        )


@dataclass(frozen=True, slots=True)
class SmsDeliver(_ShortMessage):
    """SMS-DELIVER (9.2.2.1), SC to MS. `more_messages` is the inverse of TP-MMS (whose 1 means "no more")."""

    originator: Address
    scts: datetime
    user_data: bytes = b""
    dcs: Dcs = Dcs()
    udh: bytes = b""
    tp_pid: int = 0
    more_messages: bool = False
    loop_prevention: bool = False
    status_report_indication: bool = False
    reply_path: bool = False

    def to_bytes(self) -> bytes:
        # Built by hand in the layout of schema.SmsDeliverLayout (a property test holds them equal): the virtual
        # network encodes one per MT message, and the construct builder cost more than the rest of its handling.
        udl, ud = encode_user_data(self.dcs, self.udh, self.user_data)
        originator = self.originator.to_bytes()
        scts = encode_timestamp(self.scts)
        _check_octets(("TP-PID", self.tp_pid))
        first = (
            bool(self.reply_path) << 7
            | bool(self.udh) << 6
            | bool(self.status_report_indication) << 5
            | bool(self.loop_prevention) << 3
            | (not self.more_messages) << 2
            | schema.MTI_DELIVER
        )
        return bytes((first,)) + originator + bytes((self.tp_pid, self.dcs.value)) + scts + bytes((udl,)) + ud

    @classmethod
    def from_bytes(cls, data: bytes) -> SmsDeliver:
        # 9.2.3.1: a mobile receiving the reserved TP-MTI value treats the TPDU as an SMS-DELIVER.
        _check_mti(data, (schema.MTI_DELIVER, schema.MTI_RESERVED), "SMS-DELIVER")
        parsed = parse_layout(schema.SmsDeliverLayout, data, "SMS-DELIVER")
        first = parsed.first
        dcs = Dcs(parsed.tp_dcs)
        udh, user_data = decode_user_data(dcs, first.tp_udhi, parsed.tp_udl, parsed.tp_ud)
        return cls(
            originator=Address.from_parsed(parsed.tp_oa, CommandStatus.ESME_RINVSRCADR),
            scts=decode_timestamp(parsed.tp_scts, "TP-SCTS"),
            user_data=user_data,
            dcs=dcs,
            udh=udh,
            tp_pid=parsed.tp_pid,
            more_messages=not first.tp_mms,
            loop_prevention=first.tp_lp,
            status_report_indication=first.tp_sri,
            reply_path=first.tp_rp,
        )


class TpStatus(enum.IntEnum):
    """TS 23.040 9.2.3.15 TP-Status values that have a name."""

    RECEIVED_BY_SME = 0x00
    FORWARDED_UNCONFIRMED = 0x01
    REPLACED_BY_SC = 0x02
    CONGESTION = 0x20
    SME_BUSY = 0x21
    NO_RESPONSE_FROM_SME = 0x22
    SERVICE_REJECTED = 0x23
    QUALITY_OF_SERVICE_NOT_AVAILABLE = 0x24
    ERROR_IN_SME = 0x25
    REMOTE_PROCEDURE_ERROR = 0x40
    INCOMPATIBLE_DESTINATION = 0x41
    CONNECTION_REJECTED_BY_SME = 0x42
    NOT_OBTAINABLE = 0x43
    PERMANENT_QUALITY_OF_SERVICE_NOT_AVAILABLE = 0x44
    NO_INTERWORKING_AVAILABLE = 0x45
    VALIDITY_PERIOD_EXPIRED = 0x46
    DELETED_BY_ORIGINATING_SME = 0x47
    DELETED_BY_SC_ADMINISTRATION = 0x48
    SM_DOES_NOT_EXIST = 0x49
    CONGESTION_GAVE_UP = 0x60
    SME_BUSY_GAVE_UP = 0x61
    NO_RESPONSE_FROM_SME_GAVE_UP = 0x62
    SERVICE_REJECTED_GAVE_UP = 0x63
    QUALITY_OF_SERVICE_NOT_AVAILABLE_GAVE_UP = 0x64
    ERROR_IN_SME_GAVE_UP = 0x65


class StatusMeaning(enum.Enum):
    """What a TP-Status says about the message: final (delivered, permanent, expired, gave up) or still trying."""

    DELIVERED = "delivered"
    TEMPORARY_STILL_TRYING = "temporary_still_trying"
    PERMANENT = "permanent"
    EXPIRED = "expired"
    TEMPORARY_GAVE_UP = "temporary_gave_up"

    @property
    def is_final(self) -> bool:
        return self is not StatusMeaning.TEMPORARY_STILL_TRYING


# 9.2.3.15: values reserved within their range; "SC specific" values (0x10-0x1F, 0x30-0x3F, 0x50-0x5F,
# 0x70-0x7F) keep the meaning of their range.
_RESERVED_STATUS: Final = (
    range(0x03, 0x10),
    range(0x26, 0x30),
    range(0x4A, 0x50),
    range(0x66, 0x70),
    range(0x80, 0x100),
)


def status_meaning(tp_st: int) -> StatusMeaning:
    """The meaning of a TP-Status; reserved values are treated as 0x63 "service rejected", as 9.2.3.15 asks."""
    if any(tp_st in reserved for reserved in _RESERVED_STATUS):
        tp_st = TpStatus.SERVICE_REJECTED_GAVE_UP
    if tp_st == TpStatus.VALIDITY_PERIOD_EXPIRED:
        return StatusMeaning.EXPIRED
    return (
        StatusMeaning.DELIVERED,
        StatusMeaning.TEMPORARY_STILL_TRYING,
        StatusMeaning.PERMANENT,
        StatusMeaning.TEMPORARY_GAVE_UP,
    )[tp_st >> 5]


def status_name(tp_st: int) -> str:
    """The TP-Status value's name, `SC_SPECIFIC_0xNN` or `RESERVED_0xNN`."""
    try:
        return TpStatus(tp_st).name
    except ValueError:
        pass
    if any(tp_st in reserved for reserved in _RESERVED_STATUS):
        return f"RESERVED_0x{tp_st:02X}"
    return f"SC_SPECIFIC_0x{tp_st:02X}"


@dataclass(frozen=True, slots=True)
class SmsStatusReport:
    """SMS-STATUS-REPORT (9.2.2.3), SC to MS: what became of the SMS-SUBMIT whose TP-MR was `tp_mr`.

    The optional tail (TP-PI, then TP-PID / TP-DCS / TP-UDL + TP-UD) is present when any of `tp_pid`, `dcs`,
    `user_data` is not None.
    """

    tp_mr: int
    recipient: Address
    scts: datetime
    discharge_time: datetime
    tp_st: int
    more_messages: bool = False
    loop_prevention: bool = False
    # TP-SRQ: the report answers an SMS-COMMAND rather than an SMS-SUBMIT.
    status_report_qualifier: bool = False
    tp_pid: int | None = None
    dcs: Dcs | None = None
    user_data: bytes | None = None
    udh: bytes = b""

    @property
    def status_meaning(self) -> StatusMeaning:
        return status_meaning(self.tp_st)

    @property
    def status_name(self) -> str:
        return status_name(self.tp_st)

    @property
    def text(self) -> str | None:
        if self.user_data is None:
            return None
        return user_data_text(self.dcs or Dcs(), self.user_data)

    def to_bytes(self) -> bytes:
        if self.udh and self.user_data is None:
            raise PduError("a status report UDH needs user data (TP-UDL)", command_status=MALFORMED_TPDU)
        # The head is built by hand in the layout of schema.SmsStatusReportLayout (a property test holds them
        # equal): the virtual network encodes one per report; the optional tail is rare and keeps construct.
        recipient = self.recipient.to_bytes()
        times = encode_timestamp(self.scts) + encode_timestamp(self.discharge_time)
        _check_octets(("TP-MR", self.tp_mr), ("TP-ST", self.tp_st))
        first = (
            bool(self.udh) << 6
            | bool(self.status_report_qualifier) << 5
            | bool(self.loop_prevention) << 3
            | (not self.more_messages) << 2
            | schema.MTI_STATUS_REPORT
        )
        head = bytes((first, self.tp_mr)) + recipient + times + bytes((self.tp_st,))
        if self.tp_pid is None and self.dcs is None and self.user_data is None:
            return head
        pi = (
            (schema.PI_PID if self.tp_pid is not None else 0)
            | (schema.PI_DCS if self.dcs is not None else 0)
            | (schema.PI_UDL if self.user_data is not None else 0)
        )
        udl, ud = (None, b"")
        if self.user_data is not None:
            udl, ud = encode_user_data(self.dcs or Dcs(), self.udh, self.user_data)
        tail = _build(
            schema.StatusReportParameters,
            {
                "tp_pi": pi,
                "tp_pi_extension": None,
                "tp_pid": self.tp_pid,
                "tp_dcs": self.dcs.value if self.dcs is not None else None,
                "tp_udl": udl,
                "tp_ud": ud,
            },
        )
        return head + tail

    @classmethod
    def from_bytes(cls, data: bytes) -> SmsStatusReport:
        _check_mti(data, (schema.MTI_STATUS_REPORT,), "SMS-STATUS-REPORT")
        head = _status_report_head(data)
        first = head.first
        tp_pid: int | None = None
        dcs: Dcs | None = None
        user_data: bytes | None = None
        udh = b""
        if head.tail:
            tail = parse_layout(schema.StatusReportParameters, head.tail, "SMS-STATUS-REPORT parameters")
            tp_pid = tail.tp_pid
            dcs = Dcs(tail.tp_dcs) if tail.tp_dcs is not None else None
            if tail.tp_udl is not None:
                udh, user_data = decode_user_data(dcs or Dcs(), bool(first & 0x40), tail.tp_udl, tail.tp_ud)
            elif tail.tp_ud:
                raise PduError(
                    f"{len(tail.tp_ud)} octets after the status report parameters", command_status=MALFORMED_TPDU
                )
        return cls(
            tp_mr=head.tp_mr,
            recipient=Address.from_fields(
                *ton_npi(head.ra_toa), head.ra_length, head.ra_value, CommandStatus.ESME_RINVDSTADR
            ),
            scts=decode_timestamp(head.tp_scts, "TP-SCTS"),
            discharge_time=decode_timestamp(head.tp_dt, "TP-DT"),
            tp_st=head.tp_st,
            more_messages=not first & 0x04,
            loop_prevention=bool(first & 0x08),
            status_report_qualifier=bool(first & 0x20),
            tp_pid=tp_pid,
            dcs=dcs,
            user_data=user_data,
            udh=udh,
        )


Tpdu: TypeAlias = SmsSubmit | SmsDeliver | SmsStatusReport


@dataclass(frozen=True, slots=True)
class _StatusReportHead:
    """The fields of `schema.SmsStatusReportLayout`, the first octet and the recipient's type octet as octets."""

    first: int
    tp_mr: int
    ra_length: int
    ra_toa: int
    ra_value: bytes
    tp_scts: bytes
    tp_dt: bytes
    tp_st: int
    tail: bytes


def _status_report_head(data: bytes) -> _StatusReportHead:
    """`schema.SmsStatusReportLayout` read by hand: every modem's status report goes through here, and the
    construct parse cost more than the rest of its handling (a property test holds the two equal)."""
    if len(data) >= 4:
        value_end = 4 + (data[2] + 1) // 2
        tail_start = value_end + 15
        if len(data) >= tail_start:
            return _StatusReportHead(
                data[0], data[1], data[2], data[3], data[4:value_end], data[value_end : value_end + 7],
                data[value_end + 7 : value_end + 14], data[value_end + 14], data[tail_start:],
            )
    raise PduError(f"SMS-STATUS-REPORT truncated: {len(data)} octets", command_status=MALFORMED_TPDU)


@dataclass(frozen=True, slots=True)
class _SubmitFields:
    """The fields of `schema.SmsSubmitLayout`, the first octet and the destination's type octet as octets, TP-VP
    as its octets (none, one when relative, seven when absolute or enhanced)."""

    first: int
    tp_mr: int
    da_length: int
    da_toa: int
    da_value: bytes
    tp_pid: int
    tp_dcs: int
    tp_vp: bytes
    tp_udl: int
    tp_ud: bytes


_VP_OCTETS: Final = {schema.VPF_NONE: 0, schema.VPF_RELATIVE: 1, schema.VPF_ENHANCED: 7, schema.VPF_ABSOLUTE: 7}


def _submit_fields(data: bytes) -> _SubmitFields:
    """`schema.SmsSubmitLayout` read by hand: every SMS-SUBMIT a virtual modem takes goes through here, and the
    construct parse cost more than the rest of its handling (a property test holds the two equal)."""
    if len(data) >= 4:
        value_end = 4 + (data[2] + 1) // 2
        vp_start = value_end + 2
        udl_at = vp_start + _VP_OCTETS[data[0] >> 3 & 0x03]
        if len(data) > udl_at:
            return _SubmitFields(
                data[0], data[1], data[2], data[3], data[4:value_end], data[value_end], data[value_end + 1],
                data[vp_start:udl_at], data[udl_at], data[udl_at + 1 :],
            )
    raise PduError(f"SMS-SUBMIT truncated: {len(data)} octets", command_status=MALFORMED_TPDU)


def _check_octets(*fields: tuple[str, int]) -> None:
    """The range check construct's Int8ub made when building: the caller's values, reported as such."""
    for name, value in fields:
        if not 0 <= value <= 0xFF:
            raise PduError(f"cannot encode: {name} {value} is not an octet", command_status=MALFORMED_TPDU)


def _build(layout: Any, values: dict[str, Any]) -> bytes:
    try:
        built: bytes = layout.build(values)
    except ConstructError as error:
        # Out-of-range integers (TP-MR 300, TP-PID -1) are the caller's values, reported as such.
        raise PduError(f"cannot encode: {error}", command_status=MALFORMED_TPDU) from None
    return built


def decode_tpdu(data: bytes, direction: Direction = "mt") -> Tpdu:
    """The TPDU by its TP-MTI (9.2.3.1). `direction` is "mt" (SC to MS: SMS-DELIVER, SMS-STATUS-REPORT) or "mo"
    (MS to SC: SMS-SUBMIT). SMS-DELIVER-REPORT, SMS-SUBMIT-REPORT and SMS-COMMAND are refused with PduError."""
    if not data:
        raise PduError("empty TPDU", command_status=MALFORMED_TPDU)
    mti = data[0] & 0x03
    if direction == "mt":
        if mti in (schema.MTI_DELIVER, schema.MTI_RESERVED):
            return SmsDeliver.from_bytes(data)
        if mti == schema.MTI_STATUS_REPORT:
            return SmsStatusReport.from_bytes(data)
        raise PduError("SMS-SUBMIT-REPORT TPDUs are not supported", command_status=MALFORMED_TPDU)
    if mti == schema.MTI_SUBMIT:
        return SmsSubmit.from_bytes(data)
    names = {schema.MTI_DELIVER: "SMS-DELIVER-REPORT", schema.MTI_STATUS_REPORT: "SMS-COMMAND"}
    raise PduError(f"{names.get(mti, 'reserved TP-MTI')} TPDUs are not supported", command_status=MALFORMED_TPDU)
