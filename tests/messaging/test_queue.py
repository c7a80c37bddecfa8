"""message_queue: validation, encryption at rest, audit without PHI, enqueue after commit only."""

from __future__ import annotations

import json

import pytest
from django.db import connection, transaction

from audit.models import AuditEvent
from core.actors import Actor
from core.domain import Invalid
from core.encryption import blind_index, decrypt_str
from messaging.models import RECIPIENT_INDEX_PURPOSE, OutboundMessage
from messaging.selectors import messages_to_recipient
from messaging.services import (
    InvalidChannelError,
    InvalidMessageError,
    InvalidRecipientError,
    MessagingError,
    message_new,
    message_queue,
)
from tests.fixtures.messaging import BODY, EMAIL, PHONE, TEST_ACTOR, queue

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "channel, recipient",
    [
        ("sms", "07911123456"),  # national format, no country code
        ("sms", "+0447700900123"),  # country code cannot start with 0
        ("sms", "+44"),  # too short
        ("sms", "+4477009001234567890"),  # too long
        ("sms", "not a number"),
        ("whatsapp", "whatsapp:07911123456"),
        ("sms", "+447700900123"),  # the right length, but a number reserved for drama: not a valid number
        ("whatsapp", ""),
        ("email", "no-at-sign.example.org"),
        ("email", "two@@example.org"),
        ("email", PHONE),
        ("sms", EMAIL),
    ],
)
def test_invalid_recipients_are_refused_without_quoting_them(channel, recipient):
    with pytest.raises(InvalidRecipientError) as excinfo:
        queue(channel=channel, recipient=recipient)
    assert isinstance(excinfo.value, Invalid)
    if recipient:
        assert recipient not in str(excinfo.value)
    assert OutboundMessage.objects.count() == 0


def test_unknown_channel_is_refused():
    with pytest.raises(InvalidChannelError):
        queue(channel="pigeon")
    assert OutboundMessage.objects.count() == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"body": ""},
        {"body": "   "},
        {"body": "x" * 1601},
        {"subject": "Hello"},  # subject on sms
        {"purpose": "Not A Code!"},
    ],
)
def test_invalid_content_is_refused(kwargs):
    with pytest.raises(InvalidMessageError):
        queue(**{"body": BODY, **kwargs})
    assert OutboundMessage.objects.count() == 0


def test_every_refusal_is_a_domain_invalid():
    for cls in (InvalidChannelError, InvalidRecipientError, InvalidMessageError):
        assert issubclass(cls, MessagingError) and issubclass(cls, Invalid)


@pytest.mark.parametrize(
    "channel, given, stored",
    [
        ("sms", "+44 7911 123456", PHONE),
        ("sms", " +44 (0)7911-123456 ", PHONE),
        ("whatsapp", "whatsapp:+447911123456", PHONE),
        ("sms", "+14155550123", "+14155550123"),
        ("email", f"  {EMAIL} ", EMAIL),
    ],
)
def test_recipient_is_normalized(channel, given, stored):
    message = queue(channel=channel, recipient=given)
    message.refresh_from_db()
    assert message.recipient == stored
    assert message.channel == channel
    assert message.status == "queued"
    assert message.public_id.startswith("msg_")


def test_recipient_subject_and_body_are_encrypted_at_rest():
    message = queue(channel="email", recipient=EMAIL, subject="Your lab results", body=BODY)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT recipient, subject, body, recipient_index FROM messaging_outboundmessage WHERE id = %s",
            [message.pk],
        )
        recipient, subject, body, index = cursor.fetchone()
    for raw, plain in ((recipient, EMAIL), (subject, "Your lab results"), (body, BODY)):
        assert plain not in raw and "zebrafinch" not in raw
        assert decrypt_str(raw) == plain  # it is a token of the value, under our keys
    assert EMAIL not in index and index == blind_index(EMAIL.casefold(), purpose=RECIPIENT_INDEX_PURPOSE)


def test_phone_number_is_not_stored_in_clear():
    message = queue(channel="sms", recipient=PHONE)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM messaging_outboundmessage WHERE id = %s", [message.pk])
        row = " ".join(str(value) for value in cursor.fetchone())
    assert PHONE[1:] not in row and BODY not in row


def test_blind_index_finds_messages_by_recipient():
    first = queue(channel="sms", recipient=PHONE)
    queue(channel="sms", recipient="+14155550123")
    email = queue(channel="email", recipient=EMAIL.upper())
    assert list(messages_to_recipient(channel="sms", recipient="+44 7911 123456")) == [first]
    assert list(messages_to_recipient(channel="email", recipient=EMAIL)) == [email]  # case-insensitive
    assert list(messages_to_recipient(channel="whatsapp", recipient=PHONE)) == []


def test_queue_is_audited_without_phi():
    message = queue(channel="sms", recipient=PHONE, body=BODY, actor=Actor.partner_platform("ptn_1"))
    event = AuditEvent.objects.get(action="messaging.message_queued")
    assert event.subject_id == message.public_id
    assert (event.actor_type, event.actor_id) == ("partner_platform", "ptn_1")
    assert event.metadata == {"message_id": message.public_id, "channel": "sms", "purpose": "tests.messaging"}
    dumped = json.dumps(event.metadata) + str(event)
    assert PHONE[1:] not in dumped and "Quillfeather" not in dumped


