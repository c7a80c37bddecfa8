"""Browser tests on a live server: Debian chromium driven by Selenium through Debian's chromedriver.

Selenium gets an explicit driver path, so Selenium Manager never runs (and SE_OFFLINE forbids it to
download anything even if it did). Locally the tests skip without chromium; under CI they fail.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import WAIT_SECONDS, console_errors

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


# --- The API docs: nothing fetched from elsewhere, no console error, the examples shown ------------------------


def outside_requests(driver, origin: str) -> list[str]:
    """Every network URL the page asked for (Chrome's performance log: Network.requestWillBeSent, which includes
    requests the Content-Security-Policy then refused) that is not on the live server (127.0.0.1). Chrome's own
    pages (chrome://) and inline data are not network requests."""
    local_hosts = {"127.0.0.1", urlsplit(origin).hostname}
    urls = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.add(message["params"]["request"]["url"])
    return sorted(
        url
        for url in urls
        if urlsplit(url).scheme in {"http", "https", "ws", "wss"} and urlsplit(url).hostname not in local_hosts
    )


def test_swagger_ui_loads_only_from_the_server_without_console_errors(live_server, browser, shot):
    browser.get(f"{live_server.url}/docs")
    wait = WebDriverWait(browser, WAIT_SECONDS)
    # Both exist only after Swagger UI's JavaScript fetched and rendered /api/schema/.
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .information-container .title")))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .opblock")))
    assert (
        "Healthcare integration platform"
        in browser.find_element(By.CSS_SELECTOR, ".swagger-ui .information-container .title").text
    )
    assert not browser.find_elements(By.CSS_SELECTOR, ".swagger-ui .errors-wrapper .error-wrapper")
    shot("swagger-loaded")
    # The tag's generated description (error body, limits) and an operation's examples render too.
    token = browser.find_element(By.ID, "operations-Platform-platform_auth_token")
    token.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait.until(lambda driver: "clinic-integration" in token.text)
    assert "Invalid username or password" in token.text or token.find_elements(By.CSS_SELECTOR, ".examples-select")
    shot("swagger-token-examples")
    assert outside_requests(browser, live_server.url) == []
    assert console_errors(browser) == []


LOGO_SETTLED_JS = """
const logo = document.querySelector("img[alt='redocly logo']");
const footer = document.querySelector("a[href='https://redocly.com/redoc/']");
return Boolean(footer) && (logo ? logo.complete : performance.now() > 1500);
"""


def test_redoc_loads_only_from_the_server_without_console_errors(live_server, browser, shot):
    browser.get(f"{live_server.url}/redoc")
    wait = WebDriverWait(browser, WAIT_SECONDS)
    # Redoc's rendered API content (title from the schema) exists only after its JavaScript ran.
    heading = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".api-content h1")))
    assert "Healthcare integration platform" in heading.text
    # The sidebar's vendor logo is the image Redoc fetches from its CDN (and removes when that fails): wait until
    # it is rendered and loaded, or gone.
    WebDriverWait(browser, 5).until(lambda driver: driver.execute_script(LOGO_SETTLED_JS))
    shot("redoc-loaded")
    assert outside_requests(browser, live_server.url) == []
    assert console_errors(browser) == []
    logo = browser.find_element(By.CSS_SELECTOR, "img[alt='redocly logo']")
    assert logo.get_attribute("src").startswith("data:image/")  # kept, from here
    # Examples and the tags' generated descriptions are in the rendered page.
    page = browser.find_element(By.CSS_SELECTOR, ".api-content").get_attribute("textContent")
    assert "bizos-lead-12345" in page and "100 requests per minute per credential" in page
    assert "img-src 'self' data:" in httpx.get(f"{live_server.url}/redoc").headers["Content-Security-Policy"]


def test_favicon_is_served(live_server):
    response = httpx.get(f"{live_server.url}/favicon.ico", follow_redirects=True)
    assert response.status_code == 200 and response.headers["Content-Type"] in {
        "image/x-icon",
        "image/vnd.microsoft.icon",
    }
