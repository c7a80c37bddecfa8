"""Therapist dashboard API (spec: therapist-dashboard-api.md; decisions: docs/therapist-dashboard.md).

Inputs: the spec's camelCase fields, each declared with `source=` on the services' snake_case name, so the
validated data is what the services take. Types are strict (JSON numbers are numbers: "7" is not 7, true is
not 1; floats are finite); every bound and cap of the design is checked here and a 400 names each bad field
by its JSON path (`{"progressMetrics": {"activeTime": [...]}}`). Unknown fields are ignored, never stored.
`sessionId` fields are any string: one that names no readable session is a 404, like an unknown id.

Outputs: OutputSerializer subclasses (the body and its OpenAPI schema), camelCase via `source=`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import (
    ABSENT,
    DATE_ONLY_INPUT_FORMATS,
    InstantField,
    IsoDateTimeField,
    OutputSerializer,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
)
from sessions_analytics.analytics import skill_slug
from sessions_analytics.models import AnalyticsSkillProgress, AnalyticsSummaryStat, TrainingSession

STATUSES = list(TrainingSession.Status.values)
TRENDS = list(AnalyticsSkillProgress.Trend.values)
DIRECTIONS = list(AnalyticsSummaryStat.Direction.values)
COMPARISON_TRENDS = ["improving", "declining", "stable"]
ANALYTICS_SOURCES = ["posted", "derived"]

# Caps (docs/therapist-dashboard.md, "Validation").
INT_MAX = 2_147_483_647  # the database's PositiveIntegerField
MAX_SNAPSHOTS_PER_REQUEST = 500
MAX_SKILL_SCORES = 50
SKILL_NAME_MAX = 100
MILESTONE_NAME_MAX = 100
MAX_MILESTONES = 50
MAX_SESSION_METRICS = 366
MAX_SKILL_PROGRESS = 50
MAX_SUMMARY_STATS = 20
TEXT_MAX = 10_000
CLIENT_ID_MAX = 200
LABEL_MAX = 100
COLOR_MAX = 30
PERIOD_MAX = 50
CATEGORY_MAX = 50
ID_MAX = 80
POINTS_MAX = 100.0  # improvements in score points
RESPONSE_TIME_IMPROVEMENT_MAX = 86_400.0  # seconds


# --- Input fields ---------------------------------------------------------------------------------------


def _score(**kwargs) -> StrictFloatField:
    return StrictFloatField(min_value=0, max_value=100, **kwargs)


def _count(**kwargs) -> StrictIntegerField:
    return StrictIntegerField(min_value=0, max_value=INT_MAX, **kwargs)


def _seconds(**kwargs) -> StrictFloatField:
    return StrictFloatField(min_value=0, **kwargs)


def _text(max_length: int, **kwargs) -> StrictCharField:
    return StrictCharField(max_length=max_length, trim_whitespace=False, **kwargs)


@extend_schema_field(OpenApiTypes.STR)
class SessionIdField(serializers.Field):
    """A `ses_...` id. Any value that is not a string names no session: the view answers 404 "Session not
    found" for it exactly as for an unknown id (never a hint about which ids exist)."""

    def validate_empty_values(self, data):
        if data is None:  # null names no session either (absent is still "This field is required.")
            return True, ""
        return super().validate_empty_values(data)

    def to_internal_value(self, data):
        return data if isinstance(data, str) else ""

    def to_representation(self, value):
        return value


class PublicIdField(StrictCharField):
    """A public id (`usr_...`) as a JSON string; the view resolves it (403/404 by the access rules)."""

    def __init__(self, **kwargs):
        super().__init__(max_length=ID_MAX, **kwargs)


