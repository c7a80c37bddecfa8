"""Mark (patients/): a clinic's patients, their WhatsApp conversations and messages, appointments and the
appointment reminders. Also the patient record the Routiq/Cliniko sync (sync/) reads and fills.

Protected data (phone, email, notes, message text, summaries, cancellation reasons) is encrypted at rest
(core.encryption); phone and email have blind-index columns for exact lookups. Names stay plain so they
can be searched: `name_search` holds the name folded by `fold_name` (case- and accent-insensitive on
SQLite and PostgreSQL alike, no database extension needed). Every row belongs to one organization.
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import timedelta

from django.db import models
from django.db.models import Q

from core.encryption import BlindIndexField, EncryptedTextField
from core.ids import public_id_default
from core.kept_counts import CountParts, count_triggers
from core.time import utc_now
from patients.storage import media_storage, media_upload_to

PHONE_INDEX_PURPOSE = "patients.patient.phone"
EMAIL_INDEX_PURPOSE = "patients.patient.email"
TOMBSTONE_INDEX_PURPOSE = "patients.tombstone.external_id"
CANCELLATION_REASON_INDEX_PURPOSE = "patients.appointment.cancellation_reason"


def fold_name(value: str) -> str:
    """Lowercase without accents or other marks, whitespace collapsed: "  José  MARÍA" -> "jose maria".
    Stored on write and applied to the search term, so the database compares plain text."""
    decomposed = unicodedata.normalize("NFKD", value or "")
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


class Source(models.TextChoices):
    API = "api", "Mark API"
    WHATSAPP = "whatsapp", "Inbound WhatsApp"
    CLINIKO = "cliniko", "Cliniko sync"


# The list filters a kept count answers (core.kept_counts): GET /patients without a search, GET /conversations
# filtered by nothing but its language. Declared before the tables they count, whose triggers read them.


class PatientCount(CountParts):
    """Parts whose sum is how many patients an organization has with an archived flag, status and language: kept
    by the database in every writer's transaction (Patient's triggers, core.kept_counts), read for the list's
    `total`. Never written by the application (but for the compaction, core.tasks.compact_kept_counts)."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    archived = models.BooleanField()
    status = models.CharField(max_length=10)
    language = models.CharField(max_length=10)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "archived", "status", "language"], name="patients_patientcount_key")
        ]

    def __str__(self) -> str:
        return f"{self.n:+} patients ({self.status}, {self.language}{', archived' if self.archived else ''})"


