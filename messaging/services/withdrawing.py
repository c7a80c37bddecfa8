"""Withdrawing queued messages whose reason to exist is gone (their conversation was deleted, their
patient erased): they become `failed` with a `last_error` naming why, so no worker sends them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from core.outbox import unclaimed
from messaging.models import OutboundMessage


def messages_withdraw(*, message_ids: Iterable[int], reason: str, now: datetime) -> list[int]:
    """Mark the still-queued, unclaimed rows among `message_ids` failed (`last_error` = `reason`, a short
    code) and return their ids. Call inside the caller's transaction.

    A row a worker holds right now (a live lease) is left to finish: it may already be with the provider.
    The rows are locked with SKIP LOCKED first: a worker's claim (one conditional UPDATE) then waits for
    this transaction and finds the row no longer queued; a row being claimed at this instant is skipped,
    as one being sent."""
    ids = sorted(set(message_ids))
    if not ids:
        return []
    queued = OutboundMessage.objects.filter(pk__in=ids, status=OutboundMessage.Status.QUEUED).filter(unclaimed(now))
    locked = list(queued.select_for_update(skip_locked=True).values_list("pk", flat=True))
    if locked:
        OutboundMessage.objects.filter(pk__in=locked).update(
            status=OutboundMessage.Status.FAILED,
            last_error=reason,
            next_attempt_at=None,
            claimed_until=None,
            updated_at=now,
        )
    return locked
