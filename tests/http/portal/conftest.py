"""The portal's browser tests: a demo gateway (virtual modems, HTTP on port 0) in a Trio thread of its own, and
Debian's Chromium driven by Playwright's sync API from the test's thread. Screenshots of every page go to
`.artifacts/portal/` at the top of the checkout (git-ignored) for reviewers to look at."""

from __future__ import annotations

import dataclasses
import functools
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from smsgw.app import GatewayStarted, run_demo
from smsgw.config import AccountConfig, OperatorConfig
from smsgw.passwords import hash_password
from tests.conftest import require_program
from tests.e2e.harness import FAST

OPERATOR = "ops"
OPERATOR_PASSWORD = "ops-secret"
LOCKOUT_FAILURES = 3
SCREENSHOTS = Path(__file__).resolve().parents[3] / ".artifacts" / "portal"
# The portal as the lockout test meets it: a few failures lock an account out; an address needs many more.
PORTAL = dataclasses.replace(
    FAST,
    smpp=dataclasses.replace(FAST.smpp, bind_lockout_failures=LOCKOUT_FAILURES, bind_failure_delay_max_s=0.05),
    operators=(OperatorConfig(OPERATOR, hash_password(OPERATOR_PASSWORD)),),
    accounts=(*FAST.accounts, AccountConfig(system_id="brand", password_hash=hash_password("brand-pw"),
                                            sender_ids=("Brand", "Shop2"), time_zone="Europe/London"),
              # A throughput limit a batch of a dozen numbers is over: the portal paces it.
              AccountConfig(system_id="bulk", password_hash=hash_password("bulk-pw"), throughput_per_s=20.0,
                            throughput_burst=2),
              # One segment, then one every 100 s: whatever follows a first send is over the limit.
              AccountConfig(system_id="trickle", password_hash=hash_password("trickle-pw"), throughput_per_s=0.01,
                            throughput_burst=1)),
)


@dataclasses.dataclass
class Gateway:
    started: GatewayStarted
    url: str
    token: trio.lowlevel.TrioToken

    def call(self, fn: Any, *args: Any) -> Any:
        """`fn(*args)` in the gateway's Trio thread (its parts are not thread-safe)."""
        return trio.from_thread.run_sync(fn, *args, trio_token=self.token)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    ready: queue.Queue[tuple[GatewayStarted, trio.lowlevel.TrioToken, trio.Event] | BaseException] = queue.Queue()

    def serve() -> None:
        async def main() -> None:
            stop = trio.Event()
            run = functools.partial(run_demo, port=0, modems=2, db_path=str(tmp_path / "portal.db"), http_port=0,
                                    base=PORTAL, stop=stop)
            async with trio.open_nursery() as nursery:
                started = await nursery.start(run)
                ready.put((started, trio.lowlevel.current_trio_token(), stop))

        try:
            trio.run(main)
        except BaseException as exc:  # the test's thread reports it
            ready.put(exc)

    thread = threading.Thread(target=serve, name="gateway", daemon=True)
    thread.start()
    item = ready.get(timeout=60)
    if isinstance(item, BaseException):
        raise item
    started, token, stop = item
    assert started.http is not None
    try:
        yield Gateway(started, started.http.url, token)
    finally:
        trio.from_thread.run_sync(stop.set, trio_token=token)
        thread.join(30)
        assert not thread.is_alive(), "the gateway did not stop"


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium = require_program("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, gateway: Gateway) -> Iterator[Any]:
    # A phone's width: every page must be usable there.
    context = browser.new_context(base_url=gateway.url, viewport={"width": 390, "height": 844})
    try:
        yield context.new_page()
    finally:
        context.close()


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(page: Any, name: str, password: str, *, operator: bool = False) -> None:
    page.goto("/login")
    if operator:
        page.get_by_label("an operator").check()
    page.get_by_label("Name (system_id)").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
