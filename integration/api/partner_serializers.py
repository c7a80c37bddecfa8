"""Partner API serializers: input serializers validate requests; output serializers describe the
responses (built as dicts by integration.selectors) for the OpenAPI schema."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import serializers

from integration import selectors
from integration.events import EVENT_TYPES
from integration.models import AlertType, TherapistTask

ALERT_TYPES = tuple(AlertType.values)
MAX_ALERT_LIMIT = 500
DEFAULT_ALERT_LIMIT = 100


def parse_iso_instant(value: str) -> datetime | None:
    """An ISO 8601 date or datetime as an aware UTC datetime (naive values are UTC); None if invalid."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    # An unencoded "+00:00" offset arrives as " 00:00" (a "+" in a query string is a space).
    text = re.sub(r"(T[\d:.]+) (\d{2}:?\d{2})$", r"\1+\2", text)
    try:
        parsed = parse_datetime(text.replace("z", "Z"))
    except ValueError:
        parsed = None
    if parsed is None:
        try:
            day = parse_date(text)
        except ValueError:
            day = None
        if day is None:
            return None
        parsed = datetime(day.year, day.month, day.day)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# --- Inputs ---------------------------------------------------------------------------------------


class BadParameter(ValueError):
    """A query parameter is invalid; the message names it."""


