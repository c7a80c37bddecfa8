"""The webhook deliveries outbox (core.outbox): pending rows, the lease, the task that sends one, and the
batch claim of one endpoint's due deliveries."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, Exists, OuterRef, Q, Value, When

from core.outbox import Outbox, unclaimed
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


def claim_batch(delivery_id: int, *, limit: int, now: datetime) -> tuple[datetime, list[int]] | None:
    """Take one lease on up to `limit` pending, due, unclaimed deliveries of the endpoint of delivery
    `delivery_id`, that one first if it is claimable, then the oldest due. Returns the lease expiry (the
    claim token `held` takes, the same on every row) and the ids; None when nothing was claimable.
    `limit=1` claims `delivery_id` itself or nothing (`Outbox.claim`).

    Any message for an endpoint may so take its waiting work: a run whose own delivery another batch
    already holds takes the next rows instead of idling. Run it in autocommit, like `Outbox.claim`. When
    the endpoint has nothing claimable (the common case for a message whose delivery a batch took) it
    costs one plain read. Otherwise one short transaction locks the rows with SKIP LOCKED, so two runs
    claiming one endpoint at once split its deliveries instead of waiting for each other, and each row is
    claimed by one run only (PostgreSQL; SQLite's write transactions run one at a time)."""
    if limit <= 1:
        token = DELIVERIES.claim(delivery_id, now=now, updated_at=now)
        return (token, [delivery_id]) if token is not None else None
    claimable = DELIVERIES.rows().filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + DELIVERIES.due_tolerance), unclaimed(now)
    )
    endpoint_id = (
        WebhookDelivery.objects.filter(pk=delivery_id)
        .filter(Exists(claimable.filter(endpoint_id=OuterRef("endpoint_id"))))
        .values_list("endpoint_id", flat=True)
        .first()
    )
    if endpoint_id is None:
        return None
    token = now + DELIVERIES.lease_duration()
    with transaction.atomic():
        ids = list(
            claimable.filter(endpoint_id=endpoint_id)
            .select_for_update(skip_locked=True)
            .annotate(requested=Case(When(pk=delivery_id, then=Value(0)), default=Value(1)))
            .order_by("requested", "next_attempt_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return None  # claimed by other runs meanwhile
        WebhookDelivery.objects.filter(pk__in=ids).update(claimed_until=token, updated_at=now)
    return token, ids