def test_queue_writes_nothing_when_the_callers_transaction_rolls_back():
    with pytest.raises(RuntimeError), transaction.atomic():
        message_queue(channel="sms", recipient=PHONE, body=BODY, actor=TEST_ACTOR)
        raise RuntimeError("the caller's change failed")
    assert OutboundMessage.objects.count() == 0
    assert not AuditEvent.objects.filter(action="messaging.message_queued").exists()


@pytest.mark.django_db(transaction=True)
def test_send_is_enqueued_only_after_commit(enqueued):
    with transaction.atomic():
        message = message_queue(channel="sms", recipient=PHONE, body=BODY, actor=TEST_ACTOR)
        assert enqueued == []  # not before commit
    assert [(call.message_id, call.countdown) for call in enqueued] == [(message.pk, None)]


@pytest.mark.django_db(transaction=True)
def test_nothing_is_enqueued_when_the_transaction_rolls_back(enqueued):
    with pytest.raises(RuntimeError), transaction.atomic():
        message_queue(channel="sms", recipient=PHONE, body=BODY, actor=TEST_ACTOR)
        raise RuntimeError("rolled back")
    assert enqueued == []
    assert OutboundMessage.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_at_commit_does_not_fail_the_caller(monkeypatch, logs):
    from messaging.tasks import send_message

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(send_message, "apply_async", broker_down)
    with transaction.atomic():
        message = message_queue(channel="sms", recipient=PHONE, body=BODY, actor=TEST_ACTOR)
    message.refresh_from_db()
    assert message.status == "queued"  # the sweeper will send it
    assert "broker unreachable" in logs.text()
    logs.assert_clean(PHONE, BODY)


# --- message_new: the same rows, inserted by the caller with its own (issue 15) ---------------------------


def test_message_new_validates_like_message_queue_and_writes_nothing():
    with pytest.raises(InvalidRecipientError):
        message_new(channel="sms", recipient="07911123456", body=BODY, actor=TEST_ACTOR)
    with pytest.raises(InvalidMessageError):
        message_new(channel="sms", recipient=PHONE, body="", actor=TEST_ACTOR)
    pending = message_new(channel="sms", recipient=PHONE, body=BODY, purpose="tests.messaging", actor=TEST_ACTOR)
    assert pending.message.pk is None and pending.event.pk is None
    assert OutboundMessage.objects.count() == 0 and not AuditEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_message_new_rows_are_what_message_queue_writes(enqueued):
    with transaction.atomic():
        queued = message_queue(channel="sms", recipient=PHONE, body=BODY, purpose="tests.messaging", actor=TEST_ACTOR)
    with transaction.atomic():
        pending = message_new(channel="sms", recipient=PHONE, body=BODY, purpose="tests.messaging", actor=TEST_ACTOR)
        pending.message.save(force_insert=True)
        pending.event.save(force_insert=True)
        inserted = pending.inserted()
        assert len(enqueued) == 1  # message_queue's; this one's waits for the commit
    assert inserted is pending.message
    # Both prompt after their commit; the second finds the first's drain prompt on its way (messaging.outbox).
    assert [call.message_id for call in enqueued] == [queued.pk]
    ignored = {"id", "public_id", "created_at", "updated_at", "next_attempt_at", "recipient", "body"}
    stored = OutboundMessage.objects.values().order_by("pk")
    first, second = ({k: v for k, v in row.items() if k not in ignored} for row in stored)
    assert first == second
    assert [m.recipient for m in OutboundMessage.objects.order_by("pk")] == [PHONE, PHONE]  # normalized, encrypted
    events = AuditEvent.objects.filter(action="messaging.message_queued").order_by("pk")
    assert [e.metadata for e in events] == [
        {"message_id": queued.public_id, "channel": "sms", "purpose": "tests.messaging"},
        {"message_id": inserted.public_id, "channel": "sms", "purpose": "tests.messaging"},
    ]


def test_inserted_refuses_rows_that_were_not_inserted(enqueued):
    pending = message_new(channel="sms", recipient=PHONE, body=BODY, actor=TEST_ACTOR)
    with transaction.atomic(), pytest.raises(RuntimeError, match="before its message and audit event"):
        pending.inserted()
    pending.message.save(force_insert=True)
    with transaction.atomic(), pytest.raises(RuntimeError, match="before its message and audit event"):
        pending.inserted()  # the audit event is still missing


@pytest.mark.django_db(transaction=True)
def test_inserted_refuses_to_run_outside_the_callers_transaction(enqueued):
    pending = message_new(channel="sms", recipient=PHONE, body=BODY, actor=TEST_ACTOR)
    pending.message.save(force_insert=True)
    pending.event.save(force_insert=True)
    with pytest.raises(RuntimeError, match="inside the caller's transaction"):
        pending.inserted()
    assert enqueued == []


@pytest.mark.django_db(transaction=True)
def test_inserted_after_one_committed_statement_enqueues_at_once(enqueued):
    """`inserted(committed=True)`: the caller's one statement in autocommit inserted the rows and has returned, so
    the sending is enqueued now; inside a transaction the same claim is refused (nothing has committed yet)."""
    pending = message_new(channel="sms", recipient=PHONE, body=BODY, actor=TEST_ACTOR)
    pending.message.save(force_insert=True)
    pending.event.save(force_insert=True)
    with transaction.atomic(), pytest.raises(RuntimeError, match="nothing committed yet"):
        pending.inserted(committed=True)
    assert enqueued == []
    assert pending.inserted(committed=True) is pending.message
    assert [call.message_id for call in enqueued] == [pending.message.pk]
