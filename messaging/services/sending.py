"""Sending: what the send task calls. It never holds a transaction open across the provider call:

1. claim (core.outbox): one conditional UPDATE takes a lease on a queued, due, unclaimed row and counts
   the attempt, so two workers given the same message send it once;
2. send through the configured backend, outside any transaction;
3. record the outcome with an UPDATE conditioned on the claim: sent; or queued again with a backoff
   (transient error, attempts left); or failed (permanent error, or no attempts left).

A worker that dies between 1 and 3 leaves a lease that expires (messaging.outbox: 300 s for ordinary
messages; 20 s for urgent ones, whose lease a heartbeat renews while the worker lives and whose watchdog
task, enqueued at claim time, retries them just after it would expire); the sweeper also re-enqueues the
row, noting `last_error = "worker_lost"` (the outcome of that attempt is unknown). If the provider had
accepted the message, it is sent again: at-least-once. A recorded success is final: the row is no longer
queued, so no later run sends it. `attempts` counts every claim, so it counts every provider request.
Logs carry the public id, channel, provider and error code only.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F

from audit.services import audit_event_record
from core.actors import Actor
from core.outbox import LeaseHeartbeat
from core.time import utc_now
from messaging.backends import SendError, TransientSendError, get_backend
from messaging.models import OutboundMessage
from messaging.outbox import (
    DRAIN_BATCH,
    DRAIN_BUDGET,
    MESSAGES,
    URGENT_MAX_HOLD,
    drain_batch,
    is_urgent,
    urgent_lease,
    wake,
    wake_clear,
)

logger = logging.getLogger("messaging")

Status = OutboundMessage.Status

# Retry backoff after a transient error: 30 s, 1 min, 2 min, 4 min... capped at 1 h, +0-10 % jitter.
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600
# Who records a message's final failure.
SENDER_ACTOR = Actor.system("messaging")
# last_error of a message whose worker died holding it (whether the provider got it is unknown).
WORKER_LOST = "worker_lost"


@dataclass(frozen=True)
class SendOutcome:
    """What one run of `message_send` did. `retry_in`: seconds until the next attempt is due, if any."""

    # "sent", "retry", "failed", or "skipped" (final, not due, or claimed by another worker; for an urgent
    # message held by a live worker, `retry_in` re-arms the watchdog for just after that lease).
    result: str
    retry_in: float | None = None


def message_claim(*, message_id: int, now: datetime | None = None, lease: timedelta | None = None) -> datetime | None:
    """Take the lease on a queued, due, unclaimed message and count the attempt, in one UPDATE (`lease`:
    this claim's length, default the ordinary lease).

    Returns the lease's expiry (the claim token) or None if the message is not ours to send."""
    now = now or utc_now()
    return MESSAGES.claim(message_id, now=now, lease=lease, attempts=F("attempts") + 1, updated_at=now)


def message_send(*, message_id: int) -> SendOutcome:
    """Send one queued message if it is due and unclaimed; see the module docstring."""
    purpose = OutboundMessage.objects.filter(pk=message_id).values_list("purpose", flat=True).first()
    if purpose is None:
        return SendOutcome("skipped")
    urgent = is_urgent(purpose)
    lease = urgent_lease() if urgent else None
    # Tasks run in-process when eager (development only): a watchdog would run at once, inside this send.
    watched = urgent and not settings.CELERY_TASK_ALWAYS_EAGER
    claim = message_claim(message_id=message_id, lease=lease)
    if claim is None:
        return SendOutcome("skipped", retry_in=_watch_again_in(message_id) if watched else None)
    if watched:
        _enqueue_watchdog(message_id, lease)
    message = OutboundMessage.objects.get(pk=message_id)
    backend = get_backend()
    if urgent:
        with LeaseHeartbeat(MESSAGES, message_id, claim, lease=lease, max_hold=URGENT_MAX_HOLD) as beat:
            result = _send(backend, message)
        claim = beat.token  # the heartbeat moved the lease (and with it the token)
    else:
        result = _send(backend, message)
    if isinstance(result, SendError):
        return _record_failure(message, claim=claim, error=result, provider=backend.name)
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


@dataclass(frozen=True)
class DrainOutcome:
    """What one drain did: `retries` are (message id, seconds) whose next attempt the caller schedules."""

    sent: int
    retries: tuple[tuple[int, float], ...]
    handed_on: bool


def messages_drain(*, first_message_id: int, clock=time.monotonic) -> DrainOutcome:
    """A drain prompted by a wake-up (messaging.outbox, "Wake-ups"): clear the flag, then send the prompt's
    message and every ordinary message due and unclaimed, batch after batch, until none is left or the run's
    budget is spent (the rest is handed on to a new drain). Each message is claimed as `message_send` claims
    it, so a message another worker holds is skipped, never sent twice."""
    wake_clear()
    deadline = clock() + DRAIN_BUDGET.total_seconds()
    sent, retries = 0, []
    batch = [first_message_id]
    while batch:
        if len(batch) >= DRAIN_BATCH:
            wake(batch[-1])  # a backlog: invite a second drain, if no prompt is on its way
        for message_id in batch:
            if clock() >= deadline:
                wake(message_id, force=True)
                return DrainOutcome(sent, tuple(retries), handed_on=True)
            outcome = message_send(message_id=message_id)
            sent += outcome.result == "sent"
            if outcome.retry_in is not None:
                retries.append((message_id, outcome.retry_in))
        batch = drain_batch()
    return DrainOutcome(sent, tuple(retries), handed_on=False)


def _send(backend, message: OutboundMessage):
    """The backend's SendResult, or the SendError to record (an unexpected exception becomes a transient
    `internal_error`, so the message is not lost)."""
    try:
        return backend.send(message)
    except SendError as exc:
        return exc
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
        return TransientSendError("internal_error")


def _watch_again_in(message_id: int) -> float | None:
    """An urgent message another worker holds (a live lease, maybe renewed by its heartbeat): seconds until
    just after that lease would expire, so a watchdog that came too early runs again then; None when the
    message is final or free (nothing to watch)."""
    claimed_until = MESSAGES.rows().filter(pk=message_id).values_list("claimed_until", flat=True).first()
    now = utc_now()
    if claimed_until is None or claimed_until <= now:
        return None
    return (claimed_until - now).total_seconds() + 1


def _enqueue_watchdog(message_id: int, lease: timedelta) -> None:
    """Prompt a worker for just after this claim would expire: if this worker dies, another one sends
    the message then (without waiting for the minute sweeper); otherwise that run finds it final and
    skips. Best effort: a broker failure is logged, the sweeper remains the guarantee."""
    from messaging.tasks import enqueue_send

    try:
        enqueue_send(message_id, countdown=lease.total_seconds() + 1, urgent=True)
    except Exception:
        logger.exception("message %s: could not enqueue the watchdog; the sweeper covers it", message_id)


def messages_sweep(*, now: datetime | None = None) -> int:
    """Beat, every minute: note the messages whose worker died holding them (an expired lease: the outcome
    of that attempt is unknown, `last_error = "worker_lost"`), then enqueue every queued message that is
    due (past the outbox's grace) and not claimed, oldest first, one bounded batch. Returns how many."""
    now = now or utc_now()
    ids = MESSAGES.due_ids(now=now)  # rows with an expired lease included (before it is cleared below)
    lost = (
        MESSAGES.rows()
        .filter(claimed_until__lte=now)
        .update(claimed_until=None, last_error=WORKER_LOST, updated_at=now)
    )
    if lost:
        logger.warning("%d message(s) left claimed by a worker that died; sending again", lost)
    for message_id in ids:
        MESSAGES.enqueue(message_id)
    return len(ids)


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
