"""Response bodies of the Routiq sync, Cliniko and administration operations (spec "Sync Management",
"Cliniko Integration", "Administration"): each serializer is both the body and its OpenAPI schema."""

from __future__ import annotations

from rest_framework import serializers

from core.serializers import IsoDateTimeField, OutputSerializer

MODES = ("comprehensive", "basic", "patients-only")
STATUSES = ("pending", "running", "completed", "partial", "failed")


class SyncErrorOutput(OutputSerializer):
    step = serializers.CharField(help_text="The step the error happened in")
    code = serializers.CharField(help_text="A code, never record data (e.g. cliniko_auth, server_error, stalled)")
    at = serializers.CharField(allow_null=True, required=False, help_text="When (ISO 8601)")


class SyncTriggerOutput(OutputSerializer):
    message = serializers.CharField()
    sync_started = serializers.BooleanField(help_text="false: a run of this organization was already running")
    sync_id = serializers.CharField(help_text="The run to poll at /api/v1/sync/progress/{sync_id}")
    organization_id = serializers.CharField()
    sync_mode = serializers.ChoiceField(choices=MODES)
    status = serializers.ChoiceField(choices=STATUSES)
    timestamp = IsoDateTimeField()


class ClinikoSyncOutput(SyncTriggerOutput):
    success = serializers.BooleanField()


class SchedulerStatusOutput(OutputSerializer):
    organization_id = serializers.CharField()
    sync_running = serializers.BooleanField()
    current_sync_id = serializers.CharField(allow_null=True, help_text="The pending or running run, if any")
    last_sync_time = IsoDateTimeField(allow_null=True, help_text="When the last finished run ended")
    scheduler_active = serializers.BooleanField(
        help_text="The hourly schedule runs this organization (Cliniko connected and sync enabled)"
    )
    cliniko_connected = serializers.BooleanField()
    message = serializers.CharField()


class SyncProgressOutput(OutputSerializer):
    sync_id = serializers.CharField()
    organization_id = serializers.CharField()
    status = serializers.ChoiceField(choices=STATUSES)
    sync_mode = serializers.ChoiceField(choices=MODES)
    incremental = serializers.BooleanField()
    progress_percentage = serializers.FloatField()
    current_step = serializers.CharField()
    total_steps = serializers.IntegerField()
    completed_steps = serializers.IntegerField()
    started_at = IsoDateTimeField(allow_null=True)
    completed_at = IsoDateTimeField(allow_null=True)
    estimated_completion = IsoDateTimeField(allow_null=True)
    records_processed = serializers.IntegerField()
    records_total = serializers.IntegerField()
    records_success = serializers.IntegerField()
    records_failed = serializers.IntegerField()
    errors = SyncErrorOutput(many=True)


class SyncMetadataOutput(OutputSerializer):
    sync_type = serializers.CharField(help_text="The run's mode: comprehensive, basic or patients-only")
    trigger = serializers.CharField()
    incremental = serializers.BooleanField()
    patients_processed = serializers.IntegerField()
    appointments_processed = serializers.IntegerField()


class SyncHistoryItemOutput(OutputSerializer):
    sync_id = serializers.CharField()
    started_at = IsoDateTimeField(allow_null=True)
    completed_at = IsoDateTimeField(allow_null=True)
    status = serializers.ChoiceField(choices=STATUSES)
    records_processed = serializers.IntegerField()
    records_success = serializers.IntegerField()
    records_failed = serializers.IntegerField()
    metadata = SyncMetadataOutput()


class SyncHistoryOutput(OutputSerializer):
    organization_id = serializers.CharField()
    total_syncs = serializers.IntegerField()
    successful_syncs = serializers.IntegerField()
    partial_syncs = serializers.IntegerField()
    failed_syncs = serializers.IntegerField()
    last_sync_at = IsoDateTimeField(allow_null=True)
    last_successful_sync_at = IsoDateTimeField(allow_null=True)
    average_sync_duration_seconds = serializers.FloatField(allow_null=True)
    recent_syncs = SyncHistoryItemOutput(many=True)


