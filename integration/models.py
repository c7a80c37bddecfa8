"""LoveRescue: therapists, the app's clients and what their app records, consent links, alerts, reports,
and the integration partners (e.g. SuperTool) that read it for one therapist at a time.

Public ids are UUIDs (the spec's `user-uuid`, `link-uuid`, `alert-uuid`...). Free text written by or
about a client (journal entries, task notes, individual responses, generated reports) is encrypted at
rest. Consent is a property of the therapist-client link and is checked on every partner request (no
caching), so a client's change takes effect on the very next request.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.encryption import EncryptedJSONField, EncryptedTextField
from integration.storage import baa_document_upload_to, private_media_storage


class PermissionLevel(models.TextChoices):
    BASIC = "BASIC", "Basic"
    STANDARD = "STANDARD", "Standard"
    FULL = "FULL", "Full"


# Ordered from least to most data; `LEVEL_RANK[link.permission_level] >= LEVEL_RANK[required]`.
LEVEL_RANK = {PermissionLevel.BASIC: 1, PermissionLevel.STANDARD: 2, PermissionLevel.FULL: 3}


def level_allows(granted: str, required: str) -> bool:
    return LEVEL_RANK.get(granted, 0) >= LEVEL_RANK[required]


class Therapist(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="lr_therapist"
    )
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    # Where alert notifications go (messaging/): encrypted contact details.
    email = EncryptedTextField(null=True, blank=True)
    phone = EncryptedTextField(null=True, blank=True)  # E.164
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["last_name", "first_name"]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name} ({self.id})"


class Client(models.Model):
    """A LoveRescue app user. Logs in to /api/app/ as `user` with a platform token."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lr_client")
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = EncryptedTextField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["last_name", "first_name", "id"]

    def __str__(self) -> str:
        return f"client {self.id}"


class Couple(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        INACTIVE = "inactive", "Inactive"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    partner1 = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="couples_as_partner1")
    partner2 = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="couples_as_partner2")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(partner1=models.F("partner2")), name="lr_couple_two_people"),
            models.UniqueConstraint(fields=["partner1", "partner2"], name="lr_couple_unique_pair"),
        ]

    def __str__(self) -> str:
        return f"couple {self.id}"


class TherapistClientLink(models.Model):
    """The client's consent to one therapist, at a permission level the client chooses."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)  # the spec's linkId
    therapist = models.ForeignKey(Therapist, on_delete=models.CASCADE, related_name="links")
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="links")
    permission_level = models.CharField(max_length=10, choices=PermissionLevel.choices)
    consent_granted_at = models.DateTimeField(null=True, blank=True)
    consent_revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["therapist", "client"], name="lr_link_unique")]
        indexes = [models.Index(fields=["therapist", "consent_revoked_at"], name="lr_link_therapist_consent")]

    def __str__(self) -> str:
        return f"link {self.id} ({self.permission_level})"

    @property
    def has_consent(self) -> bool:
        return self.consent_granted_at is not None and self.consent_revoked_at is None


# Queryset filter for links whose consent is in force.
CONSENTED = Q(consent_granted_at__isnull=False, consent_revoked_at__isnull=True)


# --- What the client's app records --------------------------------------------------------------


class CheckIn(models.Model):
    """One daily check-in; posting the same date again replaces it."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="checkins")
    date = models.DateField()
    mood = models.PositiveSmallIntegerField()  # 1..10
    closeness = models.PositiveSmallIntegerField()  # 1..10
    crisis = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "date"], name="lr_checkin_one_per_day")]
        ordering = ["date"]

    def __str__(self) -> str:
        return f"check-in {self.client_id} {self.date}"


class RatioEntry(models.Model):
    """Positive and negative interactions of one day (Gottman's 5:1 ratio)."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="ratio_entries")
    date = models.DateField()
    positive = models.PositiveIntegerField()
    negative = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "date"], name="lr_ratio_one_per_day")]
        ordering = ["date"]

    def __str__(self) -> str:
        return f"ratio {self.client_id} {self.date}"


class ActivityEntry(models.Model):
    """A daily activity the client completed (several per day allowed). `week_number` set when it is a
    day of the course's weekly strategy."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="activities")
    date = models.DateField()
    activity = models.CharField(max_length=100)
    week_number = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["date", "id"]
        indexes = [models.Index(fields=["client", "date"], name="lr_activity_client_date")]

    def __str__(self) -> str:
        return f"activity {self.client_id} {self.date} {self.activity}"


