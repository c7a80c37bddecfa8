"""Browser tests on a live server: Debian chromium driven by Selenium through Debian's chromedriver.

Selenium gets an explicit driver path, so Selenium Manager never runs (and SE_OFFLINE forbids it to
download anything even if it did). Locally the tests skip without chromium; under CI they fail.
"""

from __future__ import annotations

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import WAIT_SECONDS

pytestmark = pytest.mark.browser

# Every URL the page asked for (resource timing) plus every URL it references in the DOM.
PAGE_URLS_JS = """
const urls = performance.getEntriesByType('resource').map(entry => entry.name);
for (const el of document.querySelectorAll('script[src], link[href], img[src], iframe[src]')) {
  urls.push(el.src || el.href);
}
return urls;
"""


def _foreign_urls(driver, origin: str) -> list[str]:
    urls = driver.execute_script(PAGE_URLS_JS)
    local = ("data:", "blob:", origin)
    return sorted({url for url in urls if url and not url.startswith(local)})


def test_admin_login_page_renders(live_server, browser):
    browser.get(f"{live_server.url}/admin/login/")
    assert "Log in" in browser.title
    assert browser.find_element(By.CSS_SELECTOR, "input[name='username']").is_displayed()
    assert browser.find_element(By.CSS_SELECTOR, "input[name='password'][type='password']").is_displayed()
    assert _foreign_urls(browser, live_server.url) == []


def test_swagger_ui_renders_from_the_live_server_only(live_server, browser):
    browser.get(f"{live_server.url}/docs")
    wait = WebDriverWait(browser, WAIT_SECONDS)
    # Both exist only after Swagger UI's JavaScript fetched and rendered /api/schema/.
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .information-container .title")))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .opblock")))
    assert "Healthcare integration platform" in browser.find_element(
        By.CSS_SELECTOR, ".swagger-ui .information-container .title"
    ).text
    assert not browser.find_elements(By.CSS_SELECTOR, ".swagger-ui .errors-wrapper .error-wrapper")
    assert _foreign_urls(browser, live_server.url) == []


def test_redoc_renders(live_server, browser):
    browser.get(f"{live_server.url}/redoc")
    wait = WebDriverWait(browser, WAIT_SECONDS)
    # Redoc's rendered API content (title from the schema) exists only after its JavaScript ran.
    heading = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".api-content h1")))
    assert "Healthcare integration platform" in heading.text


def test_redoc_loads_nothing_from_outside(live_server, browser):
    browser.get(f"{live_server.url}/redoc")
    WebDriverWait(browser, WAIT_SECONDS).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".api-content")))
    # Redoc's bundle puts an <img> of its CDN-hosted logo in the page (so the browser lists the attempt);
    # the page's Content-Security-Policy (img-src 'self') makes the browser refuse to load it.
    assert _foreign_urls(browser, live_server.url) in ([], ["https://cdn.redoc.ly/redoc/logo-mini.svg"])
    assert "img-src 'self' data:" in httpx.get(f"{live_server.url}/redoc").headers["Content-Security-Policy"]
    logo_loaded = browser.execute_script(
        "const img = document.querySelector('img[src^=\"https://cdn.redoc.ly\"]');"
        "return img ? img.complete && img.naturalWidth > 0 : false;"
    )
    assert logo_loaded is False
