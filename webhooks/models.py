"""Outbound webhooks: endpoint -> delivery -> attempt (Saleor's shape), events with their exact bytes.

- `WebhookEndpoint`: where one owner (a partner, an organization...) receives events, how they are
  signed (`scheme`), and whether it is active. Secrets and the notification address are encrypted.
- `WebhookEvent`: one published event; `payload` is the exact body sent to every endpoint (encrypted at
  rest: payloads may describe a patient or client), `public_id` (`evt_...`) is the `webhook-id` header.
- `WebhookDelivery`: one event for one endpoint: the outbox row. The sweeper re-enqueues due ones.
- `WebhookAttempt`: one HTTP try of a delivery, kept for the admin and the partner's support. It is
  written BEFORE the request leaves (`sending`) and completed after, so a worker killed mid-request
  still leaves its attempt; the next claim or the sweeper marks it `worker_lost` (outcome unknown): the
  history counts every POST the receiver may have had.

Every write is in webhooks/services/; see docs/webhooks.md.
"""

from __future__ import annotations

from django.db import models

from core.encryption import EncryptedTextField
from core.ids import public_id_default
from core.outbox import OutboxRow

RESPONSE_EXCERPT_BYTES = 2048


class Scheme(models.TextChoices):
    LOVERESCUE = "loverescue", "LoveRescue (X-LoveRescue-Signature)"
    MARK = "mark", "Mark (X-Mark-Signature)"
    STANDARD = "standard", "Standard Webhooks only"


class WebhookEndpoint(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("wh"), editable=False)
    owner_type = models.CharField(max_length=40)  # "integration_partner", "organization", ...
    owner_id = models.CharField(max_length=100)
    url = models.CharField(max_length=2000)
    secret = EncryptedTextField()
    previous_secret = EncryptedTextField(null=True, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    events = models.JSONField(default=list)  # event types; "*" subscribes to every type
    scheme = models.CharField(max_length=20, choices=Scheme.choices)
    is_active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True, db_index=True)
    notification_email = EncryptedTextField(null=True, blank=True)
    # The wake-up flag (webhooks.services.outbox, "Wake-ups"): until this time a wake-up message for this
    # endpoint is on its way or a run is draining it, so publishing sends no other message; whoever holds
    # it looks at the endpoint's due deliveries after clearing it. Set and cleared by single UPDATEs
    # outside any domain transaction; an expired flag is free (a lost message: the sweeper wakes the endpoint).
    wake_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner_type", "owner_id", "scheme"], name="webhooks_endpoint_owner")]

    def __str__(self) -> str:
        return f"{self.public_id} ({self.scheme})"

    def subscribes_to(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


class WebhookEvent(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("evt"), editable=False)
    type = models.CharField(max_length=100, db_index=True)
    # The exact body sent (UTF-8 JSON text), encrypted at rest; `body` gives the bytes.
    payload = EncryptedTextField()
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.public_id} {self.type}"

    @property
    def body(self) -> bytes:
        return self.payload.encode("utf-8")


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class WebhookDelivery(OutboxRow):
    """An outbox row (core.outbox.OutboxRow): `next_attempt_at` is when the next attempt is due,
    `claimed_until` the lease of the run attempting it now (see services.delivery)."""

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    # Attempts in the current cycle: a redelivery or recovery starts a new cycle at 0 (the WebhookAttempt
    # rows of every cycle are kept).
    attempt_count = models.PositiveIntegerField(default=0)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["event", "endpoint"], name="webhooks_delivery_event_endpoint")]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhooks_delivery_due"),
            # A batch's claim: one endpoint's pending deliveries, oldest due first (never its delivered history).
            models.Index(
                fields=["endpoint", "next_attempt_at"],
                name="webhooks_delivery_endpoint_due",
                condition=models.Q(status="pending"),
            ),
        ]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.status})"


class AttemptState(models.TextChoices):
    SENDING = "sending", "Sending (in flight)"
    COMPLETED = "completed", "Completed"
    WORKER_LOST = "worker_lost", "Worker lost (outcome unknown)"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    # Rows written before this column existed were recorded after their request: completed.
    state = models.CharField(max_length=20, choices=AttemptState.choices, default=AttemptState.COMPLETED)
    attempted_at = models.DateTimeField(db_index=True)
    request_headers = models.JSONField(default=dict)  # signatures and ids only; never a secret
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)  # first RESPONSE_EXCERPT_BYTES bytes, decoded safely
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["attempted_at", "pk"]
        indexes = [
            # The sweeper's query for attempts a dead worker left in flight (few rows, ever).
            models.Index(fields=["delivery"], name="webhooks_attempt_in_flight", condition=models.Q(state="sending")),
        ]

    def __str__(self) -> str:
        return f"attempt {self.pk} -> {self.status_code or self.error}"
