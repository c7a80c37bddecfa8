"""The audit admin is read-only for everyone, and its CSV export streams flat rows, neutralizes spreadsheet
formulas and is itself an audit event."""

from __future__ import annotations

import csv
import io

import pytest
from dateutil.relativedelta import relativedelta
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.admin import csv_safe
from audit.models import AccessLog, AuditEvent
from core.time import utc_now

pytestmark = pytest.mark.django_db

LOGS = "/admin/audit/accesslog/"
EVENTS = "/admin/audit/auditevent/"


@pytest.fixture
def superuser():
    return get_user_model().objects.create_superuser(username="root", password="x-unused-password-1")


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def _log(**fields) -> AccessLog:
    values = {
        "created_at": utc_now(),
        "api": "mark",
        "actor_type": "user",
        "actor_id": "17",
        "organization_id": "org_one",
        "method": "GET",
        "path": "/api/v1/patients/pat_1",
        "subject_ids": ["patient:pat_1"],
        "status_code": 200,
        "ip": "10.0.0.1",
        "user_agent": "client/1.0",
        "request_id": "req-0000000001",
    }
    return AccessLog.objects.create(**{**values, **fields})


def _event(**fields) -> AuditEvent:
    values = {"created_at": utc_now(), "action": "consent.revoked", "actor_type": "user", "actor_id": "17"}
    return AuditEvent.objects.create(**{**values, **fields})


def _export(client, url, ids=(), select_across=False):
    data = {"action": "export_csv", "index": 0, "select_across": "1" if select_across else "0"}
    data["_selected_action"] = [str(pk) for pk in ids] or ["0"]
    return client.post(url, data)


def _rows(response) -> list[list[str]]:
    assert response.streaming
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


# --- Changelists, filters, search -------------------------------------------------------------------


def test_access_log_changelist_renders_with_filters(admin_client):
    _log(api="careos", path="/api/leads/lead_1", status_code=404)
    _log(api="mark", path="/api/v1/patients/pat_2")

    response = admin_client.get(LOGS)
    assert response.status_code == 200
    html = response.content.decode()
    for title in ("By API", "By actor type", "By status", "By date range", "By created at"):
        assert title in html
    assert "/api/leads/lead_1" in html and "/api/v1/patients/pat_2" in html
    assert "Add access log" not in html

    filtered = admin_client.get(LOGS, {"api": "careos", "status": "4xx"}).content.decode()
    assert "/api/leads/lead_1" in filtered
    assert "/api/v1/patients/pat_2" not in filtered


def test_access_log_search_by_subject_actor_and_request_id(admin_client):
    _log(
        subject_ids=["client:11111111-aaaa"],
        actor_id="501",
        request_id="req-first-000001",
        path="/api/v1/one",
        on_behalf_of="therapist:t-501",
    )
    _log(subject_ids=["client:22222222-bbbb"], actor_id="502", request_id="req-second-00002", path="/api/v1/two")

    for term in ("11111111-aaaa", "501", "req-first-000001", "/api/v1/one", "therapist:t-501"):
        html = admin_client.get(LOGS, {"q": term}).content.decode()
        assert "/api/v1/one" in html, term
        assert "/api/v1/two" not in html, term


def test_audit_event_changelist_renders_with_filters(admin_client):
    _event(action="consent.revoked", subject_type="client", subject_id="c-1")
    _event(action="partner.suspended", subject_type="partner", subject_id="p-9")

    response = admin_client.get(EVENTS)
    assert response.status_code == 200
    html = response.content.decode()
    for title in ("By action", "By actor type", "By date range", "By created at"):
        assert title in html
    assert "client:c-1" in html and "partner:p-9" in html

    filtered = admin_client.get(EVENTS, {"action": "partner.suspended"}).content.decode()
    assert "partner:p-9" in filtered and "client:c-1" not in filtered
    searched = admin_client.get(EVENTS, {"q": "c-1"}).content.decode()
    assert "client:c-1" in searched and "partner:p-9" not in searched


