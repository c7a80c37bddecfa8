"""whatsapp_queue and the clinic-started sends built on it: the clinic's sender, free text only inside
WhatsApp's 24-hour window, the clinic's template (Content SID + variables, per language) outside it, and
what each caller does without one (POST /messages 409, reminders skipped, no cancellation notice). One
test sends a reminder template end to end to the Twilio-like server on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services as accounts_services
from accounts.models import User
from audit.models import AuditEvent
from core.domain import Conflict
from core.time import utc_now
from messaging.models import OutboundMessage
from messaging.tasks import send_message
from patients import services
from patients.models import Message, Patient, Reminder
from patients.services.clinic_settings import clinic_settings_update
from patients.services.whatsapp import OUTSIDE_WINDOW, template_sid, whatsapp_queue, whatsapp_window_open
from tests.patients.conftest import ACTOR, NOW

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
CLINIC_NUMBER = "+34911234567"
SERVICE_SID = "MG" + "ab" * 16
PHONE = "+34612345678"
TEXT = "Su informe está listo"


def hx(n: int) -> str:
    return "HX" + f"{n:032x}"


TEMPLATES = {
    "reminder_24h": {"es": hx(1), "en": hx(2)},
    "reminder_30min": {"en": hx(3)},
    "appointment_cancelled": {"es": hx(4)},
    "clinic_message": {"en": hx(5), "es-MX": hx(6)},
}


def make_patient(clinic, *, wrote_ago: timedelta | None = None, language: str = "es") -> Patient:
    patient = services.patient_create(
        organization=clinic, name="Núria Puig", phone_number=PHONE, preferred_language=language, actor=ACTOR, now=NOW
    )
    if wrote_ago is not None:
        patient.last_inbound_at = NOW - wrote_ago
        patient.save(update_fields=["last_inbound_at"])
    return patient


def configure(clinic, **changes):
    return clinic_settings_update(organization=clinic, actor=ACTOR, **changes)


def queue(patient, **kwargs):
    kwargs.setdefault("body", TEXT)
    kwargs.setdefault("purpose", "mark.message")
    kwargs.setdefault("actor", ACTOR)
    kwargs.setdefault("now", NOW)
    return whatsapp_queue(patient=patient, **kwargs)


# --- Sender ----------------------------------------------------------------------------------------------


def test_the_sender_is_the_clinics_messaging_service_else_its_number_else_the_platforms(clinic):
    patient = make_patient(clinic, wrote_ago=HOUR)
    assert queue(patient).sender == ""  # no settings: TWILIO_WHATSAPP_FROM at send time
    configure(clinic, whatsapp_number=CLINIC_NUMBER)
    assert queue(patient).sender == CLINIC_NUMBER
    configure(clinic, whatsapp_messaging_service_sid=SERVICE_SID)
    assert queue(patient).sender == SERVICE_SID


# --- The window ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wrote_ago, open_",
    [
        (None, False),
        (timedelta(minutes=1), True),
        (timedelta(hours=23, minutes=59), True),
        (timedelta(hours=24), False),
    ],
)
def test_the_window_is_24_hours_after_the_patients_last_message(clinic, wrote_ago, open_):
    assert whatsapp_window_open(make_patient(clinic, wrote_ago=wrote_ago), now=NOW) is open_


def test_inside_the_window_free_text_and_media_are_sent(clinic):
    configure(clinic, whatsapp_templates=TEMPLATES)
    patient = make_patient(clinic, wrote_ago=HOUR)
    message = queue(patient, template="clinic_message", variables={"1": "x"}, media_url="https://example.com/a.ogg")
    assert (message.body, message.content_sid, message.content_variables) == (TEXT, "", "")
    assert message.media_url == "https://example.com/a.ogg" and message.recipient == PHONE


def test_outside_the_window_the_template_in_the_patients_language_is_sent_with_its_variables(clinic):
    configure(clinic, whatsapp_templates=TEMPLATES)
    patient = make_patient(clinic, wrote_ago=timedelta(days=3))
    message = queue(patient, template="reminder_24h", variables={"1": "Clínica Sol", "2": "03/03/2026", "3": "10:30"})
    assert message.content_sid == hx(1)  # es
    assert json.loads(message.content_variables) == {"1": "Clínica Sol", "2": "03/03/2026", "3": "10:30"}
    assert message.body == TEXT  # the rendered text, kept for the record


@pytest.mark.parametrize(
    "language, template, expected",
    [("es-MX", "clinic_message", hx(6)), ("es-ES", "reminder_24h", hx(1)), ("fr", "reminder_24h", hx(2)),
     ("ar", "reminder_30min", hx(3)), ("ar", "appointment_cancelled", "")],
)  # fmt: skip
def test_the_template_language_falls_back_to_the_base_language_then_english(clinic, language, template, expected):
    settings = configure(clinic, whatsapp_templates=TEMPLATES)
    assert template_sid(settings, template=template, language=language) == expected


@pytest.mark.parametrize("case", ["never_wrote", "no_template", "no_template_for_name", "media"])
def test_outside_the_window_without_a_template_nothing_is_queued(clinic, case):
    configure(clinic, whatsapp_templates={"reminder_30min": {"en": hx(3)}})
    patient = make_patient(clinic, wrote_ago=None if case == "never_wrote" else timedelta(days=2))
    kwargs = {"template": None if case == "no_template" else "clinic_message"}
    if case == "media":
        kwargs = {"template": "reminder_30min", "media_url": "https://example.com/a.ogg"}
    with pytest.raises(Conflict) as refused:
        queue(patient, **kwargs)
    assert refused.value.code == OUTSIDE_WINDOW
    assert refused.value.details["reason"] == "outside_whatsapp_window"
    assert not OutboundMessage.objects.exists()


def test_an_opted_out_patient_is_refused_even_inside_the_window(clinic):
    patient = make_patient(clinic, wrote_ago=HOUR)
    services.patient_whatsapp_opt_out(patient=patient, reason="stop_keyword", actor=ACTOR)
    with pytest.raises(Conflict) as refused:
        queue(patient)
    assert refused.value.code == "WHATSAPP_OPTED_OUT"
    assert not OutboundMessage.objects.exists()


# --- POST /messages --------------------------------------------------------------------------------------


@pytest.fixture
def owner_auth(clinic):
    user = User.objects.create_user(username="owner", password="pw-owner-123!")
    accounts_services.membership_set(user=user, organization=clinic, role="owner", actor=ACTOR)
    return {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(user)}"}


def _send(http, auth, patient):
    return http.post(
        "/api/v1/messages",
        {"patient_id": patient.public_id, "content": TEXT, "content_type": "text"},
        content_type="application/json",
        **auth,
    )


def test_post_messages_outside_the_window_without_a_template_is_409_naming_why(
    clinic, owner_auth, frozen_ratelimit_clock
):
    patient = make_patient(clinic)  # never wrote
    response = _send(Client(), owner_auth, patient)
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == OUTSIDE_WINDOW and error["details"]["reason"] == "outside_whatsapp_window"
    assert not Message.objects.exists() and not OutboundMessage.objects.exists()


def test_post_messages_outside_the_window_goes_as_the_clinic_message_template(
    clinic, owner_auth, frozen_ratelimit_clock
):
    configure(clinic, whatsapp_templates=TEMPLATES, whatsapp_number=CLINIC_NUMBER)
    patient = make_patient(clinic, language="en")
    response = _send(Client(), owner_auth, patient)
    assert response.status_code == 201, response.content
    outbound = OutboundMessage.objects.get()
    assert (outbound.content_sid, outbound.sender) == (hx(5), CLINIC_NUMBER)
    assert json.loads(outbound.content_variables) == {"1": clinic.name, "2": TEXT}


def test_post_messages_inside_the_window_is_free_text(clinic, owner_auth, frozen_ratelimit_clock):
    patient = make_patient(clinic)
    Patient.objects.filter(pk=patient.pk).update(last_inbound_at=utc_now() - HOUR)
    assert _send(Client(), owner_auth, patient).status_code == 201
    outbound = OutboundMessage.objects.get()
    assert (outbound.body, outbound.content_sid) == (TEXT, "")


# --- Reminders -------------------------------------------------------------------------------------------

START = NOW + timedelta(days=2)


def _book(patient):
    return services.appointment_create(patient=patient, start_time=START, duration=30, actor=ACTOR, now=NOW)


def _reminder(appointment, kind="24h") -> Reminder:
    return Reminder.objects.select_related("outbound_message").get(appointment=appointment, kind=kind)


def test_a_reminder_outside_the_window_without_a_template_is_skipped_never_sent_as_free_text(clinic):
    appointment = _book(make_patient(clinic, wrote_ago=HOUR))  # the window will have closed when it is due
    due = _reminder(appointment).due_at
    assert services.reminders_sweep(now=due)["skipped"] == 1
    assert _reminder(appointment).status == "skipped"
    assert not OutboundMessage.objects.exists() and not Message.objects.exists()
    event = AuditEvent.objects.get(action="reminder.skipped")
    assert event.metadata["reason"] == "outside_whatsapp_window"


def test_a_reminder_inside_the_window_without_a_template_is_free_text(clinic):
    patient = make_patient(clinic)
    appointment = _book(patient)
    due = _reminder(appointment).due_at
    Patient.objects.filter(pk=patient.pk).update(last_inbound_at=due - HOUR)  # the patient wrote today
    assert services.reminders_sweep(now=due)["sent"] == 1
    outbound = _reminder(appointment).outbound_message
    assert outbound.content_sid == "" and outbound.body.startswith("Recordatorio de")


def test_a_reminder_outside_the_window_is_the_template_with_clinic_date_and_time_in_the_clinics_zone(clinic):
    configure(clinic, whatsapp_templates=TEMPLATES, time_zone="America/New_York", whatsapp_number=CLINIC_NUMBER)
    appointment = _book(make_patient(clinic))
    assert services.reminders_sweep(now=_reminder(appointment).due_at)["sent"] == 1
    outbound = _reminder(appointment).outbound_message
    local = START.astimezone(ZoneInfo("America/New_York"))
    assert outbound.content_sid == hx(1) and outbound.sender == CLINIC_NUMBER
    assert json.loads(outbound.content_variables) == {
        "1": clinic.name,
        "2": local.strftime("%d/%m/%Y"),
        "3": local.strftime("%H:%M"),
    }
    assert local.strftime("%H:%M") in outbound.body  # the record text uses the same zone
    assert START.strftime("%H:%M") != local.strftime("%H:%M")  # the zone matters for this start


def test_a_reminder_template_goes_to_twilio_as_content_sid_from_the_clinics_number(clinic, twilio, settings):
    configure(clinic, whatsapp_templates=TEMPLATES, whatsapp_number=CLINIC_NUMBER)
    appointment = _book(make_patient(clinic))
    services.reminders_sweep(now=_reminder(appointment).due_at)
    outbound = _reminder(appointment).outbound_message
    # The send task does not look at the clock's "now" of the sweeper: make it due for real.
    OutboundMessage.objects.filter(pk=outbound.pk).update(next_attempt_at=utc_now() - timedelta(seconds=5))
    assert send_message.run(outbound.pk) == "sent"
    form = twilio.form()
    assert (form["From"], form["To"], form["ContentSid"]) == (f"whatsapp:{CLINIC_NUMBER}", f"whatsapp:{PHONE}", hx(1))
    assert json.loads(form["ContentVariables"])["1"] == clinic.name
    assert "Body" not in form and twilio.problems == []


# --- Cancellation notice ---------------------------------------------------------------------------------


def test_a_cancel_notice_outside_the_window_without_a_template_is_not_sent_and_the_cancel_stands(clinic):
    appointment = _book(make_patient(clinic))
    appointment, sent = services.appointment_cancel_and_notify(
        appointment=appointment, actor=ACTOR, notify_patient=True, now=NOW
    )
    assert sent is False and appointment.status == "canceled"
    assert not OutboundMessage.objects.exists() and not Message.objects.exists()


def test_a_cancel_notice_outside_the_window_is_the_template(clinic):
    configure(clinic, whatsapp_templates=TEMPLATES)
    appointment = _book(make_patient(clinic))
    _, sent = services.appointment_cancel_and_notify(appointment=appointment, actor=ACTOR, notify_patient=True, now=NOW)
    assert sent is True
    outbound = OutboundMessage.objects.get()
    assert outbound.content_sid == hx(4) and "cancelada" in outbound.body
    assert json.loads(outbound.content_variables)["1"] == clinic.name
