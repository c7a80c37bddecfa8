"""Partner API outputs: one serializer per response, which both renders the body and is what the view's
`extend_schema(responses=...)` names, so the body and the OpenAPI schema cannot disagree.

They render the selectors' rows, model instances and dataclasses (snake_case) into the spec's camelCase
keys. A value ABSENT (integration.selectors.common) is left out of the body: sections above the client's
level, a withheld couple member's names, a withheld side of a couple.

Rendering runs from a renderer compiled from the declared fields (PartnerOutput); the two caseload lists
(GET /clients, GET /outcomes) render their rows with a hand-written `render_many`. Tests check both give
exactly what DRF's field-by-field rendering of the declared fields gives (`render_fields`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from operator import attrgetter, itemgetter

from rest_framework import serializers
from rest_framework.fields import SkipField, get_attribute

from core.time import iso_utc
from integration.models import AlertType
from integration.selectors.common import ABSENT, iso_text

ALERT_TYPES = tuple(AlertType.values)


class IsoDateTimeField(serializers.DateTimeField):
    """UTC ISO 8601 with milliseconds and Z (core.time.iso_utc); text already rendered by the database
    (common.iso_utc_sql) passes through."""

    def to_representation(self, value):
        return iso_text(value)


class MidnightUtcField(serializers.CharField):
    """A date shown as that day's midnight UTC ("2026-02-19T00:00:00.000Z"), as the spec shows dueDate."""

    def to_representation(self, value):
        return iso_utc(datetime(value.year, value.month, value.day, tzinfo=UTC))


def _date_text(value) -> str:
    return value if value.__class__ is str else value.isoformat()


def _same(value):
    return value


# What DRF's to_representation of these exact field classes does, for the values selectors give
# (UUIDs, str, int, float, bool, date, JSON); any other field renders through DRF itself.
_CONVERTERS = {
    serializers.UUIDField: str,
    serializers.CharField: str,
    serializers.IntegerField: int,
    serializers.FloatField: float,
    serializers.BooleanField: bool,
    serializers.ChoiceField: _same,
    serializers.JSONField: _same,
    serializers.DateField: _date_text,
    IsoDateTimeField: iso_text,
}


# The declared fields are the body and the schema. The body is what DRF's field-by-field rendering
# gives (`render_fields`), ABSENT values left out, but computed by a renderer compiled once per class
# from those same fields (a getter and a converter per field, nested outputs through their own
# renderers): no per-response field construction and a few calls per value, which keeps the long
# lists (trends, caseloads) as fast as hand-built dicts. tests/integration/test_selectors_perf.py
# checks every endpoint's body is the same both ways.
class PartnerOutput(serializers.Serializer):
    def to_representation(self, instance):
        return type(self).renderer()(instance)

    @classmethod
    def render_many(cls, items) -> list:
        render = cls.renderer()
        return [render(item) for item in items]

    @classmethod
    def renderer(cls):
        render = cls.__dict__.get("_compiled_renderer")
        if render is None:
            render = _compile(cls)
            cls._compiled_renderer = render
        return render

    def render_fields(self, instance) -> dict:
        """DRF's own field-by-field rendering: the reference the compiled renderer must equal."""
        body = {}
        for field in self._readable_fields:
            try:
                value = field.get_attribute(instance)
            except SkipField:
                continue
            if value is ABSENT:
                continue
            body[field.field_name] = None if value is None else field.to_representation(value)
        return body


def _converter(field):
    """value -> rendered value, as `field.to_representation` renders the values selectors give."""
    if isinstance(field, serializers.ListSerializer) and isinstance(field.child, PartnerOutput):
        return type(field.child).render_many
    if isinstance(field, PartnerOutput):
        return type(field).renderer()
    if type(field) is serializers.ListField and type(field.child) in _CONVERTERS:
        item = _CONVERTERS[type(field.child)]
        return lambda values: [None if value is None else item(value) for value in values]
    return _CONVERTERS.get(type(field), field.to_representation)


def _compile(cls):
    fields = []
    for field in cls().fields.values():
        if field.write_only:
            continue
        attrs = tuple(field.source_attrs)
        if not attrs:  # source="*": the instance itself
            on_object = on_dict = _same
        elif len(attrs) == 1:
            on_object, on_dict = attrgetter(attrs[0]), itemgetter(attrs[0])
        else:  # a path (into the report's content): DRF's lookup, objects and dicts alike
            on_object = on_dict = partial(get_attribute, attrs=attrs)
        fields.append((field.field_name, on_object, on_dict, _converter(field)))
    by_object = [(name, get, convert) for name, get, _, convert in fields]
    by_key = [(name, get, convert) for name, _, get, convert in fields]

    def render(instance) -> dict:
        body = {}
        for name, get, convert in by_key if isinstance(instance, dict) else by_object:
            value = get(instance)
            if value is ABSENT:
                continue
            body[name] = None if value is None else convert(value)
        return body

    return render


