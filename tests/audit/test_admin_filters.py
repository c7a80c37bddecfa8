"""Issue 14, audit: search by partner name, subject id and request id; a from/to date range on both
admins; "Export CSV" exports exactly what the filters and search select (all of it, not one page),
audited; timestamps read as admin_datetime."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from html import unescape as html_unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client

from audit.models import AccessLog, AuditEvent
from audit.services import audit_event_record
from core.actors import Actor
from core.admin import admin_datetime
from tests.integration.factories import make_partner
from tests.leads.factories import make_platform

pytestmark = pytest.mark.django_db

LOGS = "/admin/audit/accesslog/"
EVENTS = "/admin/audit/auditevent/"


@pytest.fixture
def staff():
    return get_user_model().objects.create_superuser(username="auditor", password="x-unused-password-1")


@pytest.fixture
def admin_client(staff):
    browser = Client()
    browser.force_login(staff)
    return browser


def _day(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 11, day, hour, 0, 5, tzinfo=UTC)


def _log(path: str, **fields) -> AccessLog:
    values = {"created_at": _day(20), "api": "loverescue", "method": "GET", "status_code": 200}
    return AccessLog.objects.create(path=path, **{**values, **fields})


def _event(action: str, **fields) -> AuditEvent:
    values = {"created_at": _day(20), "actor_type": "system", "actor_id": "tests"}
    return AuditEvent.objects.create(action=action, **{**values, **fields})


def _paths(admin_client, **params) -> set[str]:
    response = admin_client.get(LOGS, params)
    assert response.status_code == 200, response
    return {row.path for row in response.context["cl"].queryset}


def _csv(response) -> list[dict]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


# --- Search ----------------------------------------------------------------------------------------------


def test_search_by_partner_or_platform_name_resolves_to_their_rows(admin_client):
    acme = make_partner("Acme Integrations").partner
    other = make_partner("Other Tools").partner
    platform = make_platform("businessos", name="BusinessOS").platform
    _log("/api/acme", actor_type="integration_partner", actor_id=str(acme.pk))
    _log("/api/other", actor_type="integration_partner", actor_id=str(other.pk))
    _log("/api/bizos", api="careos", actor_type="partner_platform", actor_id=platform.slug)
    _log("/api/anon", actor_type="anonymous")

    assert _paths(admin_client, q="Acme Integrations") == {"/api/acme"}  # a name with a space: one term
    assert _paths(admin_client, q="acme") == {"/api/acme"}  # part of it, any case
    assert _paths(admin_client, q="businessOS") == {"/api/bizos"}
    assert _paths(admin_client, q="nobody-has-this-name") == set()
    # With a filter, the name search stays inside it.
    assert _paths(admin_client, q="acme", status="4xx") == set()


def test_search_by_staff_username_subject_id_and_request_id(admin_client, staff):
    _log("/api/staff", actor_type="user", actor_id=str(staff.pk))
    _log("/api/subject", subject_ids=["client:6f1c2d3e-aaaa-bbbb-cccc-000000000001"], request_id="req-abcdef-0001")
    _log("/api/none")

    assert _paths(admin_client, q="auditor") == {"/api/staff"}
    assert _paths(admin_client, q="6f1c2d3e-aaaa") == {"/api/subject"}
    assert _paths(admin_client, q="req-abcdef-0001") == {"/api/subject"}


def test_audit_events_search_by_partner_name_subject_and_request_id(admin_client):
    acme = make_partner("Acme Integrations").partner
    _event("partner.thing", actor_type="integration_partner", actor_id=str(acme.pk), subject_id="s-1")
    _event("other.thing", subject_id="s-2", request_id="req-event-000002")

    def actions(term) -> set[str]:
        response = admin_client.get(EVENTS, {"q": term})
        return {row.action for row in response.context["cl"].queryset} & {"partner.thing", "other.thing"}

    assert actions("Acme") == {"partner.thing"}
    assert actions("s-2") == {"other.thing"}
    assert actions("req-event-000002") == {"other.thing"}


# --- Date range ------------------------------------------------------------------------------------------


def test_date_range_is_inclusive_of_both_days(admin_client):
    _log("/api/before", created_at=_day(9, 23))
    _log("/api/first-day", created_at=_day(10, 0))
    _log("/api/last-day", created_at=_day(12, 23))
    _log("/api/after", created_at=_day(13, 0))

    assert _paths(admin_client, created_from="2026-11-10", created_to="2026-11-12") == {
        "/api/first-day",
        "/api/last-day",
    }
    assert _paths(admin_client, created_from="2026-11-12") == {"/api/last-day", "/api/after"}
    assert _paths(admin_client, created_to="2026-11-09") == {"/api/before"}


def test_date_range_on_audit_events(admin_client):
    _event("old.thing", created_at=_day(1))
    _event("new.thing", created_at=_day(25))
    response = admin_client.get(EVENTS, {"created_from": "2026-11-20", "created_to": "2026-11-26"})
    assert {row.action for row in response.context["cl"].queryset} == {"new.thing"}


def test_date_range_form_keeps_the_other_filters_and_a_bad_date_is_refused(admin_client):
    html = admin_client.get(LOGS, {"api": "careos", "q": "x", "created_from": "2026-11-10"}).content.decode()
    assert 'type="date"' in html and 'value="2026-11-10"' in html
    assert '<input type="hidden" name="api" value="careos">' in html
    assert '<input type="hidden" name="q" value="x">' in html

    refused = admin_client.get(LOGS, {"created_from": "2026-13-45"})
    assert refused.status_code == 302 and "e=1" in refused["Location"]  # never "all dates"


# --- Export of the filtered view -------------------------------------------------------------------------


def test_export_button_exports_all_rows_the_filters_and_search_select(admin_client, staff):
    acme = make_partner("Acme Integrations").partner
    for n in range(5):
        _log(f"/api/acme/{n}", actor_type="integration_partner", actor_id=str(acme.pk), created_at=_day(10 + n))
    _log(
        "/api/acme/refused",
        actor_type="integration_partner",
        actor_id=str(acme.pk),
        status_code=403,
        reason="IP_BLOCKED",
        ip="198.51.100.1",
    )
    _log("/api/acme/too-early", actor_type="integration_partner", actor_id=str(acme.pk), created_at=_day(1))
    _log("/api/anonymous/1", created_at=_day(11))

    page = admin_client.get(LOGS, {"q": "Acme", "created_from": "2026-11-10", "created_to": "2026-11-30"})
    html = page.content.decode()
    assert 'id="export-filtered"' in html
    [action] = re.findall(r'<form method="post" action="([^"]+)" id="export-filtered-form">', html)
    export_url = html_unescape(action)
    assert export_url.startswith(f"{LOGS}export/?")
    assert parse_qs(urlsplit(export_url).query) == {
        "q": ["Acme"],
        "created_from": ["2026-11-10"],
        "created_to": ["2026-11-30"],
    }

    with pytest.MonkeyPatch.context() as patch:  # a page of 2 rows: the export is not limited to the page
        from audit.admin import AccessLogAdmin

        patch.setattr(AccessLogAdmin, "list_per_page", 2)
        rows = _csv(admin_client.post(export_url))

    assert sorted(row["path"] for row in rows) == sorted([*(f"/api/acme/{n}" for n in range(5)), "/api/acme/refused"])
    refused = next(row for row in rows if row["path"] == "/api/acme/refused")
    assert (refused["reason"], refused["ip"], refused["status_code"]) == ("IP_BLOCKED", "198.51.100.1", "403")
    event = AuditEvent.objects.get(action="audit.export")
    assert (event.actor_type, event.actor_id) == ("user", str(staff.pk))
    assert event.metadata == {
        "model": "audit.accesslog",
        "rows": 6,
        "filters": {"q": ["Acme"], "created_from": ["2026-11-10"], "created_to": ["2026-11-30"]},
        "all_matching": True,
    }


def test_export_button_on_audit_events_and_only_by_post_with_view_permission(admin_client):
    _event("wanted.thing", created_at=_day(20))
    _event("other.thing", created_at=_day(2))
    rows = _csv(admin_client.post(f"{EVENTS}export/?created_from=2026-11-15"))
    assert [row["action"] for row in rows] == ["wanted.thing"]

    assert admin_client.get(f"{EVENTS}export/").status_code == 405
    nobody = get_user_model().objects.create_user(username="no-perms", password="x-unused-password-2", is_staff=True)
    other = Client()
    other.force_login(nobody)
    assert other.post(f"{LOGS}export/").status_code == 403
    assert AuditEvent.objects.filter(action="audit.export").count() == 1


def test_export_with_a_bad_filter_exports_nothing(admin_client):
    _log("/api/x")
    response = admin_client.post(f"{LOGS}export/?created_to=not-a-date")
    assert response.status_code == 302
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_export_is_not_offered_a_csrf_free_get_and_needs_the_token(staff):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff)
    assert browser.post(f"{LOGS}export/").status_code == 403


# --- Timestamps ------------------------------------------------------------------------------------------


def test_timestamps_read_as_admin_datetime_in_list_and_detail(admin_client):
    row = _log("/api/when", created_at=datetime(2026, 11, 30, 14, 17, 29, 468527, tzinfo=UTC))
    shown = admin_datetime(row.created_at)
    assert shown == "2026-11-30 14:17:29 UTC"
    assert "2026-11-30<br>14:17:29 UTC" in admin_client.get(LOGS).content.decode()  # list: date, then time
    detail = admin_client.get(f"{LOGS}{row.pk}/change/").content.decode()
    assert shown in detail and ".468527" not in detail


def test_event_for_a_named_actor_in_detail(admin_client):
    platform = make_platform("businessos", name="BusinessOS").platform
    with transaction.atomic():
        event = audit_event_record(action="lead.created", actor=Actor.partner_platform(platform.slug))
    assert "BusinessOS" in admin_client.get(f"{EVENTS}{event.pk}/change/").content.decode()
