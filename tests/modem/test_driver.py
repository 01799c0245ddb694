from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

import pytest
import trio
import trio.testing

from smsgw.config import ModemConfig
from smsgw.modem.at import CMS_ERRORS
from smsgw.modem.driver import ModemDriver, ModemState
from smsgw.modem.incoming import COMMAND_LINE_MAX_CHARS, REPORTS_IN_FLIGHT, URC_QUEUE_LIMIT
from smsgw.modem.startup import choose_cnmi
from smsgw.modem.quirks import GENERIC, ModemQuirks
from smsgw.modem.transport import PortOpenError
from smsgw.modem.seams import OutgoingSms, SendFailed, Sent
from smsgw.pdu.text import Encoding, encode_text
from smsgw.pdu.tpdu import (
    Address,
    Dcs,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    encode_with_smsc,
    split_smsc,
)
from smsgw.pdu.udh import Concatenation, concatenation_udh

from modem_fakes import OK, RecordingSink, ScriptedModem, SerialLikeStream, lines, memory_opener


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def _config(**changes: object) -> ModemConfig:
    return ModemConfig(name="m1", port="/dev/null", msisdn="447700900001", **changes)  # type: ignore[arg-type]


async def _ready(nursery: trio.Nursery, modem: ScriptedModem, sink: RecordingSink, **config: object) -> ModemDriver:
    driver = ModemDriver(_config(**config), sink, opener=memory_opener(modem, nursery), quirks_table=())
    nursery.start_soon(driver.run)
    state = await driver.wait_state(ModemState.READY, ModemState.DOWN)
    assert state is ModemState.READY, driver.status().last_error
    await trio.sleep(1)  # the start-up scan of stored messages (AT+CMGL=4) is done
    return driver


async def test_start_up_identifies_and_configures(clock: trio.testing.MockClock) -> None:
    modem = ScriptedModem()
    sink = RecordingSink(modem)
    async with trio.open_nursery() as nursery:
        driver = await _ready(nursery, modem, sink)
        status = driver.status()
        assert (status.manufacturer, status.model, status.imei, status.imsi) == (
            "Fakecom", "FM1", "356938035643809", "234150000000001"
        )
        assert (status.signal_rssi, status.registration, status.operator) == (20, 1, "Fake Net")
        assert modem.sent[:3] == ["ATE0", "AT+CMEE=1", "AT+CGMI"]
        assert "AT+CMGF=0" in modem.sent
        assert "AT+CNMI=2,1,0,2,0" in modem.sent  # status reports stored, so they wait on the modem for us
        assert "AT+CSMS=1" not in modem.sent
        assert 'AT+CPMS="ME","ME","ME"' in modem.sent
        nursery.cancel_scope.cancel()


def _deliver_pdu(text: str, originator: str = "447700900123", udh: bytes = b"", dcs: Dcs | None = None) -> str:
    deliver = SmsDeliver(
        originator=Address.international(originator),
        scts=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        user_data=encode_text(text, Encoding.GSM7),
        dcs=dcs or Dcs.gsm7(),
        udh=udh,
    )
    return encode_with_smsc(deliver.to_bytes(), "+447700900000").hex().upper()


def _report_pdu(tp_mr: int, tp_st: int = 0) -> str:
    moment = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    report = SmsStatusReport(
        tp_mr=tp_mr, recipient=Address.international("447700900555"), scts=moment, discharge_time=moment, tp_st=tp_st
    )
    return encode_with_smsc(report.to_bytes()).hex().upper()


def _sms(**changes: object) -> OutgoingSms:
    values: dict[str, object] = {
        "segment_id": "s1",
        "destination": "447700900555",
        "data_coding": 0,
        "user_data": encode_text("hello", Encoding.GSM7),
    }
    values.update(changes)
    return OutgoingSms(**values)  # type: ignore[arg-type]


async def test_echo_on_sim_busy_and_missing_ok_after_cpin_are_tolerated(clock: trio.testing.MockClock) -> None:
    answers = iter(["\r\n+CME ERROR: 14\r\n", "\r\n+CME ERROR: 14\r\n", "\r\n+CPIN: READY\r\n"])
    modem = ScriptedModem(echo=True)
    modem.answers["AT+CPIN?"] = lambda line: next(answers, lines("+CPIN: READY"))
    sink = RecordingSink()
    async with trio.open_nursery() as nursery:
        driver = await _ready(nursery, modem, sink)
        assert modem.sent.count("AT+CPIN?") == 3  # busy, busy, READY without OK (timed out, answer kept)
        assert driver.imsi == "234150000000001"
        nursery.cancel_scope.cancel()


