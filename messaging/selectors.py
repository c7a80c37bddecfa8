"""Reads of the messaging outbox."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q, QuerySet

from core.time import utc_now
from messaging.models import OutboundMessage

Status = OutboundMessage.Status


def message_ids_due(*, now: datetime | None = None, grace_seconds: int = 30, limit: int = 1000) -> list[int]:
    """Primary keys of queued messages due at least `grace_seconds` ago and not claimed by a worker,
    oldest due first. The grace leaves the task enqueued at commit (or by a retry's countdown) time to run
    before the sweeper enqueues the same message again (which would be harmless: the claim dedupes)."""
    now = now or utc_now()
    return list(
        OutboundMessage.objects.filter(
            status=Status.QUEUED, next_attempt_at__lte=now - timedelta(seconds=grace_seconds)
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def messages_to_recipient(*, channel: str, recipient: str) -> QuerySet[OutboundMessage]:
    """Messages sent to one destination, found through the blind index (raises MessagingError for a
    recipient that is not valid on that channel)."""
    from messaging.services import normalize_recipient, recipient_index

    normalized = normalize_recipient(channel, recipient)
    return OutboundMessage.objects.filter(channel=channel, recipient_index=recipient_index(channel, normalized))
