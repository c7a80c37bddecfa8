"""Wake-ups (issue 15): one broker message per endpoint while one is on its way, not one per delivery.
Publishing takes the endpoint's flag after commit and sends a message only if it took it; a run clears the
flag with its first claim and drains the endpoint; a full batch invites one more run; a lost message is
recovered by the sweeper. Every delivery still goes out exactly once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.servers import LocalServer, Reply
from tests.webhooks.factories import publish, register
from webhooks import services
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.services import delivery as delivery_module
from webhooks.services.outbox import wake_ttl
from webhooks.tasks import deliver_webhook

PAST_THE_GRACE = timedelta(seconds=31)


def published(endpoint, count: int, capture) -> list[int]:
    """`count` events, each in its own committed transaction (the after-commit wake-up runs)."""
    ids = []
    for _ in range(count):
        with capture(execute=True):
            ids.append(WebhookDelivery.objects.get(event=publish(endpoint)).pk)
    return ids


def flag(endpoint):
    return WebhookEndpoint.objects.get(pk=endpoint.pk).wake_until


@pytest.mark.django_db
def test_a_burst_for_one_endpoint_costs_one_message_until_its_run_starts(
    receiver, enqueued, django_capture_on_commit_callbacks
):
    endpoint, _ = register(receiver.url("/hook"))
    other, _ = register(receiver.url("/other"), owner_id="partner-2")
    ids = published(endpoint, 5, django_capture_on_commit_callbacks)
    elsewhere = published(other, 2, django_capture_on_commit_callbacks)
    assert enqueued == [(ids[0], None), (elsewhere[0], None)]  # one per endpoint
    assert flag(endpoint) is not None

    assert deliver_webhook.run(ids[0]) == "succeeded"
    assert len(receiver.requests) == 5  # the run drained its endpoint, not the other one
    assert set(WebhookDelivery.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"succeeded"}
    assert flag(endpoint) is None  # cleared by the run's first claim

    # The run has started: the next event sends a message of its own.
    later = published(endpoint, 2, django_capture_on_commit_callbacks)
    assert enqueued[2:] == [(later[0], None)]
    assert deliver_webhook.run(later[0]) == "succeeded"
    assert len(receiver.requests) == 7
    assert WebhookAttempt.objects.count() == 7  # each delivery POSTed and recorded once


@pytest.mark.django_db
def test_an_event_published_while_a_run_drains_is_sent_once(receiver, enqueued, django_capture_on_commit_callbacks):
    endpoint, _ = register(receiver.url("/hook"))
    ids = published(endpoint, 3, django_capture_on_commit_callbacks)
    enqueued.clear()
    real = delivery_module.guarded_request
    late: list[int] = []

    def publish_during_the_first_post(*args, **kwargs):
        if not late:
            late.extend(published(endpoint, 1, django_capture_on_commit_callbacks))
        return real(*args, **kwargs)

    delivery_module.guarded_request = publish_during_the_first_post
    try:
        outcomes = services.webhook_deliveries_attempt(delivery_id=ids[0], drain=True)
    finally:
        delivery_module.guarded_request = real
    # The run's flag was cleared before it read: the late event took the flag and sent a message ...
    assert enqueued == [(late[0], None)]
    # ... and the run, which claims until nothing is left, sent it too; the message then finds nothing.
    assert outcomes == dict.fromkeys([*ids, *late], "succeeded")
    assert deliver_webhook.run(late[0]) == "skipped"
    assert len(receiver.requests) == WebhookAttempt.objects.count() == 4


@pytest.mark.django_db
def test_a_run_clears_the_flag_before_and_outside_its_first_claim(
    receiver, enqueued, django_capture_on_commit_callbacks
):
    """The order that makes a publisher's skipped message safe: the flag is cleared by its own statement,
    committed before the claim's transaction starts (here: before the claim's savepoint), never inside it."""
    endpoint, _ = register(receiver.url("/hook"))
    ids = published(endpoint, 1, django_capture_on_commit_callbacks)
    statements: list[str] = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        assert deliver_webhook.run(ids[0]) == "succeeded"
    clear = next(i for i, sql in enumerate(statements) if sql.startswith("UPDATE") and "webhookendpoint" in sql)
    after = statements[clear + 1 :]
    claims_atomic = next(i for i, sql in enumerate(after) if sql.startswith("SAVEPOINT"))
    claims_read = next(i for i, sql in enumerate(after) if sql.startswith("SELECT") and "webhookdelivery" in sql)
    assert claims_atomic < claims_read  # cleared first, and not in the claim's transaction
    assert flag(endpoint) is None


@pytest.mark.django_db
def test_a_lost_wake_up_message_is_recovered_by_the_sweeper(receiver, enqueued, django_capture_on_commit_callbacks):
    endpoint, _ = register(receiver.url("/hook"))
    ids = published(endpoint, 1, django_capture_on_commit_callbacks)
    enqueued.clear()  # the message was lost on its way to the broker
    ids += published(endpoint, 2, django_capture_on_commit_callbacks)
    assert enqueued == []  # the flag says a message is on its way: none sent

    assert services.webhook_deliveries_sweep()["enqueued"] == 0  # within the grace: left alone
    result = services.webhook_deliveries_sweep(now=timezone.now() + PAST_THE_GRACE)
    assert result["enqueued"] == 3 and enqueued == [(ids[0], None)]  # one message wakes the endpoint
    assert deliver_webhook.run(enqueued[0][0]) == "succeeded"
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}
    assert len(receiver.requests) == 3
    assert services.webhook_deliveries_sweep(now=timezone.now() + PAST_THE_GRACE)["enqueued"] == 0


@pytest.mark.django_db
def test_a_flag_left_by_a_lost_message_expires(receiver, enqueued, django_capture_on_commit_callbacks):
    endpoint, _ = register(receiver.url("/hook"))
    published(endpoint, 1, django_capture_on_commit_callbacks)
    enqueued.clear()  # lost
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(wake_until=timezone.now() - timedelta(seconds=1))
    later = published(endpoint, 1, django_capture_on_commit_callbacks)
    assert enqueued == [(later[0], None)]
    assert flag(endpoint) > timezone.now() + wake_ttl() - timedelta(seconds=30)


@pytest.mark.django_db
def test_a_full_batch_invites_one_more_run(receiver, enqueued, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_BATCH_SIZE = 2
    endpoint, _ = register(receiver.url("/hook"))
    ids = published(endpoint, 5, django_capture_on_commit_callbacks)
    assert enqueued == [(ids[0], None)]
    enqueued.clear()
    real = delivery_module._run_batch
    seen: list[list] = []

    def note_messages(*args, **kwargs):
        seen.append(list(enqueued))
        return real(*args, **kwargs)

    delivery_module._run_batch = note_messages
    try:
        assert deliver_webhook.run(ids[0]) == "succeeded"
    finally:
        delivery_module._run_batch = real
    # Invited before the first batch was sent (another worker would share the backlog), once per run.
    assert seen[0] == [(ids[2], None)] and enqueued == [(ids[2], None)]
    assert len(receiver.requests) == 5
    # The invitation holds the flag: publishing now sends nothing more; its run finds the work done.
    published(endpoint, 1, django_capture_on_commit_callbacks)
    assert enqueued == [(ids[2], None)]
    assert deliver_webhook.run(ids[2]) == "skipped"
    assert len(receiver.requests) == 6


@pytest.mark.postgres
def test_a_delivery_committed_during_a_runs_last_claim_gets_a_message(transactional_db, require_postgres, enqueued):
    """Two connections. A run starts while a message holds the flag and finds nothing to claim; between its
    claim's read and that claim's commit, a publisher commits a delivery and tries to take the flag. The flag
    was cleared (and committed) before the claim began, so the publisher takes it: a message for the
    delivery the run's read could not see. (Cleared inside the claim's transaction, the take would find it
    still taken and the delivery would wait for the sweeper.)"""
    with LocalServer(lambda request: Reply(200, {}, b"ok")) as receiver:
        endpoint, _ = register(receiver.url("/hook"))
        done = WebhookDelivery.objects.get(event=publish(endpoint))
        assert services.webhook_delivery_attempt(delivery_id=done.pk) == "succeeded"
        # As if a message for the endpoint were on its way (e.g. an invitation whose work was taken).
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(wake_until=timezone.now() + timedelta(minutes=1))
        enqueued.clear()
        read = threading.Event()
        go_on = threading.Event()
        outcomes: list[dict] = []

        def pause_after_the_claims_read(execute, sql, params, many, context):
            result = execute(sql, params, many, context)
            if "SKIP LOCKED" in sql and not read.is_set():
                read.set()
                go_on.wait(timeout=30)
            return result

        def run() -> None:
            try:
                with connection.execute_wrapper(pause_after_the_claims_read):
                    outcomes.append(services.webhook_deliveries_attempt(delivery_id=done.pk, drain=True))
            finally:
                connection.close()

        runner = threading.Thread(target=run)
        runner.start()
        try:
            assert read.wait(timeout=30)
            late: list[int] = []

            def publisher() -> None:
                try:
                    late.append(WebhookDelivery.objects.get(event=publish(endpoint)).pk)
                finally:
                    connection.close()

            thread = threading.Thread(target=publisher)
            thread.start()
            thread.join(timeout=30)
        finally:
            go_on.set()
            runner.join(timeout=30)
        assert outcomes == [{}]  # the run's only claim read nothing
        assert enqueued == [(late[0], None)]  # the late delivery has its message
        assert deliver_webhook.run(late[0]) == "succeeded"
        assert len(receiver.requests) == 2
