"""Mark messages: voice notes from the clinic (POST /api/v1/messages/voice) and the message reads the
messages API needs. Text messages are `patients.services.message_send_text`.
"""

from __future__ import annotations

from django.db.models import Q

from core.domain import NotFound
from patients.models import Message

# --- Reads (scoped like patients.selectors) -------------------------------------------------------------


def message_get(*, organization, public_id: str) -> Message:
    """One message of the organization, its conversation, patient and outbox row joined (404 otherwise)."""
    message = (
        Message.objects.select_related("conversation__patient", "outbound_message")
        .filter(organization=organization, public_id=public_id)
        .first()
    )
    if message is None:
        raise NotFound("Message not found")
    return message


def message_with_media(*, public_id: str) -> Message:
    """The message a signed media URL names (the signature already proved the caller was given it)."""
    message = Message.objects.select_related("organization").filter(public_id=public_id).filter(~Q(media="")).first()
    if message is None:
        raise NotFound("Audio not found")
    return message
