"""Issue 14, audit: the actor-type filter offers the one vocabulary and finds the rows the real writers
wrote; actors are shown by name with links, resolved per page in a bounded number of queries; refused
requests carry their reason code and the client IP, and an IP_BLOCKED token exchange names the partner."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework_simplejwt.tokens import AccessToken

from audit.admin import ActorTypeFilter
from audit.models import AccessLog
from audit.services import access_log_record, audit_event_record
from core.actors import Actor, ActorType
from core.time import utc_now
from tests.integration.factories import make_client, make_partner, make_therapist
from tests.leads.factories import make_platform

pytestmark = pytest.mark.django_db

LOGS = "/admin/audit/accesslog/"
EVENTS = "/admin/audit/auditevent/"
AUTH = "/api/integration/auth"
INSIDE, OUTSIDE = "203.0.113.9", "198.51.100.1"


@pytest.fixture
def staff():
    return get_user_model().objects.create_superuser(username="auditor", password="x-unused-password-1")


@pytest.fixture
def admin_client(staff):
    browser = Client()
    browser.force_login(staff)
    return browser


def _exchange(partner, therapist, *, remote=INSIDE, **overrides):
    body = {"apiKey": partner.api_key, "apiSecret": partner.api_secret, "therapistId": str(therapist.pk), **overrides}
    return Client(REMOTE_ADDR=remote).post(AUTH, body, content_type="application/json")


def _listed(admin_client, url, **params) -> list:
    response = admin_client.get(url, params)
    assert response.status_code == 200
    return list(response.context["cl"].queryset)


# --- 1. One vocabulary, and each value finds the rows the writers wrote ----------------------------------


def test_actor_type_filter_offers_exactly_the_actor_vocabulary_with_readable_labels(admin_client):
    offered = ActorTypeFilter(None, {}, AccessLog, None).lookups(None, None)
    assert [value for value, _ in offered] == [
        "user",
        "client",
        "therapist",
        "integration_partner",
        "partner_platform",
        "system",
        "anonymous",
    ]
    assert all(label and label != value for value, label in offered)
    html = admin_client.get(LOGS).content.decode()
    for value, label in ActorType.choices:
        assert f"?actor_type={value}" in html and label in html
    for retired in ("?actor_type=partner&", "?actor_type=api_key"):
        assert retired not in html


def test_each_actor_type_filter_finds_the_rows_the_real_writers_wrote(admin_client, staff):
    """Access rows through the API (the middleware, as in production) for every actor an API request can
    have, and domain events through audit_event_record for every actor type."""
    therapist = make_therapist()
    partner = make_partner("Acme Integrations", therapists=[therapist])
    platform = make_platform("businessos", name="BusinessOS")
    app_client = make_client("Jane", "Doe")
    platform_user = get_user_model().objects.create_user(username="practice-staff", password="x-unused-password-3")

    assert Client().get("/api/integration/clients", **partner.headers(therapist)).status_code == 200
    assert Client().get("/api/leads/ingest", **platform.headers()).status_code == 405  # authenticated, then 405
    assert Client().get("/api/leads/ingest").status_code == 401  # anonymous
    app = {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(app_client.user)}"}
    assert Client().get("/api/app/therapist-links", **app).status_code == 200
    not_a_client = {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(platform_user)}"}
    assert Client().get("/api/app/therapist-links", **not_a_client).status_code == 403

    expected_access = {
        "integration_partner": {str(partner.partner.pk)},
        "partner_platform": {"businessos"},
        "anonymous": {""},
        "client": {str(app_client.pk)},
        "user": {str(platform_user.pk)},
    }
    for value, actor_ids in expected_access.items():
        rows = _listed(admin_client, LOGS, actor_type=value)
        assert rows, value
        assert {row.actor_id for row in rows} == actor_ids, value

    actors = {
        "user": Actor.user(staff),
        "client": Actor.client(app_client.pk),
        "therapist": Actor.therapist(therapist.pk),
        "integration_partner": Actor.integration_partner(partner.partner.pk),
        "partner_platform": Actor.partner_platform("businessos"),
        "system": Actor.system("payouts"),
        "anonymous": Actor.anonymous(),
    }
    assert set(actors) == set(ActorType.values)
    for actor in actors.values():
        with transaction.atomic():
            audit_event_record(action="test.vocabulary", actor=actor, subject_type="test", subject_id=actor.type)
    for value in ActorType.values:
        rows = _listed(admin_client, EVENTS, actor_type=value, action="test.vocabulary")
        assert [(row.actor_type, row.subject_id) for row in rows] == [(value, value)]


# --- 2. Actors by name, with links, in a bounded number of queries ---------------------------------------


def _access(actor: Actor, **fields) -> None:
    values = {"created_at": utc_now(), "api": "loverescue", "method": "GET", "path": "/api/x", "status_code": 200}
    access_log_record(actor_type=actor.type, actor_id=actor.id, **{**values, **fields})


def test_actors_are_shown_by_name_with_links(admin_client, staff):
    therapist = make_therapist()
    partner = make_partner("Acme Integrations", therapists=[therapist])
    platform = make_platform("businessos", name="BusinessOS")
    app_client = make_client("Jane", "Doe")
    _access(Actor.user(staff), path="/api/v1/one")
    _access(Actor.integration_partner(partner.partner.pk), path="/api/integration/clients")
    _access(Actor.partner_platform("businessos"), path="/api/leads/ingest")
    _access(Actor.client(app_client.pk), path="/api/app/checkins")
    _access(Actor.system("beat"), path="/api/v1/sys")

    html = admin_client.get(LOGS).content.decode()

    user_url = reverse("admin:accounts_user_change", args=[staff.pk])
    partner_url = reverse("admin:integration_integrationpartner_change", args=[partner.partner.pk])
    platform_url = reverse("admin:leads_partnerplatform_change", args=[platform.platform.pk])
    client_url = reverse("admin:integration_client_change", args=[app_client.pk])
    assert f'<a href="{user_url}">auditor</a>' in html
    assert f'<a href="{partner_url}">Acme Integrations</a>' in html
    assert f'<a href="{platform_url}">BusinessOS</a>' in html
    assert f'<a href="{client_url}">{app_client.pk}</a>' in html  # a client by its public id, never its name
    assert "Jane" not in html
    assert "beat" in html

    # The detail page names the actor too.
    row = AccessLog.objects.get(path="/api/integration/clients")
    assert "Acme Integrations" in admin_client.get(f"{LOGS}{row.pk}/change/").content.decode()


def test_actor_names_cost_the_same_queries_for_few_and_20_more_rows(admin_client, staff):
    partners = [make_partner(f"Partner {n}").partner for n in range(4)]
    platforms = [make_platform(f"platform{n}", name=f"Platform {n}").platform for n in range(2)]
    users = [get_user_model().objects.create_user(username=f"staff{n}") for n in range(3)]
    actors = [
        *(Actor.integration_partner(p.pk) for p in partners),
        *(Actor.partner_platform(p.slug) for p in platforms),
        *(Actor.user(u) for u in users),
    ]

    def page_queries(url) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url).status_code == 200
        return len(queries)

    one_of_each = [actors[0], actors[4], actors[6]]  # a partner, a platform, a user: every named kind
    for actor in one_of_each:  # two rows each
        _access(actor, path="/api/few")
        with transaction.atomic():
            audit_event_record(action="test.count", actor=actor)
    few_logs, few_events = page_queries(LOGS), page_queries(EVENTS)
    for n in range(18):
        _access(actors[n % len(actors)], path=f"/api/many/{n}")
        with transaction.atomic():
            audit_event_record(action="test.count", actor=actors[n % len(actors)])
    assert page_queries(LOGS) == few_logs
    assert page_queries(EVENTS) == few_events


# --- 3. Refused requests: reason code and IP; IP_BLOCKED names the partner -------------------------------


def test_an_ip_blocked_exchange_is_logged_with_the_partner_reason_and_ip(admin_client):
    therapist = make_therapist()
    partner = make_partner("Acme Integrations", therapists=[therapist], allowed_ips=[INSIDE + "/32"])

    refused = _exchange(partner, therapist, remote=OUTSIDE)

    assert refused.status_code == 403 and refused.json()["code"] == "IP_BLOCKED"
    assert set(refused.json()) == {"error", "code"}  # the caller learns nothing more (issue 10)
    row = AccessLog.objects.get(path=AUTH)
    assert (row.actor_type, row.actor_id) == ("integration_partner", str(partner.partner.pk))
    assert (row.status_code, row.reason, row.ip) == (403, "IP_BLOCKED", OUTSIDE)
    assert row.on_behalf_of == ""  # the therapist was never checked
    html = admin_client.get(LOGS, {"status": "403"}).content.decode()
    assert "IP_BLOCKED" in html and OUTSIDE in html and "Acme Integrations" in html


def test_a_wrong_secret_stays_anonymous_with_its_reason(admin_client):
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist], allowed_ips=[INSIDE + "/32"])

    refused = _exchange(partner, therapist, remote=OUTSIDE, apiSecret="sk_live_" + "x" * 40)

    assert refused.status_code == 401
    row = AccessLog.objects.get(path=AUTH)
    assert (row.actor_type, row.actor_id, row.reason) == ("anonymous", "", "AUTH_FAILED")


def test_refusals_of_every_layer_carry_their_reason_and_served_requests_none(admin_client):
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist])
    platform = make_platform("businessos")

    assert _exchange(partner, therapist).status_code == 200
    no_key = Client().get("/api/leads/ingest")  # CareOS: no code in its body, the log still has one
    assert (no_key.status_code, no_key.json()) == (401, {"error": "Invalid API key"})
    assert Client().get("/api/integration/no-such-path").status_code == 404  # outside DRF
    assert Client().get("/api/leads/ingest", **platform.headers()).status_code == 405

    reasons = dict(AccessLog.objects.values_list("status_code", "reason"))
    assert reasons == {200: "", 401: "INVALID_API_KEY", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
