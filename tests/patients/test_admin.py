"""Mark admin: patients with masked phones, exact phone search through the blind index, name search
ignoring accents, audited pages; erase and cancel actions go through the services."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from core.admin import admin_datetime
from core.time import utc_now
from patients import services
from patients.models import Appointment, Patient
from tests.patients.conftest import ACTOR

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="admin", email="a@example.com", password="x-long-pw-42")
    client.force_login(user)
    return client


@pytest.fixture
def patients(clinic):
    jose = services.patient_create(organization=clinic, name="José García", phone_number="+34612345678", actor=ACTOR)
    nuria = services.patient_create(organization=clinic, name="Núria Puig", phone_number="+34698765432", actor=ACTOR)
    return jose, nuria


def test_patient_list_masks_phones_and_is_audited(staff, patients):
    response = staff.get(reverse("admin:patients_patient_changelist"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "+34 ••• ••• 5678" in body and "612345678" not in body
    event = AuditEvent.objects.get(action="admin.records_listed", subject_type="patients.patient")
    assert sorted(event.metadata["ids"]) == sorted(str(p.pk) for p in patients)


@pytest.mark.parametrize("term", ["612 34 56 78", "+34612345678", "jose", "GARCÍA"])
def test_patient_search_by_exact_phone_or_name(staff, patients, term):
    jose, nuria = patients
    response = staff.get(reverse("admin:patients_patient_changelist"), {"q": term})
    body = response.content.decode()
    assert jose.public_id in body and nuria.public_id not in body
    event = AuditEvent.objects.get(action="admin.records_listed")
    assert event.metadata["searched"] is True and "612" not in str(event.metadata)


def test_patient_page_is_audited_and_read_only(staff, patients):
    jose, _ = patients
    url = reverse("admin:patients_patient_change", args=[jose.pk])
    assert staff.get(url).status_code == 200
    assert AuditEvent.objects.filter(action="admin.record_viewed", metadata__public_id=jose.public_id).exists()
    staff.post(url, {"name": "Changed"})
    jose.refresh_from_db()
    assert jose.name == "José García"


def test_erase_action_goes_through_the_service(staff, patients):
    jose, nuria = patients
    ask = {"action": "erase_patients", "_selected_action": [jose.pk]}
    page = staff.post(reverse("admin:patients_patient_changelist"), ask).content.decode()
    # First a confirmation page saying what goes, for which clinic; nothing erased yet.
    assert "Erase these patients? This cannot be undone." in page
    assert jose.public_id in page and jose.organization.name in page and "get 404" in page
    assert Patient.objects.count() == 2 and not AuditEvent.objects.filter(action="patient.erased").exists()

    staff.post(reverse("admin:patients_patient_changelist"), {**ask, "post": "yes"})
    assert list(Patient.objects.values_list("public_id", flat=True)) == [nuria.public_id]
    event = AuditEvent.objects.get(action="patient.erased")
    assert event.subject_id == jose.public_id and event.actor_type == "user"


def test_appointment_page_shows_reminders_and_cancel_action(staff, patients):
    jose, _ = patients
    appointment = services.appointment_create(
        patient=jose, start_time=utc_now() + timedelta(days=3), duration=30, actor=ACTOR
    )
    page = staff.get(reverse("admin:patients_appointment_change", args=[appointment.pk])).content.decode()
    assert "24 hours before" in page and "30 minutes before" in page
    ask = {"action": "cancel_appointments", "_selected_action": [appointment.pk]}
    page = staff.post(reverse("admin:patients_appointment_changelist"), ask).content.decode()
    assert "2 pending WhatsApp reminder(s) to the patient are not sent." in page
    assert admin_datetime(appointment.start_time) in page
    appointment.refresh_from_db()
    assert appointment.status != Appointment.Status.CANCELED

    staff.post(reverse("admin:patients_appointment_changelist"), {**ask, "post": "yes"})
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELED
    assert set(appointment.reminders.values_list("status", flat=True)) == {"skipped"}
    assert AuditEvent.objects.get(action="appointment.cancelled").actor_type == "user"


def test_lists_name_the_clinic_with_a_link_not_its_id(staff, patients, clinic):
    jose, _ = patients
    services.appointment_create(patient=jose, start_time=utc_now() + timedelta(days=3), duration=30, actor=ACTOR)
    link = f'<a href="{reverse("admin:accounts_organization_change", args=[clinic.pk])}">{clinic.name}</a>'
    for changelist in ("admin:patients_patient_changelist", "admin:patients_appointment_changelist"):
        page = staff.get(reverse(changelist)).content.decode()
        assert link in page and clinic.public_id not in page
