"""Mark webhooks API through HTTP (spec: mark-assistant-api.md, "Webhooks"): POST /api/v1/webhooks as the
spec, GET /api/v1/webhooks (paginated, this clinic's only) and DELETE /api/v1/webhooks/{id}; roles,
cross-organization 404s, the secret never shown, the SSRF guard, and flat query counts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services as accounts_services
from accounts.models import User
from audit.models import AuditEvent
from patients import events
from tests.patients.conftest import ACTOR
from webhooks import services as webhook_services
from webhooks.models import DeliveryStatus, Scheme, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://93.184.216.34/webhooks/mark"  # a public address literal: no DNS needed
SECRET = "your_webhook_secret"
ALL_EVENTS = list(events.EVENT_TYPES)
SPEC_KEYS = {"id", "url", "events", "created_at", "status"}


def _member(username: str, role: str, *organizations) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username + "-123!")
    for organization in organizations:
        accounts_services.membership_set(user=user, organization=organization, role=role, actor=ACTOR)
    return user


def _auth(user: User) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(user)}"}


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr(webhook_services, "_enqueue", lambda delivery_id, countdown=None: None)


@pytest.fixture
def http(frozen_ratelimit_clock):
    return Client(raise_request_exception=False)


@pytest.fixture
def owner(clinic):
    return _member("owner", "owner", clinic)


@pytest.fixture
def viewer(clinic):
    return _member("viewer", "viewer", clinic)


@pytest.fixture
def other_owner(other_clinic):
    return _member("other-owner", "owner", other_clinic)


def _post(http, user, body):
    return http.post("/api/v1/webhooks", body, content_type="application/json", **_auth(user))


def _create(http, user, url=PUBLIC_URL, events_=None) -> dict:
    response = _post(http, user, {"url": url, "secret": SECRET, "events": events_ or ALL_EVENTS})
    assert response.status_code == 201, response.content[:300]
    return response.json()


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"]), body
    return body["error"]


# --- POST /webhooks -------------------------------------------------------------------------------------


def test_configure_webhook_as_the_spec(http, clinic, owner):
    response = _post(http, owner, {"url": PUBLIC_URL, "secret": SECRET, "events": ALL_EVENTS})
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == SPEC_KEYS
    assert body["id"].startswith("wh_")
    assert (body["url"], body["events"], body["status"]) == (PUBLIC_URL, ALL_EVENTS, "active")
    assert body["created_at"].endswith("Z")
    assert SECRET.encode() not in response.content  # never echoed
    endpoint = WebhookEndpoint.objects.get(public_id=body["id"])
    assert (endpoint.owner_type, endpoint.owner_id, endpoint.scheme) == ("organization", clinic.public_id, Scheme.MARK)
    assert endpoint.secret == SECRET and endpoint.events == ALL_EVENTS
    audit = AuditEvent.objects.get(action="webhooks.endpoint_registered", subject_id=body["id"])
    assert audit.organization_id == clinic.public_id
    assert SECRET not in str(audit.metadata)


def test_duplicate_event_types_are_kept_once(http, clinic, owner):
    body = _create(http, owner, events_=["patient.created", "patient.created", "appointment.created"])
    assert body["events"] == ["patient.created", "appointment.created"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"secret": SECRET, "events": ALL_EVENTS}, "url"),
        ({"url": PUBLIC_URL, "events": ALL_EVENTS}, "secret"),
        ({"url": PUBLIC_URL, "secret": "short", "events": ALL_EVENTS}, "secret"),
        ({"url": PUBLIC_URL, "secret": "x" * 257, "events": ALL_EVENTS}, "secret"),
        ({"url": PUBLIC_URL, "secret": "tab\there-is-not-printable", "events": ALL_EVENTS}, "secret"),
        ({"url": PUBLIC_URL, "secret": 1234567890123456789, "events": ALL_EVENTS}, "secret"),
        ({"url": PUBLIC_URL, "secret": SECRET}, "events"),
        ({"url": PUBLIC_URL, "secret": SECRET, "events": []}, "events"),
        ({"url": PUBLIC_URL, "secret": SECRET, "events": ["patient.deleted"]}, "events"),
        ({"url": PUBLIC_URL, "secret": SECRET, "events": ["patient.created", "*"]}, "events"),
        ({"url": PUBLIC_URL, "secret": SECRET, "events": "patient.created"}, "events"),
        ({"url": "http://93.184.216.34/hook", "secret": SECRET, "events": ALL_EVENTS}, "url"),
        ({"url": "https://10.0.0.1/hook", "secret": SECRET, "events": ALL_EVENTS}, "url"),
        ({"url": "https://169.254.169.254/latest/meta-data", "secret": SECRET, "events": ALL_EVENTS}, "url"),
        ({"url": "https://user:pw@93.184.216.34/hook", "secret": SECRET, "events": ALL_EVENTS}, "url"),
        ({"url": "not a url", "secret": SECRET, "events": ALL_EVENTS}, "url"),
    ],
)
def test_bad_registrations_are_400_naming_the_field(http, clinic, owner, body, field):
    error = _error(_post(http, owner, body), 400)
    details = error["details"]
    named = details.get("field") if isinstance(details, dict) and "field" in details else next(iter(details))
    assert named == field, error
    assert not WebhookEndpoint.objects.exists()


def test_unknown_events_are_named(http, clinic, owner):
    error = _error(_post(http, owner, {"url": PUBLIC_URL, "secret": SECRET, "events": ["patient.deleted"]}), 400)
    assert "events" in error["message"]


def test_a_clinic_has_at_most_ten_active_webhooks(http, clinic, owner):
    created = [_create(http, owner, url=f"{PUBLIC_URL}/{n}") for n in range(events.MAX_ACTIVE_WEBHOOKS)]
    error = _error(_post(http, owner, {"url": PUBLIC_URL, "secret": SECRET, "events": ALL_EVENTS}), 409)
    assert error["details"] == {"field": "url"}
    assert http.delete(f"/api/v1/webhooks/{created[0]['id']}", **_auth(owner)).status_code == 200
    _create(http, owner)  # room again after a delete


def test_viewer_reads_but_cannot_write(http, clinic, owner, viewer):
    created = _create(http, owner)
    assert http.get("/api/v1/webhooks", **_auth(viewer)).status_code == 200
    _error(_post(http, viewer, {"url": PUBLIC_URL, "secret": SECRET, "events": ALL_EVENTS}), 403)
    _error(http.delete(f"/api/v1/webhooks/{created['id']}", **_auth(viewer)), 403)
    assert WebhookEndpoint.objects.get(public_id=created["id"]).is_active


def test_anonymous_and_other_roles_are_refused(http, clinic):
    _error(http.get("/api/v1/webhooks"), 401)
    _error(http.post("/api/v1/webhooks", {}, content_type="application/json"), 401)
    _error(http.delete("/api/v1/webhooks/wh_unknown1"), 401)
    therapist = _member("therapist", "therapist", clinic)
    _error(http.get("/api/v1/webhooks", **_auth(therapist)), 403)


# --- GET /webhooks --------------------------------------------------------------------------------------


def test_list_is_this_clinics_paginated_newest_first(http, clinic, other_clinic, owner, other_owner):
    mine = [_create(http, owner, url=f"{PUBLIC_URL}/{n}") for n in range(3)]
    _create(http, other_owner, url=f"{PUBLIC_URL}/other")
    response = http.get("/api/v1/webhooks?limit=2", **_auth(owner))
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["total", "page", "limit", "data"]
    assert (body["total"], body["page"], body["limit"]) == (3, 1, 2)
    assert [item["id"] for item in body["data"]] == [mine[2]["id"], mine[1]["id"]]
    assert all(set(item) == SPEC_KEYS for item in body["data"])
    page2 = http.get("/api/v1/webhooks?limit=2&page=2", **_auth(owner)).json()
    assert [item["id"] for item in page2["data"]] == [mine[0]["id"]]
    past = http.get("/api/v1/webhooks?page=9", **_auth(owner)).json()
    assert (past["total"], past["data"]) == (3, [])
    assert SECRET.encode() not in response.content


@pytest.mark.parametrize("query, parameter", [("limit=0", "limit"), ("limit=101", "limit"), ("page=0", "page")])
def test_bad_paging_is_400_naming_the_parameter(http, clinic, owner, query, parameter):
    assert parameter in _error(http.get(f"/api/v1/webhooks?{query}", **_auth(owner)), 400)["message"]


def test_a_disabled_endpoint_is_listed_as_disabled(http, clinic, owner):
    created = _create(http, owner)
    endpoint = WebhookEndpoint.objects.get(public_id=created["id"])
    webhook_services.webhook_endpoint_disable(endpoint=endpoint, reason="failing", actor=ACTOR)
    (item,) = http.get("/api/v1/webhooks", **_auth(owner)).json()["data"]
    assert (item["id"], item["status"]) == (created["id"], "disabled")


def test_list_query_count_is_flat(http, clinic, owner):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = http.get("/api/v1/webhooks?limit=100", **_auth(owner))
        assert response.status_code == 200
        return len(queries)

    for n in range(2):
        events.webhook_register(
            organization=clinic, url=f"{PUBLIC_URL}/{n}", secret=SECRET, events=ALL_EVENTS, actor=ACTOR
        )
    two = count()
    endpoints = WebhookEndpoint.objects.filter(owner_id=clinic.public_id)
    for n in range(2, 20):  # past the active cap: register, then disable, as the engine allows
        endpoint = events.webhook_register(
            organization=clinic, url=f"{PUBLIC_URL}/{n}", secret=SECRET, events=ALL_EVENTS, actor=ACTOR
        )
        webhook_services.webhook_endpoint_disable(endpoint=endpoint, reason="test", actor=ACTOR)
    assert endpoints.count() == 20
    assert count() == two


# --- DELETE /webhooks/{id} ------------------------------------------------------------------------------


def test_delete_stops_deliveries_and_hides_the_endpoint(http, clinic, owner):
    created = _create(http, owner)
    endpoint = WebhookEndpoint.objects.get(public_id=created["id"])
    # An event waiting for delivery to this endpoint.
    from patients import services

    services.patient_create(organization=clinic, name="Ana", actor=ACTOR)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.status == DeliveryStatus.PENDING

    response = http.delete(f"/api/v1/webhooks/{created['id']}", **_auth(owner))
    assert response.status_code == 200, response.content
    assert response.json() == {"success": True, "message": "Webhook deleted successfully"}
    endpoint.refresh_from_db()
    delivery.refresh_from_db()
    assert not endpoint.is_active and endpoint.disabled_reason == events.DELETED_REASON
    assert delivery.status != DeliveryStatus.PENDING  # never sent
    assert http.get("/api/v1/webhooks", **_auth(owner)).json()["total"] == 0
    _error(http.delete(f"/api/v1/webhooks/{created['id']}", **_auth(owner)), 404)
    audit = AuditEvent.objects.get(action="mark.webhook_deleted", subject_id=created["id"])
    assert audit.organization_id == clinic.public_id and audit.metadata == {"was_active": True}
    # A deleted endpoint gets no further events.
    services.patient_create(organization=clinic, name="Bo", actor=ACTOR)
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1


def test_delete_of_an_already_disabled_endpoint(http, clinic, owner):
    created = _create(http, owner)
    endpoint = WebhookEndpoint.objects.get(public_id=created["id"])
    webhook_services.webhook_endpoint_disable(endpoint=endpoint, reason="failing", actor=ACTOR)
    assert http.delete(f"/api/v1/webhooks/{created['id']}", **_auth(owner)).status_code == 200
    assert http.get("/api/v1/webhooks", **_auth(owner)).json()["total"] == 0
    audit = AuditEvent.objects.get(action="mark.webhook_deleted", subject_id=created["id"])
    assert audit.metadata == {"was_active": False}


def test_another_clinics_webhook_is_404_like_an_unknown_one(http, clinic, other_clinic, owner, other_owner):
    theirs = _create(http, other_owner)
    unknown = _error(http.delete("/api/v1/webhooks/wh_unknown1", **_auth(owner)), 404)
    cross = _error(http.delete(f"/api/v1/webhooks/{theirs['id']}", **_auth(owner)), 404)
    assert cross == unknown
    assert WebhookEndpoint.objects.get(public_id=theirs["id"]).is_active
    assert http.get("/api/v1/webhooks", **_auth(owner)).json()["total"] == 0


def test_a_path_id_of_another_kind_is_not_routed_here(http, clinic, owner):
    response = http.delete("/api/v1/webhooks/pat_abc", **_auth(owner))
    assert response.status_code == 404
    assert set(response.json()) == {"error"}


# --- The cap under concurrency (PostgreSQL) -------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_registrations_at_once_cannot_both_pass_the_cap(require_postgres):
    import threading

    from django.db import connections, transaction

    from accounts import services as accounts_services
    from core.domain import Conflict
    from tests.patients.test_concurrency import waiting_on_a_lock_or_done

    clinic = accounts_services.organization_create(name="Clinic", actor=ACTOR)
    for n in range(events.MAX_ACTIVE_WEBHOOKS - 1):
        events.webhook_register(
            organization=clinic, url=f"{PUBLIC_URL}/{n}", secret=SECRET, events=ALL_EVENTS, actor=ACTOR
        )
    first_registered, release_first = threading.Event(), threading.Event()
    outcome: dict[str, str] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                events.webhook_register(
                    organization=clinic, url=f"{PUBLIC_URL}/a", secret=SECRET, events=ALL_EVENTS, actor=ACTOR
                )
                first_registered.set()  # the 10th, lock held, not committed
                release_first.wait(30)
        finally:
            connections.close_all()

    def second() -> None:
        try:
            events.webhook_register(
                organization=clinic, url=f"{PUBLIC_URL}/b", secret=SECRET, events=ALL_EVENTS, actor=ACTOR
            )
            outcome["second"] = "registered"
        except Conflict:
            outcome["second"] = "conflict"
        finally:
            connections.close_all()

    one = threading.Thread(target=first)
    one.start()
    assert first_registered.wait(30)
    two = threading.Thread(target=second)
    two.start()
    assert waiting_on_a_lock_or_done(two)  # without the lock it would count 10 and register
    release_first.set()
    one.join(30)
    two.join(30)
    assert outcome == {"second": "conflict"}
    assert events.webhook_list(organization=clinic).filter(is_active=True).count() == events.MAX_ACTIVE_WEBHOOKS
