"""Mark system API outputs (spec: "System"): GET /system/status and GET /system/encryption/status. They
render patients.system's results and are the OpenAPI schema."""

from __future__ import annotations

from rest_framework import serializers

from core.serializers import IsoDateTimeField, OutputSerializer
from patients.system import COMPONENT_STATUSES, OVERALL_STATUSES


class ComponentOutput(OutputSerializer):
    name = serializers.CharField(
        help_text="api, database, broker, whatsapp_integration, calendly_integration, stripe_integration, "
        "zoom_integration, claude_api"
    )
    status = serializers.ChoiceField(choices=list(COMPONENT_STATUSES))


class MetricsOutput(OutputSerializer):
    requests_per_minute = serializers.FloatField(help_text="this clinic's Mark API requests, last 5 minutes")
    average_response_time = serializers.IntegerField(help_text="mean response time, milliseconds, last 5 minutes")
    error_rate = serializers.FloatField(help_text="percentage of those requests answered 5xx")


class SystemStatusOutput(OutputSerializer):
    status = serializers.ChoiceField(
        choices=list(OVERALL_STATUSES), help_text="degraded when any component is degraded"
    )
    version = serializers.CharField()
    uptime = serializers.IntegerField(help_text="seconds since this server process started")
    last_restart = IsoDateTimeField(help_text="when this server process started")
    components = ComponentOutput(many=True)
    metrics = MetricsOutput()


class EncryptionStatusOutput(OutputSerializer):
    enabled = serializers.BooleanField()
    key_rotation_days = serializers.IntegerField()
    last_rotation = IsoDateTimeField(allow_null=True, help_text="the last key rotation; null when never")
    next_rotation = IsoDateTimeField(allow_null=True, help_text="last_rotation + key_rotation_days; null when never")
    encrypted_conversations = serializers.IntegerField(help_text="this clinic's conversations holding encrypted data")
    encrypted_patients = serializers.IntegerField(
        help_text="this clinic's patients (every patient row holds encrypted data)"
    )
