"""Webhook test factories: endpoints registered and events published through the services."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from django.utils import timezone

from core.actors import Actor
from webhooks import services
from webhooks.models import WebhookDelivery

TEST_ACTOR = Actor.system("test")
STAFF = Actor(type="user", id="1")


def register(url: str, *, scheme: str = "loverescue", events=("alert.created",), **kwargs):
    kwargs.setdefault("owner_type", "integration_partner")
    kwargs.setdefault("owner_id", "partner-1")
    kwargs.setdefault("actor", TEST_ACTOR)
    return services.webhook_endpoint_register(url=url, events=list(events), scheme=scheme, **kwargs)


def publish(endpoint, *, event_type: str = "alert.created", payload: dict | Callable | None = None):
    return services.webhook_event_publish(
        event_type=event_type,
        payload=payload if payload is not None else {"alertId": "a-1", "severity": "HIGH"},
        endpoints=[endpoint],
    )


def attempt(delivery: WebhookDelivery) -> str:
    return services.webhook_delivery_attempt(delivery_id=delivery.pk)


def make_due(delivery: WebhookDelivery) -> None:
    """Move the delivery's next attempt to now (instead of waiting for it)."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def hex_hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
