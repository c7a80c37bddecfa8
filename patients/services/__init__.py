"""Mark writes: patients, appointments and their reminders. Each write and its audit event run in one
transaction; refusals are core.domain errors (Invalid -> 400, Conflict -> 409, NotFound -> 404) whose
`details` name the field, never its value.

- `patient_create`, `patient_update` (partial: only the arguments given change), `patient_erase`.
- `appointment_create`, `appointment_update` (a new start or duration re-plans the reminders),
  `appointment_cancel` (pending reminders become `skipped`).
- `reminders_plan`: the two WhatsApp reminders of an appointment, at settings.MARK_REMINDER_*_MINUTES
  before its start; one whose time has already passed is `skipped`, never sent late.

- `message_record` / `conversation_for_message`: a message joins the patient's open conversation or
  starts one (idle for MARK_CONVERSATION_IDLE_MINUTES: closed); `message_send_text` queues a clinic text
  on WhatsApp through the messaging outbox.
- WhatsApp sends go through `patients.services.whatsapp.whatsapp_queue` (the clinic's sender; free text
  inside the 24-hour window, the clinic's template outside it, else Conflict OUTSIDE_WHATSAPP_WINDOW);
  inbound messages are `patients.services.inbound`, the responder and conversation end
  `patients.services.assistant`.
- `reminders_sweep` / `reminder_send`: the beat sweeper's work (patients.tasks.send_due_reminders).

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
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest

from audit.services import audit_event_record
from core.actors import Actor
from core.domain import Conflict, Invalid
from core.encryption import blind_index
from core.phones import InvalidPhone, normalize_e164
from core.time import utc_now
from messaging.services import messages_withdraw
from patients import events
from patients.analytics import reason_key
from patients.media import audio_delete_after_commit
from patients.models import (
    CANCELLATION_REASON_INDEX_PURPOSE,
    EMAIL_INDEX_PURPOSE,
    PHONE_INDEX_PURPOSE,
    TOMBSTONE_INDEX_PURPOSE,
    Appointment,
    Conversation,
    Message,
    Patient,
    PatientTombstone,
    Reminder,
    Source,
    fold_name,
)
from patients.reminder_texts import language_of, reminder_text
from patients.services.whatsapp import (
    OUTSIDE_WINDOW,
    TEMPLATE_CANCELLED,
    TEMPLATE_CLINIC_MESSAGE,
    TEMPLATE_REMINDER,
    whatsapp_queue,
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


def _clean_external_id(value: Any) -> str | None:
    """None when there is none (NULL in the column: NULLs never collide in the unique key)."""
    if value is None or value == "":
        return None
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


def cancellation_reason_index_of(reason: str | None) -> str:
    """Equal for reasons analytics counts as one (patients.analytics.reason_key)."""
    return blind_index(reason_key(reason), purpose=CANCELLATION_REASON_INDEX_PURPOSE)


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
    events.patient_created(patient)
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
    events.patient_updated(patient, fields=changed)
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
    events.patient_updated(patient, fields=["whatsapp_consent"])
    return patient


# `last_error` of an outbox message withdrawn because its patient was erased.
ERASED_WITHDRAWN = "withdrawn_patient_erased"


@transaction.atomic
def patient_erase(*, patient: Patient, actor: Actor, now: datetime | None = None) -> dict[str, int]:
    """Erase the patient (docs/mark.md, "Decisions"): their row, conversations, messages, appointments and
    reminders are deleted (pending reminders are counted as cancelled, so none is sent; queued outbox
    messages to them are withdrawn; their audio files are removed after the commit); their external
    ids (patient's and appointments') are kept as blind-index tombstones so a later sync does not bring
    them back; the audit trail keeps ids and counts only. Returns the counts."""
    now = now or utc_now()
    organization = patient.organization
    # Lock the row: an appointment being booked for this patient at the same time waits, then finds
    # nothing (its patient lookup runs again inside its own transaction).
    Patient.objects.select_for_update().filter(pk=patient.pk).first()
    appointments = Appointment.objects.filter(patient=patient)
    pending = Reminder.objects.filter(appointment__patient=patient, status=Reminder.Status.PENDING)
    # What was queued for them and not yet sent is never sent (the outbox row holds their number and the
    # text); their voice notes leave the media storage after the commit.
    rows = list(Message.objects.filter(conversation__patient=patient).values_list("media", "outbound_message_id"))
    outbound_ids = [outbound for _media, outbound in rows if outbound]
    outbound_ids += [
        outbound
        for outbound in Reminder.objects.filter(appointment__patient=patient).values_list(
            "outbound_message_id", flat=True
        )
        if outbound
    ]
    counts = {
        "conversations": Conversation.objects.filter(patient=patient).count(),
        "appointments": appointments.count(),
        "reminders_cancelled": pending.update(status=Reminder.Status.SKIPPED),
        "outbox_withdrawn": len(messages_withdraw(message_ids=outbound_ids, reason=ERASED_WITHDRAWN, now=now)),
        "media_files": audio_delete_after_commit(media for media, _outbound in rows),
    }
    tombstones = []
    if patient.external_id:
        tombstones.append((PatientTombstone.Kind.PATIENT, patient.external_id))
    tombstones += [
        (PatientTombstone.Kind.APPOINTMENT, external_id)
        for external_id in appointments.exclude(external_id=None).values_list("external_id", flat=True)
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
    events.patient_erased(organization_pk=organization.pk, patient_id=public_id)
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
    events.appointment_created(appointment)
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
    events.appointment_updated(appointment, fields=changed)
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
    appointment.cancellation_reason_index = cancellation_reason_index_of(reason)
    appointment.save(
        update_fields=["status", "cancelled_at", "cancellation_reason", "cancellation_reason_index", "updated_at"]
    )
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
    events.appointment_canceled(appointment)
    return appointment


# --- Conversations and messages ------------------------------------------------------------------------

CONTENT_MAX = 1600  # one WhatsApp message through Twilio (messaging's MAX_SMS_BODY)
MESSAGE_PURPOSE = "mark.message"
REMINDER_PURPOSE = "mark.reminder"
SYSTEM_ACTOR = Actor.system("patients.reminders")


def conversation_idle() -> timedelta:
    return timedelta(minutes=settings.MARK_CONVERSATION_IDLE_MINUTES)


def _conversation_last_activity(conversation: Conversation) -> datetime:
    """The time of the conversation's last message (its start if it has none); `last_message_at` is kept
    by message_record in the message's own transaction."""
    last = conversation.last_message_at
    return max(last, conversation.start_time) if last is not None else conversation.start_time


