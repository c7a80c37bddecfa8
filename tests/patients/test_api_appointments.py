"""Mark appointments API through HTTP (spec: mark-assistant-api.md, "Appointments"): list, get, create,
update, cancel; organization scoping and roles, pagination and filter bounds, flat query counts, the
reminders shown from the outbox and the cancellation notice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services as accounts_services
from accounts.models import User
from core.time import utc_now
from messaging.models import OutboundMessage
from patients import services
from patients.models import Appointment, Patient, Reminder
from tests.patients.conftest import ACTOR

pytestmark = pytest.mark.django_db

SPEC_ITEM_KEYS = {
    "id", "patient_id", "patient_name", "start_time", "end_time", "duration", "type", "status", "notes",
}  # fmt: skip
SPEC_DETAIL_KEYS = SPEC_ITEM_KEYS | {"location", "zoom_link", "calendly_link", "reminders"}
JSON = "application/json"


def _member(username: str, role: str, *organizations) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username + "-123!")
    for organization in organizations:
        accounts_services.membership_set(user=user, organization=organization, role=role, actor=ACTOR)
    return user


def _auth(user: User) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(user)}"}


def _iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _future(days: int = 10, hours: int = 0):
    # Days ahead of the real clock the API uses: far from "now" so no test depends on timing.
    return (utc_now() + timedelta(days=days, hours=hours)).replace(microsecond=0)


def _patient(clinic, name="Ana", **kwargs) -> Patient:
    return services.patient_create(organization=clinic, name=name, actor=ACTOR, **kwargs)


def _appointment(patient, days: int = 10, hours: int = 0, duration: int = 60) -> Appointment:
    return services.appointment_create(patient=patient, start_time=_future(days, hours), duration=duration, actor=ACTOR)


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


# --- Create ----------------------------------------------------------------------------------------------


def test_create_answers_201_with_the_spec_fields_and_two_pending_reminders(http, clinic, owner):
    patient = _patient(clinic, "Jane Smith")
    start = _future(10)
    body = {
        "patient_id": patient.public_id,
        "start_time": _iso(start),
        "duration": 60,
        "type": "initial_consultation",
        "notes": "New patient consultation",
        "location": "Online (Zoom)",
    }
    response = http.post("/api/v1/appointments", body, content_type=JSON, **_auth(owner))
    assert response.status_code == 201, response.content
    data = response.json()
    assert set(data) == SPEC_DETAIL_KEYS
    assert data["id"].startswith("apt_") and data["patient_id"] == patient.public_id
    assert data["patient_name"] == "Jane Smith"
    assert (data["status"], data["duration"], data["type"]) == ("scheduled", 60, "initial_consultation")
    assert data["start_time"].startswith(_iso(start)[:19]) and data["end_time"].startswith(
        _iso(start + timedelta(minutes=60))[:19]
    )
    assert data["zoom_link"] is None and data["calendly_link"] is None
    assert [r["type"] for r in data["reminders"]] == ["whatsapp", "whatsapp"]
    assert [r["status"] for r in data["reminders"]] == ["pending", "pending"]
    assert data["reminders"][0]["time"].startswith(_iso(start - timedelta(hours=24))[:19])
    assert data["reminders"][1]["time"].startswith(_iso(start - timedelta(minutes=30))[:19])
    assert Appointment.objects.get(public_id=data["id"]).organization == clinic


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "patient_id"),
        ({"start_time": "2099-01-01T10:00:00Z", "duration": 30}, "patient_id"),
        ({"patient_id": 5, "start_time": "2099-01-01T10:00:00Z", "duration": 30}, "patient_id"),
        ({"start_time": "tomorrow", "duration": 30}, "start_time"),
        ({"start_time": "2099-01-01T10:00:00", "duration": 30}, "start_time"),  # no time zone
        ({"start_time": "9999-12-31T23:59:00Z", "duration": 30}, "start_time"),  # end would overflow
        ({"start_time": "2099-01-01T10:00:00Z"}, "duration"),
        ({"start_time": "2099-01-01T10:00:00Z", "duration": 0}, "duration"),
        ({"start_time": "2099-01-01T10:00:00Z", "duration": "60"}, "duration"),
        ({"start_time": "2099-01-01T10:00:00Z", "duration": 24 * 60 + 1}, "duration"),
        ({"start_time": "2099-01-01T10:00:00Z", "duration": 30, "zoom_link": "not a url"}, "zoom_link"),
        ({"start_time": "2099-01-01T10:00:00Z", "duration": 30, "type": "x" * 101}, "type"),
    ],
)
def test_create_bad_input_is_400_naming_the_field_and_creates_nothing(http, clinic, owner, body, field):
    patient = _patient(clinic)
    if "patient_id" not in body and field != "patient_id":
        body = {"patient_id": patient.public_id, **body}
    error = _error(http.post("/api/v1/appointments", body, content_type=JSON, **_auth(owner)), 400)
    assert field in error["details"] or error["details"].get("field") == field, error
    assert not Appointment.objects.exists()


def test_a_start_in_the_past_is_400_naming_start_time(http, clinic, owner):
    patient = _patient(clinic)
    past = _iso((utc_now() - timedelta(hours=1)).replace(microsecond=0))
    body = {"patient_id": patient.public_id, "start_time": past, "duration": 30}
    error = _error(http.post("/api/v1/appointments", body, content_type=JSON, **_auth(owner)), 400)
    assert error["details"]["field"] == "start_time", error
    assert not Appointment.objects.exists()


def test_an_overlapping_appointment_of_the_patient_is_409(http, clinic, owner):
    patient = _patient(clinic)
    booked = _appointment(patient, days=10, duration=60)
    body = {
        "patient_id": patient.public_id,
        "start_time": _iso(booked.start_time + timedelta(minutes=30)),
        "duration": 30,
    }
    error = _error(http.post("/api/v1/appointments", body, content_type=JSON, **_auth(owner)), 409)
    assert error["details"]["field"] == "start_time"
    assert Appointment.objects.count() == 1
    # Right after it is free, and another patient's slot never conflicts.
    body["start_time"] = _iso(booked.end_time)
    assert http.post("/api/v1/appointments", body, content_type=JSON, **_auth(owner)).status_code == 201


def test_unknown_or_another_clinics_patient_id_in_the_body_is_400_naming_it(http, clinic, other_clinic, owner):
    theirs = _patient(other_clinic, "Theirs")
    for patient_id in ("pat_unknown1", theirs.public_id):
        body = {"patient_id": patient_id, "start_time": _iso(_future()), "duration": 30}
        error = _error(http.post("/api/v1/appointments", body, content_type=JSON, **_auth(owner)), 400)
        assert error["details"] == {"field": "patient_id"}, error
    assert not Appointment.objects.exists()


# --- Get / update -----------------------------------------------------------------------------------------


def test_get_shows_reminder_status_from_the_outbox(http, clinic, owner):
    patient = _patient(clinic, phone_number="+34612345678")
    appointment = _appointment(patient, days=10)
    first = appointment.reminders.order_by("due_at").first()
    message = OutboundMessage.objects.create(channel="whatsapp", recipient="+34612345678", body="x", status="failed")
    Reminder.objects.filter(pk=first.pk).update(status=Reminder.Status.SENT, outbound_message=message)
    data = http.get(f"/api/v1/appointments/{appointment.public_id}", **_auth(owner)).json()
    assert [r["status"] for r in data["reminders"]] == ["failed", "pending"]


def test_unknown_appointment_is_404(http, clinic, owner):
    _error(http.get("/api/v1/appointments/apt_unknown1", **_auth(owner)), 404)


def test_put_is_partial_and_a_new_start_reschedules_and_replans_reminders(http, clinic, owner):
    patient = _patient(clinic)
    appointment = _appointment(patient, days=10)
    path = f"/api/v1/appointments/{appointment.public_id}"
    data = http.put(path, {"notes": "bring the report"}, content_type=JSON, **_auth(owner)).json()
    assert (data["notes"], data["status"], data["duration"]) == ("bring the report", "scheduled", 60)
    new_start = _future(12)
    response = http.put(path, {"start_time": _iso(new_start), "duration": 45}, content_type=JSON, **_auth(owner))
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["status"] == "rescheduled" and data["notes"] == "bring the report"
    assert data["end_time"].startswith(_iso(new_start + timedelta(minutes=45))[:19])
    assert data["reminders"][0]["time"].startswith(_iso(new_start - timedelta(hours=24))[:19])


@pytest.mark.parametrize(
    "body, field",
    [
        ({"status": "canceled"}, "status"),  # cancelling is its own action
        ({"status": "gone"}, "status"),
        ({"duration": 0}, "duration"),
        ({"start_time": "2000-01-01T10:00:00Z"}, "start_time"),
        ({"start_time": 5}, "start_time"),
        ({"notes": 5}, "notes"),
    ],
)
def test_put_bad_input_is_400_and_changes_nothing(http, clinic, owner, body, field):
    appointment = _appointment(_patient(clinic), days=10)
    before = Appointment.objects.values().get(pk=appointment.pk)
    response = http.put(f"/api/v1/appointments/{appointment.public_id}", body, content_type=JSON, **_auth(owner))
    error = _error(response, 400)
    assert field in error["details"] or error["details"].get("field") == field, error
    assert Appointment.objects.values().get(pk=appointment.pk) == before


def test_put_onto_another_appointment_is_409(http, clinic, owner):
    patient = _patient(clinic)
    first = _appointment(patient, days=10)
    second = _appointment(patient, days=11)
    body = {"start_time": _iso(first.start_time)}
    _error(http.put(f"/api/v1/appointments/{second.public_id}", body, content_type=JSON, **_auth(owner)), 409)


# --- Cancel ----------------------------------------------------------------------------------------------


def test_cancel_with_notify_queues_a_whatsapp_notice(http, clinic, owner):
    patient = _patient(clinic, phone_number="+34612345678", preferred_language="es")
    Patient.objects.filter(pk=patient.pk).update(last_inbound_at=utc_now())  # inside WhatsApp's window
    appointment = _appointment(patient, days=10)
    body = {"reason": "Patient unavailable", "notify_patient": True}
    response = http.post(
        f"/api/v1/appointments/{appointment.public_id}/cancel", body, content_type=JSON, **_auth(owner)
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert set(data) == {"id", "status", "cancellation_time", "cancellation_reason", "notification_sent"}
    assert (data["id"], data["status"], data["notification_sent"]) == (appointment.public_id, "canceled", True)
    assert data["cancellation_reason"] == "Patient unavailable" and data["cancellation_time"].endswith("Z")
    notice = OutboundMessage.objects.get(channel="whatsapp")
    assert notice.recipient == "+34612345678" and "cancelada" in notice.body
    assert set(appointment.reminders.values_list("status", flat=True)) == {"skipped"}


@pytest.mark.parametrize("case", ["no_notify", "no_phone", "opted_out"])
def test_cancel_without_a_notice_says_notification_sent_false(http, clinic, owner, case):
    patient = _patient(clinic, phone_number=None if case == "no_phone" else "+34612345678")
    if case == "opted_out":
        services.patient_whatsapp_opt_out(patient=patient, reason="stop_keyword", actor=ACTOR)
    appointment = _appointment(patient, days=10)
    body = {"notify_patient": case != "no_notify"}
    response = http.post(
        f"/api/v1/appointments/{appointment.public_id}/cancel", body, content_type=JSON, **_auth(owner)
    )
    assert response.status_code == 200, response.content
    assert response.json()["notification_sent"] is False
    assert not OutboundMessage.objects.exists()
    assert Appointment.objects.get(pk=appointment.pk).status == "canceled"


def test_cancel_twice_is_409_and_bad_cancel_input_is_400(http, clinic, owner):
    appointment = _appointment(_patient(clinic), days=10)
    path = f"/api/v1/appointments/{appointment.public_id}/cancel"
    error = _error(http.post(path, {"notify_patient": "yes"}, content_type=JSON, **_auth(owner)), 400)
    assert "notify_patient" in error["details"]
    assert Appointment.objects.get(pk=appointment.pk).status == "scheduled"
    assert http.post(path, {}, content_type=JSON, **_auth(owner)).status_code == 200
    _error(http.post(path, {}, content_type=JSON, **_auth(owner)), 409)
    _error(
        http.put(f"/api/v1/appointments/{appointment.public_id}", {"notes": "x"}, content_type=JSON, **_auth(owner)),
        409,
    )


# --- Scoping, roles, authentication ----------------------------------------------------------------------


def test_another_clinics_appointment_is_404_on_every_route_and_untouched(http, clinic, other_clinic, owner):
    theirs = _appointment(_patient(other_clinic, "Theirs"), days=10)
    path = f"/api/v1/appointments/{theirs.public_id}"
    _error(http.get(path, **_auth(owner)), 404)
    _error(http.put(path, {"notes": "mine"}, content_type=JSON, **_auth(owner)), 404)
    _error(http.post(f"{path}/cancel", {}, content_type=JSON, **_auth(owner)), 404)
    assert http.get("/api/v1/appointments", **_auth(owner)).json()["total"] == 0
    fresh = Appointment.objects.get(pk=theirs.pk)
    assert (fresh.status, fresh.notes) == ("scheduled", "")


def test_viewer_reads_but_may_not_write(http, clinic):
    viewer = _member("viewer", "viewer", clinic)
    patient = _patient(clinic)
    appointment = _appointment(patient, days=10)
    path = f"/api/v1/appointments/{appointment.public_id}"
    assert http.get("/api/v1/appointments", **_auth(viewer)).status_code == 200
    assert http.get(path, **_auth(viewer)).status_code == 200
    body = {"patient_id": patient.public_id, "start_time": _iso(_future(20)), "duration": 30}
    _error(http.post("/api/v1/appointments", body, content_type=JSON, **_auth(viewer)), 403)
    _error(http.put(path, {"notes": "x"}, content_type=JSON, **_auth(viewer)), 403)
    _error(http.post(f"{path}/cancel", {}, content_type=JSON, **_auth(viewer)), 403)
    assert Appointment.objects.count() == 1 and Appointment.objects.get().status == "scheduled"


def test_anonymous_and_bad_tokens_are_401_in_marks_body(http, clinic):
    appointment = _appointment(_patient(clinic), days=10)
    path = f"/api/v1/appointments/{appointment.public_id}"
    for method, url in (("get", "/api/v1/appointments"), ("get", path), ("post", f"{path}/cancel")):
        _error(getattr(http, method)(url), 401)
        _error(getattr(http, method)(url, HTTP_AUTHORIZATION="Bearer not.a.token"), 401)
    assert Appointment.objects.get().status == "scheduled"


# --- List ------------------------------------------------------------------------------------------------


def test_pagination_bounds_and_past_the_end(http, clinic, owner):
    patient = _patient(clinic)
    for index in range(25):
        _appointment(patient, days=10, hours=2 * index)
    first = http.get("/api/v1/appointments", **_auth(owner)).json()
    assert list(first) == ["total", "page", "limit", "data"]
    assert (first["total"], first["page"], first["limit"], len(first["data"])) == (25, 1, 20, 20)
    assert set(first["data"][0]) == SPEC_ITEM_KEYS
    second = http.get("/api/v1/appointments", {"page": 2}, **_auth(owner)).json()
    assert len(second["data"]) == 5
    assert not {a["id"] for a in first["data"]} & {a["id"] for a in second["data"]}
    past = http.get("/api/v1/appointments", {"page": 9}, **_auth(owner)).json()
    assert (past["total"], past["page"], past["data"]) == (25, 9, [])


@pytest.mark.parametrize(
    "params, name",
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
        ({"status": "deleted"}, "status"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"end_date": "2026-13-01"}, "end_date"),
        ({"start_date": "2026-01-01\x00"}, "start_date"),
        ({"start_date": "2026-02-01", "end_date": "2026-01-01"}, "end_date"),
        ({"patient_id": "p" * 41}, "patient_id"),
        ({"patient_id": "pat_\x00"}, "patient_id"),
    ],
)
def test_bad_list_parameters_are_400_naming_the_parameter(http, clinic, owner, params, name):
    error = _error(http.get("/api/v1/appointments", params, **_auth(owner)), 400)
    assert error["message"].startswith(name), error


def test_filters(http, clinic, owner):
    ana, bob = _patient(clinic, "Ana"), _patient(clinic, "Bob")
    early = _appointment(ana, days=10)
    late = _appointment(bob, days=20)
    cancelled = _appointment(ana, days=30)
    services.appointment_cancel(appointment=cancelled, actor=ACTOR)

    def ids(**params):
        return [a["id"] for a in http.get("/api/v1/appointments", params, **_auth(owner)).json()["data"]]

    assert ids(patient_id=bob.public_id) == [late.public_id]
    assert ids(patient_id="pat_unknown1") == []
    assert ids(status="canceled") == [cancelled.public_id]
    assert ids(status="scheduled") == [early.public_id, late.public_id]
    assert ids(start_date=_iso(_future(15))) == [late.public_id, cancelled.public_id]
    assert ids(end_date=_future(15).date().isoformat()) == [early.public_id]


def test_list_query_count_is_flat_as_rows_grow(http, clinic, owner):
    patient = _patient(clinic)
    _appointment(patient, days=5)
    with CaptureQueriesContext(connection) as few:
        assert http.get("/api/v1/appointments", **_auth(owner)).status_code == 200
    for index in range(25):
        _appointment(_patient(clinic, f"P{index}"), days=10, hours=index)
    with CaptureQueriesContext(connection) as many:
        assert len(http.get("/api/v1/appointments", **_auth(owner)).json()["data"]) == 20
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]
