"""The admin console and its softphone in headless Chromium, over the local stack.

Chromium, driven by Selenium through Debian's chromium-driver, opens ``<Functions
URL>/api/console`` and signs in with the local admin token. Its softphone calls the demo
clinic with a WAV file as the microphone (Chromium's fake audio capture): an existing
patient books a check-up, heard and answered through the whole stack (local phone line,
Functions app, media worker), with the live transcript of both sides on the page. At the
same time the scripted local caller leaves a message. Then the console lists both calls,
shows the softphone's booking in its call, opens the message's call by keyboard (the
view is audited), and marks the message done. Screenshots go to
``$REDDYTALK_SCREENSHOTS_DIR`` when set (the README's come from
``REDDYTALK_SCREENSHOTS_DIR=docs/screenshots``), else to the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_caller import CallReport, load_scenario, place_call
from local_stack import LocalStack, local_stack
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from reddytalk.composition import open_embedded_records
from reddytalk.providers.seed import DEMO_CLINIC_ID
from reddytalk.providers.tts.espeak import EspeakTextToSpeech
from reddytalk.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
GREETING = "Thank you for calling Reddy Family Clinic"
WAIT_S = 20  # each step is a local round trip; the bound only stops a broken page hanging
pytestmark = pytest.mark.e2e

# What the softphone's caller says, and the silence before each line: the wait after the
# previous line for the receptionist's answer, as the scripted caller measured it on
# scenarios/book-existing-patient.yaml (greeting first), plus a margin. A fake microphone
# cannot hear the answers, so it must not speak too early: that would be a barge-in. The
# two answers that read out dates (offered slots, the read-back) get the longer margins.
SOFTPHONE_LINES = (
    ("I would like to book an appointment", 8.3 + 2.0),
    ("My name is Robert Taylor", 5.8 + 1.5),
    ("March fifteenth nineteen eighty", 4.9 + 1.5),
    ("A check up", 11.3 + 1.5),
    ("Next Tuesday morning", 4.1 + 1.5),
    ("The second one", 12.0 + 2.5),
    ("Yes please", 8.9 + 2.5),
)
BOOKED = "You are all set. I booked"
CALL_S = 150  # the softphone's whole call, bounded


@pytest.fixture(scope="module")
def caller_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The softphone caller's lines, spaced out, as one 16 kHz WAV file."""
    rate = 16_000
    tts = EspeakTextToSpeech(voice="en-us+f2", words_per_minute=160)

    async def synthesize() -> bytes:
        audio = bytearray()
        for text, wait_s in SOFTPHONE_LINES:
            audio += bytes(2 * int(rate * wait_s))
            audio += b"".join([c async for c in tts.synthesize(text, sample_rate_hz=rate)])
        return bytes(audio + bytes(2 * rate * 30))  # then silence until the hang-up

    path = tmp_path_factory.mktemp("softphone") / "caller.wav"
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(asyncio.run(synthesize()))
    return path


@pytest.fixture
def browser(caller_wav: Path) -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("chromium and chromium-driver are needed: scripts/test installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,1400", "--lang=en-US",
                     # The microphone: the WAV file, played once from the capture's start.
                     "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                     f"--use-file-for-fake-audio-capture={caller_wav}%noloop",
                     "--autoplay-policy=no-user-gesture-required"):  # fmt: skip
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


def _sign_in(driver: WebDriver, stack: LocalStack) -> None:
    wait = WebDriverWait(driver, WAIT_S)
    driver.get(f"{stack.functions_url}/api/console")
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "admin token"))
    driver.find_element(By.CSS_SELECTOR, "label[for=token]")  # the field is labelled
    driver.find_element(By.ID, "token").send_keys(stack.admin_token)
    driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    clinic = wait.until(ec.visibility_of_element_located((By.ID, "clinic")))
    Select(clinic).select_by_value(DEMO_CLINIC_ID)
    driver.find_element(By.CSS_SELECTOR, "#clinic-form button[type=submit]").click()


def _live_lines(driver: WebDriver, speaker: str) -> list[str]:
    selector = f"#live-transcript li[data-speaker={speaker}]:not(.pending) span:last-child"
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, selector)]


def _call_from_the_softphone(driver: WebDriver, shots: Path) -> None:
    """Call the receptionist from the page; the WAV asks for a check-up and confirms it."""
    wait = WebDriverWait(driver, WAIT_S)
    wait.until(ec.element_to_be_clickable((By.ID, "phone-call"))).click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "phone-status"), "Connected"))
    assert driver.find_element(By.ID, "phone-hang-up").is_enabled()
    WebDriverWait(driver, CALL_S).until(
        lambda d: any(BOOKED in line for line in _live_lines(d, "receptionist"))
    )
    heard = _live_lines(driver, "caller")
    assert "my name is robert taylor" in heard, heard  # the caller's side, as recognized
    said = _live_lines(driver, "receptionist")
    assert said[0].startswith(GREETING), said
    driver.find_element(By.ID, "phone-section").screenshot(str(shots / "console-softphone.png"))
    driver.find_element(By.ID, "phone-hang-up").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "phone-status"), "call ended (hung up)"))
    assert driver.find_element(By.ID, "phone-call").is_enabled()
    # Nothing is left as if still being said: a line the hang-up cut is marked so.
    assert driver.find_elements(By.CSS_SELECTOR, "#live-transcript li.pending") == []


