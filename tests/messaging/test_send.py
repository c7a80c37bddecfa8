"""send_message with the locmem and console backends, email through Django's backends, idempotency."""

from __future__ import annotations

import pytest
from django.core import mail

from messaging.backends import RedactedConsoleEmailBackend
from messaging.models import OutboundMessage
from messaging.services import message_send
from tests.fixtures.messaging import BODY, EMAIL, PHONE, queue, run

pytestmark = pytest.mark.django_db


def test_locmem_backend_keeps_the_message_and_marks_it_sent(locmem_backend, logs):
    message = queue(channel="sms", recipient=PHONE, body=BODY)
    assert run(message) == "sent"
    assert len(locmem_backend) == 1
    kept = locmem_backend[0]
    assert (kept.message_id, kept.channel, kept.recipient, kept.body) == (message.public_id, "sms", PHONE, BODY)
    assert message.status == "sent" and message.provider == "locmem"
    assert message.provider_message_id == f"locmem-{message.public_id}"
    assert message.attempts == 1 and message.sent_at is not None and message.claimed_until is None
    assert f"message {message.public_id} via sms sent" in logs.text()
    logs.assert_clean(PHONE, BODY)


def test_locmem_keeps_email_too_and_sends_no_django_mail(locmem_backend, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    message = queue(channel="email", recipient=EMAIL, subject="Welcome", body=BODY)
    run(message)
    assert [(m.channel, m.recipient, m.subject) for m in locmem_backend] == [("email", EMAIL, "Welcome")]
    assert mail.outbox == []


def test_console_backend_logs_the_id_and_never_the_number_or_body(settings, logs):
    settings.MESSAGING_BACKEND = "console"
    message = queue(channel="whatsapp", recipient=PHONE, body=BODY)
    assert run(message) == "sent"
    assert message.status == "sent" and message.provider == "console"
    text = logs.text()
    assert f"message {message.public_id} via whatsapp queued" in text
    assert f"message {message.public_id} via whatsapp sent (console backend: not delivered)" in text
    logs.assert_clean(PHONE, BODY)


def test_email_goes_through_djangos_email_backend(settings):
    settings.MESSAGING_BACKEND = "console"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DEFAULT_FROM_EMAIL = "clinic@example.com"
    message = queue(channel="email", recipient=EMAIL, subject="Results", body=BODY)
    assert run(message) == "sent"
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert (sent.to, sent.subject, sent.body, sent.from_email) == ([EMAIL], "Results", BODY, "clinic@example.com")
    assert message.provider == "email" and message.status == "sent"


def test_default_email_backend_is_redacted(settings, logs):
    import config.settings

    # Without EMAIL_URL the settings pick the redacted backend (pytest-django swaps in locmem for tests).
    assert config.settings.EMAIL_BACKEND == "messaging.backends.RedactedConsoleEmailBackend"
    settings.EMAIL_BACKEND = config.settings.EMAIL_BACKEND
    settings.MESSAGING_BACKEND = "console"
    message = queue(channel="email", recipient=EMAIL, subject="Your HIV test results", body=BODY)
    assert run(message) == "sent"
    assert "email to 1 recipient(s)" in logs.text()
    logs.assert_clean(EMAIL, BODY, "Your HIV test results")


def test_smtp_failure_is_retried_without_logging_the_address(settings, logs):
    settings.MESSAGING_BACKEND = "console"
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # discard port: connection refused
    message = queue(channel="email", recipient=EMAIL, body=BODY)
    assert run(message) == "retry"
    assert message.status == "queued" and message.last_error.startswith("email_")
    logs.assert_clean(EMAIL, BODY)


def test_a_second_run_does_not_send_again(locmem_backend):
    message = queue()
    assert run(message) == "sent"
    assert run(message) == "skipped"
    assert len(locmem_backend) == 1
    assert message.attempts == 1


@pytest.mark.parametrize("status", ["sent", "delivered", "failed"])
def test_final_messages_are_never_sent(locmem_backend, status):
    message = queue()
    OutboundMessage.objects.filter(pk=message.pk).update(status=status)
    assert message_send(message_id=message.pk).result == "skipped"
    assert locmem_backend == []
    message.refresh_from_db()
    assert message.status == status and message.attempts == 0


def test_a_message_claimed_by_another_worker_is_skipped(locmem_backend):
    from messaging.services import message_claim

    message = queue()
    assert message_claim(message_id=message.pk) is not None  # another worker holds it
    assert run(message) == "skipped"
    assert locmem_backend == []


def test_unknown_message_id_is_skipped(locmem_backend):
    assert message_send(message_id=987654).result == "skipped"


def test_redacted_email_backend_counts_what_it_was_given():
    email = mail.EmailMessage("s", "b", "from@example.com", ["a@example.com", "b@example.com"])
    assert RedactedConsoleEmailBackend().send_messages([email, email]) == 2


def test_an_unexpected_backend_error_is_retried_and_logged_without_its_text(monkeypatch, locmem_backend, logs):
    from messaging import backends

    def broken(self, message):
        raise RuntimeError(f"boom while sending to {message.recipient}: {message.body}")

    monkeypatch.setattr(backends.LocmemBackend, "send", broken)
    message = queue()
    assert run(message) == "retry"
    assert message.status == "queued" and message.last_error == "internal_error"
    assert f"message {message.public_id} via sms: unexpected RuntimeError in backend locmem" in logs.text()
    logs.assert_clean(PHONE, BODY)