def test_changelist_queries_do_not_grow_with_rows(admin_client):
    _log()
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(LOGS).status_code == 200
    for n in range(30):
        _log(path=f"/api/v1/patients/pat_{n}")
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get(LOGS).status_code == 200
    assert len(many) == len(few)


# --- Read-only, superusers included --------------------------------------------------------------


@pytest.mark.parametrize("url", [LOGS, EVENTS])
def test_add_is_refused(admin_client, url):
    assert admin_client.get(f"{url}add/").status_code == 403
    assert admin_client.post(f"{url}add/", {"action": "x", "created_at": "2020-01-01"}).status_code == 403


def test_change_view_is_read_only_and_change_is_refused(admin_client):
    row = _log(path="/api/v1/patients/pat_ro")

    view = admin_client.get(f"{LOGS}{row.pk}/change/")
    assert view.status_code == 200
    html = view.content.decode()
    assert "/api/v1/patients/pat_ro" in html
    assert 'class="readonly"' in html
    assert 'name="path"' not in html and 'name="_save"' not in html

    refused = admin_client.post(f"{LOGS}{row.pk}/change/", {"path": "/tampered", "status_code": 200})
    assert refused.status_code == 403
    row.refresh_from_db()
    assert row.path == "/api/v1/patients/pat_ro"


def test_event_change_is_refused(admin_client):
    event = _event()
    assert admin_client.get(f"{EVENTS}{event.pk}/change/").status_code == 200
    assert admin_client.post(f"{EVENTS}{event.pk}/change/", {"action": "x"}).status_code == 403
    event.refresh_from_db()
    assert event.action == "consent.revoked"


@pytest.mark.parametrize("url, make", [(LOGS, _log), (EVENTS, _event)])
def test_delete_is_refused(admin_client, url, make):
    row = make()
    assert admin_client.get(f"{url}{row.pk}/delete/").status_code == 403
    assert admin_client.post(f"{url}{row.pk}/delete/", {"post": "yes"}).status_code == 403

    # The bulk delete action is not offered, so posting it deletes nothing.
    assert "delete_selected" not in admin_client.get(url).content.decode()
    admin_client.post(url, {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})
    assert type(row).objects.filter(pk=row.pk).exists()


def test_staff_without_view_permission_sees_nothing(client):
    staff = get_user_model().objects.create_user(username="staff", password="x-unused-password-2", is_staff=True)
    client.force_login(staff)
    assert client.get(LOGS).status_code == 403

    staff.user_permissions.add(Permission.objects.get(content_type__app_label="audit", codename="view_accesslog"))
    assert client.get(LOGS).status_code == 200
    assert client.get(f"{LOGS}add/").status_code == 403


# --- CSV export --------------------------------------------------------------------------------------


