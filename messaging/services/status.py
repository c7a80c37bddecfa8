"""Provider status callbacks: apply a delivery report, never moving a message backwards."""

from __future__ import annotations

import logging

from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Coalesce

from core.domain import Invalid
from core.time import utc_now
from messaging.models import OutboundMessage

logger = logging.getLogger("messaging")

Status = OutboundMessage.Status

# Which current statuses a callback may move a message from, per new status: never backwards, and
# delivered/failed are final.
_FORWARD_FROM = {
    Status.SENT: (Status.QUEUED,),
    Status.DELIVERED: (Status.QUEUED, Status.SENT),
    Status.FAILED: (Status.QUEUED, Status.SENT),
}


def message_status_record(
    *, provider: str, provider_message_id: str, status: str, error_code: str = ""
) -> OutboundMessage | None:
    """Apply a provider's delivery report. Returns the message, or None when no message has that
    provider id. A report that would move the message backwards (delivered -> sent) changes nothing.
    No actor and no audit row: a delivery report is the provider's record, kept on the message."""
    if status not in _FORWARD_FROM:
        raise Invalid("status must be sent, delivered or failed", code="invalid_status")
    message = (
        OutboundMessage.objects.filter(provider=provider, provider_message_id=provider_message_id)
        .only("pk", "public_id", "channel", "status")
        .first()
    )
    if message is None:
        return None
    now = utc_now()
    changes: dict = {"status": status, "updated_at": now, "claimed_until": None, "next_attempt_at": None}
    if status == Status.SENT:
        changes["sent_at"] = Coalesce(F("sent_at"), Value(now, output_field=DateTimeField()))
    elif status == Status.DELIVERED:
        changes["delivered_at"] = now
    else:
        digits = "".join(ch for ch in error_code if ch in "0123456789")[:10]
        changes["last_error"] = f"{provider}_error_{digits}" if digits else f"{provider}_failed"
    # Conditional: two callbacks racing cannot move the message backwards either.
    updated = OutboundMessage.objects.filter(pk=message.pk, status__in=_FORWARD_FROM[status]).update(**changes)
    if updated:
        logger.info("message %s via %s: provider reports %s", message.public_id, message.channel, status)
    message.refresh_from_db()
    return message
