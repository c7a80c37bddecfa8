"""Mark webhooks API (spec: "Webhooks"): input and output of POST/GET /webhooks and DELETE /webhooks/{id}.
The output never carries the secret."""

from __future__ import annotations

from rest_framework import serializers

from core.serializers import IsoDateTimeField, OutputSerializer, StrictCharField
from patients.events import EVENT_TYPES
from webhooks.services.endpoints import MAX_URL_LENGTH, MIN_SECRET_LENGTH

WEBHOOK_STATUSES = ["active", "disabled"]


class WebhookCreateInput(serializers.Serializer):
    url = StrictCharField(max_length=MAX_URL_LENGTH, help_text="https URL resolving only to public addresses")
    secret = StrictCharField(
        min_length=MIN_SECRET_LENGTH,
        max_length=256,
        trim_whitespace=False,
        help_text=f"your signing secret, {MIN_SECRET_LENGTH} to 256 printable characters (never shown again)",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=list(EVENT_TYPES)),
        allow_empty=False,
        max_length=len(EVENT_TYPES) * 2,
        help_text="event types to receive",
    )


class WebhookStatusField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=WEBHOOK_STATUSES, source="*", **kwargs)

    def to_representation(self, endpoint):
        return "active" if endpoint.is_active else "disabled"


class WebhookOutput(OutputSerializer):
    id = serializers.CharField(source="public_id", help_text="wh_...")
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.ChoiceField(choices=list(EVENT_TYPES)))
    created_at = IsoDateTimeField()
    status = WebhookStatusField(help_text="active, or disabled (the receiver kept failing; events are not sent)")


class WebhookDeleteOutput(OutputSerializer):
    success = serializers.BooleanField()
    message = serializers.CharField()
