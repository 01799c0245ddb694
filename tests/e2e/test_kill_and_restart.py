"""kill -9 of `smsgw serve` in the middle of a batch, then a restart on the same store: every message the gateway
acknowledged reaches a final state, and its receipt arrives exactly once.

Processes as in production: three `smsgw virtual-modem` processes (which survive the crash, as hardware would) and
`smsgw serve --config` on them; smpplib submits and receives.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import smpplib.exceptions

from esme import Esme
from processes import Process

pytestmark = pytest.mark.timeout(110)

BATCH = 30
KILL_AFTER = 12
VALIDITY = "000000000010000R"  # 10 s: a segment whose report died with the gateway expires soon


def _config(tmp_path: Path, links: list[Path]) -> Path:
    modems = "".join(
        f'[[modems]]\nname = "sim{i}"\nport = "{link}"\nmsisdn = "44770090000{i}"\nwatchdog_interval_s = 5.0\n'
        f"reopen_delay_s = 0.2\n"
        for i, link in enumerate(links, start=1)
    )
    path = tmp_path / "gw.toml"
    path.write_text(
        "[smpp]\nport = 0\nshutdown_grace_s = 1.0\n[http]\nport = 0\n"
        '[[accounts]]\nsystem_id = "demo"\npassword = "demo"\n'
        + modems
        + '[[routes]]\nname = "all"\n'
        "[messages]\nmin_validity_s = 1.0\nstatus_report_grace_s = 1.0\nretry_backoff_base_s = 0.2\n"
        "retry_backoff_max_s = 1.0\noutbox_redelivery_delay_s = 0.3\n"
        f'[store]\npath = "{tmp_path / "gw.db"}"\n'
        "[virtual_network]\ndelivery_delay_s = 0.3\nretry_interval_s = 0.3\n"
    )
    return path


def _serve(config: Path, env: dict[str, str], processes: list[Process]) -> int:
    gateway = Process(["serve", "--config", str(config)], env)
    processes.append(gateway)
    return int(gateway.wait_for_line(r"gateway ready host=\S+ port=(\d+)", 60).group(1))


def test_kill_9_during_a_batch_then_restart(tmp_path: Path, processes: list[Process]) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    links = [tmp_path / f"modem{i}" for i in (1, 2, 3)]
    config = _config(tmp_path, links)
    for i, link in enumerate(links, start=1):
        modem = Process(["virtual-modem", "--link", str(link), "--msisdn", f"44770090000{i}", "--config",
                         str(config)], env)
        processes.append(modem)
        modem.wait_for_line(r"virtual modem .* on ")
    port = _serve(config, env, processes)
    gateway = processes[-1]

    # Submit on a transmitter bind, so no receipt can reach the ESME before the crash.
    sender = Esme(port, "demo", "demo", bind="transmitter")
    acknowledged: list[str] = []
    try:
        for i in range(BATCH):
            if len(acknowledged) == KILL_AFTER:
                gateway.popen.send_signal(signal.SIGKILL)
            try:
                status, message_id = sender.submit(f"4477001234{i:02d}", b"batch", registered_delivery=1,
                                                   validity_period=VALIDITY, timeout_s=10.0)
            except (smpplib.exceptions.ConnectionError, OSError, TimeoutError):
                break
            assert status == 0
            acknowledged.append(message_id)
    finally:
        sender.client.disconnect()
    gateway.popen.wait(timeout=10)
    assert gateway.popen.returncode == -signal.SIGKILL
    assert KILL_AFTER <= len(acknowledged) < BATCH

    port = _serve(config, env, processes)
    receiver = Esme(port, "demo", "demo", bind="receiver")
    try:
        receipts = receiver.receipts(len(acknowledged), timeout_s=60.0)
        time.sleep(1.5)  # room for a duplicate to show up
        receiver.wait_for(lambda items: True, 0.1)
        receipts = [d.receipt() for d in receiver.delivered if d.is_receipt]
    finally:
        receiver.close()
    restarted = processes[-1]
    restarted.popen.send_signal(signal.SIGTERM)
    assert restarted.popen.wait(timeout=30) == 0  # SIGTERM is a graceful stop, not a crash
    counts = Counter(r.message_id for r in receipts)
    assert set(counts) == set(acknowledged)
    assert set(counts.values()) == {1}, [m for m, n in counts.items() if n > 1]
    assert {r.stat for r in receipts} <= {"DELIVRD", "EXPIRED"}
