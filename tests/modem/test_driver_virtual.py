"""The driver against the virtual modem and network (smsgw.modem.virtual) over memory streams and a real pty."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import serial

import trio
import trio.testing

from smsgw.config import ModemConfig, VirtualNetworkConfig
from smsgw.modem.driver import ModemDriver, ModemState
from smsgw.modem.pool import ModemPool
from smsgw.modem.seams import OutgoingSms, SendFailed, Sent
from smsgw.modem.virtual.modem import VirtualModem
from smsgw.modem.virtual.network import VirtualNetwork, serve_network
from smsgw.modem.virtual.pty import serve_pty
from smsgw.pdu.text import Encoding, encode_text

from modem_fakes import RecordingSink, virtual_opener

NETWORK = VirtualNetworkConfig(delivery_delay_s=1.0, sim_ready_delay_s=3.0, registration_delay_s=5.0)
A, B = "447700900001", "447700900002"


def _sms(destination: str, text: str, **changes: object) -> OutgoingSms:
    return OutgoingSms(
        segment_id=f"to-{destination}",
        destination=destination,
        data_coding=0,
        user_data=encode_text(text, Encoding.GSM7),
        **changes,  # type: ignore[arg-type]
    )


async def test_two_modems_over_memory_streams(autojump_clock: trio.testing.MockClock) -> None:
    sink = RecordingSink()
    async with trio.open_nursery() as nursery:
        network = VirtualNetwork(NETWORK, now=trio.current_time())
        await nursery.start(serve_network, network)
        drivers = []
        for name, msisdn, pin in (("a", A, "1234"), ("b", B, None)):
            modem = VirtualModem(network, msisdn, NETWORK, pin=pin)
            config = ModemConfig(name=name, port=f"virtual:{msisdn}", msisdn=msisdn, pin=pin)
            drivers.append(ModemDriver(config, sink, opener=virtual_opener(modem, nursery)))
        pool = ModemPool(drivers)
        await nursery.start(pool.run)
        for driver in drivers:
            assert await driver.wait_state(ModemState.READY, ModemState.DOWN) is ModemState.READY
        a, b = drivers
        assert a.imei and a.imsi and a.manufacturer
        sent = await a.send(_sms(B, "hello b", status_report=True, validity=timedelta(hours=1)))
        assert isinstance(sent, Sent)
        await sink.wait_for(lambda: len(sink.incoming) == 1 and len(sink.reports) == 1)
        incoming, report = sink.incoming[0], sink.reports[0]
        assert (incoming.modem, incoming.originator, incoming.text) == ("b", A, "hello b")
        assert (report.modem, report.tp_mr, report.recipient, report.tp_st) == ("a", sent.tp_mr, B, 0)
        failed = await a.send(_sms("447700922001", "nobody", status_report=True))
        assert isinstance(failed, Sent)  # accepted by the network; the failure comes as a status report
        await sink.wait_for(lambda: len(sink.reports) == 2)
        assert sink.reports[1].tp_st >= 0x40  # permanent error
        nursery.cancel_scope.cancel()


async def test_driver_over_a_real_pty(tmp_path: Path) -> None:
    sink = RecordingSink()
    config = VirtualNetworkConfig(delivery_delay_s=0.0)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            network = VirtualNetwork(config, now=trio.current_time())
            await nursery.start(serve_network, network)
            modem = VirtualModem(network, A, config)
            link = await nursery.start(serve_pty, modem, tmp_path / "modem0")
            driver = ModemDriver(ModemConfig(name="pty", port=str(link), msisdn=A), sink)
            nursery.start_soon(driver.run)
            assert await driver.wait_state(ModemState.READY, ModemState.DOWN) is ModemState.READY
            outcome = await driver.send(_sms(A, "to myself"))
            assert isinstance(outcome, Sent), outcome
            await sink.wait_for(lambda: len(sink.incoming) == 1)
            assert sink.incoming[0].text == "to myself"
            refused = await driver.send(_sms(A, "too long valid", validity=timedelta(weeks=100)))
            assert isinstance(refused, SendFailed) and not refused.temporary  # TP-VP cannot say 100 weeks
            nursery.cancel_scope.cancel()


async def test_unplugged_pty_modem_is_reopened_when_it_returns(tmp_path: Path) -> None:
    config = VirtualNetworkConfig(delivery_delay_s=0.0)
    link = tmp_path / "ttyUSB0"
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            network = VirtualNetwork(config, now=trio.current_time())
            await nursery.start(serve_network, network)
            driver = ModemDriver(
                ModemConfig(name="usb", port=str(link), msisdn=A, reopen_delay_s=0.05, reopen_delay_max_s=0.2),
                RecordingSink(),
            )
            nursery.start_soon(driver.run)
            await trio.sleep(0.3)
            assert driver.state is ModemState.CLOSED  # nothing plugged in yet: retried, not crashed
            plugged = trio.CancelScope()
            nursery.start_soon(_serve_until_cancelled, plugged, VirtualModem(network, A, config), link)
            assert await driver.wait_state(ModemState.READY) is ModemState.READY
            plugged.cancel()  # unplugged: the pty master closes, the link disappears
            assert await driver.wait_state(ModemState.CLOSED) is ModemState.CLOSED
            await nursery.start(serve_pty, VirtualModem(network, A, config), link)  # plugged in again
            assert await driver.wait_state(ModemState.READY) is ModemState.READY
            assert isinstance(await driver.send(_sms(A, "back again")), Sent)
            nursery.cancel_scope.cancel()


async def _serve_until_cancelled(scope: trio.CancelScope, modem: VirtualModem, link: Path) -> None:
    with scope:
        await serve_pty(modem, link)


async def test_a_modem_left_at_the_cmgs_prompt_by_a_crash_is_brought_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = RecordingSink()
    async with trio.open_nursery() as nursery:
        network = VirtualNetwork(NETWORK, now=trio.current_time())
        await nursery.start(serve_network, network)
        modems = [VirtualModem(network, msisdn, NETWORK) for msisdn in (A, B)]
        open_virtual = virtual_opener(modems[0], nursery)

        async def open_after_a_crash() -> trio.abc.Stream:
            stream = await open_virtual()
            # The previous gateway process died between AT+CMGS=<length> and the PDU: at the `> ` prompt the
            # modem takes everything up to Ctrl-Z as PDU hex, commands included.
            await trio.sleep(NETWORK.sim_ready_delay_s + NETWORK.registration_delay_s)
            await stream.send_all(b"AT+CMGF=0\rAT+CMGS=20\r")
            answered = b""
            while not answered.endswith(b"> "):
                answered += await stream.receive_some()
            return stream

        config = ModemConfig(name="a", port="virtual:a", msisdn=A)
        driver = ModemDriver(config, sink, opener=open_after_a_crash)
        nursery.start_soon(driver.run)
        assert await driver.wait_state(ModemState.READY, ModemState.DOWN) is ModemState.READY
        nursery.start_soon(modems[1].serve, trio.testing.memory_stream_pair()[1])
        assert isinstance(await driver.send(_sms(B, "after the crash")), Sent)
        nursery.cancel_scope.cancel()


def _wait_until_stored(link: str) -> tuple[bytes, bytes]:
    """Over the port, as any terminal program could: the modem's +CNMI, and its storage listing once the status
    report is there (the driver left the modem in PDU mode, echo off, reading "ME")."""
    with serial.Serial(link, 115200, timeout=5) as port:
        # The stopped driver may have left a command's answer on the line (its OK arrives after it was
        # cancelled): read past it to the answer of our own question.
        port.write(b"AT+CNMI?\r")
        cnmi = b""
        give_up = time.monotonic() + 30
        while b"+CNMI:" not in cnmi and time.monotonic() < give_up:
            cnmi = port.read_until(b"OK\r\n")
        while True:
            port.write(b"AT+CMGL=4\r")
            listing = port.read_until(b"OK\r\n")
            if b"+CMGL:" in listing or time.monotonic() > give_up:
                return cnmi, listing
            time.sleep(0.1)


async def test_status_report_arriving_while_the_driver_is_stopped_is_read_at_its_next_start(tmp_path: Path) -> None:
    """A `smsgw virtual-modem` process (generic persona) outlives the driver, as hardware outlives a gateway."""
    link = tmp_path / "modem"
    config = tmp_path / "network.toml"
    config.write_text("[virtual_network]\ndelivery_delay_s = 1.0\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "smsgw", "--log-level", "WARNING", "virtual-modem", "--link", str(link),
         "--msisdn", A, "--config", str(config)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith(f"virtual modem {A} on {link}")
        modem = ModemConfig(name="pty", port=str(link), msisdn=A)
        with trio.fail_after(60):
            before = RecordingSink()
            async with trio.open_nursery() as nursery:
                driver = ModemDriver(modem, before)
                nursery.start_soon(driver.run)
                assert await driver.wait_state(ModemState.READY, ModemState.DOWN) is ModemState.READY
                sent = await driver.send(_sms("447700900555", "receipt please", status_report=True))
                assert isinstance(sent, Sent), sent
                nursery.cancel_scope.cancel()  # the gateway stops before the report comes back
            cnmi, listing = await trio.to_thread.run_sync(_wait_until_stored, str(link))
            assert b"+CNMI: 2,1,0,2,0" in cnmi  # status reports stored on the modem (ds=2)
            assert b"+CMGL:" in listing, listing
            assert before.reports == []
            after = RecordingSink()
            async with trio.open_nursery() as nursery:
                driver = ModemDriver(modem, after)
                nursery.start_soon(driver.run)
                await after.wait_for(lambda: len(after.reports) == 1)
                (report,) = after.reports
                assert (report.tp_mr, report.recipient, report.tp_st) == (sent.tp_mr, "447700900555", 0)
                assert driver.status().stored_reports_at_start == 1
                nursery.cancel_scope.cancel()
            # Deleted once the sink had it: the next start finds nothing.
            _, listing = await trio.to_thread.run_sync(_listing_now, str(link))
            assert b"+CMGL:" not in listing
    finally:
        process.terminate()
        process.wait(timeout=20)


def _listing_now(link: str) -> tuple[bytes, bytes]:
    with serial.Serial(link, 115200, timeout=5) as port:
        # In step with the modem first (a stale OK of the stopped driver would pass for an empty listing).
        port.write(b"AT+CGMI\r")
        synced, give_up = b"", time.monotonic() + 30
        while b"smsgw" not in synced and time.monotonic() < give_up:
            synced = port.read_until(b"OK\r\n")
        port.write(b"AT+CMGL=4\r")
        return b"", port.read_until(b"OK\r\n")
