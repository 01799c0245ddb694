"""The sans-IO session core, driven synchronously: an ESME core and an SMSC core joined in memory."""

from __future__ import annotations

import struct
from dataclasses import replace
from collections.abc import Callable
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.config import SmppConfig
from smsgw.pdu.constants import CommandId, CommandStatus, EsmClass, Ton
from smsgw.pdu.errors import PduError
from smsgw.pdu.smpp import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    encode_pdu,
    response_for,
)
from smsgw.pdu.tlv import Tlvs
from smsgw.smpp_server.session import (
    MAX_SEQUENCE_NUMBER,
    ConnectionClosed,
    EnquireLinkDue,
    Event,
    LocalProtocolError,
    RequestReceived,
    SubmissionsReceived,
    RequestRejected,
    ResponseReceived,
    ResponseTimedOut,
    SessionTimedOut,
    SmppSession,
    UnexpectedResponse,
    submission_response,
)
from smsgw.smpp_server.states import BindState, Role
from smsgw.smpp_server.validation import check_request, validate_request
from smpp_harness import SUBMIT

CONFIG = SmppConfig(
    window=3,
    enquire_link_interval_s=30.0,
    response_timeout_s=10.0,
    inactivity_timeout_s=300.0,
    session_init_timeout_s=10.0,
    max_pdu_bytes=4096,
)


BIND: Final = BindTransceiver(sequence_number=0, system_id="acme", password="x")


def events(session: SmppSession) -> list[Event]:
    found = []
    while (event := session.next_event()) is not None:
        found.append(event)
    return found


def inject(session: SmppSession, pdu: Pdu, now: float = 0.0) -> list[Event]:
    """Feed a PDU the peer's core would refuse to send (a misbehaving peer)."""
    session.receive_data(encode_pdu(pdu), now)
    return events(session)


class Link:
    """An ESME core and an SMSC core; `send` moves one PDU across and returns the receiver's events."""

    def __init__(self, config: SmppConfig = CONFIG) -> None:
        self.esme = SmppSession(Role.ESME, config, opened_at=0.0)
        self.smsc = SmppSession(Role.SMSC, config, opened_at=0.0)
        self.now = 0.0

    def _peer(self, session: SmppSession) -> SmppSession:
        return self.smsc if session is self.esme else self.esme

    def request(self, session: SmppSession, pdu: Pdu) -> tuple[Pdu, list[Event]]:
        numbered = replace(pdu, sequence_number=session.new_sequence_number())
        return numbered, self.send(session, numbered)

    def send(self, session: SmppSession, pdu: Pdu) -> list[Event]:
        peer = self._peer(session)
        peer.receive_data(session.send(pdu, self.now), self.now)
        return events(peer)

    def bind(self, pdu: Pdu = BIND) -> None:
        request, (received,) = self.request(self.esme, pdu)
        assert received == RequestReceived(request)
        (answered,) = self.send(self.smsc, response_for(request))
        assert isinstance(answered, ResponseReceived) and answered.request == request


@pytest.mark.parametrize(
    ("bind", "state"),
    [
        (BindTransmitter, BindState.BOUND_TX),
        (BindReceiver, BindState.BOUND_RX),
        (BindTransceiver, BindState.BOUND_TRX),
    ],
)
def test_bind_moves_both_sides(bind: type[Pdu], state: BindState) -> None:
    link = Link()
    link.bind(bind(sequence_number=0))
    assert link.esme.state is state and link.smsc.state is state


def test_failed_bind_stays_open() -> None:
    link = Link()
    request, _ = link.request(link.esme, BindTransmitter(sequence_number=0))
    (answered,) = link.send(link.smsc, response_for(request, command_status=CommandStatus.ESME_RINVPASWD))
    assert isinstance(answered, ResponseReceived)
    assert link.esme.state is BindState.OPEN and link.smsc.state is BindState.OPEN


def test_submit_before_bind_is_rejected_with_invbndsts() -> None:
    link = Link()
    (rejected,) = inject(link.smsc, replace(SUBMIT, sequence_number=7))
    assert isinstance(rejected, RequestRejected)
    assert rejected.response == SubmitSmResp(sequence_number=7, command_status=CommandStatus.ESME_RINVBNDSTS)
    assert not rejected.close


