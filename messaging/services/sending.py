"""Sending: what the send task calls. It never holds a transaction open across the provider call:

1. claim (core.outbox): one conditional UPDATE takes a lease on a queued, due, unclaimed row and counts
   the attempt, so two workers given the same message send it once;
2. send through the configured backend, outside any transaction;
3. record the outcome with an UPDATE conditioned on the claim: sent; or queued again with a backoff
   (transient error, attempts left); or failed (permanent error, or no attempts left).

A worker that dies between 1 and 3 leaves a lease that expires after CLAIM_SECONDS; the sweeper then
re-enqueues the row. (If the provider had accepted the message, it is sent again: at-least-once.)
Logs carry the public id, channel, provider and error code only.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F

from audit.services import audit_event_record
from core.actors import Actor
from core.time import utc_now
from messaging.backends import SendError, get_backend
from messaging.models import OutboundMessage
from messaging.outbox import MESSAGES

logger = logging.getLogger("messaging")

Status = OutboundMessage.Status

# Retry backoff after a transient error: 30 s, 1 min, 2 min, 4 min... capped at 1 h, +0-10 % jitter.
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600
# Who records a message's final failure.
SENDER_ACTOR = Actor.system("messaging")


@dataclass(frozen=True)
class SendOutcome:
    """What one run of `message_send` did. `retry_in`: seconds until the next attempt is due, if any."""

    result: str  # "sent", "retry", "failed", or "skipped" (final, not due, or claimed by another worker)
    retry_in: float | None = None


def message_claim(*, message_id: int, now: datetime | None = None) -> datetime | None:
    """Take the lease on a queued, due, unclaimed message and count the attempt, in one UPDATE.

    Returns the lease's expiry (the claim token) or None if the message is not ours to send."""
    now = now or utc_now()
    return MESSAGES.claim(message_id, now=now, attempts=F("attempts") + 1, updated_at=now)


def message_send(*, message_id: int) -> SendOutcome:
    """Send one queued message if it is due and unclaimed; see the module docstring."""
    claim = message_claim(message_id=message_id)
    if claim is None:
        return SendOutcome("skipped")
    message = OutboundMessage.objects.get(pk=message_id)
    backend = get_backend()
    try:
        result = backend.send(message)
    except SendError as exc:
        return _record_failure(message, claim=claim, error=exc, provider=backend.name)
    except Exception as exc:
        # A bug or an unexpected library error (or the task's soft time limit): treat it as transient so the
        # message is not lost, and log the class only (exception text may quote the recipient).
        logger.error(
            "message %s via %s: unexpected %s in backend %s",
            message.public_id,
            message.channel,
            type(exc).__name__,
            backend.name,
        )
        return _record_failure(
            message, claim=claim, error=SendError("internal_error"), provider=backend.name, transient=True
        )
    now = utc_now()
    updated = MESSAGES.held(message.pk, claim).update(
        status=Status.SENT,
        provider=result.provider[:32],
        provider_message_id=result.provider_message_id[:64],
        sent_at=now,
        last_error="",
        next_attempt_at=None,
        claimed_until=None,
        updated_at=now,
    )
    if not updated:
        logger.warning("message %s: sent, but its claim had expired", message.public_id)
    logger.info("message %s via %s sent (%s)", message.public_id, message.channel, result.provider)
    return SendOutcome("sent")


def messages_sweep() -> int:
    """Beat, every minute: enqueue every queued message that is due (past the outbox's grace) and not
    claimed, oldest first, one bounded batch. Returns how many."""
    return MESSAGES.sweep()


def retry_delay(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before the next attempt after `attempts` attempts; a provider's Retry-After is honoured."""
    delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))
    if retry_after:
        delay = max(delay, min(retry_after, BACKOFF_MAX_SECONDS))
    return delay * (1 + random.uniform(0, 0.1))


def _record_failure(
    message: OutboundMessage, *, claim: datetime, error: SendError, provider: str, transient: bool | None = None
) -> SendOutcome:
    transient = error.transient if transient is None else transient
    attempts = OutboundMessage.objects.values_list("attempts", flat=True).get(pk=message.pk)
    now = utc_now()
    if transient and attempts < settings.MESSAGING_MAX_ATTEMPTS:
        delay = retry_delay(attempts, error.retry_after)
        MESSAGES.held(message.pk, claim).update(
            last_error=error.code,
            provider=provider[:32],
            next_attempt_at=now + timedelta(seconds=delay),
            claimed_until=None,
            updated_at=now,
        )
        logger.warning(
            "message %s via %s: attempt %d failed (%s), retry in %ds",
            message.public_id,
            message.channel,
            attempts,
            error.code,
            delay,
        )
        return SendOutcome("retry", retry_in=delay)
    code = error.code if not transient else f"{error.code} (after {attempts} attempts)"
    with transaction.atomic():
        updated = MESSAGES.held(message.pk, claim).update(
            status=Status.FAILED,
            last_error=code[:200],
            provider=provider[:32],
            next_attempt_at=None,
            claimed_until=None,
            updated_at=now,
        )
        if updated:
            audit_event_record(
                action="messaging.message_failed",
                actor=SENDER_ACTOR,
                subject_type="messaging.message",
                subject_id=message.public_id,
                metadata={
                    "message_id": message.public_id,
                    "channel": message.channel,
                    "purpose": message.purpose,
                    "error": error.code,
                    "attempts": attempts,
                },
            )
    logger.warning(
        "message %s via %s failed after %d attempt(s): %s", message.public_id, message.channel, attempts, error.code
    )
    return SendOutcome("failed")
