"""The portal's message pages in Chromium against a running demo gateway: a scheduled message cancelled, a delivered message found in the results and exported as CSV, a handset's reply in the inbox answered
from the page, an API key created on the Account page and used against the REST API. Screenshots (phone and desktop
width) go to `.artifacts/portal/`."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from smsgw.config import DEMO_PASSWORD, DEMO_SYSTEM_ID
from tests.http.portal.conftest import Gateway, log_in, shot

# The virtual network's handset that replies "RE: <text>" to what it receives (DESIGN.md).
REPLYING_HANDSET = "447700900999"
DESKTOP = {"width": 1280, "height": 900}
POLLS = 120


def send(page: Any, number: str, text: str, schedule: str = "") -> None:
    page.goto("/compose")
    page.get_by_label("Numbers, one a line").fill(number)
    page.get_by_label("Message", exact=True).fill(text)
    if schedule:
        page.get_by_label(re.compile(r"^Send at")).fill(schedule)
    page.get_by_role("button", name="Check numbers").click()
    page.get_by_role("button", name="Send to 1 number").click()
    expect(page.locator("#state")).to_have_text("done")


def reload_until(page: Any, url: str, ready: Callable[[], bool]) -> None:
    """Open `url` again until `ready()` (the gateway delivers in the background; the page shows it on reload)."""
    for _ in range(POLLS):
        page.goto(url)
        if ready():
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"{url} never showed what the test waits for")


def test_a_scheduled_message_is_cancelled_after_a_confirmation(page: Any, gateway: Gateway) -> None:
    log_in(page, DEMO_SYSTEM_ID, DEMO_PASSWORD)
    tomorrow = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    send(page, "447700900123", "See you tomorrow", schedule=tomorrow)
    page.get_by_role("link", name="Scheduled").click()
    rows = page.locator("#scheduled tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("447700900123")
    shot(page, "scheduled")
    rows.first.get_by_role("checkbox").check()
    page.get_by_role("button", name="Cancel the ticked messages…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Cancel 1 message?")
    shot(page, "scheduled-confirm")
    page.get_by_role("button", name="Yes, cancel 1 message").click()
    expect(page.get_by_role("status")).to_contain_text("Cancelled 1 message; the charge is refunded.")
    expect(page.locator("#scheduled")).to_have_count(0)
    # The refund is store.cancel's (tests/scheduler/test_store.py); the demo's routes are free, so not seen here.
    page.goto("/results?state=CANCELLED")
    expect(page.locator("#results tbody tr")).to_have_count(1)


def test_a_delivered_message_is_found_exported_and_its_reply_answered(browser: Any, gateway: Gateway) -> None:
    context = browser.new_context(base_url=gateway.url, viewport=DESKTOP, accept_downloads=True)
    try:
        page = context.new_page()
        log_in(page, DEMO_SYSTEM_ID, DEMO_PASSWORD)
        send(page, REPLYING_HANDSET, "Are you coming on Friday?")
        search = f"/results?number={REPLYING_HANDSET}&state=DELIVERED"
        reload_until(page, search, lambda: page.locator("#results tbody tr a").count() == 1)
        shot(page, "results-desktop")
        with page.expect_download() as download:
            page.get_by_role("link", name="Export this search as CSV").click()
        (row,) = csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read()))
        assert (row["destination"], row["state"], row["error_code"], row["text"]) == (
            REPLYING_HANDSET, "DELIVERED", "000", "Are you coming on Friday?")
        page.locator("#results tbody tr a").click()
        expect(page.locator("#message-state")).to_have_text("delivered")
        expect(page.locator("#error-1")).to_have_text("000: no error")
        shot(page, "message-detail-desktop")

        reload_until(page, "/inbox", lambda: "RE: Are you coming on Friday?" in str(page.locator("main").text_content()))
        card = page.locator(".card.reply").filter(has_text="RE: Are you coming on Friday?")
        expect(card.locator(".answers")).to_contain_text(f"Answers your message {row['message_id']}")
        shot(page, "inbox-desktop")
        card.get_by_label(f"Reply to {REPLYING_HANDSET}").fill("Yes, see you there")
        card.get_by_role("button", name="Send reply").click()
        expect(page.get_by_role("status")).to_have_text(f"Reply to {REPLYING_HANDSET} accepted.")
        # The reply went out through the accept path like any send, and the handset answers it in turn.
        reload_until(page, "/inbox", lambda: "RE: Yes, see you there" in str(page.locator("main").text_content()))
        page.set_viewport_size({"width": 390, "height": 844})
        shot(page, "inbox")
        page.goto(search)
        shot(page, "results")
    finally:
        context.close()


def test_a_reply_over_the_account_s_throughput_limit_is_refused_and_says_so(page: Any, gateway: Gateway) -> None:
    """`trickle`'s first send takes its whole burst: the reply to the handset's answer is over the limit, refused
    as the API refuses (429), with the limit named; nothing is sent."""
    log_in(page, "trickle", "trickle-pw")
    send(page, REPLYING_HANDSET, "Are you there?")
    reload_until(page, "/inbox", lambda: "RE: Are you there?" in str(page.locator("main").text_content()))
    card = page.locator(".card.reply").filter(has_text="RE: Are you there?")
    card.get_by_label(f"Reply to {REPLYING_HANDSET}").fill("Yes")
    with page.expect_response(re.compile(r"/inbox/")) as answer:
        card.get_by_role("button", name="Send reply").click()
    assert answer.value.status == 429
    # Said as an error (role alert, the error style), not in the green of a reply that went.
    expect(page.locator("main").get_by_role("alert")).to_have_text(
        "Reply not sent: the account's throughput limit of 0.01 segments a second is reached; try again later.")
    expect(page.locator("main .notice")).to_have_count(0)
    expect(page.get_by_label(f"Reply to {REPLYING_HANDSET}")).to_have_value("Yes")  # kept to send again later
    shot(page, "inbox-reply-throttled")


def test_an_api_key_made_on_the_account_page_works_against_the_api_until_revoked(page: Any,
                                                                                  gateway: Gateway) -> None:
    log_in(page, DEMO_SYSTEM_ID, DEMO_PASSWORD)
    page.goto("/account")
    page.get_by_label("Name of the new key (what uses it)").fill("shop backend")
    page.get_by_role("button", name="Create API key").click()
    key = str(page.locator("#new-key").text_content())
    assert key.startswith("smsgw_")
    expect(page.locator("#api-keys tbody")).to_contain_text("shop backend")
    expect(page.locator("#callbacks")).to_be_visible()
    shot(page, "account-api-key")
    headers = {"Authorization": f"Bearer {key}"}
    answer = httpx.post(f"{gateway.url}/api/v1/messages", headers=headers,
                        json={"to": ["447700900123"], "text": "sent with a portal key"})
    assert answer.status_code == 201, answer.text
    message_id = answer.json()["messages"][0]["message_id"]
    page.goto(f"/results/{message_id}")  # the API's message is the portal's
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Message {message_id}")
    page.goto("/account")
    page.get_by_role("button", name=re.compile(r"^Revoke key \d+$")).click()
    expect(page.get_by_role("status")).to_contain_text("revoked")
    assert httpx.get(f"{gateway.url}/api/v1/balance", headers=headers).status_code == 401
    page.reload()  # the key is shown once: never again
    expect(page.locator("#new-key")).to_have_count(0)


def test_a_consent_list_is_uploaded_line_by_line(page: Any, gateway: Gateway, tmp_path: Path) -> None:
    consents = tmp_path / "consents.csv"
    consents.write_text("447700900123\n+44 7700 900124\nnot a number\n447700900123\n")
    log_in(page, DEMO_SYSTEM_ID, DEMO_PASSWORD)
    page.goto("/account")
    page.get_by_label(re.compile(r"^Numbers that agreed")).set_input_files(str(consents))
    page.get_by_role("button", name="Upload consent list").click()
    expect(page.get_by_role("status")).to_have_text(
        "Consent recorded for 2 numbers (0 already had it). 1 line not a number: line 3.")
    page.get_by_label(re.compile(r"^Numbers that agreed")).set_input_files(str(consents))
    page.get_by_role("button", name="Upload consent list").click()
    expect(page.get_by_role("status")).to_contain_text("Consent recorded for 0 numbers (2 already had it).")