def test_esme_core_refuses_to_send_what_its_state_forbids() -> None:
    link = Link()
    with pytest.raises(LocalProtocolError, match="SUBMIT_SM"):
        link.esme.send(replace(SUBMIT, sequence_number=1), 0.0)
    with pytest.raises(LocalProtocolError, match="DELIVER_SM"):
        link.smsc.send(DeliverSm(sequence_number=1), 0.0)


def test_bind_when_bound_is_already_bound() -> None:
    link = Link()
    link.bind()
    (rejected,) = inject(link.smsc, BindTransmitter(sequence_number=9))
    assert isinstance(rejected, RequestRejected)
    assert rejected.response.command_status == CommandStatus.ESME_RALYBND
    assert rejected.response.command_id == CommandId.BIND_TRANSMITTER_RESP


def test_receiver_may_not_submit() -> None:
    link = Link()
    link.bind(BindReceiver(sequence_number=0))
    (rejected,) = inject(link.smsc, replace(SUBMIT, sequence_number=5))
    assert isinstance(rejected, RequestRejected)
    assert rejected.response == SubmitSmResp(sequence_number=5, command_status=CommandStatus.ESME_RINVBNDSTS)


def test_unknown_command_id_gets_generic_nack_and_session_continues() -> None:
    link = Link()
    link.bind()
    link.smsc.receive_data(struct.pack(">IIII", 16, 0x00000999, 0, 42) + encode_pdu(EnquireLink(sequence_number=43)), 0)
    rejected, received = events(link.smsc)
    assert isinstance(rejected, RequestRejected)
    assert rejected == RequestRejected(
        GenericNack(sequence_number=42, command_status=CommandStatus.ESME_RINVCMDID), rejected.reason
    )
    assert not rejected.close
    assert received == RequestReceived(EnquireLink(sequence_number=43))


@pytest.mark.parametrize("length", [8, 15, 4097, 0xFFFFFFFF])
def test_broken_length_gets_generic_nack_and_closes(length: int) -> None:
    session = SmppSession(Role.SMSC, CONFIG, opened_at=0.0)
    session.receive_data(struct.pack(">IIII", length, CommandId.ENQUIRE_LINK, 0, 5), 0.0)
    (rejected,) = events(session)
    assert isinstance(rejected, RequestRejected) and rejected.close
    assert isinstance(rejected.response, GenericNack)
    assert rejected.response.command_status == CommandStatus.ESME_RINVCMDLEN
    session.receive_data(encode_pdu(EnquireLink(sequence_number=6)), 0.0)
    assert events(session) == []


def test_requests_before_a_broken_length_in_the_same_read_are_received_first() -> None:
    link = Link()
    link.bind()
    link.smsc.receive_data(
        encode_pdu(EnquireLink(sequence_number=7)) + struct.pack(">IIII", 8, CommandId.ENQUIRE_LINK, 0, 8), 0.0
    )
    received, rejected = events(link.smsc)
    assert received == RequestReceived(EnquireLink(sequence_number=7))
    assert isinstance(rejected, RequestRejected) and rejected.close
    assert rejected.response == GenericNack(sequence_number=8, command_status=CommandStatus.ESME_RINVCMDLEN)


def test_malformed_body_of_known_request_answers_with_its_resp() -> None:
    link = Link()
    link.bind()
    body = b"\x00" * 3  # submit_sm body cut short
    link.smsc.receive_data(struct.pack(">IIII", 16 + len(body), CommandId.SUBMIT_SM, 0, 77) + body, 0.0)
    (rejected,) = events(link.smsc)
    assert isinstance(rejected, RequestRejected)
    assert rejected.response.command_id == CommandId.SUBMIT_SM_RESP
    assert rejected.response.sequence_number == 77
    assert rejected.response.command_status != CommandStatus.ESME_ROK


