"""Sweeping and redelivery: the beat sweeper that re-enqueues due deliveries (and applies the
auto-disable rule, and closes attempts a dead worker left in flight), and staff redelivery of chosen
deliveries."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from core.actors import Actor
from core.time import utc_now
from webhooks.models import AttemptState, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.services.delivery import close_lost_attempts
from webhooks.services.endpoints import audit, webhook_endpoints_disable_failing
from webhooks.services.outbox import DELIVERIES, wake_endpoints
from webhooks.services.publishing import deliveries_restart


def webhook_deliveries_sweep(*, now: datetime | None = None, limit: int | None = None) -> dict[str, int]:
    """Beat, every minute: apply the auto-disable rule, then re-enqueue pending deliveries of active
    endpoints that are due (for more than the outbox's grace) and not claimed, oldest first: one wake-up
    message per endpoint (its run drains them all), sent whatever the endpoint's wake-up flag says (a lost
    message leaves it taken until it expires). A lost broker message thus delays a delivery by about a
    minute; a duplicate message is harmless (the claim lets only one run send). `enqueued` counts the
    deliveries re-enqueued, `messages` the messages sent for them."""
    now = now or utc_now()
    disabled = webhook_endpoints_disable_failing(now=now)
    lost = webhook_attempts_close_lost(now=now)
    ids = DELIVERIES.due_ids(now=now, within=Q(endpoint__is_active=True), limit=limit)
    first_by_endpoint: dict[int, int] = {}
    endpoint_of = dict(WebhookDelivery.objects.filter(pk__in=ids).values_list("pk", "endpoint_id"))
    for pk in ids:  # oldest due first
        if pk in endpoint_of:
            first_by_endpoint.setdefault(endpoint_of[pk], pk)
    wake_endpoints(first_by_endpoint, force=True, now=now)
    return {"enqueued": len(ids), "endpoints_disabled": disabled, "attempts_lost": lost}


def webhook_attempts_close_lost(*, now: datetime | None = None) -> int:
    """Attempts left `sending` by a worker that died (its lease on the delivery has expired) become
    `worker_lost`, so the history counts every POST the receiver may have had even before the delivery
    is tried again. Returns how many."""
    now = now or utc_now()
    delivery_ids = (
        WebhookAttempt.objects.filter(state=AttemptState.SENDING)
        .filter(Q(delivery__claimed_until__isnull=True) | Q(delivery__claimed_until__lte=now))
        .values_list("delivery_id", flat=True)
        .distinct()
    )
    return sum(close_lost_attempts(delivery_id, lease_held=False, now=now) for delivery_id in list(delivery_ids))


@transaction.atomic
def webhook_deliveries_redeliver(*, delivery_ids: Iterable[int], actor: Actor) -> int:
    """Send the given deliveries again (whatever their status) with a fresh retry schedule. Deliveries of
    disabled endpoints are skipped. Returns how many were queued."""
    now = utc_now()
    queryset = WebhookDelivery.objects.filter(pk__in=list(delivery_ids), endpoint__is_active=True)
    ids = deliveries_restart(queryset, now)
    by_endpoint: dict[int, list[int]] = {}
    for delivery_id, endpoint_id in WebhookDelivery.objects.filter(pk__in=ids).values_list("pk", "endpoint_id"):
        by_endpoint.setdefault(endpoint_id, []).append(delivery_id)
    for endpoint in WebhookEndpoint.objects.filter(pk__in=by_endpoint):
        delivered = sorted(by_endpoint[endpoint.pk])
        audit(
            "webhooks.deliveries_redelivered",
            endpoint,
            actor=actor,
            count=len(delivered),
            delivery_ids=delivered[:500],
        )
    return len(ids)
