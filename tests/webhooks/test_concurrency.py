"""One delivery attempted twice at once sends once; after a success nothing is sent again."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.servers import LocalServer, Reply
from tests.webhooks.factories import attempt, publish, register
from webhooks import services
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery


@pytest.mark.django_db
def test_a_live_lease_blocks_a_second_run_and_an_expired_one_does_not(receiver, enqueued):
    endpoint, _ = register(receiver.url("/hook"))
    delivery = WebhookDelivery.objects.get(event=publish(endpoint))
    WebhookDelivery.objects.filter(pk=delivery.pk).update(claimed_until=timezone.now() + timedelta(minutes=1))
    assert attempt(delivery) == "skipped"
    assert receiver.requests == []
    # The holder died: once its lease has expired another run takes the delivery over.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert attempt(delivery) == "succeeded"
    assert attempt(delivery) == "skipped"
    assert len(receiver.requests) == 1


@pytest.mark.django_db
def test_the_lease_outlasts_the_longest_attempt(settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 10
    assert services.delivery_lease() > timedelta(seconds=10 * 3)  # guarded_request's deadline


@pytest.mark.postgres
def test_two_simultaneous_runs_send_once(transactional_db, require_postgres, enqueued):
    slow = Reply(200, {}, b"ok", delay=0.5)
    with LocalServer(lambda request: slow) as receiver:
        endpoint, _ = register(receiver.url("/hook"))
        delivery = WebhookDelivery.objects.get(event=publish(endpoint))
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def run() -> None:
            try:
                barrier.wait()
                outcomes.append(services.webhook_delivery_attempt(delivery_id=delivery.pk))
            finally:
                connection.close()

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(outcomes) == ["skipped", "succeeded"]
        assert len(receiver.requests) == 1
        # And a third run after the success finds nothing to do.
        assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "skipped"
        assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempt_count == 1
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 1