# --- Shared pieces --------------------------------------------------------------------------------


class PersonSerializer(PartnerOutput):
    id = serializers.UUIDField()
    firstName = serializers.CharField(source="first_name")
    lastName = serializers.CharField(source="last_name")


class AssessmentScoreSerializer(PartnerOutput):
    type = serializers.CharField()
    score = serializers.JSONField()
    completedAt = IsoDateTimeField(source="completed_at")


# --- GET /clients ---------------------------------------------------------------------------------


class CoupleMemberSerializer(PartnerOutput):
    id = serializers.UUIDField()
    firstName = serializers.CharField(source="first_name", required=False, help_text="Absent when withheld")
    lastName = serializers.CharField(source="last_name", required=False, help_text="Absent when withheld")
    withheld = serializers.BooleanField(
        required=False, help_text="true when this member has not consented to this therapist (no names)"
    )


class ClientCoupleSerializer(PartnerOutput):
    id = serializers.UUIDField()
    status = serializers.CharField()
    partner1 = CoupleMemberSerializer()
    partner2 = CoupleMemberSerializer()


def _member(member) -> dict:
    if member.withheld is True:
        return {"id": str(member.id), "withheld": True}
    return {"id": str(member.id), "firstName": member.first_name, "lastName": member.last_name}


class ClientItemSerializer(PartnerOutput):
    # Renders a selectors.clients.ClientRow.

    id = serializers.UUIDField(source="client_id")
    linkId = serializers.UUIDField(source="link_id")
    firstName = serializers.CharField(source="first_name")
    lastName = serializers.CharField(source="last_name")
    email = serializers.CharField(allow_null=True)
    permissionLevel = serializers.ChoiceField(source="permission_level", choices=["BASIC", "STANDARD", "FULL"])
    consentGrantedAt = IsoDateTimeField(source="consent_granted_at")
    couple = ClientCoupleSerializer(allow_null=True)
    latestActivity = serializers.DateField(source="latest_activity", allow_null=True)
    latestMood = serializers.IntegerField(
        source="latest_mood", allow_null=True, help_text="STANDARD or FULL only; else null"
    )
    courseWeek = serializers.IntegerField(source="course_week", allow_null=True)
    courseActive = serializers.BooleanField(source="course_active")
    unreadAlerts = serializers.IntegerField(source="unread_alerts")

    @classmethod
    def render_many(cls, rows) -> list:
        # A whole caseload, built by hand (3x the compiled renderer's speed); the same body (tested).
        couples: dict = {}  # both members of a couple share its rendering
        items = []
        for row in rows:
            couple = row.couple
            if couple is not None:
                rendered = couples.get(couple.id)
                if rendered is None:
                    rendered = couples[couple.id] = {
                        "id": str(couple.id),
                        "status": couple.status,
                        "partner1": _member(couple.partner1),
                        "partner2": _member(couple.partner2),
                    }
                couple = rendered
            latest_activity = row.latest_activity
            items.append(
                {
                    "id": str(row.client_id),
                    "linkId": str(row.link_id),
                    "firstName": row.first_name,
                    "lastName": row.last_name,
                    "email": row.email,
                    "permissionLevel": row.permission_level,
                    "consentGrantedAt": iso_text(row.consent_granted_at),
                    "couple": couple,
                    "latestActivity": latest_activity.isoformat() if latest_activity is not None else None,
                    "latestMood": row.latest_mood,
                    "courseWeek": row.course_week,
                    "courseActive": row.course_active,
                    "unreadAlerts": row.unread_alerts,
                }
            )
        return items


class ClientListResponseSerializer(PartnerOutput):
    # Renders {"clients": [ClientRow], "total": int}.

    clients = ClientItemSerializer(many=True)
    total = serializers.IntegerField()


# --- GET /clients/:id/progress --------------------------------------------------------------------


class ActivityCompletionSerializer(PartnerOutput):
    totalDays = serializers.IntegerField(source="total_days", help_text="Window length: 90 days ending today (UTC)")
    daysActive = serializers.IntegerField(source="days_active")
    completionRate = serializers.IntegerField(source="completion_rate", help_text="daysActive / totalDays, percent")
    streak = serializers.IntegerField(help_text="Consecutive active days ending today or yesterday")
    tasksCompleted = serializers.IntegerField(source="tasks_completed")
    tasksPending = serializers.IntegerField(source="tasks_pending")


