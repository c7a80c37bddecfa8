"""Gate: a broker message is lost (the queued message deleted from Redis before any worker took it); the
sweepers recover the work from the outbox rows (DESIGN.md, "Background work"). A webhook delivery and an
SMS, each sent exactly once.

A private Redis broker and a real worker on this test's PostgreSQL database. The sweepers run here as beat
would, with the clock they are given (`now=`) a little past their grace, instead of waiting for it."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
from django.utils import timezone

from core.actors import Actor
from messaging.models import OutboundMessage
from messaging.services import message_queue, messages_sweep
from tests.conftest import skip_or_fail
from tests.faults.worker_harness import environment, producer, route_enqueues_to, wait_until, workers
from tests.servers import LocalServer
from tests.workers import RedisServer
from webhooks import services
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery

pytestmark = [pytest.mark.worker, pytest.mark.redis, pytest.mark.postgres]

ACTOR = Actor.system("tests.faults")
PAST_THE_GRACE = timedelta(seconds=31)  # both outboxes leave a just-due row alone for 30 s


@pytest.fixture
def broker(tmp_path, require_postgres, transactional_db):
    if not shutil.which("redis-server"):
        skip_or_fail("needs redis-server on PATH to run a private Redis (apt-get install redis-server)")
    with RedisServer(tmp_path / "redis") as server:
        yield server


def test_the_sweepers_recover_lost_broker_messages(broker, tmp_path, monkeypatch, settings):
    settings.WEBHOOK_REQUIRE_HTTPS = False
    app = producer(broker.url)
    route_enqueues_to(app, monkeypatch)
    client = broker.client()
    env = environment(tmp_path, broker.url, MESSAGING_BACKEND="console")
    with LocalServer() as receiver, workers(env, tmp_path) as start:
        endpoint = services.webhook_endpoint_register(
            url=receiver.url("/hook"), events=["*"], scheme="standard", owner_type="organization",
            owner_id="org-1", actor=ACTOR,
        )[0]  # fmt: skip
        # No worker yet: both prompts wait in the broker...
        event = services.webhook_event_publish(event_type="alert.created", payload={"id": 7}, endpoints=[endpoint])
        message = message_queue(channel="sms", recipient="+447911123456", body="Your session is confirmed",
                                purpose="tests.faults", actor=ACTOR)  # fmt: skip
        delivery = WebhookDelivery.objects.get(event=event)
        assert client.llen("webhooks") == 1 and client.llen("messaging") == 1
        # ... and are lost.
        assert client.delete("webhooks", "messaging") == 2

        worker = start()
        assert services.webhook_deliveries_sweep()["enqueued"] == 0  # within the grace: left alone
        assert messages_sweep() == 0
        assert WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.PENDING
        assert OutboundMessage.objects.get(pk=message.pk).status == "queued"

        later = timezone.now() + PAST_THE_GRACE  # beat's next sweeps
        assert services.webhook_deliveries_sweep(now=later)["enqueued"] == 1
        assert messages_sweep(now=later) == 1
        wait_until(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status != DeliveryStatus.PENDING, 30,
                   "the recovered delivery", worker)  # fmt: skip
        wait_until(lambda: OutboundMessage.objects.get(pk=message.pk).status != "queued", 30,
                   "the recovered message", worker)  # fmt: skip

        # Recovered once: further sweeps find nothing.
        assert services.webhook_deliveries_sweep(now=later)["enqueued"] == 0
        assert messages_sweep(now=later) == 0

    assert WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED
    assert len(receiver.requests) == WebhookAttempt.objects.filter(delivery=delivery).count() == 1
    message.refresh_from_db()
    assert message.status == "sent" and message.attempts == 1 and message.provider == "console"