def test_byte_at_a_time() -> None:
    session = SmppSession(Role.SMSC, CONFIG, opened_at=0.0)
    data = encode_pdu(BindTransmitter(sequence_number=1, system_id="acme"))
    for i in range(len(data)):
        session.receive_data(data[i : i + 1], 0.0)
    assert events(session) == [RequestReceived(BindTransmitter(sequence_number=1, system_id="acme"))]


def test_deliver_sm_window_and_responses() -> None:
    link = Link()
    link.bind()
    sent = []
    for _ in range(CONFIG.window):
        request, (received,) = link.request(link.smsc, DeliverSm(sequence_number=0, short_message=b"r"))
        assert received == RequestReceived(request)
        sent.append(request)
    assert link.smsc.window_available == 0
    with pytest.raises(LocalProtocolError, match="window"):
        link.smsc.send(DeliverSm(sequence_number=link.smsc.new_sequence_number()), 0.0)
    # enquire_link still goes out with a full window
    link.request(link.smsc, EnquireLink(sequence_number=0))
    (answered,) = link.send(link.esme, response_for(sent[1]))
    assert answered == ResponseReceived(sent[1], DeliverSmResp(sequence_number=sent[1].sequence_number))
    assert link.smsc.window_available == 1
    nack = GenericNack(sequence_number=sent[0].sequence_number, command_status=CommandStatus.ESME_RSYSERR)
    assert link.send(link.esme, nack) == [ResponseReceived(sent[0], nack)]
    assert link.smsc.window_available == 2


def test_unexpected_and_mismatched_responses() -> None:
    link = Link()
    link.bind()
    assert link.send(link.esme, DeliverSmResp(sequence_number=1234)) == [UnexpectedResponse(DeliverSmResp(sequence_number=1234))]
    request, _ = link.request(link.smsc, DeliverSm(sequence_number=0))
    wrong = EnquireLinkResp(sequence_number=request.sequence_number)
    assert link.send(link.esme, wrong) == [UnexpectedResponse(wrong)]
    assert link.smsc.window_available == CONFIG.window - 1


def test_sequence_numbers_wrap_and_skip_outstanding() -> None:
    link = Link()
    link.bind()
    request, _ = link.request(link.smsc, DeliverSm(sequence_number=0))
    assert request.sequence_number == 1
    link.smsc._next_sequence = MAX_SEQUENCE_NUMBER
    assert link.smsc.new_sequence_number() == MAX_SEQUENCE_NUMBER
    assert link.smsc.new_sequence_number() == 2  # 1 is still outstanding
    with pytest.raises(LocalProtocolError, match="sequence_number"):
        link.smsc.send(DeliverSm(sequence_number=1), 0.0)


def test_enquire_link_due_when_idle_then_response_timeout() -> None:
    link = Link()
    link.bind()
    assert link.smsc.next_deadline() == 30.0
    link.smsc.handle_timers(29.9)
    assert events(link.smsc) == []
    link.smsc.handle_timers(30.0)
    assert events(link.smsc) == [EnquireLinkDue()]
    link.now = 30.0
    request, _ = link.request(link.smsc, EnquireLink(sequence_number=0))
    assert link.smsc.next_deadline() == 40.0
    link.smsc.handle_timers(40.0)
    assert events(link.smsc) == [ResponseTimedOut(request)]


def test_traffic_postpones_enquire_link() -> None:
    link = Link()
    link.bind()
    link.now = 20.0
    link.request(link.esme, EnquireLink(sequence_number=0))
    assert link.smsc.next_deadline() == 50.0


def test_session_init_timeout() -> None:
    session = SmppSession(Role.SMSC, CONFIG, opened_at=100.0)
    assert session.next_deadline() == 110.0
    session.handle_timers(110.0)
    assert events(session) == [SessionTimedOut("session_init")]
    session.handle_timers(200.0)
    assert events(session) == []