class WeeklyStrategySerializer(PartnerOutput):
    weekNumber = serializers.IntegerField(source="week_number")
    theme = serializers.CharField()
    completedDays = serializers.IntegerField(source="completed_days")
    completedAt = IsoDateTimeField(source="completed_at", allow_null=True)


class CourseProgressSerializer(PartnerOutput):
    currentWeek = serializers.IntegerField(source="current_week", allow_null=True)
    isActive = serializers.BooleanField(source="is_active")
    completedWeeks = serializers.ListField(source="completed_weeks", child=serializers.IntegerField())
    weeklyStrategies = WeeklyStrategySerializer(source="weekly_strategies", many=True)


class MoodPointSerializer(PartnerOutput):
    date = serializers.DateField()
    mood = serializers.IntegerField()
    closeness = serializers.IntegerField()


class RatioPointSerializer(PartnerOutput):
    date = serializers.DateField()
    positive = serializers.IntegerField()
    negative = serializers.IntegerField()
    ratio = serializers.FloatField(
        allow_null=True, help_text="positive / negative, 1 decimal (half up); null when negative is 0"
    )


class IndividualResponseSerializer(PartnerOutput):
    type = serializers.CharField()
    responses = serializers.JSONField()
    completedAt = IsoDateTimeField(source="completed_at")


class JournalEntrySerializer(PartnerOutput):
    id = serializers.UUIDField()
    text = serializers.CharField()
    createdAt = IsoDateTimeField(source="created_at")


class ProgressResponseSerializer(PartnerOutput):
    # Renders a selectors.progress.ClientProgress; sections above the level are absent.

    clientId = serializers.UUIDField(source="client_id")
    assessmentScores = AssessmentScoreSerializer(source="assessment_scores", many=True)
    activityCompletion = ActivityCompletionSerializer(source="activity_completion")
    courseProgress = CourseProgressSerializer(source="course_progress")
    moodTrends = MoodPointSerializer(
        source="mood_trends", many=True, required=False, help_text="STANDARD or FULL; absent below"
    )
    ratioTrends = RatioPointSerializer(
        source="ratio_trends", many=True, required=False, help_text="STANDARD or FULL; absent below"
    )
    individualResponses = IndividualResponseSerializer(
        source="individual_responses", many=True, required=False, help_text="FULL only"
    )
    journalEntries = JournalEntrySerializer(
        source="journal_entries",
        many=True,
        required=False,
        help_text="FULL only; therapist-hidden entries are never included",
    )


# --- GET /clients/:id/session-prep ----------------------------------------------------------------


class SessionPrepReportSerializer(PartnerOutput):
    # Renders a SessionPrepReport: ids and dates, then its generated content.

    id = serializers.UUIDField()
    therapistId = serializers.UUIDField(source="therapist_id")
    clientId = serializers.UUIDField(source="client_id")
    reportDate = IsoDateTimeField(source="report_date")
    lastSessionDate = IsoDateTimeField(source="last_session_date")
    activitiesCompleted = serializers.JSONField(source="content.activitiesCompleted")
    assessmentChanges = serializers.JSONField(source="content.assessmentChanges")
    moodTrends = serializers.JSONField(
        source="content.moodTrends", help_text='{"average": float|null, "trend": "improving|declining|stable"}'
    )
    crisisFlags = serializers.JSONField(source="content.crisisFlags")
    generatedSummary = serializers.CharField(source="content.generatedSummary")
    expertInsights = serializers.JSONField(source="content.expertInsights")


class SessionPrepResponseSerializer(PartnerOutput):
    report = SessionPrepReportSerializer(source="*")


# --- GET /couples/:id/dynamics --------------------------------------------------------------------


class CoupleRefSerializer(PartnerOutput):
    id = serializers.UUIDField()
    status = serializers.CharField()


class DynamicsConsentSerializer(PartnerOutput):
    partner1 = serializers.BooleanField(help_text="partner1's side is shown")
    partner2 = serializers.BooleanField(help_text="partner2's side is shown")


class DynamicsSideSerializer(PartnerOutput):
    user = PersonSerializer(required=False)
    assessmentScores = AssessmentScoreSerializer(source="assessment_scores", many=True, required=False)
    activityDays = serializers.IntegerField(
        source="activity_days", required=False, help_text="Distinct active days, last 30 days"
    )
    moodAvg = serializers.FloatField(
        source="mood_avg",
        required=False,
        allow_null=True,
        help_text="30-day mood average (1 decimal, half up); only when this side is STANDARD or FULL",
    )
    withheld = serializers.BooleanField(required=False, help_text="Present (true) when this side is withheld")
    reason = serializers.CharField(required=False)


class MatchupSerializer(PartnerOutput):
    score = serializers.IntegerField()
    alignments = serializers.JSONField()
    generatedAt = IsoDateTimeField(source="generated_at")


