"""Reads of the messaging outbox."""

from __future__ import annotations

from django.db.models import QuerySet

from messaging.models import OutboundMessage


def messages_to_recipient(*, channel: str, recipient: str) -> QuerySet[OutboundMessage]:
    """Messages sent to one destination, found through the blind index (raises MessagingError for a
    recipient that is not valid on that channel)."""
    from messaging.services import normalize_recipient, recipient_index

    normalized = normalize_recipient(channel, recipient)
    return OutboundMessage.objects.filter(channel=channel, recipient_index=recipient_index(channel, normalized))