def test_a_pdu_must_be_complete_within_the_read_timeout_however_it_trickles_in() -> None:
    config = replace(CONFIG, pdu_read_timeout_s=5.0, enquire_link_interval_s=1000.0, inactivity_timeout_s=0.0)
    link = Link(config)
    link.bind()
    data = link.esme.send(replace(SUBMIT, sequence_number=link.esme.new_sequence_number()), 0.0)
    link.smsc.receive_data(data[:3], 100.0)
    assert link.smsc.next_deadline() == 105.0
    for n in range(3, 10):  # an octet a second does not postpone it
        link.smsc.receive_data(data[n : n + 1], 100.0 + n - 2)
        assert link.smsc.next_deadline() == 105.0
    link.smsc.handle_timers(104.9)
    assert events(link.smsc) == []
    link.smsc.handle_timers(105.0)
    assert events(link.smsc) == [SessionTimedOut("pdu_read")]
    assert link.smsc.next_deadline() == 1000.0  # fired once (the enquire_link timer is left); the shell closes
    link.smsc.receive_data(data[10:], 106.0)
    assert events(link.smsc) == []  # nothing after it can be framed


def test_a_completed_pdu_clears_the_read_timeout_and_a_new_partial_starts_its_own() -> None:
    config = replace(CONFIG, pdu_read_timeout_s=5.0, enquire_link_interval_s=1000.0, inactivity_timeout_s=0.0)
    link = Link(config)
    link.bind()
    first = link.esme.send(replace(SUBMIT, sequence_number=link.esme.new_sequence_number()), 0.0)
    second = link.esme.send(replace(SUBMIT, sequence_number=link.esme.new_sequence_number()), 0.0)
    link.smsc.receive_data(first[:5], 10.0)
    link.smsc.receive_data(first[5:], 14.0)
    assert link.smsc.next_deadline() == 1014.0  # the enquire_link timer only
    link.smsc.receive_data(second[:5], 20.0)
    link.smsc.receive_data(second[5:-1], 24.0)
    link.smsc.receive_data(second[-1:] + first[:5], 24.5)  # one completes, the next begins
    assert link.smsc.next_deadline() == 29.5
    assert len(events(link.smsc)) == 2  # the two submissions (one event each: different reads)


def test_inactivity_counts_traffic_but_not_enquire_link() -> None:
    link = Link(replace(CONFIG, enquire_link_interval_s=1000.0))
    link.bind()
    link.now = 200.0
    link.request(link.esme, EnquireLink(sequence_number=0))
    link.smsc.handle_timers(299.0)
    assert events(link.smsc) == []
    link.smsc.handle_timers(300.0)
    assert events(link.smsc) == [SessionTimedOut("inactivity")]


def test_unbind_both_ways() -> None:
    link = Link()
    link.bind()
    request, (received,) = link.request(link.esme, Unbind(sequence_number=0))
    assert received == RequestReceived(request)
    assert link.esme.state is BindState.UNBOUND and link.smsc.state is BindState.UNBOUND
    # requests in UNBOUND are refused, the unbind_resp still goes through
    (rejected,) = inject(link.smsc, EnquireLink(sequence_number=99))
    assert isinstance(rejected, RequestRejected)
    assert rejected.response == EnquireLinkResp(sequence_number=99, command_status=CommandStatus.ESME_RINVBNDSTS)
    (answered,) = link.send(link.smsc, UnbindResp(sequence_number=request.sequence_number))
    assert isinstance(answered, ResponseReceived)


