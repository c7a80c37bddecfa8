"""sync.importing: Cliniko pages -> patients, appointments, appointment types and practitioners.

Records are built with the client's dataclasses (no network). Every call is one page: bulk upserts on
(organization, external_id), a statement count that does not grow with the page, idempotent."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services as accounts_services
from audit.models import AuditEvent
from core.actors import Actor
from core.encryption import decrypt_str
from patients import services as patient_services
from patients.models import Appointment, Patient, PatientTombstone, Reminder, Source, fold_name
from patients.services.clinic_settings import clinic_settings_update
from sync import importing
from sync.clients import (
    ClinikoAppointment,
    ClinikoAppointmentType,
    ClinikoPatient,
    ClinikoPractitioner,
    PhoneNumber,
)
from sync.models import ClinikoAppointmentType as StoredType
from sync.models import ClinikoPractitioner as StoredPractitioner

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ACTOR = Actor.system("tests")


@pytest.fixture
def clinic(db):
    organization = accounts_services.organization_create(name="Clínica Sol", actor=ACTOR)
    # Reminders of synced appointments are the clinic's choice (off by default; see the test below).
    clinic_settings_update(organization=organization, remind_synced_appointments=True, actor=ACTOR)
    return organization


@pytest.fixture
def other_clinic(db):
    organization = accounts_services.organization_create(name="Other clinic", actor=ACTOR)
    clinic_settings_update(organization=organization, remind_synced_appointments=True, actor=ACTOR)
    return organization


def patient_record(external_id="1001", **overrides) -> ClinikoPatient:
    fields = {
        "id": external_id,
        "first_name": "Ana",
        "last_name": "Gómez",
        "email": "ana@example.es",
        "phone_numbers": (PhoneNumber("Home", "931 234 567"), PhoneNumber("Mobile", "612 345 678")),
        "date_of_birth": None,
        "archived_at": None,
        "deleted_at": None,
        "created_at": datetime(2024, 1, 15, 9, 0, tzinfo=UTC),
        "updated_at": datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
    }
    fields.update(overrides)
    return ClinikoPatient(**fields)


def appointment_record(external_id="5001", patient_id="1001", start=None, minutes=45, **overrides):
    start = start or NOW + timedelta(days=3)
    fields = {
        "id": external_id,
        "patient_id": patient_id,
        "practitioner_id": None,
        "appointment_type_id": None,
        "business_id": None,
        "starts_at": start,
        "ends_at": start + timedelta(minutes=minutes),
        "cancelled_at": None,
        "deleted_at": None,
        "archived_at": None,
        "did_not_arrive": False,
        "patient_arrived": False,
        "notes": "Lower back pain treatment",
        "created_at": datetime(2026, 2, 1, 9, 0, tzinfo=UTC),
        "updated_at": datetime(2026, 2, 1, 9, 0, tzinfo=UTC),
    }
    fields.update(overrides)
    return ClinikoAppointment(**fields)


def patients(organization, records, now=NOW, region="ES"):
    return importing.import_patients(organization=organization, records=records, region=region, now=now)


def appointments(organization, records, now=NOW):
    return importing.import_appointments(organization=organization, records=records, now=now)


def total(counts) -> int:
    return counts.created + counts.updated + counts.linked + counts.skipped + counts.failed


# --- Patients ------------------------------------------------------------------------------------------


def test_a_new_cliniko_patient_is_created_with_the_fields_cliniko_owns(clinic):
    counts = patients(clinic, [patient_record()])

    assert (counts.processed, counts.created, counts.updated, counts.linked) == (1, 1, 0, 0)
    patient = Patient.objects.get(organization=clinic, external_id="1001")
    assert patient.name == "Ana Gómez"
    assert patient.name_search == fold_name("Ana Gómez") == "ana gomez"
    assert patient.phone == "+34612345678"  # the Mobile number first, read in the business's country
    assert patient.phone_index == patient_services.phone_index_of("+34612345678")
    assert patient.email == "ana@example.es"
    assert patient.email_index  # an exact lookup by e-mail finds it
    assert patient.source == Source.CLINIKO
    assert (patient.archived, patient.status) == (False, Patient.Status.ACTIVE)
    assert patient.last_synced_at == NOW
    assert patient.created_at == datetime(2024, 1, 15, 9, 0, tzinfo=UTC)  # Cliniko's registration date
    assert (patient.language, patient.notes, patient.metadata, patient.whatsapp_consent) == ("en", "", {}, True)


def test_an_update_rewrites_cliniko_fields_and_keeps_what_the_clinic_set_in_mark(clinic):
    patients(clinic, [patient_record()])
    patient = Patient.objects.get(external_id="1001")
    public_id, uuid = patient.public_id, patient.uuid
    patient_services.patient_update(
        patient=patient,
        actor=ACTOR,
        preferred_language="ca",
        notes="Prefers mornings",
        metadata={"insurer": "x"},
        status="inactive",
        whatsapp_consent=False,
        now=NOW,
    )

    later = NOW + timedelta(hours=1)
    counts = patients(
        clinic,
        [
            patient_record(
                first_name="Anna",
                last_name="Gómez Puig",
                email="anna@example.cat",
                phone_numbers=(PhoneNumber("Mobile", "+34 699 111 222"),),
            )
        ],
        now=later,
    )

    assert (counts.created, counts.updated) == (0, 1)
    patient = Patient.objects.get(external_id="1001")
    assert (patient.public_id, patient.uuid) == (public_id, uuid)
    assert patient.name == "Anna Gómez Puig" and patient.name_search == "anna gomez puig"
    assert patient.phone == "+34699111222" and patient.phone_index == patient_services.phone_index_of("+34699111222")
    assert patient.email == "anna@example.cat"
    assert patient.last_synced_at == later
    # The clinic's fields, untouched.
    assert patient.language == "ca"
    assert patient.notes == "Prefers mornings"
    assert patient.metadata == {"insurer": "x"}
    assert patient.whatsapp_consent is False
    assert patient.whatsapp_opt_out_reason == Patient.OptOutReason.CLINIC
    assert patient.status == Patient.Status.INACTIVE  # the archive did not change, so neither does status
    assert Patient.objects.filter(organization=clinic).count() == 1


def test_archived_in_cliniko_is_archived_and_inactive_and_unarchiving_brings_it_back(clinic):
    patients(clinic, [patient_record("1"), patient_record("2", phone_numbers=())])

    # Cliniko's deleted entries may carry only the id and deleted_at.
    deleted_entry = patient_record(
        "2", first_name="", last_name="", email="", phone_numbers=(), created_at=None, deleted_at=NOW
    )
    counts = patients(clinic, [patient_record("1", archived_at=NOW), deleted_entry])
    assert (counts.updated, counts.failed) == (2, 0)
    rows = {p.external_id: p for p in Patient.objects.filter(organization=clinic)}
    assert (rows["1"].archived, rows["1"].status) == (True, Patient.Status.INACTIVE)
    assert (rows["2"].archived, rows["2"].status) == (True, Patient.Status.INACTIVE)  # deleted in Cliniko
    assert rows["2"].name == "Ana Gómez" and rows["2"].email == "ana@example.es"  # nothing else changed
    assert not rows["1"].can_receive_whatsapp

    patients(clinic, [patient_record("1")])
    patient = Patient.objects.get(external_id="1")
    assert (patient.archived, patient.status) == (False, Patient.Status.ACTIVE)


def test_an_archived_patient_is_created_inactive_and_a_deleted_one_never_seen_is_not_created(clinic):
    counts = patients(clinic, [patient_record("1", archived_at=NOW), patient_record("2", deleted_at=NOW)])

    assert (counts.created, counts.skipped, counts.codes["deleted"]) == (1, 1, 1)
    assert list(Patient.objects.filter(organization=clinic).values_list("external_id", "archived", "status")) == [
        ("1", True, Patient.Status.INACTIVE)
    ]


def test_an_erased_patient_is_never_recreated_by_the_sync(clinic):
    patients(clinic, [patient_record("1001")])
    appointments(clinic, [appointment_record("5001")])
    patient_services.patient_erase(patient=Patient.objects.get(external_id="1001"), actor=ACTOR, now=NOW)
    assert PatientTombstone.objects.filter(organization=clinic).count() == 2

    counts = patients(clinic, [patient_record("1001"), patient_record("1002", phone_numbers=())])
    assert (counts.created, counts.skipped, counts.codes["tombstoned"]) == (1, 1, 1)
    assert list(Patient.objects.filter(organization=clinic).values_list("external_id", flat=True)) == ["1002"]

    # Their appointment, even moved to a patient that exists, stays erased; a new one of theirs is skipped.
    counts = appointments(
        clinic, [appointment_record("5001", patient_id="1002"), appointment_record("5002", patient_id="1001")]
    )
    assert (counts.skipped, counts.codes["tombstoned"], counts.codes["patient_erased"]) == (2, 1, 1)
    assert not Appointment.objects.filter(organization=clinic).exists()


def test_an_unusable_phone_is_left_out_and_counted_without_failing_the_page(clinic):
    counts = patients(
        clinic,
        [
            patient_record("1", phone_numbers=(PhoneNumber("Mobile", "12"),)),
            patient_record("2", phone_numbers=()),
            patient_record("3", phone_numbers=(PhoneNumber("Mobile", "+44 7911 123456"),)),
        ],
    )

    assert (counts.created, counts.failed, counts.codes["phone_unusable"]) == (3, 0, 1)
    phones = dict(Patient.objects.filter(organization=clinic).values_list("external_id", "phone_index"))
    assert phones["1"] is None and phones["2"] is None
    assert Patient.objects.get(external_id="3").phone == "+447911123456"  # "+" numbers ignore the region


def test_a_new_cliniko_patient_links_to_the_one_mark_patient_with_its_number(clinic):
    mark_patient = patient_services.patient_create(
        organization=clinic, name="Ana G", phone_number="+34612345678", preferred_language="es", actor=ACTOR, now=NOW
    )

    counts = patients(clinic, [patient_record("1001")])

    assert (counts.created, counts.linked) == (0, 1)
    assert Patient.objects.filter(organization=clinic).count() == 1
    linked = Patient.objects.get(pk=mark_patient.pk)
    assert linked.external_id == "1001"
    assert linked.public_id == mark_patient.public_id
    assert linked.name == "Ana Gómez"  # Cliniko's name from now on
    assert linked.language == "es"  # the clinic's
    assert linked.source == Source.API  # how the row was first made
    assert linked.last_synced_at == NOW

    # The next run updates it as any synced patient.
    counts = patients(clinic, [patient_record("1001")])
    assert (counts.updated, counts.linked, counts.created) == (1, 0, 0)


def test_several_matches_link_nothing(clinic):
    for name in ("Mother", "Son"):  # a family sharing one phone
        patient_services.patient_create(organization=clinic, name=name, phone_number="+34612345678", actor=ACTOR)
    patient_services.patient_create(organization=clinic, name="Solo", phone_number="+34699000111", actor=ACTOR)

    counts = patients(
        clinic,
        [
            patient_record("1"),  # +34612345678: two Mark patients
            patient_record("2", phone_numbers=(PhoneNumber("Mobile", "699 000 111"),)),  # two records below
            patient_record("3", phone_numbers=(PhoneNumber("Mobile", "699 000 111"),)),
        ],
    )

    assert (counts.created, counts.linked) == (3, 0)
    assert Patient.objects.filter(organization=clinic, external_id=None).count() == 3
    assert Patient.objects.filter(organization=clinic).count() == 6


def test_a_patient_with_a_cliniko_id_is_not_a_link_candidate_and_other_clinics_are_not_either(clinic, other_clinic):
    patient_services.patient_create(
        organization=other_clinic, name="Elsewhere", phone_number="+34612345678", actor=ACTOR
    )
    patients(clinic, [patient_record("1")])

    counts = patients(clinic, [patient_record("2")])  # same number as "1", which has a Cliniko id

    assert (counts.created, counts.linked) == (1, 0)
    assert Patient.objects.get(organization=other_clinic).external_id is None


def test_two_organizations_with_the_same_cliniko_ids_never_touch_each_other(clinic, other_clinic):
    patients(clinic, [patient_record("1001", first_name="Ana")])
    patients(other_clinic, [patient_record("1001", first_name="Berta", phone_numbers=())])
    appointments(clinic, [appointment_record("5001", notes="ours")])
    appointments(other_clinic, [appointment_record("5001", start=NOW + timedelta(days=9), notes="theirs")])

    ours = Patient.objects.get(organization=clinic)
    theirs = Patient.objects.get(organization=other_clinic)
    assert (ours.name, theirs.name) == ("Ana Gómez", "Berta Gómez")
    assert ours.pk != theirs.pk
    ours_apt = Appointment.objects.get(organization=clinic)
    theirs_apt = Appointment.objects.get(organization=other_clinic)
    assert (ours_apt.patient_id, ours_apt.notes) == (ours.pk, "ours")
    assert (theirs_apt.patient_id, theirs_apt.notes) == (theirs.pk, "theirs")
    assert theirs_apt.start_time == NOW + timedelta(days=9)


def test_counts_add_up_and_duplicates_in_a_page_are_written_once(clinic):
    counts = patients(clinic, [patient_record("1"), patient_record("1", first_name="Later"), patient_record("2")])

    assert counts.processed == 3 == total(counts)
    assert (counts.created, counts.codes["duplicate"]) == (2, 1)
    assert Patient.objects.get(external_id="1").name == "Later Gómez"


def test_a_record_without_a_name_fails_alone(clinic):
    counts = patients(clinic, [patient_record("1", first_name="", last_name=" "), patient_record("2")])

    assert (counts.failed, counts.created, counts.codes["missing_name"]) == (1, 1, 1)
    assert total(counts) == 2


# --- Appointments --------------------------------------------------------------------------------------


@pytest.fixture
def synced_patient(clinic):
    patients(clinic, [patient_record("1001")])
    return Patient.objects.get(organization=clinic, external_id="1001")


def test_a_future_appointment_is_scheduled_with_its_names_notes_and_reminders(clinic, synced_patient):
    importing.import_appointment_types(
        organization=clinic,
        records=[ClinikoAppointmentType("77", "Physiotherapy", "Initial", 45, None, None)],
        now=NOW,
    )
    importing.import_practitioners(
        organization=clinic,
        records=[ClinikoPractitioner("88", "Jane", "Smith", "Dr Jane Smith", "Physio", True, None)],
        now=NOW,
    )
    start = NOW + timedelta(days=3)

    counts = appointments(
        clinic, [appointment_record("5001", start=start, appointment_type_id="77", practitioner_id="88")]
    )

    assert (counts.created, counts.updated) == (1, 0)
    appointment = Appointment.objects.get(organization=clinic, external_id="5001")
    assert appointment.patient_id == synced_patient.pk
    assert (appointment.start_time, appointment.duration) == (start, 45)
    assert appointment.end_time == start + timedelta(minutes=45)
    assert appointment.status == Appointment.Status.SCHEDULED
    assert (appointment.appointment_type, appointment.practitioner) == ("Physiotherapy", "Dr Jane Smith")
    assert appointment.notes == "Lower back pain treatment"
    reminders = {r.kind: r for r in appointment.reminders.all()}
    offsets = patient_services.reminder_offsets()
    assert set(reminders) == set(offsets)
    for kind, reminder in reminders.items():
        assert (reminder.due_at, reminder.status) == (start - offsets[kind], Reminder.Status.PENDING)
    synced_patient.refresh_from_db()
    assert synced_patient.last_activity == synced_patient.created_at  # a future start is not activity yet


def test_unknown_types_and_practitioners_leave_names_empty_and_duration_falls_back(clinic, synced_patient):
    StoredType.objects.create(organization=clinic, external_id="77", name="Massage", duration_minutes=60)
    start = NOW + timedelta(days=1)

    appointments(
        clinic,
        [
            appointment_record("1", start=start, ends_at=None, appointment_type_id="77", practitioner_id="404"),
            appointment_record("2", start=start + timedelta(hours=3), ends_at=start, appointment_type_id="404"),
        ],
    )

    one, two = Appointment.objects.filter(organization=clinic).order_by("external_id")
    assert (one.appointment_type, one.practitioner, one.duration) == ("Massage", "", 60)
    assert (two.appointment_type, two.duration) == ("", importing.DEFAULT_DURATION_MINUTES)


def test_an_appointment_of_an_unknown_patient_is_skipped_with_its_code(clinic, synced_patient):
    counts = appointments(clinic, [appointment_record("1", patient_id="404"), appointment_record("2", patient_id=None)])

    assert (counts.skipped, counts.codes["unknown_patient"], counts.created) == (2, 2, 0)
    assert not Appointment.objects.exists()


def test_past_appointments_are_completed_and_a_no_show_keeps_did_not_arrive(clinic, synced_patient):
    past = NOW - timedelta(days=2)
    appointments(
        clinic,
        [
            appointment_record("1", start=past),
            appointment_record("2", start=past - timedelta(days=1), did_not_arrive=True),
        ],
    )

    rows = {a.external_id: a for a in Appointment.objects.filter(organization=clinic)}
    assert (rows["1"].status, rows["1"].did_not_arrive) == (Appointment.Status.COMPLETED, False)
    assert (rows["2"].status, rows["2"].did_not_arrive) == (Appointment.Status.COMPLETED, True)
    assert not Reminder.objects.exists()  # nothing to remind of
    synced_patient.refresh_from_db()
    assert synced_patient.last_activity == past  # moved to the latest start, which is later than registration


def test_without_the_clinics_switch_synced_appointments_get_no_reminders(clinic, synced_patient):
    clinic_settings_update(organization=clinic, remind_synced_appointments=False, actor=ACTOR)
    counts = appointments(clinic, [appointment_record("5002", start=NOW + timedelta(days=3))])
    assert counts.created == 1
    assert Appointment.objects.filter(organization=clinic, external_id="5002").exists()
    assert not Reminder.objects.exists()


def test_a_cancelled_appointment_is_canceled_and_its_pending_reminders_dropped(clinic, synced_patient):
    appointments(clinic, [appointment_record("5001")])
    assert Reminder.objects.filter(status=Reminder.Status.PENDING).count() == 2
    cancelled_at = NOW - timedelta(minutes=5)

    counts = appointments(clinic, [appointment_record("5001", cancelled_at=cancelled_at)])

    assert counts.updated == 1
    appointment = Appointment.objects.get(external_id="5001")
    assert (appointment.status, appointment.cancelled_at) == (Appointment.Status.CANCELED, cancelled_at)
    assert appointment.cancellation_reason == ""
    assert appointment.cancellation_reason_index == patient_services.cancellation_reason_index_of("")
    assert set(Reminder.objects.values_list("status", flat=True)) == {Reminder.Status.SKIPPED}

    # Never undone by the sync (Cliniko re-sends it without cancelled_at, e.g. a stale copy).
    appointments(clinic, [appointment_record("5001")])
    appointment.refresh_from_db()
    assert (appointment.status, appointment.cancelled_at) == (Appointment.Status.CANCELED, cancelled_at)
    assert set(Reminder.objects.values_list("status", flat=True)) == {Reminder.Status.SKIPPED}


def test_a_cancellation_made_in_mark_is_kept_with_its_reason(clinic, synced_patient):
    appointments(clinic, [appointment_record("5001")])
    patient_services.appointment_cancel(
        appointment=Appointment.objects.get(external_id="5001"), actor=ACTOR, reason="Feeling better", now=NOW
    )

    appointments(clinic, [appointment_record("5001", notes="edited in Cliniko")])

    appointment = Appointment.objects.get(external_id="5001")
    assert appointment.status == Appointment.Status.CANCELED
    assert appointment.cancellation_reason == "Feeling better"
    assert appointment.cancellation_reason_index == patient_services.cancellation_reason_index_of("Feeling better")
    assert appointment.notes == "edited in Cliniko"


def test_a_deleted_appointment_is_deleted_with_its_reminders(clinic, synced_patient):
    appointments(clinic, [appointment_record("1"), appointment_record("2", start=NOW + timedelta(days=5))])
    deleted = appointment_record("1", deleted_at=NOW)
    archived = appointment_record("2", archived_at=NOW, patient_id=None)  # Cliniko's "archived" = deleted
    never_seen = appointment_record("3", deleted_at=NOW)

    counts = appointments(clinic, [deleted, archived, never_seen])

    assert (counts.deleted, counts.updated, counts.skipped, counts.codes["deleted"]) == (2, 2, 1, 1)
    assert total(counts) == counts.processed == 3
    assert not Appointment.objects.filter(organization=clinic).exists()
    assert not Reminder.objects.exists()
    event = AuditEvent.objects.filter(action="sync.appointments_imported").latest("id")
    assert len(event.metadata["deleted_appointment_ids"]) == 2


def test_a_moved_appointment_is_replanned_and_an_unchanged_one_is_not(clinic, synced_patient):
    start = NOW + timedelta(days=3)
    appointments(clinic, [appointment_record("5001", start=start)])
    Reminder.objects.filter(kind=Reminder.Kind.H24).update(status=Reminder.Status.SENT)

    appointments(clinic, [appointment_record("5001", start=start, notes="same time")])
    assert Reminder.objects.get(kind=Reminder.Kind.H24).status == Reminder.Status.SENT  # not re-planned

    moved = NOW + timedelta(hours=10)
    appointments(clinic, [appointment_record("5001", start=moved)])
    reminders = {r.kind: r for r in Reminder.objects.all()}
    assert Reminder.objects.count() == 2
    assert (reminders["24h"].status, reminders["24h"].due_at) == (Reminder.Status.SKIPPED, moved - timedelta(hours=24))
    assert reminders["30min"].status == Reminder.Status.PENDING
    assert Appointment.objects.get(external_id="5001").status == Appointment.Status.SCHEDULED


def test_an_appointment_moved_to_another_patient_follows_it(clinic, synced_patient):
    patients(clinic, [patient_record("1002", phone_numbers=())])
    appointments(clinic, [appointment_record("5001")])

    appointments(clinic, [appointment_record("5001", patient_id="1002")])

    assert Appointment.objects.get(external_id="5001").patient.external_id == "1002"


def test_importing_the_same_pages_twice_leaves_the_same_state(clinic):
    page = [patient_record(str(n), phone_numbers=(PhoneNumber("Mobile", f"+3461200{n:04d}"),)) for n in range(5)]
    appointment_page = [
        appointment_record("a1", patient_id="0"),
        appointment_record("a2", patient_id="1", start=NOW - timedelta(days=1)),
        appointment_record("a3", patient_id="2", cancelled_at=NOW),
        appointment_record("a4", patient_id="3", did_not_arrive=True, start=NOW - timedelta(hours=2)),
    ]

    def state():
        return (
            sorted(
                Patient.objects.filter(organization=clinic).values_list(
                    "pk", "external_id", "name", "phone_index", "email_index", "archived", "status", "last_activity"
                )
            ),
            sorted(
                Appointment.objects.filter(organization=clinic).values_list(
                    "pk", "external_id", "patient_id", "start_time", "duration", "status", "cancelled_at"
                )
            ),
            sorted(Reminder.objects.values_list("pk", "appointment_id", "kind", "due_at", "status")),
        )

    first_p = patients(clinic, page)
    first_a = appointments(clinic, appointment_page)
    before = state()
    second_p = patients(clinic, page)
    second_a = appointments(clinic, appointment_page)

    assert state() == before
    assert (first_p.created, second_p.created, second_p.updated) == (5, 0, 5)
    assert (first_a.created, second_a.created, second_a.updated) == (4, 0, 4)


def test_encrypted_columns_are_encrypted_in_the_database(clinic):
    patients(clinic, [patient_record("1001")])
    appointments(clinic, [appointment_record("5001", notes="Lower back pain treatment")])
    patient = Patient.objects.get(external_id="1001")

    with connection.cursor() as cursor:
        cursor.execute("SELECT phone, email FROM patients_patient WHERE id = %s", [patient.pk])
        phone, email = cursor.fetchone()
        cursor.execute("SELECT notes FROM patients_appointment WHERE external_id = %s", ["5001"])
        (notes,) = cursor.fetchone()

    for raw, plain in ((phone, "+34612345678"), (email, "ana@example.es"), (notes, "Lower back pain treatment")):
        assert plain not in raw and "612345678" not in raw
        assert decrypt_str(raw) == plain


def test_a_page_that_fails_writes_nothing(clinic, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(importing, "_audit", boom)  # the last statement of the page

    with pytest.raises(RuntimeError):
        patients(clinic, [patient_record("1")])
    assert not Patient.objects.filter(organization=clinic).exists()


def test_an_audit_event_per_page_holds_counts_and_ids_only(clinic):
    patients(clinic, [patient_record("1001")])

    event = AuditEvent.objects.get(action="sync.patients_imported")
    assert event.organization_id == clinic.public_id
    assert event.metadata["created"] == 1
    text = str(event.metadata)
    for secret in ("Ana", "Gómez", "612345678", "ana@example.es"):
        assert secret not in text


# --- Appointment types and practitioners -------------------------------------------------------------


def test_types_and_practitioners_are_upserted_per_organization(clinic, other_clinic):
    kind = ClinikoAppointmentType("77", "Physio", "Initial", 45, None, None)
    importing.import_appointment_types(organization=clinic, records=[kind], now=NOW)
    importing.import_appointment_types(
        organization=other_clinic, records=[ClinikoAppointmentType("77", "Yoga", "", None, None, None)], now=NOW
    )
    counts = importing.import_appointment_types(
        organization=clinic,
        records=[ClinikoAppointmentType("77", "Physiotherapy", "Follow-up", 30, NOW, None)],
        now=NOW + timedelta(hours=1),
    )
    assert (counts.created, counts.updated) == (0, 1)
    ours = StoredType.objects.get(organization=clinic)
    assert (ours.name, ours.category, ours.duration_minutes, ours.archived) == ("Physiotherapy", "Follow-up", 30, True)
    assert ours.last_synced_at == NOW + timedelta(hours=1)
    assert StoredType.objects.get(organization=other_clinic).name == "Yoga"

    importing.import_practitioners(
        organization=clinic, records=[ClinikoPractitioner("88", "Jane", "Smith", "", "", True, None)], now=NOW
    )
    counts = importing.import_practitioners(
        organization=clinic,
        records=[ClinikoPractitioner("88", "Jane", "Smith", "Dr Jane Smith", "Physio", False, None)],
        now=NOW,
    )
    assert (counts.created, counts.updated) == (0, 1)
    practitioner = StoredPractitioner.objects.get(organization=clinic)
    assert (practitioner.name, practitioner.designation, practitioner.active) == ("Dr Jane Smith", "Physio", False)


# --- Statements ---------------------------------------------------------------------------------------


def _statements(func) -> int:
    with CaptureQueriesContext(connection) as queries:
        func()
    return len(queries.captured_queries)


def test_statements_do_not_grow_with_the_page(clinic, other_clinic, require_postgres):
    """PostgreSQL: one statement per kind of write (SQLite's backend splits inserts into 999-parameter
    batches, so it is checked there only by the other tests)."""
    for organization in (clinic, other_clinic):  # the second clinic links one record of each page
        patient_services.patient_create(
            organization=organization, name="Mark", phone_number="+34611000000", actor=ACTOR
        )

    def patient_page(size):
        return [
            patient_record(
                f"p{n}",
                phone_numbers=(PhoneNumber("Mobile", f"+346110{n:05d}"),),
                archived_at=NOW if n % 3 == 0 else None,
            )
            for n in range(size)
        ]

    def appointment_page(size):
        return [
            appointment_record(
                f"a{n}",
                patient_id=f"p{n}",
                start=NOW + timedelta(days=1 + n % 4) if n % 2 else NOW - timedelta(days=n),
                cancelled_at=NOW if n % 5 == 0 else None,
                appointment_type_id="77",
                practitioner_id="88",
            )
            for n in range(size)
        ]

    for organization in (clinic, other_clinic):
        importing.import_appointment_types(
            organization=organization, records=[ClinikoAppointmentType("77", "Physio", "", 45, None, None)], now=NOW
        )
        importing.import_practitioners(
            organization=organization, records=[ClinikoPractitioner("88", "J", "S", "J S", "", True, None)], now=NOW
        )

    small = _statements(lambda: patients(clinic, patient_page(10)))
    large = _statements(lambda: patients(other_clinic, patient_page(100)))
    assert small == large
    assert Patient.objects.filter(organization=other_clinic).count() == 100  # one of them linked

    # Second pass: updates with archive transitions.
    def second_pass(size):  # archive transitions, and deletions
        return [
            replace(r, archived_at=None, deleted_at=NOW if n % 7 == 1 else None)
            for n, r in enumerate(patient_page(size))
        ]

    small = _statements(lambda: patients(clinic, second_pass(10)))
    large = _statements(lambda: patients(other_clinic, second_pass(100)))
    assert small == large

    small = _statements(lambda: appointments(clinic, appointment_page(10)))
    large = _statements(lambda: appointments(other_clinic, appointment_page(100)))
    assert small == large
    assert Appointment.objects.filter(organization=other_clinic).count() == 100
    moved = [
        appointment_record(
            f"a{n}",
            patient_id=f"p{n}",
            start=NOW + timedelta(days=7, minutes=n),
            deleted_at=NOW if n % 7 == 0 else None,
        )
        for n in range(100)
    ]
    small = _statements(lambda: appointments(clinic, moved[:10]))
    large = _statements(lambda: appointments(other_clinic, moved))
    assert small == large