class CourseProgress(models.Model):
    client = models.OneToOneField(Client, on_delete=models.CASCADE, related_name="course")
    current_week = models.PositiveSmallIntegerField(default=1)
    is_active = models.BooleanField(default=True)
    started_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)  # whole course

    def __str__(self) -> str:
        return f"course {self.client_id} week {self.current_week}"


class WeeklyStrategy(models.Model):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="weekly_strategies")
    week_number = models.PositiveSmallIntegerField()
    theme = models.CharField(max_length=200)
    completed_days = models.PositiveSmallIntegerField(default=0)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "week_number"], name="lr_strategy_unique_week")]
        ordering = ["week_number"]

    def __str__(self) -> str:
        return f"week {self.week_number} of {self.client_id}"


class Assessment(models.Model):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="assessments")
    type = models.CharField(max_length=50)
    score = models.JSONField()  # e.g. {"style": "anxious", "anxiety": 4.2, "avoidance": 2.1}
    # The client's individual answers (FULL permission only).
    responses = EncryptedJSONField(null=True, blank=True)
    completed_at = models.DateTimeField()

    class Meta:
        ordering = ["completed_at", "id"]
        indexes = [models.Index(fields=["client", "type", "completed_at"], name="lr_assessment_client_type")]

    def __str__(self) -> str:
        return f"{self.type} assessment of {self.client_id}"