class DynamicsResponseSerializer(PartnerOutput):
    # Renders a selectors.couples.CoupleDynamics.

    couple = CoupleRefSerializer()
    consent = DynamicsConsentSerializer(help_text="Which sides are shown")
    partner1 = DynamicsSideSerializer()
    partner2 = DynamicsSideSerializer()
    matchups = MatchupSerializer(many=True, help_text="Latest first, at most 10; empty unless both consented")
    coupleProfile = serializers.JSONField(
        source="couple_profile", allow_null=True, help_text="null unless both partners consented"
    )


# --- Alerts ---------------------------------------------------------------------------------------


class AlertSerializer(PartnerOutput):
    # Renders an Alert from selectors.alerts (`read_at` annotated for this therapist, client loaded).

    id = serializers.UUIDField()
    clientId = serializers.UUIDField(source="client_id")
    client = PersonSerializer()
    alertType = serializers.ChoiceField(source="alert_type", choices=ALERT_TYPES)
    severity = serializers.ChoiceField(choices=["LOW", "MEDIUM", "HIGH", "CRITICAL"])
    message = serializers.CharField()
    metadata = serializers.JSONField()
    readAt = IsoDateTimeField(source="read_at", allow_null=True)
    createdAt = IsoDateTimeField(source="created_at")


class AlertListResponseSerializer(PartnerOutput):
    # Renders a selectors.alerts.AlertPage.

    alerts = AlertSerializer(many=True)
    unreadCount = serializers.IntegerField(
        source="unread_count", help_text="Unread alerts matching the filters (ignoring limit)"
    )
    total = serializers.IntegerField(help_text="Alerts matching the filters (ignoring limit)")


class AlertReadResponseSerializer(PartnerOutput):
    alert = AlertSerializer()


# --- POST /clients/:id/assign ---------------------------------------------------------------------


class TaskSerializer(PartnerOutput):
    id = serializers.UUIDField()
    description = serializers.CharField()
    priority = serializers.CharField()
    dueDate = MidnightUtcField(
        source="due_date", allow_null=True, help_text='"2026-02-19T00:00:00.000Z" (midnight UTC) or null'
    )
    createdAt = IsoDateTimeField(source="created_at")


class AssignResponseSerializer(PartnerOutput):
    # Renders {"message": str, "task": TherapistTask}.

    message = serializers.CharField()
    task = TaskSerializer()


# --- GET /outcomes --------------------------------------------------------------------------------


class OutcomeSummarySerializer(PartnerOutput):
    totalClients = serializers.IntegerField(source="total_clients")
    activeInCourse = serializers.IntegerField(source="active_in_course")
    courseCompleted = serializers.IntegerField(source="course_completed")
    totalCrisisAlerts = serializers.IntegerField(source="total_crisis_alerts")
    totalMilestones = serializers.IntegerField(source="total_milestones")
    avgCourseWeek = serializers.FloatField(source="avg_course_week", allow_null=True, help_text="1 decimal, half up")


class OutcomeClientSerializer(PartnerOutput):
    # Renders a selectors.outcomes.OutcomeRow.

    clientId = serializers.UUIDField(source="client_id")
    assessmentTypes = serializers.IntegerField(
        source="assessment_types", help_text="Distinct assessment types completed"
    )
    courseWeek = serializers.IntegerField(source="course_week", allow_null=True)
    courseCompleted = serializers.BooleanField(source="course_completed")
    crisisAlerts = serializers.IntegerField(source="crisis_alerts", help_text="0 for clients below STANDARD")
    milestones = serializers.IntegerField()

    @classmethod
    def render_many(cls, rows) -> list:
        # A whole caseload, built by hand; the same body as the declared fields give (tested).
        return [
            {
                "clientId": str(row.client_id),
                "assessmentTypes": row.assessment_types,
                "courseWeek": row.course_week,
                "courseCompleted": bool(row.course_completed),
                "crisisAlerts": row.crisis_alerts,
                "milestones": row.milestones,
            }
            for row in rows
        ]


class OutcomesSerializer(PartnerOutput):
    summary = OutcomeSummarySerializer()
    clients = OutcomeClientSerializer(many=True)


class OutcomesResponseSerializer(PartnerOutput):
    # Renders a selectors.outcomes.Outcomes.

    outcomes = OutcomesSerializer(source="*")


# --- POST /webhook/register -----------------------------------------------------------------------


class WebhookRegisterResponseSerializer(PartnerOutput):
    message = serializers.CharField()
    webhookUrl = serializers.CharField()
    webhookSecret = serializers.CharField(help_text="Returned once: store it for signature verification")
    events = serializers.ListField(child=serializers.CharField())
