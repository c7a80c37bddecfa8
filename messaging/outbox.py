"""The messaging outbox (core.outbox): queued rows, the claim lease, and the task that sends one."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q

from core.outbox import Outbox
from messaging.models import OutboundMessage

# A claimed row is left alone for this long (> the send task's hard time limit).
CLAIM_SECONDS = 300


def _enqueue_send(message_id: int) -> None:
    from messaging.tasks import enqueue_send

    enqueue_send(message_id)


MESSAGES = Outbox(
    model=OutboundMessage,
    pending=Q(status=OutboundMessage.Status.QUEUED),
    lease=timedelta(seconds=CLAIM_SECONDS),
    enqueue=_enqueue_send,
    # Up to this much early, a due-time check still counts (clock skew between workers, countdown rounding).
    due_tolerance=timedelta(seconds=2),
    # The grace leaves the task enqueued at commit (or by a retry's countdown) time to run before the
    # sweeper enqueues the same message again (which would be harmless: the claim dedupes).
    sweep_grace=timedelta(seconds=30),
    sweep_batch=1000,
)
