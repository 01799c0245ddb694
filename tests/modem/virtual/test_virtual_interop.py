"""Third-party modem software against `smsgw virtual-modem`'s pty: gammu (Debian package) and python-gsmmodem-new."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import trio

from smsgw.config import VirtualNetworkConfig
from smsgw.modem.virtual.pty import run_standalone

CONFIG = VirtualNetworkConfig(delivery_delay_s=0.2)
GAMMU = shutil.which("gammu")


def _gammu(rc: Path, *args: str) -> str:
    done = subprocess.run(
        [str(GAMMU), "-c", str(rc), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"gammu {' '.join(args)} failed: {done.stdout} {done.stderr}"
    return done.stdout


@pytest.mark.skipif(GAMMU is None, reason="gammu is not installed (Debian package gammu; .ci/run installs it)")
async def test_gammu_identify_sendsms_getallsms(tmp_path: Path) -> None:
    link = tmp_path / "modem"
    rc = tmp_path / "gammurc"
    rc.write_text(f"[gammu]\nport = {link}\nconnection = at\n")
    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_standalone, link, "447700900001", CONFIG)
            identity = await trio.to_thread.run_sync(_gammu, rc, "identify")
            assert "smsgw" in identity and "001017700900001" in identity
            sent = await trio.to_thread.run_sync(_gammu, rc, "sendsms", "TEXT", "447700900999", "-text", "hi gammu")
            assert "message reference=0" in sent
            await trio.sleep(1)  # network delivery delay, then the auto-reply's
            inbox = await trio.to_thread.run_sync(_gammu, rc, "getallsms")
            assert "RE: hi gammu" in inbox and "+447700900999" in inbox
            nursery.cancel_scope.cancel()


def _gsmmodem_round_trip(port: str) -> tuple[str, int, list[str]]:
    from gsmmodem.modem import GsmModem

    received: list[str] = []
    arrived = threading.Event()

    def on_sms(sms: object) -> None:
        received.append(sms.text)  # type: ignore[attr-defined]
        arrived.set()

    modem = GsmModem(port, 115200, smsReceivedCallbackFunc=on_sms)
    try:
        modem.connect()
        sms = modem.sendSms("447700900999", "hi gsmmodem")
        arrived.wait(30)
        return modem.imei, sms.reference, received
    finally:
        modem.close()


async def test_python_gsmmodem_connect_send_receive(tmp_path: Path) -> None:
    pytest.importorskip("gsmmodem", reason="python-gsmmodem-new is not installed (test extra)")
    link = tmp_path / "modem"
    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_standalone, link, "447700900001", CONFIG)
            imei, reference, received = await trio.to_thread.run_sync(_gsmmodem_round_trip, str(link))
            assert imei.isdigit() and len(imei) == 15
            assert reference == 0
            assert received == ["RE: hi gsmmodem"]
            nursery.cancel_scope.cancel()
