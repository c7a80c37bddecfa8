"""Mark messages API through HTTP (spec: mark-assistant-api.md, "Messages"): POST /api/v1/messages (text),
GET /api/v1/messages/{id}, organization scoping and roles, the outbox status, and Idempotency-Key on
POST /messages and POST /appointments (a retry creates and sends nothing twice)."""

from __future__ import annotations

import io
import json
import wave
from datetime import timedelta

import pytest
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services as accounts_services
from accounts.models import User
from audit.models import AccessLog, AuditEvent
from core.models import IdempotencyKey
from core.time import utc_now
from messaging.models import OutboundMessage
from patients import services
from patients.models import Appointment, Conversation, Message, Patient
from tests.patients.conftest import ACTOR

pytestmark = pytest.mark.django_db

PHONE = "+34612345678"
TEXT = "Hola Núria, su resultado está listo; llame al 612 000 111"
SPEC_KEYS = {"id", "patient_id", "timestamp", "sender", "content", "content_type", "status", "conversation_id"}


@pytest.fixture
def http(frozen_ratelimit_clock):
    return Client(raise_request_exception=False)


def _member(username: str, role: str, *organizations) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username + "-123!")
    for organization in organizations:
        accounts_services.membership_set(user=user, organization=organization, role=role, actor=ACTOR)
    return user


def _auth(user: User, key: str | None = None) -> dict:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(user)}"}
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return headers


@pytest.fixture
def owner(clinic):
    return _member("owner", "owner", clinic)


def _patient(clinic, *, window_open: bool = True, **fields) -> Patient:
    fields.setdefault("phone_number", PHONE)
    patient = services.patient_create(organization=clinic, name="Núria Puig", actor=ACTOR, **fields)
    if window_open:
        Patient.objects.filter(pk=patient.pk).update(last_inbound_at=utc_now() - timedelta(minutes=5))
        patient.refresh_from_db()
    return patient


def _send(http, user, body: dict, key: str | None = None):
    return http.post("/api/v1/messages", body, content_type="application/json", **_auth(user, key))


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"]), body
    return body["error"]


# --- POST /api/v1/messages ----------------------------------------------------------------------------


def test_send_text_stores_queues_and_answers_201_with_the_spec_fields(http, clinic, owner):
    patient = _patient(clinic)
    response = _send(http, owner, {"patient_id": patient.public_id, "content": TEXT, "content_type": "text"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == SPEC_KEYS  # no metadata on a text message
    assert body["id"].startswith("msg_") and body["conversation_id"].startswith("conv_")
    assert (body["patient_id"], body["sender"], body["content"], body["content_type"], body["status"]) == (
        patient.public_id,
        "system",
        TEXT,
        "text",
        "queued",
    )
    message = Message.objects.get(public_id=body["id"])
    assert message.conversation.public_id == body["conversation_id"]
    outbound = OutboundMessage.objects.get()
    assert (outbound.channel, outbound.recipient, outbound.body, outbound.status) == ("whatsapp", PHONE, TEXT, "queued")
    event = AuditEvent.objects.get(action="message.sent")
    assert event.subject_id == body["id"]
    assert TEXT not in json.dumps(event.metadata) and PHONE not in json.dumps(event.metadata)
    log = AccessLog.objects.get(path="/api/v1/messages")
    assert (log.status_code, log.subject_ids) == (201, [f"message:{body['id']}"])


def test_content_type_defaults_to_text(http, clinic, owner):
    patient = _patient(clinic)
    response = _send(http, owner, {"patient_id": patient.public_id, "content": "Hola"})
    assert response.status_code == 201 and response.json()["content_type"] == "text"


def test_status_follows_the_outbox(http, clinic, owner):
    patient = _patient(clinic)
    created = _send(http, owner, {"patient_id": patient.public_id, "content": TEXT}).json()
    path = f"/api/v1/messages/{created['id']}"
    for status in ("sent", "delivered", "failed"):
        OutboundMessage.objects.update(status=status)
        response = http.get(path, **_auth(owner))
        assert response.status_code == 200
        assert response.json() == {**created, "status": status}


def test_voice_content_type_points_at_the_voice_endpoint(http, clinic, owner):
    patient = _patient(clinic)
    error = _error(_send(http, owner, {"patient_id": patient.public_id, "content": "x", "content_type": "voice"}), 400)
    assert error["details"] == {"field": "content_type"} and "/api/v1/messages/voice" in error["message"]
    error = _error(_send(http, owner, {"patient_id": patient.public_id, "content": "x", "content_type": "video"}), 400)
    assert "content_type" in error["details"]
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"content": "Hola"}, "patient_id"),
        ({"patient_id": "PATIENT"}, "content"),
        ({"patient_id": "PATIENT", "content": ""}, "content"),
        ({"patient_id": "PATIENT", "content": 7}, "content"),
        ({"patient_id": "PATIENT", "content": "x" * 1601}, "content"),
    ],
    ids=["no-patient", "no-content", "empty", "number", "too-long"],
)
def test_bad_bodies_are_400_naming_the_field(http, clinic, owner, body, field):
    patient = _patient(clinic)
    body = {key: (patient.public_id if value == "PATIENT" else value) for key, value in body.items()}
    assert field in _error(_send(http, owner, body), 400)["details"]
    assert not OutboundMessage.objects.exists()