async def test_pin_is_entered_once(clock: trio.testing.MockClock) -> None:
    modem = ScriptedModem()
    sim = {"locked": True}
    modem.answers["AT+CPIN?"] = lambda line: lines("+CPIN: SIM PIN" if sim["locked"] else "+CPIN: READY")

    def enter(line: str) -> str:
        sim["locked"] = False
        return OK

    modem.answers['AT+CPIN="1234"'] = enter
    async with trio.open_nursery() as nursery:
        await _ready(nursery, modem, RecordingSink(), pin="1234")
        assert modem.sent.count('AT+CPIN="1234"') == 1
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("wrong_pin_answer", ["\r\n+CME ERROR: 16\r\n", OK])
async def test_wrong_pin_is_never_retried(clock: trio.testing.MockClock, wrong_pin_answer: str) -> None:
    modem = ScriptedModem()
    modem.answers["AT+CPIN?"] = lines("+CPIN: SIM PIN")
    modem.answers['AT+CPIN="0000"'] = wrong_pin_answer
    driver = ModemDriver(_config(pin="0000"), RecordingSink(), quirks_table=())
    async with trio.open_nursery() as nursery:
        driver = ModemDriver(_config(pin="0000"), RecordingSink(), opener=memory_opener(modem, nursery), quirks_table=())
        await driver.run()  # returns: a fatal SIM problem ends the driver
        assert driver.state is ModemState.DOWN
        assert modem.sent.count('AT+CPIN="0000"') == 1
        assert "PIN" in driver.status().last_error
        nursery.cancel_scope.cancel()


async def test_send_builds_submit_and_returns_tp_mr(clock: trio.testing.MockClock) -> None:
    modem = ScriptedModem(echo=True)
    modem.cmgs_answer = lambda pdu: lines("+CMGS: 42")
    async with trio.open_nursery() as nursery:
        driver = await _ready(nursery, modem, RecordingSink())
        outcome = await driver.send(_sms(status_report=True, validity=timedelta(hours=2), flash=True))
        assert isinstance(outcome, Sent)
        assert (outcome.tp_mr, outcome.modem, outcome.modem_msisdn) == (42, "m1", "447700900001")
        (pdu,) = modem.pdus
        smsc, tpdu = split_smsc(bytes.fromhex(pdu))
        assert smsc is None
        submit = SmsSubmit.from_bytes(tpdu)
        assert submit.destination == Address.international("447700900555")
        assert submit.status_report_request
        assert submit.validity == timedelta(hours=2)
        assert submit.message_class == 0
        assert submit.text == "hello"
        assert f"AT+CMGS={len(tpdu)}" in modem.sent
        assert driver.status().sent == 1
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(("code", "temporary"), [(21, False), (1, False), (42, True), (331, True), (500, True)])
async def test_cms_error_maps_to_temporary_or_permanent(
    clock: trio.testing.MockClock, code: int, temporary: bool
) -> None:
    modem = ScriptedModem()
    modem.cmgs_answer = lambda pdu: f"\r\n+CMS ERROR: {code}\r\n"
    async with trio.open_nursery() as nursery:
        driver = await _ready(nursery, modem, RecordingSink())
        outcome = await driver.send(_sms())
        assert outcome == SendFailed(temporary=temporary, reason=CMS_ERRORS[code], cms_error=code)
        nursery.cancel_scope.cancel()


async def test_cmti_read_then_deleted_only_after_sink_returned(clock: trio.testing.MockClock) -> None:
    modem = ScriptedModem()
    sink = RecordingSink(modem)
    async with trio.open_nursery() as nursery:
        driver = await _ready(nursery, modem, sink)
        sink.release = trio.Event()  # the store is slow
        modem.storage["ME"][3] = _deliver_pdu("hi there")
        await modem.inject('\r\n+CMTI: "ME",3\r\n')
        await trio.sleep(5)
        assert "AT+CMGR=3" in modem.sent
        assert "AT+CMGD=3" not in modem.sent
        sink.release.set()
        await sink.wait_for(lambda: len(sink.incoming) == 1)
        await trio.sleep(1)
        assert "AT+CMGD=3" in modem.sent
        (sms,) = sink.incoming
        assert (sms.originator, sms.text, sms.modem, sms.incomplete) == ("447700900123", "hi there", "m1", False)
        assert 3 not in modem.storage["ME"]
        assert driver.status().received == 1
        nursery.cancel_scope.cancel()


async def test_unsolicited_during_send_is_not_lost(clock: trio.testing.MockClock) -> None:
    modem = ScriptedModem()
    sink = RecordingSink(modem)
    modem.cmgs_answer = lambda pdu: '\r\n+CMTI: "ME",1\r\n' + lines("+CMGS: 3")
    async with trio.open_nursery() as nursery:
        driver = await _ready(nursery, modem, sink)
        modem.storage["ME"][1] = _deliver_pdu("during send")
        outcome = await driver.send(_sms())
        assert isinstance(outcome, Sent) and outcome.tp_mr == 3
        await sink.wait_for(lambda: len(sink.incoming) == 1)
        assert sink.incoming[0].text == "during send"
        nursery.cancel_scope.cancel()


