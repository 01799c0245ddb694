"""Two `smsgw serve` nodes on one PostgreSQL database (DESIGN.md, "Several nodes"), as processes in production:
an ESME bound to node A, the modems (`smsgw virtual-modem` processes) on node B; node B killed with -9 under
load, node A finishing its queue once B's hand-off leases end; an account's `max_binds` over both nodes, and the
bind of a node killed with -9 free once its bind lease ends.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import smpplib.exceptions

from smsgw.pdu.constants import CommandStatus

from esme import Esme
from processes import Process

pytestmark = pytest.mark.timeout(150)

VALIDITY = "000000000010000R"  # 10 s: a segment whose report died with its node expires soon


def _config(
    tmp_path: Path, name: str, url: str, modems: list[tuple[str, Path]], in_flight: int = 64, max_binds: int = 10
) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        "[smpp]\nport = 0\nshutdown_grace_s = 1.0\n[http]\nport = 0\n"
        f'[[accounts]]\nsystem_id = "demo"\npassword = "demo"\nmax_binds = {max_binds}\n'
        + "".join(
            f'[[modems]]\nname = "{modem}"\nport = "{link}"\nmsisdn = "4477009000{i:02d}"\nreopen_delay_s = 0.2\n'
            for i, (modem, link) in enumerate(modems, start=1)
        )
        + '[[routes]]\nname = "all"\n'
        "[messages]\nmin_validity_s = 1.0\nstatus_report_grace_s = 1.0\nretry_backoff_base_s = 0.2\n"
        "retry_backoff_max_s = 1.0\noutbox_redelivery_delay_s = 0.3\nforeign_writes_poll_s = 0.5\n"
        f"max_in_flight_segments = {in_flight}\n"
        f'[store]\npath = "{tmp_path / name}.db"\nurl = "{url}"\n'
        f'[node]\nname = "{name}"\nhandoff_lease_s = 2.0\nbind_lease_s = 2.0\n'
        "[virtual_network]\ndelivery_delay_s = 0.3\nretry_interval_s = 0.3\n"
    )
    return path


def _modems(tmp_path: Path, names: list[str], env: dict[str, str], processes: list[Process]) -> list[tuple[str, Path]]:
    modems = [(name, tmp_path / name) for name in names]
    for i, (name, link) in enumerate(modems, start=1):
        modem = Process(["virtual-modem", "--link", str(link), "--msisdn", f"4477009000{i:02d}"], env)
        processes.append(modem)
        modem.wait_for_line(r"virtual modem .* on ")
    return modems


def _serve(config: Path, env: dict[str, str], processes: list[Process]) -> tuple[Process, int]:
    node = Process(["serve", "--config", str(config)], env)
    processes.append(node)
    return node, int(node.wait_for_line(r"gateway ready host=\S+ port=(\d+)", 60).group(1))


def test_an_esme_on_one_node_gets_the_receipts_of_what_the_other_node_sent(
    tmp_path: Path, processes: list[Process], postgres_url: str
) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    modems = _modems(tmp_path, ["sim1", "sim2"], env, processes)
    front, port = _serve(_config(tmp_path, "a", postgres_url, []), env, processes)  # binds only, no modems
    sender, _ = _serve(_config(tmp_path, "b", postgres_url, modems), env, processes)
    esme = Esme(port, "demo", "demo")
    try:
        submitted = []
        for i in range(10):
            status, message_id = esme.submit(f"4477001234{i:02d}", b"two nodes", registered_delivery=1)
            assert status == 0
            submitted.append(message_id)
        receipts = esme.receipts(10, timeout_s=60.0)
    finally:
        esme.close()
    assert sorted(r.message_id for r in receipts) == sorted(submitted)
    assert {r.stat for r in receipts} == {"DELIVRD"}
    assert sum("segment sent" in line for line in sender.lines) == 10
    assert not any("segment sent" in line for line in front.lines)


def test_kill_9_of_a_node_under_load_loses_nothing_the_other_finishes_its_queue(
    tmp_path: Path, processes: list[Process], postgres_url: str
) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    modems = _modems(tmp_path, ["sim1", "sim2", "sim3"], env, processes)
    # A claims no more than it sends at once, so B holds most of the queue when it dies.
    survivor, port = _serve(_config(tmp_path, "a", postgres_url, modems[:1], in_flight=1), env, processes)
    victim, _ = _serve(_config(tmp_path, "b", postgres_url, modems[1:]), env, processes)
    victim.wait_for_line("dispatching")  # its modems are up: it takes its share from the first submission
    esme = Esme(port, "demo", "demo")
    acknowledged: list[str] = []
    try:
        for i in range(40):
            if i == 15:  # under load: B holds hand-offs, sent segments awaiting reports and queued ones
                victim.wait_for_line("segment sent", 30)
                victim.popen.send_signal(signal.SIGKILL)
            try:
                status, message_id = esme.submit(f"4477001234{i:02d}", b"kill -9", registered_delivery=1,
                                                 validity_period=VALIDITY, timeout_s=10.0)
            except (smpplib.exceptions.ConnectionError, OSError, TimeoutError):
                break
            assert status == 0
            acknowledged.append(message_id)
        victim.popen.wait(timeout=10)
        assert victim.popen.returncode == -signal.SIGKILL
        esme.receipts(len(acknowledged), timeout_s=90.0)
        time.sleep(1.5)  # room for a duplicate to show up
        esme.wait_for(lambda items: True, 0.1)
        receipts = [d.receipt() for d in esme.delivered if d.is_receipt]
    finally:
        esme.close()
    counts = Counter(r.message_id for r in receipts)
    assert set(counts) == set(acknowledged) and len(acknowledged) == 40
    assert set(counts.values()) == {1}, [m for m, n in counts.items() if n > 1]
    assert {r.stat for r in receipts} <= {"DELIVRD", "EXPIRED"}
    assert any("segment sent" in line for line in survivor.lines)


def _bind_status(port: int) -> int:
    """The bind's command_status (0: bound, and unbound again)."""
    try:
        esme = Esme(port, "demo", "demo")
    except smpplib.exceptions.PDUError as exc:
        return int(exc.args[1])
    esme.close()
    return 0


def test_max_binds_holds_over_both_nodes_and_a_killed_nodes_bind_is_free_after_its_lease(
    tmp_path: Path, processes: list[Process], postgres_url: str
) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    victim, port_a = _serve(_config(tmp_path, "a", postgres_url, [], max_binds=1), env, processes)
    _, port_b = _serve(_config(tmp_path, "b", postgres_url, [], max_binds=1), env, processes)
    esme = Esme(port_a, "demo", "demo")
    try:
        assert _bind_status(port_b) == CommandStatus.ESME_RALYBND
        time.sleep(2.5)  # longer than a bind lease: A's heartbeat holds its bind
        assert _bind_status(port_b) == CommandStatus.ESME_RALYBND
        victim.popen.send_signal(signal.SIGKILL)
        victim.popen.wait(timeout=10)
        # A never unbound: only its lease ending (2 s without a heartbeat) lets B take the bind.
        statuses = []
        while len(statuses) < 60 and (not statuses or statuses[-1] != 0):
            statuses.append(_bind_status(port_b))
            time.sleep(0.25)
    finally:
        esme.client.disconnect()
    assert statuses[-1] == 0 and set(statuses) <= {0, CommandStatus.ESME_RALYBND}, statuses
