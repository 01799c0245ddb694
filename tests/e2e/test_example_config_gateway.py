"""The repository's smsgw.example.toml runs: the gateway starts from it (paths, ports and serial devices swapped
for temporary ones and virtual modems, nothing else changed) and every account in it binds and sends with
`smsgw send`'s client. The passwords are the ones its comments name."""

from __future__ import annotations

import functools
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
import trio

from harness import in_thread
from smsgw.app import GatewayStarted, check_config, run_gateway
from smsgw.client import ClientSettings, Outcome, Recipient, send_batch, whole_text
from smsgw.config import config_from_mapping
from smsgw.modem.virtual.pty import run_standalone

pytestmark = pytest.mark.timeout(90)

EXAMPLE = Path(__file__).resolve().parents[2] / "smsgw.example.toml"
# The passwords whose hashes the example holds (its comments say which); at most 8 characters each.
PASSWORDS = {"acme": "acme-pw1", "alerts": "alerts-1"}
REPLYING_HANDSET = "447700900999"  # the virtual network's auto-reply number, free of charge


def _adapted(tmp_path: Path) -> dict[str, Any]:
    document = tomllib.loads(EXAMPLE.read_text())
    smpp = document["smpp"]
    smpp.update(host="127.0.0.1", port=0)
    for key in ("tls_port", "tls_cert_path", "tls_key_path", "audit_log_path"):
        smpp.pop(key, None)
    document.setdefault("http", {}).update(host="127.0.0.1", port=0)
    document["store"]["path"] = str(tmp_path / "example.db")
    for modem in document["modems"]:
        modem["port"] = str(tmp_path / f"{modem['name']}.pty")
    return document


async def test_every_account_of_the_example_binds_and_sends(nursery: trio.Nursery, tmp_path: Path) -> None:
    document = _adapted(tmp_path)
    config = config_from_mapping(document, str(EXAMPLE))
    check_config(config, str(EXAMPLE))
    assert {account.system_id for account in config.accounts} == set(PASSWORDS)
    for modem in config.modems:
        standalone = functools.partial(run_standalone, pin=modem.pin)
        await nursery.start(standalone, modem.port, modem.msisdn, config.virtual_network)
    stop = trio.Event()
    started: GatewayStarted = await nursery.start(functools.partial(run_gateway, config, stop=stop))
    try:
        recipient = Recipient(1, REPLYING_HANDSET, REPLYING_HANDSET)
        for account in config.accounts:
            settings = ClientSettings("127.0.0.1", started.smpp.port, account.system_id, PASSWORDS[account.system_id])
            # A transmitter-only account cannot take receipts; the others wait for theirs.
            wait = 60.0 if "transceiver" in account.allowed_bind_types else None
            with open(os.devnull, "w") as out:
                report = await in_thread(
                    send_batch, settings, [recipient], [whole_text(f"hello from {account.system_id}")],
                    wait_receipts_s=wait, out=out, progress=None,
                )
            assert report.all_accepted, (account.system_id, report.results)
            if wait is not None:
                assert report.outcomes is not None and report.outcomes[Outcome.DELIVERED] == 1
        # `smsgw send` leaves splitting to the gateway (message_payload), so the uk route's max_segments = 3 holds.
        acme = ClientSettings("127.0.0.1", started.smpp.port, "acme", PASSWORDS["acme"])
        with open(os.devnull, "w") as out:
            long = await in_thread(send_batch, acme, [recipient], [whole_text("x" * 153 * 3 + "y")],
                                   wait_receipts_s=None, out=out, progress=None)
            fits = await in_thread(send_batch, acme, [recipient], [whole_text("x" * 153 * 3)],
                                   wait_receipts_s=None, out=out, progress=None)
        assert long.results[0].command_status == 0x406
        assert fits.all_accepted
    finally:
        stop.set()