class ClinikoStatusOutput(OutputSerializer):
    organization_id = serializers.CharField()
    cliniko_connected = serializers.BooleanField()
    api_region = serializers.CharField(allow_null=True)
    last_sync = IsoDateTimeField(allow_null=True, help_text="When the last completed run ended")
    total_patients = serializers.IntegerField(help_text="Patients of the organization with a Cliniko id")
    sync_enabled = serializers.BooleanField()
    credentials_valid = serializers.BooleanField(allow_null=True, help_text="null: never checked")


class ConnectionTestOutput(OutputSerializer):
    organization_id = serializers.CharField()
    success = serializers.BooleanField()
    connected = serializers.BooleanField(help_text="Cliniko answered with these credentials")
    code = serializers.CharField(allow_null=True, help_text="Why not, as a code (e.g. cliniko_auth)")
    message = serializers.CharField()
    api_region = serializers.CharField(allow_null=True)
    tested_at = IsoDateTimeField()


class DebugCountsOutput(OutputSerializer):
    patients = serializers.IntegerField()
    patients_from_cliniko = serializers.IntegerField()
    patients_archived = serializers.IntegerField()
    appointments = serializers.IntegerField()
    appointments_from_cliniko = serializers.IntegerField()
    appointment_types = serializers.IntegerField()
    practitioners = serializers.IntegerField()
    sync_runs = serializers.IntegerField()


class DebugConnectionOutput(OutputSerializer):
    connected = serializers.BooleanField()
    api_region = serializers.CharField(allow_null=True)
    custom_base_url = serializers.BooleanField(help_text="A base URL is set (a stand-in); the URL is not shown")
    sync_enabled = serializers.BooleanField()
    credentials_valid = serializers.BooleanField(allow_null=True)
    credentials_checked_at = IsoDateTimeField(allow_null=True)
    business_country = serializers.CharField(allow_null=True)
    incremental_since = IsoDateTimeField(allow_null=True, help_text="The start of the last completed run")


class DebugOutput(OutputSerializer):
    organization_id = serializers.CharField()
    connection = DebugConnectionOutput()
    counts = DebugCountsOutput()
    last_sync = SyncProgressOutput(allow_null=True)
    timestamp = IsoDateTimeField()


class HealthCheckOutput(OutputSerializer):
    status = serializers.CharField(help_text="healthy or unhealthy")
    connected = serializers.BooleanField()


class ConfiguredServicesOutput(OutputSerializer):
    cliniko = serializers.IntegerField()
    chatwoot = serializers.IntegerField()


class HealthMetricsOutput(OutputSerializer):
    total_organizations = serializers.IntegerField()
    total_patients = serializers.IntegerField()
    active_patients = serializers.IntegerField()
    configured_services = ConfiguredServicesOutput()


class ClinikoIntegrationOutput(OutputSerializer):
    status = serializers.CharField(help_text="operational, degraded, down or not_configured")
    total_connections = serializers.IntegerField()
    healthy_connections = serializers.IntegerField()


class IntegrationsOutput(OutputSerializer):
    cliniko = ClinikoIntegrationOutput()


class SystemHealthOutput(OutputSerializer):
    status = serializers.CharField(help_text="healthy, or degraded when a check failed")
    scope = serializers.ChoiceField(choices=("platform", "organization"), help_text="platform: staff only")
    database = HealthCheckOutput()
    cache = HealthCheckOutput()
    metrics = HealthMetricsOutput()
    integrations = IntegrationsOutput()
    timestamp = IsoDateTimeField()


class CleanupOutput(OutputSerializer):
    success = serializers.BooleanField()
    days_cleaned = serializers.IntegerField()
    cleanup_results = serializers.ListField(child=serializers.CharField())
    scope = serializers.ChoiceField(choices=("platform", "organization"))
    sync_runs_deleted = serializers.IntegerField()
    idempotency_records_deleted = serializers.IntegerField()
    audit_logs_deleted = serializers.IntegerField(help_text="Always 0: audit logs are kept for the retention")
    completed_at = IsoDateTimeField()

