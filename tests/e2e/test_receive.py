"""`smsgw receive` against the real gateway: the demo's `RE:` reply and a receipt, each printed once and
acknowledged (the gateway drops what was acknowledged: a second receiver gets nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from esme import Esme
from harness import in_thread
from smsgw.app import GatewayStarted
from smsgw.client import ClientSettings, Recipient, send_batch, whole_text
from smsgw.config import DEMO_PASSWORD, DEMO_SYSTEM_ID

pytestmark = pytest.mark.timeout(90)

REPLYING_HANDSET = "447700900999"


def _receive(port: int, *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smsgw", "receive", "--port", str(port), "--system-id", DEMO_SYSTEM_ID,
         "--password", DEMO_PASSWORD, *more],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


async def test_receive_prints_the_reply_and_the_receipt(gateway: GatewayStarted) -> None:
    settings = ClientSettings("127.0.0.1", gateway.smpp.port, DEMO_SYSTEM_ID, DEMO_PASSWORD)
    with open(os.devnull, "w") as out:
        # A transmitter bind asking for no receipt: only the handset's reply waits for a receiver.
        report = await in_thread(send_batch, settings, [Recipient(1, REPLYING_HANDSET, REPLYING_HANDSET)],
                                 [whole_text("Hello from smsgw")], wait_receipts_s=None, out=out, progress=None)
    assert report.all_accepted
    result = await in_thread(_receive, gateway.smpp.port, "--count", "1", "--timeout", "30")
    assert result.returncode == 0, result.stderr
    fields = result.stdout.splitlines()[0].split("\t")
    assert fields[0] == "MO" and fields[1] == REPLYING_HANDSET and fields[3] == "RE: Hello from smsgw"
    assert result.stderr == "received 1 item\n"
    again = await in_thread(_receive, gateway.smpp.port, "--timeout", "1", "--json")
    assert (again.returncode, again.stdout) == (0, "")  # acknowledged: gone from the store


async def test_receive_json_receipt(gateway: GatewayStarted) -> None:
    # Submitted on a transmitter bind: the receipt waits in the store for a receiver.
    esme = await in_thread(Esme, gateway.smpp.port, DEMO_SYSTEM_ID, DEMO_PASSWORD, bind="transmitter")
    try:
        status, message_id = await in_thread(esme.submit, "447700123456", b"receipt please", registered_delivery=1)
    finally:
        await in_thread(esme.close)
    assert status == 0
    result = await in_thread(_receive, gateway.smpp.port, "--count", "1", "--timeout", "30", "--json")
    assert result.returncode == 0, result.stderr
    item = json.loads(result.stdout)
    assert (item["kind"], item["message_id"], item["stat"], item["err"]) == ("receipt", message_id, "DELIVRD", "000")
