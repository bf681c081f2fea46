"""The admin console in headless Chromium, over the local stack and a real call.

The local caller leaves a message with the demo clinic through the whole stack (local
ACS, Functions app, media worker); then Chromium, driven by Selenium through Debian's
chromium-driver, opens ``<Functions URL>/api/console``, signs in with the local admin
token, lists the call, opens it by keyboard (the view is audited), and marks the
message done. Screenshots go to ``$REDDYTALK_SCREENSHOTS_DIR`` when set (the README's
come from ``REDDYTALK_SCREENSHOTS_DIR=docs/screenshots``), else to the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_caller import CallReport, load_scenario, place_call
from local_stack import LocalStack, local_stack
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from reddytalk.composition import open_embedded_records
from reddytalk.providers.seed import DEMO_CLINIC_ID
from reddytalk.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
GREETING = "Thank you for calling Reddy Family Clinic"
WAIT_S = 20  # each step is a local round trip; the bound only stops a broken page hanging
pytestmark = pytest.mark.e2e


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("chromium and chromium-driver are needed: scripts/test installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,1400", "--lang=en-US"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("REDDYTALK_SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def _ended(settings: Settings, call_id: str) -> None:
    """Wait (bounded) for the call's session to record its end: the record is kept."""
    with open_embedded_records(settings) as records:
        async with asyncio.timeout(10):
            for _ in range(200):  # polled: the session writes from another task
                events = await records.store.audit_trail(call_id)
                if any(e.action == "call.ended" for e in events):
                    return
                await asyncio.sleep(0.05)
        raise AssertionError(f"call {call_id} did not record its end")


def _use_console(driver: WebDriver, stack: LocalStack, call: CallReport, shots: Path) -> None:
    wait = WebDriverWait(driver, WAIT_S)
    driver.get(f"{stack.functions_url}/api/console")
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "admin token"))
    driver.find_element(By.CSS_SELECTOR, "label[for=token]")  # the field is labelled
    driver.find_element(By.ID, "token").send_keys(stack.admin_token)
    driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()

    clinic = wait.until(ec.visibility_of_element_located((By.ID, "clinic")))
    Select(clinic).select_by_value(DEMO_CLINIC_ID)
    driver.find_element(By.CSS_SELECTOR, "#clinic-form button[type=submit]").click()
    row = wait.until(ec.visibility_of_element_located(
        (By.CSS_SELECTOR, f"#calls tr[data-call-id='{call.call_id}']")))  # fmt: skip
    cells = [c.text for c in row.find_elements(By.CSS_SELECTOR, "th, td")]
    assert cells[1] == "hidden" and cells[3] == "message_taken", cells
    assert cells[5] and cells[5] != "–", cells  # the per-turn latencies
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#latency-chart circle")))
    # First content is charted too (squares; the deterministic answers have no filler).
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#latency-chart rect.content")))
    driver.save_screenshot(str(shots / "console-calls.png"))

    row.find_element(By.TAG_NAME, "button").send_keys(Keys.ENTER)  # by keyboard
    wait.until(ec.text_to_be_present_in_element((By.ID, "transcript"), GREETING))
    wait.until(ec.text_to_be_present_in_element((By.ID, "audit"), "call.viewed"))
    assert driver.switch_to.active_element.get_attribute("id") == "call-heading"
    assert "local-admin" in driver.find_element(By.ID, "audit").text
    driver.set_window_size(1280, 2400)  # the whole opened call, down to its audit trail
    driver.find_element(By.ID, "call-section").screenshot(str(shots / "console-call.png"))

    message = wait.until(ec.visibility_of_element_located(
        (By.CSS_SELECTOR, "#messages tbody tr")))  # fmt: skip
    done = message.find_element(By.XPATH, ".//button[normalize-space()='Mark done']")
    done.click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "marked done"))
    assert "done" in message.text.split() and not done.is_enabled()
    assert driver.find_element(By.ID, "error").text == ""
    errors = [
        e["message"] for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and "/.auth/me" not in e["message"]  # 404 off Azure
        and "favicon.ico" not in e["message"]
    ]  # fmt: skip
    assert errors == []  # no script error, no Content-Security-Policy violation


def test_the_console_lists_a_call_opens_it_audited_and_marks_its_message_done(
    tmp_path: Path, browser: WebDriver, screenshots: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "stack", port=0)
    scenario = load_scenario(ROOT / "scenarios" / "leave-a-message.yaml")

    async def run() -> CallReport:
        async with local_stack(settings) as stack:
            call = await place_call(scenario, url=stack.phone_url)
            await _ended(settings, call.call_id)
            # Selenium blocks: drive it from a thread while the stack serves on this loop.
            await asyncio.to_thread(_use_console, browser, stack, call, screenshots)
            return call

    call = asyncio.run(run())

    async def stored() -> None:
        with open_embedded_records(settings) as records:
            viewed = [e for e in await records.store.audit_trail(call.call_id)
                      if e.action == "call.viewed"]  # fmt: skip
            assert [e.details["actor"] for e in viewed] == ["local-admin"]
            messages = await records.store.list_messages(DEMO_CLINIC_ID)
            assert [(m.call_id, m.status) for m in messages] == [(call.call_id, "done")]

    asyncio.run(stored())
    assert {p.name for p in screenshots.iterdir()} >= {"console-calls.png", "console-call.png"}
