"""What a user does first: `smsgw demo`, paste the `smsgw send` command it prints, Ctrl-C. And `smsgw send` with
a numbers file and --wait-receipts against the real gateway."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from harness import in_thread
from processes import Process
from smsgw.app import GatewayStarted
from smsgw.client import ClientSettings, Outcome, read_recipients, send_batch, split_text
from smsgw.config import DEMO_CALLBACK_SECRET
from smsgw.scheduler.callback import sign

pytestmark = pytest.mark.timeout(90)


def test_demo_prints_a_send_command_that_works_and_stops_on_ctrl_c(
    tmp_path: Path, processes: list[Process]
) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    demo = Process(["demo", "--port", "0", "--http-port", "0", "--modems", "2", "--db", str(tmp_path / "demo.db")],
                   env)
    processes.append(demo)
    demo.wait_for_line(r"^  HTTP on http://127\.0\.0\.1:\d+ ", 60)
    command = demo.wait_for_line(r"^  (\S+.* send --port \d+ .*--wait-receipts)$", 60).group(1)
    curl = demo.wait_for_line(r"^  (curl -u demo:demo .*/api/v1/messages)$", 60).group(1)
    receipts = demo.wait_for_line(r"^  curl (http://127\.0\.0\.1:\d+/demo/receipts)$", 60).group(1)
    assert f'"dlr_url": "{receipts}"' in curl
    demo.wait_for_line(r"virtual modem virtual2 447700900002 on ")

    sent = subprocess.run(shlex.split(command) + ["--receipt-timeout", "30"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert sent.returncode == 0, sent.stderr
    lines = sent.stdout.splitlines()
    assert lines[0].startswith("447700900999\tOK\t")
    assert any(line.split() == ["delivered", "1"] for line in lines)
    assert any(line.split() == ["pending", "0"] for line in lines)

    # The curl line as printed (run without a shell: shlex keeps its quoted JSON body whole).
    posted = subprocess.run(shlex.split(curl) + ["--silent", "--show-error"], capture_output=True, text=True,
                            timeout=60)
    assert posted.returncode == 0, posted.stderr
    (message,) = json.loads(posted.stdout)["messages"]
    assert message["to"] == "447700900123" and message["state"] == "ACCEPTED"
    # Its signed delivery report arrives at the demo's own receipt sink, which the banner's last curl line lists.
    deadline = time.monotonic() + 30  # a hang guard: the virtual network delivers within a second or two
    while not (arrived := httpx.get(receipts).json()["receipts"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    (receipt,) = arrived
    body = receipt["body"]
    assert body == body | {"message_id": message["message_id"], "to": "447700900123", "state": "DELIVERED",
                           "state_code": 22, "error_code": "000", "client_ref": "demo-1"}
    # The HMAC of the body as sent (compact JSON as smsgw writes it), with the demo account's callback_secret.
    assert receipt["signature"] == sign(json.dumps(body, ensure_ascii=False).encode(), DEMO_CALLBACK_SECRET)
    assert receipt["signature_valid"] is True

    demo.popen.send_signal(signal.SIGINT)
    assert demo.popen.wait(timeout=30) == 0
    demo.stop()
    assert any("gateway stopped" in line for line in demo.lines)
    assert list(tmp_path.glob("smsgw-demo-*")) == []  # the pty links are gone


async def test_send_a_numbers_file_and_wait_for_receipts(gateway: GatewayStarted) -> None:
    numbers = read_recipients(
        ["number\n", "07700 123456\n", "+44 7700 922000\n", "0044 7700 933001\n", "1234\n", "07700-123456\n"], "44"
    )
    assert [(r.line, r.raw) for r in numbers.rejected] == [(5, "1234"), (6, "07700-123456")]
    settings = ClientSettings("127.0.0.1", gateway.smpp.port, "demo", "demo")
    with open(os.devnull, "w") as out:
        report = await in_thread(
            send_batch, settings, numbers.recipients, split_text("A long text split by smsgw send. " * 6),
            wait_receipts_s=60.0, out=out, progress=None,
        )
    assert report.all_accepted
    assert report.outcomes is not None
    assert report.outcomes[Outcome.DELIVERED] == 2  # 447700123456 and, after memory full, 447700933001
    assert report.outcomes[Outcome.UNDELIVERABLE] == 1  # 447700922000
    assert report.outcomes[Outcome.PENDING] == 0