async def test_stored_messages_read_at_start(clock: trio.testing.MockClock) -> None:
    modem = ScriptedModem()
    modem.storage["ME"] = {1: _deliver_pdu("old one"), 2: _deliver_pdu("old two")}
    sink = RecordingSink(modem)
    async with trio.open_nursery() as nursery:
        await _ready(nursery, modem, sink)
        await sink.wait_for(lambda: len(sink.incoming) == 2)
        await trio.sleep(1)
        assert [m.text for m in sink.incoming] == ["old one", "old two"]
        assert modem.storage["ME"] == {}
        nursery.cancel_scope.cancel()


def _concat(reference: int, total: int, sequence: int, bits: int = 8) -> bytes:
    return concatenation_udh(Concatenation(reference, total, sequence, bits))


@pytest.mark.parametrize("bits", [8, 16])
async def test_multipart_reassembled_duplicates_ignored_parts_deleted_together(
    clock: trio.testing.MockClock, bits: int
) -> None:
    modem = ScriptedModem()
    sink = RecordingSink(modem)
    async with trio.open_nursery() as nursery:
        await _ready(nursery, modem, sink)
        modem.storage["ME"][5] = _deliver_pdu("Hello ", udh=_concat(300 % (1 << bits), 2, 1, bits))
        modem.storage["ME"][6] = _deliver_pdu("Hello ", udh=_concat(300 % (1 << bits), 2, 1, bits))
        modem.storage["ME"][7] = _deliver_pdu("world", udh=_concat(300 % (1 << bits), 2, 2, bits))
        await modem.inject('\r\n+CMTI: "ME",5\r\n')
        await modem.inject('\r\n+CMTI: "ME",6\r\n')  # a duplicate part: freed, not delivered twice
        await trio.sleep(1)
        assert sink.incoming == []
        assert 5 in modem.storage["ME"]  # kept until its message is whole and handed over
        assert 6 not in modem.storage["ME"]
        await modem.inject('\r\n+CMTI: "ME",7\r\n')
        await sink.wait_for(lambda: len(sink.incoming) == 1)
        await trio.sleep(1)
        assert sink.incoming[0].text == "Hello world"
        assert modem.storage["ME"] == {}
        nursery.cancel_scope.cancel()


async def test_incomplete_multipart_delivered_after_timeout(clock: trio.testing.MockClock) -> None:
    modem = ScriptedModem()
    sink = RecordingSink(modem)
    async with trio.open_nursery() as nursery:
        driver = ModemDriver(
            _config(), sink, opener=memory_opener(modem, nursery), quirks_table=(), reassembly_timeout_s=1800
        )
        nursery.start_soon(driver.run)
        await driver.wait_state(ModemState.READY)
        modem.storage["ME"][1] = _deliver_pdu("first of three ", udh=_concat(9, 3, 1))
        await modem.inject('\r\n+CMTI: "ME",1\r\n')
        await trio.sleep(1799)
        assert sink.incoming == []
        await sink.wait_for(lambda: len(sink.incoming) == 1)
        assert trio.current_time() >= 1800
        sms = sink.incoming[0]
        assert (sms.text, sms.incomplete) == ("first of three ", True)
        await trio.sleep(1)
        assert modem.storage["ME"] == {}
        nursery.cancel_scope.cancel()


async def test_flash_and_binary_messages(clock: trio.testing.MockClock) -> None:
    modem = ScriptedModem()
    sink = RecordingSink(modem)
    async with trio.open_nursery() as nursery:
        await _ready(nursery, modem, sink)
        flash = _deliver_pdu("flash!", dcs=Dcs.gsm7(0))
        await modem.inject(f"\r\n+CMT: ,{len(flash) // 2 - 8}\r\n{flash}\r\n")
        await sink.wait_for(lambda: len(sink.incoming) == 1)
        assert (sink.incoming[0].text, sink.incoming[0].flash) == ("flash!", True)
        assert "AT+CNMA" not in modem.sent  # the generic modem runs +CSMS=0: no acknowledgement expected
        nursery.cancel_scope.cancel()


async def test_cmt_acknowledged_when_the_model_needs_cnma(clock: trio.testing.MockClock) -> None:
    modem = ScriptedModem()
    sink = RecordingSink(modem)
    quirks = ModemQuirks(name="fake", vendor="Fakecom", model="FM1", manufacturer_pattern="fake",
                         model_pattern="FM1", needs_cnma=True)
    async with trio.open_nursery() as nursery:
        driver = ModemDriver(_config(), sink, opener=memory_opener(modem, nursery), quirks_table=(quirks,))
        nursery.start_soon(driver.run)
        await driver.wait_state(ModemState.READY)
        assert driver.status().quirks == "fake"
        pdu = _deliver_pdu("direct")
        await modem.inject(f"\r\n+CMT: ,{len(pdu) // 2 - 8}\r\n{pdu}\r\n")
        await sink.wait_for(lambda: len(sink.incoming) == 1)
        await trio.sleep(1)
        assert modem.sent[-1] == "AT+CNMA"
        nursery.cancel_scope.cancel()