class SkillNameField(StrictCharField):
    """A skill's display name, 1-100 characters, that normalises to a non-empty skill id."""

    default_error_messages = {"no_skill_id": "must contain a letter or a digit (it names no skill)"}

    def __init__(self, **kwargs):
        super().__init__(min_length=1, max_length=SKILL_NAME_MAX, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not skill_slug(value):
            self.fail("no_skill_id")
        return value


class SkillScoresField(serializers.DictField):
    """`{skill name: score 0-100}`, at most 50 skills; errors are keyed by the skill name. Its schema states
    the size (SkillScoresFieldSchema)."""

    default_error_messages = {"too_many": f"at most {MAX_SKILL_SCORES} skills per request"}

    def __init__(self, **kwargs):
        super().__init__(child=_score(), **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, dict) and len(data) > MAX_SKILL_SCORES:
            self.fail("too_many")
        scores = super().to_internal_value(data)
        name_field = SkillNameField()
        errors = {}
        for name in scores:
            try:
                name_field.run_validation(name)
            except serializers.ValidationError as exc:
                errors[name] = exc.detail
        if errors:
            raise serializers.ValidationError(errors)
        return scores


class SkillScoresFieldSchema(OpenApiSerializerFieldExtension):
    """The map's size as the server enforces it: at most MAX_SKILL_SCORES skills, at least one where the
    field does not allow an empty map (POST /api/session/skills)."""

    target_class = SkillScoresField

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        schema["maxProperties"] = MAX_SKILL_SCORES
        if not self.target.allow_empty:
            schema["minProperties"] = 1
        return schema


class _Body(serializers.Serializer):
    """Input serializers read JSON objects only (the view refuses other bodies) and ignore unknown keys."""


# --- Sessions -------------------------------------------------------------------------------------------


class SessionCreateInput(_Body):
    clientId = _text(CLIENT_ID_MAX, source="client_label", min_length=1, help_text="Your label for the client")
    startTime = InstantField(source="start_time", required=False, help_text="ISO 8601 with a time zone (default: now)")


class SessionUpdateInput(_Body):
    status = serializers.ChoiceField(choices=STATUSES, required=False)
    endTime = InstantField(source="end_time", required=False, help_text="ISO 8601 with a time zone")
    progress = _score(required=False, help_text="0-100")

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Give at least one of status, endTime, progress")
        return attrs


# --- Progress -------------------------------------------------------------------------------------------


class ProgressMetricsInput(_Body):
    totalMessages = _count(source="total_messages")
    therapistMessages = _count(source="therapist_messages")
    clientMessages = _count(source="client_messages")
    sessionDuration = _count(source="session_duration", help_text="seconds")
    activeTime = _count(source="active_time", help_text="seconds, at most sessionDuration")
    responseTime = _seconds(source="response_time", help_text="average, seconds")
    conversationFlow = _score(source="conversation_flow", help_text="0-100")
    skillScores = SkillScoresField(
        source="skill_scores", required=False, default=dict, help_text="skill name -> score 0-100, at most 50"
    )
    milestonesReached = serializers.ListField(
        source="milestones_reached",
        child=StrictCharField(min_length=1, max_length=MILESTONE_NAME_MAX),
        max_length=MAX_MILESTONES,
        required=False,
        default=list,
        help_text=f"milestone identifiers (1-{MILESTONE_NAME_MAX} characters), at most {MAX_MILESTONES}",
    )
    lastMilestoneTime = InstantField(source="last_milestone_time", required=False, allow_null=True)

    def validate(self, attrs):
        errors = {}
        if attrs["therapist_messages"] + attrs["client_messages"] > attrs["total_messages"]:
            errors["totalMessages"] = ["must be at least therapistMessages + clientMessages"]
        if attrs["active_time"] > attrs["session_duration"]:
            errors["activeTime"] = ["must not exceed sessionDuration"]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ProgressInput(_Body):
    sessionId = SessionIdField(source="session_id", help_text="ses_...")
    progressMetrics = ProgressMetricsInput(source="progress_metrics")
    therapistId = PublicIdField(source="therapist_id", required=False, help_text="usr_... (default: the caller)")
    evaluationFeedback = _text(
        TEXT_MAX,
        source="evaluation_feedback",
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="appended to the session's feedback when not empty",
    )


# --- Snapshots ------------------------------------------------------------------------------------------


class SnapshotInput(_Body):
    timestamp = InstantField(help_text="ISO 8601 with a time zone")
    value = _score(help_text="0-100")


def _snapshot_list(**kwargs) -> serializers.ListField:
    return serializers.ListField(
        child=SnapshotInput(),
        max_length=MAX_SNAPSHOTS_PER_REQUEST,
        help_text=f"at most {MAX_SNAPSHOTS_PER_REQUEST}; a timestamp already stored for the session is skipped",
        **kwargs,
    )


def _refuse_repeated_timestamps(snapshots: list[dict]) -> None:
    seen, errors = set(), {}
    for index, snapshot in enumerate(snapshots):
        if snapshot["timestamp"] in seen:
            errors[index] = {"timestamp": ["repeats an earlier snapshot's timestamp in this request"]}
        seen.add(snapshot["timestamp"])
    if errors:
        raise serializers.ValidationError(errors)


class SnapshotsInput(_Body):
    sessionId = SessionIdField(source="session_id", help_text="ses_...")
    snapshots = _snapshot_list(min_length=1)

    def validate_snapshots(self, value):
        _refuse_repeated_timestamps(value)
        return value


# --- Skills ---------------------------------------------------------------------------------------------


class SkillsInput(_Body):
    sessionId = SessionIdField(source="session_id", help_text="ses_...")
    therapistId = PublicIdField(source="therapist_id", required=False, help_text="usr_...; the session's therapist")
    skillScores = SkillScoresField(
        source="skill_scores", allow_empty=False, help_text="skill name -> score 0-100, 1 to 50 skills"
    )


# --- Analytics ------------------------------------------------------------------------------------------


class SessionMetricInput(_Body):
    date = serializers.DateField(input_formats=DATE_ONLY_INPUT_FORMATS, help_text="YYYY-MM-DD")
    sessions = _count()
    therapistSessions = _count(source="therapist_sessions")
    averageSessionProgress = _score(source="average_session_progress")
    sessionId = PublicIdField(source="session_id", required=False, help_text="this session's id when given")
    therapistId = PublicIdField(source="therapist_id", required=False, help_text="its therapist's id when given")
    milestonesAchieved = _count(source="milestones_achieved")
    averageResponseTime = _seconds(source="average_response_time", help_text="seconds")


class SkillProgressInput(_Body):
    skill = SkillNameField(help_text="display name; normalised to skillId")
    skillId = StrictCharField(
        source="skill_id", required=False, max_length=SKILL_NAME_MAX, help_text="when given, the normalised skill"
    )
    score = _score()
    trend = serializers.ChoiceField(choices=TRENDS)
    category = StrictCharField(required=False, max_length=CATEGORY_MAX, help_text="default: the skill's category")
    sessionsPracticed = _count(source="sessions_practiced")
    averageImprovement = StrictFloatField(
        source="average_improvement", min_value=-POINTS_MAX, max_value=POINTS_MAX, help_text="points per session"
    )

    def validate(self, attrs):
        if "skill_id" in attrs and attrs["skill_id"] != skill_slug(attrs["skill"]):
            raise serializers.ValidationError({"skillId": [f"must be {skill_slug(attrs['skill'])!r} for this skill"]})
        return attrs


class TrendInput(_Body):
    value = StrictFloatField()
    direction = serializers.ChoiceField(choices=DIRECTIONS)
    period = StrictCharField(max_length=PERIOD_MAX, allow_blank=True)


class SummaryStatInput(_Body):
    value = StrictFloatField()
    label = StrictCharField(min_length=1, max_length=LABEL_MAX)
    therapistId = PublicIdField(source="therapist_id", required=False, help_text="the session's therapist when given")
    trend = TrendInput(required=False)
    color = StrictCharField(required=False, allow_blank=True, max_length=COLOR_MAX)


class AnalyticsDataInput(_Body):
    sessionMetrics = serializers.ListField(
        source="session_metrics", child=SessionMetricInput(), max_length=MAX_SESSION_METRICS
    )
    skillProgress = serializers.ListField(
        source="skill_progress", child=SkillProgressInput(), max_length=MAX_SKILL_PROGRESS
    )
    summaryStats = serializers.ListField(source="summary_stats", child=SummaryStatInput(), max_length=MAX_SUMMARY_STATS)
    progressSnapshots = _snapshot_list(source="progress_snapshots", required=False)

    def validate_progressSnapshots(self, value):
        _refuse_repeated_timestamps(value)
        return value


class AnalyticsInput(_Body):
    sessionId = SessionIdField(source="session_id", help_text="ses_...")
    analyticsData = AnalyticsDataInput(source="analytics_data")


def foreign_entry_ids(data: dict, *, session_id: str, therapist_id: str) -> dict:
    """Errors (by JSON path) for analytics entries whose `sessionId`/`therapistId` name another session or
    therapist than the session posted for; {} when every given id is this session's."""
    errors = {}
    checks = (("sessionMetrics", "session_metrics", True), ("summaryStats", "summary_stats", False))
    for name, key, has_session in checks:
        for index, entry in enumerate(data[key]):
            problems = {}
            if has_session and entry.get("session_id", session_id) != session_id:
                problems["sessionId"] = ["is not this session"]
            if entry.get("therapist_id", therapist_id) != therapist_id:
                problems["therapistId"] = ["is not this session's therapist"]
            if problems:
                errors.setdefault(name, {})[index] = problems
    return {"analyticsData": errors} if errors else {}


# --- Comparisons ----------------------------------------------------------------------------------------


class ComparisonMetricsInput(_Body):
    progressImprovement = StrictFloatField(
        source="progress_improvement", min_value=-POINTS_MAX, max_value=POINTS_MAX, help_text="points, -100 to 100"
    )
    skillScoreImprovement = StrictFloatField(
        source="skill_score_improvement", min_value=-POINTS_MAX, max_value=POINTS_MAX, help_text="points, -100 to 100"
    )
    responseTimeImprovement = StrictFloatField(
        source="response_time_improvement",
        min_value=-RESPONSE_TIME_IMPROVEMENT_MAX,
        max_value=RESPONSE_TIME_IMPROVEMENT_MAX,
        help_text="seconds faster, -86400 to 86400",
    )


class ComparisonInput(_Body):
    therapistId = PublicIdField(source="therapist_id", required=False, help_text="usr_... (default: the caller)")
    currentSessionId = SessionIdField(source="current_session_id", help_text="ses_...")
    previousSessionId = SessionIdField(source="previous_session_id", help_text="ses_..., started before the current")
    improvementScore = _score(source="improvement_score", help_text="0-100")
    metrics = ComparisonMetricsInput()


# --- Evaluations ----------------------------------------------------------------------------------------


class EvaluationInput(_Body):
    sessionId = SessionIdField(source="session_id", help_text="ses_...")
    feedback = _text(TEXT_MAX, min_length=1)
    evaluatorId = PublicIdField(source="evaluator_id", required=False, help_text="usr_...: the caller when given")
    rating = StrictIntegerField(min_value=1, max_value=5, help_text="1-5")
    comments = _text(TEXT_MAX, required=False, allow_blank=True, allow_null=True, default="")

    def validate_feedback(self, value):
        if not value.strip():
            raise serializers.ValidationError("must not be blank")
        return value


# --- Outputs --------------------------------------------------------------------------------------------


class SuccessOutput(OutputSerializer):
    success = serializers.BooleanField(help_text="always true")
    sessionId = serializers.CharField(source="session_id", help_text="ses_...")


class SnapshotOutput(OutputSerializer):
    timestamp = IsoDateTimeField()
    value = serializers.FloatField(help_text="0-100")


class SessionBriefOutput(OutputSerializer):
    id = serializers.CharField(source="public_id", help_text="ses_...")
    clientId = serializers.CharField(source="client_label")
    therapistId = serializers.CharField(source="therapist.public_id", help_text="usr_...")
    startTime = IsoDateTimeField(source="start_time")
    endTime = IsoDateTimeField(source="end_time", allow_null=True)
    status = serializers.ChoiceField(choices=STATUSES)
    progress = serializers.FloatField(help_text="0-100")


class SkillScoreMapField(serializers.DictField):
    """A session's SessionSkillScore rows (skill joined) as `{display name: score}`."""

    def __init__(self, **kwargs):
        super().__init__(child=serializers.FloatField(), **kwargs)

    def to_representation(self, value):
        return {score.skill.name: score.score for score in value}


class MilestoneNamesField(serializers.ListField):
    """A session's Milestone rows as their names, in the order given (by achievement)."""

    def __init__(self, **kwargs):
        super().__init__(child=serializers.CharField(), **kwargs)

    def to_representation(self, value):
        return [milestone.name for milestone in value]


class ProgressMetricsOutput(OutputSerializer):
    """Renders a `ProgressMetricsView` (the metrics row with the session's skill scores and milestones)."""

    totalMessages = serializers.IntegerField(source="metrics.total_messages")
    therapistMessages = serializers.IntegerField(source="metrics.therapist_messages")
    clientMessages = serializers.IntegerField(source="metrics.client_messages")
    sessionDuration = serializers.IntegerField(source="metrics.session_duration", help_text="seconds")
    activeTime = serializers.IntegerField(source="metrics.active_time", help_text="seconds")
    skillScores = SkillScoreMapField(source="skill_scores", help_text="skill display name -> score")
    responseTime = serializers.FloatField(source="metrics.response_time", help_text="average, seconds")
    conversationFlow = serializers.FloatField(source="metrics.conversation_flow", help_text="0-100")
    milestonesReached = MilestoneNamesField(source="milestones", help_text="milestone names, first reached first")
    lastMilestoneTime = IsoDateTimeField(source="metrics.last_milestone_time", allow_null=True)


@dataclass(frozen=True)
class ProgressMetricsView:
    metrics: Any
    skill_scores: list
    milestones: list


def progress_metrics_view(read) -> ProgressMetricsView | None:
    """The `progressMetrics` object of a read (ProgressRead, SessionDetail): None before the first post."""
    if read.metrics is None:
        return None
    return ProgressMetricsView(metrics=read.metrics, skill_scores=read.skill_scores, milestones=read.milestones)


class SessionMetricOutput(OutputSerializer):
    date = serializers.DateField(help_text="YYYY-MM-DD (UTC)")
    sessions = serializers.IntegerField()
    therapistSessions = serializers.IntegerField(source="therapist_sessions")
    averageSessionProgress = serializers.FloatField(source="average_session_progress")
    sessionId = serializers.CharField(source="session_id", allow_null=True)
    therapistId = serializers.CharField(source="therapist_id", allow_null=True)
    milestonesAchieved = serializers.IntegerField(source="milestones_achieved")
    averageResponseTime = serializers.FloatField(source="average_response_time", help_text="seconds")

    @classmethod
    def render_many(cls, metrics) -> list:
        # Up to a year and a half of days (derived analytics), built by hand: about twice the compiled
        # renderer's speed; the same body (tests/sessions_analytics/test_api_dashboard.py).
        return [
            {
                "date": metric.date.isoformat(),
                "sessions": int(metric.sessions),
                "therapistSessions": int(metric.therapist_sessions),
                "averageSessionProgress": float(metric.average_session_progress),
                "sessionId": None if metric.session_id is None else str(metric.session_id),
                "therapistId": None if metric.therapist_id is None else str(metric.therapist_id),
                "milestonesAchieved": int(metric.milestones_achieved),
                "averageResponseTime": float(metric.average_response_time),
            }
            for metric in metrics
        ]


class SkillProgressOutput(OutputSerializer):
    skill = serializers.CharField(help_text="display name")
    skillId = serializers.CharField(source="skill_id")
    score = serializers.FloatField()
    trend = serializers.ChoiceField(choices=TRENDS)
    category = serializers.CharField()
    sessionsPracticed = serializers.IntegerField(source="sessions_practiced")
    averageImprovement = serializers.FloatField(source="average_improvement")


class StatTrendOutput(OutputSerializer):
    value = serializers.FloatField()
    direction = serializers.ChoiceField(choices=DIRECTIONS)
    period = serializers.CharField()


class SummaryStatOutput(OutputSerializer):
    value = serializers.FloatField()
    label = serializers.CharField()
    therapistId = serializers.CharField(source="therapist_id", allow_null=True)
    trend = StatTrendOutput(allow_null=True, help_text="null when a posted stat had none")
    color = serializers.CharField(allow_blank=True)


class AnalyticsDataOutput(OutputSerializer):
    sessionMetrics = SessionMetricOutput(many=True, source="session_metrics")
    skillProgress = SkillProgressOutput(many=True, source="skill_progress")
    summaryStats = SummaryStatOutput(many=True, source="summary_stats")
    progressSnapshots = SnapshotOutput(many=True, source="progress_snapshots")
    source = serializers.ChoiceField(
        choices=ANALYTICS_SOURCES, help_text="posted: as last posted; derived: computed from the stored sessions"
    )


class SessionOutput(OutputSerializer):
    """Renders `session_body(detail)`."""

    id = serializers.CharField(source="session.public_id", help_text="ses_...")
    clientId = serializers.CharField(source="session.client_label")
    therapistId = serializers.CharField(source="session.therapist.public_id", help_text="usr_...")
    startTime = IsoDateTimeField(source="session.start_time")
    endTime = IsoDateTimeField(source="session.end_time", allow_null=True)
    status = serializers.ChoiceField(source="session.status", choices=STATUSES)
    progress = serializers.FloatField(source="session.progress", help_text="0-100")
    progressSnapshots = SnapshotOutput(many=True, source="snapshots", help_text="by timestamp; may be empty")
    progressMetrics = ProgressMetricsOutput(source="progress_metrics", allow_null=True, help_text="null before any")
    analyticsData = AnalyticsDataOutput(
        source="analytics_data", required=False, help_text="only when analytics were posted for the session"
    )


def session_body(detail) -> dict:
    """The body of a `SessionDetail` (selectors.session_detail)."""
    return {
        "session": detail.session,
        "snapshots": detail.snapshots,
        "progress_metrics": progress_metrics_view(detail),
        "analytics_data": detail.analytics if detail.analytics is not None else ABSENT,
    }


class FeedbackOutput(OutputSerializer):
    therapistId = serializers.CharField(source="author.public_id", help_text="usr_... of the author")
    feedback = serializers.CharField()
    createdAt = IsoDateTimeField(source="created_at")


class ProgressOutput(OutputSerializer):
    sessionId = serializers.CharField(source="session_id")
    progressMetrics = ProgressMetricsOutput(source="progress_metrics", allow_null=True, help_text="null before any")
    feedback = FeedbackOutput(many=True, required=False, help_text="only with includeFeedback=true; oldest first")


class MilestoneOutput(OutputSerializer):
    milestoneName = serializers.CharField(source="name")
    milestoneValue = serializers.FloatField(source="value", allow_null=True, help_text="latest snapshot value then")
    achievedAt = IsoDateTimeField(source="achieved_at")
    metadata = serializers.DictField()


class SnapshotsOutput(OutputSerializer):
    sessionId = serializers.CharField(source="session.public_id")
    snapshots = SnapshotOutput(many=True, help_text="by timestamp")
    milestones = MilestoneOutput(many=True, help_text="by achievement")


class SkillsRecordedOutput(SuccessOutput):
    therapistId = serializers.CharField(source="therapist_id", help_text="the session's therapist (usr_...)")


class SkillSummaryOutput(OutputSerializer):
    skillName = serializers.CharField(source="skill_name")
    skillCategory = serializers.CharField(source="skill_category")
    currentScore = serializers.FloatField(source="current_score", help_text="in the latest practising session")
    practiceSessions = serializers.IntegerField(source="practice_sessions")
    lastPracticed = IsoDateTimeField(source="last_practiced", help_text="start of the latest practising session")
    createdAt = IsoDateTimeField(source="created_at", help_text="first scored in scope")


class SkillsOutput(OutputSerializer):
    sessionId = serializers.CharField(source="session_id", allow_null=True, help_text="as given, else null")
    therapistId = serializers.CharField(source="therapist_id", help_text="usr_...")
    skills = SkillSummaryOutput(many=True, help_text="by skill name")


class AnalyticsOutput(OutputSerializer):
    sessionId = serializers.CharField(source="session_id")
    analyticsData = AnalyticsDataOutput(source="analytics_data")


class ComparisonCreatedOutput(OutputSerializer):
    success = serializers.BooleanField(help_text="always true")
    comparisonId = serializers.CharField(source="comparison_id", help_text="cmp_...")
    therapistId = serializers.CharField(source="therapist_id", help_text="usr_...")
    currentSessionId = serializers.CharField(source="current_session_id", help_text="ses_...")


class EvaluationCreatedOutput(OutputSerializer):
    success = serializers.BooleanField(help_text="always true")
    evaluationId = serializers.CharField(source="evaluation_id", help_text="evl_...")


class EvaluationOutput(OutputSerializer):
    id = serializers.CharField(source="public_id", help_text="evl_...")
    feedback = serializers.CharField()
    evaluatorId = serializers.CharField(source="evaluator.public_id")
    rating = serializers.IntegerField()
    comments = serializers.CharField(allow_blank=True)
    createdAt = IsoDateTimeField(source="created_at")


class EvaluationsOutput(OutputSerializer):
    sessionId = serializers.CharField(source="session_id")
    evaluations = EvaluationOutput(many=True, help_text="oldest first")


class ComparisonMetricsOutput(OutputSerializer):
    progressImprovement = serializers.FloatField(source="progress_improvement", help_text="points")
    skillScoreImprovement = serializers.FloatField(source="skill_score_improvement", help_text="points")
    responseTimeImprovement = serializers.FloatField(source="response_time_improvement", help_text="seconds faster")


class ComparisonOutput(OutputSerializer):
    id = serializers.CharField(help_text="cmp_...")
    therapistId = serializers.CharField(source="therapist_id")
    currentSessionId = serializers.CharField(source="current_session_id")
    previousSessionId = serializers.CharField(source="previous_session_id")
    improvementScore = serializers.FloatField(source="improvement_score")
    metrics = ComparisonMetricsOutput()
    analyzedAt = IsoDateTimeField(source="analyzed_at")
    currentSessionStartedAt = IsoDateTimeField(source="current_session_started_at")
    previousSessionStartedAt = IsoDateTimeField(source="previous_session_started_at")
    trend = serializers.ChoiceField(
        choices=COMPARISON_TRENDS, help_text="progress + skill score improvement: >= 2 improving, <= -2 declining"
    )


class ComparisonsOutput(OutputSerializer):
    therapistId = serializers.CharField(source="therapist_id", help_text="the therapist named, else the session's")
    sessionId = serializers.CharField(source="session_id", allow_null=True, help_text="as given, else null")
    comparisons = ComparisonOutput(many=True, help_text="newest analyzedAt first, at most 500")