def test_peer_close_and_local_close() -> None:
    link = Link()
    link.bind()
    pending, _ = link.request(link.smsc, DeliverSm(sequence_number=0))
    link.smsc.receive_data(b"", 1.0)
    assert events(link.smsc) == [ConnectionClosed()]
    assert link.smsc.state is BindState.CLOSED
    assert link.smsc.close() == [pending]
    assert link.smsc.next_deadline() == float("inf")


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"dest_addr_ton": 7}, CommandStatus.ESME_RINVDSTTON),
        ({"dest_addr_npi": 2}, CommandStatus.ESME_RINVDSTNPI),
        ({"source_addr_ton": 9}, CommandStatus.ESME_RINVSRCTON),
        ({"source_addr_npi": 5}, CommandStatus.ESME_RINVSRCNPI),
        ({"destination_addr": ""}, CommandStatus.ESME_RINVDSTADR),
        ({"destination_addr": "44 7700"}, CommandStatus.ESME_RINVDSTADR),
        ({"destination_addr": "1234567890123456"}, CommandStatus.ESME_RINVDSTADR),
        ({"source_addr": "Much Too Long Sender", "source_addr_ton": Ton.ALPHANUMERIC}, CommandStatus.ESME_RINVSRCADR),
        ({"esm_class": EsmClass.DELIVERY_RECEIPT}, CommandStatus.ESME_RINVESMCLASS),
        ({"priority_flag": 4}, CommandStatus.ESME_RINVPRTFLG),
        ({"registered_delivery": 0x03}, CommandStatus.ESME_RINVREGDLVFLG),
        ({"replace_if_present_flag": 2}, CommandStatus.ESME_RINVREPFLAG),
        ({"data_coding": 0x05}, 0x480),  # JIS: no faithful codec, refused (ESME_RINVDCS) rather than guessed
        ({"tlvs": Tlvs(message_payload=b"also")}, CommandStatus.ESME_RINVPARLEN),
        # Its segments are the accept path's to count (and refuse, 0x406: tests/scheduler/test_accept.py).
        ({"short_message": b"", "tlvs": Tlvs(message_payload=b"x" * 2000)}, None),
        ({"schedule_delivery_time": "261301000000000+"}, CommandStatus.ESME_RINVSCHED),
        ({"validity_period": "000000990000000R"}, None),
    ],
)
def test_submit_field_validation(change: dict[str, object], status: int | None) -> None:
    link = Link()
    link.bind()
    pdu = replace(SUBMIT, sequence_number=11, **change)  # type: ignore[arg-type]
    try:
        data = encode_pdu(pdu)
    except Exception:  # the codec refuses to encode bad time strings; put them on the wire by hand
        good = encode_pdu(replace(pdu, schedule_delivery_time="", validity_period=""))
        data = _with_time_fields(good, pdu)
    link.smsc.receive_data(data, 0.0)
    (event,) = events(link.smsc)
    if status is None:
        assert isinstance(event, SubmissionsReceived) and [p.sequence_number for p in event.pdus] == [11]
    else:
        assert isinstance(event, RequestRejected), event
        assert event.response.command_status == status
        assert event.response.sequence_number == 11


def _with_time_fields(good: bytes, pdu: SubmitSm) -> bytes:
    """Splice raw time strings into an encoded submit_sm whose time fields are empty."""
    marker = bytes([pdu.esm_class, pdu.protocol_id, pdu.priority_flag]) + b"\x00\x00"
    head, tail = good[16:].split(marker, 1)
    body = (
        head
        + marker[:3]
        + pdu.schedule_delivery_time.encode()
        + b"\x00"
        + pdu.validity_period.encode()
        + b"\x00"
        + tail
    )
    return struct.pack(">IIII", 16 + len(body), CommandId.SUBMIT_SM, 0, pdu.sequence_number) + body


def test_long_payload_goes_through_uncounted() -> None:
    """The session does not decode or count a submission's content: the accept path does, once."""
    link = Link()
    link.bind()
    cases = [
        replace(SUBMIT, short_message=b"", tlvs=Tlvs(message_payload=b"a" * 400)),
        replace(SUBMIT, short_message=b"", data_coding=0x08, tlvs=Tlvs(message_payload="é".encode("utf-16-be") * 71)),
        replace(SUBMIT, short_message=b"", tlvs=Tlvs(message_payload=b"\xff" * 2000)),  # not GSM 7-bit, 14 parts
    ]
    for pdu in cases:
        request, received = link.request(link.esme, pdu)
        assert received == [SubmissionsReceived([request])]


@settings(max_examples=200)
@given(chunks=st.lists(st.binary(max_size=64), max_size=8), role=st.sampled_from(Role), bound=st.booleans())
def test_random_bytes_only_ever_become_events(chunks: list[bytes], role: Role, bound: bool) -> None:
    session = SmppSession(role, CONFIG, opened_at=0.0)
    if bound and role is Role.SMSC:
        (received,) = inject(session, BindTransceiver(sequence_number=1))
        session.send(response_for(received.pdu), 0.0)  # type: ignore[union-attr]
    for chunk in chunks:
        session.receive_data(chunk, 1.0)
    for event in events(session):
        if isinstance(event, RequestRejected):
            encode_pdu(event.response)  # every rejection can be put on the wire