async def test_status_reports_direct_and_stored(clock: trio.testing.MockClock) -> None:
    modem = ScriptedModem()
    sink = RecordingSink(modem)
    async with trio.open_nursery() as nursery:
        await _ready(nursery, modem, sink)
        direct = _report_pdu(42)
        await modem.inject(f"\r\n+CDS: {len(direct) // 2 - 1}\r\n{direct}\r\n")
        await sink.wait_for(lambda: len(sink.reports) == 1)
        report = sink.reports[0]
        assert (report.modem, report.tp_mr, report.recipient, report.tp_st) == ("m1", 42, "447700900555", 0)
        modem.storage["SR"][2] = _report_pdu(43, 0x46)
        await modem.inject('\r\n+CDSI: "SR",2\r\n')
        await sink.wait_for(lambda: len(sink.reports) == 2)
        assert (sink.reports[1].tp_mr, sink.reports[1].tp_st) == (43, 0x46)
        await trio.sleep(1)
        assert modem.storage["SR"] == {}
        nursery.cancel_scope.cancel()


async def test_per_minute_limit(clock: trio.testing.MockClock) -> None:
    modem = ScriptedModem()
    async with trio.open_nursery() as nursery:
        driver = await _ready(nursery, modem, RecordingSink(), messages_per_minute=2)
        assert isinstance(await driver.send(_sms()), Sent)
        assert isinstance(await driver.send(_sms()), Sent)
        refused = await driver.send(_sms())
        assert isinstance(refused, SendFailed) and refused.temporary and "per_minute" in refused.reason
        assert not driver.can_send()
        await trio.sleep(61)
        assert driver.can_send()
        assert isinstance(await driver.send(_sms()), Sent)
        nursery.cancel_scope.cancel()


async def test_hung_modem_escalates_reopen_then_reset_then_down(clock: trio.testing.MockClock) -> None:
    modem = ScriptedModem()
    opens = []
    async with trio.open_nursery() as nursery:
        opener = memory_opener(modem, nursery)

        async def counting_opener() -> trio.abc.Stream:
            opens.append(trio.current_time())
            return await opener()

        driver = ModemDriver(_config(), RecordingSink(), opener=counting_opener, quirks_table=())
        nursery.start_soon(driver.run)
        await driver.wait_state(ModemState.READY)
        modem.silent = True
        await driver.wait_state(ModemState.CLOSED)  # watchdog: re-open first
        await driver.wait_state(ModemState.RESETTING)
        assert "AT+CFUN=1,1" in modem.sent
        await driver.wait_state(ModemState.DOWN)
        assert len(opens) >= 3
        modem.silent = False  # the modem recovers: the slow probing brings it back
        await driver.wait_state(ModemState.READY)
        nursery.cancel_scope.cancel()


async def test_vanished_device_reopened_when_it_returns(clock: trio.testing.MockClock) -> None:
    modem = ScriptedModem()
    present = {"yes": True}
    streams: list[trio.abc.Stream] = []
    async with trio.open_nursery() as nursery:
        opener = memory_opener(modem, nursery)

        async def usb_opener() -> trio.abc.Stream:
            if not present["yes"]:
                raise PortOpenError("cannot open /dev/ttyUSB0: no such file")
            stream = await opener()
            streams.append(stream)
            return stream

        driver = ModemDriver(_config(), RecordingSink(), opener=usb_opener, quirks_table=())
        nursery.start_soon(driver.run)
        await driver.wait_state(ModemState.READY)
        present["yes"] = False
        assert modem.stream is not None
        await modem.stream.aclose()  # unplugged
        await driver.wait_state(ModemState.CLOSED)
        outcome = await driver.send(_sms())
        assert isinstance(outcome, SendFailed) and outcome.temporary
        await trio.sleep(30)
        assert driver.state is ModemState.CLOSED
        present["yes"] = True
        await driver.wait_state(ModemState.READY)
        assert len(streams) == 2
        nursery.cancel_scope.cancel()


def test_choose_cnmi_falls_back_to_supported_values() -> None:
    assert choose_cnmi((2, 1, 0, 2, 0), [[0, 1, 2], [0, 1, 2, 3], [0, 2], [0, 1, 2], [0, 1]]) == (2, 1, 0, 2, 0)
    assert choose_cnmi((2, 1, 0, 2, 0), [[1, 2], [1], [0], [0, 1], [0]]) == (2, 1, 0, 1, 0)
    assert choose_cnmi((3, 2, 0, 1, 1), [[0, 1, 2], [0, 1, 2, 3], [0, 2], [0, 2]]) == (2, 2, 0, 2)
    assert choose_cnmi((2, 1, 0, 2, 0), []) == (2, 1, 0, 2, 0)


def test_choose_cnmi_prefers_stored_status_reports_when_the_preference_is_unsupported() -> None:
    # A preference the modem does not offer falls back to ds 2 (stored, +CDSI) before ds 1 (+CDS).
    assert choose_cnmi((2, 1, 0, 3, 0), [[0, 1, 2], [0, 1, 2, 3], [0, 2], [0, 1, 2], [0, 1]]) == (2, 1, 0, 2, 0)
    assert choose_cnmi((2, 1, 0, 3, 0), [[0, 1, 2], [0, 1, 2, 3], [0, 2], [0, 1], [0, 1]]) == (2, 1, 0, 1, 0)
    assert GENERIC.cnmi[3] == 2


