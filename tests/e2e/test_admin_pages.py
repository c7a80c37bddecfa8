"""A walk of every admin page an operator can open (issue 14): as a superuser, on a live server holding the
demo data (`seed_demo`), every registered model's list and the change page of its first row. Each page must
render without a server error, log no SEVERE console entry, ask nothing of another origin, and fit a
1,400 px window without a horizontal scrollbar. Every problem is collected, then reported at once; a
screenshot of each page lands under .local/screenshots/ (not committed).
"""

from __future__ import annotations

import io
import json

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import NoReverseMatch, reverse
from selenium.webdriver.common.by import By

from tests.e2e.conftest import console_errors

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The page itself, and any box that scrolls sideways inside it (the admin wraps a list's table in
# `.results { overflow-x: auto }`: columns off screen show there, not on the page).
OVERFLOW_JS = """
const problems = [];
const root = document.documentElement;
if (root.scrollWidth > window.innerWidth) problems.push(`page ${root.scrollWidth} px > ${window.innerWidth} px`);
// Boxes only (a multiple <select> scrolling its long option names is the widget, not the layout).
for (const el of document.querySelectorAll('#content div, #content fieldset, #content pre, #content table')) {
  if (el.scrollWidth <= el.clientWidth + 1) continue;
  const overflowX = getComputedStyle(el).overflowX;
  if (overflowX === 'auto' || overflowX === 'scroll') {
    const name = el.id ? `#${el.id}` : `${el.tagName.toLowerCase()}.${[...el.classList].join('.')}`;
    problems.push(`${name} scrolls sideways (${el.scrollWidth} px in ${el.clientWidth} px)`);
  }
}
return problems;
"""


def _network(driver) -> tuple[list[str], list[tuple[str, int]]]:
    """Since the last call (Chrome's performance log): every URL the browser asked for, and the HTTP status
    of each page (document) it loaded."""
    urls, pages = [], []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(params["request"]["url"])
        elif message.get("method") == "Network.responseReceived" and params.get("type") == "Document":
            pages.append((params["response"]["url"], params["response"]["status"]))
    return urls, pages


def _rows_the_demo_lacks(monkeypatch) -> None:
    """A row for the lists the demo leaves empty, so their columns and change pages are walked too."""
    from axes.models import AccessAttempt
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.models import ExternalIdentity, Organization, User
    from core.actors import Actor
    from leads.models import PartnerPlatform
    from sync import services as sync_services
    from sync.models import ClinikoAppointmentType, ClinikoPractitioner, SyncRun
    from tests.leads.factories import make_payment
    from tests.servers import StaticResolver
    from tests.webhooks.factories import publish, register
    from webhooks import services as webhook_services

    call_command("setup_periodic_tasks", stdout=io.StringIO())
    staff = User.objects.get(username="admin")
    organization = Organization.objects.order_by("pk").first()
    ExternalIdentity.objects.create(user=staff, issuer="https://clerk.example.com", subject="user_2abcDEFghi")
    TOTPDevice.objects.create(user=staff, name="Phone", confirmed=True)
    AccessAttempt.objects.create(
        username="someone", ip_address="203.0.113.9", user_agent="Firefox", failures_since_start=2,
        get_data="", post_data="", http_accept="", path_info="/admin/login/",
    )  # fmt: skip
    actor = Actor.system("test")
    sync_services.cliniko_connect(organization=organization, api_key="demo-key-au4", base_url="", actor=actor)
    SyncRun.objects.create(organization=organization, status=SyncRun.Status.FAILED, errors=[{"code": "AUTH"}])
    ClinikoAppointmentType.objects.create(organization=organization, external_id="1", name="Physiotherapy")
    ClinikoPractitioner.objects.create(organization=organization, external_id="1", name="Dr Jane Smith")
    monkeypatch.setattr(webhook_services, "RESOLVER", StaticResolver({"partner.example.com": "93.184.216.34"}))
    monkeypatch.setattr(webhook_services, "_enqueue", lambda *args, **kwargs: None)  # never sent
    endpoint, _secret = register("https://partner.example.com/hooks")
    publish(endpoint)
    platform = PartnerPlatform.objects.order_by("pk").first()
    if platform is not None:
        make_payment(platform)


def _admin_pages(site) -> list[tuple[str, str]]:
    """(label, path) for each registered model's list and its first row's change page, in a stable order."""
    pages = []
    for model in sorted(site._registry, key=lambda model: model._meta.label):
        opts = model._meta
        try:
            changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        except NoReverseMatch:  # registered without a list page
            continue
        pages.append((f"{opts.label} list", changelist))
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk])
            pages.append((f"{opts.label} change", change))
    return pages


def test_every_admin_page_renders_cleanly_at_1400px(live_server, browser, staff_login, shot, monkeypatch):
    call_command("seed_demo", "--json", stdout=io.StringIO(), stderr=io.StringIO())
    _rows_the_demo_lacks(monkeypatch)
    staff_login()
    _network(browser), console_errors(browser)  # forget the login page's entries

    pages = _admin_pages(admin.site)
    assert len(pages) > 40  # every app's admin is registered (a broken import would hide them)
    problems: list[str] = []
    requests_seen = 0
    for label, path in pages:
        browser.get(f"{live_server.url}{path}")
        shot(label)
        # The page's rendered text (innerText): WebDriver's element text (its visible-text atom, which weighs
        # each node's visibility) cost ~0.25 s a page on the long admin pages, a quarter of the walk.
        body = browser.execute_script("return document.body.innerText")
        if not browser.find_elements(By.ID, "user-tools") or "Server Error" in body:
            problems.append(f"{label} ({path}): not rendered as an admin page: {body[:120]!r}")
            continue
        for entry in console_errors(browser):
            problems.append(f"{label} ({path}): console error: {entry['message'][:200]}")
        requests, documents = _network(browser)
        requests_seen += len(requests)
        for url, status in documents:
            if status >= 500:
                problems.append(f"{label} ({path}): HTTP {status} for {url}")
        foreign = sorted({url for url in requests if not url.startswith((live_server.url, "data:"))})
        if foreign:
            problems.append(f"{label} ({path}): requests outside the live server: {foreign}")
        for overflow in browser.execute_script(OVERFLOW_JS):
            problems.append(f"{label} ({path}): too wide at 1,400 px: {overflow}")

    assert requests_seen >= len(pages)  # the network log works: each page was a request at least
    assert problems == [], "\n" + "\n".join(problems)
