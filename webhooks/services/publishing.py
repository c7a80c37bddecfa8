"""Publishing: an event and one delivery row per subscribed endpoint, written inside the caller's
transaction; after commit each endpoint is woken (one message per endpoint unless one is already pending
or running: webhooks.services.outbox, "Wake-ups"). Nothing is sent on a rollback."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q, QuerySet

import webhooks.services as package  # the swappable seams (RESOLVER, _enqueue), read at call time
from core.ids import new_public_id
from core.outbox import leased
from core.time import utc_now
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from webhooks.services.outbox import wake_after_commit

Payload = dict | Callable[[str, datetime], dict]


def serialize_payload(payload: dict) -> str:
    """Compact, ASCII-only JSON (non-ASCII as \\u escapes): the same bytes whatever the receiver's
    decoding, deterministic for a given dict."""
    return json.dumps(payload, separators=(",", ":"), cls=DjangoJSONEncoder)


def enqueue_after_commit(delivery_ids: list[int], countdown: float | None = None) -> None:
    """One message per delivery after commit, whatever the endpoint's wake-up flag: a retry's countdown
    message (its run drains the endpoint when it falls due)."""
    if not delivery_ids:
        return

    def send() -> None:
        for delivery_id in delivery_ids:
            package._enqueue(delivery_id, countdown)

    transaction.on_commit(send, robust=True)


@transaction.atomic
def webhook_event_publish(
    *, event_type: str, payload: Payload, endpoints: Iterable[WebhookEndpoint]
) -> WebhookEvent | None:
    """Publish one event to an audience, inside the caller's transaction.

    `endpoints` is the audience the caller chose (a queryset or list); only active endpoints subscribed
    to `event_type` get a delivery. `payload` is a dict, or a callable `(event_id, created_at) -> dict`
    for bodies that carry the event's own id (Mark: {"id": "evt_...", "type", "created", "data"}).
    The body is serialized once; every endpoint receives the same bytes. Returns None when nobody is
    subscribed. Endpoints are woken after commit; nothing is sent if the transaction rolls back.
    No audit row: the caller's domain service audits its own change.
    """
    if isinstance(endpoints, QuerySet):
        endpoints = endpoints.filter(is_active=True)
    targets: dict[int, WebhookEndpoint] = {}
    for endpoint in endpoints:
        if endpoint.is_active and endpoint.subscribes_to(event_type):
            targets.setdefault(endpoint.pk, endpoint)
    if not targets:
        return None
    now = utc_now()
    event_id = new_public_id("evt")
    data = payload(event_id, now) if callable(payload) else payload
    event = WebhookEvent.objects.create(
        public_id=event_id, type=event_type, payload=serialize_payload(data), created_at=now
    )
    deliveries = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(event=event, endpoint=endpoint, next_attempt_at=now) for endpoint in targets.values()]
    )
    wake_after_commit({delivery.endpoint_id: delivery.pk for delivery in deliveries})
    return event


def deliveries_restart(queryset: QuerySet, now: datetime) -> list[int]:
    """Inside a transaction: back to pending, due now, a fresh attempt cycle, their endpoints woken after
    commit; skips deliveries being attempted right now. Returns the ids restarted."""
    in_flight = Q(status=DeliveryStatus.PENDING) & leased(now)
    rows = list(
        queryset.exclude(in_flight).select_for_update(of=("self",)).order_by("pk").values_list("pk", "endpoint_id")
    )
    ids = [pk for pk, _ in rows]
    WebhookDelivery.objects.filter(pk__in=ids).update(
        status=DeliveryStatus.PENDING,
        attempt_count=0,
        first_attempt_at=None,
        next_attempt_at=now,
        claimed_until=None,
        succeeded_at=None,
        updated_at=now,
    )
    first_by_endpoint: dict[int, int] = {}
    for pk, endpoint_id in rows:
        first_by_endpoint.setdefault(endpoint_id, pk)
    wake_after_commit(first_by_endpoint)
    return ids
