"""A worker that dies mid-request leaves its attempt in the history (issue 10 finding 12): the attempt row
is written, `sending`, before the request leaves; the next claim or the sweeper marks it `worker_lost`
and counts it, so the history counts every POST the receiver may have had.

The crash is simulated in-process: the HTTP call raises a BaseException (like the SIGKILL that stops a
real worker, nothing after it runs). tests/faults/test_worker_crash.py kills a real worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.webhooks.factories import attempt, publish, register
from webhooks import services
from webhooks.models import AttemptState, DeliveryStatus, WebhookAttempt, WebhookDelivery
from webhooks.services import delivery as delivery_module

pytestmark = pytest.mark.django_db


class WorkerKilled(BaseException):
    """Stands for the process dying: not an Exception, so no handler in the service catches it."""


def crash_during_the_request(monkeypatch, receiver) -> None:
    """The request reaches the receiver, then the worker dies before it reads the answer."""
    real = delivery_module.guarded_request

    def post_then_die(*args, **kwargs):
        real(*args, **kwargs)
        raise WorkerKilled

    monkeypatch.setattr(delivery_module, "guarded_request", post_then_die)


def test_an_attempt_killed_mid_request_is_in_the_history(receiver, enqueued, monkeypatch):
    endpoint, _ = register(receiver.url("/hook"))
    delivery = WebhookDelivery.objects.get(event=publish(endpoint))
    crash_during_the_request(monkeypatch, receiver)
    with pytest.raises(WorkerKilled):
        attempt(delivery)
    monkeypatch.undo()

    (in_flight,) = WebhookAttempt.objects.filter(delivery=delivery)
    assert in_flight.state == AttemptState.SENDING and in_flight.status_code is None
    assert len(receiver.requests) == 1  # the receiver got it; the history already says so

    # The lease is still live: nobody may call that attempt lost yet.
    assert services.webhook_attempts_close_lost() == 0
    expired = timezone.now() + services.delivery_lease() + timedelta(seconds=1)
    result = services.webhook_deliveries_sweep(now=expired)
    assert result["attempts_lost"] == 1 and result["enqueued"] == 1
    in_flight.refresh_from_db()
    assert in_flight.state == AttemptState.WORKER_LOST and "outcome unknown" in in_flight.error
    delivery.refresh_from_db()
    assert delivery.attempt_count == 1 and delivery.status == DeliveryStatus.PENDING

    WebhookDelivery.objects.filter(pk=delivery.pk).update(claimed_until=None)  # the sweep's "now" was ahead
    assert attempt(delivery) == "succeeded"
    history = list(WebhookAttempt.objects.filter(delivery=delivery).values_list("state", "status_code"))
    assert history == [(AttemptState.WORKER_LOST, None), (AttemptState.COMPLETED, 200)]
    assert len(receiver.requests) == len(history) == 2
    delivery.refresh_from_db()
    assert delivery.attempt_count == 2


def test_the_next_claim_closes_an_attempt_whose_worker_died(receiver, enqueued, monkeypatch):
    endpoint, _ = register(receiver.url("/hook"))
    delivery = WebhookDelivery.objects.get(event=publish(endpoint))
    crash_during_the_request(monkeypatch, receiver)
    with pytest.raises(WorkerKilled):
        attempt(delivery)
    monkeypatch.undo()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))

    assert attempt(delivery) == "succeeded"  # before any sweep
    states = list(WebhookAttempt.objects.filter(delivery=delivery).values_list("state", flat=True))
    assert states == [AttemptState.WORKER_LOST, AttemptState.COMPLETED]


def test_a_live_attempt_is_never_closed_as_lost(receiver, enqueued, monkeypatch):
    """While the worker holds its lease, its `sending` attempt is left alone by the sweeper."""
    endpoint, _ = register(receiver.url("/hook"))
    delivery = WebhookDelivery.objects.get(event=publish(endpoint))
    seen: list[int] = []
    real = delivery_module.guarded_request

    def sweep_while_sending(*args, **kwargs):
        seen.append(services.webhook_attempts_close_lost())
        return real(*args, **kwargs)

    monkeypatch.setattr(delivery_module, "guarded_request", sweep_while_sending)
    assert attempt(delivery) == "succeeded"
    assert seen == [0]
    (recorded,) = WebhookAttempt.objects.filter(delivery=delivery)
    assert recorded.state == AttemptState.COMPLETED and recorded.status_code == 200


def test_an_attempt_row_exists_before_the_request_leaves(receiver, enqueued, monkeypatch):
    endpoint, _ = register(receiver.url("/hook"))
    delivery = WebhookDelivery.objects.get(event=publish(endpoint))
    during: list[list[str]] = []
    real = delivery_module.guarded_request

    def observe(*args, **kwargs):
        during.append(list(WebhookAttempt.objects.filter(delivery=delivery).values_list("state", flat=True)))
        return real(*args, **kwargs)

    monkeypatch.setattr(delivery_module, "guarded_request", observe)
    assert attempt(delivery) == "succeeded"
    assert during == [[AttemptState.SENDING]]


def test_a_delivery_that_keeps_killing_its_worker_ends_failed(receiver, enqueued, monkeypatch):
    """Lost attempts count against the retry policy: no endless crash loop."""
    endpoint, _ = register(receiver.url("/hook"))  # LoveRescue: 5 attempts
    delivery = WebhookDelivery.objects.get(event=publish(endpoint))
    crash_during_the_request(monkeypatch, receiver)
    for _ in range(5):
        with pytest.raises(WorkerKilled):
            attempt(delivery)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            claimed_until=timezone.now() - timedelta(seconds=1), next_attempt_at=timezone.now()
        )
    assert attempt(delivery) == "failed"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempt_count == 5
    assert WebhookAttempt.objects.filter(delivery=delivery, state=AttemptState.WORKER_LOST).count() == 5
    assert len(receiver.requests) == 5
