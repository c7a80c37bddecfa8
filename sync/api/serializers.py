"""Routiq read API (spec: routiq-backend-api.md, "Authentication endpoints", "Patient Management", "Dashboard &
Analytics"): the output serializers render the bodies and are their OpenAPI schema. Derived fields come from
sync.selectors' SQL annotations; docs/routiq.md, "Definitions", says what each one means."""

from __future__ import annotations

from rest_framework import serializers

from core.rounding import round_half_up
from core.serializers import IsoDateTimeField, OutputSerializer
from patients.models import Appointment
from sync import selectors
from sync.models import SyncRun

# --- Authentication -----------------------------------------------------------------------------------------


class RoutiqVerifyOutput(OutputSerializer):
    authenticated = serializers.BooleanField()
    organization_id = serializers.CharField()
    message = serializers.CharField()


class RoutiqAccessOutput(OutputSerializer):
    organization_id = serializers.CharField()
    access_granted = serializers.BooleanField()
    message = serializers.CharField()


# --- Patients -----------------------------------------------------------------------------------------------


class HoursField(serializers.FloatField):
    """A duration (the SQL difference of two instants) in hours, one decimal."""

    def __init__(self, *, per: float = 1.0, **kwargs):
        self.per = per
        super().__init__(**kwargs)

    def to_representation(self, value):
        if value is None:
            return None
        return round_half_up(value.total_seconds() / 3600 / self.per, 1)


class RoutiqAppointmentBriefOutput(OutputSerializer):
    id = serializers.CharField(source="public_id", help_text="apt_...")
    cliniko_appointment_id = serializers.CharField(source="external_id", allow_null=True)
    start_time = IsoDateTimeField()
    end_time = IsoDateTimeField()
    appointment_type = serializers.CharField()
    status = serializers.ChoiceField(choices=Appointment.Status.values)
    practitioner = serializers.CharField()


class RoutiqPatientOutput(OutputSerializer):
    id = serializers.UUIDField(source="uuid")
    name = serializers.CharField()
    phone = serializers.CharField(allow_null=True, help_text="E.164")
    email = serializers.CharField(allow_null=True)
    cliniko_patient_id = serializers.CharField(source="external_id", allow_null=True)
    is_active = serializers.BooleanField()
    activity_status = serializers.ChoiceField(choices=selectors.ACTIVITY_STATUSES)
    recent_appointment_count = serializers.IntegerField()
    upcoming_appointment_count = serializers.IntegerField()
    total_appointment_count = serializers.IntegerField()
    first_appointment_date = IsoDateTimeField(allow_null=True)
    last_appointment_date = IsoDateTimeField(allow_null=True)
    next_appointment_time = IsoDateTimeField(allow_null=True)
    next_appointment_type = serializers.CharField(allow_null=True)
    primary_appointment_type = serializers.CharField(allow_null=True)
    treatment_notes = serializers.CharField(allow_null=True, help_text="The latest appointment's notes")
    recent_appointments = RoutiqAppointmentBriefOutput(many=True, help_text="The latest recent appointments (up to 5)")
    upcoming_appointments = RoutiqAppointmentBriefOutput(
        many=True, help_text="The next upcoming appointments (up to 5)"
    )
    last_synced_at = IsoDateTimeField(allow_null=True)
    created_at = IsoDateTimeField()
    updated_at = IsoDateTimeField()


class RoutiqPatientWithAppointmentsOutput(RoutiqPatientOutput):
    priority = serializers.ChoiceField(choices=selectors.PRIORITIES, help_text="high <24 h, medium <7 days, low")
    hours_until_next_appointment = HoursField(source="time_until_next_appointment")
    days_until_next_appointment = HoursField(source="time_until_next_appointment", per=24)


class RoutiqPatientListOutput(OutputSerializer):
    organization_id = serializers.CharField()
    patients = RoutiqPatientOutput(many=True)
    total_count = serializers.IntegerField(help_text="All matching patients, not only this page")
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    timestamp = IsoDateTimeField()


class RoutiqPatientWithAppointmentsListOutput(RoutiqPatientListOutput):
    patients = RoutiqPatientWithAppointmentsOutput(many=True)


