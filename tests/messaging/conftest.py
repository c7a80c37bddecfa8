"""Messaging tests: no task ever reaches a broker, and the locmem outbox starts empty. The shared
fixtures (`logs`, `twilio`, `locmem_backend`), constants and factories are in tests/fixtures/messaging.py."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from messaging import backends
from messaging.tasks import send_message


@dataclass
class Enqueued:
    message_id: int
    countdown: float | None
    drain: bool = False  # a wake-up's prompt (messaging.outbox, "Wake-ups")


@pytest.fixture(autouse=True)
def enqueued(monkeypatch) -> list[Enqueued]:
    """Every send_message.apply_async call, recorded instead of published: tests run tasks themselves."""
    calls: list[Enqueued] = []

    def fake_apply_async(args=None, kwargs=None, countdown=None, **options):
        calls.append(Enqueued(args[0], countdown, bool((kwargs or {}).get("drain"))))

    monkeypatch.setattr(send_message, "apply_async", fake_apply_async)
    return calls


@pytest.fixture(autouse=True)
def _clean_outbox():
    backends.outbox.clear()
    yield
    backends.outbox.clear()
