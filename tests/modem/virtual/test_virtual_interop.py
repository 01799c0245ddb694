"""Third-party modem programs against `smsgw virtual-modem`'s pty, on every persona: gammu and Kannel (Debian
packages) and python-gsmmodem-new (test extra). Each check is one real program invocation with a time bound; a
missing program skips with one line locally and fails in CI (tests/conftest.py `require_program`)."""

from __future__ import annotations

import functools
import http.server
import json
import queue
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
import trio

from smsgw.config import VirtualNetworkConfig
from smsgw.modem.virtual.network import AUTO_REPLY_NUMBER, AUTO_REPLY_PREFIX
from smsgw.modem.virtual.persona import personas
from smsgw.modem.virtual.pty import run_standalone
from tests.conftest import require_program

# Quick, but with the spacing of a real network kept (a report and a reply never in the same instant).
CONFIG = VirtualNetworkConfig(delivery_delay_s=0.2, mt_interval_s=0.5)
MSISDN = "447700900001"
PERSONAS = ("generic", "huawei", "sim800")
PROGRAM_TIMEOUT_S = 30.0
GSMMODEM_CLIENT = Path(__file__).with_name("gsmmodem_client.py")


def test_every_persona_is_checked() -> None:
    assert set(PERSONAS) == set(personas())


def _standalone(persona: str) -> functools.partial[Coroutine[Any, Any, None]]:
    return functools.partial(run_standalone, persona=personas()[persona])


def _run(*argv: str) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=PROGRAM_TIMEOUT_S, check=False)
    assert done.returncode == 0, f"{' '.join(argv)} failed ({done.returncode}): {done.stdout} {done.stderr}"
    return done.stdout


async def _program(*argv: str) -> str:
    return await trio.to_thread.run_sync(_run, *argv)