def test_unknown_and_other_clinics_patients_are_the_same_400(http, clinic, other_clinic, owner):
    foreign = _patient(other_clinic)
    unknown = _error(_send(http, owner, {"patient_id": "pat_unknown123", "content": "Hola"}), 400)
    cross = _error(_send(http, owner, {"patient_id": foreign.public_id, "content": "Hola"}), 400)
    assert unknown == cross and unknown["details"] == {"field": "patient_id"}
    assert not Message.objects.exists()


def test_opted_out_patient_is_409_with_the_reason(http, clinic, owner):
    patient = _patient(clinic)
    services.patient_whatsapp_opt_out(patient=patient, reason="stop_keyword", actor=ACTOR)
    error = _error(_send(http, owner, {"patient_id": patient.public_id, "content": "Hola"}), 409)
    assert error["code"] == "WHATSAPP_OPTED_OUT" and error["details"]["reason"] == "stop_keyword"
    assert not Message.objects.exists() and not OutboundMessage.objects.exists()


def test_roles_and_anonymous(http, clinic, owner):
    patient = _patient(clinic)
    created = _send(http, owner, {"patient_id": patient.public_id, "content": "Hola"}).json()
    viewer = _member("viewer", "viewer", clinic)
    _error(_send(http, viewer, {"patient_id": patient.public_id, "content": "Hola"}), 403)
    assert http.get(f"/api/v1/messages/{created['id']}", **_auth(viewer)).status_code == 200  # viewers read
    staff = _member("staff", "staff", clinic)
    assert _send(http, staff, {"patient_id": patient.public_id, "content": "Hola"}).status_code == 201
    therapist = _member("therapist", "therapist", clinic)
    _error(http.get(f"/api/v1/messages/{created['id']}", **_auth(therapist)), 403)
    _error(http.post("/api/v1/messages", {"patient_id": patient.public_id, "content": "Hola"}), 401)
    _error(http.get(f"/api/v1/messages/{created['id']}"), 401)
    assert Message.objects.count() == 2


def test_no_phone_number_or_text_in_the_logs(http, clinic, owner, logs):
    patient = _patient(clinic)
    assert _send(http, owner, {"patient_id": patient.public_id, "content": TEXT}).status_code == 201
    logs.assert_clean(PHONE, TEXT)


# --- GET /api/v1/messages/{id} ----------------------------------------------------------------------


def test_get_another_clinics_message_is_404_like_an_unknown_one(http, clinic, other_clinic, owner):
    other_owner = _member("other", "owner", other_clinic)
    foreign = _patient(other_clinic)
    theirs = _send(http, other_owner, {"patient_id": foreign.public_id, "content": "Hola"}).json()
    cross = _error(http.get(f"/api/v1/messages/{theirs['id']}", **_auth(owner)), 404)
    unknown = _error(http.get("/api/v1/messages/msg_unknown123", **_auth(owner)), 404)
    assert cross == unknown
    assert http.get(f"/api/v1/messages/{theirs['id']}", **_auth(other_owner)).status_code == 200


def test_get_an_inbound_patient_message(http, clinic, owner):
    patient = _patient(clinic)
    message = services.message_record(patient=patient, sender="patient", content="¿Tienen cita el martes?")
    response = http.get(f"/api/v1/messages/{message.public_id}", **_auth(owner))
    assert response.status_code == 200
    body = response.json()
    assert (body["sender"], body["status"], body["content"]) == ("patient", "received", "¿Tienen cita el martes?")


def test_an_erased_patients_messages_are_404(http, clinic, owner):
    patient = _patient(clinic)
    created = _send(http, owner, {"patient_id": patient.public_id, "content": "Hola"}).json()
    services.patient_erase(patient=patient, actor=ACTOR)
    _error(http.get(f"/api/v1/messages/{created['id']}", **_auth(owner)), 404)


def test_get_query_count_does_not_depend_on_the_conversation_size(http, clinic, owner, django_assert_max_num_queries):
    patient = _patient(clinic)
    created = _send(http, owner, {"patient_id": patient.public_id, "content": "Hola"}).json()
    for index in range(20):
        services.message_record(patient=patient, sender="patient", content=f"m{index}")
    with django_assert_max_num_queries(12):
        assert http.get(f"/api/v1/messages/{created['id']}", **_auth(owner)).status_code == 200


