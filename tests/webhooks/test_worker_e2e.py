"""End to end with a real Celery worker process and Redis: publish -> the worker claims the delivery ->
the receiver gets a signed POST -> the delivery row is succeeded. The worker uses this test's PostgreSQL
database (rows are committed: transactional_db) and a queue of its own."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from celery import Celery
from standardwebhooks import Webhook

from tests.servers import LocalServer
from tests.webhooks.factories import hex_hmac, register
from tests.workers import celery_worker, test_database_url
from webhooks import services
from webhooks.models import DeliveryStatus, WebhookDelivery
from webhooks.signing import standard_webhooks_secret

pytestmark = [pytest.mark.worker, pytest.mark.redis, pytest.mark.postgres]

TIMEOUT = 30.0


def test_publish_is_delivered_by_a_real_worker(transactional_db, require_postgres, redis_url, tmp_path, monkeypatch):
    import redis

    queue = f"webhooks-e2e-{uuid.uuid4().hex}"
    producer = Celery("webhooks-e2e-producer", broker=redis_url, set_as_current=False)
    monkeypatch.setattr(
        services,
        "_enqueue",
        lambda delivery_id, countdown=None: producer.send_task(
            "webhooks.tasks.deliver_webhook", args=[delivery_id], queue=queue, countdown=countdown
        ),
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        APP_ENV="test",
        OUTBOUND_ALLOW_LOOPBACK="true",
        DATABASE_URL=test_database_url(),
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        CELERY_BROKER_DIR=str(tmp_path / "broker"),
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "worker.log"
    client = redis.Redis.from_url(redis_url)
    with LocalServer() as receiver:
        endpoint, secret = register(receiver.url("/hook"), scheme="loverescue")
        try:
            with celery_worker(env, log_path, queue, loglevel="info", name="webhooks-e2e") as worker:
                event = services.webhook_event_publish(
                    event_type="alert.created", payload={"alertId": "e2e"}, endpoints=[endpoint]
                )
                delivery = WebhookDelivery.objects.get(event=event)
                deadline = time.monotonic() + TIMEOUT
                while time.monotonic() < deadline:
                    delivery.refresh_from_db()
                    if delivery.status != DeliveryStatus.PENDING:
                        break
                    if worker.poll() is not None:
                        pytest.fail(f"worker exited with {worker.returncode}:\n{log_path.read_text(errors='replace')}")
                    time.sleep(0.2)
        finally:
            producer.close()
            client.delete(queue, f"_kombu.binding.{queue}")
            client.close()
    assert delivery.status == DeliveryStatus.SUCCEEDED, log_path.read_text(errors="replace")
    (request,) = receiver.requests
    assert request.body == event.body
    assert request.headers["X-LoveRescue-Signature"] == hex_hmac(secret, request.body)
    assert Webhook(standard_webhooks_secret(secret)).verify(request.body, dict(request.headers.items())) == {
        "alertId": "e2e"
    }
    assert "deliver_webhook" in log_path.read_text(errors="replace")  # run by the worker process
