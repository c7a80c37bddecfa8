"""Routiq patient views and auth checks through HTTP (spec: routiq-backend-api.md, "Authentication endpoints",
"Patient Management"): shapes, definitions as a partner sees them, limit/offset, the org_ converter beside
Mark's pat_ routes, the ROUTIQ envelope and rate tier, 401/403/404 on every route, Clerk tokens (matching and
another active organization), type names with spaces and unicode, summaries equal to lists, flat queries."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import resolve

from accounts import authentication
from core.apis import MARK, ROUTIQ, family_for_path
from core.time import utc_now
from tests.clerk_stub import ClerkStub
from tests.sync.read_factories import (
    bearer,
    make_appointment,
    make_member,
    make_organization,
    make_patient,
)

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
CLERK_ID = "org_2xwRoutiqClinic01"
PATIENT_KEYS = {
    "id", "name", "phone", "email", "cliniko_patient_id", "is_active", "activity_status",
    "recent_appointment_count", "upcoming_appointment_count", "total_appointment_count", "first_appointment_date",
    "last_appointment_date", "next_appointment_time", "next_appointment_type", "primary_appointment_type",
    "treatment_notes", "recent_appointments", "upcoming_appointments", "last_synced_at", "created_at", "updated_at",
}  # fmt: skip
ROUTIQ_ERROR_KEYS = {"error", "detail", "timestamp", "path"}


@pytest.fixture
def http(frozen_ratelimit_clock):
    return Client(raise_request_exception=False)


@pytest.fixture
def org(db):
    return make_organization("Clinic A", clerk_organization_id=CLERK_ID)


@pytest.fixture
def other_org(db):
    return make_organization("Clinic B")


@pytest.fixture
def owner(org):
    return make_member("owner", "owner", org)


def _url(org_id: str, tail: str) -> str:
    return f"/api/v1/patients/{org_id}/{tail}"


def _ok(response) -> dict:
    assert response.status_code == 200, response.content[:400]
    return response.json()


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:400]
    body = response.json()
    assert set(body) == ROUTIQ_ERROR_KEYS, body
    return body


def _seed(org):
    now = utc_now()
    active = make_patient(org, "Ana Active", phone="+34600000001", email="ana@example.com")
    make_appointment(active, now - 3 * DAY, type_="Physiotherapy", notes="Lower back pain treatment")
    make_appointment(active, now + 2 * DAY, type_="Physiotherapy")
    upcoming = make_patient(org, "Uma Upcoming")
    make_appointment(upcoming, now + timedelta(hours=5), type_="Masaje terapéutico")
    recent = make_patient(org, "Rita Recent")
    make_appointment(recent, now - 10 * DAY, type_="Massage")
    stale = make_patient(org, "Sam Stale")
    make_appointment(stale, now - 60 * DAY)
    make_appointment(stale, now + 5 * DAY, cancelled=True)
    make_patient(org, "Ari Archived", archived=True)
    return active, upcoming, recent, stale


ROUTE_TAILS = [
    "patients",
    "active/summary",
    "patients/with-appointments",
    "patients/by-appointment-type/Physiotherapy",
    "patients/appointment-types/summary",
]
ALL_PATHS = [
    *[f"/api/v1/patients/{{org}}/{tail}" for tail in ROUTE_TAILS],
    "/api/v1/dashboard/{org}",
    "/api/v1/dashboard/{org}/summary",
    "/api/v1/dashboard/{org}/activity",
    "/api/v1/auth/organization/{org}/access",
]


def test_active_list_shape_and_definitions(http, org, owner):
    active, upcoming, recent, _stale = _seed(org)
    body = _ok(http.get(_url(org.public_id, "patients"), **bearer(owner)))
    assert set(body) >= {"organization_id", "patients", "total_count", "timestamp"}
    assert body["organization_id"] == org.public_id
    assert body["total_count"] == 3
    # The next appointment first, then the ones with none.
    assert [p["name"] for p in body["patients"]] == ["Uma Upcoming", "Ana Active", "Rita Recent"]
    first = {p["name"]: p for p in body["patients"]}["Ana Active"]
    assert set(first) == PATIENT_KEYS
    assert first["id"] == str(active.uuid)
    assert first["phone"] == "+34600000001" and first["email"] == "ana@example.com"
    assert first["cliniko_patient_id"] == active.external_id
    assert first["is_active"] is True and first["activity_status"] == "active"
    assert (first["recent_appointment_count"], first["upcoming_appointment_count"]) == (1, 1)
    assert first["total_appointment_count"] == 2
    assert first["primary_appointment_type"] == "Physiotherapy"
    assert first["treatment_notes"] == "Lower back pain treatment"
    assert len(first["recent_appointments"]) == 1 and len(first["upcoming_appointments"]) == 1
    assert first["upcoming_appointments"][0]["id"].startswith("apt_")
    by_name = {p["name"]: p for p in body["patients"]}
    assert by_name["Uma Upcoming"]["activity_status"] == "has_upcoming"
    assert by_name["Rita Recent"]["activity_status"] == "recent_activity"
    assert by_name["Rita Recent"]["next_appointment_time"] is None


def test_clerk_organization_id_names_the_same_organization(http, org, owner):
    _seed(org)
    by_clerk = _ok(http.get(_url(CLERK_ID, "patients"), **bearer(owner)))
    by_ours = _ok(http.get(_url(org.public_id, "patients"), **bearer(owner)))
    assert by_clerk["organization_id"] == CLERK_ID
    assert by_clerk["total_count"] == by_ours["total_count"] == 3


def test_limit_and_offset(http, org, owner):
    _seed(org)
    page = _ok(http.get(_url(org.public_id, "patients") + "?limit=2&offset=1", **bearer(owner)))
    assert (page["total_count"], page["limit"], page["offset"], len(page["patients"])) == (3, 2, 1, 2)
    assert _ok(http.get(_url(org.public_id, "patients") + "?offset=10", **bearer(owner)))["patients"] == []
    for query in ("limit=0", "limit=501", "limit=abc", "offset=-1"):
        body = _error(http.get(_url(org.public_id, "patients") + f"?{query}", **bearer(owner)), 400)
        assert query.split("=")[0] in body["detail"], body
    assert _ok(http.get(_url(org.public_id, "patients") + "?limit=500", **bearer(owner)))["limit"] == 500


def test_with_appointments_priority_and_time(http, org, owner):
    _seed(org)
    body = _ok(http.get(_url(org.public_id, "patients/with-appointments"), **bearer(owner)))
    assert body["total_count"] == 2
    soon, later = body["patients"]
    assert soon["name"] == "Uma Upcoming" and soon["priority"] == "high"
    assert 4.9 <= soon["hours_until_next_appointment"] <= 5.0
    assert soon["days_until_next_appointment"] == 0.2
    assert later["priority"] == "medium" and 47.9 <= later["hours_until_next_appointment"] <= 48.0


def test_by_appointment_type_spaces_and_unicode(http, org, owner):
    _seed(org)
    name = "Masaje terapéutico"
    body = _ok(http.get(_url(org.public_id, f"patients/by-appointment-type/{quote(name)}"), **bearer(owner)))
    assert [p["name"] for p in body["patients"]] == ["Uma Upcoming"]
    assert body["appointment_type"] == name
    slash = "Physio / Rehab 🩺"
    patient = make_patient(org, "Sol Slash")
    make_appointment(patient, utc_now() + DAY, type_=slash)
    body = _ok(http.get(_url(org.public_id, f"patients/by-appointment-type/{quote(slash)}"), **bearer(owner)))
    assert [p["name"] for p in body["patients"]] == ["Sol Slash"]
    assert (
        _ok(http.get(_url(org.public_id, "patients/by-appointment-type/Nothing"), **bearer(owner)))["total_count"] == 0
    )
    _error(http.get(_url(org.public_id, f"patients/by-appointment-type/{'x' * 201}"), **bearer(owner)), 400)


def test_summaries_equal_the_lists(http, org, owner):
    _seed(org)
    auth = bearer(owner)
    listed = _ok(http.get(_url(org.public_id, "patients"), **auth))
    with_appointments = _ok(http.get(_url(org.public_id, "patients/with-appointments"), **auth))
    summary = _ok(http.get(_url(org.public_id, "active/summary"), **auth))
    assert summary["total_active_patients"] == listed["total_count"] == 3
    assert summary["patients_with_upcoming_appointments"] == with_appointments["total_count"] == 2
    assert summary["patients_with_recent_appointments"] == sum(
        1 for p in listed["patients"] if p["recent_appointment_count"]
    )
    assert summary["avg_total_appointments"] == round(
        sum(p["total_appointment_count"] for p in listed["patients"]) / 3, 1
    )
    types = _ok(http.get(_url(org.public_id, "patients/appointment-types/summary"), **auth))
    assert types["total_types"] == len(types["appointment_types"]) == 3
    assert sum(row["patient_count"] for row in types["appointment_types"]) == listed["total_count"]
    physio = [row for row in types["appointment_types"] if row["primary_appointment_type"] == "Physiotherapy"]
    assert physio[0]["next_appointment_type"] == "Physiotherapy"
    assert physio[0]["earliest_upcoming"].endswith("Z")


def test_routes_are_routiqs_and_pat_ids_stay_marks():
    assert resolve("/api/v1/patients/org_abc123/patients").url_name == "routiq-patients"
    assert resolve("/api/v1/patients/pat_abc123").url_name == "mark-patient"
    assert family_for_path("/api/v1/patients/org_abc123/patients") is ROUTIQ
    assert family_for_path("/api/v1/patients/pat_abc123") is MARK


def test_api_tier_headers(http, org, owner):
    response = http.get(_url(org.public_id, "patients"), **bearer(owner))
    assert response.status_code == 200
    assert response["X-RateLimit-Limit"] == "1000"
    assert response["Retry-After"]
    assert int(response["X-RateLimit-Reset"]) > 0


@pytest.mark.parametrize("template", ALL_PATHS)
def test_every_route_401_403_404(http, org, other_org, owner, template):
    _seed(other_org)
    _error(http.get(template.format(org=org.public_id)), 401)
    # Another organization that exists: 403; one that does not: 404; the same on every route.
    body = _error(http.get(template.format(org=other_org.public_id), **bearer(owner)), 403)
    assert body["path"] == template.format(org=other_org.public_id)
    _error(http.get(template.format(org="org_doesNotExist42"), **bearer(owner)), 404)
    _ok(http.get(template.format(org=org.public_id), **bearer(owner)))


def test_roles(http, org):
    _seed(org)
    viewer = make_member("viewer", "viewer", org)
    therapist = make_member("therapist", "therapist", org)
    _ok(http.get(_url(org.public_id, "patients"), **bearer(viewer)))
    _error(http.get(_url(org.public_id, "patients"), **bearer(therapist)), 403)


def test_verify_and_access(http, org, other_org, owner):
    body = _ok(http.get("/api/v1/auth/verify", **bearer(owner)))
    assert body == {"authenticated": True, "organization_id": CLERK_ID, "message": "Authentication successful"}
    body = _ok(http.get("/api/v1/auth/verify", HTTP_X_ORGANIZATION_ID=org.public_id, **bearer(owner)))
    assert body["organization_id"] == org.public_id
    _error(http.get("/api/v1/auth/verify", HTTP_X_ORGANIZATION_ID=other_org.public_id, **bearer(owner)), 403)
    _error(http.get("/api/v1/auth/verify", HTTP_X_ORGANIZATION_ID="org_doesNotExist42", **bearer(owner)), 404)
    _error(http.get("/api/v1/auth/verify"), 401)
    body = _ok(http.get(f"/api/v1/auth/organization/{org.public_id}/access", **bearer(owner)))
    assert body == {"organization_id": org.public_id, "access_granted": True, "message": "Access granted"}
    # A header naming another organization than the path.
    _error(
        http.get(
            f"/api/v1/auth/organization/{org.public_id}/access",
            HTTP_X_ORGANIZATION_ID=other_org.public_id,
            **bearer(owner),
        ),
        400,
    )


@pytest.fixture
def clerk(settings, frozen_ratelimit_clock):
    authentication._jwks_clients.clear()
    with ClerkStub() as stub:
        stub.configure(settings)
        yield stub
    authentication._jwks_clients.clear()


@pytest.mark.parametrize("version", [1, 2])
def test_clerk_tokens_active_organization(clerk, org, version):
    _seed(org)
    other = make_organization("Clinic Clerk B", clerk_organization_id="org_2xwRoutiqClinic02")
    http = Client(raise_request_exception=False)
    mine = {"HTTP_AUTHORIZATION": f"Bearer {clerk.token(version=version, org_id=CLERK_ID, org_role='org:admin')}"}
    assert _ok(http.get(_url(CLERK_ID, "patients"), **mine))["total_count"] == 3
    assert _ok(http.get(_url(org.public_id, "patients"), **mine))["total_count"] == 3
    assert _ok(http.get("/api/v1/auth/verify", **mine))["organization_id"] == CLERK_ID
    # The same user's token whose active organization is another: 403 on this one's routes.
    theirs = {
        "HTTP_AUTHORIZATION": f"Bearer {clerk.token(version=version, org_id=other.clerk_organization_id)}",
    }
    _error(http.get(_url(CLERK_ID, "patients"), **theirs), 403)
    _error(http.get(f"/api/v1/dashboard/{org.public_id}", **theirs), 403)
    _error(http.get("/api/v1/auth/verify", HTTP_X_ORGANIZATION_ID=CLERK_ID, **theirs), 403)


def _queries(http, org, owner, count: int) -> int:
    now = utc_now()
    for i in range(count):
        patient = make_patient(org, f"Q{i}")
        make_appointment(patient, now - DAY, notes="note")
        make_appointment(patient, now + DAY)
    with CaptureQueriesContext(connection) as queries:
        body = _ok(http.get(_url(org.public_id, "patients") + "?limit=500", **bearer(owner)))
    assert body["total_count"] == count
    return len(queries)


def test_list_queries_flat_in_patients(http, org, other_org, owner):
    small = _queries(http, org, owner, 5)
    other_owner = make_member("owner-b", "owner", other_org)
    large = _queries(http, other_org, other_owner, 50)
    assert small == large


def test_malformed_organization_under_patients_is_answered_by_routiq(http, owner):
    # Not an org_ id: no route resolves, and the path's shape (segments after the id) is Routiq's.
    for path in ("/api/v1/patients/%C2%84/patients", "/api/v1/patients/bad-id/active/summary"):
        body = _error(http.get(path, **bearer(owner)), 404)
        assert body["path"].startswith("/api/v1/patients/")
    # Mark's own shapes keep Mark's body.
    for path in ("/api/v1/patients/not-a-pat-id", "/api/v1/patients/pat_abc123/unknown"):
        response = http.get(path, **bearer(owner))
        assert response.status_code == 404 and set(response.json()) == {"error"}, path


def test_an_organizations_own_recent_window_moves_lists_arrays_and_summary(http, org, other_org, owner, settings):
    from core.actors import Actor
    from patients.services.clinic_settings import clinic_settings_update

    settings.ROUTIQ_RECENT_DAYS = 30
    now = utc_now()
    mine, theirs = make_patient(org, name="Olga Forty"), make_patient(other_org, name="Otto Forty")
    make_appointment(mine, now - 40 * DAY)
    make_appointment(theirs, now - 40 * DAY)
    assert _ok(http.get(_url(org.public_id, "patients"), **bearer(owner)))["total_count"] == 0

    clinic_settings_update(organization=org, recent_days=45, actor=Actor.system("tests"))
    body = _ok(http.get(_url(org.public_id, "patients"), **bearer(owner)))
    assert [p["name"] for p in body["patients"]] == ["Olga Forty"]
    assert body["patients"][0]["recent_appointment_count"] == 1
    assert len(body["patients"][0]["recent_appointments"]) == 1  # the arrays use the same window
    summary = _ok(http.get(_url(org.public_id, "active/summary"), **bearer(owner)))
    assert summary["total_active_patients"] == 1
    # Another organization keeps the platform's window.
    other_owner = make_member("other-owner-window", "owner", other_org)
    assert _ok(http.get(_url(other_org.public_id, "patients"), **bearer(other_owner)))["total_count"] == 0
