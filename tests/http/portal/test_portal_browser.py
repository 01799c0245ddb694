"""The portal in Chromium against a running demo gateway: what a customer and an operator do, through the pages
as a person would (labels, buttons), with a screenshot of each page in `.artifacts/portal/`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import openpyxl
from playwright.sync_api import expect

from smsgw.config import DEMO_PASSWORD, DEMO_SYSTEM_ID
from tests.http.portal.conftest import LOCKOUT_FAILURES, OPERATOR, OPERATOR_PASSWORD, Gateway, log_in, shot


def counter_after(page: Any, text: str) -> str:
    """What the counter says once it has counted `text` (typed as a person would, line breaks included)."""
    field = page.get_by_label("Message", exact=True)
    field.fill("")
    field.fill(text)
    units = len(text) + text.count("\n")  # the form sends CR LF: a line break counts as two (GSM) characters
    counter = page.locator("#counter")
    expect(counter).to_contain_text(re.compile(rf"^{units} characters"))
    return str(counter.text_content())


def test_login_then_lockout_after_wrong_passwords(page: Any, gateway: Gateway) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    shot(page, "login")
    log_in(page, DEMO_SYSTEM_ID, DEMO_PASSWORD)
    expect(page).to_have_url(re.compile(r"/compose$"))
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/compose")
    expect(page).to_have_url(re.compile(r"/login\?next=/compose$"))  # logged out: the cookie is gone
    for _ in range(LOCKOUT_FAILURES):
        log_in(page, "shop", "wrong")
        expect(page.get_by_role("alert")).to_have_text("Wrong name or password.")
    log_in(page, "shop", "shop-pw")  # the right password, too late: locked out like an SMPP bind would be
    expect(page.get_by_role("alert")).to_have_text("Too many failed attempts: try again later.")
    shot(page, "login-locked-out")
    log_in(page, DEMO_SYSTEM_ID, DEMO_PASSWORD)  # another account from the same address is not locked out
    expect(page).to_have_url(re.compile(r"/compose$"))


def test_counter_at_the_segment_boundaries(page: Any, gateway: Gateway) -> None:
    log_in(page, DEMO_SYSTEM_ID, DEMO_PASSWORD)
    assert "· GSM7 · 1 segment ·" in counter_after(page, "a" * 160)
    assert "· GSM7 · 2 segments ·" in counter_after(page, "a" * 161)
    assert "· UCS2 · 1 segment ·" in counter_after(page, "ж" * 70)
    assert "· UCS2 · 2 segments ·" in counter_after(page, "ж" * 71)
    # 159 characters and a line break (CR LF, two) are 161: two segments where 159 + a space would be one.
    assert "· GSM7 · 2 segments ·" in counter_after(page, "a" * 79 + "\n" + "a" * 80)
    assert "· GSM7 · 1 segment ·" in counter_after(page, "a" * 79 + " " + "a" * 80)
    shot(page, "send-counter")


def test_send_to_an_uploaded_workbook_reports_bad_lines_then_sends(page: Any, gateway: Gateway,
                                                                   tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    rows = ["Number", 447700900001, "not a number", "447700900002", 447700900001, "+44 7700 900003", "12"]
    for row in rows:
        sheet.append([row])
    path = tmp_path / "customers.xlsx"
    workbook.save(path)

    log_in(page, "brand", "brand-pw")
    page.get_by_label("…or a file").set_input_files(str(path))
    page.get_by_label("Message", exact=True).fill("Our sale starts today")
    page.get_by_label("Sender ID").select_option("Shop2")
    shot(page, "send-form")
    page.get_by_role("button", name="Check numbers").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Send to 3 numbers")
    problems = page.locator("#problems tbody tr")
    expect(problems).to_have_count(3)
    expect(problems.nth(0)).to_contain_text("3")  # row 3: "not a number"
    expect(problems.nth(0)).to_contain_text("not a phone number")
    expect(problems.nth(1)).to_contain_text("repeats line 2")
    expect(problems.nth(2)).to_contain_text("7")
    shot(page, "send-check")
    page.get_by_role("button", name="Send to 3 numbers").click()
    expect(page.locator("#state")).to_have_text("done")
    expect(page.locator("#accepted")).to_have_text("3")
    shot(page, "send-done")
    page.reload()  # the batch lives in the gateway: a reload shows it, and does not send it again
    expect(page.locator("#accepted")).to_have_text("3")
    page.get_by_role("link", name="Account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Account brand")
    shot(page, "account")


def test_a_batch_over_the_account_s_throughput_limit_is_paced_and_all_sent(page: Any, gateway: Gateway) -> None:
    """`bulk` may send 2 segments at once and 20 a second: a dozen numbers go through the same limit as its SMPP
    binds and API requests (they once went around it), all of them, and the page says the send was paced."""
    numbers = [f"4477009001{n:02d}" for n in range(12)]
    log_in(page, "bulk", "bulk-pw")
    page.get_by_label("Numbers, one a line").fill("\n".join(numbers))
    page.get_by_label("Message", exact=True).fill("Stock is back")
    page.get_by_role("button", name="Check numbers").click()
    expect(page.get_by_text("13 characters, GSM7, 1 segment", exact=True)).to_be_visible()  # the encoding's name
    page.get_by_role("button", name="Send to 12 numbers").click()
    expect(page.locator("#state")).to_have_text("done")
    expect(page.locator("#accepted")).to_have_text("12")
    expect(page.locator("#rejected")).to_have_text("0")
    expect(page.locator("#paced")).to_be_visible()
    expect(page.locator("#paced")).to_contain_text("limit of 20 segments a second, the limit its SMPP binds")
    shot(page, "send-paced")


def test_operator_resets_a_modem(page: Any, gateway: Gateway) -> None:
    log_in(page, OPERATOR, OPERATOR_PASSWORD, operator=True)
    expect(page).to_have_url(re.compile(r"/operator/modems$"))
    card = page.locator("#modem-virtual1")
    expect(card.locator(".state")).to_have_text("ready")
    expect(card.get_by_role("img")).to_have_attribute("aria-label", re.compile(r"^signal [1-5] of 5 bars"))
    shot(page, "operator-modems")
    card.get_by_role("button", name="Reset virtual1").click()
    expect(page.get_by_role("status")).to_have_text("Reset sent to virtual1.")
    # The modem went through a power cycle and came back; its last error says why it went.
    for _ in range(60):
        page.goto("/operator/modems")
        if "reset by an operator" in str(card.text_content()) and card.locator(".state").text_content() == "ready":
            break
        page.wait_for_timeout(250)
    expect(card).to_contain_text("restarted: reset by an operator")
    expect(card.locator(".state")).to_have_text("ready")
    for name in ("Queues", "Accounts", "Audit log"):
        page.get_by_role("link", name=name).click()
        shot(page, f"operator-{name.lower().replace(' ', '-')}")
    expect(page.locator("table")).to_contain_text("portal login (operator)")
