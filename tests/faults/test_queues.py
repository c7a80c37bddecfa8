"""Issue 10, finding 11: separate queues, each consumed by its own worker, so a partner endpoint that hangs
can never delay a crisis notification.

- every task has an explicit route (a new task without one fails here), every route names a task, and every
  queue has a worker in Procfile.dev (`make run`), in docker-compose.yml and in docs/operations.md's table;
- a message whose purpose is urgent is routed to `critical`, any other to `messaging`;
- with real workers on a private redis-server (tests/workers.py): while a webhook receiver hangs and holds
  the `webhooks` worker, a crisis SMS queued meanwhile, published through the app's own routing, is sent by
  the `critical` worker within CRISIS_BOUND seconds. Before the routes, every task went to one queue, and
  the SMS waited behind the hanging delivery (10-20 s in the review).
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from pathlib import Path

import pytest
import yaml
from django.conf import settings as django_settings
from django.db import transaction

from config.celery import app
from core.actors import Actor
from messaging.models import OutboundMessage
from messaging.services import message_queue
from tests.conftest import skip_or_fail
from tests.servers import LocalServer, Recorded, Reply
from tests.webhooks.factories import register
from tests.workers import RedisServer, celery_worker, test_database_url, worker_environment
from webhooks import services as webhook_services
from webhooks.models import DeliveryStatus, WebhookDelivery

ROOT = Path(__file__).resolve().parents[2]
URGENT_PURPOSE = "integration.alert_critical"
PHONE = "+447911123456"
HANG = 5.0  # seconds the partner endpoint takes to answer (below WEBHOOK_TIMEOUT_SECONDS: it does answer)
CRISIS_BOUND = 2.0  # seconds from the commit that queues a crisis SMS to its row being sent
QUEUE_RE = re.compile(r"\s-Q\s+(\S+)")


def static_routes() -> dict[str, dict]:
    (router, routes) = django_settings.CELERY_TASK_ROUTES
    assert router == "config.celery.route_urgent_messages"
    return routes


def platform_task_names() -> set[str]:
    app.loader.import_default_modules()  # every installed app's tasks.py, as a worker loads them
    return {name for name in app.tasks if not name.startswith("celery.")}


def unrouted(task_names: set[str], routes: dict) -> list[str]:
    return sorted(name for name in task_names if name not in routes)


def consumed_queues(commands: list[str]) -> set[str]:
    queues = set()
    for command in commands:
        for match in QUEUE_RE.finditer(command):
            queues.update(match.group(1).split(","))
    return queues


def routed_queue(name: str, args=()) -> str:
    return app.amqp.router.route({}, name, args, {})["queue"].name


# --- Routes ------------------------------------------------------------------------------------------


def test_the_route_check_can_fail():
    assert unrouted({"a.tasks.one", "a.tasks.new"}, {"a.tasks.one": {"queue": "default"}}) == ["a.tasks.new"]
    assert consumed_queues(["celery -A config worker -Q critical,messaging -c 1"]) == {"critical", "messaging"}


def test_every_task_has_an_explicit_route_and_every_route_a_task():
    names = platform_task_names()
    routes = static_routes()
    assert "messaging.tasks.send_message" in names and "core.tasks.ping" in names  # the registry is loaded
    assert unrouted(names, routes) == [], "route every new task in CELERY_TASK_ROUTES (config/settings.py)"
    assert sorted(set(routes) - names) == [], "a route names no task (renamed or removed?)"
    assert django_settings.CELERY_TASK_DEFAULT_QUEUE == "default"


def test_every_queue_has_a_worker_in_make_run_compose_and_the_guide():
    queues = {route["queue"] for route in static_routes().values()} | {"critical", "default"}
    assert queues == {"critical", "messaging", "webhooks", "default", "batch", "sync"}

    procfile = [line.split(":", 1)[1] for line in (ROOT / "Procfile.dev").read_text().splitlines()
                if line.strip() and not line.startswith("#")]  # fmt: skip
    assert consumed_queues(procfile) == queues
    for command in procfile:  # one queue per worker: its slots are its own
        assert len(consumed_queues([command])) <= 1, command

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    compose = [service["command"] for service in services.values()
               if "celery -A config worker" in str(service.get("command", ""))]  # fmt: skip
    assert consumed_queues(compose) == queues
    for command in compose:
        assert len(consumed_queues([command])) == 1, command

    guide = (ROOT / "docs" / "operations.md").read_text()
    for queue in queues:
        assert re.search(rf"^\| `{queue}` \|", guide, re.MULTILINE), f"docs/operations.md's queue table lacks {queue}"


def test_static_routes_reach_their_queues():
    assert routed_queue("webhooks.tasks.deliver_webhook", (1,)) == "webhooks"
    assert routed_queue("webhooks.tasks.sweep_due_webhook_deliveries") == "default"
    assert routed_queue("messaging.tasks.sweep_queued_messages") == "critical"
    assert routed_queue("leads.tasks.process_partner_payments") == "batch"
    assert routed_queue("sync.tasks.sync_run_chunk", (1,)) == "sync"
    assert routed_queue("a.task.nobody.routed") == "default"


def test_urgent_messages_go_to_critical_the_rest_to_messaging(db):
    actor = Actor.system("test")
    crisis = message_queue(channel="sms", recipient=PHONE, body="crisis", purpose=URGENT_PURPOSE, actor=actor)
    welcome = message_queue(channel="sms", recipient=PHONE, body="welcome", purpose="careos.welcome", actor=actor)
    assert routed_queue("messaging.tasks.send_message", (crisis.pk,)) == "critical"
    assert routed_queue("messaging.tasks.send_message", (welcome.pk,)) == "messaging"
    assert routed_queue("messaging.tasks.send_message", (welcome.pk + crisis.pk + 1000,)) == "messaging"  # no row


def routed_with(options: dict, name: str, args=()) -> str:
    return app.amqp.router.route(dict(options), name, args, {})["queue"].name


def test_a_publish_that_says_its_urgency_is_routed_by_it_without_reading_the_row(db, django_assert_num_queries):
    """Issue 15: the header the publisher sets (messaging.tasks.URGENT_HEADER) decides, with no query; the row's
    purpose would say the opposite here, so a router that still read it would fail."""
    from messaging.tasks import URGENT_HEADER

    actor = Actor.system("test")
    crisis = message_queue(channel="sms", recipient=PHONE, body="crisis", purpose=URGENT_PURPOSE, actor=actor)
    welcome = message_queue(channel="sms", recipient=PHONE, body="welcome", purpose="careos.welcome", actor=actor)
    with django_assert_num_queries(0):
        assert routed_with({"headers": {URGENT_HEADER: True}}, "messaging.tasks.send_message", (welcome.pk,)) == (
            "critical"
        )
        assert routed_with({"headers": {URGENT_HEADER: False}}, "messaging.tasks.send_message", (crisis.pk,)) == (
            "messaging"
        )
    # Without the header (the sweeper, a retry) the row decides, as before.
    with django_assert_num_queries(1):
        assert routed_with({"headers": {"other": 1}}, "messaging.tasks.send_message", (crisis.pk,)) == "critical"


@pytest.mark.parametrize(("purpose", "queue"), [(URGENT_PURPOSE, "critical"), ("careos.welcome", "messaging")])
def test_the_after_commit_publish_says_its_urgency(
    db, monkeypatch, django_capture_on_commit_callbacks, django_assert_num_queries, purpose, queue
):
    """message_queue's after-commit publish carries the header, so routing it reads nothing."""
    from messaging import tasks

    published = []
    monkeypatch.setattr(tasks.send_message, "apply_async", lambda args, **options: published.append((args, options)))
    with django_capture_on_commit_callbacks(execute=True):
        message = message_queue(channel="sms", recipient=PHONE, body="hi", purpose=purpose, actor=Actor.system("t"))
    [(args, options)] = published
    assert args == (message.pk,)
    with django_assert_num_queries(0):
        assert routed_with({k: v for k, v in options.items() if v is not None}, tasks.send_message.name, args) == queue


