"""The webhook deliveries outbox (core.outbox): pending rows, the lease, and the task that sends one."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q

from core.outbox import Outbox
from webhooks.models import DeliveryStatus, WebhookDelivery


def delivery_lease() -> timedelta:
    """How long a claim lasts: longer than the longest attempt (guarded_request's deadline is 3x the
    timeout), so a lease only expires when the worker holding it died. WEBHOOK_LEASE_SECONDS (checked at
    start-up to exceed that deadline) shortens it: a crashed worker's delivery is retried sooner."""
    if settings.WEBHOOK_LEASE_SECONDS:
        return timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
    return timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS * 3 + 60)


def _enqueue_delivery(delivery_id: int) -> None:
    import webhooks.services as package  # the swappable seam, read at call time

    package._enqueue(delivery_id)


DELIVERIES = Outbox(
    model=WebhookDelivery,
    pending=Q(status=DeliveryStatus.PENDING),
    lease=delivery_lease,
    enqueue=_enqueue_delivery,
    # The sweeper leaves deliveries alone for this long after they fall due: their own message is
    # normally on its way, and re-enqueueing them at once would only add duplicates.
    sweep_grace=timedelta(seconds=30),
    sweep_batch=1000,
)
