"""Mark webhook events (spec: "Webhook Payload"): each spec event published by the service that causes it,
to this clinic's subscribed Mark endpoints only, inside the service's transaction; bodies
{"id": "evt_...", "type", "created", "data"} with ids, codes and times only (no phone number, e-mail,
name, notes or message text); delivered to a real receiver on 127.0.0.1 with the exact bytes and the
X-Mark-Signature a receiver checks."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services as accounts_services
from accounts.models import User
from core.domain import Conflict
from patients import events, services
from patients.models import Conversation
from tests.patients.conftest import ACTOR, NOW
from tests.servers import LocalServer, Recorded, Reply
from webhooks import services as webhook_services
from webhooks.models import WebhookDelivery, WebhookEvent

pytestmark = pytest.mark.django_db

SECRET = "mark-receiver-secret-0123456789"
PHONE = "+34612345678"
EMAIL = "ana.garcia@example.com"
NAME = "Ana García Pérez"
NOTES = "Ansiedad tras el accidente"
TEXT = "Hola, necesito cambiar mi cita del jueves"
PROTECTED = [PHONE, PHONE.lstrip("+"), "612345678", EMAIL, NAME, "Garc", NOTES, TEXT, "accidente", "jueves"]


@pytest.fixture(autouse=True)
def _receivers_on_loopback(settings):
    settings.WEBHOOK_REQUIRE_HTTPS = False  # the receiver is http://127.0.0.1:<port>
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 2.0


@pytest.fixture
def enqueued(monkeypatch) -> list[int]:
    """Delivery ids handed to the broker after commit (instead of a broker)."""
    calls: list[int] = []
    monkeypatch.setattr(webhook_services, "RESOLVER", None)
    monkeypatch.setattr(webhook_services, "_enqueue", lambda delivery_id, countdown=None: calls.append(delivery_id))
    return calls


@pytest.fixture
def receiver():
    def handler(request: Recorded) -> Reply:
        return Reply(200, {"Content-Type": "application/json"}, b'{"ok":true}')

    with LocalServer(handler) as server:
        yield server


def _endpoint(organization, url="https://93.184.216.34/hooks", types=events.EVENT_TYPES):
    return events.webhook_register(organization=organization, url=url, secret=SECRET, events=list(types), actor=ACTOR)


def _events(*types: str) -> list[dict]:
    """Published events of these types (all when none given), oldest first, as their receivers get them."""
    rows = WebhookEvent.objects.order_by("created_at", "pk")
    if types:
        rows = rows.filter(type__in=types)
    return [json.loads(row.body) for row in rows]


def _assert_no_protected_data(bodies) -> None:
    text = json.dumps(bodies, ensure_ascii=False)
    for value in PROTECTED:
        assert value not in text, value


def _patient(clinic, **kwargs):
    return services.patient_create(
        organization=clinic, name=NAME, phone_number=PHONE, email=EMAIL, notes=NOTES, actor=ACTOR, now=NOW, **kwargs
    )


# --- A real receiver --------------------------------------------------------------------------------------


def test_a_receiver_gets_the_exact_bytes_signed_with_x_mark_signature(
    clinic, receiver, enqueued, frozen_ratelimit_clock, django_capture_on_commit_callbacks
):
    """Through the API, as a clinic would: configure the webhook, create a patient, deliver."""
    owner = User.objects.create_user(username="owner", password="pw-owner-123!")
    accounts_services.membership_set(user=owner, organization=clinic, role="owner", actor=ACTOR)
    http = Client(raise_request_exception=False)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(owner)}"}
    hook = http.post(
        "/api/v1/webhooks",
        {"url": receiver.url("/webhooks/mark"), "secret": SECRET, "events": ["patient.created"]},
        content_type="application/json",
        **auth,
    )
    assert hook.status_code == 201, hook.content
    with django_capture_on_commit_callbacks(execute=True):
        created = http.post(
            "/api/v1/patients",
            {"name": NAME, "phone_number": PHONE, "email": EMAIL, "notes": NOTES, "preferred_language": "es"},
            content_type="application/json",
            **auth,
        )
    assert created.status_code == 201, created.content
    (delivery_id,) = enqueued  # enqueued once the request's transaction committed
    assert webhook_services.webhook_delivery_attempt(delivery_id=delivery_id) == "succeeded"

    (request,) = receiver.requests
    event = WebhookEvent.objects.get()
    assert request.method == "POST" and request.path == "/webhooks/mark"
    assert request.body == event.body  # the exact bytes published
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Mark-Signature"], expected)
    assert request.headers["X-Mark-Event"] == "patient.created"
    assert request.headers["webhook-id"] == event.public_id
    body = json.loads(request.body)
    assert list(body) == ["id", "type", "created", "data"]
    assert body["id"] == event.public_id and body["id"].startswith("evt_")
    assert body["type"] == "patient.created"
    assert body["created"].endswith("Z")
    assert body["data"] == {
        "patient_id": created.json()["id"],
        "registration_date": created.json()["registration_date"],
        "preferred_language": "es",
        "status": "active",
        "source": "api",
    }
    _assert_no_protected_data(body)
    assert SECRET.encode() not in request.body


def test_a_tampered_body_does_not_verify(clinic, receiver, enqueued):
    """The check a receiver makes fails on any other bytes (the signature is over these bytes only)."""
    _endpoint(clinic, url=receiver.url("/r"), types=["patient.created"])
    _patient(clinic)
    (delivery,) = WebhookDelivery.objects.all()
    webhook_services.webhook_delivery_attempt(delivery_id=delivery.pk)
    (request,) = receiver.requests
    tampered = request.body.replace(b'"active"', b'"inactive"')
    assert tampered != request.body
    assert hmac.new(SECRET.encode(), tampered, hashlib.sha256).hexdigest() != request.headers["X-Mark-Signature"]


# --- Every spec event, from the service that causes it ------------------------------------------------------


def test_patient_events(clinic, enqueued):
    _endpoint(clinic)
    patient = _patient(clinic)
    services.patient_update(patient=patient, actor=ACTOR, name="Ana G.", notes="otra nota", preferred_language="ca")
    services.patient_update(patient=patient, actor=ACTOR)  # nothing changed: no event
    services.patient_whatsapp_opt_out(patient=patient, reason="stop_keyword", actor=ACTOR)
    public_id = patient.public_id
    services.patient_erase(patient=patient, actor=ACTOR)

    created, updated, opted_out, erased = _events()
    assert created["type"] == "patient.created" and created["data"]["patient_id"] == public_id
    assert updated["type"] == "patient.updated"
    assert updated["data"] == {
        "patient_id": public_id,
        "preferred_language": "ca",
        "status": "active",
        "whatsapp_consent": True,
        "updated_fields": ["name", "preferred_language", "notes"],
        "erased": False,
    }
    assert opted_out["data"]["updated_fields"] == ["whatsapp_consent"]
    assert opted_out["data"]["whatsapp_consent"] is False
    assert erased["type"] == "patient.updated"
    assert erased["data"] == {
        "patient_id": public_id,
        "preferred_language": None,
        "status": None,
        "whatsapp_consent": None,
        "updated_fields": [],
        "erased": True,
    }
    _assert_no_protected_data(_events())
    assert WebhookDelivery.objects.count() == 4  # one endpoint, four events


def test_appointment_events(clinic, enqueued):
    _endpoint(clinic)
    patient = _patient(clinic)
    start = NOW + timedelta(days=3)
    appointment = services.appointment_create(
        patient=patient, start_time=start, duration=60, notes=NOTES, location="Sala 2", actor=ACTOR, now=NOW
    )
    services.appointment_update(
        appointment=appointment, start_time=start + timedelta(hours=2), notes=TEXT, actor=ACTOR, now=NOW
    )
    services.appointment_cancel(appointment=appointment, reason=TEXT, actor=ACTOR, now=NOW)

    created, updated, canceled = _events("appointment.created", "appointment.updated", "appointment.canceled")
    base = {"appointment_id": appointment.public_id, "patient_id": patient.public_id}
    assert created["type"] == "appointment.created"
    assert created["data"] == {
        **base,
        "start_time": "2026-03-05T09:00:00.000Z",
        "end_time": "2026-03-05T10:00:00.000Z",
        "duration": 60,
        "status": "scheduled",
    }
    assert updated["type"] == "appointment.updated"
    assert updated["data"] == {
        **base,
        "start_time": "2026-03-05T11:00:00.000Z",
        "end_time": "2026-03-05T12:00:00.000Z",
        "duration": 60,
        "status": "rescheduled",
        "updated_fields": ["start_time", "notes"],
    }
    assert canceled["type"] == "appointment.canceled"
    assert canceled["data"] == {
        **base,
        "start_time": "2026-03-05T11:00:00.000Z",
        "end_time": "2026-03-05T12:00:00.000Z",
        "status": "canceled",
        "cancellation_time": "2026-03-02T09:00:00.000Z",
    }
    _assert_no_protected_data(_events())


def test_conversation_events(clinic, enqueued, settings):
    _endpoint(clinic)
    patient = _patient(clinic)
    services.message_record(patient=patient, sender="patient", content=TEXT, now=NOW)
    services.message_record(patient=patient, sender="patient", content=TEXT, now=NOW + timedelta(minutes=5))
    later = NOW + timedelta(minutes=5 + settings.MARK_CONVERSATION_IDLE_MINUTES + 1)
    services.message_record(patient=patient, sender="patient", content=TEXT, now=later)

    first, second = Conversation.objects.order_by("start_time")
    started, ended, restarted = _events("conversation.created", "conversation.updated")
    assert started == {
        "id": started["id"],
        "type": "conversation.created",
        "created": started["created"],
        "data": {
            "conversation_id": first.public_id,
            "patient_id": patient.public_id,
            "start_time": "2026-03-02T09:00:00.000Z",
            "language": "en",
        },
    }
    assert ended["type"] == "conversation.updated"
    assert ended["data"] == {
        "conversation_id": first.public_id,
        "patient_id": patient.public_id,
        "start_time": "2026-03-02T09:00:00.000Z",
        "end_time": "2026-03-02T09:05:00.000Z",
        "status": "closed",
        "language": "en",
        "message_count": 2,
    }
    assert restarted["type"] == "conversation.created"
    assert restarted["data"]["conversation_id"] == second.public_id
    _assert_no_protected_data(_events())


def test_conversation_updated_for_the_idle_sweeper(clinic, enqueued):
    """patients.events.conversation_updated is what the close-idle-conversations service calls."""
    _endpoint(clinic, types=["conversation.updated"])
    patient = _patient(clinic)
    services.message_record(patient=patient, sender="patient", content=TEXT, now=NOW)
    conversation = Conversation.objects.get()
    with transaction.atomic():
        conversation.status, conversation.end_time = "closed", NOW
        conversation.save(update_fields=["status", "end_time"])
        event = events.conversation_updated(Conversation.objects.get(pk=conversation.pk))
    assert event is not None
    (body,) = _events()
    assert body["data"]["status"] == "closed" and body["data"]["end_time"] == "2026-03-02T09:00:00.000Z"
    assert body["data"]["message_count"] == 1


# --- Audience and transaction -----------------------------------------------------------------------------


def test_only_this_clinics_active_endpoints_subscribed_to_the_type(clinic, other_clinic, enqueued):
    patients_hook = _endpoint(clinic, url="https://93.184.216.34/p", types=["patient.created"])
    _endpoint(clinic, url="https://93.184.216.34/a", types=["appointment.created"])
    disabled = _endpoint(clinic, url="https://93.184.216.34/off", types=["patient.created"])
    webhook_services.webhook_endpoint_disable(endpoint=disabled, reason="test", actor=ACTOR)
    _endpoint(other_clinic, url="https://93.184.216.34/other", types=["patient.created"])

    _patient(clinic)
    (delivery,) = WebhookDelivery.objects.select_related("endpoint")
    assert delivery.endpoint == patients_hook
    services.patient_create(organization=other_clinic, name="Bo", actor=ACTOR)
    assert WebhookDelivery.objects.filter(endpoint=patients_hook).count() == 1  # not the other clinic's event


def test_nothing_is_written_when_nobody_subscribes(clinic, other_clinic, enqueued):
    _endpoint(other_clinic)
    _endpoint(clinic, types=["appointment.canceled"])
    _patient(clinic)
    assert not WebhookEvent.objects.exists() and not enqueued


def test_an_event_exists_only_if_its_change_commits(clinic, enqueued, django_capture_on_commit_callbacks):
    _endpoint(clinic)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            _patient(clinic)
            assert WebhookEvent.objects.count() == 1
            raise RuntimeError("the caller's transaction fails after the service")
    assert not WebhookEvent.objects.exists() and not enqueued


def test_a_refused_change_publishes_nothing(clinic, enqueued):
    _endpoint(clinic)
    patient = _patient(clinic)
    appointment = services.appointment_create(
        patient=patient, start_time=NOW + timedelta(days=1), duration=30, actor=ACTOR, now=NOW
    )
    services.appointment_cancel(appointment=appointment, actor=ACTOR, now=NOW)
    before = WebhookEvent.objects.count()
    with pytest.raises(Conflict):
        services.appointment_cancel(appointment=appointment, actor=ACTOR, now=NOW)  # already cancelled
    assert WebhookEvent.objects.count() == before


def test_unknown_event_types_are_refused_by_publish(clinic):
    with pytest.raises(ValueError):
        events.publish(organization_pk=clinic.pk, event_type="patient.deleted", data=dict)
