"""The twilio backend against a Twilio-like server on 127.0.0.1: request shape, retries, failures,
concurrency, and no number or body in any log (DEBUG, every logger, httpx and httpcore included)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections, connection

from audit.models import AuditEvent
from core.time import utc_now
from messaging.models import OutboundMessage
from messaging.tasks import send_message
from tests.fixtures.messaging import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    BODY,
    CALLBACK_URL,
    FROM_NUMBER,
    PHONE,
    WHATSAPP_FROM,
    make_due,
    queue,
    run,
    twilio_error,
)
from tests.servers import Reply

pytestmark = pytest.mark.django_db


def test_sms_is_posted_to_twilio_with_auth_and_form(twilio, enqueued, logs):
    message = queue(channel="sms", recipient=PHONE, body=BODY)
    assert run(message) == "sent"

    assert twilio.problems == []
    assert len(twilio.requests) == 1
    request = twilio.requests[0]
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert twilio.form() == {"To": PHONE, "From": FROM_NUMBER, "Body": BODY, "StatusCallback": CALLBACK_URL}

    assert message.status == "sent"
    assert message.provider == "twilio"
    assert message.provider_message_id == twilio.sids[0]
    assert message.attempts == 1 and message.last_error == "" and message.sent_at is not None
    assert enqueued == []  # nothing left to retry
    # The capture sees the outbound layer and httpx/httpcore at DEBUG (their lines carry the URL, headers).
    assert "outbound POST 127.0.0.1 -> 201" in logs.text()
    assert {"httpx", "httpcore.http11"} <= {record.name for record in logs.records}
    logs.assert_clean(PHONE, BODY)


def test_whatsapp_numbers_carry_the_prefix(twilio):
    message = queue(channel="whatsapp", recipient=PHONE, body=BODY)
    run(message)
    form = twilio.form()
    assert (form["To"], form["From"]) == (f"whatsapp:{PHONE}", f"whatsapp:{WHATSAPP_FROM}")
    assert message.status == "sent"


def test_no_status_callback_without_a_base_url(twilio, settings):
    settings.MESSAGING_STATUS_CALLBACK_BASE_URL = ""
    run(queue())
    assert "StatusCallback" not in twilio.form()


def test_server_error_then_success_is_retried_then_sent(twilio, enqueued, logs):
    twilio.script = [twilio_error(500, 20500)]
    message = queue()

    assert run(message) == "retry"
    assert message.status == "queued" and message.attempts == 1
    assert message.last_error == "twilio_http_500_error_20500"
    assert message.next_attempt_at > utc_now() + timedelta(seconds=25)  # 30 s backoff
    assert len(enqueued) == 1 and enqueued[0].message_id == message.pk and 30 <= enqueued[0].countdown <= 33

    assert run(message) == "skipped"  # too early: the backoff holds
    assert len(twilio.requests) == 1

    make_due(message)
    assert run(message) == "sent"
    assert len(twilio.requests) == 2
    assert message.status == "sent" and message.attempts == 2 and message.last_error == ""
    assert message.provider_message_id == twilio.sids[0]
    logs.assert_clean(PHONE, BODY)


def test_rate_limited_answer_is_retried_after_retry_after(twilio, enqueued):
    twilio.script = [twilio_error(429, 20429, {"Retry-After": "120"})]
    message = queue()
    assert run(message) == "retry"
    assert message.last_error == "twilio_http_429_error_20429"
    assert 120 <= enqueued[0].countdown <= 132
    make_due(message)
    assert run(message) == "sent"


def test_timeout_is_retried(twilio, settings):
    settings.OUTBOUND_TIMEOUT_SECONDS = 0.3
    twilio.script = [Reply(201, {"Content-Type": "application/json"}, b"{}", delay=1.5)]
    message = queue()
    assert run(message) == "retry"
    assert message.last_error == "twilio_timeout" and message.status == "queued"


def test_connection_refused_is_retried(twilio, settings):
    settings.TWILIO_API_BASE_URL = "http://127.0.0.1:9"
    message = queue()
    assert run(message) == "retry"
    assert message.last_error == "twilio_connection_error"


def test_client_error_fails_at_once_without_retry(twilio, enqueued, logs):
    twilio.script = [twilio_error(400, 21211)]
    message = queue()
    assert run(message) == "failed"
    assert message.status == "failed" and message.attempts == 1
    assert message.last_error == "twilio_http_400_error_21211"  # Twilio's message quotes the number: not kept
    assert message.next_attempt_at is None
    assert enqueued == []
    make_due(message)
    assert run(message) == "skipped"
    assert len(twilio.requests) == 1
    event = AuditEvent.objects.get(action="messaging.message_failed")
    assert event.subject_id == message.public_id and event.metadata["error"] == "twilio_http_400_error_21211"
    assert PHONE[1:] not in str(event.metadata)
    logs.assert_clean(PHONE, BODY)


def test_wrong_credentials_fail_at_once(twilio, settings):
    settings.TWILIO_AUTH_TOKEN = "not-the-token"
    message = queue()
    assert run(message) == "failed"
    assert message.last_error == "twilio_http_401_error_20003"
    assert twilio.problems == ["bad basic auth"]


def test_max_attempts_then_failed(twilio, settings, enqueued, logs):
    settings.MESSAGING_MAX_ATTEMPTS = 3
    twilio.script = [twilio_error(503, 20503) for _ in range(5)]
    message = queue()
    results = []
    for _ in range(4):
        results.append(run(message))
        make_due(message)
    assert results == ["retry", "retry", "failed", "skipped"]
    assert len(twilio.requests) == 3
    assert message.status == "failed" and message.attempts == 3
    assert message.last_error == "twilio_http_503_error_20503 (after 3 attempts)"
    assert len(enqueued) == 2  # two retries scheduled, none after the last attempt
    assert enqueued[1].countdown >= 60  # backoff grows
    logs.assert_clean(PHONE, BODY)


def test_missing_whatsapp_sender_fails_without_calling_twilio(twilio, settings):
    settings.TWILIO_WHATSAPP_FROM = ""
    message = queue(channel="whatsapp")
    assert run(message) == "failed"
    assert message.last_error == "twilio_whatsapp_from_not_configured"
    assert twilio.requests == []


def test_email_does_not_go_to_twilio(twilio, settings):
    from django.core import mail

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    message = queue(channel="email", recipient="someone@example.org", subject="Hi")
    assert run(message) == "sent"
    assert twilio.requests == [] and len(mail.outbox) == 1 and message.provider == "email"


def test_running_the_task_twice_sends_once(twilio):
    message = queue()
    send_message.run(message.pk)
    send_message.run(message.pk)
    assert len(twilio.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_send_once(require_postgres, twilio, logs):
    # PostgreSQL only: shared-cache in-memory SQLite raises "table is locked" for concurrent writers
    # instead of waiting. The claim is one conditional UPDATE; run sequentially in the test above.
    twilio.script = [
        Reply(
            201,
            {"Content-Type": "application/json"},
            b'{"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}',
            delay=0.5,
        )
    ]
    message = queue()
    barrier = threading.Barrier(2)
    results, errors = [], []

    def worker():
        try:
            barrier.wait(timeout=5)
            results.append(send_message.run(message.pk))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(results) == ["sent", "skipped"]
    assert len(twilio.requests) == 1
    message.refresh_from_db()
    assert message.status == "sent" and message.attempts == 1
    assert message.provider_message_id == "SM0123456789abcdef0123456789abcdef"
    logs.assert_clean(PHONE, BODY)


def test_an_expired_claim_can_be_taken_again(twilio):
    """A worker that died mid-send leaves a lease; once it expires the message is sent."""
    from messaging.services import message_claim

    message = queue()
    assert message_claim(message_id=message.pk) is not None
    assert run(message) == "skipped"
    OutboundMessage.objects.filter(pk=message.pk).update(claimed_until=utc_now() - timedelta(seconds=1))
    assert run(message) == "sent"
    assert message.attempts == 2  # the dead worker's attempt counts


def test_the_auth_token_is_never_logged(twilio, logs):
    run(queue())
    twilio.script = [twilio_error(500, 20500)]
    run(queue())
    logs.assert_clean(AUTH_TOKEN)
