"""Message backends, chosen by settings.MESSAGING_BACKEND.

- `console` (default): SMS and WhatsApp are only logged, as "message msg_... via sms sent (console
  backend: not delivered)": no number, no body. Email goes through Django's EMAIL_BACKEND.
- `locmem` (tests): every channel, email included, is appended to `outbox` (like Django's locmem mail
  backend) and nothing leaves the process.
- `twilio`: SMS and WhatsApp through Twilio's REST API (messaging.clients); email through EMAIL_BACKEND.

A backend's `send(message)` returns a `SendResult` or raises `TransientSendError` (retry later) or
`PermanentSendError` (fail now). Error codes are short and never carry the number or the body.

`RedactedConsoleEmailBackend` is the default Django EMAIL_BACKEND when EMAIL_URL is unset: Django's own
console backend would print recipients and bodies to the process output.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend

from messaging.clients import MESSAGING_SERVICE_SID_RE, TwilioClient, TwilioError
from messaging.models import OutboundMessage

logger = logging.getLogger("messaging")

Channel = OutboundMessage.Channel


class SendError(Exception):
    transient = False

    def __init__(self, code: str, *, retry_after: float | None = None):
        super().__init__(code)
        self.code = code[:200]
        self.retry_after = retry_after


class TransientSendError(SendError):
    transient = True


class PermanentSendError(SendError):
    pass


@dataclass(frozen=True)
class SendResult:
    provider: str
    provider_message_id: str = ""


@dataclass(frozen=True)
class LocmemMessage:
    """What the locmem backend keeps in `outbox` (test inspection only)."""

    message_id: str  # public id
    channel: str
    recipient: str
    subject: str
    body: str
    purpose: str


outbox: list[LocmemMessage] = []


class BaseBackend:
    name = ""

    def send(self, message: OutboundMessage) -> SendResult:
        if message.channel == Channel.EMAIL:
            return send_email(message)
        return self.send_phone(message)

    def send_phone(self, message: OutboundMessage) -> SendResult:  # sms and whatsapp
        raise NotImplementedError


class ConsoleBackend(BaseBackend):
    name = "console"

    def send_phone(self, message: OutboundMessage) -> SendResult:
        logger.info("message %s via %s sent (console backend: not delivered)", message.public_id, message.channel)
        return SendResult(provider=self.name)


class LocmemBackend(BaseBackend):
    name = "locmem"

    def send(self, message: OutboundMessage) -> SendResult:
        outbox.append(
            LocmemMessage(
                message_id=message.public_id,
                channel=message.channel,
                recipient=message.recipient,
                subject=message.subject or "",
                body=message.body,
                purpose=message.purpose,
            )
        )
        return SendResult(provider=self.name, provider_message_id=f"locmem-{message.public_id}")


class TwilioBackend(BaseBackend):
    """SMS and WhatsApp through Twilio. The row's `sender` (a number or a Messaging Service SID) wins over
    the platform's TWILIO_FROM_NUMBER / TWILIO_WHATSAPP_FROM; a WhatsApp template row sends ContentSid +
    ContentVariables instead of the body; a media row adds MediaUrl."""

    name = "twilio"

    def send_phone(self, message: OutboundMessage) -> SendResult:
        whatsapp = message.channel == Channel.WHATSAPP
        sender = message.sender or (settings.TWILIO_WHATSAPP_FROM if whatsapp else settings.TWILIO_FROM_NUMBER)
        if not sender:
            raise PermanentSendError(
                "twilio_whatsapp_from_not_configured" if whatsapp else "twilio_from_number_not_configured"
            )
        service_sid = sender if MESSAGING_SERVICE_SID_RE.fullmatch(sender) else ""
        from_ = "" if service_sid else (_whatsapp(sender) if whatsapp else sender)
        to = _whatsapp(message.recipient) if whatsapp else message.recipient
        try:
            client = TwilioClient(
                account_sid=settings.TWILIO_ACCOUNT_SID,
                auth_token=settings.TWILIO_AUTH_TOKEN,
                base_url=settings.TWILIO_API_BASE_URL,
            )
            sent = client.send_message(
                to=to,
                from_=from_,
                messaging_service_sid=service_sid,
                body=message.body,
                content_sid=message.content_sid if whatsapp else "",
                content_variables=message.content_variables if whatsapp and message.content_sid else "",
                media_url=message.media_url if whatsapp else "",
                status_callback=status_callback_url(),
            )
        except TwilioError as exc:
            error = TransientSendError if exc.transient else PermanentSendError
            raise error(exc.code, retry_after=exc.retry_after) from None
        return SendResult(provider=self.name, provider_message_id=sent.sid)


def _whatsapp(number: str) -> str:
    return number if number.startswith("whatsapp:") else f"whatsapp:{number}"


STATUS_CALLBACK_PATH = "/api/messaging/twilio/status"


def status_callback_url() -> str:
    """The URL Twilio calls back and signs; "" when MESSAGING_STATUS_CALLBACK_BASE_URL is unset."""
    base = (settings.MESSAGING_STATUS_CALLBACK_BASE_URL or "").rstrip("/")
    return f"{base}{STATUS_CALLBACK_PATH}" if base else ""


def send_email(message: OutboundMessage) -> SendResult:
    """Through Django's EMAIL_BACKEND. SMTP errors are reported by class name only (their text quotes
    addresses)."""
    email = EmailMessage(
        subject=message.subject or "",
        body=message.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[message.recipient],
    )
    try:
        email.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused:
        raise PermanentSendError("email_recipient_refused") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientSendError(f"email_{type(exc).__name__}") from None
    return SendResult(provider="email")


BACKENDS: dict[str, type[BaseBackend]] = {
    "console": ConsoleBackend,
    "locmem": LocmemBackend,
    "twilio": TwilioBackend,
}


def get_backend(name: str | None = None) -> BaseBackend:
    name = name or settings.MESSAGING_BACKEND
    try:
        return BACKENDS[name]()
    except KeyError:
        raise ImproperlyConfigured(f"Unknown MESSAGING_BACKEND {name!r}") from None


class RedactedConsoleEmailBackend(BaseEmailBackend):
    """A Django email backend that logs one line per email (how many recipients) and delivers nothing."""

    def send_messages(self, email_messages) -> int:
        count = 0
        for email in email_messages:
            logger.info("email to %d recipient(s) (console email backend: not delivered)", len(email.recipients()))
            count += 1
        return count
