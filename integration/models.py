"""LoveRescue: therapists, the app's clients and what their app records, consent links, alerts, reports,
and the integration partners (e.g. SuperTool) that read it for one therapist at a time.

Public ids are UUIDs (the spec's `user-uuid`, `link-uuid`, `alert-uuid`...). Free text written by or
about a client (journal entries, task notes, individual responses, generated reports) is encrypted at
rest. Consent is a property of the therapist-client link and is checked on every partner request, so a
client's change takes effect on the very next request: the caseload bodies kept in the cache (GET /clients,
/outcomes) are keyed by a token that every write to what they show replaces in its own transaction
(`CaseloadGeneration`, docs/loverescue.md "Speed").
"""

from __future__ import annotations

import uuid

import pgtrigger
from django.conf import settings
from django.db import models
from django.db.models import Q

from core.encryption import EncryptedJSONField, EncryptedTextField
from core.statement_triggers import statement_triggers
from integration.storage import baa_document_upload_to, private_media_storage

# --- Caseload generation: what invalidates the cached caseload bodies -----------------------------

_LINKED_TO = "SELECT l.therapist_id FROM integration_therapistclientlink l WHERE l.client_id IN ({clients})"


def _caseload_triggers(name: str, therapists: str) -> list[pgtrigger.Trigger]:
    """Statement-level triggers that replace the caseload token of every therapist a write can concern, in the
    writer's own transaction: `therapists` is SQL selecting their ids from `{rows}` (the rows written: new rows
    of an INSERT, old rows of a DELETE, both of an UPDATE). A TRUNCATE replaces every token. Triggers, not
    service calls, so that no write path (a service, the admin, a bulk update, a cascade, raw SQL) is missed;
    rows are locked in therapist order, so two writes concerning the same therapists queue, never deadlock.
    PostgreSQL only: elsewhere nothing is cached (integration.selectors.caseload)."""

    def replace_tokens(selected: str) -> str:
        # Fixed table names; `selected` is SQL written in this module, never input.
        return (
            "WITH locked AS (SELECT therapist_id FROM integration_caseloadgeneration WHERE therapist_id IN ("  # noqa: S608
            + selected
            + ") "
            "ORDER BY therapist_id FOR NO KEY UPDATE) "
            "UPDATE integration_caseloadgeneration g SET token = gen_random_uuid() FROM locked "
            "WHERE g.therapist_id = locked.therapist_id"
        )

    return statement_triggers(
        f"{name}_caseload",
        insert=replace_tokens(therapists.format(rows="new_rows")),
        update=replace_tokens(therapists.format(rows="(SELECT * FROM old_rows UNION ALL SELECT * FROM new_rows)")),
        delete=replace_tokens(therapists.format(rows="old_rows")),
        truncate=replace_tokens("SELECT therapist_id FROM integration_caseloadgeneration"),
    )


def _client_rows_triggers(name: str) -> list[pgtrigger.Trigger]:
    """For a table of one client's rows (`client_id`): the therapists linked to those clients."""
    return _caseload_triggers(name, _LINKED_TO.format(clients="SELECT r.client_id FROM {rows} r"))


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
        triggers = [
            # Every therapist has a caseload generation row from the start (nothing is cached without one).
            pgtrigger.Trigger(
                name="therapist_caseload_row",
                operation=pgtrigger.Insert,
                level=pgtrigger.Statement,
                when=pgtrigger.After,
                referencing=pgtrigger.Referencing(new="new_rows"),
                func=(
                    "INSERT INTO integration_caseloadgeneration (therapist_id, token) SELECT id, gen_random_uuid() "
                    "FROM new_rows ON CONFLICT DO NOTHING; RETURN NULL;"
                ),
            )
        ]
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
        triggers = _caseload_triggers("client", _LINKED_TO.format(clients="SELECT r.id FROM {rows} r"))
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
        triggers = _caseload_triggers(
            "couple",
            _LINKED_TO.format(clients="SELECT r.partner1_id FROM {rows} r UNION SELECT r.partner2_id FROM {rows} r"),
        )
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
        triggers = _caseload_triggers("link", "SELECT r.therapist_id FROM {rows} r")
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
        triggers = _client_rows_triggers("checkin")
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
        triggers = _client_rows_triggers("activity")
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

    class Meta:
        triggers = _client_rows_triggers("course")

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
        triggers = _client_rows_triggers("assessment")
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
        triggers = _client_rows_triggers("alert")
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
        triggers = _caseload_triggers("alert_recipient", "SELECT r.therapist_id FROM {rows} r")
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


class CaseloadGeneration(models.Model):
    """A therapist's caseload generation: a random token that the database replaces, in the writer's own
    transaction, on every write to what GET /clients and /outcomes show for that therapist (their links and
    consent, their clients' names, emails, couples, check-ins, activities, course, assessments and alerts, and
    their own read marks; the `_caseload_triggers` on those tables). The bodies are cached under the token
    (integration.selectors.caseload), so a body is never served after such a write commits.

    Random, not a counter: a row deleted and made again never gives back a token an old entry was stored
    under. Rows are made by a trigger on Therapist (and migration 0005 for therapists made before it)."""

    therapist = models.OneToOneField(Therapist, primary_key=True, on_delete=models.CASCADE, related_name="+")
    token = models.UUIDField()

    def __str__(self) -> str:
        return f"caseload generation of {self.therapist_id}"