class RoutiqPatientsByTypeListOutput(RoutiqPatientListOutput):
    appointment_type = serializers.CharField()


class RoutiqActiveSummaryOutput(OutputSerializer):
    organization_id = serializers.CharField()
    total_active_patients = serializers.IntegerField()
    patients_with_recent_appointments = serializers.IntegerField()
    patients_with_upcoming_appointments = serializers.IntegerField()
    avg_recent_appointments = serializers.FloatField()
    avg_total_appointments = serializers.FloatField()
    last_sync_date = IsoDateTimeField(allow_null=True)
    timestamp = IsoDateTimeField()


class RoutiqAppointmentTypeRowOutput(OutputSerializer):
    next_appointment_type = serializers.CharField(allow_null=True)
    primary_appointment_type = serializers.CharField(allow_null=True)
    patient_count = serializers.IntegerField()
    patients_with_upcoming = serializers.IntegerField()
    earliest_upcoming = IsoDateTimeField(allow_null=True)
    latest_upcoming = IsoDateTimeField(allow_null=True)


class RoutiqAppointmentTypeSummaryOutput(OutputSerializer):
    organization_id = serializers.CharField()
    appointment_types = RoutiqAppointmentTypeRowOutput(many=True)
    total_types = serializers.IntegerField()
    timestamp = IsoDateTimeField()


# --- Dashboard ----------------------------------------------------------------------------------------------


class RoutiqDashboardNumbersOutput(OutputSerializer):
    organization_id = serializers.CharField()
    total_patients = serializers.IntegerField(help_text="Patients not archived")
    active_patients = serializers.IntegerField()
    patients_with_upcoming = serializers.IntegerField()
    patients_with_recent = serializers.IntegerField()
    total_upcoming_appointments = serializers.IntegerField()
    total_recent_appointments = serializers.IntegerField()
    total_all_appointments = serializers.IntegerField()
    avg_upcoming_per_patient = serializers.FloatField(help_text="Per active patient, two decimals")
    avg_recent_per_patient = serializers.FloatField(help_text="Per active patient, two decimals")
    avg_total_per_patient = serializers.FloatField(help_text="Per active patient, two decimals")
    engagement_rate = serializers.FloatField(help_text="active_patients / total_patients * 100, one decimal")
    last_sync_time = IsoDateTimeField(allow_null=True)
    synced_patients = serializers.IntegerField()
    sync_percentage = serializers.FloatField()
    integration_status = serializers.ChoiceField(choices=["Connected", "Credentials invalid", "Not connected"])
    activity_status = serializers.ChoiceField(choices=["Active", "Inactive"])
    generated_at = IsoDateTimeField()


class RoutiqActivityOutput(OutputSerializer):
    id = serializers.CharField(source="public_id", help_text="sync_...")
    source_system = serializers.CharField()
    operation_type = serializers.CharField(help_text="comprehensive_sync, basic_sync or patients_only_sync")
    status = serializers.ChoiceField(choices=SyncRun.Status.values)
    records_processed = serializers.IntegerField()
    records_success = serializers.IntegerField()
    records_failed = serializers.IntegerField()
    started_at = IsoDateTimeField(allow_null=True)
    completed_at = IsoDateTimeField(allow_null=True)
    activity_type = serializers.CharField()
    description = serializers.CharField()
    minutes_ago = serializers.FloatField(help_text="Minutes since the run started (or was requested), one decimal")


class RoutiqDashboardOutput(OutputSerializer):
    success = serializers.BooleanField()
    organization_id = serializers.CharField()
    summary = RoutiqDashboardNumbersOutput()
    recent_activity = RoutiqActivityOutput(many=True)
    timestamp = IsoDateTimeField()


class RoutiqDashboardSummaryOutput(OutputSerializer):
    success = serializers.BooleanField()
    organization_id = serializers.CharField()
    summary = RoutiqDashboardNumbersOutput()
    timestamp = IsoDateTimeField()


class RoutiqDashboardActivityOutput(OutputSerializer):
    success = serializers.BooleanField()
    organization_id = serializers.CharField()
    recent_activity = RoutiqActivityOutput(many=True)
    total_count = serializers.IntegerField(help_text="Entries in recent_activity")
    timestamp = IsoDateTimeField()
