"""Therapist dashboard (spec: therapist-dashboard-api.md; decisions: docs/therapist-dashboard.md).

Therapists in training practise sessions with simulated clients; supervisors of the same organization read
and evaluate them. Everything is stored typed and hangs off a `TrainingSession` (public id `ses_...`), which
belongs to one organization and one therapist (a platform user, shown by `accounts.User.public_id`, `usr_...`).

Free text about a person (progress feedback, evaluation feedback and comments) is encrypted at rest.
Skill names are normalised to a stable `skill_id` slug per organization (`Skill`), so "Active Listening"
and "active listening" are one skill. `metadata` on milestones is the only open JSON.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.encryption import EncryptedTextField
from core.ids import public_id_default


def _score_check(field: str, name: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=Q(**{f"{field}__gte": 0}) & Q(**{f"{field}__lte": 100}), name=f"{name}_{field}_0_100"
    )


def _non_negative(field: str, name: str) -> models.CheckConstraint:
    return models.CheckConstraint(condition=Q(**{f"{field}__gte": 0}), name=f"{name}_{field}_non_negative")


class TrainingSession(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("ses"), editable=False)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="training_sessions"
    )
    therapist = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="training_sessions")
    # The caller's opaque label for the simulated client (no link to patients).
    client_label = models.CharField(max_length=200)
    start_time = models.DateTimeField()
    end_time = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    progress = models.FloatField(default=0)
    # Set when analytics were posted for the session (then GET analytics returns them as posted).
    analytics_posted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-start_time", "-id"]
        indexes = [
            models.Index(fields=["therapist", "start_time"], name="ses_therapist_start"),
            models.Index(fields=["organization", "start_time"], name="ses_org_start"),
        ]
        constraints = [
            _score_check("progress", "ses"),
            models.CheckConstraint(
                condition=Q(end_time__isnull=True) | Q(end_time__gte=models.F("start_time")),
                name="ses_end_after_start",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id


class ProgressMetrics(models.Model):
    """The session's current metrics: each progress POST replaces them. Its skill scores go to
    SessionSkillScore and its milestones to Milestone (`milestonesReached` is read back from there)."""

    session = models.OneToOneField(TrainingSession, on_delete=models.CASCADE, related_name="progress_metrics")
    total_messages = models.PositiveIntegerField()
    therapist_messages = models.PositiveIntegerField()
    client_messages = models.PositiveIntegerField()
    session_duration = models.PositiveIntegerField()  # seconds
    active_time = models.PositiveIntegerField()  # seconds
    response_time = models.FloatField()  # average, seconds
    conversation_flow = models.FloatField()  # 0-100
    last_milestone_time = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "progress metrics"
        constraints = [
            _score_check("conversation_flow", "pm"),
            _non_negative("response_time", "pm"),
            models.CheckConstraint(
                condition=Q(therapist_messages__lte=models.F("total_messages") - models.F("client_messages")),
                name="pm_messages_add_up",
            ),
            models.CheckConstraint(condition=Q(active_time__lte=models.F("session_duration")), name="pm_active_time"),
        ]

    def __str__(self) -> str:
        return f"metrics: {self.total_messages} messages, {self.session_duration} s"


class ProgressFeedback(models.Model):
    """`evaluationFeedback` of a progress POST: appended, one row per post that carried it."""

    session = models.ForeignKey(TrainingSession, on_delete=models.CASCADE, related_name="progress_feedback")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    feedback = EncryptedTextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "progress feedback"

    def __str__(self) -> str:
        # Never the text itself (it is about a person): only when it was written.
        return f"feedback of {self.created_at:%Y-%m-%d %H:%M}"


class ProgressSnapshot(models.Model):
    session = models.ForeignKey(TrainingSession, on_delete=models.CASCADE, related_name="snapshots")
    timestamp = models.DateTimeField()
    value = models.FloatField()

    class Meta:
        ordering = ["timestamp"]
        constraints = [
            # Posting the same snapshots twice stores them once.
            models.UniqueConstraint(fields=["session", "timestamp"], name="uniq_snapshot_session_timestamp"),
            _score_check("value", "snap"),
        ]

    def __str__(self) -> str:
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S}: {self.value:g}"


class Milestone(models.Model):
    """A milestone identifier from a progress post's `milestonesReached`, achieved at the first post that
    named it; `value` is the session's latest snapshot value at that moment (None without snapshots)."""

    session = models.ForeignKey(TrainingSession, on_delete=models.CASCADE, related_name="milestones")
    name = models.CharField(max_length=100)
    value = models.FloatField(null=True, blank=True)
    achieved_at = models.DateTimeField()
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["achieved_at", "id"]
        constraints = [models.UniqueConstraint(fields=["session", "name"], name="uniq_milestone_session_name")]

    def __str__(self) -> str:
        return self.name


