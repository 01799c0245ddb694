"""Repeated kill -9 of `smsgw serve` under SMPP load (issue 13): nothing acknowledged is lost, every message gets
its final receipt, and a kill costs at most one window of duplicate receipts.

Processes as in production: four `smsgw virtual-modem` processes (they outlive every crash, as hardware would) and
`smsgw serve --config` on them. smpplib submits with registered_delivery on a transceiver bind, a window of
submit_sm at a time, and acknowledges every deliver_sm as it reads it. `serve` is killed with SIGKILL at random
(seeded) moments and started again on the same store; after the last restart the test waits, bounded, for the
receipts, then reads the store. SMSGW_CRASH_SEED and SMSGW_CRASH_KILLS change the seed and the number of kills.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import smpplib.exceptions

from esme import Delivered, Esme
from processes import Process

pytestmark = pytest.mark.timeout(150)

SEED = int(os.environ.get("SMSGW_CRASH_SEED", "13"))
KILLS = int(os.environ.get("SMSGW_CRASH_KILLS", "3"))
MODEMS = 4
WINDOW = 10  # [smpp] window: deliver_sm outstanding per bind, the bound on duplicates per kill
SUBMIT_WINDOW = 16  # submit_sm outstanding from the ESME
SUBMIT_PER_S = 200.0  # about what four virtual modems deliver: the receipts can catch up after the last restart
KILL_AFTER_S = (0.5, 2.5)  # after the bind, the kill comes at a random moment in this range
RECEIPTS_WITHIN_S = 30.0  # after the last restart
LOST_CONNECTION = (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError, TimeoutError)


def _config(tmp_path: Path, links: list[Path]) -> Path:
    modems = "".join(
        f'[[modems]]\nname = "sim{i}"\nport = "{link}"\nmsisdn = "44770090000{i}"\nwatchdog_interval_s = 5.0\n'
        "reopen_delay_s = 0.2\n"
        for i, link in enumerate(links, start=1)
    )
    path = tmp_path / "gw.toml"
    path.write_text(
        f"[smpp]\nport = 0\nshutdown_grace_s = 1.0\nwindow = {WINDOW}\n[http]\nport = 0\n"
        '[[accounts]]\nsystem_id = "demo"\npassword = "demo"\nthroughput_per_s = 100000.0\n'
        "throughput_burst = 100000\n"
        + modems
        + '[[routes]]\nname = "all"\n'
        "[messages]\nretry_backoff_base_s = 0.2\nretry_backoff_max_s = 1.0\noutbox_redelivery_delay_s = 0.3\n"
        f'[store]\npath = "{tmp_path / "gw.db"}"\n'
        "[virtual_network]\ndelivery_delay_s = 0.3\nretry_interval_s = 0.3\nmt_interval_s = 0.05\n"
    )
    return path


def _serve(config: Path, env: dict[str, str], processes: list[Process]) -> tuple[Process, int]:
    gateway = Process(["serve", "--config", str(config)], env)
    processes.append(gateway)
    return gateway, int(gateway.wait_for_line(r"gateway ready host=\S+ port=(\d+)", 60).group(1))


def _load_until_killed(esme: Esme, gateway: Process, kill_after_s: float, first: int) -> tuple[list[str], int]:
    """Submit windows of submit_sm until the connection dies under the SIGKILL that comes after `kill_after_s`;
    the message ids acknowledged (submit_sm_resp OK) and the number of submit_sm sent."""
    killer = threading.Timer(kill_after_s, gateway.popen.send_signal, (signal.SIGKILL,))
    killer.start()
    acknowledged: list[str] = []
    sent = 0
    start = time.monotonic()
    try:
        while True:
            # Paced, reading (and acknowledging) deliver_sm meanwhile.
            with contextlib.suppress(TimeoutError):
                esme.wait_for(lambda delivered: False, max(0.0, start + sent / SUBMIT_PER_S - time.monotonic()))
            sequences = []
            for _ in range(SUBMIT_WINDOW):
                # Destinations outside every special range of the virtual network: delivered after a short delay.
                destination = f"44770012{(first + sent) % 10000:04d}"
                sequences.append(esme.send_submit(destination, b"crash test", registered_delivery=1))
                sent += 1
            for sequence in sequences:
                status, message_id = esme.submit_response(sequence, timeout_s=10.0)
                assert status == 0, hex(status)
                acknowledged.append(message_id)
    except LOST_CONNECTION:
        pass
    finally:
        killer.join()
        esme.client.disconnect()
    assert gateway.popen.wait(timeout=10) == -signal.SIGKILL
    return acknowledged, sent


def _receipt_ids(esme: Esme) -> list[str]:
    return [d.receipt().message_id for d in esme.delivered if d.is_receipt]


def _stats(esme: Esme) -> Counter[str]:
    return Counter(d.receipt().stat for d in esme.delivered if d.is_receipt)


def test_repeated_kill_9_under_load_loses_nothing_and_duplicates_at_most_a_window_per_kill(
    tmp_path: Path, processes: list[Process]
) -> None:
    rng = random.Random(SEED)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    links = [tmp_path / f"modem{i}" for i in range(1, MODEMS + 1)]
    config = _config(tmp_path, links)
    for i, link in enumerate(links, start=1):
        modem = Process(["virtual-modem", "--link", str(link), "--msisdn", f"44770090000{i}", "--config",
                         str(config)], env)
        processes.append(modem)
        modem.wait_for_line(r"virtual modem .* on ")

    runs: list[Process] = []
    acknowledged: list[str] = []
    receipts_by_run: list[list[str]] = []  # the receipts each gateway run delivered, in order
    stats: Counter[str] = Counter()
    submitted = 0
    for _ in range(KILLS):
        gateway, port = _serve(config, env, processes)
        runs.append(gateway)
        esme = Esme(port, "demo", "demo", bind="transceiver")
        acked, sent = _load_until_killed(esme, gateway, rng.uniform(*KILL_AFTER_S), submitted)
        acknowledged += acked
        submitted += sent
        receipts_by_run.append(_receipt_ids(esme))
        stats += _stats(esme)

    gateway, port = _serve(config, env, processes)
    runs.append(gateway)
    esme = Esme(port, "demo", "demo", bind="transceiver")
    waiting = set(acknowledged).difference(*receipts_by_run)
    read = 0

    def all_arrived(delivered: list[Delivered]) -> bool:
        nonlocal read
        waiting.difference_update(d.receipt().message_id for d in delivered[read:] if d.is_receipt)
        read = len(delivered)
        return not waiting

    try:
        with contextlib.suppress(TimeoutError):
            esme.wait_for(all_arrived, RECEIPTS_WITHIN_S)
        with contextlib.suppress(TimeoutError):
            esme.wait_for(lambda delivered: False, 1.0)  # room for a late duplicate to show up
    finally:
        esme.close()
        receipts_by_run.append(_receipt_ids(esme))
        stats += _stats(esme)
    gateway.popen.send_signal(signal.SIGTERM)
    assert gateway.popen.wait(timeout=30) == 0
    received: set[str] = set().union(*receipts_by_run)
    with sqlite3.connect(tmp_path / "gw.db") as connection:
        stored = {row[0] for row in connection.execute("SELECT message_id FROM messages")}
        # Where the messages without a receipt are: sent and awaiting a status report, or not sent yet.
        waits = Counter(
            "awaiting report" if sent_at is not None else f"state {state}"
            for message_id, state, sent_at in connection.execute(
                "SELECT m.message_id, s.state, s.sent_at FROM messages m JOIN segments s ON s.message = m.id"
            )
            if message_id not in received
        )

    # A duplicate belongs to the run that delivered the copy before it: that run died before the ESME's
    # deliver_sm_resp was committed.
    seen: dict[str, int] = {}
    duplicates: list[list[str]] = [[] for _ in receipts_by_run]
    for run, ids in enumerate(receipts_by_run):
        for message_id in ids:
            if message_id in seen:
                duplicates[seen[message_id]].append(message_id)
            seen[message_id] = run
    counts = Counter(message_id for ids in receipts_by_run for message_id in ids)
    lost = sorted(set(acknowledged) - stored)
    without_receipt = sorted(set(acknowledged) - set(counts))
    print(
        f"seed={SEED} kills={KILLS} submitted={submitted} acknowledged={len(acknowledged)} "
        f"receipts={sum(counts.values())} lost={len(lost)} without_receipt={len(without_receipt)} ({dict(waits)}) "
        f"duplicates_per_run={[len(d) for d in duplicates]} stats={dict(stats)} duplicated={duplicates} "
        f"restarts: {[run.wait_for_line(r'scheduler started (.*) open_segments', 5).group(1) for run in runs[1:]]}"
    )
    assert len(acknowledged) > KILLS * SUBMIT_WINDOW  # the load was real
    assert lost == []
    assert without_receipt == [], f"{len(without_receipt)} acknowledged messages without a final receipt"
    assert set(stats) == {"DELIVRD"}  # every destination is one the virtual network delivers to
    assert duplicates[-1] == []  # the last run was not killed: no duplicate of its own
    assert all(len(d) <= WINDOW for d in duplicates), duplicates
