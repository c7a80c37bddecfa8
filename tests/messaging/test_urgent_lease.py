"""Urgent messages (crisis alerts) take a short lease kept alive by a heartbeat, and a watchdog task is
enqueued for just after it would expire (issue 10 finding 12: a critical SMS whose worker died was sent
again only after the 300 s claim expired). Ordinary messages keep the long lease. The sweeper notes a
message whose worker died as `worker_lost`."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from core.time import utc_now
from messaging.models import OutboundMessage
from messaging.services import sending
from tests.fixtures.messaging import queue, run

pytestmark = pytest.mark.django_db

CRITICAL = "integration.alert_critical"


@pytest.fixture
def observed_leases(monkeypatch, locmem_backend) -> list[timedelta]:
    """The lease each send runs under (claimed_until - now, read while the backend sends)."""
    seen: list[timedelta] = []
    real = sending.get_backend

    class Observing:
        def __init__(self):
            self.backend = real()
            self.name = self.backend.name

        def send(self, message):
            claimed_until = OutboundMessage.objects.values_list("claimed_until", flat=True).get(pk=message.pk)
            seen.append(claimed_until - utc_now())
            return self.backend.send(message)

    monkeypatch.setattr(sending, "get_backend", Observing)
    return seen


def test_a_critical_message_is_sent_under_a_short_lease_with_a_watchdog(settings, enqueued, observed_leases):
    settings.MESSAGING_URGENT_LEASE_SECONDS = 20
    message = queue(purpose=CRITICAL)
    enqueued.clear()
    assert run(message) == "sent"
    (lease,) = observed_leases
    assert timedelta(seconds=15) < lease <= timedelta(seconds=20)
    # The watchdog: a run just after the lease would expire (it finds the message sent, and skips).
    assert [(call.message_id, call.countdown) for call in enqueued] == [(message.pk, 21.0)]
    assert run(message) == "skipped"


def test_an_ordinary_message_keeps_the_long_lease_and_no_watchdog(settings, enqueued, observed_leases):
    message = queue(purpose="careos.welcome")
    enqueued.clear()
    assert run(message) == "sent"
    (lease,) = observed_leases
    assert lease > timedelta(seconds=settings.MESSAGING_LEASE_SECONDS - 5)
    assert enqueued == []


def test_urgent_purposes_are_a_setting(settings, enqueued, observed_leases):
    settings.MESSAGING_URGENT_PURPOSES = ["careos.welcome"]
    assert run(queue(purpose="careos.welcome")) == "sent"
    assert observed_leases[0] <= timedelta(seconds=settings.MESSAGING_URGENT_LEASE_SECONDS)


@pytest.mark.django_db(transaction=True)
def test_a_slow_critical_send_keeps_its_lease(settings, enqueued, monkeypatch, locmem_backend):
    """A live worker is never taken over: the heartbeat renews the 3 s lease while the send takes 4 s."""
    settings.MESSAGING_URGENT_LEASE_SECONDS = 3
    message = queue(purpose=CRITICAL)
    other_worker: list[object] = []
    real = sending.get_backend

    class Slow:
        name = "locmem"

        def send(self, message):
            time.sleep(4)  # past the first lease
            other_worker.append(sending.message_claim(message_id=message.pk))
            return real().send(message)

    monkeypatch.setattr(sending, "get_backend", Slow)
    assert run(message) == "sent"
    assert other_worker == [None]
    assert message.attempts == 1 and message.claimed_until is None and len(locmem_backend) == 1


def test_the_sweeper_notes_a_message_whose_worker_died(enqueued):
    message = queue(purpose=CRITICAL)
    enqueued.clear()
    assert sending.message_claim(message_id=message.pk, lease=timedelta(seconds=20)) is not None  # then it died
    now = utc_now()
    assert sending.messages_sweep(now=now) == 0  # the lease is live: leave it
    later = now + timedelta(seconds=21)  # lease expired: swept at once, without the 30 s grace
    assert sending.messages_sweep(now=later) == 1
    message.refresh_from_db()
    assert message.last_error == "worker_lost" and message.claimed_until is None and message.attempts == 1
    assert [call.message_id for call in enqueued] == [message.pk]


def test_a_watchdog_that_comes_while_the_lease_is_renewed_watches_again(enqueued):
    """The worker is alive (its heartbeat moved the lease): the early watchdog re-arms itself for just
    after the current lease, and sends nothing."""
    message = queue(purpose=CRITICAL)
    enqueued.clear()
    assert sending.message_claim(message_id=message.pk, lease=timedelta(seconds=20)) is not None
    assert run(message) == "skipped"
    ((message_id, countdown),) = [(call.message_id, call.countdown) for call in enqueued]
    assert message_id == message.pk and 19 < countdown <= 21


def test_an_ordinary_message_held_elsewhere_is_not_watched(enqueued):
    message = queue(purpose="careos.welcome")
    enqueued.clear()
    assert sending.message_claim(message_id=message.pk) is not None
    assert run(message) == "skipped" and enqueued == []


def test_no_watchdog_when_tasks_run_in_process(settings, enqueued, observed_leases):
    """Eager (development) mode would run the watchdog at once, inside the send it watches."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    message = queue(purpose=CRITICAL)
    enqueued.clear()
    assert run(message) == "sent" and enqueued == []
    assert observed_leases[0] <= timedelta(seconds=settings.MESSAGING_URGENT_LEASE_SECONDS)
