"""Mark selectors: organization scoping (another clinic's id is NotFound like an unknown one), name search
ignoring case and accents, phone search in any format through the blind index, filters, and query counts
that stay flat as rows grow."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.domain import NotFound
from messaging.models import OutboundMessage
from patients import selectors, services
from patients.api.conversation_serializers import ConversationListItemOutput
from patients.api.serializers import PatientListItemOutput
from patients.models import Conversation, Message
from tests.patients.conftest import ACTOR, NOW

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def make_patient(organization, name="José García", phone="+34 612 34 56 78", **fields):
    return services.patient_create(
        organization=organization, name=name, phone_number=phone, actor=ACTOR, now=fields.pop("now", NOW), **fields
    )


def ids(rows) -> list[str]:
    return [row.public_id for row in rows]


# --- Scoping -------------------------------------------------------------------------------------------


def test_another_organizations_ids_are_not_found_like_unknown_ones(clinic, other_clinic):
    patient = make_patient(other_clinic)
    appointment = services.appointment_create(
        patient=patient, start_time=NOW + 48 * HOUR, duration=30, actor=ACTOR, now=NOW
    )
    conversation = Conversation.objects.create(organization=other_clinic, patient=patient)
    cases = [
        (selectors.patient_get, patient.public_id),
        (selectors.appointment_get, appointment.public_id),
        (selectors.conversation_get, conversation.public_id),
    ]
    for get, public_id in cases:
        with pytest.raises(NotFound) as foreign:
            get(organization=clinic, public_id=public_id)
        with pytest.raises(NotFound) as unknown:
            get(organization=clinic, public_id=public_id[:4] + "unknown")
        assert foreign.value.message == unknown.value.message
        assert get(organization=other_clinic, public_id=public_id).pk  # its own clinic finds it
    assert list(selectors.patient_list(organization=clinic)) == []
    assert list(selectors.appointment_list(organization=clinic)) == []
    assert list(selectors.conversation_list(organization=clinic)) == []
    assert list(selectors.appointment_list(organization=clinic, patient_id=patient.public_id)) == []


def test_phone_search_does_not_cross_organizations(clinic, other_clinic):
    make_patient(other_clinic)
    assert list(selectors.patient_list(organization=clinic, search="+34612345678")) == []
    assert selectors.patient_by_phone(organization=clinic, phone_e164="+34612345678") is None
    assert selectors.patient_by_phone(organization=other_clinic, phone_e164="+34612345678") is not None


# --- Search --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("term", ["jose", "JOSÉ", "garcía", "GARCIA", "sé gar", "  josé   garcía "])
def test_name_search_ignores_case_and_accents(clinic, term):
    jose = make_patient(clinic)
    make_patient(clinic, name="Núria Puig", phone="+34 698 765 432")
    assert ids(selectors.patient_list(organization=clinic, search=term)) == [jose.public_id]


def test_name_search_matches_accented_names_from_plain_terms(clinic):
    nuria = make_patient(clinic, name="Núria Puig i Sàbat", phone=None)
    assert ids(selectors.patient_list(organization=clinic, search="nuria puig i sabat")) == [nuria.public_id]
    assert ids(selectors.patient_list(organization=clinic, search="Pérez")) == []


@pytest.mark.parametrize(
    "term", ["+34612345678", "+34 612 34 56 78", "612 34 56 78", "612-345-678", "(612) 345678", "whatsapp:+34612345678"]
)
def test_phone_search_in_any_format(clinic, term):
    jose = make_patient(clinic)
    make_patient(clinic, name="Other", phone="+34 698 765 432")
    assert ids(selectors.patient_list(organization=clinic, search=term)) == [jose.public_id]


def test_phone_search_with_another_region(clinic):
    us = make_patient(clinic, name="Sam", phone="+1 415 555 2671")
    assert ids(selectors.patient_list(organization=clinic, search="(415) 555-2671", region="US")) == [us.public_id]
    assert ids(selectors.patient_list(organization=clinic, search="(415) 555-2671")) == []  # read as Spanish


def test_filters_and_order(clinic):
    old = make_patient(clinic, name="Old", phone=None, preferred_language="ca", now=NOW - 10 * HOUR)
    new = make_patient(clinic, name="New", phone=None, preferred_language="es")
    gone = make_patient(clinic, name="Gone", phone=None)
    services.patient_update(patient=old, status="inactive", actor=ACTOR, now=NOW - 9 * HOUR)
    services.patient_update(patient=gone, archived=True, actor=ACTOR, now=NOW - 20 * HOUR)
    assert ids(selectors.patient_list(organization=clinic)) == [new.public_id, old.public_id]
    assert ids(selectors.patient_list(organization=clinic, status="inactive")) == [old.public_id]
    assert ids(selectors.patient_list(organization=clinic, language="es")) == [new.public_id]
    assert gone.public_id in ids(selectors.patient_list(organization=clinic, include_archived=True))


def test_appointment_and_conversation_filters(clinic):
    jose = make_patient(clinic)
    nuria = make_patient(clinic, name="Núria", phone=None)
    early = services.appointment_create(patient=jose, start_time=NOW + 24 * HOUR, duration=30, actor=ACTOR, now=NOW)
    late = services.appointment_create(patient=nuria, start_time=NOW + 72 * HOUR, duration=30, actor=ACTOR, now=NOW)
    services.appointment_cancel(appointment=late, actor=ACTOR, now=NOW)
    assert ids(selectors.appointment_list(organization=clinic)) == [early.public_id, late.public_id]
    assert ids(selectors.appointment_list(organization=clinic, status="canceled")) == [late.public_id]
    assert ids(selectors.appointment_list(organization=clinic, patient_id=jose.public_id)) == [early.public_id]
    assert ids(selectors.appointment_list(organization=clinic, start=NOW + 48 * HOUR)) == [late.public_id]
    assert ids(selectors.appointment_list(organization=clinic, end=NOW + 48 * HOUR)) == [early.public_id]

    es = Conversation.objects.create(organization=clinic, patient=jose, language="es", start_time=NOW - HOUR)
    ca = Conversation.objects.create(organization=clinic, patient=nuria, language="ca", start_time=NOW)
    services.message_record(patient=jose, sender="patient", content="hola", now=NOW - HOUR)
    services.message_record(patient=jose, sender="assistant", content="¡hola!", now=NOW - HOUR)
    listed = list(selectors.conversation_list(organization=clinic))
    assert [(c.public_id, c.message_count) for c in listed] == [(ca.public_id, 0), (es.public_id, 2)]
    assert ids(selectors.conversation_list(organization=clinic, language="es")) == [es.public_id]
    assert ids(selectors.conversation_list(organization=clinic, patient_id=nuria.public_id)) == [ca.public_id]
    assert ids(selectors.conversation_list(organization=clinic, start=NOW - HOUR / 2)) == [ca.public_id]
    assert ids(selectors.conversation_list(organization=clinic, end=NOW - HOUR / 2)) == [es.public_id]


def test_message_status_follows_the_outbox(clinic):
    conversation = Conversation.objects.create(organization=clinic, patient=make_patient(clinic))
    outbound = OutboundMessage.objects.create(channel="whatsapp", status="delivered")
    Message.objects.create(organization=clinic, conversation=conversation, sender="patient", content="hola")
    Message.objects.create(
        organization=clinic, conversation=conversation, sender="system", content="hi", outbound_message=outbound
    )
    got = selectors.conversation_get(organization=clinic, public_id=conversation.public_id)
    assert [(m.sender, m.status) for m in got.messages.all()] == [("patient", "received"), ("system", "delivered")]


# --- Query counts ------------------------------------------------------------------------------------------


def _render_lists(clinic) -> None:
    """Render each row as the API does (patients and conversations: their list rows, so a field the selector
    left out costs a query per row here), and touch the rest: appointments' patient and reminders with their
    outbox status, messages with their status."""
    PatientListItemOutput.render_many(list(selectors.patient_list(organization=clinic)))
    ConversationListItemOutput.render_many(list(selectors.conversation_list(organization=clinic)))
    for appointment in selectors.appointment_list(organization=clinic):
        appointment.patient.name
        [(reminder.due_at, reminder.status, reminder.outbound_message) for reminder in appointment.reminders.all()]


def _grow(clinic, count: int, offset: int) -> None:
    for index in range(offset, offset + count):
        patient = make_patient(clinic, name=f"Patient {index}", phone=None)
        services.appointment_create(
            patient=patient, start_time=NOW + (24 + index) * HOUR, duration=30, actor=ACTOR, now=NOW
        )
        conversation = Conversation.objects.create(organization=clinic, patient=patient)
        outbound = OutboundMessage.objects.create(channel="whatsapp")
        Message.objects.create(organization=clinic, conversation=conversation, sender="patient", content="x")
        Message.objects.create(
            organization=clinic, conversation=conversation, sender="system", content="y", outbound_message=outbound
        )


def test_list_query_counts_stay_flat_as_rows_grow(clinic):
    _grow(clinic, 2, 0)
    with CaptureQueriesContext(connection) as few:
        _render_lists(clinic)
        conversation = selectors.conversation_list(organization=clinic).first()
        [
            m.status
            for m in selectors.conversation_get(organization=clinic, public_id=conversation.public_id).messages.all()
        ]
    _grow(clinic, 12, 2)
    with CaptureQueriesContext(connection) as many:
        _render_lists(clinic)
        conversation = selectors.conversation_list(organization=clinic).first()
        [
            m.status
            for m in selectors.conversation_get(organization=clinic, public_id=conversation.public_id).messages.all()
        ]
    assert len(few) == len(many) == 7, [q["sql"] for q in many.captured_queries]