class ConversationCount(CountParts):
    """Parts whose sum is how many conversations an organization has in a language (Conversation's triggers, as
    PatientCount)."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    language = models.CharField(max_length=10)

    class Meta:
        indexes = [models.Index(fields=["organization", "language"], name="patients_conversationcount_key")]

    def __str__(self) -> str:
        return f"{self.n:+} conversations ({self.language})"


class Patient(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        INACTIVE = "inactive", "Inactive"

    class OptOutReason(models.TextChoices):
        NONE = "", "-"
        STOP_KEYWORD = "stop_keyword", "Patient sent STOP"
        PATIENT_REQUEST = "patient_request", "Patient asked the clinic"
        CLINIC = "clinic", "Clinic decision"

    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("pat"), editable=False)
    uuid = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)  # Routiq shows UUIDs
    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="patients")
    name = models.CharField(max_length=200)
    name_search = models.CharField(max_length=200, editable=False)  # fold_name(name)
    phone = EncryptedTextField(null=True, blank=True)  # E.164
    # Not unique: Cliniko keeps family members who share one number as separate patients.
    phone_index = BlindIndexField(null=True, blank=True, db_index=False)
    email = EncryptedTextField(null=True, blank=True)
    email_index = BlindIndexField(null=True, blank=True, db_index=False)  # of strip().casefold()
    notes = EncryptedTextField(blank=True, default="")
    language = models.CharField(max_length=10, default="en")
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # WhatsApp: a patient the clinic registers is one it may write to, until they opt out (STOP or asking).
    whatsapp_consent = models.BooleanField(default=True)
    whatsapp_consent_changed_at = models.DateTimeField(null=True, blank=True)
    whatsapp_opt_out_reason = models.CharField(max_length=20, choices=OptOutReason.choices, blank=True, default="")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.API)
    # Cliniko patient id; NULL = none (NULLs never collide, so the unique key needs no condition and
    # the sync can upsert on it with ON CONFLICT).
    external_id = models.CharField(max_length=64, null=True, blank=True, default=None)  # noqa: DJ001
    archived = models.BooleanField(default=False)  # archived in Cliniko; hidden from lists by default
    last_synced_at = models.DateTimeField(null=True, blank=True)  # the last sync run that wrote this row
    last_activity = models.DateTimeField(default=utc_now)
    # The patient's last WhatsApp message to the clinic: free text may be sent for 24 h after it, templates
    # (Content SIDs) outside that window.
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=utc_now)  # the spec's registration_date
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_activity", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "external_id"], name="patients_patient_one_external_id")
        ]
        indexes = [
            models.Index(fields=["organization", "-last_activity", "-id"], name="patients_pat_org_activity"),
            models.Index(fields=["organization", "phone_index"], name="patients_pat_org_phone"),
            models.Index(fields=["organization", "email_index"], name="patients_pat_org_email"),
            models.Index(fields=["organization", "name_search"], name="patients_pat_org_name"),
            # The patient list's default (archived hidden): its page, its exact `total` and a name search
            # answered from this index alone (bench/mark_api.py; docs/mark.md, "API: analytics").
            models.Index(
                fields=["organization", "-last_activity", "-id"],
                condition=Q(archived=False),
                include=["name_search"],
                name="patients_pat_org_live",
            ),
            # The list's exact `total`: a narrow, deduplicated index counts 100k patients from ~90 pages
            # instead of the ~2,300 of the wide one above (bench/mark_api.py: 40 -> 10 ms).
            models.Index(fields=["organization"], condition=Q(archived=False), name="patients_pat_org_live_count"),
        ]
        triggers = count_triggers("patient", counts=PatientCount)

    def __str__(self) -> str:
        return self.public_id

    @property
    def can_receive_whatsapp(self) -> bool:
        return self.whatsapp_consent and not self.archived


class PatientTombstone(models.Model):
    """An erased patient's (or appointment's) external id, kept as its blind index only, so a later
    Cliniko sync does not bring the record back and the tombstone alone names nobody."""

    class Kind(models.TextChoices):
        PATIENT = "patient", "Patient"
        APPOINTMENT = "appointment", "Appointment"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    external_id_index = models.CharField(max_length=64)  # blind_index(external_id, TOMBSTONE_INDEX_PURPOSE)
    created_at = models.DateTimeField(default=utc_now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "kind", "external_id_index"], name="patients_tombstone_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} tombstone"


class Conversation(models.Model):
    class Channel(models.TextChoices):
        WHATSAPP = "whatsapp", "WhatsApp"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("conv"), editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="conversations")
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.WHATSAPP)
    language = models.CharField(max_length=10, default="en")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    start_time = models.DateTimeField(default=utc_now)
    end_time = models.DateTimeField(null=True, blank=True)
    summary = EncryptedTextField(null=True, blank=True)  # about the patient: protected
    metadata = models.JSONField(null=True, blank=True)  # intent, sentiment, escalated (codes, no text)
    # Kept by message_record in the message's transaction (list pages and analytics read them without
    # counting messages).
    message_count = models.PositiveIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-start_time", "-id"]
        indexes = [
            models.Index(fields=["organization", "-start_time", "-id"], name="patients_conv_org_start"),
            models.Index(fields=["patient", "status"], name="patients_conv_patient_status"),
        ]
        triggers = count_triggers("conversation", counts=ConversationCount)

    def __str__(self) -> str:
        return self.public_id


class Message(models.Model):
    class Sender(models.TextChoices):
        PATIENT = "patient", "Patient"
        ASSISTANT = "assistant", "Assistant"
        SYSTEM = "system", "System (clinic)"

    class ContentType(models.TextChoices):
        TEXT = "text", "Text"
        VOICE = "voice", "Voice"

    RECEIVED = "received"  # the status of a message the patient sent (no outbox row)

    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("msg"), editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    sender = models.CharField(max_length=10, choices=Sender.choices)
    content_type = models.CharField(max_length=10, choices=ContentType.choices, default=ContentType.TEXT)
    content = EncryptedTextField()  # the text; "" for a voice message (its audio is `media`)
    # Voice notes (POST /messages/voice, inbound WhatsApp media): the audio in private storage
    # (patients.storage, served only through signed expiring URLs), its container format and length.
    media = models.FileField(storage=media_storage, upload_to=media_upload_to, max_length=300, blank=True)
    media_format = models.CharField(max_length=8, blank=True, default="")  # mp3, wav, ogg
    media_duration = models.FloatField(null=True, blank=True)  # seconds
    transcription = EncryptedTextField(null=True, blank=True)  # speech-to-text of the audio, if a backend ran
    # The provider's id of an inbound message (Twilio MessageSid): a retried webhook is stored once.
    external_id = models.CharField(max_length=64, blank=True, default="")
    # The outbox row that sends it (assistant/system messages); its status is this message's status.
    outbound_message = models.ForeignKey(
        "messaging.OutboundMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=utc_now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_id"],
                condition=~Q(external_id=""),
                name="patients_message_one_external_id",
            )
        ]
        indexes = [
            models.Index(fields=["conversation", "created_at", "id"], name="patients_msg_conv_created"),
            models.Index(fields=["organization", "created_at"], name="patients_msg_org_created"),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def status(self) -> str:
        """queued/sent/delivered/failed from the outbox; `received` for the patient's own messages."""
        if self.outbound_message_id is None:
            return self.RECEIVED if self.sender == self.Sender.PATIENT else "queued"
        return self.outbound_message.status


