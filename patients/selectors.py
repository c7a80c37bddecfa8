"""Mark reads, every one scoped to one organization: another organization's id is NotFound exactly like
an unknown id. Lists return querysets with their related rows joined or prefetched, so the number of
queries does not grow with the number of rows (tests/patients/test_selectors.py counts them)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet

from core.domain import NotFound
from core.kept_counts import kept_total
from core.phones import e164_or_none
from patients.models import (
    Appointment,
    ClinicSettings,
    Conversation,
    ConversationCount,
    Message,
    Patient,
    PatientCount,
    Reminder,
    fold_name,
)
from patients.services import phone_index_of


def _region(region: str | None) -> str:
    return region or settings.MARK_DEFAULT_PHONE_REGION


def clinic_settings(*, organization) -> ClinicSettings:
    """The organization's Mark settings; an unsaved row of defaults when it has none (never None)."""
    try:
        return organization.clinic_settings
    except ClinicSettings.DoesNotExist:
        return ClinicSettings(organization=organization)


def clinic_phone_region(*, organization) -> str:
    """The region a number written without "+" is read in: the clinic's country, else the platform's."""
    return _region(clinic_settings(organization=organization).country or None)


def clinic_time_zone(*, organization) -> ZoneInfo:
    """The clinic's time zone (reminder texts, analytics buckets), else MARK_TIME_ZONE."""
    return ZoneInfo(clinic_settings(organization=organization).time_zone or settings.MARK_TIME_ZONE)


def clinic_by_whatsapp_number(*, number_e164: str) -> ClinicSettings | None:
    """The clinic whose WhatsApp number an inbound message was sent to (None: no clinic has it)."""
    return ClinicSettings.objects.select_related("organization").filter(whatsapp_number=number_e164).first()


# What a list row shows (patients.api.serializers.PatientListItemOutput, ConversationListItemOutput): the other
# columns, the notes and the patient's phone and email on a conversation among them, are neither read nor
# decrypted for a page (bench/mark_api.py: 2.96 -> 1.48 ms of CPU for a page of 20 conversations).
_PATIENT_LIST_FIELDS = ("public_id", "name", "phone", "email", "created_at", "last_activity", "language", "status")
_CONVERSATION_LIST_FIELDS = (
    "public_id",
    "start_time",
    "end_time",
    "language",
    "message_count",
    "summary",
    "patient",
    "patient__public_id",
    "patient__name",
)


def patient_list(
    *,
    organization,
    search: str | None = None,
    status: str | None = None,
    language: str | None = None,
    include_archived: bool = False,
    region: str | None = None,
) -> QuerySet[Patient]:
    """Most recently active first, with the fields a list row shows. `search`: a phone number in any format
    that normalises (with the region hint) to the patient's E.164 matches exactly through the blind index; any
    other text matches the name case- and accent-insensitively ("jose" finds "José")."""
    patients = Patient.objects.filter(**_patient_equal(organization, status, language, include_archived))
    term = (search or "").strip()
    if term:
        phone = e164_or_none(term, region=_region(region))
        if phone is not None:
            patients = patients.filter(phone_index=phone_index_of(phone))
        else:
            patients = patients.filter(name_search__contains=fold_name(term))
    return patients.order_by("-last_activity", "-id").only(*_PATIENT_LIST_FIELDS)


def patient_list_total(
    *,
    organization,
    search: str | None = None,
    status: str | None = None,
    language: str | None = None,
    include_archived: bool = False,
) -> int | None:
    """How many patients `patient_list` with these filters has, from the kept counts (one small query, whatever
    the clinic's size); None for a search (counted with the list) or where no counts are kept."""
    if (search or "").strip():
        return None
    return kept_total(PatientCount, **_patient_equal(organization, status, language, include_archived))


def _patient_equal(organization, status: str | None, language: str | None, include_archived: bool) -> dict:
    """The list's filters on counted columns (PatientCount's), for the list and its kept total alike."""
    equal = {"organization": organization}
    if not include_archived:
        equal["archived"] = False
    if status:
        equal["status"] = status
    if language:
        equal["language"] = language
    return equal


def patient_get(*, organization, public_id: str) -> Patient:
    patient = (
        Patient.objects.select_related("organization").filter(organization=organization, public_id=public_id).first()
    )
    if patient is None:
        raise NotFound("Patient not found")
    return patient


