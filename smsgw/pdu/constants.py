"""SMPP 3.4 numbering: command ids, statuses, field values and TLV tags, by their spec names.

Decoded PDUs hold plain ints (an SMSC may send values outside these enums); compare them with these members.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Final

from smsgw.pdu.errors import PduError

RESPONSE_BIT: Final = 0x80000000
HEADER_LENGTH: Final = 16


class CommandId(IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


def is_response(command_id: int) -> bool:
    return bool(command_id & RESPONSE_BIT)


class CommandStatus(IntEnum):
    """SMPP 3.4 section 5.1.3; the SMPP 5.0 names of the TLV codes (0xC0-0xC4) are aliases."""

    ESME_ROK = 0x00000000
    ESME_RINVMSGLEN = 0x00000001
    ESME_RINVCMDLEN = 0x00000002
    ESME_RINVCMDID = 0x00000003
    ESME_RINVBNDSTS = 0x00000004
    ESME_RALYBND = 0x00000005
    ESME_RINVPRTFLG = 0x00000006
    ESME_RINVREGDLVFLG = 0x00000007
    ESME_RSYSERR = 0x00000008
    ESME_RINVSRCADR = 0x0000000A
    ESME_RINVDSTADR = 0x0000000B
    ESME_RINVMSGID = 0x0000000C
    ESME_RBINDFAIL = 0x0000000D
    ESME_RINVPASWD = 0x0000000E
    ESME_RINVSYSID = 0x0000000F
    ESME_RCANCELFAIL = 0x00000011
    ESME_RREPLACEFAIL = 0x00000013
    ESME_RMSGQFUL = 0x00000014
    ESME_RINVSERTYP = 0x00000015
    ESME_RINVNUMDESTS = 0x00000033
    ESME_RINVDLNAME = 0x00000034
    ESME_RINVDESTFLAG = 0x00000040
    ESME_RINVSUBREP = 0x00000042
    ESME_RINVESMCLASS = 0x00000043
    ESME_RCNTSUBDL = 0x00000044
    ESME_RSUBMITFAIL = 0x00000045
    ESME_RINVSRCTON = 0x00000048
    ESME_RINVSRCNPI = 0x00000049
    ESME_RINVDSTTON = 0x00000050
    ESME_RINVDSTNPI = 0x00000051
    ESME_RINVSYSTYP = 0x00000053
    ESME_RINVREPFLAG = 0x00000054
    ESME_RINVNUMMSGS = 0x00000055
    ESME_RTHROTTLED = 0x00000058
    ESME_RINVSCHED = 0x00000061
    ESME_RINVEXPIRY = 0x00000062
    ESME_RINVDFTMSGID = 0x00000063
    ESME_RX_T_APPN = 0x00000064
    ESME_RX_P_APPN = 0x00000065
    ESME_RX_R_APPN = 0x00000066
    ESME_RQUERYFAIL = 0x00000067
    ESME_RINVOPTPARSTREAM = 0x000000C0
    ESME_ROPTPARNOTALLWD = 0x000000C1
    ESME_RINVPARLEN = 0x000000C2
    ESME_RMISSINGOPTPARAM = 0x000000C3
    ESME_RINVOPTPARAMVAL = 0x000000C4
    ESME_RDELIVERYFAILURE = 0x000000FE
    ESME_RUNKNOWNERR = 0x000000FF
    # Text its data_coding cannot carry, or a data_coding we cannot send. SMPP 3.4 has no code for it and leaves
    # 0x104 (5.0's ESME_RINVDCS) undefined, so a 3.4 ESME gets it from the vendor range 0x400-0x4FF: above
    # 0x400-0x463, which are the gateway's 8xx outcomes (0x400 + the last two digits, `GatewayError`).
    ESME_RINVDCS = 0x00000480
    # SMPP 5.0 names for the same codes.
    ESME_RINVTLVSTREAM = 0x000000C0
    ESME_RTLVNOTALLWD = 0x000000C1
    ESME_RINVTLVLEN = 0x000000C2
    ESME_RMISSINGTLV = 0x000000C3
    ESME_RINVTLVVAL = 0x000000C4


STATUS_DESCRIPTIONS: Final[dict[int, str]] = {
    CommandStatus.ESME_ROK: "No Error",
    CommandStatus.ESME_RINVMSGLEN: "Message Length is invalid",
    CommandStatus.ESME_RINVCMDLEN: "Command Length is invalid",
    CommandStatus.ESME_RINVCMDID: "Invalid Command ID",
    CommandStatus.ESME_RINVBNDSTS: "Incorrect BIND Status for given command",
    CommandStatus.ESME_RALYBND: "ESME Already in Bound State",
    CommandStatus.ESME_RINVPRTFLG: "Invalid Priority Flag",
    CommandStatus.ESME_RINVREGDLVFLG: "Invalid Registered Delivery Flag",
    CommandStatus.ESME_RSYSERR: "System Error",
    CommandStatus.ESME_RINVSRCADR: "Invalid Source Address",
    CommandStatus.ESME_RINVDSTADR: "Invalid Dest Addr",
    CommandStatus.ESME_RINVMSGID: "Message ID is invalid",
    CommandStatus.ESME_RBINDFAIL: "Bind Failed",
    CommandStatus.ESME_RINVPASWD: "Invalid Password",
    CommandStatus.ESME_RINVSYSID: "Invalid System ID",
    CommandStatus.ESME_RCANCELFAIL: "Cancel SM Failed",
    CommandStatus.ESME_RREPLACEFAIL: "Replace SM Failed",
    CommandStatus.ESME_RMSGQFUL: "Message Queue Full",
    CommandStatus.ESME_RINVSERTYP: "Invalid Service Type",
    CommandStatus.ESME_RINVNUMDESTS: "Invalid number of destinations",
    CommandStatus.ESME_RINVDLNAME: "Invalid Distribution List name",
    CommandStatus.ESME_RINVDESTFLAG: "Destination flag is invalid (submit_multi)",
    CommandStatus.ESME_RINVSUBREP: "Invalid 'submit with replace' request",
    CommandStatus.ESME_RINVESMCLASS: "Invalid esm_class field data",
    CommandStatus.ESME_RCNTSUBDL: "Cannot Submit to Distribution List",
    CommandStatus.ESME_RSUBMITFAIL: "submit_sm or submit_multi failed",
    CommandStatus.ESME_RINVSRCTON: "Invalid Source address TON",
    CommandStatus.ESME_RINVSRCNPI: "Invalid Source address NPI",
    CommandStatus.ESME_RINVDSTTON: "Invalid Destination address TON",
    CommandStatus.ESME_RINVDSTNPI: "Invalid Destination address NPI",
    CommandStatus.ESME_RINVSYSTYP: "Invalid system_type field",
    CommandStatus.ESME_RINVREPFLAG: "Invalid replace_if_present flag",
    CommandStatus.ESME_RINVNUMMSGS: "Invalid number of messages",
    CommandStatus.ESME_RTHROTTLED: "Throttling error (ESME has exceeded allowed message limits)",
    CommandStatus.ESME_RINVSCHED: "Invalid Scheduled Delivery Time",
    CommandStatus.ESME_RINVEXPIRY: "Invalid message validity period (Expiry time)",
    CommandStatus.ESME_RINVDFTMSGID: "Predefined Message Invalid or Not Found",
    CommandStatus.ESME_RX_T_APPN: "ESME Receiver Temporary App Error Code",
    CommandStatus.ESME_RX_P_APPN: "ESME Receiver Permanent App Error Code",
    CommandStatus.ESME_RX_R_APPN: "ESME Receiver Reject Message Error Code",
    CommandStatus.ESME_RQUERYFAIL: "query_sm request failed",
    CommandStatus.ESME_RINVOPTPARSTREAM: "Error in the optional part of the PDU Body",
    CommandStatus.ESME_ROPTPARNOTALLWD: "Optional Parameter not allowed",
    CommandStatus.ESME_RINVPARLEN: "Invalid Parameter Length",
    CommandStatus.ESME_RMISSINGOPTPARAM: "Expected Optional Parameter missing",
    CommandStatus.ESME_RINVOPTPARAMVAL: "Invalid Optional Parameter Value",
    CommandStatus.ESME_RDELIVERYFAILURE: "Delivery Failure (used for data_sm_resp)",
    CommandStatus.ESME_RUNKNOWNERR: "Unknown Error",
    CommandStatus.ESME_RINVDCS: "Invalid data coding scheme",
}

VENDOR_STATUS_MIN: Final = 0x00000400
VENDOR_STATUS_MAX: Final = 0x000004FF


def is_vendor_status(command_status: int) -> bool:
    """SMPP 3.4 reserves 0x400-0x4FF for SMSC vendor specific errors."""
    return VENDOR_STATUS_MIN <= command_status <= VENDOR_STATUS_MAX


def vendor_status(offset: int) -> int:
    """The vendor-range status `0x400 + offset` (offset 0..0xFF)."""
    if not 0 <= offset <= VENDOR_STATUS_MAX - VENDOR_STATUS_MIN:
        raise PduError(f"vendor status offset {offset} outside 0..255")
    return VENDOR_STATUS_MIN + offset


class GatewayError(IntEnum):
    """smsgw's own policy outcomes (DESIGN.md): the receipt's `err:` value; refused at submit, the vendor
    command_status 0x400 + the last two digits."""

    INSUFFICIENT_BALANCE = 800
    DO_NOT_CALL = 801
    BLOCKED_CONTENT = 802
    OPTED_OUT = 803
    NO_ROUTE = 804
    SENDER_NOT_ALLOWED = 805
    TOO_MANY_SEGMENTS = 806
    # A restart found the segment handed to a modem without an outcome and `interrupted_handoff = "fail"`: it may
    # or may not have been sent, and is not sent again. Never a submit-time refusal.
    HANDOFF_INTERRUPTED = 807
    # An upstream SMSC refused the segment for good (its command_status is in the log); not a sender refusal, which
    # is 805. Never a submit-time refusal.
    UPSTREAM_REFUSED = 808

    @property
    def command_status(self) -> int:
        return vendor_status(self.value - 800)


def status_name(command_status: int) -> str:
    """`ESME_RINVDSTADR`, `VENDOR_0x400` or `RESERVED_0x00000009` for any status value."""
    try:
        return CommandStatus(command_status).name
    except ValueError:
        pass
    if is_vendor_status(command_status):
        gateway_errors = {e.command_status: e for e in GatewayError}
        if command_status in gateway_errors:
            return f"VENDOR_{gateway_errors[command_status].name}"
        return f"VENDOR_0x{command_status:03X}"
    return f"RESERVED_0x{command_status:08X}"


def status_description(command_status: int) -> str:
    if is_vendor_status(command_status):
        for error in GatewayError:
            if error.command_status == command_status:
                return f"smsgw: {error.name.lower().replace('_', ' ')} (err {error.value})"
        return "SMSC vendor specific error"
    return STATUS_DESCRIPTIONS.get(command_status, "Reserved")


class InterfaceVersion(IntEnum):
    SMPP_3_3 = 0x33
    SMPP_3_4 = 0x34


class Ton(IntEnum):
    UNKNOWN = 0
    INTERNATIONAL = 1
    NATIONAL = 2
    NETWORK_SPECIFIC = 3
    SUBSCRIBER_NUMBER = 4
    ALPHANUMERIC = 5
    ABBREVIATED = 6


class Npi(IntEnum):
    UNKNOWN = 0
    ISDN = 1  # E.163/E.164
    DATA = 3  # X.121
    TELEX = 4  # F.69
    LAND_MOBILE = 6  # E.212
    NATIONAL = 8
    PRIVATE = 9
    ERMES = 10
    INTERNET = 14  # IP
    WAP_CLIENT_ID = 18


class DataCoding(IntEnum):
    SMSC_DEFAULT = 0x00  # the SMSC's default alphabet: GSM 03.38 here
    IA5 = 0x01  # CCITT T.50 / ASCII
    BINARY_2 = 0x02  # octet unspecified (8-bit binary)
    LATIN_1 = 0x03
    BINARY = 0x04  # octet unspecified (8-bit binary)
    JIS = 0x05
    CYRILLIC = 0x06  # ISO-8859-5
    LATIN_HEBREW = 0x07  # ISO-8859-8
    UCS2 = 0x08
    PICTOGRAM = 0x09
    ISO_2022_JP = 0x0A
    EXTENDED_KANJI = 0x0D
    KS_C_5601 = 0x0E


class EsmClass(IntFlag):
    """esm_class: messaging mode (bits 1-0), message type (bits 5-2), GSM features (bits 7-6)."""

    DEFAULT = 0x00
    DATAGRAM = 0x01
    FORWARD = 0x02  # transaction mode
    STORE_AND_FORWARD = 0x03
    DELIVERY_RECEIPT = 0x04  # SMSC delivery receipt (deliver_sm)
    DELIVERY_ACK = 0x08  # SME delivery acknowledgement
    MANUAL_USER_ACK = 0x10  # SME manual/user acknowledgement
    CONVERSATION_ABORT = 0x18  # Korean CDMA
    INTERMEDIATE_NOTIFICATION = 0x20
    UDHI = 0x40
    REPLY_PATH = 0x80

    MESSAGING_MODE_MASK = 0x03
    MESSAGE_TYPE_MASK = 0x3C
    GSM_FEATURES_MASK = 0xC0


def esm_message_type(esm_class: int) -> int:
    """The message-type bits of esm_class (e.g. `EsmClass.DELIVERY_RECEIPT`), masked."""
    return esm_class & EsmClass.MESSAGE_TYPE_MASK


class RegisteredDelivery(IntFlag):
    NO_RECEIPT = 0x00
    RECEIPT_ALWAYS = 0x01  # SMSC receipt on final success or failure
    RECEIPT_ON_FAILURE = 0x02
    SME_DELIVERY_ACK = 0x04
    SME_MANUAL_ACK = 0x08
    INTERMEDIATE_NOTIFICATION = 0x10

    SMSC_RECEIPT_MASK = 0x03
    SME_ACK_MASK = 0x0C


def smsc_receipt_requested(registered_delivery: int) -> int:
    """The SMSC-receipt bits: `NO_RECEIPT`, `RECEIPT_ALWAYS`, `RECEIPT_ON_FAILURE` (3 is reserved in 3.4)."""
    return registered_delivery & RegisteredDelivery.SMSC_RECEIPT_MASK


class MessageState(IntEnum):
    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


class DestFlag(IntEnum):
    """submit_multi dest_address discriminator."""

    SME_ADDRESS = 1
    DISTRIBUTION_LIST = 2


class PriorityFlag(IntEnum):
    LEVEL_0 = 0
    LEVEL_1 = 1
    LEVEL_2 = 2
    LEVEL_3 = 3


class PayloadType(IntEnum):
    DEFAULT = 0  # WDP in WAP terms
    WCMP = 1


class MsAvailabilityStatus(IntEnum):
    AVAILABLE = 0
    DENIED = 1
    UNAVAILABLE = 2


class DeliveryFailureReason(IntEnum):
    DESTINATION_UNAVAILABLE = 0
    DESTINATION_ADDRESS_INVALID = 1
    PERMANENT_NETWORK_ERROR = 2
    TEMPORARY_NETWORK_ERROR = 3


class NetworkErrorType(IntEnum):
    """First octet of the network_error_code TLV."""

    ANSI_136 = 1
    IS_95 = 2
    GSM = 3


class TlvTag(IntEnum):
    DEST_ADDR_SUBUNIT = 0x0005
    DEST_NETWORK_TYPE = 0x0006
    DEST_BEARER_TYPE = 0x0007
    DEST_TELEMATICS_ID = 0x0008
    SOURCE_ADDR_SUBUNIT = 0x000D
    SOURCE_NETWORK_TYPE = 0x000E
    SOURCE_BEARER_TYPE = 0x000F
    SOURCE_TELEMATICS_ID = 0x0010
    QOS_TIME_TO_LIVE = 0x0017
    PAYLOAD_TYPE = 0x0019
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D
    RECEIPTED_MESSAGE_ID = 0x001E
    MS_MSG_WAIT_FACILITIES = 0x0030
    PRIVACY_INDICATOR = 0x0201
    SOURCE_SUBADDRESS = 0x0202
    DEST_SUBADDRESS = 0x0203
    USER_MESSAGE_REFERENCE = 0x0204
    USER_RESPONSE_CODE = 0x0205
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    LANGUAGE_INDICATOR = 0x020D
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    CALLBACK_NUM_PRES_IND = 0x0302
    CALLBACK_NUM_ATAG = 0x0303
    NUMBER_OF_MESSAGES = 0x0304
    CALLBACK_NUM = 0x0381
    DPF_RESULT = 0x0420
    SET_DPF = 0x0421
    MS_AVAILABILITY_STATUS = 0x0422
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    DELIVERY_FAILURE_REASON = 0x0425
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427
    USSD_SERVICE_OP = 0x0501
    DISPLAY_TIME = 0x1201
    SMS_SIGNAL = 0x1203
    MS_VALIDITY = 0x1204
    ALERT_ON_MESSAGE_DELIVERY = 0x130C
    ITS_REPLY_TYPE = 0x1380
    ITS_SESSION_INFO = 0x1383