class Appointment(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        RESCHEDULED = "rescheduled", "Rescheduled"
        COMPLETED = "completed", "Completed"
        CANCELED = "canceled", "Canceled"  # the spec's spelling

    ACTIVE_STATUSES = (Status.SCHEDULED, Status.RESCHEDULED)

    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("apt"), editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="appointments")
    start_time = models.DateTimeField()
    duration = models.PositiveIntegerField()  # minutes
    end_time = models.DateTimeField()  # start_time + duration, stored for overlap checks and range filters
    appointment_type = models.CharField(max_length=100, blank=True, default="")  # the spec's `type`
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.SCHEDULED)
    location = models.CharField(max_length=200, blank=True, default="")
    notes = EncryptedTextField(blank=True, default="")
    zoom_link = models.URLField(max_length=500, blank=True, default="")  # "" renders as null
    calendly_link = models.URLField(max_length=500, blank=True, default="")
    practitioner = models.CharField(max_length=200, blank=True, default="")
    # Cliniko appointment id; NULL = none (as Patient.external_id).
    external_id = models.CharField(max_length=64, null=True, blank=True, default=None)  # noqa: DJ001
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancellation_reason = EncryptedTextField(blank=True, default="")
    # blind_index(patients.analytics.reason_key(reason)): analytics groups equal reasons without reading them.
    cancellation_reason_index = BlindIndexField(blank=True, default="", db_index=False)
    did_not_arrive = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=utc_now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["start_time", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_id"], name="patients_appointment_one_external_id"
            ),
            models.CheckConstraint(condition=Q(duration__gte=1), name="patients_appointment_duration_positive"),
        ]
        indexes = [
            models.Index(fields=["organization", "start_time", "id"], name="patients_apt_org_start"),
            models.Index(fields=["patient", "start_time"], name="patients_apt_patient_start"),
        ]

    def __str__(self) -> str:
        return self.public_id

    @staticmethod
    def end_of(start_time, duration: int):
        return start_time + timedelta(minutes=duration)