def test_a_message_whose_purpose_cannot_be_read_goes_to_critical(db, monkeypatch):
    def unreachable(*args, **kwargs):
        raise ConnectionError("database down")

    monkeypatch.setattr(OutboundMessage.objects, "filter", unreachable)
    assert routed_queue("messaging.tasks.send_message", (1,)) == "critical"


# --- A hanging partner endpoint and a crisis SMS, with real workers --------------------------------------


@pytest.fixture
def private_broker(tmp_path, monkeypatch):
    """A private redis-server, and this process's Celery app publishing to it (its own routes, its own
    producer pool), so nothing reaches the Redis other tests use."""
    if not shutil.which("redis-server"):
        skip_or_fail("needs redis-server on PATH to run a private Redis (apt-get install redis-server)")
    with RedisServer(tmp_path / "redis") as server:
        monkeypatch.setattr(app.conf, "broker_url", server.url)
        monkeypatch.setattr(app, "_pool", None)
        monkeypatch.setattr(app.amqp, "_producer_pool", None)
        try:
            yield server
        finally:
            if app._pool is not None:
                app._pool.force_close_all()


def wait_for(condition, timeout: float, what: str, workers: dict) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for name, (worker, log_path) in workers.items():
            if worker.poll() is not None:
                pytest.fail(f"{name} worker exited with {worker.returncode}:\n{log_path.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {name}\n{log.read_text(errors='replace')[-3000:]}" for name, (_, log) in
                             workers.items())  # fmt: skip
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        time.sleep(0.05)