_ADDRESSES = st.sampled_from(["", "447700900001", "+447700900001", "1234567890123456", "12a4", "ACME", "Acme Ltd ", "٣٣"])


@settings(max_examples=300, deadline=None)
@given(
    source_addr_ton=st.sampled_from([0, 1, 2, 5, 7]),
    source_addr_npi=st.sampled_from([0, 1, 2, 19]),
    source_addr=_ADDRESSES,
    dest_addr_ton=st.sampled_from([0, 1, 5, 7]),
    dest_addr_npi=st.sampled_from([0, 1, 19]),
    destination_addr=_ADDRESSES,
    esm_class=st.sampled_from([0, 0x04, 0x08, 0x40, 0x43]),
    registered_delivery=st.sampled_from([0, 1, 3, 0x20]),
    priority_flag=st.integers(0, 4),
    replace_if_present_flag=st.integers(0, 2),
    data_coding=st.sampled_from([0, 3, 4, 5, 8, 0x0E, 0xF0]),
    short_message=st.one_of(st.binary(max_size=200), st.sampled_from([139, 140, 141, 142, 160, 161]).map(b"a".__mul__)),
    tlvs=st.sampled_from([Tlvs(), Tlvs(message_payload=b"x" * 300), Tlvs(sar_total_segments=2)]),
)
def test_validation_fast_path_answers_as_the_full_checks(**fields: object) -> None:
    pdu = replace(SUBMIT, sequence_number=1, **fields)  # type: ignore[arg-type]

    def outcome(check: Callable[[SubmitSm], None]) -> tuple[str, int] | None:
        try:
            check(pdu)
        except PduError as exc:
            return ("refused", exc.command_status)
        return None

    assert outcome(validate_request) == outcome(check_request)


@pytest.mark.parametrize("esm_class", [0, int(EsmClass.UDHI)])
def test_validation_fast_path_answers_as_the_full_checks_for_every_data_coding(esm_class: int) -> None:
    for data_coding in range(256):
        for length in (0, 1, 69, 70, 71, 139, 140, 141, 142, 143, 159, 160, 161, 162, 254):
            pdu = replace(SUBMIT, sequence_number=1, esm_class=esm_class, data_coding=data_coding,
                          short_message=b"a" * length)

            def outcome(check: Callable[[SubmitSm], None]) -> tuple[str, int] | None:
                try:
                    check(pdu)
                except PduError as exc:
                    return ("refused", exc.command_status)
                return None

            assert outcome(validate_request) == outcome(check_request), (data_coding, length)


def test_send_submission_responses_is_send_for_a_batch() -> None:
    link = Link()
    link.bind()
    requests: list[SubmitSm | DataSm] = [
        replace(SUBMIT, sequence_number=7),
        DataSm(sequence_number=8, source_addr="1", destination_addr="2"),
    ]
    outcomes: list[str | int] = ["m7", CommandStatus.ESME_RTHROTTLED]
    assert link.smsc.send_submission_responses(requests, outcomes, 1.0) == (
        encode_pdu(SubmitSmResp(sequence_number=7, message_id="m7"))
        + encode_pdu(DataSmResp(sequence_number=8, command_status=CommandStatus.ESME_RTHROTTLED))
    )
    with pytest.raises(LocalProtocolError):
        link.smsc.send_submission_responses([EnquireLink(sequence_number=9)], ["x"], 1.0)  # type: ignore[list-item]
    with pytest.raises(LocalProtocolError):
        link.smsc.send_submission_responses(requests, ["m7"], 1.0)
    with pytest.raises(PduError):
        link.smsc.send_submission_responses([SUBMIT], ["x" * 70], 1.0)
    link.smsc.close()
    with pytest.raises(LocalProtocolError):
        link.smsc.send_submission_responses(requests, outcomes, 1.0)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.integers(0, MAX_SEQUENCE_NUMBER),
            st.one_of(st.text(max_size=70), st.integers(0, 0xFFFFFFFF), st.integers(0x100000000, 2**40)),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_packed_submission_responses_are_the_codecs_octets(answers: list[tuple[bool, int, str | int]]) -> None:
    """The packed fast path gives `encode_pdu(submission_response(...))`, and refuses what the codec refuses."""
    link = Link()
    link.bind()
    requests: list[SubmitSm | DataSm] = [
        replace(SUBMIT, sequence_number=number) if submit else DataSm(sequence_number=number)
        for submit, number, _ in answers
    ]
    outcomes = [outcome for _, _, outcome in answers]
    try:
        expected: bytes | type[PduError] = b"".join(
            encode_pdu(submission_response(request, outcome)) for request, outcome in zip(requests, outcomes)
        )
    except PduError:
        expected = PduError
    try:
        got: bytes | type[PduError] = link.smsc.send_submission_responses(requests, outcomes, 1.0)
    except PduError:
        got = PduError
    assert got == expected