class Reminder(models.Model):
    class Kind(models.TextChoices):
        H24 = "24h", "24 hours before"
        MIN30 = "30min", "30 minutes before"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    appointment = models.ForeignKey(Appointment, on_delete=models.CASCADE, related_name="reminders")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    due_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    outbound_message = models.ForeignKey(
        "messaging.OutboundMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=utc_now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due_at", "id"]
        constraints = [models.UniqueConstraint(fields=["appointment", "kind"], name="patients_one_reminder_per_kind")]
        # The sweeper's scan: pending reminders that are due.
        indexes = [models.Index(fields=["status", "due_at"], name="patients_reminder_due")]

    def __str__(self) -> str:
        return f"{self.kind} reminder"


class ClinicSettings(models.Model):
    """A clinic's Mark settings, one row per organization (absent = defaults): where it is (phone region,
    time zone), its WhatsApp sender and templates, the assistant responder and Zoom. Secrets are encrypted
    and shown once in the admin. Every write goes through patients.services."""

    class Responder(models.TextChoices):
        NONE = "none", "None (the clinic answers through the API)"
        ANTHROPIC = "anthropic", "Anthropic Messages API"

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="clinic_settings", primary_key=True
    )
    # ISO 3166-1 alpha-2: the region a phone number written without "+" is read in ("" = MARK_DEFAULT_PHONE_REGION).
    country = models.CharField(max_length=2, blank=True, default="")
    # IANA zone for reminder texts and analytics buckets ("" = MARK_TIME_ZONE).
    time_zone = models.CharField(max_length=64, blank=True, default="")
    # The clinic's WhatsApp number (E.164): the From of its messages and how inbound messages find it.
    whatsapp_number = models.CharField(max_length=20, blank=True, default="")
    # Optional Twilio Messaging Service (MG...) to send through instead of the bare number.
    whatsapp_messaging_service_sid = models.CharField(max_length=34, blank=True, default="")
    # Pre-approved templates for messages outside WhatsApp's 24-hour window:
    # {"<template name>": {"<language>": "HX<Content SID>"}}; see docs/mark.md.
    whatsapp_templates = models.JSONField(default=dict, blank=True)
    # Appointments the Cliniko sync brings in get the two WhatsApp reminders only when the clinic turns this
    # on (Mark bookings always do): a synced patient never wrote to Mark and may not expect messages.
    remind_synced_appointments = models.BooleanField(default=False)
    # Routiq dashboards: an appointment is "recent" for this many days (None = ROUTIQ_RECENT_DAYS).
    recent_days = models.PositiveSmallIntegerField(null=True, blank=True)
    responder = models.CharField(max_length=20, choices=Responder.choices, default=Responder.NONE)
    responder_api_key = EncryptedTextField(null=True, blank=True)
    responder_model = models.CharField(max_length=100, blank=True, default="")  # "" = MARK_RESPONDER_MODEL
    # Zoom server-to-server OAuth app (all three set = connected).
    zoom_account_id = models.CharField(max_length=100, blank=True, default="")
    zoom_client_id = models.CharField(max_length=100, blank=True, default="")
    zoom_client_secret = EncryptedTextField(null=True, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "clinic settings"
        verbose_name_plural = "clinic settings"
        constraints = [
            models.UniqueConstraint(
                fields=["whatsapp_number"], condition=~Q(whatsapp_number=""), name="patients_clinic_one_whatsapp_number"
            )
        ]

    def __str__(self) -> str:
        return f"settings of {self.organization.name}"  # staff read names, not row ids

    @property
    def zoom_connected(self) -> bool:
        return bool(self.zoom_account_id and self.zoom_client_id and self.zoom_client_secret)
