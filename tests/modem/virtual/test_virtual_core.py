"""The sans-IO modem core: host bytes in, modem bytes out, with `now` given by the test."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.config import VirtualNetworkConfig
from smsgw.modem.virtual.atparse import Command, LineSyntaxError, Op, parse_line, split_args
from smsgw.modem.virtual.delivery import CNMA_TIMEOUT_S
from smsgw.modem.virtual.general import SimState
from smsgw.modem.virtual.lineinput import edit_line
from smsgw.modem.virtual.modem import ModemCore
from smsgw.modem.virtual.network import VirtualNetwork
from smsgw.modem.virtual.persona import personas
from smsgw.pdu.tpdu import Address, SmsDeliver, SmsStatusReport, SmsSubmit, encode_with_smsc, split_smsc

CONFIG = VirtualNetworkConfig(delivery_delay_s=0.0)
# Pieces of real command lines, so random input reaches the commands' argument parsing too.
_FRAGMENTS = [
    b"AT", b"\r", b"+CMGS=", b"+CMGF=1;", b"+CPMS=", b'"SM"', b",", b"?", b"=?", b"\x1a", b"0011000B91", b"+CNMI=2,2",
    b"+CMGR=1", b"+CMGL=", b"+CMGD=1,4", b"+CSCS=\"UCS2\"", b"+CUSD=1,\"*100#\"", b"+CPIN=", b"ATE", b"V0", b"S3=",
    b"+CFUN=1,1", b"+CSMP=49,167,0,8", b"+CMEE=2",
]
EPOCH = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def make(config: VirtualNetworkConfig = CONFIG, pin: str | None = None) -> tuple[VirtualNetwork, ModemCore, ModemCore]:
    network = VirtualNetwork(config, now=0.0, wall_clock=EPOCH)
    a = ModemCore(msisdn="447700900001", network=network, config=config, now=0.0, pin=pin)
    b = ModemCore(msisdn="447700900002", network=network, config=config, now=0.0)
    return network, a, b


def at(modem: ModemCore, line: str, now: float = 0.0) -> bytes:
    modem.receive_data(line.encode("latin-1") + b"\r", now)
    return modem.data_to_send()


def test_parse_line_splits_basic_and_extended_commands() -> None:
    assert parse_line('ATE0V1+CMEE=1;+CPMS="SM","ME";+CMGF?;S0=0') == [
        Command("E", Op.SET, "0"),
        Command("V", Op.SET, "1"),
        Command("+CMEE", Op.SET, "1"),
        Command("+CPMS", Op.SET, '"SM","ME"'),
        Command("+CMGF", Op.READ),
        Command("S0", Op.SET, "0"),
    ]
    assert parse_line("at+cnmi=?") == [Command("+CNMI", Op.TEST)]
    assert split_args('1,,"a,b" ,3') == ["1", None, "a,b", "3"]
    with pytest.raises(LineSyntaxError):
        parse_line('AT+CSCA="123')


def test_echo_and_results() -> None:
    _, modem, _ = make()
    assert at(modem, "AT") == b"AT\r\r\nOK\r\n"
    assert at(modem, "ATE0") == b"ATE0\r\r\nOK\r\n"
    assert at(modem, "AT") == b"\r\nOK\r\n"
    assert at(modem, "ATV0") == b"0\r"
    assert at(modem, "AT+NOPE") == b"4\r"
    assert at(modem, "ATV1") == b"\r\nOK\r\n"  # the new format applies to its own result
    assert at(modem, "AT+CGMI") == b"\r\nsmsgw\r\n\r\nOK\r\n"


def test_input_in_pieces_and_backspace() -> None:
    _, modem, _ = make()
    at(modem, "ATE0")
    modem.receive_data(b"AT+CS", 0.0)
    assert modem.data_to_send() == b""
    modem.receive_data(b"QX\x08\r", 0.0)
    assert modem.data_to_send() == b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"


def test_cmee_modes() -> None:
    _, modem, _ = make(pin="1234")
    at(modem, "ATE0")
    assert at(modem, "AT+CIMI") == b"\r\nERROR\r\n"
    assert at(modem, "AT+CMEE=1;+CIMI") == b"\r\n+CME ERROR: 11\r\n"
    assert at(modem, "AT+CMEE=2;+CIMI") == b"\r\n+CME ERROR: SIM PIN required\r\n"
    assert at(modem, "AT+CMEE=1;+CMGL=4") == b"\r\n+CMS ERROR: 311\r\n"


def test_wrong_pin_counts_down_to_puk() -> None:
    network, modem, _ = make(pin="1234")
    at(modem, "ATE0;+CMEE=1")
    assert at(modem, "AT+CPIN?") == b'\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n'
    assert not network.is_attached("447700900001")
    for _ in range(3):
        assert at(modem, 'AT+CPIN="0000"') == b"\r\n+CME ERROR: 16\r\n"
    assert modem.sim_state is SimState.PUK
    assert at(modem, 'AT+CPIN="1234"') == b"\r\n+CME ERROR: 16\r\n"  # PUK needed now, with a new PIN
    assert at(modem, 'AT+CPIN="12345678","4321"') == b"\r\nOK\r\n"
    assert modem.sim_state is SimState.READY
    assert network.is_attached("447700900001")


def test_sim_busy_after_power_on_then_registration() -> None:
    config = VirtualNetworkConfig(delivery_delay_s=0.0, sim_ready_delay_s=5.0, registration_delay_s=2.0)
    network, modem, _ = make(config)
    at(modem, "ATE0;+CMEE=1;+CREG=1")
    assert at(modem, "AT+CPIN?", 1.0) == b"\r\n+CME ERROR: 14\r\n"
    assert modem.next_deadline() == 5.0
    modem.handle_timers(5.0)
    assert modem.data_to_send() == b"\r\n+CREG: 2\r\n"
    assert modem.next_deadline() == 7.0
    modem.handle_timers(7.0)
    assert modem.data_to_send() == b"\r\n+CREG: 1\r\n"
    assert network.is_attached("447700900001")
    assert at(modem, "AT+CREG=2;+CREG?", 7.0) == b'\r\n+CREG: 2,1,"00A1","1B2C"\r\n\r\nOK\r\n'


def send_pdu(modem: ModemCore, submit: SmsSubmit, now: float = 0.0) -> bytes:
    tpdu = submit.to_bytes()
    assert at(modem, f"AT+CMGS={len(tpdu)}", now) == b"\r\n> "
    modem.receive_data(encode_with_smsc(tpdu).hex().upper().encode() + b"\x1a", now)
    return modem.data_to_send()


def test_cmgs_pdu_mode_increments_tp_mr_and_cancels_with_esc() -> None:
    _, modem, _ = make()
    at(modem, "ATE0;+CMEE=1")
    submit = SmsSubmit(destination=Address.international("447700900123"), user_data=b"hi", tp_mr=77)
    assert send_pdu(modem, submit) == b"\r\n+CMGS: 0\r\n\r\nOK\r\n"
    assert send_pdu(modem, submit) == b"\r\n+CMGS: 1\r\n\r\nOK\r\n"
    assert at(modem, "AT+CMGS=20") == b"\r\n> "
    modem.receive_data(b"0011\x1b", 0.0)
    assert modem.data_to_send() == b"\r\nOK\r\n"
    assert at(modem, "AT+CMGS=20") == b"\r\n> "
    modem.receive_data(b"00ZZ\x1a", 0.0)
    assert modem.data_to_send() == b"\r\n+CMS ERROR: 304\r\n"
    # A length that does not match the TPDU is refused as a real modem does.
    tpdu = submit.to_bytes()
    assert at(modem, f"AT+CMGS={len(tpdu) + 1}") == b"\r\n> "
    modem.receive_data(encode_with_smsc(tpdu).hex().encode() + b"\x1a", 0.0)
    assert modem.data_to_send() == b"\r\n+CMS ERROR: 304\r\n"


def test_cmgs_to_invalid_number_is_rp_error() -> None:
    _, modem, _ = make()
    at(modem, "ATE0")
    submit = SmsSubmit(destination=Address.alphanumeric("Shop"), user_data=b"x")
    assert send_pdu(modem, submit) == b"\r\n+CMS ERROR: 1\r\n"


def test_submit_delay_holds_the_result() -> None:
    config = VirtualNetworkConfig(delivery_delay_s=0.0, submit_delay_s=3.0)
    _, modem, _ = make(config)
    at(modem, "ATE0")
    submit = SmsSubmit(destination=Address.international("447700900123"), user_data=b"hi")
    assert send_pdu(modem, submit, 1.0) == b""
    modem.receive_data(b"AT\r", 2.0)  # typed while the modem is busy: answered after the send
    assert modem.data_to_send() == b""
    assert modem.next_deadline() == 4.0
    modem.handle_timers(4.0)
    assert modem.data_to_send() == b"\r\n+CMGS: 0\r\n\r\nOK\r\n\r\nOK\r\n"


def deliver(text: str = "hello", sender: str = "447700900777", message_class: int | None = None) -> SmsDeliver:
    from smsgw.pdu.gsm7 import encode_gsm7
    from smsgw.pdu.tpdu import Dcs

    return SmsDeliver(
        originator=Address.international(sender), scts=EPOCH, user_data=encode_gsm7(text), dcs=Dcs.gsm7(message_class)
    )


def test_received_sms_stored_announced_read_and_deleted() -> None:
    _, modem, _ = make()
    at(modem, "ATE0;+CMEE=1;+CNMI=2,1,0,0,0")
    assert modem.receive_mt(0.0, deliver()).value == "accepted"
    assert modem.data_to_send() == b'\r\n+CMTI: "SM",1\r\n'
    listing = at(modem, "AT+CMGL=0").split(b"\r\n")
    assert listing[1].startswith(b"+CMGL: 1,0,,")
    smsc, tpdu = split_smsc(bytes.fromhex(listing[2].decode()))
    assert smsc == "+447700900000"
    assert SmsDeliver.from_bytes(tpdu).text == "hello"
    assert at(modem, "AT+CMGL=0") == b"\r\nOK\r\n"  # listed once: now REC READ
    assert at(modem, "AT+CMGR=1").startswith(b"\r\n+CMGR: 1,,")
    assert at(modem, "AT+CMGD=1;+CMGR=1") == b"\r\n+CMS ERROR: 321\r\n"


def test_text_mode_listing_and_direct_delivery() -> None:
    _, modem, _ = make()
    at(modem, 'ATE0;+CMGF=1;+CSCS="IRA";+CNMI=2,2,0,1,0')
    modem.receive_mt(0.0, deliver("direct"))
    assert modem.data_to_send() == b'\r\n+CMT: "+447700900777",,"26/01/02,03:04:05+00"\r\ndirect\r\n'
    modem.receive_mt(1.0, deliver("class two", message_class=2))  # SIM-specific: always stored
    assert modem.data_to_send() == b'\r\n+CMTI: "SM",1\r\n'
    assert at(modem, 'AT+CMGL="ALL"') == (
        b'\r\n+CMGL: 1,"REC UNREAD","+447700900777",,"26/01/02,03:04:05+00"\r\nclass two\r\n\r\nOK\r\n'
    )
    report = SmsStatusReport(
        tp_mr=5, recipient=Address.international("447700900123"), scts=EPOCH, discharge_time=EPOCH, tp_st=0
    )
    modem.receive_mt(2.0, report)
    assert modem.data_to_send() == (
        b'\r\n+CDS: 6,5,"+447700900123",145,"26/01/02,03:04:05+00","26/01/02,03:04:05+00",0\r\n'
    )


def test_text_mode_send_with_status_report_request() -> None:
    network, a, b = make()
    at(a, 'ATE0;+CMGF=1;+CSMP=49,167,0,0;+CNMI=2,1,0,2,0')
    at(b, "ATE0;+CNMI=2,1,0,0,0")
    assert at(a, 'AT+CMGS="+447700900002"') == b"\r\n> "
    a.receive_data(b"text mode\x1a", 0.0)
    assert a.data_to_send() == b"\r\n+CMGS: 0\r\n\r\nOK\r\n"
    network.advance(0.0)
    assert b.data_to_send() == b'\r\n+CMTI: "SM",1\r\n'
    assert a.data_to_send() == b'\r\n+CDSI: "SM",1\r\n'
    stored = b.stored("SM")[1].message
    assert isinstance(stored, SmsDeliver) and stored.text == "text mode"
    report = a.stored("SM")[1].message
    assert isinstance(report, SmsStatusReport) and (report.tp_mr, report.tp_st) == (0, 0)


def test_unsolicited_codes_wait_for_the_running_command() -> None:
    _, modem, _ = make()
    at(modem, "ATE0;+CNMI=2,1,0,0,0")
    assert at(modem, "AT+CMGS=20") == b"\r\n> "
    modem.receive_mt(0.0, deliver())
    assert modem.data_to_send() == b""
    modem.receive_data(b"\x1b", 0.0)
    assert modem.data_to_send() == b'\r\nOK\r\n\r\n+CMTI: "SM",1\r\n'


def test_cnmi_mode_0_buffers_indications_until_mode_changes() -> None:
    _, modem, _ = make()
    at(modem, "ATE0;+CNMI=0,1,0,0,0")
    modem.receive_mt(0.0, deliver())
    assert modem.data_to_send() == b""
    assert at(modem, "AT+CNMI=2,1,0,0,0") == b'\r\nOK\r\n\r\n+CMTI: "SM",1\r\n'


def test_memory_full_refuses_then_deletion_tells_the_network() -> None:
    config = VirtualNetworkConfig(delivery_delay_s=0.0, sim_capacity=1, retry_interval_s=600.0)
    network, a, b = make(config)
    at(b, "ATE0;+CNMI=2,1,0,0,0")
    assert b.receive_mt(0.0, deliver("first")).value == "accepted"
    b.data_to_send()
    at(a, "ATE0")
    send_pdu(a, SmsSubmit(destination=Address.international("447700900002"), user_data=b"second"))
    network.advance(0.0)
    assert b.data_to_send() == b""  # refused: memory full; the network waits for retry or RP-SMMA
    assert network.next_deadline() == 600.0
    assert at(b, "AT+CMGD=1") == b"\r\nOK\r\n"
    network.advance(config.mt_interval_s)  # the retry at once, after the radio's spacing, not after 600 s
    assert b.data_to_send() == b'\r\n+CMTI: "SM",1\r\n'


def test_cpms_cfun_cusd_and_identity() -> None:
    network, modem, _ = make()
    at(modem, "ATE0;+CMEE=1")
    assert at(modem, 'AT+CPMS="ME","ME","ME"') == b"\r\n+CPMS: 0,100,0,100,0,100\r\n\r\nOK\r\n"
    assert at(modem, 'AT+CPMS="XX"') == b"\r\n+CMS ERROR: 303\r\n"
    assert at(modem, "AT+CFUN=0") == b"\r\nOK\r\n"
    assert not network.is_attached("447700900001")
    assert at(modem, "AT+CFUN=1;+CFUN?") == b"\r\n+CFUN: 1\r\n\r\nOK\r\n"
    assert network.is_attached("447700900001")
    assert at(modem, 'AT+CUSD=1,"*#100#",15') == b'\r\nOK\r\n\r\n+CUSD: 0,"Your number is +447700900001",15\r\n'
    imei = at(modem, "AT+CGSN").split(b"\r\n")[1].decode()
    assert len(imei) == 15 and imei.isdigit()
    assert at(modem, "AT+CSCA?") == b'\r\n+CSCA: "+447700900000",145\r\n\r\nOK\r\n'
    assert at(modem, "AT+CNMA") == b"\r\n+CMS ERROR: 340\r\n"


def test_wall_time_follows_now() -> None:
    network, _, _ = make()
    assert network.wall_time(90.5) == EPOCH + timedelta(seconds=90)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=40) | st.sampled_from(_FRAGMENTS), max_size=12))
def test_any_host_bytes_get_answers_never_exceptions(chunks: list[bytes]) -> None:
    _, modem, _ = make()
    for chunk in chunks:
        modem.receive_data(chunk, 0.0)
        assert isinstance(modem.data_to_send(), bytes)
    modem.receive_data(b"\x1b\rAT\r", 0.0)  # leave any prompt, then the modem still answers
    assert modem.data_to_send().endswith((b"OK\r\n", b"0\r"))


def test_sim800_persona_announces_readiness_and_its_storages() -> None:
    config = VirtualNetworkConfig(sim_ready_delay_s=2.0)
    network = VirtualNetwork(config, now=0.0, wall_clock=EPOCH)
    modem = ModemCore(msisdn="447700900001", network=network, config=config, now=0.0, persona=personas()["sim800"])
    at(modem, "ATE0;+CNMI=2,1,0,0,0")
    modem.handle_timers(2.0)
    assert modem.data_to_send() == b"\r\n+CPIN: READY\r\nCall Ready\r\nSMS Ready\r\n"
    assert at(modem, "AT+CGMI") == b"\r\nSIMCOM_Ltd\r\n\r\nOK\r\n"
    assert at(modem, "AT+CPMS?", 2.0).startswith(b'\r\n+CPMS: "SM",0,30,"SM",0,30,"SM",0,30')
    assert b'"MT"' in at(modem, "AT+CPMS=?", 2.0)


def test_huawei_persona_status_lines_land_inside_a_command() -> None:
    network = VirtualNetwork(CONFIG, now=0.0, wall_clock=EPOCH)
    modem = ModemCore(msisdn="447700900001", network=network, config=CONFIG, now=0.0, persona=personas()["huawei"])
    at(modem, "ATE0")
    assert modem.next_deadline() == 5.0
    assert at(modem, "AT+CMGS=20", 4.0) == b"\r\n> "
    modem.handle_timers(5.0)
    assert modem.data_to_send() == b"\r\n^RSSI: 20\r\n^MODE: 3,3\r\n^DSFLOWRPT:00000000,00000000,00000000\r\n"
    modem.receive_data(b"\x1b", 5.0)
    assert modem.data_to_send() == b"\r\nOK\r\n"
    assert modem.next_deadline() == 10.0


def test_cmgd_delflags() -> None:
    _, modem, _ = make()
    at(modem, "ATE0;+CMEE=1")
    for text in ("one", "two", "three"):
        modem.receive_mt(0.0, deliver(text))
    at(modem, "AT+CMGR=1")  # read: REC READ
    assert at(modem, "AT+CMGD=0,1") == b"\r\nOK\r\n"  # delflag 1: every read message
    assert sorted(modem.stored("SM")) == [2, 3]
    assert at(modem, "AT+CMGD=?") == b"\r\n+CMGD: (2,3),(0-4)\r\n\r\nOK\r\n"
    assert at(modem, "AT+CMGD=1,4") == b"\r\nOK\r\n"  # delflag 4: all
    assert modem.stored("SM") == {}
    assert at(modem, "AT+CMGD=31") == b"\r\n+CMS ERROR: 321\r\n"


def test_text_mode_ucs2_send_and_read() -> None:
    network, a, b = make()
    at(a, 'ATE0;+CMGF=1;+CSCS="UCS2";+CSMP=17,167,0,8')
    at(b, 'ATE0;+CMGF=1;+CSCS="UCS2";+CNMI=2,2,0,0,0')
    assert at(a, 'AT+CMGS="+447700900002"') == b"\r\n> "
    a.receive_data("Привет".encode("utf-16-be").hex().upper().encode() + b"\x1a", 0.0)
    assert a.data_to_send() == b"\r\n+CMGS: 0\r\n\r\nOK\r\n"
    network.advance(0.0)
    lines = b.data_to_send().split(b"\r\n")
    assert lines[1].startswith(b'+CMT: "+447700900001",,"')
    assert bytes.fromhex(lines[2].decode()).decode("utf-16-be") == "Привет"


def test_atz_restores_defaults_and_clac_lists_commands() -> None:
    _, modem, _ = make()
    at(modem, "ATE0;+CMGF=1;+CMEE=2")
    assert at(modem, "ATZ") == b"\r\nOK\r\n"  # echoed with the settings it was typed under
    assert at(modem, "AT+CMGF?;+CMEE?") == b"AT+CMGF?;+CMEE?\r\r\n+CMGF: 0\r\n+CMEE: 0\r\n\r\nOK\r\n"
    assert b"AT+CMGS\r\n" in at(modem, "AT+CLAC")


def test_cfun_reset_locks_the_sim_again() -> None:
    network, modem, _ = make(pin="1234")
    at(modem, 'ATE0;+CMEE=1;+CPIN="1234"')
    assert network.is_attached("447700900001")
    assert at(modem, "AT+CFUN=1,1") == b"\r\nOK\r\n"
    assert not network.is_attached("447700900001")
    assert at(modem, "ATE0;+CPIN?") == b"ATE0;+CPIN?\r\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n"


def test_cnma_acknowledges_direct_delivery_and_its_absence_stops_routing() -> None:
    _, modem, _ = make()
    at(modem, "ATE0;+CMEE=1;+CSMS=1;+CNMI=2,2,0,1,0")
    modem.receive_mt(0.0, deliver("acked"))
    assert modem.data_to_send().startswith(b"\r\n+CMT: ,")
    assert at(modem, "AT+CNMA") == b"\r\nOK\r\n"
    assert at(modem, "AT+CNMA") == b"\r\n+CMS ERROR: 340\r\n"
    modem.receive_mt(1.0, deliver("never acked"))
    modem.data_to_send()
    assert modem.next_deadline() == 1.0 + CNMA_TIMEOUT_S
    modem.handle_timers(1.0 + CNMA_TIMEOUT_S)
    assert at(modem, "AT+CNMI?", 20.0) == b"\r\n+CNMI: 2,0,0,0,0\r\n\r\nOK\r\n"
    (kept,) = modem.stored("SM").values()
    assert isinstance(kept.message, SmsDeliver) and kept.message.text == "never acked"


@given(
    st.lists(st.one_of(st.sampled_from(b"AT+CMGS=12\r\n\x08\x1a\x1b\x00 \x7f"), st.integers(0, 255)), max_size=40),
    st.one_of(st.just(10), st.integers(0, 255)),
    st.one_of(st.just(8), st.integers(0, 255)),
)
def test_line_editing_fast_path_agrees_with_octet_by_octet_editing(octets: list[int], s4: int, s5: int) -> None:
    raw = bytes(octets)
    chars: list[str] = []
    for octet in raw:
        if octet == s5:
            if chars:
                chars.pop()
        elif octet not in (s4, 0x1A, 0x1B, 0):
            chars.append(chr(octet))
    assert edit_line(raw, s4, s5) == "".join(chars).strip()


def report(tp_mr: int = 5) -> SmsStatusReport:
    return SmsStatusReport(
        tp_mr=tp_mr, recipient=Address.international("447700900123"), scts=EPOCH, discharge_time=EPOCH, tp_st=0
    )


def test_status_report_under_ds_0_is_stored_without_indication() -> None:
    # gammu never sets +CNMI: the power-on ds=0 must not lose the report, as a real modem keeps it in storage.
    _, modem, _ = make()
    at(modem, "ATE0;+CMGF=1")
    assert modem.receive_mt(0.0, report()).value == "accepted"
    assert modem.data_to_send() == b""
    assert at(modem, 'AT+CMGL="ALL"') == (
        b'\r\n+CMGL: 1,"REC UNREAD",6,5,"+447700900123",145,"26/01/02,03:04:05+00","26/01/02,03:04:05+00",0\r\n'
        b"\r\nOK\r\n"
    )
    at(modem, "AT+CNMI=2,1,0,2,0")
    modem.receive_mt(1.0, report(6))
    assert modem.data_to_send() == b'\r\n+CDSI: "SM",2\r\n'


def test_cgreg_and_cgatt_follow_registration() -> None:
    _, modem, _ = make()
    at(modem, "ATE0")
    assert at(modem, "AT+CGREG=2;+CGREG?") == b'\r\n+CGREG: 2,1,"00A1","1B2C"\r\n\r\nOK\r\n'
    assert at(modem, "AT+CGATT?") == b"\r\n+CGATT: 1\r\n\r\nOK\r\n"
    assert at(modem, "AT+CFUN=0") == b"\r\nOK\r\n\r\n+CGREG: 0\r\n"
    assert at(modem, "AT+CGATT?") == b"\r\n+CGATT: 0\r\n\r\nOK\r\n"
    assert at(modem, "AT+CGREG=3") == b"\r\nERROR\r\n"


def test_huawei_curc_stops_the_status_lines_and_vendor_answers_come_from_data() -> None:
    network = VirtualNetwork(CONFIG, now=0.0, wall_clock=EPOCH)
    modem = ModemCore(msisdn="447700900001", network=network, config=CONFIG, now=0.0, persona=personas()["huawei"])
    at(modem, "ATE0")
    assert at(modem, "AT^CURC?") == b"\r\n^CURC: 1\r\n\r\nOK\r\n"
    assert at(modem, "AT^CURC=0;^PORTSEL=1;^SYSINFO") == b"\r\n^SYSINFO:2,3,0,5,1,,4\r\n\r\nOK\r\n"
    assert modem.next_deadline() is None  # no periodic ^RSSI any more
    modem.handle_timers(60.0)
    assert modem.data_to_send() == b""
    assert at(modem, "AT^NOPE") == b"\r\nERROR\r\n"
    assert at(modem, "AT^SYSINFO", 60.0) == b"\r\n^SYSINFO:2,3,0,5,1,,4\r\n\r\nOK\r\n"


def test_cnmi_values_follow_the_persona() -> None:
    network = VirtualNetwork(CONFIG, now=0.0, wall_clock=EPOCH)
    sim800 = ModemCore(msisdn="447700900001", network=network, config=CONFIG, now=0.0, persona=personas()["sim800"])
    at(sim800, "ATE0;+CMEE=1")
    assert at(sim800, "AT+CNMI=?") == b"\r\n+CNMI: (0-3),(0-3),(0,2),(0,1),(0,1)\r\n\r\nOK\r\n"
    assert at(sim800, "AT+CNMI=2,1,0,2,0") == b"\r\n+CMS ERROR: 303\r\n"  # no stored status reports on a SIM800
    assert at(sim800, "AT+CNMI=2,1,0,1,0") == b"\r\nOK\r\n"


def test_unsolicited_lines_are_spaced_and_never_inside_a_response() -> None:
    config = VirtualNetworkConfig(delivery_delay_s=0.0, unsolicited_gap_s=0.5)
    _, modem, _ = make(config)
    at(modem, "ATE0;+CNMI=2,1,0,1,0")
    modem.receive_mt(0.0, deliver("one"))
    modem.receive_mt(0.0, deliver("two"))  # the same instant: the second waits for a quiet line
    assert modem.data_to_send() == b'\r\n+CMTI: "SM",1\r\n'
    assert modem.next_deadline() == 0.5
    modem.handle_timers(0.5)
    assert modem.data_to_send() == b'\r\n+CMTI: "SM",2\r\n'
    assert at(modem, "AT+CMGS=20", 1.0) == b"\r\n> "
    modem.receive_mt(1.0, report())  # arrives while the host types the PDU
    assert modem.data_to_send() == b""
    modem.receive_data(b"\x1b", 1.0)
    assert modem.data_to_send().startswith(b"\r\nOK\r\n\r\n+CDS: ")  # after the final result, not before