def test_state_change_within_a_read_applies_to_the_submit_sm_after_it() -> None:
    """Whether the state takes submit_sm is decided once per read until another PDU comes: a submit_sm after an
    unbind in the same read is refused; around a bind both are refused (bound only once the bind is answered)."""
    link = Link()
    link.bind()
    before, after = replace(SUBMIT, sequence_number=20), replace(SUBMIT, sequence_number=22)
    link.smsc.receive_data(b"".join(encode_pdu(p) for p in [before, Unbind(sequence_number=21), after]), 1.0)
    accepted, unbind, rejected = events(link.smsc)
    assert accepted == SubmissionsReceived([before]) and unbind == RequestReceived(Unbind(sequence_number=21))
    assert isinstance(rejected, RequestRejected)
    assert rejected.response == SubmitSmResp(sequence_number=22, command_status=CommandStatus.ESME_RINVBNDSTS)

    fresh = Link()
    early, late = replace(SUBMIT, sequence_number=2), replace(SUBMIT, sequence_number=4)
    fresh.smsc.receive_data(b"".join(encode_pdu(p) for p in [early, BindTransmitter(sequence_number=3), late]), 1.0)
    refused, bind, refused_too = events(fresh.smsc)
    assert isinstance(refused, RequestRejected) and refused.response.sequence_number == 2
    assert isinstance(bind, RequestReceived)
    assert isinstance(refused_too, RequestRejected)
    assert refused_too.response == SubmitSmResp(sequence_number=4, command_status=CommandStatus.ESME_RINVBNDSTS)
    fresh.smsc.send(response_for(bind.pdu), 1.0)
    fresh.smsc.receive_data(encode_pdu(late), 1.0)
    assert events(fresh.smsc) == [SubmissionsReceived([late])]


def test_submissions_of_one_read_come_as_one_event_in_wire_order() -> None:
    """A run of submit_sm/data_sm in one read is one SubmissionsReceived; anything between two runs (a rejected
    submission, an enquire_link) stays between them, and a later read starts a new event."""
    link = Link()
    link.bind()
    good = [replace(SUBMIT, sequence_number=n) for n in (10, 11)]
    bad = replace(SUBMIT, sequence_number=12, destination_addr="")
    data_sm = DataSm(sequence_number=13, destination_addr="447700900002", dest_addr_ton=1, dest_addr_npi=1)
    enquire = EnquireLink(sequence_number=14)
    last = replace(SUBMIT, sequence_number=15)
    link.smsc.receive_data(b"".join(encode_pdu(p) for p in [*good, bad, data_sm, enquire, last]), 1.0)
    received = events(link.smsc)
    assert received[0] == SubmissionsReceived(good)
    assert isinstance(received[1], RequestRejected) and received[1].response.sequence_number == 12
    assert received[2:] == [
        SubmissionsReceived([data_sm]),
        RequestReceived(enquire),
        SubmissionsReceived([last]),
    ]
    link.smsc.receive_data(encode_pdu(good[0]), 2.0)
    link.smsc.receive_data(encode_pdu(good[1]), 2.0)
    assert events(link.smsc) == [SubmissionsReceived([good[0]]), SubmissionsReceived([good[1]])]
