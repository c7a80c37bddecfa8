"""Mark patients API through HTTP (spec: mark-assistant-api.md, "Patients"): every endpoint's success and
failure paths, organization scoping and roles, pagination bounds, filters and flat query counts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services as accounts_services
from accounts.models import User
from patients import services
from patients.models import Patient
from tests.patients.conftest import ACTOR

pytestmark = pytest.mark.django_db

SPEC_ITEM_KEYS = {
    "id", "name", "phone_number", "email", "registration_date", "last_activity", "preferred_language", "status",
}  # fmt: skip
SPEC_DETAIL_KEYS = SPEC_ITEM_KEYS | {"notes", "metadata"}


def _member(username: str, role: str, *organizations) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username + "-123!")
    for organization in organizations:
        accounts_services.membership_set(user=user, organization=organization, role=role, actor=ACTOR)
    return user


def _auth(user: User, organization=None) -> dict:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(user)}"}
    if organization is not None:
        headers["HTTP_X_ORGANIZATION_ID"] = organization.public_id
    return headers


def _patient(clinic, name="Ana", **kwargs) -> Patient:
    return services.patient_create(organization=clinic, name=name, actor=ACTOR, **kwargs)


@pytest.fixture
def http(frozen_ratelimit_clock):
    return Client(raise_request_exception=False)


@pytest.fixture
def owner(clinic):
    return _member("owner", "owner", clinic)


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"]), body
    return body["error"]


# --- Authentication: the real token endpoint ------------------------------------------------------------


def test_token_from_the_auth_endpoint_lists_patients(http, clinic, owner):
    _patient(clinic, "José Pérez", phone_number="+34612345678")
    token = http.post(
        "/api/v1/auth/token", {"username": "owner", "password": "pw-owner-123!"}, content_type="application/json"
    ).json()["access_token"]
    response = http.get("/api/v1/patients", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert list(body) == ["total", "page", "limit", "data"]
    assert (body["total"], body["page"], body["limit"]) == (1, 1, 20)
    assert set(body["data"][0]) == SPEC_ITEM_KEYS
    assert body["data"][0]["phone_number"] == "+34612345678"
    assert response["Cache-Control"] == "no-store"


def test_anonymous_and_bad_tokens_are_401_in_marks_body(http, clinic, owner):
    patient = _patient(clinic)
    for path in ("/api/v1/patients", f"/api/v1/patients/{patient.public_id}"):
        _error(http.get(path), 401)
        _error(http.get(path, HTTP_AUTHORIZATION="Bearer not.a.token"), 401)


# --- Create ----------------------------------------------------------------------------------------------


def test_create_answers_201_with_the_spec_fields(http, clinic, owner):
    body = {
        "name": "Jane Smith",
        "phone_number": "+34 698 76 54 32",
        "email": "jane.smith@example.com",
        "preferred_language": "en",
        "notes": "New patient referred by Dr. Garcia",
        "metadata": {"source": "referral"},
    }
    response = http.post("/api/v1/patients", body, content_type="application/json", **_auth(owner))
    assert response.status_code == 201, response.content
    data = response.json()
    assert SPEC_DETAIL_KEYS <= set(data)
    assert data["id"].startswith("pat_")
    assert data["phone_number"] == "+34698765432"
    assert data["status"] == "active" and data["metadata"] == {"source": "referral"}
    assert data["registration_date"].endswith("Z")
    assert Patient.objects.get(public_id=data["id"]).organization == clinic


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": 7}, "name"),
        ({"name": "A", "phone_number": "not a phone"}, "phone_number"),
        ({"name": "A", "email": "nope"}, "email"),
        ({"name": "A", "preferred_language": "English!"}, "preferred_language"),
        ({"name": "A", "metadata": [1]}, "metadata"),
        ({"name": "A", "notes": 5}, "notes"),
    ],
)
def test_create_bad_input_is_400_naming_the_field_and_creates_nothing(http, clinic, owner, body, field):
    error = _error(http.post("/api/v1/patients", body, content_type="application/json", **_auth(owner)), 400)
    assert field in str(error["details"]) or field in error["message"], error
    assert error["code"] == "invalid_request"
    assert not Patient.objects.exists()


def test_create_with_a_non_object_body_is_400(http, clinic, owner):
    response = http.post("/api/v1/patients", "[1, 2]", content_type="application/json", **_auth(owner))
    _error(response, 400)
    response = http.post("/api/v1/patients", "{broken", content_type="application/json", **_auth(owner))
    _error(response, 400)
    assert not Patient.objects.exists()


# --- Get, update, delete ---------------------------------------------------------------------------------


def test_get_answers_the_patient(http, clinic, owner):
    patient = _patient(clinic, "Ana", email="ana@example.com", notes="evenings", metadata={"referral": "google"})
    response = http.get(f"/api/v1/patients/{patient.public_id}", **_auth(owner))
    assert response.status_code == 200
    data = response.json()
    assert SPEC_DETAIL_KEYS <= set(data)
    assert (data["id"], data["email"], data["notes"], data["metadata"]) == (
        patient.public_id, "ana@example.com", "evenings", {"referral": "google"},
    )  # fmt: skip


def test_unknown_patient_is_404(http, clinic, owner):
    error = _error(http.get("/api/v1/patients/pat_doesnotexist", **_auth(owner)), 404)
    assert error["code"] == "not_found"


def test_put_is_a_partial_update(http, clinic, owner):
    patient = _patient(clinic, "Jane Smith", phone_number="+34698765432", notes="old", metadata={"source": "x"})
    response = http.put(
        f"/api/v1/patients/{patient.public_id}",
        {"name": "Jane Smith-Johnson", "preferred_language": "ca", "status": "inactive"},
        content_type="application/json",
        **_auth(owner),
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["name"], data["preferred_language"], data["status"]) == ("Jane Smith-Johnson", "ca", "inactive")
    # Fields not sent are unchanged.
    assert (data["phone_number"], data["notes"], data["metadata"]) == ("+34698765432", "old", {"source": "x"})


@pytest.mark.parametrize(
    "body, field",
    [({"status": "archived"}, "status"), ({"name": None}, "name"), ({"email": "x@"}, "email")],
)
def test_put_bad_input_is_400_and_changes_nothing(http, clinic, owner, body, field):
    patient = _patient(clinic, "Ana", email="ana@example.com")
    response = http.put(f"/api/v1/patients/{patient.public_id}", body, content_type="application/json", **_auth(owner))
    error = _error(response, 400)
    assert field in str(error["details"]) or field in error["message"], error
    patient.refresh_from_db()
    assert (patient.name, patient.email, patient.status) == ("Ana", "ana@example.com", "active")


def test_delete_erases_and_the_id_then_answers_404(http, clinic, owner):
    patient = _patient(clinic)
    response = http.delete(f"/api/v1/patients/{patient.public_id}", **_auth(owner))
    assert response.status_code == 200, response.content
    assert response.json() == {"success": True, "message": "Patient deleted successfully"}
    assert not Patient.objects.filter(pk=patient.pk).exists()
    _error(http.get(f"/api/v1/patients/{patient.public_id}", **_auth(owner)), 404)
    _error(http.delete(f"/api/v1/patients/{patient.public_id}", **_auth(owner)), 404)


# --- Scoping and roles -----------------------------------------------------------------------------------


def test_another_clinics_patient_is_404_on_every_route_and_untouched(http, clinic, other_clinic, owner):
    theirs = _patient(other_clinic, "Theirs", email="theirs@example.com")
    path = f"/api/v1/patients/{theirs.public_id}"
    unknown = _error(http.get("/api/v1/patients/pat_unknown123", **_auth(owner)), 404)
    for method in ("get", "put", "delete"):
        error = _error(getattr(http, method)(path, {"name": "X"}, content_type="application/json", **_auth(owner)), 404)
        assert error == unknown, (method, error)  # exactly like an unknown id
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"
    # And it is not listed or found by search.
    listed = http.get("/api/v1/patients", {"search": "theirs"}, **_auth(owner)).json()
    assert listed["total"] == 0 and listed["data"] == []


def test_viewer_reads_but_may_not_write(http, clinic):
    viewer = _member("viewer", "viewer", clinic)
    patient = _patient(clinic)
    assert http.get("/api/v1/patients", **_auth(viewer)).status_code == 200
    assert http.get(f"/api/v1/patients/{patient.public_id}", **_auth(viewer)).status_code == 200
    _error(http.post("/api/v1/patients", {"name": "New"}, content_type="application/json", **_auth(viewer)), 403)
    path = f"/api/v1/patients/{patient.public_id}"
    _error(http.put(path, {"name": "X"}, content_type="application/json", **_auth(viewer)), 403)
    _error(http.delete(path, **_auth(viewer)), 403)
    patient.refresh_from_db()
    assert patient.name == "Ana" and Patient.objects.count() == 1


@pytest.mark.parametrize("role", ["owner", "admin", "staff"])
def test_owner_admin_staff_write(http, clinic, role):
    user = _member(f"u-{role}", role, clinic)
    response = http.post("/api/v1/patients", {"name": "New"}, content_type="application/json", **_auth(user))
    assert response.status_code == 201, response.content
    pat = response.json()["id"]
    path = f"/api/v1/patients/{pat}"
    assert http.put(path, {"notes": "n"}, content_type="application/json", **_auth(user)).status_code == 200
    assert http.delete(path, **_auth(user)).status_code == 200


def test_several_memberships_need_the_header(http, clinic, other_clinic):
    both = _member("both", "staff", clinic, other_clinic)
    _patient(clinic, "Mine")
    error = _error(http.get("/api/v1/patients", **_auth(both)), 400)
    assert "X-Organization-ID" in error["message"]
    response = http.get("/api/v1/patients", **_auth(both, clinic))
    assert response.status_code == 200 and response.json()["total"] == 1
    assert http.get("/api/v1/patients", **_auth(both, other_clinic)).json()["total"] == 0


def test_a_user_of_no_clinic_is_403_and_a_clinic_not_theirs_is_403(http, clinic, other_clinic, owner):
    nobody = _member("nobody", "owner")
    _error(http.get("/api/v1/patients", **_auth(nobody)), 403)
    _error(http.get("/api/v1/patients", **_auth(owner, other_clinic)), 403)
    _error(http.post("/api/v1/patients", {"name": "X"}, content_type="application/json", **_auth(nobody)), 403)
    assert not Patient.objects.exists()


# --- List: pagination, filters, search ------------------------------------------------------------------


def test_pagination_bounds_and_past_the_end(http, clinic, owner):
    for index in range(25):
        _patient(clinic, f"P{index}")
    first = http.get("/api/v1/patients", **_auth(owner)).json()
    assert (first["total"], first["page"], first["limit"], len(first["data"])) == (25, 1, 20, 20)
    second = http.get("/api/v1/patients", {"page": 2}, **_auth(owner)).json()
    assert len(second["data"]) == 5
    assert not {p["id"] for p in first["data"]} & {p["id"] for p in second["data"]}
    past = http.get("/api/v1/patients", {"page": 9}, **_auth(owner)).json()
    assert (past["total"], past["page"], past["data"]) == (25, 9, [])
    assert len(http.get("/api/v1/patients", {"limit": 100}, **_auth(owner)).json()["data"]) == 25


@pytest.mark.parametrize(
    "params, name",
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"page": 0}, "page"),
        ({"page": "-1"}, "page"),
        ({"status": "deleted"}, "status"),
        ({"language": "x" * 11}, "language"),
        ({"search": "x" * 201}, "search"),
    ],
)
def test_bad_list_parameters_are_400_naming_the_parameter(http, clinic, owner, params, name):
    error = _error(http.get("/api/v1/patients", params, **_auth(owner)), 400)
    assert error["message"].startswith(name), error


def test_filters_and_search(http, clinic, owner):
    jose = _patient(clinic, "José María", phone_number="+34612345678", preferred_language="es")
    _patient(clinic, "Bob", preferred_language="en")
    inactive = _patient(clinic, "Carla")
    services.patient_update(patient=inactive, status="inactive", actor=ACTOR)

    def ids(**params):
        return [p["id"] for p in http.get("/api/v1/patients", params, **_auth(owner)).json()["data"]]

    assert ids(search="JOSE maria") == [jose.public_id]
    assert ids(search="612 34 56 78") == [jose.public_id]
    assert ids(search="0034612345678") == [jose.public_id]
    assert ids(language="es") == [jose.public_id]
    assert ids(status="inactive") == [inactive.public_id]
    assert len(ids(status="active")) == 2


def test_list_query_count_is_flat_as_rows_grow(http, clinic, owner):
    _patient(clinic, "One")
    with CaptureQueriesContext(connection) as few:
        assert http.get("/api/v1/patients", **_auth(owner)).status_code == 200
    for index in range(30):
        _patient(clinic, f"P{index}", email=f"p{index}@example.com")
    with CaptureQueriesContext(connection) as many:
        assert len(http.get("/api/v1/patients", **_auth(owner)).json()["data"]) == 20
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


def test_access_log_names_the_clinic_the_user_and_the_patients(http, clinic, owner):
    from audit.models import AccessLog, AuditEvent

    patient = _patient(clinic)
    assert http.get(f"/api/v1/patients/{patient.public_id}", **_auth(owner)).status_code == 200
    row = AccessLog.objects.filter(path=f"/api/v1/patients/{patient.public_id}").get()
    assert (row.api, row.organization_id, row.actor_id) == ("mark", clinic.public_id, str(owner.pk))
    assert row.subject_ids == [f"patient:{patient.public_id}"]
    # The write's audit event names the user who made it.
    http.put(f"/api/v1/patients/{patient.public_id}", {"notes": "n"}, content_type="application/json", **_auth(owner))
    event = AuditEvent.objects.filter(action="patient.updated").get()
    assert (event.actor_type, event.actor_id, event.subject_id) == ("user", str(owner.pk), patient.public_id)


@pytest.mark.parametrize("role", ["therapist", "supervisor"])
def test_roles_mark_does_not_name_get_403(http, clinic, role):
    user = _member(f"u-{role}", role, clinic)
    patient = _patient(clinic)
    _error(http.get("/api/v1/patients", **_auth(user)), 403)
    _error(http.get(f"/api/v1/patients/{patient.public_id}", **_auth(user)), 403)
    _error(http.post("/api/v1/patients", {"name": "X"}, content_type="application/json", **_auth(user)), 403)
    assert Patient.objects.count() == 1


@pytest.mark.parametrize("name", ["search", "language", "status"])
def test_a_nul_character_in_a_filter_is_400_naming_it(http, clinic, owner, name):
    # PostgreSQL text cannot hold NUL: it must be refused before the query (it was a 500).
    error = _error(http.get("/api/v1/patients", {name: "a\x00b"}, **_auth(owner)), 400)
    assert error["message"].startswith(name), error


def test_a_nul_character_in_the_organization_header_is_404_like_an_unknown_one(http, clinic, owner):
    patient = _patient(clinic)
    for path in ("/api/v1/patients", f"/api/v1/patients/{patient.public_id}"):
        error = _error(http.get(path, HTTP_X_ORGANIZATION_ID="org_\x00x", **_auth(owner)), 404)
        assert error["message"] == "Organization not found"


def test_the_61st_request_in_a_minute_from_one_address_is_429_in_marks_body(http, clinic, owner):
    for _ in range(60):
        assert http.get("/api/v1/patients", **_auth(owner)).status_code == 200
    response = http.get("/api/v1/patients", **_auth(owner))
    error = _error(response, 429)
    assert error["code"] == "rate_limited" and int(response["Retry-After"]) > 0