async def test_status_reports_stored_while_away_are_read_at_start_then_deleted(clock: trio.testing.MockClock) -> None:
    modem = ScriptedModem()
    modem.storage["SR"] = {1: _report_pdu(50), 2: _report_pdu(51, 0x46)}  # the model keeps reports apart
    modem.storage["ME"] = {4: _report_pdu(52)}  # and another stored with received messages
    sink = RecordingSink(modem)
    async with trio.open_nursery() as nursery:
        driver = await _ready(nursery, modem, sink)
        await sink.wait_for(lambda: len(sink.reports) == 3)
        await trio.sleep(1)
        assert [(r.tp_mr, r.tp_st) for r in sink.reports] == [(50, 0), (51, 0x46), (52, 0)]
        assert modem.storage["SR"] == {} and modem.storage["ME"] == {}
        status = driver.status()
        assert (status.stored_reports_at_start, status.status_reports) == (3, 3)
        scan = modem.sent[modem.sent.index('AT+CPMS="SR"') :]
        assert scan[:5] == ['AT+CPMS="SR"', "AT+CMGL=4", "AT+CMGD=1", "AT+CMGD=2", 'AT+CPMS="ME"']
        # A report arriving later is not counted as found at start.
        modem.storage["ME"][5] = _report_pdu(53)
        await modem.inject('\r\n+CDSI: "ME",5\r\n')
        await sink.wait_for(lambda: len(sink.reports) == 4)
        assert driver.status().stored_reports_at_start == 3
        nursery.cancel_scope.cancel()


async def test_a_report_storage_the_modem_does_not_offer_is_not_scanned(clock: trio.testing.MockClock) -> None:
    modem = ScriptedModem()
    modem.answers["AT+CPMS=?"] = lines('+CPMS: ("SM","ME"),("SM","ME"),("SM","ME")')
    async with trio.open_nursery() as nursery:
        await _ready(nursery, modem, RecordingSink(modem))
        assert 'AT+CPMS="SR"' not in modem.sent
        assert modem.sent.count("AT+CMGL=4") == 1
        nursery.cancel_scope.cancel()


async def test_a_model_without_report_storage_runs_csms_1_and_acknowledges_after_the_store(
    clock: trio.testing.MockClock,
) -> None:
    modem = ScriptedModem()
    modem.answers["AT+CNMI=?"] = lines("+CNMI: (0-3),(0-3),(0,2),(0,1),(0,1)")  # no <ds> 2
    sink = RecordingSink(modem)
    quirks = ModemQuirks(name="fake", vendor="Fakecom", model="FM1", manufacturer_pattern="fake",
                         model_pattern="FM1", needs_cnma=True)
    async with trio.open_nursery() as nursery:
        driver = ModemDriver(_config(), sink, opener=memory_opener(modem, nursery), quirks_table=(quirks,))
        nursery.start_soon(driver.run)
        await driver.wait_state(ModemState.READY)
        assert modem.sent.index("AT+CSMS=1") < modem.sent.index("AT+CNMI=2,1,0,1,0")
        sink.release = trio.Event()  # the store is slow
        await modem.inject(_cds(60))
        await trio.sleep(5)
        assert "AT+CNMA" not in modem.sent  # not acknowledged before the store has it
        sink.release.set()
        await sink.wait_for(lambda: len(sink.reports) == 1)
        await trio.sleep(1)
        assert modem.sent[-1] == "AT+CNMA"
        nursery.cancel_scope.cancel()


async def test_modem_restart_announcement_triggers_a_new_start_up(clock: trio.testing.MockClock) -> None:
    modem = ScriptedModem()
    async with trio.open_nursery() as nursery:
        driver = await _ready(nursery, modem, RecordingSink())
        await modem.inject("\r\n^RSSI: 9\r\n\r\n+CREG: 5\r\n")
        await trio.sleep(0.1)
        assert (driver.signal_rssi, driver.registration) == (9, 5)
        assert modem.sent.count("AT+CNMI=2,1,0,2,0") == 1
        await modem.inject("\r\nRDY\r\n")  # it rebooted by itself: +CNMI and +CMGF are gone
        await driver.wait_state(ModemState.INITIALISING)
        await driver.wait_state(ModemState.READY)
        assert modem.sent.count("AT+CNMI=2,1,0,2,0") == 2
        nursery.cancel_scope.cancel()