def test_export_selected_rows_as_csv(admin_client, superuser):
    first = _log(
        user_agent='=HYPERLINK("http://evil")',
        actor_id="@SUM(A1)",
        subject_ids=["client:c1", "lead:l2"],
        on_behalf_of="therapist:t-1",
    )
    second = _log(api="careos", path="/api/leads/lead_7", status_code=201, user_agent="+1-555", actor_id="-2+3")
    _log(path="/api/v1/not-selected")

    response = _export(admin_client, LOGS, ids=[first.pk, second.pk])

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="accesslog-')
    rows = _rows(response)
    header = rows[0]
    assert header == [
        "created_at",
        "api",
        "actor_type",
        "actor_id",
        "organization_id",
        "method",
        "path",
        "subject_ids",
        "status_code",
        "ip",
        "user_agent",
        "request_id",
        "duration_ms",
        "on_behalf_of",
        "reason",
    ]
    assert len(rows) == 3  # header + the two selected rows
    by_path = {row[header.index("path")]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert set(by_path) == {"/api/v1/patients/pat_1", "/api/leads/lead_7"}

    formula = by_path["/api/v1/patients/pat_1"]
    assert formula["user_agent"] == '\'=HYPERLINK("http://evil")'
    assert formula["actor_id"] == "'@SUM(A1)"
    assert formula["subject_ids"] == "client:c1 lead:l2"
    assert (formula["on_behalf_of"], by_path["/api/leads/lead_7"]["on_behalf_of"]) == ("therapist:t-1", "")
    assert formula["created_at"].endswith("Z")
    plain = by_path["/api/leads/lead_7"]
    assert plain["user_agent"] == "'+1-555"
    assert plain["actor_id"] == "'-2+3"
    assert (plain["api"], plain["status_code"], plain["organization_id"]) == ("careos", "201", "org_one")


def test_export_records_an_audit_event_with_actor_and_filters(admin_client, superuser):
    _log(api="careos", path="/api/leads/a")
    _log(api="careos", path="/api/leads/b")
    _log(api="mark", path="/api/v1/c")

    response = _export(admin_client, f"{LOGS}?api=careos&q=org_one", select_across=True)

    rows = _rows(response)
    assert sorted(row[6] for row in rows[1:]) == ["/api/leads/a", "/api/leads/b"]  # the filtered rows, all
    event = AuditEvent.objects.get(action="audit.export")
    assert (event.actor_type, event.actor_id) == ("user", str(superuser.pk))
    assert event.metadata == {
        "model": "audit.accesslog",
        "rows": 2,
        "filters": {"api": ["careos"], "q": ["org_one"]},
        "all_matching": True,
    }


def test_export_of_audit_events(admin_client, superuser):
    _event(action="key.rotated", subject_type="api_key", subject_id="k1", metadata={"version": 2})
    _event(action="consent.revoked", subject_id="=cmd")

    response = _export(admin_client, EVENTS, select_across=True)

    rows = _rows(response)
    header = rows[0]
    assert header[:2] == ["created_at", "action"]
    by_action = {row[1]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert set(by_action) == {"key.rotated", "consent.revoked"}  # the export's own event is not in it
    assert by_action["key.rotated"]["metadata"] == '{"version": 2}'
    assert by_action["consent.revoked"]["subject_id"] == "'=cmd"
    event = AuditEvent.objects.get(action="audit.export")
    assert event.metadata["model"] == "audit.auditevent"
    assert event.metadata["rows"] == 2


def test_export_queries_do_not_grow_with_rows(admin_client):
    _log()

    def export_query_count() -> int:
        with CaptureQueriesContext(connection) as queries:
            _rows(_export(admin_client, LOGS, select_across=True))
        return len(queries)

    few = export_query_count()
    for n in range(40):
        _log(path=f"/api/v1/patients/pat_{n}", created_at=utc_now() - relativedelta(days=n))
    assert export_query_count() == few


@pytest.mark.parametrize(
    "value, expected",
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@x", "'@x"),
        ("\tcmd", "'\tcmd"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        (404, 404),
        (None, ""),
        (["=a", "b"], "'=a b"),
    ],
)
def test_csv_safe(value, expected):
    assert csv_safe(value) == expected


def test_actor_type_filter_offers_the_one_vocabulary_and_finds_partner_rows(admin_client):
    from audit.admin import ActorTypeFilter
    from core.actors import ActorType

    assert ActorTypeFilter.lookups(None, None, None) == ActorType.choices
    _log(actor_type=ActorType.INTEGRATION_PARTNER, actor_id="p-1", path="/api/integration/clients")
    _log(actor_type=ActorType.PARTNER_PLATFORM, actor_id="acme", path="/api/leads/ingest")
    _log(actor_type=ActorType.ANONYMOUS, actor_id="", path="/api/leads/ingest")
    for value, path in [("integration_partner", "/api/integration/clients"), ("partner_platform", "/api/leads/ingest")]:
        response = admin_client.get(LOGS, {"actor_type": value})
        assert response.status_code == 200
        assert list(response.context["cl"].queryset.values_list("path", flat=True)) == [path]


def test_status_filter_ignores_unicode_digits(admin_client):
    _log(status_code=404)
    response = admin_client.get(LOGS, {"status": "\u00b2"})  # str.isdigit() is true, int() would raise
    assert response.status_code == 200