def _boolean(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise BadParameter(f"{name} must be true or false")


def alert_filters_from_query(params) -> selectors.AlertFilters:
    """GET /alerts query parameters -> AlertFilters; BadParameter names the first bad one."""
    alert_type = params.get("type")
    if alert_type is not None and alert_type not in ALERT_TYPES:
        raise BadParameter(f"type must be one of {', '.join(ALERT_TYPES)}")
    unread_only = _boolean("unreadOnly", params["unreadOnly"]) if "unreadOnly" in params else False
    since = None
    if "since" in params:
        since = parse_iso_instant(params["since"])
        if since is None:
            raise BadParameter("since must be an ISO 8601 date or datetime")
    limit = DEFAULT_ALERT_LIMIT
    if "limit" in params:
        raw = params["limit"].strip()
        if not raw.isdigit() or not (1 <= int(raw) <= MAX_ALERT_LIMIT):
            raise BadParameter(f"limit must be an integer from 1 to {MAX_ALERT_LIMIT}")
        limit = int(raw)
    return selectors.AlertFilters(alert_type=alert_type, unread_only=unread_only, since=since, limit=limit)


def last_session_date_from_query(params) -> datetime | None:
    """`lastSessionDate` (optional): ISO 8601, not in the future."""
    if "lastSessionDate" not in params:
        return None
    parsed = parse_iso_instant(params["lastSessionDate"])
    if parsed is None:
        raise BadParameter("lastSessionDate must be an ISO 8601 date or datetime")
    if parsed > selectors.utc_now():
        raise BadParameter("lastSessionDate must not be in the future")
    return parsed


class AssignRequestSerializer(serializers.Serializer):
    taskDescription = serializers.CharField(max_length=2000)
    module = serializers.SlugField(max_length=100, required=False, allow_blank=True)
    activities = serializers.ListField(
        child=serializers.CharField(max_length=100), max_length=50, required=False, default=list
    )
    notes = serializers.CharField(max_length=5000, required=False, allow_blank=True, allow_null=True)
    dueDate = serializers.DateField(required=False, allow_null=True, input_formats=["%Y-%m-%d"])
    priority = serializers.ChoiceField(
        choices=TherapistTask.Priority.values, required=False, default=TherapistTask.Priority.MEDIUM
    )

    def validate_dueDate(self, value):
        if value is not None and value < selectors.today_utc():
            raise serializers.ValidationError("must not be in the past")
        return value


class WebhookRegisterRequestSerializer(serializers.Serializer):
    webhookUrl = serializers.CharField(max_length=2000)
    events = serializers.ListField(child=serializers.CharField(max_length=100), allow_empty=False, max_length=10)

    def validate_events(self, value):
        unknown = [event for event in value if event not in EVENT_TYPES]
        if unknown:
            raise serializers.ValidationError(f"unknown event type {unknown[0]!r}; allowed: {', '.join(EVENT_TYPES)}")
        return list(dict.fromkeys(value))  # de-duplicated, in the caller's order


# --- Outputs (OpenAPI) ----------------------------------------------------------------------------


class PersonSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    firstName = serializers.CharField()
    lastName = serializers.CharField()


class CoupleMemberSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    firstName = serializers.CharField(required=False, help_text="Absent when withheld")
    lastName = serializers.CharField(required=False, help_text="Absent when withheld")
    withheld = serializers.BooleanField(
        required=False, help_text="true when this member has not consented to this therapist (no names)"
    )


class ClientCoupleSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    partner1 = CoupleMemberSerializer()
    partner2 = CoupleMemberSerializer()


class ClientItemSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    linkId = serializers.UUIDField()
    firstName = serializers.CharField()
    lastName = serializers.CharField()
    email = serializers.CharField(allow_null=True)
    permissionLevel = serializers.ChoiceField(choices=["BASIC", "STANDARD", "FULL"])
    consentGrantedAt = serializers.DateTimeField()
    couple = ClientCoupleSerializer(allow_null=True)
    latestActivity = serializers.DateField(allow_null=True)
    latestMood = serializers.IntegerField(allow_null=True, help_text="STANDARD or FULL only; else null")
    courseWeek = serializers.IntegerField(allow_null=True)
    courseActive = serializers.BooleanField()
    unreadAlerts = serializers.IntegerField()


class ClientListResponseSerializer(serializers.Serializer):
    clients = ClientItemSerializer(many=True)
    total = serializers.IntegerField()


class AssessmentScoreSerializer(serializers.Serializer):
    type = serializers.CharField()
    score = serializers.JSONField()
    completedAt = serializers.DateTimeField()


class ActivityCompletionSerializer(serializers.Serializer):
    totalDays = serializers.IntegerField(help_text="Window length: 90 days ending today (UTC)")
    daysActive = serializers.IntegerField()
    completionRate = serializers.IntegerField(help_text="daysActive / totalDays, percent")
    streak = serializers.IntegerField(help_text="Consecutive active days ending today or yesterday")
    tasksCompleted = serializers.IntegerField()
    tasksPending = serializers.IntegerField()


class WeeklyStrategySerializer(serializers.Serializer):
    weekNumber = serializers.IntegerField()
    theme = serializers.CharField()
    completedDays = serializers.IntegerField()
    completedAt = serializers.DateTimeField(allow_null=True)


class CourseProgressSerializer(serializers.Serializer):
    currentWeek = serializers.IntegerField(allow_null=True)
    isActive = serializers.BooleanField()
    completedWeeks = serializers.ListField(child=serializers.IntegerField())
    weeklyStrategies = WeeklyStrategySerializer(many=True)


class MoodPointSerializer(serializers.Serializer):
    date = serializers.DateField()
    mood = serializers.IntegerField()
    closeness = serializers.IntegerField()


class RatioPointSerializer(serializers.Serializer):
    date = serializers.DateField()
    positive = serializers.IntegerField()
    negative = serializers.IntegerField()
    ratio = serializers.FloatField(allow_null=True, help_text="positive / negative, 1 decimal; null when negative is 0")


class IndividualResponseSerializer(serializers.Serializer):
    type = serializers.CharField()
    responses = serializers.JSONField()
    completedAt = serializers.DateTimeField()


class JournalEntrySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    text = serializers.CharField()
    createdAt = serializers.DateTimeField()


class ProgressResponseSerializer(serializers.Serializer):
    clientId = serializers.UUIDField()
    assessmentScores = AssessmentScoreSerializer(many=True)
    activityCompletion = ActivityCompletionSerializer()
    courseProgress = CourseProgressSerializer()
    moodTrends = MoodPointSerializer(many=True, required=False, help_text="STANDARD or FULL; absent below")
    ratioTrends = RatioPointSerializer(many=True, required=False, help_text="STANDARD or FULL; absent below")
    individualResponses = IndividualResponseSerializer(many=True, required=False, help_text="FULL only")
    journalEntries = JournalEntrySerializer(
        many=True, required=False, help_text="FULL only; therapist-hidden entries are never included"
    )


class SessionPrepReportSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    therapistId = serializers.UUIDField()
    clientId = serializers.UUIDField()
    reportDate = serializers.DateTimeField()
    lastSessionDate = serializers.DateTimeField()
    activitiesCompleted = serializers.JSONField()
    assessmentChanges = serializers.JSONField()
    moodTrends = serializers.JSONField(help_text='{"average": float|null, "trend": "improving|declining|stable"}')
    crisisFlags = serializers.JSONField()
    generatedSummary = serializers.CharField()
    expertInsights = serializers.JSONField()


class SessionPrepResponseSerializer(serializers.Serializer):
    report = SessionPrepReportSerializer()


class CoupleRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()


class DynamicsSideSerializer(serializers.Serializer):
    user = PersonSerializer(required=False)
    assessmentScores = AssessmentScoreSerializer(many=True, required=False)
    activityDays = serializers.IntegerField(required=False, help_text="Distinct active days, last 30 days")
    moodAvg = serializers.FloatField(
        required=False, allow_null=True, help_text="30-day mood average; only when this side is STANDARD or FULL"
    )
    withheld = serializers.BooleanField(required=False, help_text="Present (true) when this side is withheld")
    reason = serializers.CharField(required=False)


class MatchupSerializer(serializers.Serializer):
    score = serializers.IntegerField()
    alignments = serializers.JSONField()
    generatedAt = serializers.DateTimeField()


class DynamicsResponseSerializer(serializers.Serializer):
    couple = CoupleRefSerializer()
    consent = serializers.DictField(
        child=serializers.BooleanField(), help_text="{partner1: bool, partner2: bool}: which sides are shown"
    )
    partner1 = DynamicsSideSerializer()
    partner2 = DynamicsSideSerializer()
    matchups = MatchupSerializer(many=True, help_text="Latest first, at most 10; empty unless both consented")
    coupleProfile = serializers.JSONField(allow_null=True, help_text="null unless both partners consented")


class AlertSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    clientId = serializers.UUIDField()
    client = PersonSerializer()
    alertType = serializers.ChoiceField(choices=ALERT_TYPES)
    severity = serializers.ChoiceField(choices=["LOW", "MEDIUM", "HIGH", "CRITICAL"])
    message = serializers.CharField()
    metadata = serializers.JSONField()
    readAt = serializers.DateTimeField(allow_null=True)
    createdAt = serializers.DateTimeField()


class AlertListResponseSerializer(serializers.Serializer):
    alerts = AlertSerializer(many=True)
    unreadCount = serializers.IntegerField(help_text="Unread alerts matching the filters (ignoring limit)")
    total = serializers.IntegerField(help_text="Alerts matching the filters (ignoring limit)")


class AlertReadResponseSerializer(serializers.Serializer):
    alert = AlertSerializer()


class TaskSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    description = serializers.CharField()
    priority = serializers.CharField()
    dueDate = serializers.CharField(allow_null=True, help_text='"2026-02-19T00:00:00.000Z" (midnight UTC) or null')
    createdAt = serializers.DateTimeField()


class AssignResponseSerializer(serializers.Serializer):
    message = serializers.CharField()
    task = TaskSerializer()


class OutcomeSummarySerializer(serializers.Serializer):
    totalClients = serializers.IntegerField()
    activeInCourse = serializers.IntegerField()
    courseCompleted = serializers.IntegerField()
    totalCrisisAlerts = serializers.IntegerField()
    totalMilestones = serializers.IntegerField()
    avgCourseWeek = serializers.FloatField(allow_null=True)


class OutcomeClientSerializer(serializers.Serializer):
    clientId = serializers.UUIDField()
    assessmentTypes = serializers.IntegerField(help_text="Distinct assessment types completed")
    courseWeek = serializers.IntegerField(allow_null=True)
    courseCompleted = serializers.BooleanField()
    crisisAlerts = serializers.IntegerField(help_text="0 for clients below STANDARD")
    milestones = serializers.IntegerField()


class OutcomesSerializer(serializers.Serializer):
    summary = OutcomeSummarySerializer()
    clients = OutcomeClientSerializer(many=True)


class OutcomesResponseSerializer(serializers.Serializer):
    outcomes = OutcomesSerializer()


class WebhookRegisterResponseSerializer(serializers.Serializer):
    message = serializers.CharField()
    webhookUrl = serializers.CharField()
    webhookSecret = serializers.CharField(help_text="Returned once: store it for signature verification")
    events = serializers.ListField(child=serializers.CharField())