async def test_send_without_answer_is_a_temporary_failure(clock: trio.testing.MockClock) -> None:
    modem = ScriptedModem()
    modem.cmgs_answer = lambda pdu: ""  # the PDU vanished into the modem
    async with trio.open_nursery() as nursery:
        driver = await _ready(nursery, modem, RecordingSink(), send_timeout_s=60.0)
        started = trio.current_time()
        outcome = await driver.send(_sms())
        assert isinstance(outcome, SendFailed) and outcome.temporary and "no answer" in outcome.reason
        assert trio.current_time() - started >= 60.0
        assert isinstance(await driver.send(_sms()), SendFailed)
        # Still answering the watchdog's AT between the sends, so not hung; the pool prefers other modems.
        assert driver.state is ModemState.READY
        assert driver.failures_in_a_row == 2
        modem.silent = True
        await driver.wait_state(ModemState.CLOSED)  # silent to everything: hung, the port is re-opened
        nursery.cancel_scope.cancel()


# More status reports than the driver queues, so the reader must hold some back in the port.
FLOOD: Final = 3 * URC_QUEUE_LIMIT


def _cds(tp_mr: int) -> str:
    pdu = _report_pdu(tp_mr)
    return f"\r\n+CDS: {len(pdu) // 2 - 1}\r\n{pdu}\r\n"


async def test_status_report_flood_faster_than_the_store_loses_none_and_sends_go_on(
    clock: trio.testing.MockClock,
) -> None:
    modem = ScriptedModem()
    sink = RecordingSink(modem)
    opened: list[SerialLikeStream] = []
    async with trio.open_nursery() as nursery:
        opener = memory_opener(modem, nursery, opened, read_size=256)
        driver = ModemDriver(_config(), sink, opener=opener, quirks_table=())
        nursery.start_soon(driver.run)
        assert await driver.wait_state(ModemState.READY, ModemState.DOWN) is ModemState.READY
        await trio.sleep(1)
        (port,) = opened
        sink.release = trio.Event()  # the store stalls
        flood = "".join(_cds(i % 256) for i in range(FLOOD))
        read_before = port.bytes_read
        await modem.inject(flood)
        await trio.sleep(5)  # less than the watchdog's idle interval: no command is waiting
        assert port.bytes_read - read_before < len(flood) // 2  # it stopped reading: the rest waits in the port
        assert isinstance(await driver.send(_sms()), Sent)  # its answer is behind the whole flood
        sink.commit_s = 0.05
        sink.release.set()
        for _ in range(3):  # while the store works through the backlog
            assert isinstance(await driver.send(_sms()), Sent)
        assert len(sink.reports) < FLOOD
        await sink.wait_for(lambda: len(sink.reports) == FLOOD)
        assert [r.tp_mr for r in sink.reports] == [i % 256 for i in range(FLOOD)]
        assert driver.status().status_reports == FLOOD
        assert (modem.sent.count("ATE0"), driver.state) == (1, ModemState.READY)  # never hung, never re-opened
        nursery.cancel_scope.cancel()


async def test_stored_reports_share_commits_and_each_slot_is_deleted_only_after_its_own(
    clock: trio.testing.MockClock,
) -> None:
    """The worker reads the next stored report while the store commits earlier ones (up to REPORTS_IN_FLIGHT),
    and a slot is deleted only once its report is handed over; a code naming a slot in flight waits for its task."""
    modem = ScriptedModem()
    sink = RecordingSink(modem)
    async with trio.open_nursery() as nursery:
        driver = await _ready(nursery, modem, sink)
        await trio.sleep(1)
        sink.commit_s = 10.0  # a slow store
        count = REPORTS_IN_FLIGHT + 4
        modem.storage["SR"] = {i: _report_pdu(i) for i in range(1, count + 1)}
        start = trio.current_time()
        codes = [f'\r\n+CDSI: "SR",{i}\r\n' for i in range(1, count + 1)]
        codes.insert(4, '\r\n+CDSI: "SR",1\r\n')  # the same slot again while in flight: read after its task
        await modem.inject("".join(codes))
        await trio.sleep(5)
        assert sink.reports == [] and len(modem.storage["SR"]) == count  # nothing deleted before its commit
        # Those in flight, and the next one read, waiting for room.
        assert sum(c.startswith("AT+CMGR=") for c in modem.sent) == REPORTS_IN_FLIGHT + 1
        await sink.wait_for(lambda: len(sink.reports) == count)
        # Two commits' time for all of them, not one per report; each slot read once and deleted once.
        assert trio.current_time() - start < 3 * sink.commit_s
        await trio.sleep(1)
        assert modem.storage["SR"] == {}
        assert sorted(r.tp_mr for r in sink.reports) == list(range(1, count + 1))
        # Slot 1 read a second time, found empty: a code is never taken for a duplicate, since a newcomer may
        # have been stored in a slot just freed.
        assert sum(c.startswith("AT+CMGR=") for c in modem.sent) == count + 1
        assert sum(c.startswith("AT+CMGD=") for c in modem.sent) == count
        assert driver.status().status_reports == count
        nursery.cancel_scope.cancel()


