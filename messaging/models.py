"""The outbound message outbox: one row per SMS, WhatsApp message or email, written before anything is sent.

The row is the durable record of the work (DESIGN.md, "Background work"): the send task only prompts a
worker, and the sweeper re-enqueues any queued row that is due and not claimed, so a lost broker message
delays a message but never drops it. Recipient, subject and body are encrypted at rest; the recipient
also has a blind index (`recipient_index`) for exact-match lookups. Nothing here logs, and `__str__`
shows the public id only.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from core.encryption import BlindIndexField, EncryptedTextField
from core.ids import public_id_default
from core.outbox import OutboxRow
from core.time import utc_now

RECIPIENT_INDEX_PURPOSE = "messaging.outboundmessage.recipient"
MASK = "\u2022"  # bullet


class OutboundMessage(OutboxRow):
    """An outbox row (core.outbox.OutboxRow): `next_attempt_at` is when a worker may next try to send it
    (queued rows only; None once it is final), `claimed_until` the lease of the worker sending it now."""

    class Channel(models.TextChoices):
        SMS = "sms", "SMS"
        WHATSAPP = "whatsapp", "WhatsApp"
        EMAIL = "email", "Email"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("msg"), editable=False)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    # E.164 for sms/whatsapp, the address for email. Encrypted; look up through recipient_index.
    recipient = EncryptedTextField()
    recipient_index = BlindIndexField()
    subject = EncryptedTextField(blank=True, default="")  # email only
    body = EncryptedTextField()
    # Who it is sent as: a WhatsApp/SMS number (E.164) or a Twilio Messaging Service (MG...); "" = the
    # platform's configured sender (TWILIO_FROM_NUMBER / TWILIO_WHATSAPP_FROM).
    sender = models.CharField(max_length=40, blank=True, default="")
    # A pre-approved WhatsApp template (Twilio Content SID, HX...) and its variables (JSON object text,
    # encrypted: they may name the patient). With a content SID, `body` is the rendered text kept for the
    # record; Twilio sends the template.
    content_sid = models.CharField(max_length=40, blank=True, default="")
    content_variables = EncryptedTextField(blank=True, default="")
    # A media attachment's URL (a signed, expiring link to our own media view), encrypted.
    media_url = EncryptedTextField(blank=True, default="")
    # Short code naming why the message exists ("careos.welcome", "webhooks.endpoint_disabled").
    purpose = models.CharField(max_length=100, blank=True, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    provider = models.CharField(max_length=32, blank=True)  # backend that sent it: twilio, email, console...
    provider_message_id = models.CharField(max_length=64, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    # A short code ("twilio_http_500", "twilio_error_30003"): never the number, the body or provider text.
    last_error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=utc_now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The sweeper's query: queued rows by due time.
            models.Index(fields=["next_attempt_at"], name="messaging_queued_due_idx", condition=Q(status="queued")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "sent", "delivered", "failed"]), name="messaging_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(channel__in=["sms", "whatsapp", "email"]), name="messaging_channel_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def is_final(self) -> bool:
        return self.status != self.Status.QUEUED

    @property
    def recipient_masked(self) -> str:
        return mask_recipient(self.channel, self.recipient or "")


def mask_recipient(channel: str, value: str) -> str:
    """`+44•••••1234` for phone numbers, `j•••@example.com` for email addresses."""
    if not value:
        return ""
    if channel == OutboundMessage.Channel.EMAIL:
        local, _, domain = value.partition("@")
        return f"{local[:1]}{MASK * 3}@{domain}" if domain else MASK * 3
    if len(value) <= 7:
        return MASK * len(value)
    return value[:3] + MASK * (len(value) - 7) + value[-4:]


class SendWakeup(models.Model):
    """The wake-up flag of ordinary messages (messaging.outbox, "Wake-ups"): while `wake_until` is in the
    future, a prompt to drain them is on its way and a new message needs no message of its own. One row
    (id 1), written on first use."""

    id = models.PositiveSmallIntegerField(primary_key=True)
    wake_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"wake-up flag (until {self.wake_until or '-'})"
