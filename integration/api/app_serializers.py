"""LoveRescue app API (`/api/app/...`): input serializers check types and shapes (the services check the
domain rules); output serializers render each response from the models the services and selectors
return, and are what the views' `extend_schema(responses=...)` names, so body and schema are one
declaration (core.serializers.OutputSerializer: a renderer compiled once per class from the declared
fields)."""

from __future__ import annotations

from rest_framework import serializers

from core.rounding import ratio
from core.serializers import (
    DATE_ONLY_INPUT_FORMATS,
    IsoDateTimeField,
    MidnightUtcField,
    OutputSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
)
from integration import catalogue
from integration.models import PermissionLevel, TherapistTask
from integration.services import client_data

# --- Inputs ----------------------------------------------------------------------------------------


class CheckInInput(serializers.Serializer):
    date = serializers.DateField(
        input_formats=DATE_ONLY_INPUT_FORMATS, help_text="YYYY-MM-DD; not after tomorrow (UTC)"
    )
    mood = StrictIntegerField(min_value=1, max_value=10)
    closeness = StrictIntegerField(min_value=1, max_value=10)
    crisis = StrictBooleanField(required=False, default=False, help_text="the app detected a crisis indicator")


class RatioInput(serializers.Serializer):
    date = serializers.DateField(input_formats=DATE_ONLY_INPUT_FORMATS)
    positive = StrictIntegerField(min_value=0, max_value=client_data.RATIO_MAX)
    negative = StrictIntegerField(min_value=0, max_value=client_data.RATIO_MAX)


class ActivityInput(serializers.Serializer):
    date = serializers.DateField(input_formats=DATE_ONLY_INPUT_FORMATS)
    activity = StrictCharField(
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
    text = StrictCharField(min_length=1, max_length=client_data.JOURNAL_MAX_CHARS, trim_whitespace=False)
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


# --- Output fields ---------------------------------------------------------------------------------


class RatioField(serializers.FloatField):
    """positive / negative of a ratio entry (the whole row is the source), core.rounding.ratio's rule."""

    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, allow_null=True, **kwargs)

    def to_representation(self, entry):
        return ratio(entry.positive, entry.negative)


class ConsentField(serializers.ChoiceField):
    """A therapist link's consent state (the whole link is the source): granted, revoked or pending."""

    def __init__(self, **kwargs):
        choices = [client_data.CONSENT_GRANTED, client_data.CONSENT_REVOKED, client_data.CONSENT_PENDING]
        super().__init__(choices=choices, source="*", read_only=True, **kwargs)

    def to_representation(self, link):
        return client_data.consent_state(link)


# --- Outputs: each renders its response and is its schema -------------------------------------------


class CheckInOutput(OutputSerializer):
    date = serializers.DateField()
    mood = serializers.IntegerField()
    closeness = serializers.IntegerField()
    crisis = serializers.BooleanField()
    updatedAt = IsoDateTimeField(source="updated_at")


class RatioOutput(OutputSerializer):
    date = serializers.DateField()
    positive = serializers.IntegerField()
    negative = serializers.IntegerField()
    ratio = RatioField(help_text="positive / negative, 1 decimal (half up); null when negative is 0")


class WeeklyStrategyOutput(OutputSerializer):
    weekNumber = serializers.IntegerField(source="week_number")
    theme = serializers.CharField()
    completedDays = serializers.IntegerField(source="completed_days")
    completedAt = IsoDateTimeField(source="completed_at", allow_null=True)


class CourseOutput(OutputSerializer):
    currentWeek = serializers.IntegerField(source="current_week")
    isActive = serializers.BooleanField(source="is_active")
    completedAt = IsoDateTimeField(source="completed_at", allow_null=True)


class ActivityOutput(OutputSerializer):
    """Renders client_data.ActivityRecorded."""

    id = serializers.IntegerField(source="entry.id")
    date = serializers.DateField(source="entry.date")
    activity = serializers.CharField(source="entry.activity")
    weekNumber = serializers.IntegerField(source="entry.week_number", allow_null=True)
    weeklyStrategy = WeeklyStrategyOutput(source="weekly_strategy", allow_null=True)
    course = CourseOutput(allow_null=True)


class AssessmentOutput(OutputSerializer):
    id = serializers.IntegerField()
    type = serializers.CharField()
    score = serializers.JSONField()
    completedAt = IsoDateTimeField(source="completed_at")


class JournalOutput(OutputSerializer):
    """The text is never echoed back (the app has it; responses and logs stay free of it)."""

    id = serializers.UUIDField()
    therapistHidden = serializers.BooleanField(source="therapist_hidden")
    crisis = serializers.BooleanField()
    createdAt = IsoDateTimeField(source="created_at")


class TherapistOutput(OutputSerializer):
    id = serializers.UUIDField()
    firstName = serializers.CharField(source="first_name")
    lastName = serializers.CharField(source="last_name")


class LinkOutput(OutputSerializer):
    linkId = serializers.UUIDField(source="id")
    therapist = TherapistOutput()
    permissionLevel = serializers.ChoiceField(source="permission_level", choices=PermissionLevel.values)
    consent = ConsentField()
    consentGrantedAt = IsoDateTimeField(source="consent_granted_at", allow_null=True)
    consentRevokedAt = IsoDateTimeField(source="consent_revoked_at", allow_null=True)


class LinkListOutput(OutputSerializer):
    links = LinkOutput(many=True)


class LinkUpdateOutput(OutputSerializer):
    link = LinkOutput()


class TaskOutput(OutputSerializer):
    id = serializers.UUIDField()
    description = serializers.CharField()
    module = serializers.CharField()
    activities = serializers.ListField(child=serializers.CharField())
    notes = serializers.CharField(allow_null=True)
    dueDate = MidnightUtcField(
        source="due_date", allow_null=True, help_text='"2026-02-19T00:00:00.000Z" (midnight UTC) or null'
    )
    priority = serializers.ChoiceField(choices=TherapistTask.Priority.values)
    status = serializers.ChoiceField(choices=TherapistTask.Status.values)
    createdAt = IsoDateTimeField(source="created_at")
    completedAt = IsoDateTimeField(source="completed_at", allow_null=True)


class TaskListOutput(OutputSerializer):
    tasks = TaskOutput(many=True)


class TaskCompleteOutput(OutputSerializer):
    task = TaskOutput()
