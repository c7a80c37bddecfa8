"""Mark conversations and messages (services, no HTTP): a message joins the patient's open conversation or
starts one after MARK_CONVERSATION_IDLE_MINUTES idle; last_activity moves; a clinic text is queued on
WhatsApp through the messaging outbox, refused (changing nothing) for an opted-out patient, and audited
without the number or the text."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from audit.models import AuditEvent
from core.domain import Conflict, Invalid
from messaging.models import OutboundMessage
from patients import services
from patients.models import Conversation, Message, Patient
from tests.patients.conftest import ACTOR, NOW

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)
TEXT = "Su resultado está listo, llame al 612 000 111"


def make_patient(organization, **fields) -> Patient:
    fields.setdefault("name", "Núria Puig")
    fields.setdefault("phone_number", "+34 612 34 56 78")
    patient = services.patient_create(organization=organization, actor=ACTOR, now=NOW, **fields)
    # The patient wrote a minute ago: WhatsApp's 24-hour window is open, free text may be sent.
    patient.last_inbound_at = NOW - MINUTE
    patient.save(update_fields=["last_inbound_at"])
    return patient


def record(patient, at, sender="patient", content="Hola"):
    return services.message_record(patient=patient, sender=sender, content=content, now=at)


@pytest.fixture(autouse=True)
def idle_30_minutes(settings):
    settings.MARK_CONVERSATION_IDLE_MINUTES = 30


def test_messages_within_the_idle_time_join_one_conversation(clinic):
    patient = make_patient(clinic, preferred_language="ca")
    first = record(patient, NOW)
    second = record(patient, NOW + 29 * MINUTE)
    third = record(patient, NOW + 58 * MINUTE)  # 29 min after the second: idle counts from the last message

    assert first.conversation_id == second.conversation_id == third.conversation_id
    conversation = Conversation.objects.get()
    assert (conversation.status, conversation.start_time, conversation.end_time) == ("open", NOW, None)
    assert conversation.language == "ca" and conversation.organization_id == clinic.pk
    assert list(conversation.messages.values_list("created_at", flat=True)) == [
        NOW,
        NOW + 29 * MINUTE,
        NOW + 58 * MINUTE,
    ]


def test_a_message_after_the_idle_time_ends_the_conversation_and_starts_a_new_one(clinic):
    patient = make_patient(clinic)
    old = record(patient, NOW).conversation
    record(patient, NOW + 10 * MINUTE)

    new = record(patient, NOW + 40 * MINUTE).conversation  # exactly 30 idle minutes: ended

    assert new.pk != old.pk and new.start_time == NOW + 40 * MINUTE and new.status == "open"
    old.refresh_from_db()
    assert (old.status, old.end_time) == ("closed", NOW + 10 * MINUTE)  # ends at its last activity
    assert Conversation.objects.filter(patient=patient, status="open").count() == 1


def test_the_idle_time_is_a_setting(clinic, settings):
    settings.MARK_CONVERSATION_IDLE_MINUTES = 120
    patient = make_patient(clinic)
    first = record(patient, NOW)
    assert record(patient, NOW + 119 * MINUTE).conversation_id == first.conversation_id
    assert record(patient, NOW + 239 * MINUTE).conversation_id != first.conversation_id


def test_conversations_are_per_patient(clinic, other_clinic):
    mine, theirs = make_patient(clinic), make_patient(other_clinic)
    a, b = record(mine, NOW), record(theirs, NOW + MINUTE)
    assert a.conversation_id != b.conversation_id
    assert b.conversation.organization_id == other_clinic.pk and b.organization_id == other_clinic.pk


def test_last_activity_of_patient_and_conversation_moves_with_messages(clinic):
    patient = make_patient(clinic)
    message = record(patient, NOW + 5 * MINUTE)
    patient.refresh_from_db()
    assert patient.last_activity == NOW + 5 * MINUTE
    assert services._conversation_last_activity(message.conversation) == NOW + 5 * MINUTE
    record(patient, NOW + 7 * MINUTE)
    patient.refresh_from_db()
    message.conversation.refresh_from_db()
    assert patient.last_activity == NOW + 7 * MINUTE
    assert message.conversation.message_count == 2
    assert services._conversation_last_activity(message.conversation) == NOW + 7 * MINUTE


def test_record_refuses_an_unknown_sender_and_stores_nothing(clinic):
    patient = make_patient(clinic)
    with pytest.raises(Invalid) as caught:
        record(patient, NOW, sender="robot")
    assert caught.value.details == {"field": "sender"}
    assert not Message.objects.exists() and not Conversation.objects.exists()


# --- message_send_text ------------------------------------------------------------------------------------


def test_send_text_stores_a_system_message_and_queues_it_on_whatsapp(clinic):
    patient = make_patient(clinic)
    message = services.message_send_text(organization=clinic, patient=patient, text=TEXT, actor=ACTOR, now=NOW)

    message.refresh_from_db()
    assert message.public_id.startswith("msg_") and message.sender == "system" and message.content == TEXT
    outbound = message.outbound_message
    assert (outbound.channel, outbound.recipient, outbound.body) == ("whatsapp", "+34612345678", TEXT)
    assert outbound.purpose == services.MESSAGE_PURPOSE and outbound.status == "queued"
    assert message.status == "queued"
    OutboundMessage.objects.filter(pk=outbound.pk).update(status="delivered")
    message.refresh_from_db()
    assert message.status == "delivered"  # read from the outbox row
    patient.refresh_from_db()
    assert patient.last_activity == NOW


def test_send_text_audit_event_has_ids_and_no_phone_or_text(clinic, caplog):
    patient = make_patient(clinic)
    caplog.set_level(logging.DEBUG)
    message = services.message_send_text(organization=clinic, patient=patient, text=TEXT, actor=ACTOR, now=NOW)

    event = AuditEvent.objects.get(action="message.sent")
    assert event.subject_id == message.public_id
    assert event.metadata == {
        "patient_id": patient.public_id,
        "conversation_id": message.conversation.public_id,
        "outbound_message_id": message.outbound_message.public_id,
    }
    everything = json.dumps([list(e.metadata.items()) for e in AuditEvent.objects.all()]) + caplog.text
    for secret in ("612", "34 56", "resultado", "+34"):
        assert secret not in everything


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"whatsapp_consent": False, "whatsapp_opt_out_reason": "stop_keyword"}, "WHATSAPP_OPTED_OUT"),
        ({"archived": True}, "PATIENT_ARCHIVED"),
        ({"phone": None, "phone_index": None}, "NO_PHONE_NUMBER"),
    ],
)
def test_send_text_refuses_a_patient_who_cannot_be_written_to_and_changes_nothing(clinic, change, code):
    patient = make_patient(clinic)
    for field, value in change.items():
        setattr(patient, field, value)
    patient.save()
    events_before = AuditEvent.objects.count()

    with pytest.raises(Conflict) as caught:
        services.message_send_text(organization=clinic, patient=patient, text=TEXT, actor=ACTOR, now=NOW)

    assert caught.value.code == code and caught.value.details["field"] == "patient_id"
    assert not OutboundMessage.objects.exists() and not Message.objects.exists()
    assert AuditEvent.objects.count() == events_before


def test_the_opt_out_refusal_names_why(clinic):
    patient = services.patient_whatsapp_opt_out(
        patient=make_patient(clinic), reason="stop_keyword", actor=ACTOR, now=NOW
    )
    with pytest.raises(Conflict) as caught:
        services.message_send_text(organization=clinic, patient=patient, text=TEXT, actor=ACTOR, now=NOW)
    assert caught.value.details == {"field": "patient_id", "reason": "stop_keyword"}
    assert "opted out" in caught.value.message


@pytest.mark.parametrize("text", ["", "   ", None, 42, "x" * (services.CONTENT_MAX + 1)])
def test_send_text_refuses_bad_content_and_changes_nothing(clinic, text):
    patient = make_patient(clinic)
    with pytest.raises(Invalid) as caught:
        services.message_send_text(organization=clinic, patient=patient, text=text, actor=ACTOR, now=NOW)
    assert caught.value.details == {"field": "content"}
    assert not OutboundMessage.objects.exists() and not Message.objects.exists()


def test_send_text_refuses_another_clinics_patient(clinic, other_clinic):
    theirs = make_patient(other_clinic)
    with pytest.raises(Invalid) as caught:
        services.message_send_text(organization=clinic, patient=theirs, text=TEXT, actor=ACTOR, now=NOW)
    assert caught.value.details == {"field": "patient_id"}
    assert not OutboundMessage.objects.exists()
