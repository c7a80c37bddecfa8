"""Every request under an API's paths writes exactly one access-log row, with one INSERT; domain audit events
are written only inside a transaction and carry the request id."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from audit.models import AccessLog, AuditEvent
from audit.services import audit_event_record
from core.actors import Actor
from core.api import ApiView
from core.apis import CAREOS
from core.context import note_subjects, request_id_var, set_actor, set_organization


class _TouchesSubjects(ApiView):
    """A stand-in domain view: tells the access log its actor, organization and the subjects it read."""

    api_family = CAREOS
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        set_actor(request, Actor.partner_platform("acme"))
        set_organization(request, "org_abc")
        note_subjects(request, "lead", ["lead_1", "lead_2"])
        note_subjects(request, "client", ["c-9"])
        return Response({"ok": True})


# Installed only by the test that asks for it (pytest.mark.urls(__name__)).
urlpatterns = [path("api/leads/probe-subjects", _TouchesSubjects.as_view()), path("", include("config.urls"))]

PASSWORD = "correct-horse-battery-staple-42"


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user(username="auditor", password=PASSWORD)


def _only_row() -> AccessLog:
    rows = list(AccessLog.objects.all())
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.django_db
def test_unknown_api_path_writes_one_anonymous_row(client):
    response = client.get(
        "/api/v1/no-such-thing?x=1", HTTP_USER_AGENT="audit-test/1.0", HTTP_X_REQUEST_ID="req-abcdef-123456"
    )
    assert response.status_code == 404

    row = _only_row()
    assert row.api == "mark"
    assert row.method == "GET"
    assert row.path == "/api/v1/no-such-thing"  # the query string is not logged
    assert row.status_code == 404
    assert row.ip == "127.0.0.1"
    assert row.user_agent == "audit-test/1.0"
    assert response["X-Request-ID"] == "req-abcdef-123456"
    assert row.request_id == "req-abcdef-123456"
    assert (row.actor_type, row.actor_id) == ("anonymous", "")
    assert row.on_behalf_of == ""
    assert row.organization_id == ""
    assert row.subject_ids == []
    assert row.duration_ms >= 0
    assert row.created_at is not None


@pytest.mark.django_db
def test_generated_request_id_is_the_one_logged(client):
    response = client.post("/api/v1/nothing-here", data={}, content_type="application/json")
    row = _only_row()
    assert len(response["X-Request-ID"]) == 32
    assert row.request_id == response["X-Request-ID"]
    assert (row.method, row.status_code) == ("POST", 404)


def test_token_request_records_the_user_as_actor(client, user):
    response = client.post(
        "/api/v1/auth/token", data={"username": "auditor", "password": PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["access_token"]

    row = _only_row()
    assert (row.actor_type, row.actor_id) == ("user", str(user.pk))
    assert (row.api, row.method, row.path, row.status_code) == ("mark", "POST", "/api/v1/auth/token", 200)
    assert row.request_id == response["X-Request-ID"]


def test_failed_token_request_is_anonymous(client, user):
    response = client.post(
        "/api/v1/auth/token",
        data={"username": "auditor", "password": "wrong-password-x"},
        content_type="application/json",
    )
    assert response.status_code == 401
    row = _only_row()
    assert (row.actor_type, row.actor_id, row.status_code) == ("anonymous", "", 401)


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/health", "/docs", "/admin/login/"])
def test_non_api_paths_write_no_row(client, url):
    response = client.get(url)
    assert response.status_code < 500
    assert AccessLog.objects.count() == 0


@pytest.mark.django_db
def test_unknown_careos_path_is_logged_as_careos(client):
    response = client.get("/api/leads/does-not-exist")
    assert response.status_code == 404
    row = _only_row()
    assert (row.api, row.status_code, row.path) == ("careos", 404, "/api/leads/does-not-exist")


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_view_reported_actor_organization_and_subjects_are_logged(client):
    response = client.get("/api/leads/probe-subjects")
    assert response.status_code == 200, response.content
    row = _only_row()
    assert (row.actor_type, row.actor_id) == ("partner_platform", "acme")
    assert row.organization_id == "org_abc"
    assert row.subject_ids == ["lead:lead_1", "lead:lead_2", "client:c-9"]
    assert (row.api, row.status_code) == ("careos", 200)


def test_partner_request_records_the_therapist_the_token_acts_for(client, lr_partner, lr_therapist, lr_link):
    response = client.get("/api/integration/clients", **lr_partner.headers(lr_therapist))
    assert response.status_code == 200, response.content
    row = _only_row()
    assert (row.actor_type, row.actor_id) == ("integration_partner", str(lr_partner.partner.pk))
    assert row.on_behalf_of == f"therapist:{lr_therapist.pk}"
    assert AccessLog.objects.filter(on_behalf_of=f"therapist:{lr_therapist.pk}").count() == 1


def test_refused_partner_request_still_names_the_therapist_it_claimed(client, lr_partner, lr_therapist):
    from integration.models import Therapist

    Therapist.objects.filter(pk=lr_therapist.pk).update(is_active=False)
    response = client.get("/api/integration/clients", **lr_partner.headers(lr_therapist))
    assert response.status_code == 404, response.content
    row = _only_row()
    assert (row.actor_type, row.on_behalf_of) == ("integration_partner", f"therapist:{lr_therapist.pk}")


def test_token_exchange_records_the_therapist_the_token_is_for(client, lr_partner, lr_therapist):
    response = client.post(
        "/api/integration/auth",
        data={"apiKey": lr_partner.api_key, "apiSecret": lr_partner.api_secret, "therapistId": str(lr_therapist.pk)},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    row = _only_row()
    assert (row.actor_type, row.actor_id) == ("integration_partner", str(lr_partner.partner.pk))
    assert row.on_behalf_of == f"therapist:{lr_therapist.pk}"


def test_app_client_acts_for_nobody_else(client, lr_link):
    from tests.integration.factories import CLIENT_PASSWORD

    token = client.post(
        "/api/v1/auth/token",
        data={"username": lr_link.client.user.username, "password": CLIENT_PASSWORD},
        content_type="application/json",
    ).json()["access_token"]
    before = set(AccessLog.objects.values_list("pk", flat=True))
    response = client.get("/api/app/therapist-links", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    [row] = AccessLog.objects.exclude(pk__in=before)
    assert (row.actor_type, row.on_behalf_of) == ("client", "")


@pytest.mark.django_db
def test_access_log_write_is_a_single_insert(client):
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/unknown-path-for-query-count")
    assert response.status_code == 404

    statements = [query["sql"] for query in queries.captured_queries]
    audit_statements = [sql for sql in statements if "audit_" in sql]
    assert len(audit_statements) == 1, statements
    assert audit_statements[0].lstrip().upper().startswith('INSERT INTO "AUDIT_ACCESSLOG"')
    assert not [sql for sql in audit_statements if sql.lstrip().upper().startswith("SELECT")]
    assert len(statements) == 1, statements  # nothing else on this path touches the database either
    assert AccessLog.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_audit_event_record_refuses_to_run_outside_a_transaction():
    assert not connection.in_atomic_block
    with pytest.raises(RuntimeError, match="inside the service's transaction"):
        audit_event_record(action="test.outside", actor=Actor.system("test"))
    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_audit_event_record_inside_a_transaction_writes_with_the_request_id():
    token = request_id_var.set("req-from-context-0001")
    try:
        with transaction.atomic():
            event = audit_event_record(
                action="consent.revoked",
                actor=Actor("user", 7),
                organization_id="org_x",
                subject_type="client",
                subject_id="c-1",
                metadata={"reason_code": "patient_request"},
            )
    finally:
        request_id_var.reset(token)

    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.action == "consent.revoked"
    assert (stored.actor_type, stored.actor_id) == ("user", "7")
    assert (stored.organization_id, stored.subject_type, stored.subject_id) == ("org_x", "client", "c-1")
    assert stored.metadata == {"reason_code": "patient_request"}
    assert stored.request_id == "req-from-context-0001"


@pytest.mark.django_db(transaction=True)
def test_audit_event_rolls_back_with_its_transaction():
    with pytest.raises(ZeroDivisionError):
        with transaction.atomic():
            audit_event_record(action="test.rolled_back", actor=Actor.system("test"))
            1 / 0  # noqa: B018
    assert not AuditEvent.objects.filter(action="test.rolled_back").exists()
    with transaction.atomic():
        event = audit_event_record(action="test.no_request", actor=Actor.system("test"))
    assert AuditEvent.objects.get(pk=event.pk).request_id == ""
