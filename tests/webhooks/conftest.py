"""Webhook test fixtures: a receiver on 127.0.0.1, endpoints registered through the service, captured
enqueues (no broker), no retry jitter."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import pytest
from django.utils import timezone

from tests.servers import LocalServer, Recorded, Reply
from webhooks import retry, services
from webhooks.models import WebhookDelivery


@pytest.fixture(autouse=True)
def _webhook_settings(settings, monkeypatch):
    settings.WEBHOOK_REQUIRE_HTTPS = False  # receivers are http://127.0.0.1:port
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 2.0
    monkeypatch.setattr(retry, "JITTER_FRACTION", 0)
    monkeypatch.setattr(services, "RESOLVER", None)


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple[int, float | None]]:
    """Every (delivery_id, countdown) the services hand to the broker, instead of sending them."""
    calls: list[tuple[int, float | None]] = []

    def record(delivery_id: int, countdown: float | None = None) -> None:
        calls.append((delivery_id, countdown))

    monkeypatch.setattr(services, "_enqueue", record)
    return calls


@pytest.fixture
def receiver():
    """A receiver answering what `server.replies` says (a list popped in order, then `server.default`)."""
    replies: list[Reply] = []
    state = {"default": Reply(200, {"Content-Type": "application/json"}, b'{"ok":true}')}

    def handler(request: Recorded) -> Reply:
        return replies.pop(0) if replies else state["default"]

    with LocalServer(handler) as server:
        server.replies = replies
        server.state = state
        yield server


def register(url: str, *, scheme: str = "loverescue", events=("alert.created",), **kwargs):
    kwargs.setdefault("owner_type", "integration_partner")
    kwargs.setdefault("owner_id", "partner-1")
    kwargs.setdefault("actor_type", "system")
    kwargs.setdefault("actor_id", "test")
    return services.webhook_endpoint_register(url=url, events=list(events), scheme=scheme, **kwargs)


def publish(endpoint, *, event_type: str = "alert.created", payload: dict | Callable | None = None):
    return services.webhook_event_publish(
        event_type=event_type, payload=payload if payload is not None else {"alertId": "a-1", "severity": "HIGH"},
        endpoints=[endpoint],
    )


def attempt(delivery: WebhookDelivery) -> str:
    return services.webhook_delivery_attempt(delivery_id=delivery.pk)


def make_due(delivery: WebhookDelivery) -> None:
    """Move the delivery's next attempt to now (instead of waiting for it)."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def hex_hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
