"""LoveRescue app API (`/api/app/...`): input serializers check types and shapes (the services check the
domain rules); output serializers describe the responses for the OpenAPI schema; `*_body` functions
build the response bodies."""

from __future__ import annotations

from datetime import UTC, datetime

from rest_framework import serializers

from core.time import iso_utc
from integration import catalogue
from integration.models import (
    ActivityEntry,
    Assessment,
    CheckIn,
    CourseProgress,
    JournalEntry,
    PermissionLevel,
    RatioEntry,
    TherapistClientLink,
    TherapistTask,
    WeeklyStrategy,
)
from integration.services import client_data

DATE_FORMATS = ["%Y-%m-%d"]


class StrictBooleanField(serializers.BooleanField):
    """JSON true/false only (no "yes", 1, "on")."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer (no "7", 7.5 or true)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


# --- Inputs ----------------------------------------------------------------------------------------


class CheckInInput(serializers.Serializer):
    date = serializers.DateField(input_formats=DATE_FORMATS, help_text="YYYY-MM-DD; not after tomorrow (UTC)")
    mood = StrictIntegerField(min_value=1, max_value=10)
    closeness = StrictIntegerField(min_value=1, max_value=10)
    crisis = StrictBooleanField(required=False, default=False, help_text="the app detected a crisis indicator")


class RatioInput(serializers.Serializer):
    date = serializers.DateField(input_formats=DATE_FORMATS)
    positive = StrictIntegerField(min_value=0, max_value=client_data.RATIO_MAX)
    negative = StrictIntegerField(min_value=0, max_value=client_data.RATIO_MAX)


class ActivityInput(serializers.Serializer):
    date = serializers.DateField(input_formats=DATE_FORMATS)
    activity = serializers.CharField(
        min_length=1, max_length=client_data.ACTIVITY_MAX_CHARS, help_text='a slug, e.g. "love_map_quiz"'
    )
    weekNumber = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=catalogue.COURSE_LENGTH_WEEKS,
        help_text="the client's current course week, when the activity is a day of the weekly strategy",
    )


class AssessmentInput(serializers.Serializer):
    type = serializers.ChoiceField(choices=list(catalogue.ASSESSMENT_TYPES))
    score = serializers.JSONField(help_text='shape depends on type, e.g. {"style": "anxious", "anxiety": 4.2, ...}')
    responses = serializers.JSONField(
        required=False, allow_null=True, help_text="the individual answers (object); shown only at FULL permission"
    )

    def validate_score(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be an object")
        return value

    def validate_responses(self, value):
        if value is not None and not isinstance(value, dict):
            raise serializers.ValidationError("must be an object")
        return value


class JournalInput(serializers.Serializer):
    text = serializers.CharField(min_length=1, max_length=client_data.JOURNAL_MAX_CHARS, trim_whitespace=False)
    therapistHidden = StrictBooleanField(help_text="true: never shown to any therapist, at any permission level")
    crisis = StrictBooleanField(required=False, default=False)


class LinkUpdateInput(serializers.Serializer):
    permissionLevel = serializers.ChoiceField(choices=PermissionLevel.values, required=False)
    consent = serializers.ChoiceField(
        choices=[client_data.CONSENT_GRANTED, client_data.CONSENT_REVOKED], required=False
    )

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("permissionLevel or consent is required")
        return attrs


# --- Bodies ----------------------------------------------------------------------------------------


def checkin_body(checkin: CheckIn) -> dict:
    return {
        "date": checkin.date.isoformat(),
        "mood": checkin.mood,
        "closeness": checkin.closeness,
        "crisis": checkin.crisis,
        "updatedAt": iso_utc(checkin.updated_at),
    }


def ratio_body(entry: RatioEntry) -> dict:
    ratio = round(entry.positive / entry.negative, 1) if entry.negative else None
    return {"date": entry.date.isoformat(), "positive": entry.positive, "negative": entry.negative, "ratio": ratio}


def strategy_body(strategy: WeeklyStrategy | None) -> dict | None:
    if strategy is None:
        return None
    return {
        "weekNumber": strategy.week_number,
        "theme": strategy.theme,
        "completedDays": strategy.completed_days,
        "completedAt": iso_utc(strategy.completed_at),
    }


def course_body(course: CourseProgress | None) -> dict | None:
    if course is None:
        return None
    return {
        "currentWeek": course.current_week,
        "isActive": course.is_active,
        "completedAt": iso_utc(course.completed_at),
    }


def activity_body(entry: ActivityEntry) -> dict:
    strategy = None
    if entry.week_number is not None:
        strategy = WeeklyStrategy.objects.filter(client_id=entry.client_id, week_number=entry.week_number).first()
    return {
        "id": entry.pk,
        "date": entry.date.isoformat(),
        "activity": entry.activity,
        "weekNumber": entry.week_number,
        "weeklyStrategy": strategy_body(strategy),
        "course": course_body(CourseProgress.objects.filter(client_id=entry.client_id).first()),
    }


def assessment_body(assessment: Assessment) -> dict:
    return {
        "id": assessment.pk,
        "type": assessment.type,
        "score": assessment.score,
        "completedAt": iso_utc(assessment.completed_at),
    }


def journal_body(entry: JournalEntry) -> dict:
    # The text is never echoed back (the app has it; responses and logs stay free of it).
    return {
        "id": str(entry.pk),
        "therapistHidden": entry.therapist_hidden,
        "crisis": entry.crisis,
        "createdAt": iso_utc(entry.created_at),
    }


def link_body(link: TherapistClientLink) -> dict:
    therapist = link.therapist
    return {
        "linkId": str(link.pk),
        "therapist": {"id": str(therapist.pk), "firstName": therapist.first_name, "lastName": therapist.last_name},
        "permissionLevel": link.permission_level,
        "consent": client_data.consent_state(link),
        "consentGrantedAt": iso_utc(link.consent_granted_at),
        "consentRevokedAt": iso_utc(link.consent_revoked_at),
    }


def _due(task: TherapistTask) -> str | None:
    # As the partner API's assign response shows it: midnight UTC of the due day.
    if task.due_date is None:
        return None
    return iso_utc(datetime(task.due_date.year, task.due_date.month, task.due_date.day, tzinfo=UTC))


def task_body(task: TherapistTask) -> dict:
    return {
        "id": str(task.pk),
        "description": task.description,
        "module": task.module,
        "activities": list(task.activities or []),
        "notes": task.notes,
        "dueDate": _due(task),
        "priority": task.priority,
        "status": task.status,
        "createdAt": iso_utc(task.created_at),
        "completedAt": iso_utc(task.completed_at),
    }


# --- Outputs (schema) -------------------------------------------------------------------------------


class CheckInOutput(serializers.Serializer):
    date = serializers.DateField()
    mood = serializers.IntegerField()
    closeness = serializers.IntegerField()
    crisis = serializers.BooleanField()
    updatedAt = serializers.DateTimeField()


class RatioOutput(serializers.Serializer):
    date = serializers.DateField()
    positive = serializers.IntegerField()
    negative = serializers.IntegerField()
    ratio = serializers.FloatField(allow_null=True, help_text="positive / negative, 1 decimal; null when negative is 0")


class WeeklyStrategyOutput(serializers.Serializer):
    weekNumber = serializers.IntegerField()
    theme = serializers.CharField()
    completedDays = serializers.IntegerField()
    completedAt = serializers.DateTimeField(allow_null=True)


class CourseOutput(serializers.Serializer):
    currentWeek = serializers.IntegerField()
    isActive = serializers.BooleanField()
    completedAt = serializers.DateTimeField(allow_null=True)


class ActivityOutput(serializers.Serializer):
    id = serializers.IntegerField()
    date = serializers.DateField()
    activity = serializers.CharField()
    weekNumber = serializers.IntegerField(allow_null=True)
    weeklyStrategy = WeeklyStrategyOutput(allow_null=True)
    course = CourseOutput(allow_null=True)


class AssessmentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.CharField()
    score = serializers.JSONField()
    completedAt = serializers.DateTimeField()


class JournalOutput(serializers.Serializer):
    id = serializers.UUIDField()
    therapistHidden = serializers.BooleanField()
    crisis = serializers.BooleanField()
    createdAt = serializers.DateTimeField()


class TherapistOutput(serializers.Serializer):
    id = serializers.UUIDField()
    firstName = serializers.CharField()
    lastName = serializers.CharField()


class LinkOutput(serializers.Serializer):
    linkId = serializers.UUIDField()
    therapist = TherapistOutput()
    permissionLevel = serializers.ChoiceField(choices=PermissionLevel.values)
    consent = serializers.ChoiceField(
        choices=[client_data.CONSENT_GRANTED, client_data.CONSENT_REVOKED, client_data.CONSENT_PENDING]
    )
    consentGrantedAt = serializers.DateTimeField(allow_null=True)
    consentRevokedAt = serializers.DateTimeField(allow_null=True)


class LinkListOutput(serializers.Serializer):
    links = LinkOutput(many=True)


class LinkUpdateOutput(serializers.Serializer):
    link = LinkOutput()


class TaskOutput(serializers.Serializer):
    id = serializers.UUIDField()
    description = serializers.CharField()
    module = serializers.CharField()
    activities = serializers.ListField(child=serializers.CharField())
    notes = serializers.CharField(allow_null=True)
    dueDate = serializers.CharField(allow_null=True, help_text='"2026-02-19T00:00:00.000Z" (midnight UTC) or null')
    priority = serializers.ChoiceField(choices=TherapistTask.Priority.values)
    status = serializers.ChoiceField(choices=TherapistTask.Status.values)
    createdAt = serializers.DateTimeField()
    completedAt = serializers.DateTimeField(allow_null=True)


class TaskListOutput(serializers.Serializer):
    tasks = TaskOutput(many=True)


class TaskCompleteOutput(serializers.Serializer):
    task = TaskOutput()
