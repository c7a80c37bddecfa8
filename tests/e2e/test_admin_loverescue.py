"""Issue 14, the LoveRescue partner admin walked in Chromium: create a partner with its signed BAA (PDF),
where an IP allowlist with IPv6 and two malformed entries shows both errors at once; download the BAA as
staff (in-page fetch with the browser's session: an audited PDF attachment; anonymous gets the login);
then create, rotate and revoke API keys from the partner's own page, through their confirmation pages.
Screenshots of each step under .local/screenshots/ (not committed)."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from audit.models import AuditEvent
from integration.models import IntegrationPartner, PartnerCredential
from tests.e2e.conftest import WAIT_SECONDS, submit_and_wait

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PDF = b"%PDF-1.4\n% signed business associate agreement\n%%EOF\n"

FETCH_JS = """
const [url, done] = [arguments[0], arguments[arguments.length - 1]];
fetch(url, {credentials: 'same-origin'}).then(async (response) => {
  const bytes = new Uint8Array(await response.arrayBuffer());
  done({
    status: response.status,
    type: response.headers.get('content-type'),
    disposition: response.headers.get('content-disposition'),
    nosniff: response.headers.get('x-content-type-options'),
    cache: response.headers.get('cache-control'),
    hex: Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(''),
  });
}).catch((error) => done({error: String(error)}));
"""


def _wait_for(browser, css: str):
    return WebDriverWait(browser, WAIT_SECONDS).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def _click_button(browser, value: str) -> None:
    submit_and_wait(
        browser, browser.find_element(By.CSS_SELECTOR, f"#partner-tools input[type=submit][value^='{value}']")
    )


def _confirm(browser, shot, step: str, label: str) -> str:
    """On a confirmation page: screenshot it, return its text, click its "yes"."""
    page = _wait_for(browser, "#confirm-action")
    text = page.text
    shot(step)
    submit_and_wait(
        browser, browser.find_element(By.CSS_SELECTOR, f"#confirm-action input[type=submit][value='{label}']")
    )
    return text


def test_partner_baa_allowlist_and_keys(browser, live_server, staff_login, shot, settings, tmp_path):
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private-media"
    document = tmp_path / "signed-baa.pdf"
    document.write_bytes(PDF)
    staff = staff_login()

    # 1. New partner: a BAA and an allowlist with IPv6 and two malformed entries.
    browser.get(f"{live_server.url}/admin/integration/integrationpartner/add/")
    browser.find_element(By.NAME, "name").send_keys("SuperTool")
    browser.find_element(By.NAME, "baa_signed_at").send_keys("2026-01-15")
    browser.find_element(By.NAME, "baa_signer").send_keys("Pat Partner")
    browser.find_element(By.NAME, "baa_document").send_keys(str(document))
    allowlist = browser.find_element(By.NAME, "allowed_ips")
    allowlist.send_keys("2001:db8::/32\n10.0.0.1/8\n203.0.113.0/24\n2001:db8::zz")
    shot("new-partner-form")
    submit_and_wait(browser, browser.find_element(By.NAME, "_continue"))
    errors = _wait_for(browser, ".field-allowed_ips .errorlist").text
    shot("allowlist-errors-at-once")
    assert "10.0.0.1/8" in errors and "did you mean 10.0.0.0/8?" in errors
    assert "2001:db8::zz" in errors and "2001:db8::/32" not in errors
    assert not IntegrationPartner.objects.exists()

    # 2. Fixed: the partner is saved with its IPv6 network and the PDF in private storage.
    allowlist = browser.find_element(By.NAME, "allowed_ips")
    allowlist.clear()
    allowlist.send_keys("2001:db8::/32\n10.0.0.0/8\n203.0.113.0/24")
    browser.find_element(By.NAME, "baa_document").send_keys(str(document))  # a browser never re-sends a file
    submit_and_wait(browser, browser.find_element(By.NAME, "_continue"))
    link = _wait_for(browser, "a.baa-download")
    shot("partner-saved-with-baa")
    partner = IntegrationPartner.objects.get(name="SuperTool")
    assert partner.allowed_ips == ["2001:db8::/32", "10.0.0.0/8", "203.0.113.0/24"]
    assert (settings.PRIVATE_MEDIA_ROOT / partner.baa_document.name).read_bytes() == PDF

    # 3. Staff download through the "Currently:" link's view, with the browser's own session.
    url = link.get_attribute("href")
    fetched = browser.execute_async_script(FETCH_JS, url)
    assert fetched.get("status") == 200, fetched
    assert bytes.fromhex(fetched["hex"]) == PDF
    assert fetched["type"] == "application/pdf" and fetched["disposition"].startswith("attachment;")
    assert fetched["nosniff"] == "nosniff" and "no-store" in fetched["cache"]
    event = AuditEvent.objects.get(action="integration.baa_document_downloaded")
    assert event.actor_id == str(staff.pk) and event.metadata["baa_document_sha256"] == hashlib.sha256(PDF).hexdigest()
    anonymous = httpx.get(url, follow_redirects=False, timeout=10)
    assert anonymous.status_code == 302 and "/login/" in anonymous.headers["location"]
    shot("baa-downloaded")

    # 4. Create an API key from the partner's page: shown once.
    change_page = browser.current_url
    _click_button(browser, "Create API key")
    shown = _wait_for(browser, "ul.messagelist").text
    shot("key-created-shown-once")
    assert "lr_int_" in shown and "sk_live_" in shown
    credential = PartnerCredential.objects.get(partner=partner)

    # 5. Rotate the secret: confirmation first, then the new secret once.
    browser.get(change_page)
    _click_button(browser, "Rotate secret")
    question = _confirm(browser, shot, "rotate-confirmation", "Yes, rotate the secrets")
    assert credential.key_hint in question and "keeps working until about" in question
    rotated = _wait_for(browser, "ul.messagelist").text
    shot("secret-rotated-shown-once")
    assert "new API secret sk_live_" in rotated and "UTC" in rotated and "+00:00" not in rotated

    # 6. Revoke all keys: confirmation says what stops, then the key is revoked.
    browser.get(change_page)
    _click_button(browser, "Revoke all keys")
    question = _confirm(browser, shot, "revoke-confirmation", "Yes, revoke all keys")
    assert credential.key_hint in question and "refused" in question
    message = _wait_for(browser, "ul.messagelist").text
    shot("keys-revoked")
    assert "Revoked 1 API key(s)" in message
    assert PartnerCredential.objects.get(pk=credential.pk).revoked_at is not None
    assert browser.current_url == change_page
