"""Mark analytics bodies (spec: mark-assistant-api.md, "Analytics"): the spec's fields, rendered from the
dicts patients/analytics.py builds. Percentages have one decimal and add up to 100 within each breakdown;
averages have one decimal (null when there is nothing to average). Intervals are named by the ISO date
they start on."""

from __future__ import annotations

from rest_framework import serializers

from core.serializers import OutputSerializer
from patients.analytics_queries import APPOINTMENT_STATUSES

PERCENTAGE_HELP = "one decimal; the percentages of one breakdown add up to exactly 100 (0 when it is empty)"
INTERVAL_HELP = "the ISO date the interval starts on: the day, the week's Monday, or the month's 1st"


class _Share(OutputSerializer):
    count = serializers.IntegerField()
    percentage = serializers.FloatField(help_text=PERCENTAGE_HELP)


class LanguageShareOutput(_Share):
    language = serializers.CharField()


class ConversationIntervalOutput(OutputSerializer):
    interval = serializers.CharField(help_text=INTERVAL_HELP)
    count = serializers.IntegerField(help_text="conversations started in the interval")
    average_length = serializers.FloatField(allow_null=True, help_text="messages per conversation; null when none")


class HourOutput(OutputSerializer):
    hour = serializers.IntegerField(min_value=0, max_value=23, help_text="local hour in the clinic's time zone")
    count = serializers.IntegerField(help_text="conversations started in that hour")


class ConversationStatsOutput(OutputSerializer):
    total_conversations = serializers.IntegerField()
    average_length = serializers.FloatField(allow_null=True, help_text="messages per conversation; null when none")
    by_interval = ConversationIntervalOutput(many=True, help_text="every interval of the range, empty ones too")
    by_language = LanguageShareOutput(many=True, help_text="most frequent first")
    by_hour = HourOutput(many=True, help_text="all 24 hours, 0 to 23")


class StatusShareOutput(_Share):
    status = serializers.ChoiceField(choices=[str(status) for status in APPOINTMENT_STATUSES])


class TypeShareOutput(_Share):
    type = serializers.CharField(allow_blank=True, help_text='the appointment type; "" for appointments without one')


class AppointmentIntervalOutput(OutputSerializer):
    interval = serializers.CharField(help_text=INTERVAL_HELP)
    scheduled = serializers.IntegerField()
    rescheduled = serializers.IntegerField()
    completed = serializers.IntegerField()
    canceled = serializers.IntegerField()


class ReasonShareOutput(_Share):
    reason = serializers.CharField(help_text='grouped case-insensitively; beyond the 9 most frequent: "Other"')


class AppointmentStatsOutput(OutputSerializer):
    total_appointments = serializers.IntegerField()
    by_status = StatusShareOutput(many=True, help_text="every status, in a fixed order")
    by_type = TypeShareOutput(many=True, help_text="most frequent first")
    by_interval = AppointmentIntervalOutput(many=True, help_text="every interval of the range, empty ones too")
    cancellation_reasons = ReasonShareOutput(many=True, help_text="of the canceled appointments, most frequent first")


class NewPatientsOutput(OutputSerializer):
    interval = serializers.CharField(help_text=INTERVAL_HELP)
    count = serializers.IntegerField(help_text="patients registered in the interval")


class EngagementOutput(OutputSerializer):
    highly_engaged = serializers.IntegerField(help_text="patients who wrote 10 or more messages in the range")
    moderately_engaged = serializers.IntegerField(help_text="3 to 9 messages")
    low_engagement = serializers.IntegerField(help_text="1 or 2 messages")
    inactive = serializers.IntegerField(help_text="no message in the range")


class PatientStatsOutput(OutputSerializer):
    total_patients = serializers.IntegerField(help_text="registered before the range's end, archived ones left out")
    active_patients = serializers.IntegerField(help_text="those who wrote at least one message in the range")
    by_language = LanguageShareOutput(many=True, help_text="most frequent first")
    new_patients_by_interval = NewPatientsOutput(many=True, help_text="every interval of the range, empty ones too")
    engagement = EngagementOutput()
