"""Delivery: one HTTP attempt of a delivery and its record.

1. claim (core.outbox, one committed conditional UPDATE: pending, due, no live lease); attempts an
   earlier holder left `sending` are closed as `worker_lost` (that worker died: we hold its lease now);
2. write the attempt row (`sending`, committed) BEFORE the request leaves, so a worker killed during the
   POST still leaves its attempt in the history; sign and POST outside any transaction;
3. complete the attempt and record the outcome in a short transaction, conditioned on still holding the
   claim.

A worker killed between 2 and 3 leaves the delivery claimed until its lease expires (WEBHOOK_LEASE_SECONDS,
default 3 x the timeout + 60 s); the sweeper then marks the attempt `worker_lost` and re-enqueues the
delivery, which is POSTed again (at-least-once: receivers dedupe on the event id). A recorded success is
final: no later run sends that delivery.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

import webhooks.services as package  # the swappable seams (RESOLVER, _enqueue), read at call time
from core.outbound import OutboundError, UnsafeURLError, guarded_request
from core.time import utc_now
from webhooks import retry, signing
from webhooks.models import (
    RESPONSE_EXCERPT_BYTES,
    AttemptState,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from webhooks.services.endpoints import AUTO_DISABLE_ACTOR, disable_and_notify, disable_if_failing_too_long, lock
from webhooks.services.outbox import DELIVERIES, delivery_lease
from webhooks.services.publishing import enqueue_after_commit

logger = logging.getLogger("webhooks")

__all__ = ["close_lost_attempts", "delivery_lease", "webhook_delivery_attempt"]

WORKER_LOST_ERROR = "worker lost during the attempt: outcome unknown (the receiver may have had it)"

# Retries due this soon are enqueued with a countdown; later ones are left to the sweeper (no
# hours-long ETA messages sitting in a broker or a worker's memory).
ENQUEUE_RETRY_WITHIN = timedelta(minutes=5)


def _excerpt(content: bytes) -> str:
    """At most RESPONSE_EXCERPT_BYTES bytes of the response as text: invalid or cut UTF-8 dropped, NULs
    removed (PostgreSQL text cannot hold them)."""
    return content[:RESPONSE_EXCERPT_BYTES].decode("utf-8", errors="ignore").replace("\x00", "")


def _valid_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    secrets = [endpoint.secret]
    if (
        endpoint.previous_secret
        and endpoint.previous_secret_expires_at is not None
        and endpoint.previous_secret_expires_at > now
    ):
        secrets.append(endpoint.previous_secret)
    return secrets


def _recordable_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower() not in {"authorization"}}


def webhook_delivery_attempt(*, delivery_id: int) -> str:
    """Make one attempt of a delivery if it is due and nobody else holds it; returns the outcome:
    "skipped" (not pending, not due, or claimed by another run), "succeeded", "retry_scheduled",
    "failed" (attempts exhausted, or the endpoint is disabled), "endpoint_disabled" (410 or 5 days).

    Only the run whose claim matched sends. After a success the row is no longer pending, so any later
    run skips it.
    """
    now = utc_now()
    lease_until = DELIVERIES.claim(delivery_id, now=now, updated_at=now)
    if lease_until is None:
        return "skipped"
    if WebhookAttempt.objects.filter(delivery_id=delivery_id, state=AttemptState.SENDING).exists():  # rare
        close_lost_attempts(delivery_id, lease_held=True)
    delivery = WebhookDelivery.objects.select_related("event", "endpoint").get(pk=delivery_id)
    endpoint, event = delivery.endpoint, delivery.event

    # Lost attempts count: a delivery whose request keeps killing its worker ends failed, not in a loop.
    if not endpoint.is_active or delivery.attempt_count >= retry.policy_for(endpoint.scheme).max_attempts:
        DELIVERIES.held(delivery_id, lease_until).update(
            status=DeliveryStatus.FAILED, next_attempt_at=None, claimed_until=None, updated_at=utc_now()
        )
        return "failed"

    body = event.body
    sent_at = utc_now()
    headers = signing.build_headers(
        scheme=endpoint.scheme,
        event_id=event.public_id,
        event_type=event.type,
        event_created_at=event.created_at,
        body=body,
        secrets=_valid_secrets(endpoint, sent_at),
        timestamp=int(sent_at.timestamp()),
    )
    # Committed (autocommit) before the request leaves: the history counts this POST even if we die.
    attempt = WebhookAttempt.objects.create(
        delivery_id=delivery_id,
        state=AttemptState.SENDING,
        attempted_at=sent_at,
        request_headers=_recordable_headers(headers),
    )
    status_code: int | None = None
    excerpt = ""
    error = ""
    retry_after_header: str | None = None
    started = time.monotonic()
    try:
        response = guarded_request(
            "POST",
            endpoint.url,
            headers=headers,
            content=body,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            user_supplied=True,
            resolver=package.RESOLVER,
        )
        status_code = response.status_code
        excerpt = _excerpt(response.content)
        retry_after_header = response.headers.get("retry-after")
    except UnsafeURLError as exc:
        error = f"refused: {exc}"
    except OutboundError as exc:
        error = str(exc)
    except Exception as exc:  # never leave a claimed delivery without a recorded attempt
        logger.exception("webhook delivery %s: unexpected error", delivery_id)
        error = f"unexpected error: {type(exc).__name__}"
    duration_ms = int((time.monotonic() - started) * 1000)
    if status_code is not None and 300 <= status_code < 400:
        error = "redirect not followed (3xx counts as a failure)"

    return _record_attempt(
        delivery_id=delivery_id,
        attempt_id=attempt.pk,
        lease_until=lease_until,
        sent_at=sent_at,
        status_code=status_code,
        excerpt=excerpt,
        error=error[:300],
        duration_ms=duration_ms,
        retry_after_header=retry_after_header,
    )


@transaction.atomic
def _record_attempt(
    *,
    delivery_id: int,
    attempt_id: int,
    lease_until: datetime,
    sent_at: datetime,
    status_code: int | None,
    excerpt: str,
    error: str,
    duration_ms: int,
    retry_after_header: str | None,
) -> str:
    now = utc_now()
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
    endpoint = WebhookEndpoint.objects.get(pk=delivery.endpoint_id)
    # By pk, whatever its state: a late outcome replaces a `worker_lost` guess.
    WebhookAttempt.objects.filter(pk=attempt_id).update(
        state=AttemptState.COMPLETED,
        status_code=status_code,
        response_excerpt=excerpt,
        duration_ms=duration_ms,
        error=error,
    )
    success = status_code is not None and 200 <= status_code < 300
    owned = delivery.status == DeliveryStatus.PENDING and delivery.claimed_until == lease_until
    if not owned and not success:
        # Cancelled or disabled while we were sending (or our lease was taken over): keep its state.
        return "skipped"

    delivery.attempt_count += 1
    delivery.first_attempt_at = delivery.first_attempt_at or sent_at
    delivery.last_attempt_at = sent_at
    delivery.claimed_until = None
    if success:
        delivery.status = DeliveryStatus.SUCCEEDED
        delivery.succeeded_at = now
        delivery.next_attempt_at = None
        delivery.save()
        WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=False).update(failing_since=None)
        return "succeeded"

    if status_code == 410:
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
        delivery.save()
        endpoint = lock(endpoint)
        if endpoint.is_active:
            disable_and_notify(endpoint, reason="410 Gone", code="gone", now=now, actor=AUTO_DISABLE_ACTOR,
                               notify=True)  # fmt: skip
        return "endpoint_disabled"

    retry_after = None
    if status_code in (429, 503):
        retry_after = retry.parse_retry_after(retry_after_header, now=now)
    policy = retry.policy_for(endpoint.scheme)
    next_at = policy.next_attempt_at(
        attempt_count=delivery.attempt_count,
        now=now,
        first_attempt_at=delivery.first_attempt_at,
        retry_after=retry_after,
    )
    if next_at is None:
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
        outcome = "failed"
    else:
        delivery.next_attempt_at = next_at
        outcome = "retry_scheduled"
    delivery.save()

    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=sent_at)
    if disable_if_failing_too_long(endpoint.pk, now=now):
        return "endpoint_disabled"
    if next_at is not None and next_at - now <= ENQUEUE_RETRY_WITHIN:
        enqueue_after_commit([delivery.pk], countdown=max((next_at - now).total_seconds(), 0))
    return outcome


@transaction.atomic
def close_lost_attempts(delivery_id: int, *, lease_held: bool, now: datetime | None = None) -> int:
    """Mark the attempts of a delivery still `sending` as `worker_lost` (outcome unknown) and count them in
    the delivery's attempt cycle (a crash that repeats must not retry forever). Only when no live worker
    may still be sending them: the caller holds the delivery's lease (`lease_held`: its previous holder
    is gone), or, checked here under the row lock, nobody does. Returns how many were closed."""
    now = now or utc_now()
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
    if not lease_held and delivery.claimed_until is not None and delivery.claimed_until > now:
        return 0
    lost = list(
        WebhookAttempt.objects.filter(delivery_id=delivery_id, state=AttemptState.SENDING).values_list(
            "pk", "attempted_at"
        )
    )
    if not lost:
        return 0
    WebhookAttempt.objects.filter(pk__in=[pk for pk, _ in lost]).update(
        state=AttemptState.WORKER_LOST, error=WORKER_LOST_ERROR
    )
    first = min(attempted_at for _, attempted_at in lost)
    last = max(attempted_at for _, attempted_at in lost)
    delivery.attempt_count += len(lost)
    delivery.first_attempt_at = min(delivery.first_attempt_at or first, first)
    delivery.last_attempt_at = max(delivery.last_attempt_at or last, last)
    delivery.save(update_fields=["attempt_count", "first_attempt_at", "last_attempt_at", "updated_at"])
    logger.warning("webhook delivery %s: %d attempt(s) lost with their worker", delivery_id, len(lost))
    return len(lost)