# --- Idempotency-Key --------------------------------------------------------------------------------


def test_a_retried_send_replays_the_answer_and_sends_nothing_twice(http, clinic, owner):
    patient = _patient(clinic)
    body = {"patient_id": patient.public_id, "content": TEXT}
    first = _send(http, owner, body, key="retry-7f3a")
    again = _send(http, owner, body, key="retry-7f3a")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Message.objects.count() == 1 and OutboundMessage.objects.count() == 1
    assert AuditEvent.objects.filter(action="message.sent").count() == 1
    assert Conversation.objects.get().message_count == 1


def test_the_same_key_with_another_body_is_422_naming_the_header(http, clinic, owner):
    patient = _patient(clinic)
    assert _send(http, owner, {"patient_id": patient.public_id, "content": "Hola"}, key="k1").status_code == 201
    error = _error(_send(http, owner, {"patient_id": patient.public_id, "content": "Adiós"}, key="k1"), 422)
    assert (error["code"], error["details"]) == ("idempotency_key_reused", {"header": "Idempotency-Key"})
    assert Message.objects.count() == 1


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "clé", "tab\there"], ids=["empty", "blank", "long", "utf8", "tab"])
def test_a_malformed_key_is_400_naming_the_header(http, clinic, owner, key):
    patient = _patient(clinic)
    headers = _auth(owner)
    headers["HTTP_IDEMPOTENCY_KEY"] = key
    response = http.post(
        "/api/v1/messages",
        {"patient_id": patient.public_id, "content": "Hola"},
        content_type="application/json",
        **headers,
    )
    assert _error(response, 400)["details"] == {"header": "Idempotency-Key"}
    assert not Message.objects.exists()


def test_keys_are_scoped_to_the_user(http, clinic, owner):
    patient = _patient(clinic)
    staff = _member("staff", "staff", clinic)
    body = {"patient_id": patient.public_id, "content": "Hola"}
    assert _send(http, owner, body, key="same").status_code == 201
    second = _send(http, staff, body, key="same")
    assert second.status_code == 201 and "Idempotent-Replayed" not in second
    assert Message.objects.count() == 2


def test_a_refused_request_is_not_stored_and_can_be_retried(http, clinic, owner):
    patient = _patient(clinic, window_open=False)
    body = {"patient_id": patient.public_id, "content": "Hola"}
    assert _send(http, owner, body, key="after-fix").status_code == 409  # outside the window, no template
    assert not IdempotencyKey.objects.exists()
    Patient.objects.filter(pk=patient.pk).update(last_inbound_at=utc_now())
    assert _send(http, owner, body, key="after-fix").status_code == 201
    assert Message.objects.count() == 1


def test_an_expired_key_runs_again(http, clinic, owner):
    patient = _patient(clinic)
    body = {"patient_id": patient.public_id, "content": "Hola"}
    assert _send(http, owner, body, key="old").status_code == 201
    IdempotencyKey.objects.update(expires_at=utc_now() - timedelta(seconds=1))
    again = _send(http, owner, body, key="old")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert Message.objects.count() == 2 and IdempotencyKey.objects.count() == 1


def test_voice_send_is_idempotent_too(http, settings, tmp_path, clinic, owner):
    settings.STORAGES = {
        **settings.STORAGES,
        "mark_media": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path), "base_url": None},
        },
    }
    audio = io.BytesIO()
    with wave.open(audio, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(b"\x00\x00" * 8000)
    patient = _patient(clinic)

    def send():
        from django.core.files.uploadedfile import SimpleUploadedFile

        upload = SimpleUploadedFile("a.wav", audio.getvalue(), content_type="audio/wav")
        return http.post(
            "/api/v1/messages/voice", {"patient_id": patient.public_id, "audio_file": upload}, **_auth(owner, "v-1")
        )

    first, again = send(), send()  # Django's client builds the same multipart each time; a client may not
    assert first.status_code == again.status_code == 201, first.content
    assert again["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    assert Message.objects.count() == 1 and OutboundMessage.objects.count() == 1
    assert len([path for path in tmp_path.rglob("*") if path.is_file()]) == 1


def test_appointment_create_is_idempotent(http, clinic, owner):
    patient = _patient(clinic)
    start = (utc_now() + timedelta(days=3)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    body = {"patient_id": patient.public_id, "start_time": start, "duration": 30}

    def book(payload, key="book-1"):
        return http.post("/api/v1/appointments", payload, content_type="application/json", **_auth(owner, key))

    first, again = book(body), book(body)
    assert first.status_code == again.status_code == 201, first.content
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Appointment.objects.count() == 1
    _error(book({**body, "duration": 45}), 422)
    _error(book(body, key="\x7f"), 400)
    assert book(body, key="book-2").status_code == 409  # a new key is a new booking: the overlap refuses it
    assert Appointment.objects.count() == 1
