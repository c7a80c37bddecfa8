"""The sweeper re-enqueues due, unclaimed queued messages: a lost broker message delays, never drops."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction

from core.registry import Interval
from core.time import utc_now
from messaging.models import OutboundMessage
from messaging.schedules import PERIODIC_TASKS
from messaging.services import message_queue
from messaging.tasks import send_message, sweep_queued_messages
from tests.fixtures.messaging import BODY, PHONE, TEST_ACTOR, make_due, queue, run

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)
def test_a_lost_broker_message_is_re_enqueued_and_sent(enqueued, locmem_backend):
    with transaction.atomic():
        message = message_queue(channel="sms", recipient=PHONE, body=BODY, actor=TEST_ACTOR)
    assert [call.message_id for call in enqueued] == [message.pk]
    enqueued.clear()  # the broker lost it: no worker will ever run that task

    assert sweep_queued_messages.run() == 0  # just queued: the task enqueued at commit gets its chance
    assert enqueued == []

    make_due(message, seconds_ago=60)  # a minute later
    assert sweep_queued_messages.run() == 1
    assert [call.message_id for call in enqueued] == [message.pk]

    send_message.run(enqueued[0].message_id)  # the worker runs the re-enqueued task
    message.refresh_from_db()
    assert message.status == "sent" and len(locmem_backend) == 1


def test_sweeper_skips_claimed_final_and_future_messages(enqueued):
    due = queue()
    claimed = queue()
    expired_claim = queue()
    future = queue()
    sent = queue()
    for message in (due, claimed, expired_claim, sent):
        make_due(message, seconds_ago=120)
    now = utc_now()
    OutboundMessage.objects.filter(pk=claimed.pk).update(claimed_until=now + timedelta(minutes=4))
    OutboundMessage.objects.filter(pk=expired_claim.pk).update(claimed_until=now - timedelta(seconds=1))
    OutboundMessage.objects.filter(pk=future.pk).update(next_attempt_at=now + timedelta(minutes=5))
    OutboundMessage.objects.filter(pk=sent.pk).update(status="sent")

    assert sweep_queued_messages.run() == 2
    assert sorted(call.message_id for call in enqueued) == sorted([due.pk, expired_claim.pk])


def test_a_retry_whose_countdown_task_was_lost_is_swept(settings, enqueued, locmem_backend, monkeypatch):
    from messaging import backends
    from messaging.backends import TransientSendError

    def down(self, message):
        raise TransientSendError("test_down")

    monkeypatch.setattr(backends.LocmemBackend, "send", down)
    message = queue()
    assert run(message) == "retry"
    enqueued.clear()  # the countdown task is lost
    monkeypatch.undo()
    settings.MESSAGING_BACKEND = "locmem"

    assert sweep_queued_messages.run() == 0  # not due yet
    make_due(message, seconds_ago=60)
    assert sweep_queued_messages.run() == 1
    assert run(message) == "sent" and message.attempts == 2


def test_sweeper_runs_every_minute_from_beat():
    entries = [entry for entry in PERIODIC_TASKS if entry.task == "messaging.tasks.sweep_queued_messages"]
    assert len(entries) == 1
    assert entries[0].when == Interval(seconds=60)
