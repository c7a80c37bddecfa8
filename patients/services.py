"""Mark writes: patients, appointments and their reminders. Each write and its audit event run in one
transaction; refusals are core.domain errors (Invalid -> 400, Conflict -> 409, NotFound -> 404) whose
`details` name the field, never its value.

- `patient_create`, `patient_update` (partial: only the arguments given change), `patient_erase`.
- `appointment_create`, `appointment_update` (a new start or duration re-plans the reminders),
  `appointment_cancel` (pending reminders become `skipped`).
- `reminders_plan`: the two WhatsApp reminders of an appointment, at settings.MARK_REMINDER_*_MINUTES
  before its start; one whose time has already passed is `skipped`, never sent late.

Every function takes `now` (default: core.time.utc_now()) so tests inject the clock.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import transaction

from audit.services import audit_event_record
from core.actors import Actor
from core.domain import Conflict, Invalid
from core.encryption import blind_index
from core.phones import InvalidPhone, normalize_e164
from core.time import utc_now
from patients.models import (
    EMAIL_INDEX_PURPOSE,
    PHONE_INDEX_PURPOSE,
    TOMBSTONE_INDEX_PURPOSE,
    Appointment,
    Conversation,
    Patient,
    PatientTombstone,
    Reminder,
    Source,
    fold_name,
)

LANGUAGE_RE = re.compile(r"[a-z]{2,3}(-[A-Za-z]{2,4})?")
NAME_MAX = 200
NOTES_MAX = 10_000
METADATA_MAX_BYTES = 10_000
TEXT_MAX = 200
MAX_DURATION_MINUTES = 24 * 60
# What the Cliniko sync may not overwrite: the clinic sets these through Mark (issue 11).
CLINIC_OWNED_FIELDS = frozenset({"language", "notes", "metadata", "whatsapp_consent"})


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(message, details={"field": field})


# --- Field rules ---------------------------------------------------------------------------------------


def _clean_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid("name", "name is required")
    value = " ".join(value.split())
    if len(value) > NAME_MAX:
        raise _invalid("name", f"name is at most {NAME_MAX} characters")
    return value


def _clean_phone(value: Any, *, region: str | None, field: str = "phone_number") -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _invalid(field, "phone_number must be a string")
    try:
        return normalize_e164(value, region=region or settings.MARK_DEFAULT_PHONE_REGION)
    except InvalidPhone as exc:
        raise _invalid(field, exc.message) from None


def _clean_email(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _invalid("email", "email must be a string")
    value = value.strip()
    try:
        validate_email(value)
    except ValidationError:
        raise _invalid("email", "email is not a valid address") from None
    return value


def _clean_language(value: Any) -> str:
    if not isinstance(value, str) or not LANGUAGE_RE.fullmatch(value):
        raise _invalid("preferred_language", "preferred_language is a language code such as es, ca, en or ar")
    return value.lower()


def _clean_notes(value: Any, field: str = "notes") -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _invalid(field, f"{field} must be a string")
    if len(value) > NOTES_MAX:
        raise _invalid(field, f"{field} is at most {NOTES_MAX} characters")
    return value


def _clean_metadata(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid("metadata", "metadata must be an object")
    try:
        size = len(json.dumps(value))
    except (TypeError, ValueError):
        raise _invalid("metadata", "metadata must be JSON") from None
    if size > METADATA_MAX_BYTES:
        raise _invalid("metadata", f"metadata is at most {METADATA_MAX_BYTES} bytes of JSON")
    return value


def _clean_choice(value: Any, choices, field: str) -> str:
    if value not in choices.values:
        raise _invalid(field, f"{field} must be one of: {', '.join(choices.values)}")
    return value


def _clean_text(value: Any, field: str, max_length: int = TEXT_MAX) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > max_length:
        raise _invalid(field, f"{field} is a string of at most {max_length} characters")
    return value.strip()


def _clean_url(value: Any, field: str) -> str:
    if value is None or value == "":
        return ""
    try:
        if not isinstance(value, str) or len(value) > 500:
            raise ValidationError("bad")
        URLValidator(schemes=["https"])(value)
    except ValidationError:
        raise _invalid(field, f"{field} must be an https URL") from None
    return value


def _clean_external_id(value: Any) -> str:
    if value is None or value == "":
        return ""
    value = str(value)
    if len(value) > 64:
        raise _invalid("external_id", "external_id is at most 64 characters")
    return value


def _set_phone(patient: Patient, phone: str | None) -> None:
    patient.phone = phone
    patient.phone_index = blind_index(phone, purpose=PHONE_INDEX_PURPOSE) if phone else None


def _set_email(patient: Patient, email: str | None) -> None:
    patient.email = email
    patient.email_index = blind_index(email.casefold(), purpose=EMAIL_INDEX_PURPOSE) if email else None


def phone_index_of(e164: str) -> str:
    return blind_index(e164, purpose=PHONE_INDEX_PURPOSE)


def tombstone_index_of(external_id: str) -> str:
    return blind_index(str(external_id), purpose=TOMBSTONE_INDEX_PURPOSE)


def is_tombstoned(*, organization, kind: str, external_id: str) -> bool:
    """For the Cliniko sync: True if this external id belonged to an erased patient (or appointment)."""
    return PatientTombstone.objects.filter(
        organization=organization, kind=kind, external_id_index=tombstone_index_of(external_id)
    ).exists()


def _audit(action: str, *, actor: Actor, organization, subject_type: str, subject_id: str, **metadata) -> None:
    audit_event_record(
        action=action,
        actor=actor,
        organization_id=organization.public_id,
        subject_type=subject_type,
        subject_id=subject_id,
        metadata=metadata,
    )


# --- Patients ------------------------------------------------------------------------------------------


@transaction.atomic
def patient_create(
    *,
    organization,
    name: str,
    actor: Actor,
    phone_number: str | None = None,
    email: str | None = None,
    preferred_language: str = "en",
    notes: str | None = "",
    metadata: dict | None = None,
    source: str = Source.API,
    external_id: str | None = None,
    region: str | None = None,
    now: datetime | None = None,
) -> Patient:
    """A new patient of `organization`. An external id already used in the organization, or one that
    belonged to an erased patient (tombstone), is a Conflict."""
    now = now or utc_now()
    patient = Patient(
        organization=organization,
        name=_clean_name(name),
        language=_clean_language(preferred_language),
        notes=_clean_notes(notes),
        metadata=_clean_metadata(metadata),
        source=_clean_choice(source, Source, "source"),
        external_id=_clean_external_id(external_id),
        last_activity=now,
        created_at=now,
    )
    patient.name_search = fold_name(patient.name)
    _set_phone(patient, _clean_phone(phone_number, region=region))
    _set_email(patient, _clean_email(email))
    if patient.external_id:
        kind = PatientTombstone.Kind.PATIENT
        if is_tombstoned(organization=organization, kind=kind, external_id=patient.external_id):
            raise Conflict("This external id belonged to an erased patient", details={"field": "external_id"})
        if Patient.objects.filter(organization=organization, external_id=patient.external_id).exists():
            raise Conflict("A patient with this external id exists", details={"field": "external_id"})
    patient.save(force_insert=True)
    _audit(
        "patient.created",
        actor=actor,
        organization=organization,
        subject_type="patient",
        subject_id=patient.public_id,
        source=patient.source,
    )
    return patient


@transaction.atomic
def patient_update(
    *,
    patient: Patient,
    actor: Actor,
    name: Any = UNSET,
    phone_number: Any = UNSET,
    email: Any = UNSET,
    preferred_language: Any = UNSET,
    notes: Any = UNSET,
    metadata: Any = UNSET,
    status: Any = UNSET,
    whatsapp_consent: Any = UNSET,
    archived: Any = UNSET,
    by_sync: bool = False,
    region: str | None = None,
    now: datetime | None = None,
) -> Patient:
    """Partial update: only the arguments given change. With `by_sync` (the Cliniko sync) the fields the
    clinic owns (CLINIC_OWNED_FIELDS) are left as they are, whatever the sync passes. The audit event
    names the changed fields, never their values."""
    now = now or utc_now()
    changed: list[str] = []
    if by_sync:
        preferred_language = notes = metadata = whatsapp_consent = UNSET
    if name is not UNSET:
        patient.name = _clean_name(name)
        patient.name_search = fold_name(patient.name)
        changed.append("name")
    if phone_number is not UNSET:
        _set_phone(patient, _clean_phone(phone_number, region=region))
        changed.append("phone_number")
    if email is not UNSET:
        _set_email(patient, _clean_email(email))
        changed.append("email")
    if preferred_language is not UNSET:
        patient.language = _clean_language(preferred_language)
        changed.append("preferred_language")
    if notes is not UNSET:
        patient.notes = _clean_notes(notes)
        changed.append("notes")
    if metadata is not UNSET:
        patient.metadata = _clean_metadata(metadata)
        changed.append("metadata")
    if status is not UNSET:
        patient.status = _clean_choice(status, Patient.Status, "status")
        changed.append("status")
    if archived is not UNSET:
        if not isinstance(archived, bool):
            raise _invalid("archived", "archived must be true or false")
        patient.archived = archived
        changed.append("archived")
    if whatsapp_consent is not UNSET:
        if not isinstance(whatsapp_consent, bool):
            raise _invalid("whatsapp_consent", "whatsapp_consent must be true or false")
        if whatsapp_consent != patient.whatsapp_consent:
            patient.whatsapp_consent = whatsapp_consent
            patient.whatsapp_consent_changed_at = now
            patient.whatsapp_opt_out_reason = "" if whatsapp_consent else Patient.OptOutReason.CLINIC
        changed.append("whatsapp_consent")
    if not changed:
        return patient
    patient.last_activity = max(patient.last_activity, now)
    patient.save()
    _audit(
        "patient.updated",
        actor=actor,
        organization=patient.organization,
        subject_type="patient",
        subject_id=patient.public_id,
        fields=changed,
    )
    return patient


@transaction.atomic
def patient_whatsapp_opt_out(*, patient: Patient, reason: str, actor: Actor, now: datetime | None = None) -> Patient:
    """The patient stopped WhatsApp messages (STOP keyword or a request): nothing more is sent to them;
    the reason and time are kept so the API can show why."""
    now = now or utc_now()
    patient.whatsapp_consent = False
    patient.whatsapp_consent_changed_at = now
    patient.whatsapp_opt_out_reason = _clean_choice(reason, Patient.OptOutReason, "reason")
    patient.save(
        update_fields=["whatsapp_consent", "whatsapp_consent_changed_at", "whatsapp_opt_out_reason", "updated_at"]
    )
    _audit(
        "patient.whatsapp_opted_out",
        actor=actor,
        organization=patient.organization,
        subject_type="patient",
        subject_id=patient.public_id,
        reason=patient.whatsapp_opt_out_reason,
    )
    return patient


@transaction.atomic
def patient_erase(*, patient: Patient, actor: Actor, now: datetime | None = None) -> dict[str, int]:
    """Erase the patient (docs/mark.md, "Decisions"): their row, conversations, messages, appointments and
    reminders are deleted (pending reminders are counted as cancelled, so none is sent); their external
    ids (patient's and appointments') are kept as blind-index tombstones so a later sync does not bring
    them back; the audit trail keeps ids and counts only. Returns the counts."""
    now = now or utc_now()
    organization = patient.organization
    # Lock the row: an appointment being booked for this patient at the same time waits, then finds
    # nothing (its patient lookup runs again inside its own transaction).
    Patient.objects.select_for_update().filter(pk=patient.pk).first()
    appointments = Appointment.objects.filter(patient=patient)
    pending = Reminder.objects.filter(appointment__patient=patient, status=Reminder.Status.PENDING)
    counts = {
        "conversations": Conversation.objects.filter(patient=patient).count(),
        "appointments": appointments.count(),
        "reminders_cancelled": pending.update(status=Reminder.Status.SKIPPED),
    }
    tombstones = []
    if patient.external_id:
        tombstones.append((PatientTombstone.Kind.PATIENT, patient.external_id))
    tombstones += [
        (PatientTombstone.Kind.APPOINTMENT, external_id)
        for external_id in appointments.exclude(external_id="").values_list("external_id", flat=True)
    ]
    PatientTombstone.objects.bulk_create(
        [
            PatientTombstone(
                organization=organization, kind=kind, external_id_index=tombstone_index_of(external_id), created_at=now
            )
            for kind, external_id in tombstones
        ],
        ignore_conflicts=True,
    )
    public_id = patient.public_id
    appointment_ids = list(appointments.values_list("public_id", flat=True))
    # CASCADE: conversations -> messages, appointments -> reminders.
    patient.delete()
    _audit(
        "patient.erased",
        actor=actor,
        organization=organization,
        subject_type="patient",
        subject_id=public_id,
        appointment_ids=appointment_ids,
        tombstones=len(tombstones),
        **counts,
    )
    return counts


# --- Appointments and reminders ------------------------------------------------------------------------


def reminder_offsets() -> dict[str, timedelta]:
    return {
        Reminder.Kind.H24: timedelta(minutes=settings.MARK_REMINDER_24H_MINUTES),
        Reminder.Kind.MIN30: timedelta(minutes=settings.MARK_REMINDER_30MIN_MINUTES),
    }


def reminders_plan(*, appointment: Appointment, now: datetime) -> list[Reminder]:
    """(Re-)plan the appointment's two reminders for its current start: each is `pending` at start -
    offset, or `skipped` if that time has passed (a late reminder would be noise). Called inside the
    caller's transaction; a reminder already sent for an earlier start is planned again for the new one."""
    existing = {reminder.kind: reminder for reminder in appointment.reminders.all()}
    planned = []
    for kind, offset in reminder_offsets().items():
        due_at = appointment.start_time - offset
        status = Reminder.Status.PENDING if due_at > now else Reminder.Status.SKIPPED
        reminder = existing.get(kind)
        if reminder is None:
            reminder = Reminder(appointment=appointment, kind=kind, due_at=due_at, status=status, created_at=now)
            reminder.save(force_insert=True)
        else:
            reminder.due_at, reminder.status, reminder.outbound_message = due_at, status, None
            reminder.save(update_fields=["due_at", "status", "outbound_message", "updated_at"])
        planned.append(reminder)
    return planned


