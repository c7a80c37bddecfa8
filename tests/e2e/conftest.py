"""Browser fixtures shared by the admin and docs walks: Debian chromium through Debian's chromedriver
(Selenium gets explicit paths, so Selenium Manager never runs; SE_OFFLINE forbids downloads anyway), a
staff login, and screenshots of each step saved as artifacts under `.local/screenshots/<test>/` (not
committed; `.local` is ignored).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

WAIT_SECONDS = 20
SCREENSHOT_ROOT = Path(__file__).resolve().parents[2] / ".local" / "screenshots"
STAFF_PASSWORD = "browser-staff-pass-123!"


@pytest.fixture
def browser(chromium_paths, tmp_path, monkeypatch):
    chromium, chromedriver = chromium_paths
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1400,1024",  # issue 14: list columns must fit at 1,400 px
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


class Screenshots:
    """`shot("step-name")` saves the page as .local/screenshots/<test>/<NN>-step-name.png."""

    def __init__(self, driver, test_name: str):
        self.driver = driver
        self.folder = SCREENSHOT_ROOT / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        self.count = 0

    def __call__(self, step: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count += 1
        path = self.folder / f"{self.count:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', step)}.png"
        self.driver.save_screenshot(str(path))
        return path


@pytest.fixture
def shot(browser, request) -> Screenshots:
    return Screenshots(browser, request.node.name)


@pytest.fixture
def staff_login(browser, live_server, django_user_model):
    """Log a superuser (or the given user) in through the admin's own login form; returns the user."""

    def login(user=None):
        if user is None:
            user = django_user_model.objects.create_superuser(
                username="browser-admin", email="browser-admin@example.com", password=STAFF_PASSWORD
            )
        browser.get(f"{live_server.url}/admin/login/")
        browser.find_element(By.NAME, "username").send_keys(user.username)
        browser.find_element(By.NAME, "password").send_keys(STAFF_PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "input[type='submit']").click()
        WebDriverWait(browser, WAIT_SECONDS).until(ec.presence_of_element_located((By.ID, "user-tools")))
        return user

    return login


def submit_and_wait(driver, element) -> None:
    """Click a control that loads a new page, and wait until the old page is gone: a wait that follows
    cannot then find an element of the old page (its message list, say) that goes stale under it."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, WAIT_SECONDS).until(_detached(page))


# What chromedriver answers when asked about a node of a document it is replacing at that very moment: the
# node is gone, as a stale element reference says once the new document is in (seen in CI, 2026-12-01).
_DETACHED_MID_NAVIGATION = "does not belong to the document"


def _detached(element):
    """selenium's `staleness_of`, also true for a node detached while the new page is still loading."""

    def gone(_driver) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if _DETACHED_MID_NAVIGATION in (exc.msg or ""):
                return True
            raise
        return False

    return gone


def console_errors(driver) -> list[dict]:
    """Browser console entries at SEVERE level (errors, CSP refusals, failed loads) since the last call."""
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
