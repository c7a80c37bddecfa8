"""Wake-ups (messaging.outbox): a burst of ordinary messages costs one drain prompt, the drain clears the flag
before it reads and sends every ordinary message due, a message committed while the flag is taken is sent by
the drain that clears it, a lost prompt leaves its messages to the sweeper, a backlog is shared, a long drain
hands on, urgent messages keep a prompt each."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError

from core.time import utc_now
from messaging import outbox
from messaging.models import OutboundMessage, SendWakeup
from messaging.services import message_claim, messages_drain
from messaging.tasks import send_message, sweep_queued_messages
from tests.fixtures.messaging import make_due, queue

pytestmark = pytest.mark.django_db(transaction=True)  # real commits: prompts are published after commit

URGENT = "integration.alert_critical"  # settings.MESSAGING_URGENT_PURPOSES' default
SENT, QUEUED = OutboundMessage.Status.SENT, OutboundMessage.Status.QUEUED


def flag():
    return SendWakeup.objects.filter(pk=1).values_list("wake_until", flat=True).first()


def statuses(*messages) -> list[str]:
    return [OutboundMessage.objects.get(pk=message.pk).status for message in messages]


def test_a_burst_of_ordinary_messages_costs_one_drain_prompt(enqueued):
    first, *others = [queue() for _ in range(3)]
    assert [(call.message_id, call.drain) for call in enqueued] == [(first.pk, True)]
    assert flag() > utc_now()


def test_urgent_messages_keep_a_prompt_each(enqueued):
    ordinary = queue()
    critical = [queue(purpose=URGENT) for _ in range(2)]
    assert [(call.message_id, call.drain) for call in enqueued] == [
        (ordinary.pk, True),
        (critical[0].pk, False),
        (critical[1].pk, False),
    ]


def test_a_drain_clears_the_flag_and_sends_every_due_ordinary_message(enqueued, locmem_backend):
    messages = [queue() for _ in range(3)]
    critical = queue(purpose=URGENT)
    assert send_message.run(messages[0].pk, drain=True) == "drained: 3 sent"
    assert statuses(*messages) == [SENT, SENT, SENT]
    assert statuses(critical) == [QUEUED]  # its own prompt sends it (with its short lease and watchdog)
    assert flag() is None
    enqueued.clear()
    after = queue()
    assert [(call.message_id, call.drain) for call in enqueued] == [(after.pk, True)]  # the next burst prompts


def test_a_message_committed_while_the_flag_is_taken_is_sent_by_the_drain_that_clears_it(enqueued, locmem_backend):
    first = queue()
    second = queue()  # its publisher found the flag taken: no prompt of its own
    assert [call.message_id for call in enqueued] == [first.pk]
    send_message.run(first.pk, drain=True)
    assert statuses(first, second) == [SENT, SENT]


def test_a_lost_prompt_leaves_its_messages_to_the_sweeper(enqueued, locmem_backend):
    lost = queue()
    behind = queue()
    assert [call.message_id for call in enqueued] == [lost.pk]  # and that prompt never arrives
    enqueued.clear()
    make_due(lost, seconds_ago=31)
    make_due(behind, seconds_ago=31)
    assert sweep_queued_messages.run() == 2  # whatever the flag says
    assert sorted(call.message_id for call in enqueued) == sorted([lost.pk, behind.pk])
    for call in enqueued:
        send_message.run(call.message_id)
    assert statuses(lost, behind) == [SENT, SENT]


def test_an_expired_flag_is_taken_again(enqueued):
    queue()
    SendWakeup.objects.filter(pk=1).update(wake_until=utc_now() - timedelta(seconds=1))  # its prompt was lost
    enqueued.clear()
    after = queue()
    assert [call.message_id for call in enqueued] == [after.pk]


def test_a_full_batch_invites_a_second_drain(enqueued, locmem_backend, monkeypatch):
    monkeypatch.setattr(outbox, "DRAIN_BATCH", 2)
    monkeypatch.setattr("messaging.services.sending.DRAIN_BATCH", 2)
    messages = [queue() for _ in range(5)]
    enqueued.clear()
    outcome = messages_drain(first_message_id=messages[0].pk)
    assert outcome.sent == 5 and not outcome.handed_on
    assert statuses(*messages) == [SENT] * 5
    invitations = [call for call in enqueued if call.drain]
    assert len(invitations) == 1  # taken once: the flag holds while the invited drain is on its way


def test_a_drain_past_its_budget_hands_the_rest_on(enqueued, locmem_backend):
    messages = [queue() for _ in range(3)]
    enqueued.clear()
    ticks = iter([0.0, 0.0, 10_000.0, 10_000.0])  # the deadline is passed after the first send
    outcome = messages_drain(first_message_id=messages[0].pk, clock=lambda: next(ticks))
    assert (outcome.sent, outcome.handed_on) == (1, True)
    assert statuses(*messages) == [SENT, QUEUED, QUEUED]
    assert [(call.message_id, call.drain) for call in enqueued] == [(messages[1].pk, True)]  # forced


def test_a_drain_skips_a_message_another_worker_holds(enqueued, locmem_backend):
    held, free = queue(), queue()
    assert message_claim(message_id=held.pk) is not None  # another worker is sending it
    outcome = messages_drain(first_message_id=held.pk)
    assert outcome.sent == 1
    assert statuses(held, free) == [QUEUED, SENT]
    assert len(locmem_backend) == 1


def test_a_flag_that_cannot_be_written_still_prompts(enqueued, monkeypatch):
    def broken(*args, **kwargs):
        raise DatabaseError("the flag's row is locked out")

    monkeypatch.setattr(outbox, "fetch_one", broken)
    first, second = queue(), queue()
    assert [call.message_id for call in enqueued] == [first.pk, second.pk]  # a duplicate costs a read


def test_a_taken_flag_costs_no_write_on_postgresql(require_postgres, enqueued):
    """Most of a burst finds the flag taken: that look must not lock or write the row (each would be a
    transaction id and a commit to disk per message). PostgreSQL marks a locked row with the locker's id."""
    from django.db import connection

    queue()  # takes the flag (the row created)

    def row_version():
        with connection.cursor() as cursor:
            cursor.execute("SELECT xmin::text, xmax::text FROM messaging_sendwakeup WHERE id = 1")
            return cursor.fetchone()

    before = row_version()
    assert not outbox.wake(1)  # taken: no prompt
    assert row_version() == before and before[1] == "0"