class Skill(models.Model):
    """A skill of an organization: `skill_id` is the normalised name ("Active Listening" -> "active-listening"),
    `name` the display name first posted."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="skills")
    skill_id = models.SlugField(max_length=100)
    name = models.CharField(max_length=100)
    category = models.CharField(max_length=50, default="general")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "skill_id"], name="uniq_skill_org_skill_id")]

    def __str__(self) -> str:
        return self.name


class SessionSkillScore(models.Model):
    """A session's current score for one skill (a later post for the same skill replaces it).

    `therapist` and `session_start` copy the session's therapist and start time (neither ever changes after
    the session is created), so the skill reads find a therapist's scores of one skill newest or oldest first
    with one index range scan (therapist, skill, session_start, then the tie-breakers recorded_at and id: no
    sort at all) instead of joining and sorting all their scores.
    Every insert sets them from the session (services, bench and test factories)."""

    session = models.ForeignKey(TrainingSession, on_delete=models.CASCADE, related_name="skill_scores")
    skill = models.ForeignKey(Skill, on_delete=models.PROTECT, related_name="scores")
    # = session.therapist; the index led by therapist serves lookups by therapist too.
    therapist = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    session_start = models.DateTimeField()  # = session.start_time
    score = models.FloatField()
    created_at = models.DateTimeField()  # first scored in this session
    recorded_at = models.DateTimeField()  # last changed

    class Meta:
        ordering = ["skill__name"]
        constraints = [
            models.UniqueConstraint(fields=["session", "skill"], name="uniq_skill_score_session_skill"),
            _score_check("score", "sss"),
        ]
        indexes = [
            models.Index(fields=["skill", "session"], name="sss_skill_session"),
            models.Index(
                fields=["therapist", "skill", "session_start", "recorded_at", "id"], name="sss_therapist_skill_start"
            ),
        ]

    def __str__(self) -> str:
        return f"skill {self.skill_id}: {self.score:g}"


# --- Posted analytics (stored as posted; a new POST for the session replaces the previous one) -------------


class AnalyticsSessionMetric(models.Model):
    session = models.ForeignKey(TrainingSession, on_delete=models.CASCADE, related_name="analytics_session_metrics")
    position = models.PositiveSmallIntegerField()
    date = models.DateField()
    sessions = models.PositiveIntegerField()
    therapist_sessions = models.PositiveIntegerField()
    average_session_progress = models.FloatField()
    milestones_achieved = models.PositiveIntegerField()
    average_response_time = models.FloatField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["session", "position"], name="uniq_analytics_metric_position"),
            _score_check("average_session_progress", "asm"),
            _non_negative("average_response_time", "asm"),
        ]

    def __str__(self) -> str:
        return f"{self.date}: {self.sessions} sessions"


class AnalyticsSkillProgress(models.Model):
    class Trend(models.TextChoices):
        UP = "up", "Up"
        DOWN = "down", "Down"
        STABLE = "stable", "Stable"

    session = models.ForeignKey(TrainingSession, on_delete=models.CASCADE, related_name="analytics_skill_progress")
    position = models.PositiveSmallIntegerField()
    skill = models.ForeignKey(Skill, on_delete=models.PROTECT, related_name="+")
    score = models.FloatField()
    trend = models.CharField(max_length=10, choices=Trend.choices)
    # As posted; blank when the post named none (the skill's own category is shown then).
    category = models.CharField(max_length=50, blank=True, default="")
    sessions_practiced = models.PositiveIntegerField()
    average_improvement = models.FloatField()

    class Meta:
        ordering = ["position"]
        verbose_name_plural = "analytics skill progress"
        constraints = [
            models.UniqueConstraint(fields=["session", "position"], name="uniq_analytics_skill_position"),
            _score_check("score", "asp"),
        ]

    def __str__(self) -> str:
        return f"skill {self.skill_id}: {self.score:g} ({self.trend})"


class AnalyticsSummaryStat(models.Model):
    class Direction(models.TextChoices):
        UP = "up", "Up"
        DOWN = "down", "Down"
        STABLE = "stable", "Stable"

    session = models.ForeignKey(TrainingSession, on_delete=models.CASCADE, related_name="analytics_summary_stats")
    position = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=100)
    value = models.FloatField()
    # The trend is optional in a posted stat: all three null or all three set.
    trend_value = models.FloatField(null=True, blank=True)
    trend_direction = models.CharField(max_length=10, choices=Direction.choices, blank=True, default="")
    trend_period = models.CharField(max_length=50, blank=True, default="")
    color = models.CharField(max_length=30, blank=True, default="")

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["session", "position"], name="uniq_analytics_stat_position"),
        ]

    def __str__(self) -> str:
        return f"{self.label}: {self.value:g}"


# --- Comparisons and evaluations ------------------------------------------------------------------------


class SessionComparison(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("cmp"), editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="+")
    therapist = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    current_session = models.ForeignKey(
        TrainingSession, on_delete=models.CASCADE, related_name="comparisons_as_current"
    )
    previous_session = models.ForeignKey(
        TrainingSession, on_delete=models.CASCADE, related_name="comparisons_as_previous"
    )
    improvement_score = models.FloatField()
    progress_improvement = models.FloatField()  # points, may be negative
    skill_score_improvement = models.FloatField()  # points, may be negative
    response_time_improvement = models.FloatField()  # seconds faster, may be negative
    analyzed_at = models.DateTimeField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-analyzed_at", "-id"]
        indexes = [models.Index(fields=["therapist", "analyzed_at"], name="cmp_therapist_analyzed")]
        constraints = [
            _score_check("improvement_score", "cmp"),
            models.CheckConstraint(condition=~Q(current_session=models.F("previous_session")), name="cmp_two_sessions"),
        ]

    def __str__(self) -> str:
        return self.public_id


class Evaluation(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("evl"), editable=False)
    session = models.ForeignKey(TrainingSession, on_delete=models.CASCADE, related_name="evaluations")
    evaluator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    rating = models.PositiveSmallIntegerField()
    feedback = EncryptedTextField()
    comments = EncryptedTextField(blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(rating__gte=1) & Q(rating__lte=5), name="evl_rating_1_5"),
        ]

    def __str__(self) -> str:
        return self.public_id


class AnalyticsGeneration(models.Model):
    """A therapist's derived-analytics generation in one organization: a random token replaced, in the same
    transaction, by every service write that can change what derived analytics are computed from (their
    sessions, progress metrics, milestones, skill scores, snapshots, posted analytics). A derived body cached
    under a token is therefore never served after a write commits (docs/therapist-dashboard.md, "Speed").

    Random, not a counter: a row deleted and made again (a user erased and re-created) never gives back a
    token an old cache entry was stored under. No row: nothing is cached for that therapist."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    therapist = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token = models.CharField(max_length=32)
    changed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "therapist"], name="analytics_generation_unique"),
        ]

    def __str__(self) -> str:
        return f"analytics generation {self.token[:8]}"