async def test_a_report_stored_in_the_slot_just_deleted_is_read_though_the_slot_was_in_flight(
    clock: trio.testing.MockClock,
) -> None:
    """A modem stores the next report in the slot AT+CMGD just freed and may announce it right behind the OK,
    before the task that deleted the slot has ended: that code is read once the task ends, never dropped."""
    modem = ScriptedModem()
    sink = RecordingSink(modem)
    newcomers = list(range(2, 40))

    def delete_then_store_the_next(line: str) -> str:
        if not newcomers:
            modem.storage["SR"].pop(1, None)
            return OK
        modem.storage["SR"][1] = _report_pdu(newcomers.pop(0))
        return OK + '\r\n+CDSI: "SR",1\r\n'

    modem.answers["AT+CMGD=1"] = delete_then_store_the_next
    async with trio.open_nursery() as nursery:
        driver = await _ready(nursery, modem, sink)
        modem.storage["SR"][1] = _report_pdu(1)
        with trio.fail_after(600):
            await modem.inject('\r\n+CDSI: "SR",1\r\n')
            await sink.wait_for(lambda: len(sink.reports) == 39)
        await trio.sleep(1)
        assert [r.tp_mr for r in sink.reports] == list(range(1, 40))
        assert modem.storage["SR"] == {}
        assert driver.status().status_reports == 39
        nursery.cancel_scope.cancel()


async def _reports_committed_together(modem: ScriptedModem, sink: RecordingSink, count: int) -> ModemDriver:
    """`count` stored reports announced at once to a store that commits them together."""
    sink.commit_s = 1.0
    sink.reports.clear()
    modem.storage["SR"] = {i: _report_pdu(i) for i in range(1, count + 1)}
    await modem.inject("".join(f'\r\n+CDSI: "SR",{i}\r\n' for i in range(1, count + 1)))
    with trio.fail_after(60):
        await sink.wait_for(lambda: len(sink.reports) == count)
    await trio.sleep(1)
    assert sorted(r.tp_mr for r in sink.reports) == list(range(1, count + 1))
    assert modem.storage["SR"] == {}
    return modem


def _deleting(modem: ScriptedModem) -> list[str]:
    return _sent(modem, "AT+CMGD=")


def _reading(modem: ScriptedModem) -> list[str]:
    return _sent(modem, "AT+CMGR=")


def _sent(modem: ScriptedModem, prefix: str) -> list[str]:
    return [command for command in modem.sent if command.startswith(prefix)]


async def test_reports_announced_and_committed_together_are_read_and_deleted_with_one_command_line(
    clock: trio.testing.MockClock,
) -> None:
    modem = ScriptedModem(concatenation="whole")
    sink = RecordingSink(modem)
    async with trio.open_nursery() as nursery:
        await _ready(nursery, modem, sink)
        await _reports_committed_together(modem, sink, 10)
        assert _reading(modem) == ["AT+CMGR=1;+CMGR=2;+CMGR=3;+CMGR=4;+CMGR=5;+CMGR=6;+CMGR=7;+CMGR=8;+CMGR=9;+CMGR=10"]
        assert _deleting(modem) == ["AT+CMGD=1;+CMGD=2;+CMGD=3;+CMGD=4;+CMGD=5;+CMGD=6;+CMGD=7;+CMGD=8;+CMGD=9;+CMGD=10"]
        await _reports_committed_together(modem, sink, REPORTS_IN_FLIGHT)  # more than one line holds
        lines = _deleting(modem)[1:]
        assert len(lines) == 2 and all(len(line) <= COMMAND_LINE_MAX_CHARS for line in lines)
        assert sorted(int(d) for line in lines for d in line[len("AT+CMGD=") :].split(";+CMGD=")) == list(
            range(1, REPORTS_IN_FLIGHT + 1)
        )
        assert modem.sent.count("AT+CMGF?;+CMGF?") == 1  # asked once a session
        nursery.cancel_scope.cancel()


async def test_a_read_line_with_an_empty_slot_or_another_code_between_is_read_one_by_one_in_order(
    clock: trio.testing.MockClock,
) -> None:
    modem = ScriptedModem(concatenation="whole")
    sink = RecordingSink(modem)
    async with trio.open_nursery() as nursery:
        await _ready(nursery, modem, sink)
        modem.storage["SR"] = {i: _report_pdu(i) for i in (1, 2, 4, 5)}
        modem.storage["ME"] = {3: _deliver_pdu("between")}
        codes = ['"SR",1', '"SR",2', '"SR",9', '"ME",3', '"SR",4', '"SR",5']
        await modem.inject("".join(f"\r\n+{'CMTI' if 'ME' in c else 'CDSI'}: {c}\r\n" for c in codes))
        with trio.fail_after(60):
            await sink.wait_for(lambda: len(sink.reports) == 4 and len(sink.incoming) == 1)
        await trio.sleep(1)
        assert modem.storage == {"SM": {}, "ME": {}, "SR": {}}
        # 1, 2 and the empty 9 on a line that cannot be mapped, so each read alone; the SMS code between ends the
        # line and is handled after them; 4 and 5 on a line of their own.
        assert _reading(modem) == [
            "AT+CMGR=1;+CMGR=2;+CMGR=9", "AT+CMGR=1", "AT+CMGR=2", "AT+CMGR=9", "AT+CMGR=3", "AT+CMGR=4;+CMGR=5"
        ]
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("concatenation", [None, "first"], ids=["refused", "first-command-only"])
async def test_a_modem_that_does_not_run_a_line_whole_gets_one_delete_a_command(
    clock: trio.testing.MockClock, concatenation: str | None
) -> None:
    modem = ScriptedModem(concatenation=concatenation)
    sink = RecordingSink(modem)
    async with trio.open_nursery() as nursery:
        await _ready(nursery, modem, sink)
        await _reports_committed_together(modem, sink, 10)
        await _reports_committed_together(modem, sink, 10)
        assert sorted(_deleting(modem)) == sorted([f"AT+CMGD={i}" for i in range(1, 11)] * 2)
        assert sorted(_reading(modem)) == sorted([f"AT+CMGR={i}" for i in range(1, 11)] * 2)
        assert modem.sent.count("AT+CMGF?;+CMGF?") == 1
        nursery.cancel_scope.cancel()