def _lock_patient(patient: Patient) -> Patient:
    """The patient row, locked for this transaction: two bookings for one patient are checked for
    overlap one after the other (PostgreSQL; SQLite serialises writers anyway)."""
    locked = Patient.objects.select_for_update().filter(pk=patient.pk).first()
    if locked is None:
        raise _invalid("patient_id", "Unknown patient_id")
    return locked


def _check_slot(*, patient: Patient, start_time: datetime, end_time: datetime, exclude_pk: int | None = None) -> None:
    overlapping = Appointment.objects.filter(
        patient=patient,
        status__in=Appointment.ACTIVE_STATUSES,
        start_time__lt=end_time,
        end_time__gt=start_time,
    )
    if exclude_pk is not None:
        overlapping = overlapping.exclude(pk=exclude_pk)
    if overlapping.exists():
        raise Conflict("The patient has another appointment at this time", details={"field": "start_time"})


def _clean_start(value: Any, *, now: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise _invalid("start_time", "start_time must be an ISO 8601 time with a time zone")
    if value <= now:
        raise _invalid("start_time", "start_time must be in the future")
    return value


def _clean_duration(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DURATION_MINUTES:
        raise _invalid("duration", f"duration is a whole number of minutes from 1 to {MAX_DURATION_MINUTES}")
    return value


def _touch(patient: Patient, now: datetime) -> None:
    if now > patient.last_activity:
        Patient.objects.filter(pk=patient.pk).update(last_activity=now)
        patient.last_activity = now


@transaction.atomic
def appointment_create(
    *,
    patient: Patient,
    start_time: datetime,
    duration: int,
    actor: Actor,
    appointment_type: str = "",
    notes: str | None = "",
    location: str = "",
    zoom_link: str | None = None,
    calendly_link: str | None = None,
    practitioner: str = "",
    external_id: str | None = None,
    now: datetime | None = None,
) -> Appointment:
    """Book an appointment and plan its reminders. A start in the past is Invalid; an active
    (scheduled/rescheduled) appointment of the same patient overlapping it is a Conflict."""
    now = now or utc_now()
    start_time = _clean_start(start_time, now=now)
    duration = _clean_duration(duration)
    patient = _lock_patient(patient)
    appointment = Appointment(
        organization_id=patient.organization_id,
        patient=patient,
        start_time=start_time,
        duration=duration,
        end_time=Appointment.end_of(start_time, duration),
        appointment_type=_clean_text(appointment_type, "type", 100),
        notes=_clean_notes(notes),
        location=_clean_text(location, "location"),
        zoom_link=_clean_url(zoom_link, "zoom_link"),
        calendly_link=_clean_url(calendly_link, "calendly_link"),
        practitioner=_clean_text(practitioner, "practitioner"),
        external_id=_clean_external_id(external_id),
        created_at=now,
    )
    _check_slot(patient=patient, start_time=appointment.start_time, end_time=appointment.end_time)
    if (
        appointment.external_id
        and Appointment.objects.filter(
            organization_id=patient.organization_id, external_id=appointment.external_id
        ).exists()
    ):
        raise Conflict("An appointment with this external id exists", details={"field": "external_id"})
    appointment.save(force_insert=True)
    reminders_plan(appointment=appointment, now=now)
    _touch(patient, now)
    _audit(
        "appointment.created",
        actor=actor,
        organization=patient.organization,
        subject_type="appointment",
        subject_id=appointment.public_id,
        patient_id=patient.public_id,
    )
    return appointment


@transaction.atomic
def appointment_update(
    *,
    appointment: Appointment,
    actor: Actor,
    start_time: Any = UNSET,
    duration: Any = UNSET,
    status: Any = UNSET,
    appointment_type: Any = UNSET,
    notes: Any = UNSET,
    location: Any = UNSET,
    zoom_link: Any = UNSET,
    calendly_link: Any = UNSET,
    practitioner: Any = UNSET,
    now: datetime | None = None,
) -> Appointment:
    """Partial update. A new start or duration is checked like a booking (future, no overlap) and
    re-plans the reminders; a moved start makes the status `rescheduled` unless one is given. A
    cancelled appointment is not changed here (Conflict): book a new one."""
    now = now or utc_now()
    _lock_patient(appointment.patient)
    if appointment.status == Appointment.Status.CANCELED:
        raise Conflict("A cancelled appointment cannot be changed", details={"field": "status"})
    changed: list[str] = []
    moved = False
    if start_time is not UNSET and start_time != appointment.start_time:
        appointment.start_time = _clean_start(start_time, now=now)
        moved = True
        changed.append("start_time")
    if duration is not UNSET and duration != appointment.duration:
        appointment.duration = _clean_duration(duration)
        changed.append("duration")
    if status is not UNSET:
        status = _clean_choice(status, Appointment.Status, "status")
        if status == Appointment.Status.CANCELED:
            raise _invalid("status", "Cancel an appointment with its cancel action")
        appointment.status = status
        changed.append("status")
    elif moved:
        appointment.status = Appointment.Status.RESCHEDULED
    if appointment_type is not UNSET:
        appointment.appointment_type = _clean_text(appointment_type, "type", 100)
        changed.append("type")
    if notes is not UNSET:
        appointment.notes = _clean_notes(notes)
        changed.append("notes")
    if location is not UNSET:
        appointment.location = _clean_text(location, "location")
        changed.append("location")
    if zoom_link is not UNSET:
        appointment.zoom_link = _clean_url(zoom_link, "zoom_link")
        changed.append("zoom_link")
    if calendly_link is not UNSET:
        appointment.calendly_link = _clean_url(calendly_link, "calendly_link")
        changed.append("calendly_link")
    if practitioner is not UNSET:
        appointment.practitioner = _clean_text(practitioner, "practitioner")
        changed.append("practitioner")
    if not changed:
        return appointment
    appointment.end_time = Appointment.end_of(appointment.start_time, appointment.duration)
    retimed = "start_time" in changed or "duration" in changed
    if retimed and appointment.status in Appointment.ACTIVE_STATUSES:
        _check_slot(
            patient=appointment.patient,
            start_time=appointment.start_time,
            end_time=appointment.end_time,
            exclude_pk=appointment.pk,
        )
    appointment.save()
    if moved:
        reminders_plan(appointment=appointment, now=now)
    _touch(appointment.patient, now)
    _audit(
        "appointment.updated",
        actor=actor,
        organization=appointment.patient.organization,
        subject_type="appointment",
        subject_id=appointment.public_id,
        fields=changed,
        rescheduled=moved,
    )
    return appointment


@transaction.atomic
def appointment_cancel(
    *, appointment: Appointment, actor: Actor, reason: str | None = "", now: datetime | None = None
) -> Appointment:
    """Cancel: status `canceled`, `cancelled_at` now, the reason kept (encrypted); pending reminders
    become `skipped`, so the sweeper never sends them. Cancelling twice is a Conflict."""
    now = now or utc_now()
    reason = _clean_notes(reason, "reason")
    locked = Appointment.objects.select_for_update().filter(pk=appointment.pk).first()
    if locked is None or locked.status == Appointment.Status.CANCELED:
        raise Conflict("The appointment is already cancelled", details={"field": "status"})
    if locked.status == Appointment.Status.COMPLETED:
        raise Conflict("A completed appointment cannot be cancelled", details={"field": "status"})
    appointment.status = Appointment.Status.CANCELED
    appointment.cancelled_at = now
    appointment.cancellation_reason = reason
    appointment.save(update_fields=["status", "cancelled_at", "cancellation_reason", "updated_at"])
    skipped = appointment.reminders.filter(status=Reminder.Status.PENDING).update(status=Reminder.Status.SKIPPED)
    _touch(appointment.patient, now)
    _audit(
        "appointment.cancelled",
        actor=actor,
        organization=appointment.patient.organization,
        subject_type="appointment",
        subject_id=appointment.public_id,
        reminders_skipped=skipped,
    )
    return appointment