def conversation_for_message(*, patient: Patient, now: datetime) -> Conversation:
    """The patient's open conversation if its last activity is less than MARK_CONVERSATION_IDLE_MINUTES
    before `now`; otherwise that one is closed (`end_time` = its last activity) and a new one starts at
    `now`. Call with the patient row locked (message_record does), so two messages cannot start two."""
    conversation = (
        Conversation.objects.filter(patient=patient, status=Conversation.Status.OPEN)
        .order_by("-start_time", "-id")
        .first()
    )
    if conversation is not None:
        last = _conversation_last_activity(conversation)
        if now - last < conversation_idle():
            return conversation
        conversation.status = Conversation.Status.CLOSED
        conversation.end_time = last
        conversation.save(update_fields=["status", "end_time"])
        events.conversation_updated(conversation)
    conversation = Conversation.objects.create(
        organization_id=patient.organization_id,
        patient=patient,
        language=patient.language,
        status=Conversation.Status.OPEN,
        start_time=now,
    )
    events.conversation_created(conversation)
    return conversation


def _clean_content(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid("content", "content is required")
    if len(value) > CONTENT_MAX:
        raise _invalid("content", f"content is at most {CONTENT_MAX} characters")
    return value


@transaction.atomic
def message_record(
    *,
    patient: Patient,
    sender: str,
    content: str,
    content_type: str = "text",
    outbound_message=None,
    now: datetime | None = None,
) -> Message:
    """Store one message in the patient's conversation (joining the open one or starting one); the
    patient's `last_activity` moves to it. No audit event of its own: the caller's action has one."""
    now = now or utc_now()
    sender = _clean_choice(sender, Message.Sender, "sender")
    content_type = _clean_choice(content_type, Message.ContentType, "content_type")
    patient = _lock_patient(patient)
    conversation = conversation_for_message(patient=patient, now=now)
    message = Message.objects.create(
        organization_id=patient.organization_id,
        conversation=conversation,
        sender=sender,
        content_type=content_type,
        content=content,
        outbound_message=outbound_message,
        created_at=now,
    )
    Conversation.objects.filter(pk=conversation.pk).update(
        message_count=F("message_count") + 1, last_message_at=Greatest(Coalesce("last_message_at", now), now)
    )
    conversation.message_count += 1  # the instance the message holds matches the row (the patient is locked)
    conversation.last_message_at = max(conversation.last_message_at or now, now)
    _touch(patient, now)
    return message


def _whatsapp_refusal(patient: Patient) -> Conflict | None:
    """Why the patient cannot be written to on WhatsApp (None if they can)."""
    if not patient.whatsapp_consent:
        return Conflict(
            "The patient opted out of WhatsApp messages",
            code="WHATSAPP_OPTED_OUT",
            details={"field": "patient_id", "reason": patient.whatsapp_opt_out_reason or "opted_out"},
        )
    if patient.archived:
        return Conflict("The patient is archived", code="PATIENT_ARCHIVED", details={"field": "patient_id"})
    if not patient.phone:
        return Conflict("The patient has no phone number", code="NO_PHONE_NUMBER", details={"field": "patient_id"})
    return None


@transaction.atomic
def message_send_text(
    *,
    organization,
    patient: Patient,
    text: Any,
    actor: Actor,
    now: datetime | None = None,
    template: str = TEMPLATE_CLINIC_MESSAGE,
    variables: dict | None = None,
) -> Message:
    """A text from the clinic (POST /messages): stored as sender `system` in the patient's conversation
    and queued on WhatsApp through the messaging outbox in the same transaction; its status is the outbox
    row's (queued -> sent -> delivered/failed). A patient who opted out (or has no number) is a Conflict
    naming why; nothing is stored or queued. The audit event holds ids only, never the number or text."""
    now = now or utc_now()
    if patient.organization_id != organization.pk:
        raise _invalid("patient_id", "Unknown patient_id")
    text = _clean_content(text)
    patient = _lock_patient(patient)
    refusal = _whatsapp_refusal(patient)
    if refusal is not None:
        raise refusal
    outbound = whatsapp_queue(
        patient=patient,
        body=text,
        purpose=MESSAGE_PURPOSE,
        actor=actor,
        template=template,
        variables=variables if variables is not None else {"1": patient.organization.name, "2": text},
        now=now,
    )
    message = message_record(
        patient=patient, sender=Message.Sender.SYSTEM, content=text, outbound_message=outbound, now=now
    )
    _audit(
        "message.sent",
        actor=actor,
        organization=organization,
        subject_type="message",
        subject_id=message.public_id,
        patient_id=patient.public_id,
        conversation_id=message.conversation.public_id,
        outbound_message_id=outbound.public_id,
    )
    return message


# --- Reminder sweeper ----------------------------------------------------------------------------------


def reminder_status(reminder: Reminder) -> str:
    """pending/sent/failed/skipped as the API shows it: a sent reminder whose outbox message failed is
    `failed` even before the sweeper's reconcile step has written it."""
    message = reminder.outbound_message
    if reminder.status == Reminder.Status.SENT and message is not None and message.status == "failed":
        return Reminder.Status.FAILED
    return reminder.status


def _appointment_variables(appointment: Appointment, patient: Patient) -> dict[str, str]:
    """The clinic's name and the start's date and time in the clinic's time zone: the variables of the
    appointment templates ({"1": clinic, "2": date, "3": time}) and of the free texts."""
    from patients.selectors import clinic_time_zone  # selectors import this package: import late

    start = appointment.start_time.astimezone(clinic_time_zone(organization=patient.organization))
    return {"1": patient.organization.name, "2": start.strftime("%d/%m/%Y"), "3": start.strftime("%H:%M")}


def _reminder_body(reminder: Reminder, appointment: Appointment, patient: Patient) -> str:
    variables = _appointment_variables(appointment, patient)
    return reminder_text(
        language=patient.language, kind=reminder.kind, clinic=variables["1"], date=variables["2"], time=variables["3"]
    )


def _reminder_still_due(reminder: Reminder, appointment: Appointment, now: datetime) -> str | None:
    """None if the reminder is to be sent now, else the code of why it is skipped."""
    if appointment.status not in Appointment.ACTIVE_STATUSES:
        return "appointment_not_active"
    if appointment.start_time <= now:
        return "appointment_started"
    if reminder.due_at != appointment.start_time - reminder_offsets()[reminder.kind]:
        return "replanned"  # defensive: a reschedule re-plans due_at in the transaction that moves the start
    return None


def reminder_send(*, reminder_id: int, now: datetime | None = None) -> str:
    """Queue one due reminder, at most once. In one transaction: the reminder and its appointment are
    locked (SKIP LOCKED: a reminder another sweeper or a cancel/reschedule holds is left to the next run),
    re-read as pending and due, the appointment re-checked (active, not started, due time matching its
    start), then the WhatsApp text is queued through the outbox and the reminder marked `sent` with the
    outbox row. Returns "sent", "skipped" or "not_due" (nothing to do)."""
    now = now or utc_now()
    patient_id = Reminder.objects.filter(pk=reminder_id).values_list("appointment__patient_id", flat=True).first()
    if patient_id is None:
        return "not_due"
    with transaction.atomic():
        # Lock order patient -> appointment/reminder, as appointment_update; SKIP LOCKED everywhere, so the
        # sweeper never waits on a booking, a cancel or another sweeper (and cannot deadlock with them).
        patient = (
            Patient.objects.select_for_update(skip_locked=True)
            .select_related("organization")
            .filter(pk=patient_id)
            .first()
        )
        if patient is None:
            return "not_due"
        reminder = (
            Reminder.objects.select_for_update(skip_locked=True, of=("self", "appointment"))
            .select_related("appointment")
            .filter(pk=reminder_id, status=Reminder.Status.PENDING, due_at__lte=now)
            .first()
        )
        if reminder is None:
            return "not_due"
        appointment = reminder.appointment
        reason = _reminder_still_due(reminder, appointment, now)
        if reason is None:
            refusal = _whatsapp_refusal(patient)
            reason = refusal.code.lower() if refusal is not None else None
        if reason is not None:
            reminder.status = Reminder.Status.SKIPPED
            reminder.save(update_fields=["status", "updated_at"])
            _audit(
                "reminder.skipped",
                actor=SYSTEM_ACTOR,
                organization=patient.organization,
                subject_type="appointment",
                subject_id=appointment.public_id,
                kind=reminder.kind,
                reason=reason,
            )
            return "skipped"
        body = _reminder_body(reminder, appointment, patient)
        try:
            outbound = whatsapp_queue(
                patient=patient,
                body=body,
                purpose=REMINDER_PURPOSE,
                actor=SYSTEM_ACTOR,
                template=TEMPLATE_REMINDER[reminder.kind],
                variables=_appointment_variables(appointment, patient),
                now=now,
            )
        except Conflict as exc:
            # Outside WhatsApp's window with no template for it: never sent as free text (docs/mark.md).
            reminder.status = Reminder.Status.SKIPPED
            reminder.save(update_fields=["status", "updated_at"])
            _audit(
                "reminder.skipped",
                actor=SYSTEM_ACTOR,
                organization=patient.organization,
                subject_type="appointment",
                subject_id=appointment.public_id,
                kind=reminder.kind,
                reason=(exc.code or "refused").lower(),
            )
            return "skipped"
        message_record(patient=patient, sender=Message.Sender.SYSTEM, content=body, outbound_message=outbound, now=now)
        reminder.status = Reminder.Status.SENT
        reminder.outbound_message = outbound
        reminder.save(update_fields=["status", "outbound_message", "updated_at"])
        _audit(
            "reminder.queued",
            actor=SYSTEM_ACTOR,
            organization=patient.organization,
            subject_type="appointment",
            subject_id=appointment.public_id,
            kind=reminder.kind,
            outbound_message_id=outbound.public_id,
        )
        return "sent"


def reminders_sweep(*, now: datetime | None = None, limit: int = 200) -> dict[str, int]:
    """The beat sweeper's work: send every due pending reminder (each in its own transaction, so one bad
    row does not hold back the rest), then write `failed` on sent reminders whose outbox message failed."""
    now = now or utc_now()
    counts = {"sent": 0, "skipped": 0, "not_due": 0}
    due_ids = list(
        Reminder.objects.filter(status=Reminder.Status.PENDING, due_at__lte=now)
        .order_by("due_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    for reminder_id in due_ids:
        counts[reminder_send(reminder_id=reminder_id, now=now)] += 1
    counts["failed"] = Reminder.objects.filter(status=Reminder.Status.SENT, outbound_message__status="failed").update(
        status=Reminder.Status.FAILED
    )
    return counts


# --- Cancellation notice (POST /appointments/{id}/cancel with notify_patient) ----------------------------

CANCEL_NOTICE_TEXTS = {
    "en": "{clinic}: your appointment on {date} at {time} has been cancelled.",
    "es": "{clinic}: su cita del {date} a las {time} ha sido cancelada.",
    "ca": "{clinic}: la seva cita del {date} a les {time} ha estat cancel·lada.",
    "ar": "{clinic}: تم إلغاء موعدك يوم {date} الساعة {time}.",
}


@transaction.atomic
def appointment_cancel_and_notify(
    *,
    appointment: Appointment,
    actor: Actor,
    reason: str | None = "",
    notify_patient: bool = False,
    now: datetime | None = None,
) -> tuple[Appointment, bool]:
    """Cancel, and with `notify_patient` queue a WhatsApp notice in the same transaction (so a notice is
    never queued for a cancel that rolled back). A patient who cannot receive WhatsApp (opted out, no
    number, archived) still gets the cancel; the second value says whether a notice was queued."""
    now = now or utc_now()
    appointment = appointment_cancel(appointment=appointment, actor=actor, reason=reason, now=now)
    patient = appointment.patient
    if not notify_patient or _whatsapp_refusal(patient) is not None:
        return appointment, False
    variables = _appointment_variables(appointment, patient)
    text = CANCEL_NOTICE_TEXTS[language_of(patient.language)].format(
        clinic=variables["1"], date=variables["2"], time=variables["3"]
    )
    try:
        message_send_text(
            organization=patient.organization,
            patient=patient,
            text=text,
            actor=actor,
            now=now,
            template=TEMPLATE_CANCELLED,
            variables=variables,
        )
    except Conflict as exc:
        if exc.code != OUTSIDE_WINDOW:
            raise
        return appointment, False  # outside WhatsApp's window and no template: the cancel stands
    return appointment, True
