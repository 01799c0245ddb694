"""Start-up and reload of the gateway from a config file: SMPP listens at once while a modem's port does not exist
(the modem is named in the log and retried), and a reload (SIGHUP) changes accounts and routes for the next bind
and submission without dropping binds, refuses a broken file and keeps what only a restart can change.

In-process through `run_gateway` and `reload_config`, plus one real `smsgw serve` receiving SIGHUP. No modem
exists in these configs: its port is misspelled on purpose, so nothing here waits for a modem.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import smpplib.exceptions
import trio

from esme import Esme
from harness import in_thread
from processes import Process
from smsgw.app import GatewayStarted, reload_config, run_gateway
from smsgw.config import load_config
from smsgw.pdu.constants import CommandStatus, MessageState

# The modems' start-up budget (sim_ready_timeout_s + registration_timeout_s) is 150 s: the SMPP listener used to
# wait that long for a modem that cannot open. Far below it, far above any real start-up.
_START_UP_S = 20.0


def _write_config(
    path: Path, *, password: str, prefixes: str = '["44"]', port: int = 0, account: str = "", extra: str = ""
) -> Path:
    path.write_text(
        f"[smpp]\nport = {port}\nshutdown_grace_s = 1.0\nbind_failure_delay_base_s = 0.01\n[http]\nport = 0\n"
        f'[[accounts]]\nsystem_id = "acme"\npassword = "{password}"\n{account}'
        f'[[modems]]\nname = "sim1"\nport = "{path.parent / "ttyUSB-misspelled"}"\nreopen_delay_s = 0.05\n'
        f"reopen_delay_max_s = 0.1\n"
        f'[[routes]]\nname = "main"\nprefixes = {prefixes}\n'
        f'[store]\npath = "{path.parent / "gw.db"}"\n' + extra
    )
    return path


@pytest.fixture
async def gateway(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[GatewayStarted]:
    path = _write_config(tmp_path / "gw.toml", password="old-pw")
    stop = trio.Event()
    with trio.fail_after(_START_UP_S):
        started: GatewayStarted = await nursery.start(
            functools.partial(run_gateway, load_config(path), config_path=str(path), stop=stop)
        )
    yield started
    stop.set()


def _bind_status(port: int, password: str) -> int:
    """The bind's command_status (0: bound, and unbound again)."""
    try:
        esme = Esme(port, "acme", password)
    except smpplib.exceptions.PDUError as exc:
        return int(exc.args[1])
    esme.close()
    return 0


async def test_smpp_listens_at_once_and_the_missing_modem_port_is_named(
    gateway: GatewayStarted, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="smsgw.modem.driver")
    esme = await in_thread(Esme, gateway.smpp.port, "acme", "old-pw")
    try:
        status, message_id = await in_thread(esme.submit, "447700900123", b"waits for a modem")
        assert status == CommandStatus.ESME_ROK
        query = await in_thread(esme.request, "query_sm", message_id=message_id)
        assert query.message_state == MessageState.ENROUTE  # stored, waiting for a modem
    finally:
        await in_thread(esme.close)

    def port_failures() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage().startswith("modem port cannot be opened modem=sim1 ")]

    while len(port_failures()) < 3:  # tried again and again (pytest-timeout ends a test that would wait forever)
        await trio.sleep(0.05)
    first, *again = port_failures()
    assert first.levelno == logging.WARNING
    assert f"port={tmp_path / 'ttyUSB-misspelled'} " in first.getMessage()
    assert "No such file or directory" in first.getMessage()
    assert {r.levelno for r in again} == {logging.DEBUG}  # one warning per cause, not one per retry


async def test_reload_applies_to_the_next_bind_and_submission_without_dropping_binds(
    gateway: GatewayStarted, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smsgw.app")
    port = gateway.smpp.port
    existing = await in_thread(Esme, port, "acme", "old-pw")
    try:
        assert (await in_thread(existing.submit, "447700900123"))[0] == CommandStatus.ESME_ROK

        # A new password, a route for France only, two segments' throughput in all, and a new SMPP port, which
        # needs a restart.
        _write_config(tmp_path / "gw.toml", password="new-pw", prefixes='["33"]', port=port + 1 if port < 65535 else 1,
                      account="throughput_per_s = 0.001\nthroughput_burst = 2\n")
        outcome = await reload_config(gateway.config, str(tmp_path / "gw.toml"))
        assert outcome.applied
        assert outcome.needs_restart == ("smpp.port",)
        assert "config change needs a restart, not applied" in caplog.text and "key=smpp.port" in caplog.text
        assert gateway.config.current.smpp.port == 0  # the running value

        assert await in_thread(_bind_status, port, "old-pw") == CommandStatus.ESME_RINVPASWD
        assert await in_thread(_bind_status, port, "new-pw") == CommandStatus.ESME_ROK
        # The bind made before the reload is still up, and its submissions follow the new routes.
        assert (await in_thread(existing.submit, "447700900123"))[0] == 0x404  # no route any more: costs nothing
        assert (await in_thread(existing.submit, "33612345678"))[0] == CommandStatus.ESME_ROK
        assert (await in_thread(existing.submit, "33612345678"))[0] == CommandStatus.ESME_ROK
        assert (await in_thread(existing.submit, "33612345678"))[0] == CommandStatus.ESME_RTHROTTLED
    finally:
        await in_thread(existing.close)


async def test_a_broken_config_is_refused_and_the_running_one_kept(
    gateway: GatewayStarted, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    running = gateway.config.current
    path = tmp_path / "gw.toml"
    path.write_text(path.read_text().replace('password = "old-pw"', 'password = "new-pw"') + "[smpp]\nport = 1\n")
    outcome = await reload_config(gateway.config, str(path))
    assert not outcome.applied and "(syntax)" in outcome.error
    # A file that loads but does not hold together: a route to a modem group no modem is in.
    _write_config(path, password="new-pw", extra='[[routes]]\nname = "de"\nprefixes = ["49"]\nmodem_group = "de"\n')
    outcome = await reload_config(gateway.config, str(path))
    assert not outcome.applied and "routes[1].modem_group" in outcome.error
    assert gateway.config.current is running
    refused = [r for r in caplog.records if r.getMessage().startswith("config reload refused, running config kept")]
    assert len(refused) == 2 and all(r.levelno == logging.ERROR for r in refused)
    assert await in_thread(_bind_status, gateway.smpp.port, "old-pw") == CommandStatus.ESME_ROK


def test_sighup_reloads_smsgw_serve(tmp_path: Path, processes: list[Process]) -> None:
    path = _write_config(tmp_path / "gw.toml", password="old-pw")
    gateway = Process(["serve", "--config", str(path)], {**os.environ, "TMPDIR": str(tmp_path)})
    processes.append(gateway)
    port = int(gateway.wait_for_line(r"gateway ready host=\S+ port=(\d+)", _START_UP_S).group(1))
    gateway.wait_for_line(r"modem port cannot be opened modem=sim1 port=\S+ttyUSB-misspelled ")
    existing = Esme(port, "acme", "old-pw")
    try:
        _write_config(path, password="new-pw")
        gateway.popen.send_signal(signal.SIGHUP)
        gateway.wait_for_line(r"config reloaded path=")
        assert gateway.popen.poll() is None
        assert _bind_status(port, "new-pw") == CommandStatus.ESME_ROK
        assert _bind_status(port, "old-pw") == CommandStatus.ESME_RINVPASWD
        assert existing.submit("447700900123")[0] == CommandStatus.ESME_ROK
    finally:
        existing.close()
    gateway.popen.send_signal(signal.SIGTERM)
    assert gateway.popen.wait(timeout=30) == 0
