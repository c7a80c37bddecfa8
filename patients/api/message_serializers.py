"""Mark messages API serializers (spec: "Messages"). Inputs check types and shapes; the services apply
the domain rules. `MessageOutput` renders a message the view has prepared with `present()` (the voice
URL is signed per response, so it is not a stored field)."""

from __future__ import annotations

from rest_framework import serializers

from core.serializers import ABSENT, IsoDateTimeField, OutputSerializer, StrictCharField
from patients.models import Message
from patients.services import CONTENT_MAX

SENDERS = list(Message.Sender.values)
CONTENT_TYPES = list(Message.ContentType.values)
MESSAGE_STATUSES = ["queued", "sent", "delivered", "failed", Message.RECEIVED]
AUDIO_FORMATS = ["mp3", "wav", "ogg"]


class MessageCreateInput(serializers.Serializer):
    patient_id = StrictCharField(max_length=40, help_text="pat_...")
    content = StrictCharField(max_length=CONTENT_MAX, trim_whitespace=False, help_text="the text (WhatsApp)")
    content_type = serializers.ChoiceField(
        choices=CONTENT_TYPES, required=False, default="text", help_text='"text" (voice: POST /messages/voice)'
    )


class VoiceMessageInput(serializers.Serializer):
    patient_id = serializers.CharField(max_length=40, help_text="pat_...")
    audio_file = serializers.FileField(
        allow_empty_file=False, use_url=False, help_text="MP3, WAV or OGG (Vorbis/Opus), checked by content"
    )
    language = serializers.CharField(
        required=False, allow_blank=True, max_length=10, help_text="language code of the speech, e.g. es"
    )


class VoiceMetadataOutput(OutputSerializer):
    duration = serializers.IntegerField(help_text="seconds, rounded to the nearest second (at least 1)")
    format = serializers.ChoiceField(choices=AUDIO_FORMATS)
    transcription = serializers.CharField(allow_null=True, help_text="speech-to-text, null without a backend")


class MessageOutput(OutputSerializer):
    id = serializers.CharField(source="public_id", help_text="msg_...")
    patient_id = serializers.CharField(source="conversation.patient.public_id", help_text="pat_...")
    timestamp = IsoDateTimeField(source="created_at")
    sender = serializers.ChoiceField(choices=SENDERS)
    content = serializers.CharField(
        source="shown_content",
        allow_blank=True,
        help_text="the text; for a voice message a signed URL to its audio that expires (MARK_MEDIA_URL_SECONDS)",
    )
    content_type = serializers.ChoiceField(choices=CONTENT_TYPES)
    status = serializers.ChoiceField(
        choices=MESSAGE_STATUSES, help_text="the outbox's: queued, sent, delivered, failed; received (patient's)"
    )
    conversation_id = serializers.CharField(source="conversation.public_id", help_text="conv_...")
    metadata = VoiceMetadataOutput(
        source="voice_metadata", required=False, help_text="voice messages only: duration, format, transcription"
    )


def voice_duration(seconds: float | None) -> int:
    """The spec shows whole seconds: rounded half up, and at least 1 for any audio."""
    if seconds is None:
        return 0
    return max(1, int(seconds + 0.5))


def present(message: Message, *, content_url: str | None = None) -> Message:
    """Set what MessageOutput reads: the shown content (text, or the signed audio URL) and the voice
    metadata (left out of text messages' bodies)."""
    if message.content_type == Message.ContentType.VOICE:
        message.shown_content = content_url or ""
        message.voice_metadata = {
            "duration": voice_duration(message.media_duration),
            "format": message.media_format,
            "transcription": message.transcription,
        }
    else:
        message.shown_content = message.content
        message.voice_metadata = ABSENT
    return message