async def test_a_delete_line_that_fails_midway_deletes_only_what_still_holds_its_report(
    clock: trio.testing.MockClock,
) -> None:
    """The line ran its first delete and failed; a newcomer took the freed slot meanwhile. Each remaining slot is
    deleted after a read shows it still holds the report that was handed over; the newcomer is read, not lost."""
    modem = ScriptedModem(concatenation="whole", longest_line=40)
    sink = RecordingSink(modem)

    def full_buffer(line: str) -> str:
        if not modem.sent[-1].startswith("AT+CMGD="):
            return "\r\n+CMS ERROR: 302\r\n"  # a read line: read again one by one
        modem.storage["SR"][1] = _report_pdu(99)
        return '\r\n+CMS ERROR: 302\r\n\r\n+CDSI: "SR",1\r\n'

    modem.answers["AT+OVERFLOW"] = full_buffer
    async with trio.open_nursery() as nursery:
        await _ready(nursery, modem, sink)
        sink.commit_s = 1.0
        modem.storage["SR"] = {i: _report_pdu(i) for i in range(1, 11)}
        await modem.inject("".join(f'\r\n+CDSI: "SR",{i}\r\n' for i in range(1, 11)))
        with trio.fail_after(60):
            await sink.wait_for(lambda: len(sink.reports) == 11)
        await trio.sleep(1)
        assert sorted(r.tp_mr for r in sink.reports) == [*range(1, 11), 99]
        assert modem.storage["SR"] == {}
        line, *singles = _deleting(modem)
        assert ";" in line and sorted(singles) == sorted(f"AT+CMGD={i}" for i in range(1, 11))  # 1: the newcomer's
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("stored", [False, True], ids=["cds-then-cnma", "cdsi-then-cmgr-cmgd"])
async def test_flood_while_the_workers_own_command_waits_does_not_deadlock(
    clock: trio.testing.MockClock, stored: bool
) -> None:
    """The answer to the worker's AT+CNMA / AT+CMGR / AT+CMGD comes behind hundreds of queued codes."""
    modem = ScriptedModem()
    sink = RecordingSink(modem)
    sink.commit_s = 0.01
    cnma = ModemQuirks(name="fake", vendor="Fakecom", model="FM1", manufacturer_pattern="fake",
                       model_pattern="FM1", needs_cnma=True)
    async with trio.open_nursery() as nursery:
        opener = memory_opener(modem, nursery, read_size=256)
        driver = ModemDriver(_config(), sink, opener=opener, quirks_table=() if stored else (cnma,))
        nursery.start_soon(driver.run)
        assert await driver.wait_state(ModemState.READY, ModemState.DOWN) is ModemState.READY
        await trio.sleep(1)
        if stored:
            modem.storage["SR"] = {i: _report_pdu(i % 256) for i in range(1, FLOOD + 1)}
            await modem.inject("".join(f'\r\n+CDSI: "SR",{i}\r\n' for i in range(1, FLOOD + 1)))
        else:
            await modem.inject("".join(_cds(i % 256) for i in range(1, FLOOD + 1)))
        await sink.wait_for(lambda: len(sink.reports) == FLOOD)
        await trio.sleep(1)
        handed_over = [r.tp_mr for r in sink.reports]
        # Stored reports are committed up to REPORTS_IN_FLIGHT at a time, so not necessarily in their order.
        expected = [i % 256 for i in range(1, FLOOD + 1)]
        if stored:
            handed_over, expected = sorted(handed_over), sorted(expected)
        assert handed_over == expected
        if stored:
            assert modem.storage["SR"] == {}
            assert sum(command.startswith("AT+CMGD=") for command in modem.sent) == FLOOD
        else:
            assert modem.sent.count("AT+CNMA") == FLOOD
        assert (modem.sent.count("ATE0"), driver.state) == (1, ModemState.READY)
        nursery.cancel_scope.cancel()