def patient_by_phone(*, organization, phone_e164: str) -> Patient | None:
    """The patient an inbound number belongs to (most recently active if several share it)."""
    return (
        Patient.objects.filter(organization=organization, phone_index=phone_index_of(phone_e164))
        .order_by("-last_activity", "-id")
        .first()
    )


def conversation_list(
    *,
    organization,
    patient_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    language: str | None = None,
) -> QuerySet[Conversation]:
    """Newest first, the patient joined, with the fields a list row shows (`message_count` is a kept column).
    `start`/`end` bound the start time (inclusive); `patient_id` is a public id (an unknown one simply matches
    nothing)."""
    conversations = Conversation.objects.filter(**_conversation_equal(organization, language))
    if patient_id:
        conversations = conversations.filter(patient__public_id=patient_id)
    if start is not None:
        conversations = conversations.filter(start_time__gte=start)
    if end is not None:
        conversations = conversations.filter(start_time__lte=end)
    return conversations.select_related("patient").order_by("-start_time", "-id").only(*_CONVERSATION_LIST_FIELDS)


def conversation_list_total(
    *,
    organization,
    patient_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    language: str | None = None,
) -> int | None:
    """How many conversations `conversation_list` with these filters has, from the kept counts; None when it
    is filtered by patient or time (counted with the list) or where no counts are kept."""
    if patient_id or start is not None or end is not None:
        return None
    return kept_total(ConversationCount, **_conversation_equal(organization, language))


def _conversation_equal(organization, language: str | None) -> dict:
    """The list's filters on counted columns (ConversationCount's), for the list and its kept total alike."""
    return {"organization": organization, **({"language": language} if language else {})}


def _messages() -> QuerySet[Message]:
    return Message.objects.select_related("outbound_message").order_by("created_at", "id")


def conversation_get(*, organization, public_id: str) -> Conversation:
    conversation = (
        Conversation.objects.select_related("patient", "organization")
        .prefetch_related(Prefetch("messages", queryset=_messages()))
        .filter(organization=organization, public_id=public_id)
        .first()
    )
    if conversation is None:
        raise NotFound("Conversation not found")
    return conversation


def _reminders_prefetch() -> Prefetch:
    return Prefetch("reminders", queryset=Reminder.objects.select_related("outbound_message").order_by("due_at", "id"))


def appointment_list(
    *,
    organization,
    patient_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    status: str | None = None,
) -> QuerySet[Appointment]:
    """By start time, with the patient joined and the reminders prefetched. `start`/`end` bound the start
    time (inclusive)."""
    appointments = Appointment.objects.filter(organization=organization)
    if patient_id:
        appointments = appointments.filter(patient__public_id=patient_id)
    if start is not None:
        appointments = appointments.filter(start_time__gte=start)
    if end is not None:
        appointments = appointments.filter(start_time__lte=end)
    if status:
        appointments = appointments.filter(status=status)
    return appointments.select_related("patient").prefetch_related(_reminders_prefetch()).order_by("start_time", "id")


def appointment_get(*, organization, public_id: str) -> Appointment:
    appointment = (
        Appointment.objects.select_related("patient", "patient__organization")
        .prefetch_related(_reminders_prefetch())
        .filter(organization=organization, public_id=public_id)
        .first()
    )
    if appointment is None:
        raise NotFound("Appointment not found")
    return appointment


def reminders_due(*, now: datetime, limit: int = 500) -> QuerySet[Reminder]:
    """Pending reminders whose time has come, oldest first (for the reminder sweeper of a later slice)."""
    return (
        Reminder.objects.filter(status=Reminder.Status.PENDING, due_at__lte=now)
        .select_related("appointment", "appointment__patient")
        .order_by("due_at", "id")[:limit]
    )


def message_get(*, organization, public_id: str) -> Message:
    """One message of the organization, its conversation, patient and outbox row joined (404 otherwise)."""
    message = (
        Message.objects.select_related("conversation__patient", "outbound_message")
        .filter(organization=organization, public_id=public_id)
        .first()
    )
    if message is None:
        raise NotFound("Message not found")
    return message


def message_with_media(*, public_id: str) -> Message:
    """The message a signed media URL names (the signature already proved the caller was given it)."""
    message = Message.objects.select_related("organization").filter(public_id=public_id).filter(~Q(media="")).first()
    if message is None:
        raise NotFound("Audio not found")
    return message
