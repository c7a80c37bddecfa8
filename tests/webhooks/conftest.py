"""Webhook test fixtures: a receiver on 127.0.0.1, captured enqueues (no broker), no retry jitter.
Factories (register, publish, attempt...) are in tests/webhooks/factories.py."""

from __future__ import annotations

import pytest

from tests.servers import LocalServer, Recorded, Reply
from webhooks import retry, services


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
