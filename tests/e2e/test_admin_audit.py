"""Issue 14, audit, walked in Chromium: rows for every actor type exist first; staff filter by each actor
type (each finds its rows, the partner shown by name), search a partner's name, narrow to a date range,
then "Export CSV" downloads exactly the rows on screen's filters (all of them), the refused request with
its reason and IP. Screenshots of each step under .local/screenshots/."""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime

import pytest
from django.db import transaction
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from audit.services import access_log_record, audit_event_record
from core.actors import Actor, ActorType
from tests.e2e.conftest import WAIT_SECONDS
from tests.integration.factories import make_client, make_partner, make_therapist
from tests.leads.factories import make_platform

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LOGS = "/admin/audit/accesslog/"


def _day(day: int) -> datetime:
    return datetime(2026, 11, day, 12, 0, 5, tzinfo=UTC)


def _access(actor: Actor, path: str, day: int, **fields) -> None:
    values = {"api": "loverescue", "method": "GET", "status_code": 200, "ip": "203.0.113.9"}
    access_log_record(actor_type=actor.type, actor_id=actor.id, path=path, created_at=_day(day), **{**values, **fields})


def _world(staff) -> dict[str, str]:
    """One access row per actor type (path /api/e2e/<type>), and Acme's rows across November."""
    therapist = make_therapist()
    acme = make_partner("Acme Integrations", therapists=[therapist]).partner
    make_platform("businessos", name="BusinessOS")
    app_client = make_client("Jane", "Doe")
    actors = {
        ActorType.USER: Actor.user(staff),
        ActorType.CLIENT: Actor.client(app_client.pk),
        ActorType.THERAPIST: Actor.therapist(therapist.pk),
        ActorType.INTEGRATION_PARTNER: Actor.integration_partner(acme.pk),
        ActorType.PARTNER_PLATFORM: Actor.partner_platform("businessos"),
        ActorType.SYSTEM: Actor.system("beat"),
        ActorType.ANONYMOUS: Actor.anonymous(),
    }
    for actor in actors.values():
        _access(actor, f"/api/e2e/{actor.type}", 5)
    partner = actors[ActorType.INTEGRATION_PARTNER]
    _access(partner, "/api/acme/early", 8)
    _access(partner, "/api/acme/inside-1", 12)
    _access(partner, "/api/acme/inside-2", 14)
    _access(partner, "/api/acme/refused", 15, status_code=403, reason="IP_BLOCKED", ip="198.51.100.1")
    _access(partner, "/api/acme/late", 25)
    with transaction.atomic():
        audit_event_record(action="e2e.created", actor=Actor.system("tests"))
    return {"partner_name": acme.name}


def _paths(browser) -> list[str]:
    cells = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody td.field-method_and_path")
    return [cell.text.splitlines()[0].removeprefix("GET ") for cell in cells]


def _wait_for_list(browser) -> None:
    WebDriverWait(browser, WAIT_SECONDS).until(ec.presence_of_element_located((By.ID, "changelist")))


def _downloaded_csv(folder, timeout: float = WAIT_SECONDS) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = list(folder.glob("accesslog-*.csv"))
        if done and not list(folder.glob("*.crdownload")):
            with done[0].open(newline="") as handle:
                return list(csv.DictReader(handle))
        time.sleep(0.2)
    raise AssertionError(f"no CSV downloaded into {folder}")


def test_audit_filters_search_date_range_and_filtered_export(browser, live_server, staff_login, shot, tmp_path):
    staff = staff_login()
    world = _world(staff)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})

    browser.get(f"{live_server.url}{LOGS}")
    _wait_for_list(browser)
    shot("access-log")
    # Every column on screen at 1,400 px (the nav sidebar open): the table needs no horizontal scroll.
    widths = browser.execute_script(
        "const results = document.querySelector('#changelist .results');"
        "return [document.getElementById('result_list').scrollWidth, results.clientWidth];"
    )
    assert widths[0] <= widths[1], widths

    # Each actor type of the one vocabulary, chosen in the sidebar, finds its row.
    for value, label in ActorType.choices:
        browser.get(f"{live_server.url}{LOGS}")
        link = browser.find_element(
            By.XPATH, f"//details[@data-filter-title='actor type']//a[normalize-space()='{label}']"
        )
        link.click()
        WebDriverWait(browser, WAIT_SECONDS).until(ec.url_contains(f"actor_type={value}"))
        paths = _paths(browser)
        shot(f"actor-type-{value}")
        assert f"/api/e2e/{value}" in paths, (value, paths)
        assert all(path.startswith(("/api/e2e/", "/api/acme/")) for path in paths)
        if value == ActorType.INTEGRATION_PARTNER:
            assert world["partner_name"] in browser.find_element(By.ID, "result_list").text
            assert len(paths) == 6  # its e2e row and Acme's five
        else:
            assert paths == [f"/api/e2e/{value}"], (value, paths)

    # A partner's name in the search box finds its rows (actor ids resolved from the name).
    browser.get(f"{live_server.url}{LOGS}")
    search = browser.find_element(By.ID, "searchbar")
    search.send_keys(world["partner_name"], Keys.ENTER)
    WebDriverWait(browser, WAIT_SECONDS).until(ec.url_contains("q="))
    shot("search-partner-name")
    assert sorted(_paths(browser)) == sorted(
        ["/api/e2e/integration_partner", "/api/acme/early", "/api/acme/inside-1", "/api/acme/inside-2"]
        + ["/api/acme/refused", "/api/acme/late"]
    )

    # The date range narrows the search's rows (from/to inclusive); the search is kept.
    browser.execute_script(
        "document.getElementById('created-from').value = '2026-11-12';"
        "document.getElementById('created-to').value = '2026-11-15';"
        "document.getElementById('created-from').scrollIntoView({block: 'center'});"
    )
    shot("date-range-chosen")
    browser.find_element(By.ID, "date-range-apply").click()
    WebDriverWait(browser, WAIT_SECONDS).until(ec.url_contains("created_to=2026-11-15"))
    shot("date-range-applied")
    assert "q=Acme" in browser.current_url
    expected = {"/api/acme/inside-1", "/api/acme/inside-2", "/api/acme/refused"}
    assert set(_paths(browser)) == expected
    refused_row = browser.find_element(
        By.XPATH, "//tr[td[@class='field-method_and_path' and starts-with(normalize-space(), 'GET /api/acme/refused')]]"
    )
    assert "IP_BLOCKED" in refused_row.text and "198.51.100.1" in refused_row.text

    # Export CSV: exactly the filtered rows, with the refusal's reason and IP.
    browser.find_element(By.ID, "export-filtered").click()
    rows = _downloaded_csv(downloads)
    shot("exported")
    assert {row["path"] for row in rows} == expected
    assert len(rows) == len(expected)
    refused = next(row for row in rows if row["path"] == "/api/acme/refused")
    assert (refused["reason"], refused["ip"], refused["status_code"]) == ("IP_BLOCKED", "198.51.100.1", "403")

    # The export is on the audit trail, with the filters it used.
    browser.get(f"{live_server.url}/admin/audit/auditevent/?action=audit.export")
    _wait_for_list(browser)
    shot("export-audited")
    assert "audit.export" in browser.find_element(By.ID, "result_list").text
