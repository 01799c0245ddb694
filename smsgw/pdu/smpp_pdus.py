"""SMPP 3.4 PDUs as typed frozen values: one class per command, `PDU_CLASSES` by command_id, and the response
each request takes. `smsgw.pdu.smpp` is their codec and re-exports every name here.

Field names are the spec's. Integers stay plain ints (compare with `smsgw.pdu.constants`), C-octet strings are
`str` (Latin-1, so any octet round-trips), time fields stay wire strings (see `smsgw.pdu.smpp_time`) so a round
trip is byte-exact, `short_message` is bytes and `sm_length`/counts are derived. Optional parameters live in
`pdu.tlvs` (`smsgw.pdu.tlv.Tlvs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from smsgw.pdu import _smpp_schema as schema
from smsgw.pdu.constants import CommandId, CommandStatus, InterfaceVersion, is_response
from smsgw.pdu.errors import PduError
from smsgw.pdu.tlv import EMPTY_TLVS, Tlvs


@dataclass(frozen=True, slots=True, kw_only=True)
class Pdu:
    """Header fields every PDU has; `command_id` is a class constant, `command_length` is derived."""

    command_id: ClassVar[int]
    sequence_number: int
    command_status: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericNack(Pdu):
    command_id: ClassVar[int] = CommandId.GENERIC_NACK


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bind(Pdu):
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = InterfaceVersion.SMPP_3_4
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitter(_Bind):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiver(_Bind):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiver(_Bind):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER


@dataclass(frozen=True, slots=True, kw_only=True)
class _BindResp(Pdu):
    system_id: str = ""
    tlvs: Tlvs = EMPTY_TLVS  # sc_interface_version


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitterResp(_BindResp):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiverResp(_BindResp):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiverResp(_BindResp):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class Outbind(Pdu):
    command_id: ClassVar[int] = CommandId.OUTBIND
    system_id: str = ""
    password: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Unbind(Pdu):
    command_id: ClassVar[int] = CommandId.UNBIND


@dataclass(frozen=True, slots=True, kw_only=True)
class UnbindResp(Pdu):
    command_id: ClassVar[int] = CommandId.UNBIND_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLink(Pdu):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLinkResp(Pdu):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class _Message(Pdu):
    """The fields submit_sm, deliver_sm and submit_multi share (all but the destination)."""

    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    tlvs: Tlvs = EMPTY_TLVS


@dataclass(frozen=True, slots=True, kw_only=True)
class _ShortMessage(_Message):
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSm(_ShortMessage):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSm(_ShortMessage):
    command_id: ClassVar[int] = CommandId.DELIVER_SM


@dataclass(frozen=True, slots=True, kw_only=True)
class _MessageIdResp(Pdu):
    message_id: str = ""
    tlvs: Tlvs = EMPTY_TLVS


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSmResp(_MessageIdResp):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSmResp(_MessageIdResp):
    command_id: ClassVar[int] = CommandId.DELIVER_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class DataSmResp(_MessageIdResp):
    """TLVs: delivery_failure_reason, network_error_code, additional_status_info_text, dpf_result."""

    command_id: ClassVar[int] = CommandId.DATA_SM_RESP


@dataclass(frozen=True, slots=True)
class SmeAddress:
    """A submit_multi destination that is one SME (dest_flag 1)."""

    dest_addr_ton: int
    dest_addr_npi: int
    destination_addr: str


@dataclass(frozen=True, slots=True)
class DistributionList:
    """A submit_multi destination naming an SMSC distribution list (dest_flag 2)."""

    dl_name: str


@dataclass(frozen=True, slots=True)
class UnsuccessSme:
    """A submit_multi_resp entry: a destination the SMSC refused, with the status it gave."""

    dest_addr_ton: int
    dest_addr_npi: int
    destination_addr: str
    error_status_code: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitMulti(_Message):
    command_id: ClassVar[int] = CommandId.SUBMIT_MULTI
    destinations: tuple[SmeAddress | DistributionList, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitMultiResp(Pdu):
    command_id: ClassVar[int] = CommandId.SUBMIT_MULTI_RESP
    message_id: str = ""
    unsuccess_sme: tuple[UnsuccessSme, ...] = ()
    tlvs: Tlvs = EMPTY_TLVS


@dataclass(frozen=True, slots=True, kw_only=True)
class DataSm(Pdu):
    command_id: ClassVar[int] = CommandId.DATA_SM
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0
    tlvs: Tlvs = EMPTY_TLVS


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySm(Pdu):
    command_id: ClassVar[int] = CommandId.QUERY_SM
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySmResp(Pdu):
    command_id: ClassVar[int] = CommandId.QUERY_SM_RESP
    message_id: str = ""
    final_date: str = ""
    message_state: int = 0
    error_code: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelSm(Pdu):
    command_id: ClassVar[int] = CommandId.CANCEL_SM
    service_type: str = ""
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.CANCEL_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaceSm(Pdu):
    command_id: ClassVar[int] = CommandId.REPLACE_SM
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaceSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.REPLACE_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertNotification(Pdu):
    command_id: ClassVar[int] = CommandId.ALERT_NOTIFICATION
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    esme_addr_ton: int = 0
    esme_addr_npi: int = 0
    esme_addr: str = ""
    tlvs: Tlvs = EMPTY_TLVS  # ms_availability_status


PDU_CLASSES: Final[dict[int, type[Pdu]]] = {
    cls.command_id: cls
    for cls in (
        GenericNack,
        BindTransmitter,
        BindTransmitterResp,
        BindReceiver,
        BindReceiverResp,
        BindTransceiver,
        BindTransceiverResp,
        Outbind,
        Unbind,
        UnbindResp,
        SubmitSm,
        SubmitSmResp,
        SubmitMulti,
        SubmitMultiResp,
        DeliverSm,
        DeliverSmResp,
        DataSm,
        DataSmResp,
        QuerySm,
        QuerySmResp,
        CancelSm,
        CancelSmResp,
        ReplaceSm,
        ReplaceSmResp,
        EnquireLink,
        EnquireLinkResp,
        AlertNotification,
    )
}
assert set(PDU_CLASSES) == set(schema.BODIES), "every PDU class needs a construct body declaration"



def response_class(request: type[Pdu]) -> type[Pdu]:
    """The `_resp` class answering `request` (PduError for outbind, alert_notification and responses)."""
    cls = PDU_CLASSES.get(request.command_id | 0x80000000)
    if cls is None or is_response(request.command_id):
        raise PduError(f"{request.__name__} has no response", command_status=CommandStatus.ESME_RINVCMDID)
    return cls


def response_for(request: Pdu, *, command_status: int = 0) -> Pdu:
    """The response to `request` with its sequence number and default body; set fields with dataclasses.replace."""
    return response_class(type(request))(sequence_number=request.sequence_number, command_status=command_status)


def generic_nack_for(error: PduError) -> GenericNack:
    """The generic_nack answering a PDU that could not be decoded (sequence number 0 when unreadable)."""
    return GenericNack(sequence_number=error.sequence_number or 0, command_status=error.command_status)
