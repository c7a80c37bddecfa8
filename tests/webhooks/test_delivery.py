"""Delivery outcomes against a real receiver: retries, exhaustion, 410, Retry-After, redirects, the SSRF
guard at registration and at delivery, the sweeper, and auto-disable after days of failures."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from core.actors import Actor
from core.domain import Invalid
from messaging.models import OutboundMessage
from tests.servers import LocalServer, Reply, StaticResolver
from tests.webhooks.factories import attempt, make_due, publish, register
from webhooks import retry, services
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db


def fail(status=500, headers=None):
    return Reply(status, headers or {}, b"nope")


def test_publish_creates_one_delivery_per_subscribed_active_endpoint_and_enqueues_after_commit(
    receiver, enqueued, django_capture_on_commit_callbacks
):
    a, _ = register(receiver.url("/a"), events=["alert.created"], owner_id="p1")
    b, _ = register(receiver.url("/b"), events=["*"], owner_id="p2")
    c, _ = register(receiver.url("/c"), events=["milestone.achieved"], owner_id="p3")
    d, _ = register(receiver.url("/d"), events=["alert.created"], owner_id="p4")
    services.webhook_endpoint_disable(endpoint=d, actor=Actor(type="user", id="1"))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        event = services.webhook_event_publish(
            event_type="alert.created", payload={"x": 1}, endpoints=WebhookEndpoint.objects.all()
        )
        assert enqueued == []  # nothing before commit
    deliveries = WebhookDelivery.objects.filter(event=event)
    assert {x.endpoint_id for x in deliveries} == {a.pk, b.pk}
    assert len(callbacks) == 1
    assert sorted(i for i, _ in enqueued) == sorted(x.pk for x in deliveries)
    assert event.body == b'{"x":1}'
    assert services.webhook_event_publish(event_type="nobody.listens", payload={}, endpoints=[a, c, d]) is None


def test_publish_rolled_back_sends_nothing(receiver, enqueued, django_capture_on_commit_callbacks):
    endpoint, _ = register(receiver.url("/a"))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                publish(endpoint)
                raise RuntimeError("domain failure")
    assert callbacks == [] and enqueued == []
    assert not WebhookDelivery.objects.exists()


def test_receiver_down_then_up_is_delivered_by_a_retry(enqueued, django_capture_on_commit_callbacks):
    server = LocalServer().start()
    url = server.url("/hook")
    endpoint, _ = register(url)
    server.stop()  # down: connection refused
    delivery = WebhookDelivery.objects.get(event=publish(endpoint))

    with django_capture_on_commit_callbacks(execute=True):
        assert attempt(delivery) == "retry_scheduled"
    delivery.refresh_from_db()
    first = WebhookAttempt.objects.get(delivery=delivery)
    assert first.status_code is None and "failed" in first.error
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempt_count == 1
    assert delivery.next_attempt_at - delivery.last_attempt_at == pytest.approx(
        timedelta(minutes=1), abs=timedelta(seconds=2)
    )
    assert enqueued and enqueued[-1][0] == delivery.pk and 55 <= enqueued[-1][1] <= 60  # short delay: countdown
    endpoint.refresh_from_db()
    assert endpoint.failing_since == first.attempted_at
    assert attempt(delivery) == "skipped"  # not due yet

    with LocalServer() as up:  # the receiver is back (same URL: rebind the port)
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=up.url("/hook"))
        make_due(delivery)
        assert attempt(delivery) == "succeeded"
        assert len(up.requests) == 1
    delivery.refresh_from_db()
    endpoint.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempt_count == 2
    assert endpoint.failing_since is None
    assert attempt(delivery) == "skipped"  # a second run after a success finds nothing to do
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 2


def test_loverescue_five_failures_then_failed_within_24_hours(receiver, enqueued):
    receiver.state["default"] = fail(500)
    endpoint, _ = register(receiver.url("/hook"), scheme="loverescue")
    delivery = WebhookDelivery.objects.get(event=publish(endpoint))
    outcomes, planned = [], []
    for _ in range(5):
        make_due(delivery)
        outcomes.append(attempt(delivery))
        delivery.refresh_from_db()
        if delivery.next_attempt_at:
            planned.append(delivery.next_attempt_at - delivery.last_attempt_at)
    assert outcomes == ["retry_scheduled"] * 4 + ["failed"]
    assert delivery.status == DeliveryStatus.FAILED and delivery.next_attempt_at is None
    assert delivery.attempt_count == 5 and len(receiver.requests) == 5
    assert [round(p.total_seconds() / 60) for p in planned] == [1, 10, 100, 1000]
    assert sum(planned, timedelta()) < timedelta(hours=24)
    make_due(delivery)
    assert attempt(delivery) == "skipped"  # no sixth attempt
    assert len(receiver.requests) == 5


def test_410_disables_the_endpoint_notifies_the_owner_and_audits(receiver, enqueued):
    receiver.state["default"] = Reply(410, {}, b"gone")
    endpoint, _ = register(receiver.url("/hook"), notification_email="ops@partner.example")
    delivery = WebhookDelivery.objects.get(event=publish(endpoint))
    other = WebhookDelivery.objects.get(event=publish(endpoint))

    assert attempt(delivery) == "endpoint_disabled"
    endpoint.refresh_from_db()
    delivery.refresh_from_db()
    other.refresh_from_db()
    assert endpoint.is_active is False and endpoint.disabled_reason == "410 Gone"
    assert delivery.status == other.status == DeliveryStatus.FAILED
    message = OutboundMessage.objects.get(purpose="webhooks.endpoint_disabled")
    assert message.channel == "email" and message.recipient == "ops@partner.example"
    assert endpoint.public_id in message.body and "410 Gone" in message.body
    audit = AuditEvent.objects.get(action="webhooks.endpoint_disabled")
    assert audit.subject_id == endpoint.public_id and audit.metadata["reason"] == "gone"
    assert "ops@partner.example" not in str(audit.metadata)
    assert len(receiver.requests) == 1
    make_due(other)
    assert attempt(other) == "skipped"


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_is_honoured(receiver, enqueued, status):
    receiver.replies.append(Reply(status, {"Retry-After": "7200"}, b""))
    endpoint, _ = register(receiver.url("/hook"), scheme="mark", events=["*"])
    delivery = WebhookDelivery.objects.get(event=publish(endpoint))
    assert attempt(delivery) == "retry_scheduled"
    delivery.refresh_from_db()
    wait = delivery.next_attempt_at - delivery.last_attempt_at
    assert timedelta(hours=2) <= wait < timedelta(hours=2, seconds=5)  # not the policy's 5 s
    assert not enqueued  # two hours away: left to the sweeper, no ETA message
    make_due(delivery)
    assert attempt(delivery) == "succeeded"


def test_retry_after_http_date_is_honoured_and_capped(receiver, enqueued):
    in_ten_minutes = email.utils.format_datetime(datetime.now(UTC) + timedelta(minutes=10), usegmt=True)
    receiver.replies.append(Reply(429, {"Retry-After": in_ten_minutes}, b""))
    receiver.replies.append(Reply(429, {"Retry-After": str(10 * 86400)}, b""))
    endpoint, _ = register(receiver.url("/hook"), scheme="standard", events=["*"])
    delivery = WebhookDelivery.objects.get(event=publish(endpoint))
    attempt(delivery)
    delivery.refresh_from_db()
    assert timedelta(minutes=9) < delivery.next_attempt_at - delivery.last_attempt_at <= timedelta(minutes=10)
    make_due(delivery)
    attempt(delivery)
    delivery.refresh_from_db()
    assert delivery.next_attempt_at - delivery.last_attempt_at == pytest.approx(
        retry.RETRY_AFTER_CAP, abs=timedelta(seconds=5)
    )


def test_loverescue_retry_after_never_pushes_past_the_24_hour_window(receiver, enqueued):
    receiver.state["default"] = Reply(503, {"Retry-After": "21600"}, b"")
    endpoint, _ = register(receiver.url("/hook"), scheme="loverescue")
    delivery = WebhookDelivery.objects.get(event=publish(endpoint))
    attempt(delivery)
    delivery.refresh_from_db()
    first = delivery.first_attempt_at
    # Pretend the first attempt was 20 h ago: 6 h of Retry-After would land after the 24 h window.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(first_attempt_at=first - timedelta(hours=20))
    make_due(delivery)
    attempt(delivery)
    delivery.refresh_from_db()
    assert delivery.next_attempt_at <= delivery.first_attempt_at + timedelta(hours=24)


def test_3xx_is_a_failure_and_never_followed(enqueued):
    with LocalServer() as target:
        redirect = Reply(302, {"Location": target.url("/elsewhere")}, b"")
        with LocalServer(lambda request: redirect) as receiver:
            endpoint, _ = register(receiver.url("/hook"))
            delivery = WebhookDelivery.objects.get(event=publish(endpoint))
            assert attempt(delivery) == "retry_scheduled"
            assert len(receiver.requests) == 1
        assert target.requests == []
    recorded = WebhookAttempt.objects.get(delivery=delivery)
    assert recorded.status_code == 302 and "redirect" in recorded.error


def test_redirect_to_a_private_address_is_not_followed(enqueued):
    redirect = Reply(307, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"")
    with LocalServer(lambda request: redirect) as receiver:
        endpoint, _ = register(receiver.url("/hook"))
        delivery = WebhookDelivery.objects.get(event=publish(endpoint))
        assert attempt(delivery) == "retry_scheduled"
        assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempt_count == 1
    assert WebhookAttempt.objects.get(delivery=delivery).status_code == 307


@pytest.mark.parametrize("address", ["10.0.0.5", "169.254.169.254", "100.64.0.1", "::ffff:10.0.0.1"])
def test_registration_refuses_a_url_resolving_to_a_private_address(monkeypatch, address):
    monkeypatch.setattr(services, "RESOLVER", StaticResolver({"hooks.partner.test": address}))
    with pytest.raises(services.WebhookEndpointInvalid) as excinfo:
        register("http://hooks.partner.test/hook")
    assert excinfo.value.code == "url_refused" and "refused" in excinfo.value.message
    assert not WebhookEndpoint.objects.exists()


def test_registration_requires_https_by_default(settings):
    settings.WEBHOOK_REQUIRE_HTTPS = True
    with pytest.raises(services.WebhookEndpointInvalid) as excinfo:
        register("http://127.0.0.1:9/hook")
    assert excinfo.value.code == "https_required"
    # A domain error (no HTTP in the service); the LoveRescue register endpoint shows this text in its 400.
    assert isinstance(excinfo.value, Invalid)
    assert excinfo.value.message == "The webhook URL must use https."


def test_url_fine_at_registration_but_private_at_delivery_is_refused(receiver, enqueued, monkeypatch):
    resolver = StaticResolver({"hooks.partner.test": "127.0.0.1"})
    monkeypatch.setattr(services, "RESOLVER", resolver)
    endpoint, _ = register(receiver.url("/hook", host="hooks.partner.test"))
    resolver.mapping["hooks.partner.test"] = ["10.1.2.3"]  # DNS now points inside
    delivery = WebhookDelivery.objects.get(event=publish(endpoint))
    assert attempt(delivery) == "retry_scheduled"
    assert receiver.requests == []
    recorded = WebhookAttempt.objects.get(delivery=delivery)
    assert recorded.status_code is None and recorded.error.startswith("refused:")
    resolver.mapping["hooks.partner.test"] = ["127.0.0.1"]
    make_due(delivery)
    assert attempt(delivery) == "succeeded"
    assert receiver.requests[0].headers["Host"] == f"hooks.partner.test:{receiver.port}"


def test_a_dropped_broker_message_is_delivered_by_the_sweeper(receiver, enqueued, django_capture_on_commit_callbacks):
    endpoint, _ = register(receiver.url("/hook"))
    with django_capture_on_commit_callbacks(execute=True):
        event = publish(endpoint)
    delivery = WebhookDelivery.objects.get(event=event)
    enqueued.clear()  # the message was lost on its way to the broker
    assert services.webhook_deliveries_sweep()["enqueued"] == 0  # within the grace period: not yet
    result = services.webhook_deliveries_sweep(now=timezone.now() + timedelta(minutes=1))
    assert result["enqueued"] == 1 and enqueued == [(delivery.pk, None)]
    from webhooks.tasks import deliver_webhook

    assert deliver_webhook.run(enqueued[0][0]) == "succeeded"  # what the worker runs for that message
    assert len(receiver.requests) == 1
    assert services.webhook_deliveries_sweep(now=timezone.now() + timedelta(minutes=5))["enqueued"] == 0


def test_sweep_task_is_wired(receiver, enqueued, monkeypatch):
    from webhooks import tasks

    calls = []
    monkeypatch.setattr(services, "webhook_deliveries_sweep", lambda: calls.append(1) or {"enqueued": 0})
    tasks.sweep_due_webhook_deliveries.run()
    assert calls == [1]


def test_failing_for_five_days_disables_notifies_and_audits(receiver, enqueued, settings):
    receiver.state["default"] = fail(500)
    endpoint, _ = register(
        receiver.url("/hook"), scheme="standard", events=["*"], notification_email="owner@partner.example"
    )
    first = WebhookDelivery.objects.get(event=publish(endpoint))
    assert attempt(first) == "retry_scheduled"
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None

    # Four days on: still failing, not yet disabled.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(days=4))
    make_due(first)
    assert attempt(first) == "retry_scheduled"
    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.failing_since < timezone.now() - timedelta(days=3)  # not reset

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(days=5, hours=1))
    make_due(first)
    assert attempt(first) == "endpoint_disabled"
    endpoint.refresh_from_db()
    assert not endpoint.is_active and endpoint.disabled_reason.startswith("failing continuously since")
    first.refresh_from_db()
    assert first.status == DeliveryStatus.FAILED
    assert OutboundMessage.objects.get(purpose="webhooks.endpoint_disabled").recipient == "owner@partner.example"
    assert AuditEvent.objects.get(action="webhooks.endpoint_disabled").metadata["reason"] == "failing"


def test_a_success_in_between_resets_failing_since(receiver, enqueued):
    receiver.replies.extend([fail(500), Reply(200, {}, b"ok"), fail(500)])
    endpoint, _ = register(receiver.url("/hook"), scheme="standard", events=["*"])
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(days=4))
    attempt(WebhookDelivery.objects.get(event=publish(endpoint)))  # fails: failing_since kept (4 days)
    endpoint.refresh_from_db()
    assert endpoint.failing_since < timezone.now() - timedelta(days=3)
    attempt(WebhookDelivery.objects.get(event=publish(endpoint)))  # succeeds
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None
    attempt(WebhookDelivery.objects.get(event=publish(endpoint)))  # fails again: the clock restarts now
    endpoint.refresh_from_db()
    assert endpoint.failing_since > timezone.now() - timedelta(minutes=1)
    # Two days later the sweeper's rule does not disable it (the 4 days before the success do not count).
    assert services.webhook_endpoints_disable_failing(now=timezone.now() + timedelta(days=2)) == 0
    assert services.webhook_endpoints_disable_failing(now=timezone.now() + timedelta(days=5, minutes=1)) == 1
    endpoint.refresh_from_db()
    assert not endpoint.is_active


def test_response_excerpt_is_capped_at_2048_bytes(receiver, enqueued):
    receiver.replies.append(Reply(500, {}, ("é" * 3000).encode() + b"\x00\xff"))
    endpoint, _ = register(receiver.url("/hook"))
    attempt(WebhookDelivery.objects.get(event=publish(endpoint)))
    excerpt = WebhookAttempt.objects.get().response_excerpt
    assert 2046 <= len(excerpt.encode()) <= 2048 and set(excerpt) == {"é"}


def test_replace_existing_cancels_the_old_endpoints_pending_deliveries(receiver, enqueued):
    old, _ = register(receiver.url("/old"))
    pending = WebhookDelivery.objects.get(event=publish(old))
    new, secret = register(receiver.url("/new"), replace_existing=True)
    old.refresh_from_db()
    pending.refresh_from_db()
    assert not old.is_active and pending.status == DeliveryStatus.CANCELLED
    assert new.is_active and secret
    assert AuditEvent.objects.filter(action="webhooks.endpoint_replaced", subject_id=old.public_id).exists()
    assert attempt(pending) == "skipped"


def test_redeliver_and_recover(receiver, enqueued, django_capture_on_commit_callbacks):
    receiver.state["default"] = Reply(400, {}, b"bad")
    endpoint, _ = register(receiver.url("/hook"), scheme="loverescue")
    deliveries = [WebhookDelivery.objects.get(event=publish(endpoint)) for _ in range(3)]
    for delivery in deliveries:
        for _ in range(5):
            make_due(delivery)
            attempt(delivery)
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.FAILED}
    receiver.state["default"] = Reply(204, {}, b"")

    with django_capture_on_commit_callbacks(execute=True):
        assert (
            services.webhook_deliveries_redeliver(delivery_ids=[deliveries[0].pk], actor=Actor(type="user", id="7"))
            == 1
        )
    assert enqueued[-1] == (deliveries[0].pk, None)
    assert attempt(deliveries[0]) == "succeeded"

    assert (
        services.webhook_endpoint_recover(
            endpoint=endpoint, since=timezone.now() - timedelta(hours=1), actor=Actor(type="user", id="7")
        )
        == 2
    )
    for delivery in deliveries[1:]:
        assert attempt(delivery) == "succeeded"
    assert AuditEvent.objects.filter(action="webhooks.endpoint_recovered").get().metadata["count"] == 2
    services.webhook_endpoint_disable(endpoint=endpoint, actor=Actor(type="user", id="7"))
    with pytest.raises(services.WebhookEndpointInvalid):
        services.webhook_endpoint_recover(endpoint=endpoint, since=timezone.now(), actor=Actor(type="user", id="7"))
    assert (
        services.webhook_deliveries_redeliver(delivery_ids=[d.pk for d in deliveries], actor=Actor(type="user", id="7"))
        == 0
    )