@pytest.mark.redis
def test_the_outboxes_publish_to_the_routed_queues(db, private_broker):
    """What the sweepers and the after-commit hooks call (core.outbox `enqueue`) lands in the right Redis list."""
    from messaging.outbox import MESSAGES
    from webhooks.services.outbox import DELIVERIES

    actor = Actor.system("test")
    crisis = message_queue(channel="sms", recipient=PHONE, body="crisis", purpose=URGENT_PURPOSE, actor=actor)
    welcome = message_queue(channel="email", recipient="a@example.org", body="hi", purpose="careos.welcome",
                            actor=actor)  # fmt: skip
    MESSAGES.enqueue(crisis.pk)
    MESSAGES.enqueue(welcome.pk)
    DELIVERIES.enqueue(12345)
    client = private_broker.client()
    try:
        lengths = {queue: client.llen(queue) for queue in ("critical", "messaging", "webhooks", "default")}
    finally:
        client.close()
    assert lengths == {"critical": 1, "messaging": 1, "webhooks": 1, "default": 0}


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.worker
def test_a_hanging_partner_endpoint_does_not_delay_a_crisis_sms(
    transactional_db, require_postgres, private_broker, tmp_path, settings, monkeypatch
):
    settings.WEBHOOK_REQUIRE_HTTPS = False  # the receiver is http://127.0.0.1:port
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    monkeypatch.setattr(webhook_services, "RESOLVER", None)
    received_at: list[float] = []

    def hanging_partner(request: Recorded) -> Reply:
        received_at.append(time.monotonic())
        return Reply(200, {"Content-Type": "text/plain"}, b"ok", delay=HANG)

    env = worker_environment(
        tmp_path,
        DATABASE_URL=test_database_url(),
        CELERY_BROKER_URL=private_broker.url,
        REDIS_URL=private_broker.url,
        OUTBOUND_ALLOW_LOOPBACK="true",
        WEBHOOK_REQUIRE_HTTPS="false",
        MESSAGING_BACKEND="console",
    )
    tag = uuid.uuid4().hex[:6]
    hooks_log, crit_log = tmp_path / "webhooks.log", tmp_path / "critical.log"
    with LocalServer(hanging_partner) as receiver, \
            celery_worker(env, hooks_log, "webhooks", loglevel="info", name=f"webhooks-{tag}") as hooks, \
            celery_worker(env, crit_log, "critical", loglevel="info", name=f"critical-{tag}") as crit:  # fmt: skip
        workers = {"webhooks": (hooks, hooks_log), "critical": (crit, crit_log)}
        wait_for(lambda: all("ready." in log.read_text(errors="replace") for _, log in workers.values()), 60,
                 "the workers to start", workers)  # fmt: skip

        endpoint, _secret = register(receiver.url("/hook"))
        with transaction.atomic():
            event = webhook_services.webhook_event_publish(
                event_type="alert.created", payload={"alertId": "slow"}, endpoints=[endpoint]
            )
        delivery = WebhookDelivery.objects.get(event=event)
        wait_for(lambda: received_at, 20, "the partner endpoint to be called", workers)  # the worker is stuck in it

        with transaction.atomic():
            message = message_queue(
                channel="sms", recipient=PHONE, body="LoveRescue: 1 critical alert", purpose=URGENT_PURPOSE,
                actor=Actor.system("test"),
            )  # fmt: skip
        committed = time.monotonic()

        def sent() -> bool:
            return OutboundMessage.objects.filter(pk=message.pk, status=OutboundMessage.Status.SENT).exists()

        wait_for(sent, HANG + 10, "the crisis SMS to be sent", workers)
        elapsed = time.monotonic() - committed
        still_hanging = time.monotonic() < received_at[0] + HANG
        delivery.refresh_from_db()

        assert elapsed < CRISIS_BOUND, f"crisis SMS took {elapsed:.2f}s"
        assert still_hanging and delivery.status == DeliveryStatus.PENDING  # sent while the partner still hung
        assert "messaging.tasks.send_message[" in crit_log.read_text(errors="replace")  # run by the critical worker
        assert "messaging.tasks.send_message[" not in hooks_log.read_text(errors="replace")
        print(f"crisis SMS sent {elapsed:.3f}s after commit while the partner endpoint hung (bound {CRISIS_BOUND}s)")