@pytest.mark.parametrize("persona", PERSONAS)
async def test_gammu(persona: str, tmp_path: Path) -> None:
    gammu = require_program("gammu")
    link = tmp_path / "modem"
    rc = tmp_path / "gammurc"
    rc.write_text(f"[gammu]\nport = {link}\nconnection = at\n")
    with trio.fail_after(6 * PROGRAM_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(_standalone(persona), link, MSISDN, CONFIG)
            identity = await _program(gammu, "-c", str(rc), "identify")
            assert personas()[persona].revision in identity and "001017700900001" in identity
            network = await _program(gammu, "-c", str(rc), "networkinfo")
            assert "home network" in network and "GPRS                 : attached" in network
            sent = await _program(gammu, "-c", str(rc), "sendsms", "TEXT", AUTO_REPLY_NUMBER, "-report", "-text", "hi")
            assert "message reference=0" in sent
            # the delivery, its status report and the auto-reply, one radio transaction apart
            await trio.sleep(CONFIG.delivery_delay_s * 2 + CONFIG.mt_interval_s * 2 + 0.5)
            inbox = await _program(gammu, "-c", str(rc), "getallsms")
            assert f"{AUTO_REPLY_PREFIX}hi" in inbox and f"+{AUTO_REPLY_NUMBER}" in inbox
            # gammu never sets +CNMI (ds=0): the report is stored on the modem, as a real modem stores it
            assert "SMS status report" in inbox and "Delivery status      : Delivered" in inbox
            assert "Reference number     : 0" in inbox
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("persona", PERSONAS)
async def test_python_gsmmodem(persona: str, tmp_path: Path) -> None:
    pytest.importorskip("gsmmodem", reason="python-gsmmodem-new is not installed (pip install -e '.[test]')")
    link = tmp_path / "modem"
    with trio.fail_after(2 * PROGRAM_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(_standalone(persona), link, MSISDN, CONFIG)
            result = json.loads(await _program(sys.executable, str(GSMMODEM_CLIENT), str(link)))
            nursery.cancel_scope.cancel()
    assert len(result["imei"]) == 15 and result["imei"].isdigit()
    assert (result["reference"], result["delivered"]) == (0, True)
    assert result["long_reference"] == 2  # the multipart message took references 1 and 2
    from_long = "gsmmodem multipart " + "0123456789" * 16
    received = result["received"]
    assert received[0] == f"{AUTO_REPLY_PREFIX}hi gsmmodem"
    assert "".join(received[1:]) == AUTO_REPLY_PREFIX + from_long


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Kannel's get-url (received SMS) and dlr-url (delivery reports) land here as query strings."""

    seen: queue.Queue[dict[str, str]]

    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        query = urllib.parse.urlsplit(self.path).query
        self.seen.put({key: values[0] for key, values in urllib.parse.parse_qs(query).items()})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _kannel_conf(tmp_path: Path, link: Path, ports: dict[str, int], recorder_port: int) -> Path:
    recorder = f"http://127.0.0.1:{recorder_port}"
    conf = tmp_path / "kannel.conf"
    conf.write_text(
        f"""
group = core
admin-port = {ports["admin"]}
admin-password = secret
admin-allow-ip = "127.0.0.1"
smsbox-port = {ports["smsbox"]}
box-allow-ip = "127.0.0.1"
log-file = "{tmp_path}/bearerbox.log"
log-level = 0
dlr-storage = internal

group = smsc
smsc = at
smsc-id = virtual
device = {link}
modemtype = virtual
my-number = "+{MSISDN}"
sms-center = "+{CONFIG.smsc}"
keepalive = 30

group = modems
id = virtual
name = "smsgw virtual modem"
detect-string = "smsgw"

group = smsbox
bearerbox-host = 127.0.0.1
sendsms-port = {ports["sendsms"]}
sendsms-interface = 127.0.0.1
log-file = "{tmp_path}/smsbox.log"
log-level = 0

group = sendsms-user
username = tester
password = secret

group = sms-service
keyword = default
get-url = "{recorder}/mo?from=%p&text=%a"
max-messages = 0
"""
    )
    return conf


async def _listening(port: int) -> None:
    while True:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            await trio.sleep(0.1)
        else:
            await stream.aclose()
            return


def _sendsms(port: int, text: str, dlr_url: str) -> str:
    query = urllib.parse.urlencode(
        {"username": "tester", "password": "secret", "from": MSISDN, "to": AUTO_REPLY_NUMBER, "text": text,
         "dlr-mask": "1", "dlr-url": dlr_url}
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/cgi-bin/sendsms?{query}", timeout=10) as answer:
        return str(answer.read().decode())


@pytest.mark.parametrize("persona", PERSONAS)
async def test_kannel_at_driver(persona: str, tmp_path: Path) -> None:
    bearerbox = require_program("bearerbox", "kannel")
    smsbox = require_program("smsbox", "kannel")
    link = tmp_path / "modem"
    seen: queue.Queue[dict[str, str]] = queue.Queue()
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ports = {name: _free_port() for name in ("admin", "smsbox", "sendsms")}
    conf = _kannel_conf(tmp_path, link, ports, server.server_address[1])
    boxes: list[subprocess.Popen[bytes]] = []
    try:
        with trio.fail_after(PROGRAM_TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                await nursery.start(_standalone(persona), link, MSISDN, CONFIG)
                for program, listens_on in ((bearerbox, ports["smsbox"]), (smsbox, ports["sendsms"])):
                    with open(tmp_path / f"{Path(program).name}.out", "wb") as output:
                        boxes.append(subprocess.Popen([program, str(conf)], stdout=output, stderr=subprocess.STDOUT))
                    await _listening(listens_on)  # smsbox gives up at once when bearerbox is not there yet
                dlr_url = f"http://127.0.0.1:{server.server_address[1]}/dlr?status=%d&to=%p"
                answer = await trio.to_thread.run_sync(_sendsms, ports["sendsms"], "hi kannel", dlr_url)
                # "0: Accepted for delivery", or "3: Queued for later delivery" while the AT driver still starts
                assert answer.startswith(("0:", "3:")), answer
                got: dict[str, dict[str, str]] = {}
                while len(got) < 2:  # the delivery report and the auto-reply, in either order
                    request = await trio.to_thread.run_sync(seen.get)
                    got["dlr" if "status" in request else "mo"] = request
                nursery.cancel_scope.cancel()
    finally:
        for box in reversed(boxes):
            box.terminate()
            try:
                box.wait(10)
            except subprocess.TimeoutExpired:
                box.kill()
                box.wait()
        server.shutdown()
        server.server_close()
    assert got["mo"] == {"from": f"+{AUTO_REPLY_NUMBER}", "text": f"{AUTO_REPLY_PREFIX}hi kannel"}
    assert got["dlr"]["status"] == "1"  # Kannel's DLR type 1: delivered to the phone