class JournalEntry(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="journal_entries")
    text = EncryptedTextField()
    # Never returned to any therapist or partner, at any permission level.
    therapist_hidden = models.BooleanField(default=False)
    crisis = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    # When the journal crisis batch raised this flagged entry's CRISIS alert. The alert itself names no
    # entry (it must not be joinable to the journal: docs/loverescue.md, "CRISIS").
    crisis_handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(
                fields=["created_at"],
                name="lr_journal_crisis_pending",
                condition=Q(crisis=True, crisis_handled_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"journal entry {self.id}"


class TherapistTask(models.Model):
    class Priority(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        COMPLETED = "completed", "Completed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    therapist = models.ForeignKey(Therapist, on_delete=models.CASCADE, related_name="tasks")
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="tasks")
    partner = models.ForeignKey(
        "IntegrationPartner", null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_tasks"
    )
    description = EncryptedTextField()
    module = models.CharField(max_length=100, blank=True)
    activities = models.JSONField(default=list)
    notes = EncryptedTextField(null=True, blank=True)
    due_date = models.DateField(null=True, blank=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"task {self.id}"


# --- Alerts ------------------------------------------------------------------------------------


class AlertType(models.TextChoices):
    CRISIS = "CRISIS", "Crisis"
    RISK = "RISK", "Risk"
    MILESTONE = "MILESTONE", "Milestone"
    STAGNATION = "STAGNATION", "Stagnation"


class Severity(models.TextChoices):
    LOW = "LOW", "Low"
    MEDIUM = "MEDIUM", "Medium"
    HIGH = "HIGH", "High"
    CRITICAL = "CRITICAL", "Critical"


class Alert(models.Model):
    """One alert per episode of a condition for a client (`rule` + `episode_key` are unique per client:
    e.g. RISK's key is the first day of the low-mood run, so a persisting condition never makes a
    fresh copy). Seen by every therapist linked to the client at `required_level` or above."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="alerts")
    alert_type = models.CharField(max_length=20, choices=AlertType.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    rule = models.CharField(max_length=40)  # "crisis_checkin", "risk_mood", "stagnation", "milestone_week"...
    episode_key = models.CharField(max_length=100)
    required_level = models.CharField(max_length=10, choices=PermissionLevel.choices)
    message = models.CharField(max_length=300)  # generated text, never client free text
    metadata = models.JSONField(default=dict)
    created_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)  # the episode ended

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["client", "rule", "episode_key"], name="lr_alert_one_per_episode")
        ]
        indexes = [models.Index(fields=["client", "created_at"], name="lr_alert_client_created")]

    def __str__(self) -> str:
        return f"{self.alert_type}/{self.severity} alert {self.id}"


class AlertRecipient(models.Model):
    """Per-therapist state of an alert: read, and when the therapist was notified (by severity)."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="recipients")
    therapist = models.ForeignKey(Therapist, on_delete=models.CASCADE, related_name="alert_states")
    read_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["alert", "therapist"], name="lr_alert_recipient_unique")]
        indexes = [models.Index(fields=["therapist", "notified_at"], name="lr_alert_recipient_notify")]

    def __str__(self) -> str:
        return f"alert {self.alert_id} for {self.therapist_id}"


# --- Reports and couple analysis ---------------------------------------------------------------


class SessionPrepReport(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    therapist = models.ForeignKey(Therapist, on_delete=models.CASCADE, related_name="session_reports")
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="session_reports")
    report_date = models.DateTimeField()
    last_session_date = models.DateTimeField()
    # activitiesCompleted, assessmentChanges, moodTrends, crisisFlags, generatedSummary, expertInsights
    content = EncryptedJSONField()

    class Meta:
        ordering = ["-report_date"]
        indexes = [models.Index(fields=["therapist", "client", "report_date"], name="lr_report_lookup")]

    def __str__(self) -> str:
        return f"session prep {self.id}"


class Matchup(models.Model):
    """A compatibility score from both partners' assessments; a new row only when the inputs change."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    couple = models.ForeignKey(Couple, on_delete=models.CASCADE, related_name="matchups")
    score = models.PositiveSmallIntegerField()
    alignments = models.JSONField(default=dict)  # {"compatible": [...], "misses": [...]}
    inputs_fingerprint = models.CharField(max_length=64)
    generated_at = models.DateTimeField()

    class Meta:
        ordering = ["-generated_at"]
        constraints = [
            models.UniqueConstraint(fields=["couple", "inputs_fingerprint"], name="lr_matchup_unique_inputs")
        ]

    def __str__(self) -> str:
        return f"matchup {self.id} ({self.score})"


class CoupleProfile(models.Model):
    couple = models.OneToOneField(Couple, on_delete=models.CASCADE, related_name="profile")
    # attachmentDynamic, communicationStyle, strengths, growthEdges
    content = models.JSONField(default=dict)
    inputs_fingerprint = models.CharField(max_length=64)
    generated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"profile of couple {self.couple_id}"


# --- Integration partners ----------------------------------------------------------------------


class IntegrationPartner(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    suspended_at = models.DateTimeField(null=True, blank=True)
    # Business Associate Agreement: no API access without one on file.
    baa_signed_at = models.DateField("BAA signed on", null=True, blank=True)
    baa_signer = models.CharField("BAA signer", max_length=200, blank=True)
    # The signed PDF, in private storage (never served as media: see integration.storage); its SHA-256
    # is what audit events about it name.
    baa_document = models.FileField(
        "BAA document", upload_to=baa_document_upload_to, storage=private_media_storage, blank=True
    )
    baa_document_sha256 = models.CharField("BAA document SHA-256", max_length=64, blank=True, editable=False)
    # IPv4/IPv6 CIDRs; empty means any address.
    allowed_ips = models.JSONField(default=list, blank=True)
    # Requests per minute per API key; null means the spec's default of 100.
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute per API key. Empty: the default, 100."
    )
    therapists = models.ManyToManyField(Therapist, blank=True, related_name="partners")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_baa(self) -> bool:
        return self.baa_signed_at is not None

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class PartnerCredential(models.Model):
    """An API key (`lr_int_<key_id>_<...>`) and its secret (`sk_live_...`). The key is found by `key_id`
    and checked against `key_digest` (SHA-256: the key is 238 random bits); the secret is only kept as a
    bcrypt hash. After a rotation the previous secret hash stays valid until `previous_secret_expires_at`."""

    partner = models.ForeignKey(IntegrationPartner, on_delete=models.CASCADE, related_name="credentials")
    key_id = models.CharField(max_length=32, unique=True)
    key_digest = models.CharField(max_length=64)
    key_hint = models.CharField(max_length=32)  # "lr_int_<key_id>…" for the admin; not a secret
    secret_hash = models.CharField(max_length=100)
    previous_secret_hash = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.key_hint
