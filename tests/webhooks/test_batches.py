"""Batches (issue 15): a delivery task claims a batch of its endpoint's due deliveries, sends them in groups
over one keep-alive connection, and records each POST before and after it. A batch claimed by one run is
never claimed by another; a crash mid-batch leaves the rest to the sweeper; a batch out of time releases
what it did not send."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.servers import LocalServer, Reply
from tests.webhooks.factories import publish, register
from webhooks import services
from webhooks.models import AttemptState, DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.services import delivery as delivery_module
from webhooks.services.outbox import claim_batch, claim_one


class WorkerKilled(BaseException):
    """Stands for the process dying: not an Exception, so no handler in the service catches it."""


def published(endpoint, count: int) -> list[int]:
    return [WebhookDelivery.objects.get(event=publish(endpoint)).pk for _ in range(count)]


@pytest.mark.django_db
def test_a_batch_sends_its_endpoints_due_deliveries_over_one_connection(receiver, enqueued):
    endpoint, _ = register(receiver.url("/hook"))
    ids = published(endpoint, 5)
    outcomes = services.webhook_deliveries_attempt(delivery_id=ids[2], limit=10)
    # The message's own delivery first, then the oldest due.
    assert list(outcomes.items()) == [(pk, "succeeded") for pk in [ids[2], ids[0], ids[1], ids[3], ids[4]]]
    assert len(receiver.requests) == 5
    assert len({request.client_address for request in receiver.requests}) == 1  # one keep-alive connection
    assert set(WebhookDelivery.objects.values_list("status", "attempt_count", "claimed_until")) == {
        (DeliveryStatus.SUCCEEDED, 1, None)
    }
    assert set(WebhookAttempt.objects.values_list("state", "status_code")) == {(AttemptState.COMPLETED, 200)}
    # Every later message of that endpoint finds nothing to do.
    assert services.webhook_deliveries_attempt(delivery_id=ids[4], limit=10) == {}
    assert len(receiver.requests) == 5


@pytest.mark.django_db
def test_a_claimed_batch_is_not_claimed_by_another_run():
    endpoint, _ = register("http://127.0.0.1:9/hook")
    other, _ = register("http://127.0.0.1:9/other", owner_id="partner-2")
    ids = published(endpoint, 4)
    elsewhere = published(other, 1)
    now = timezone.now()
    token, first = claim_batch(endpoint.pk, limit=2, now=now, first=ids[0])
    assert first == ids[:2] and token > now
    # A run asking for a delivery the first run holds takes the endpoint's remaining work, never the held rows
    # nor another endpoint's.
    _, second = claim_batch(endpoint.pk, limit=10, now=now, first=ids[1])
    assert second == ids[2:]
    assert claim_batch(endpoint.pk, limit=10, now=now, first=ids[0]) is None
    assert claim_one(ids[3], now=now) is None
    assert set(WebhookDelivery.objects.filter(pk__in=ids).values_list("claimed_until", flat=True)) != {None}
    assert WebhookDelivery.objects.get(pk=elsewhere[0]).claimed_until is None


@pytest.mark.postgres
def test_two_runs_at_once_split_an_endpoints_deliveries(transactional_db, require_postgres, enqueued):
    slow = Reply(200, {}, b"ok", delay=0.01)
    with LocalServer(lambda request: slow) as receiver:
        endpoint, _ = register(receiver.url("/hook"))
        ids = published(endpoint, 40)
        barrier = threading.Barrier(2)
        outcomes: list[dict[int, str]] = []

        def run(delivery_id: int) -> None:
            try:
                barrier.wait()
                outcomes.append(services.webhook_deliveries_attempt(delivery_id=delivery_id, limit=25))
            finally:
                connection.close()

        threads = [threading.Thread(target=run, args=(pk,)) for pk in (ids[0], ids[1])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert len(outcomes) == 2
    first, second = (set(result) for result in outcomes)
    assert not first & second  # no delivery in both batches
    sent = [request.headers["webhook-id"] for request in receiver.requests]
    assert len(sent) == len(set(sent)) == len(first | second)  # each claimed delivery POSTed once
    assert set(WebhookAttempt.objects.values_list("state", flat=True)) == {AttemptState.COMPLETED}
    assert WebhookAttempt.objects.count() == len(sent)


@pytest.mark.django_db
def test_a_crash_mid_batch_leaves_the_rest_to_the_sweeper(receiver, enqueued, monkeypatch):
    monkeypatch.setattr(delivery_module, "GROUP_SIZE", 2)
    endpoint, _ = register(receiver.url("/hook"))
    ids = published(endpoint, 4)
    real = delivery_module.guarded_request
    calls = []

    def second_post_kills_the_worker(*args, **kwargs):
        response = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            raise WorkerKilled
        return response

    monkeypatch.setattr(delivery_module, "guarded_request", second_post_kills_the_worker)
    with pytest.raises(WorkerKilled):
        services.webhook_deliveries_attempt(delivery_id=ids[0], limit=10)
    monkeypatch.setattr(delivery_module, "guarded_request", real)
    # The first group's two POSTs are in the history; the rest were claimed but never started.
    assert list(WebhookAttempt.objects.order_by("pk").values_list("delivery_id", "state")) == [
        (ids[0], AttemptState.SENDING),
        (ids[1], AttemptState.SENDING),
    ]
    assert len(receiver.requests) == 2
    # While the dead worker's lease lasts nobody takes them, the sweeper included.
    assert services.webhook_deliveries_attempt(delivery_id=ids[3], limit=10) == {}
    assert services.webhook_deliveries_sweep()["enqueued"] == 0

    expired = timezone.now() + services.delivery_lease() + timedelta(seconds=1)
    result = services.webhook_deliveries_sweep(now=expired)
    assert result["attempts_lost"] == 2
    assert result["enqueued"] == 4 and enqueued == [(ids[0], None)]  # one message wakes their endpoint

    WebhookDelivery.objects.filter(pk__in=ids).update(claimed_until=None)  # the sweep's "now" was ahead
    outcomes = services.webhook_deliveries_attempt(delivery_id=ids[0], limit=10)
    assert outcomes == dict.fromkeys(ids, "succeeded")
    history = {pk: list(WebhookAttempt.objects.filter(delivery_id=pk).values_list("state", flat=True)) for pk in ids}
    lost_then_sent = [AttemptState.WORKER_LOST, AttemptState.COMPLETED]
    assert history == {ids[0]: lost_then_sent, ids[1]: lost_then_sent, ids[2]: ["completed"], ids[3]: ["completed"]}
    assert len(receiver.requests) == 6  # every POST the receiver had is in the history


@pytest.mark.django_db
def test_a_batch_out_of_time_releases_what_it_did_not_send(receiver, enqueued, settings):
    settings.WEBHOOK_BATCH_SECONDS = 0  # only the batch's first request may start
    endpoint, _ = register(receiver.url("/hook"))
    ids = published(endpoint, 3)
    enqueued.clear()
    assert services.webhook_deliveries_attempt(delivery_id=ids[0], limit=10) == {ids[0]: "succeeded"}
    assert len(receiver.requests) == 1
    # The attempts written for the unsent requests are gone; their deliveries are free and prompted once.
    assert list(WebhookAttempt.objects.values_list("delivery_id", flat=True)) == [ids[0]]
    rest = WebhookDelivery.objects.filter(pk__in=ids[1:])
    assert set(rest.values_list("status", "claimed_until", "attempt_count")) == {(DeliveryStatus.PENDING, None, 0)}
    assert enqueued == [(ids[1], None)]


@pytest.mark.django_db
def test_a_delivery_cancelled_during_a_batch_is_not_sent(receiver, enqueued, monkeypatch):
    monkeypatch.setattr(delivery_module, "GROUP_SIZE", 1)
    endpoint, _ = register(receiver.url("/hook"))
    ids = published(endpoint, 2)
    real = delivery_module.guarded_request

    def cancel_the_next(*args, **kwargs):
        WebhookDelivery.objects.filter(pk=ids[1]).update(status=DeliveryStatus.CANCELLED, claimed_until=None)
        return real(*args, **kwargs)

    monkeypatch.setattr(delivery_module, "guarded_request", cancel_the_next)
    assert services.webhook_deliveries_attempt(delivery_id=ids[0], limit=10) == {
        ids[0]: "succeeded",
        ids[1]: "skipped",
    }
    assert len(receiver.requests) == 1
    assert not WebhookAttempt.objects.filter(delivery_id=ids[1]).exists()


@pytest.mark.django_db
def test_410_stops_the_batch_and_fails_the_rest(receiver, enqueued):
    receiver.replies.append(Reply(410, {}, b"gone"))
    endpoint, _ = register(receiver.url("/hook"))
    ids = published(endpoint, 3)
    outcomes = services.webhook_deliveries_attempt(delivery_id=ids[0], limit=10)
    assert outcomes == {ids[0]: "endpoint_disabled"}
    assert len(receiver.requests) == 1
    assert not WebhookEndpoint.objects.get(pk=endpoint.pk).is_active
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.FAILED}
    assert list(WebhookAttempt.objects.values_list("delivery_id", "status_code")) == [(ids[0], 410)]


@pytest.mark.django_db
def test_the_task_runs_batches_one_after_another_while_they_come_back_full(receiver, enqueued, settings):
    from webhooks.tasks import deliver_webhook

    settings.WEBHOOK_BATCH_SIZE = 2
    endpoint, _ = register(receiver.url("/hook"))
    ids = published(endpoint, 7)
    assert services.webhook_deliveries_attempt(delivery_id=ids[0]) == dict.fromkeys(ids[:2], "succeeded")
    assert len(receiver.requests) == 2  # one batch without `drain`
    assert deliver_webhook.run(ids[3]) == "succeeded"
    assert len(receiver.requests) == 7  # the task drained the endpoint: batches of 2, 2 and 1
    assert deliver_webhook.run(ids[4]) == "skipped"  # its delivery went out with the others
    # No message between batches; its first claim came back full with more waiting: one more run invited.
    assert enqueued == [(ids[4], None)]


@pytest.mark.django_db
def test_a_draining_task_stops_when_its_time_is_up(receiver, enqueued, settings):
    from webhooks.tasks import deliver_webhook

    settings.WEBHOOK_BATCH_SIZE = 2
    settings.WEBHOOK_BATCH_SECONDS = 0
    endpoint, _ = register(receiver.url("/hook"))
    ids = published(endpoint, 4)
    enqueued.clear()
    assert deliver_webhook.run(ids[0]) == "succeeded"
    assert len(receiver.requests) == 1  # the first request only; the rest released with one message
    # ids[2] invited a second run when the first claim came back full; ids[1], claimed and not sent, is
    # released to that run (its message holds the endpoint's flag: no other message).
    assert enqueued == [(ids[2], None)]
    assert set(WebhookDelivery.objects.filter(pk__in=ids[1:]).values_list("claimed_until", flat=True)) == {None}
    assert deliver_webhook.run(ids[2]) == "succeeded"
    assert len(receiver.requests) == 2  # that run's first request (its time is up too)
