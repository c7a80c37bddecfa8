"""Mark conversations API (spec: mark-assistant-api.md, "Conversations"): output serializers, which are
also the OpenAPI schema. The views build plain dicts for the single-conversation bodies (a voice message's
`content` is a signed URL made with the request), so every field here reads a dict key or a model
attribute, never the serializer's context."""

from __future__ import annotations

from rest_framework import serializers

from core.serializers import IsoDateTimeField, OutputSerializer
from patients.exports import FORMATS
from patients.models import Message

SENDERS = list(Message.Sender.values)
CONTENT_TYPES = list(Message.ContentType.values)
EXPORT_FORMATS = list(FORMATS)


class ConversationListItemOutput(OutputSerializer):
    id = serializers.CharField(source="public_id", help_text="conv_...")
    patient_id = serializers.CharField(source="patient.public_id", help_text="pat_...")
    patient_name = serializers.CharField(source="patient.name")
    start_time = IsoDateTimeField()
    end_time = IsoDateTimeField(allow_null=True, help_text="null while the conversation is open")
    language = serializers.CharField()
    message_count = serializers.IntegerField()
    summary = serializers.CharField(allow_null=True, help_text="filled when the conversation ends; null if none")


class ConversationMessageOutput(OutputSerializer):
    id = serializers.CharField(help_text="msg_...")
    timestamp = IsoDateTimeField()
    sender = serializers.ChoiceField(choices=SENDERS)
    content = serializers.CharField(
        allow_blank=True, help_text="the text; for a voice message a signed URL of its audio that expires"
    )
    content_type = serializers.ChoiceField(choices=CONTENT_TYPES)


class ConversationOutput(OutputSerializer):
    id = serializers.CharField(help_text="conv_...")
    patient_id = serializers.CharField(help_text="pat_...")
    patient_name = serializers.CharField()
    start_time = IsoDateTimeField()
    end_time = IsoDateTimeField(allow_null=True, help_text="null while the conversation is open")
    language = serializers.CharField()
    messages = ConversationMessageOutput(many=True)
    metadata = serializers.DictField(
        allow_null=True, help_text="intent, sentiment, escalated: filled when the conversation ends; null if none"
    )


# --- The JSON export (patients.exports.export_dict): documented here, rendered there --------------------


class ConversationExportMessageOutput(OutputSerializer):
    id = serializers.CharField(help_text="msg_...")
    timestamp = serializers.CharField(help_text="ISO 8601, UTC")
    sender = serializers.ChoiceField(choices=SENDERS)
    content_type = serializers.ChoiceField(choices=CONTENT_TYPES)
    content = serializers.CharField(
        allow_null=True, allow_blank=True, help_text="the text; for a voice message its transcription (null if none)"
    )
    duration = serializers.FloatField(allow_null=True, help_text="voice messages: seconds; null otherwise")


class ConversationExportOutput(OutputSerializer):
    id = serializers.CharField(help_text="conv_...")
    patient_id = serializers.CharField(help_text="pat_...")
    patient_name = serializers.CharField()
    start_time = serializers.CharField(help_text="ISO 8601, UTC")
    end_time = serializers.CharField(allow_null=True, help_text="ISO 8601, UTC; null while open")
    language = serializers.CharField()
    message_count = serializers.IntegerField()
    summary = serializers.CharField(allow_null=True)
    metadata = serializers.DictField(allow_null=True)
    exported_at = serializers.CharField(help_text="ISO 8601, UTC")
    messages = ConversationExportMessageOutput(many=True)
