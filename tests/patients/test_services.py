"""Mark services: patients (create, partial update, sync-owned fields, opt-out, erase) and appointments
(past/overlap rules, reminder planning and re-planning, cancel). Every write has its audit event."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection

from audit.models import AuditEvent
from core.domain import Conflict, Invalid
from core.encryption import decrypt_str
from patients import selectors, services
from patients.models import Appointment, Conversation, Message, Patient, PatientTombstone, Reminder
from tests.patients.conftest import ACTOR, NOW

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def raw_column(table: str, column: str, pk: int):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608 (names are constants)
        return cursor.fetchone()[0]


def make_patient(organization, **fields) -> Patient:
    fields.setdefault("name", "José García")
    fields.setdefault("phone_number", "+34 612 34 56 78")
    return services.patient_create(organization=organization, actor=ACTOR, now=NOW, **fields)


def book(patient, start, duration=60, **fields) -> Appointment:
    return services.appointment_create(
        patient=patient, start_time=start, duration=duration, actor=ACTOR, now=NOW, **fields
    )


# --- Patients -------------------------------------------------------------------------------------------


def test_create_normalises_encrypts_and_audits(clinic):
    patient = make_patient(
        clinic, phone_number="612 34 56 78", email=" Jane@Example.com ", notes="Prefers evenings", metadata={"a": 1}
    )
    patient.refresh_from_db()
    assert patient.public_id.startswith("pat_") and patient.uuid
    assert patient.phone == "+34612345678"  # national number read in the default region (ES)
    assert patient.email == "Jane@Example.com"
    assert patient.name_search == "jose garcia"
    assert patient.created_at == patient.last_activity == NOW
    assert (patient.source, patient.status, patient.language) == ("api", "active", "en")
    stored_phone = raw_column("patients_patient", "phone", patient.pk)
    assert "612" not in stored_phone and decrypt_str(stored_phone) == "+34612345678"
    assert "Prefers" not in raw_column("patients_patient", "notes", patient.pk)
    assert services.phone_index_of("+34612345678") == patient.phone_index
    [event] = events("patient.created")
    assert (event.subject_id, event.organization_id, event.metadata) == (
        patient.public_id,
        clinic.public_id,
        {"source": "api"},
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "  "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"phone_number": "12"}, "phone_number"),
        ({"phone_number": "+34 000"}, "phone_number"),
        ({"email": "not-an-email"}, "email"),
        ({"preferred_language": "spanish"}, "preferred_language"),
        ({"metadata": ["a"]}, "metadata"),
        ({"metadata": {"a": "x" * 20_000}}, "metadata"),
        ({"source": "fax"}, "source"),
    ],
)
def test_create_refuses_bad_input_naming_the_field_and_writes_nothing(clinic, fields, field):
    with pytest.raises(Invalid) as caught:
        make_patient(clinic, **fields)
    assert caught.value.details == {"field": field}
    assert not Patient.objects.exists() and not events("patient.created")


def test_external_id_is_unique_per_organization_only(clinic, other_clinic):
    make_patient(clinic, external_id="123", source="cliniko")
    with pytest.raises(Conflict):
        make_patient(clinic, external_id="123", source="cliniko")
    make_patient(other_clinic, external_id="123", source="cliniko")
    assert Patient.objects.filter(external_id="123").count() == 2


def test_update_is_partial_and_audits_field_names_only(clinic):
    patient = make_patient(clinic, email="a@example.com", notes="keep me")
    later = NOW + HOUR
    services.patient_update(patient=patient, name="Jane Smith-Johnson", preferred_language="ca", actor=ACTOR, now=later)
    patient.refresh_from_db()
    assert (patient.name, patient.name_search, patient.language) == ("Jane Smith-Johnson", "jane smith-johnson", "ca")
    assert (patient.email, patient.notes, patient.phone) == ("a@example.com", "keep me", "+34612345678")
    assert patient.last_activity == later
    [event] = events("patient.updated")
    assert event.metadata == {"fields": ["name", "preferred_language"]}


def test_update_refuses_bad_status_and_changes_nothing(clinic):
    patient = make_patient(clinic)
    with pytest.raises(Invalid) as caught:
        services.patient_update(patient=patient, name="New", status="deleted", actor=ACTOR, now=NOW)
    assert caught.value.details == {"field": "status"}
    patient.refresh_from_db()
    assert patient.name == "José García" and not events("patient.updated")


def test_sync_update_leaves_the_clinic_owned_fields(clinic):
    patient = make_patient(clinic, preferred_language="es", notes="clinic note", metadata={"k": "v"})
    services.patient_update(
        patient=patient,
        name="From Cliniko",
        preferred_language="en",
        notes="cliniko note",
        metadata={},
        whatsapp_consent=False,
        by_sync=True,
        actor=ACTOR,
        now=NOW,
    )
    patient.refresh_from_db()
    assert patient.name == "From Cliniko"
    assert (patient.language, patient.notes, patient.metadata, patient.whatsapp_consent) == (
        "es",
        "clinic note",
        {"k": "v"},
        True,
    )


def test_opt_out_keeps_reason_and_time(clinic):
    patient = make_patient(clinic)
    assert patient.can_receive_whatsapp
    services.patient_whatsapp_opt_out(patient=patient, reason="stop_keyword", actor=ACTOR, now=NOW + HOUR)
    patient.refresh_from_db()
    assert not patient.can_receive_whatsapp
    assert (patient.whatsapp_opt_out_reason, patient.whatsapp_consent_changed_at) == ("stop_keyword", NOW + HOUR)
    assert events("patient.whatsapp_opted_out")[0].metadata == {"reason": "stop_keyword"}


def test_erase_deletes_protected_data_tombstones_and_keeps_ids_only(clinic):
    patient = make_patient(clinic, external_id="cl-1", source="cliniko", email="e@example.com")
    conversation = Conversation.objects.create(organization=clinic, patient=patient, start_time=NOW)
    Message.objects.create(organization=clinic, conversation=conversation, sender="patient", content="hola")
    appointment = book(patient, NOW + 48 * HOUR, external_id="apt-9")
    assert appointment.reminders.filter(status="pending").count() == 2
    public_id = patient.public_id

    counts = services.patient_erase(patient=patient, actor=ACTOR, now=NOW)

    assert counts == {
        "conversations": 1,
        "appointments": 1,
        "reminders_cancelled": 2,
        "outbox_withdrawn": 0,
        "media_files": 0,
    }
    for model in (Patient, Conversation, Message, Appointment, Reminder):
        assert not model.objects.exists(), model
    assert PatientTombstone.objects.count() == 2
    assert "cl-1" not in str(list(PatientTombstone.objects.values()))  # the tombstone is a keyed hash
    assert services.is_tombstoned(organization=clinic, kind="patient", external_id="cl-1")
    assert services.is_tombstoned(organization=clinic, kind="appointment", external_id="apt-9")
    [event] = events("patient.erased")
    assert event.subject_id == public_id and event.metadata["appointment_ids"] == [appointment.public_id]
    assert "e@example.com" not in str(event.metadata) and "612" not in str(event.metadata)
    with pytest.raises(Conflict):  # a later sync (or anyone) cannot bring the patient back
        make_patient(clinic, external_id="cl-1", source="cliniko")


def test_erase_tombstones_only_in_its_organization(clinic, other_clinic):
    services.patient_erase(patient=make_patient(clinic, external_id="cl-1"), actor=ACTOR, now=NOW)
    assert not services.is_tombstoned(organization=other_clinic, kind="patient", external_id="cl-1")
    make_patient(other_clinic, external_id="cl-1")


# --- Appointments and reminders ---------------------------------------------------------------------------


def test_create_appointment_plans_two_reminders_and_moves_last_activity(clinic):
    patient = make_patient(clinic)
    start = NOW + 72 * HOUR
    appointment = services.appointment_create(
        patient=patient,
        start_time=start,
        duration=45,
        appointment_type="initial_consultation",
        location="Online (Zoom)",
        notes="first",
        actor=ACTOR,
        now=NOW + HOUR,
    )
    assert appointment.public_id.startswith("apt_")
    assert appointment.end_time == start + timedelta(minutes=45)
    assert appointment.status == "scheduled"
    reminders = {r.kind: (r.due_at, r.status) for r in appointment.reminders.all()}
    assert reminders == {"24h": (start - 24 * HOUR, "pending"), "30min": (start - timedelta(minutes=30), "pending")}
    patient.refresh_from_db()
    assert patient.last_activity == NOW + HOUR
    assert events("appointment.created")[0].metadata == {"patient_id": patient.public_id}


def test_reminder_offsets_come_from_settings(clinic, settings):
    settings.MARK_REMINDER_24H_MINUTES = 120
    settings.MARK_REMINDER_30MIN_MINUTES = 10
    start = NOW + 72 * HOUR
    appointment = book(make_patient(clinic), start)
    assert sorted(r.due_at for r in appointment.reminders.all()) == [start - 2 * HOUR, start - timedelta(minutes=10)]


def test_reminder_whose_time_has_passed_is_skipped(clinic):
    start = NOW + 2 * HOUR  # the 24h reminder would be 22 hours late
    appointment = book(make_patient(clinic), start)
    assert {r.kind: r.status for r in appointment.reminders.all()} == {"24h": "skipped", "30min": "pending"}


@pytest.mark.parametrize("start", [NOW, NOW - HOUR])
def test_start_in_the_past_is_invalid(clinic, start):
    with pytest.raises(Invalid) as caught:
        book(make_patient(clinic), start)
    assert caught.value.details == {"field": "start_time"}
    assert not Appointment.objects.exists()


@pytest.mark.parametrize("duration", [0, -5, 24 * 60 + 1, "60", 1.5, True])
def test_bad_duration_is_invalid(clinic, duration):
    with pytest.raises(Invalid) as caught:
        book(make_patient(clinic), NOW + 48 * HOUR, duration=duration)
    assert caught.value.details == {"field": "duration"}


def test_naive_start_is_invalid(clinic):
    with pytest.raises(Invalid):
        book(make_patient(clinic), (NOW + 48 * HOUR).replace(tzinfo=None))


def test_overlap_for_the_same_patient_is_a_conflict(clinic):
    patient = make_patient(clinic)
    start = NOW + 48 * HOUR
    book(patient, start, duration=60)
    for other_start, duration in [
        (start, 30),
        (start + timedelta(minutes=59), 30),
        (start - 30 * timedelta(minutes=1), 31),
    ]:
        with pytest.raises(Conflict):
            book(patient, other_start, duration=duration)
    # Back to back is fine, so is another patient at the same time.
    book(patient, start + HOUR, duration=30)
    book(patient, start - timedelta(minutes=30), duration=30)
    book(make_patient(clinic, name="Other"), start, duration=60)
    assert Appointment.objects.count() == 4
    assert len(events("appointment.created")) == 4


def test_cancelled_appointment_frees_the_slot(clinic):
    patient = make_patient(clinic)
    first = book(patient, NOW + 48 * HOUR)
    services.appointment_cancel(appointment=first, actor=ACTOR, now=NOW)
    book(patient, NOW + 48 * HOUR)


def test_reschedule_replans_reminders(clinic):
    patient = make_patient(clinic)
    appointment = book(patient, NOW + 48 * HOUR)
    Reminder.objects.filter(appointment=appointment, kind="24h").update(status="sent")
    new_start = NOW + 96 * HOUR
    services.appointment_update(appointment=appointment, start_time=new_start, duration=45, actor=ACTOR, now=NOW)
    appointment.refresh_from_db()
    assert (appointment.status, appointment.end_time) == ("rescheduled", new_start + timedelta(minutes=45))
    reminders = {r.kind: (r.due_at, r.status) for r in appointment.reminders.all()}
    assert reminders == {
        "24h": (new_start - 24 * HOUR, "pending"),
        "30min": (new_start - timedelta(minutes=30), "pending"),
    }
    assert Reminder.objects.count() == 2
    assert events("appointment.updated")[0].metadata == {"fields": ["start_time", "duration"], "rescheduled": True}


def test_update_without_moving_keeps_reminders(clinic):
    appointment = book(make_patient(clinic), NOW + 48 * HOUR)
    Reminder.objects.filter(appointment=appointment, kind="24h").update(status="sent")
    services.appointment_update(appointment=appointment, notes="bring x-rays", actor=ACTOR, now=NOW)
    assert appointment.reminders.get(kind="24h").status == "sent"
    appointment.refresh_from_db()
    assert (appointment.status, appointment.notes) == ("scheduled", "bring x-rays")


def test_reschedule_into_an_overlap_or_the_past_changes_nothing(clinic):
    patient = make_patient(clinic)
    book(patient, NOW + 48 * HOUR)
    second = book(patient, NOW + 72 * HOUR)
    with pytest.raises(Conflict):
        services.appointment_update(appointment=second, start_time=NOW + 48 * HOUR, actor=ACTOR, now=NOW)
    with pytest.raises(Invalid):
        services.appointment_update(appointment=second, start_time=NOW - HOUR, actor=ACTOR, now=NOW)
    second.refresh_from_db()
    assert (second.start_time, second.status) == (NOW + 72 * HOUR, "scheduled")
    assert not events("appointment.updated")


def test_longer_duration_into_the_next_appointment_is_a_conflict(clinic):
    patient = make_patient(clinic)
    first = book(patient, NOW + 48 * HOUR, duration=60)
    book(patient, NOW + 49 * HOUR, duration=60)
    with pytest.raises(Conflict):
        services.appointment_update(appointment=first, duration=90, actor=ACTOR, now=NOW)


def test_cancel_skips_pending_reminders_and_keeps_sent_ones(clinic):
    appointment = book(make_patient(clinic), NOW + 48 * HOUR)
    Reminder.objects.filter(appointment=appointment, kind="24h").update(status="sent")
    services.appointment_cancel(appointment=appointment, reason="Patient unavailable", actor=ACTOR, now=NOW + HOUR)
    appointment.refresh_from_db()
    assert (appointment.status, appointment.cancelled_at) == ("canceled", NOW + HOUR)
    assert appointment.cancellation_reason == "Patient unavailable"
    assert {r.kind: r.status for r in appointment.reminders.all()} == {"24h": "sent", "30min": "skipped"}
    assert list(selectors.reminders_due(now=NOW + 100 * HOUR)) == []
    assert events("appointment.cancelled")[0].metadata == {"reminders_skipped": 1}


def test_cancel_twice_and_change_after_cancel_are_conflicts(clinic):
    appointment = book(make_patient(clinic), NOW + 48 * HOUR)
    services.appointment_cancel(appointment=appointment, actor=ACTOR, now=NOW)
    with pytest.raises(Conflict):
        services.appointment_cancel(appointment=appointment, actor=ACTOR, now=NOW)
    with pytest.raises(Conflict):
        services.appointment_update(appointment=appointment, start_time=NOW + 96 * HOUR, actor=ACTOR, now=NOW)
    assert len(events("appointment.cancelled")) == 1


def test_status_canceled_through_update_is_refused(clinic):
    appointment = book(make_patient(clinic), NOW + 48 * HOUR)
    with pytest.raises(Invalid):
        services.appointment_update(appointment=appointment, status="canceled", actor=ACTOR, now=NOW)


def test_reminders_due_lists_only_pending_due_ones(clinic):
    start = NOW + 48 * HOUR
    appointment = book(make_patient(clinic), start)
    assert list(selectors.reminders_due(now=NOW)) == []
    [due] = selectors.reminders_due(now=start - 24 * HOUR)
    assert (due.appointment_id, due.kind) == (appointment.pk, "24h")


def test_erase_withdraws_queued_messages_and_removes_audio_after_commit(
    clinic, settings, tmp_path, django_capture_on_commit_callbacks
):
    import io

    from messaging.models import OutboundMessage
    from patients import media

    root = tmp_path / "mark-media"
    settings.STORAGES = {
        **settings.STORAGES,
        "mark_media": {**settings.STORAGES["mark_media"], "OPTIONS": {"location": str(root), "base_url": None}},
    }
    patient = make_patient(clinic, phone_number="+34612345678")
    Patient.objects.filter(pk=patient.pk).update(last_inbound_at=NOW - timedelta(minutes=5))
    patient.refresh_from_db()
    sent_text = services.message_send_text(organization=clinic, patient=patient, text="Hola", actor=ACTOR, now=NOW)
    queued = OutboundMessage.objects.get(pk=sent_text.outbound_message_id)
    assert queued.status == OutboundMessage.Status.QUEUED
    voice = services.message_record(patient=patient, sender="patient", content="", content_type="voice", now=NOW)
    voice.media = media.audio_store(organization=clinic, fileobj=io.BytesIO(b"OggS" + b"\0" * 60), format="ogg")
    voice.save(update_fields=["media"])
    file = root / voice.media.name
    assert file.is_file()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        counts = services.patient_erase(patient=patient, actor=ACTOR, now=NOW)
    assert file.is_file()  # rows first, files after the commit
    for callback in callbacks:
        callback()

    assert not file.exists()
    queued.refresh_from_db()
    assert (queued.status, queued.last_error) == (OutboundMessage.Status.FAILED, services.ERASED_WITHDRAWN)
    assert queued.next_attempt_at is None
    assert (counts["outbox_withdrawn"], counts["media_files"]) == (1, 1)
    assert events("patient.erased")[0].metadata["outbox_withdrawn"] == 1