def _use_console(driver: WebDriver, call: CallReport, shots: Path) -> str:
    """List both calls, see the softphone's booking, open the message's call, mark the
    message done; the softphone call's id."""
    wait = WebDriverWait(driver, WAIT_S)
    # The page lists the calls again a second after the softphone's call; if the message's
    # call was not over by then, Show lists it.
    both_listed = ec.text_to_be_present_in_element((By.ID, "status"), "2 call(s) listed")
    try:
        WebDriverWait(driver, 5).until(both_listed)
    except TimeoutException:
        driver.find_element(By.CSS_SELECTOR, "#clinic-form button[type=submit]").click()
        wait.until(both_listed)
    row = wait.until(ec.visibility_of_element_located(
        (By.CSS_SELECTOR, f"#calls tr[data-call-id='{call.call_id}']")))  # fmt: skip
    cells = [c.text for c in row.find_elements(By.CSS_SELECTOR, "th, td")]
    assert cells[1] == "hidden" and cells[3] == "message_taken", cells
    assert cells[5] and cells[5] != "–", cells  # the per-turn latencies
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#latency-chart circle")))
    # First content is charted too (squares; the deterministic answers have no filler).
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#latency-chart rect.content")))
    driver.set_window_size(1280, 2400)  # element screenshots stop at the window's edge
    driver.find_element(By.ID, "calls-section").screenshot(str(shots / "console-calls.png"))

    softphone = driver.find_element(By.CSS_SELECTOR, "#calls tr[data-call-id^='softphone-']")
    softphone_id = str(softphone.get_attribute("data-call-id"))
    phone_cells = [c.text for c in softphone.find_elements(By.CSS_SELECTOR, "th, td")]
    assert phone_cells[3] == "booked", phone_cells  # hung up once booked: it booked
    # The clinic-wide list of appointments changed: the booking, linked to its call.
    change = wait.until(ec.visibility_of_element_located(
        (By.CSS_SELECTOR, f"#changes tr[data-call-id='{softphone_id}']")))  # fmt: skip
    assert "booked" in change.text
    change.find_element(By.TAG_NAME, "button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "call-facts"), softphone_id))
    wait.until(ec.text_to_be_present_in_element((By.ID, "appointments"), "booked"))
    assert "checkup" in driver.find_element(By.ID, "appointments").text
    assert "robert taylor" in driver.find_element(By.ID, "transcript").text
    wait.until(ec.text_to_be_present_in_element((By.ID, "audit"), "call.placed"))

    row.find_element(By.TAG_NAME, "button").send_keys(Keys.ENTER)  # by keyboard
    wait.until(ec.text_to_be_present_in_element((By.ID, "call-facts"), call.call_id))
    wait.until(ec.text_to_be_present_in_element((By.ID, "transcript"), GREETING))
    wait.until(ec.text_to_be_present_in_element((By.ID, "audit"), "call.viewed"))
    assert driver.switch_to.active_element.get_attribute("id") == "call-heading"
    assert "local-admin" in driver.find_element(By.ID, "audit").text
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
    return softphone_id


def test_the_softphone_books_and_the_console_lists_opens_audited_and_marks_done(
    tmp_path: Path, browser: WebDriver, screenshots: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "stack", port=0)
    scenario = load_scenario(ROOT / "scenarios" / "leave-a-message.yaml")

    async def run() -> tuple[CallReport, str]:
        async with local_stack(settings) as stack:
            # Selenium blocks: drive it from a thread while the stack serves on this loop.
            await asyncio.to_thread(_sign_in, browser, stack)
            message_call = asyncio.create_task(place_call(scenario, url=stack.phone_url))
            await asyncio.to_thread(_call_from_the_softphone, browser, screenshots)
            call = await message_call
            await _ended(settings, call.call_id)
            softphone_id = await asyncio.to_thread(_use_console, browser, call, screenshots)
            return call, softphone_id

    call, softphone_id = asyncio.run(run())

    async def stored() -> None:
        with open_embedded_records(settings) as records:
            viewed = [e for e in await records.store.audit_trail(call.call_id)
                      if e.action == "call.viewed"]  # fmt: skip
            assert [e.details["actor"] for e in viewed] == ["local-admin"]
            messages = await records.store.list_messages(DEMO_CLINIC_ID)
            assert [(m.call_id, m.status) for m in messages] == [(call.call_id, "done")]
            record = await records.store.get_call(softphone_id, clinic_id=DEMO_CLINIC_ID)
            assert record is not None
            [booked] = [t for t in record.tool_calls if t["name"] == "book"]
            assert booked["arguments"]["appointment_type"] == "checkup", booked
            placed = [e for e in await records.store.audit_trail(softphone_id)
                      if e.action == "call.placed"]  # fmt: skip
            assert [e.details["actor"] for e in placed] == ["local-admin"]

    asyncio.run(stored())
    assert {p.name for p in screenshots.iterdir()} >= {
        "console-calls.png",
        "console-call.png",
        "console-softphone.png",
    }
