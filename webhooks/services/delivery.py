"""Delivery: attempts of due deliveries, a batch of one endpoint's at a time, and their record.

A run starts from one delivery (the task `deliver_webhook(delivery_id)`, one broker message per delivery):

1. claim, in one short transaction (outbox.claim_batch): that delivery and up to `limit - 1` more of its
   endpoint that are pending, due and unclaimed, oldest due first, under one lease; rows another run is
   claiming at that moment are skipped, not waited for. If the run's own delivery cannot be claimed (done,
   not due, or held) the run does nothing: one read, no write. Attempts an earlier holder left `sending`
   are closed as `worker_lost` (that worker died: we hold its lease now);
2. for each claimed delivery in turn: its attempt row (`sending`) is committed BEFORE its request leaves;
   sign and POST outside any transaction, through a keep-alive pool (core.outbound.ConnectionPool: a
   connection serves only the address vetted for this request and the same host); then ONE short
   transaction completes the attempt, records the outcome (conditioned on still holding the claim) and
   writes the next delivery's `sending` row if that delivery is still held. So every POST is recorded
   before and after it, at one commit per POST;
3. the batch starts no request that could outlast its lease (or after WEBHOOK_BATCH_SECONDS); the
   deliveries it did not start are released at once and one message is sent for them.

A worker killed mid-batch leaves its delivery in flight `sending` and the deliveries it had not started
claimed until the lease expires (WEBHOOK_LEASE_SECONDS, default 3 x the timeout + 60 s); the sweeper then
marks the attempt `worker_lost` and re-enqueues all of them, and the one in flight is POSTed again
(at-least-once: receivers dedupe on the event id). A recorded success is final: no later run sends that
delivery. Within a batch deliveries go out one after another, oldest due first; across runs and retries
they are not ordered (docs/webhooks.md).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Coalesce

import webhooks.services as package  # the swappable seams (RESOLVER, _enqueue), read at call time
from core.outbound import ConnectionPool, OutboundError, UnsafeURLError, guarded_request
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
from webhooks.services.outbox import DELIVERIES, claim_batch, delivery_lease
from webhooks.services.publishing import enqueue_after_commit

logger = logging.getLogger("webhooks")

__all__ = [
    "CONNECTIONS",
    "close_lost_attempts",
    "delivery_lease",
    "webhook_deliveries_attempt",
    "webhook_delivery_attempt",
]

WORKER_LOST_ERROR = "worker lost during the attempt: outcome unknown (the receiver may have had it)"

# Retries due this soon are enqueued with a countdown; later ones are left to the sweeper (no
# hours-long ETA messages sitting in a broker or a worker's memory).
ENQUEUE_RETRY_WITHIN = timedelta(minutes=5)

# Time kept free between the end of a batch's last possible request and its lease's expiry (the
# records around it).
LEASE_MARGIN = timedelta(seconds=5)

# Keep-alive connections of this worker process, shared by its batches.
CONNECTIONS = ConnectionPool()


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


def _attempt_limit() -> timedelta:
    """The longest one attempt may take (guarded_request's deadline)."""
    return timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS * 3)


@dataclass
class _InFlight:
    delivery: WebhookDelivery
    attempt_id: int
    sent_at: datetime
    headers: dict[str, str]


@dataclass
class _Batch:
    token: datetime  # the claim's lease expiry, on every claimed row
    endpoint: WebhookEndpoint
    waiting: deque[WebhookDelivery]  # claimed, not started yet
    stop_at: float  # time.monotonic(): start no request after this
    endpoint_failing: bool
    outcomes: dict[int, str] = field(default_factory=dict)

    def has_room(self) -> bool:
        """Whether one more request surely ends (and is recorded) before the lease expires."""
        return time.monotonic() < self.stop_at and utc_now() + _attempt_limit() + LEASE_MARGIN <= self.token


def webhook_delivery_attempt(*, delivery_id: int) -> str:
    """Make one attempt of a delivery if it is due and nobody else holds it; returns the outcome:
    "skipped" (not pending, not due, or claimed by another run), "succeeded", "retry_scheduled",
    "failed" (attempts exhausted, or the endpoint is disabled), "endpoint_disabled" (410 or 5 days).

    Only the run whose claim matched sends. After a success the row is no longer pending, so any later
    run skips it.
    """
    return webhook_deliveries_attempt(delivery_id=delivery_id, limit=1).get(delivery_id, "skipped")


def webhook_deliveries_attempt(*, delivery_id: int, limit: int | None = None) -> dict[int, str]:
    """Attempt `delivery_id` and, in the same run, up to `limit - 1` (default WEBHOOK_BATCH_SIZE) more due
    deliveries of its endpoint (module docstring). Returns the outcome of each delivery the run handled
    (see `webhook_delivery_attempt`), in order; empty when `delivery_id` could not be claimed."""
    limit = settings.WEBHOOK_BATCH_SIZE if limit is None else limit
    now = utc_now()
    if delivery_lease() < 2 * _attempt_limit() + LEASE_MARGIN:
        limit = 1  # a lease with room for one attempt only: never claim rows the batch could not start
    claimed = claim_batch(delivery_id, limit=max(limit, 1), now=now)
    if claimed is None:
        return {}
    token, ids = claimed
    lost = WebhookAttempt.objects.filter(delivery_id__in=ids, state=AttemptState.SENDING)  # rare
    for lost_delivery_id in set(lost.values_list("delivery_id", flat=True)):
        close_lost_attempts(lost_delivery_id, lease_held=True)
    by_id = WebhookDelivery.objects.select_related("event").in_bulk(ids)
    deliveries = [by_id[pk] for pk in ids if pk in by_id]
    if not deliveries:
        return {}
    endpoint = WebhookEndpoint.objects.get(pk=deliveries[0].endpoint_id)
    batch = _Batch(
        token=token,
        endpoint=endpoint,
        waiting=deque(deliveries),
        stop_at=time.monotonic() + settings.WEBHOOK_BATCH_SECONDS,
        endpoint_failing=endpoint.failing_since is not None,
    )

    with transaction.atomic():
        current = _start_next(batch)
    while current is not None:
        current = _send_and_record(batch, current)
    if batch.waiting:
        _release(batch)
    return batch.outcomes


def _start_next(batch: _Batch) -> _InFlight | None:
    """Inside a transaction: the next waiting delivery still held and still to be tried gets its attempt
    row (`sending`), committed with this transaction before its request leaves. Deliveries no longer held
    (cancelled, or failed by a disable, meanwhile) are skipped; exhausted ones, or all of a disabled
    endpoint, are failed. Returns None when none is left."""
    policy = retry.policy_for(batch.endpoint.scheme)
    while batch.waiting:
        delivery = batch.waiting.popleft()
        pk = delivery.pk
        if not DELIVERIES.held(pk, batch.token).exists():
            batch.outcomes[pk] = "skipped"
            continue
        # Lost attempts count: a delivery whose request keeps killing its worker ends failed, not in a loop.
        if not batch.endpoint.is_active or delivery.attempt_count >= policy.max_attempts:
            DELIVERIES.held(pk, batch.token).update(
                status=DeliveryStatus.FAILED, next_attempt_at=None, claimed_until=None, updated_at=utc_now()
            )
            batch.outcomes[pk] = "failed"
            continue
        event = delivery.event
        sent_at = utc_now()
        headers = signing.build_headers(
            scheme=batch.endpoint.scheme,
            event_id=event.public_id,
            event_type=event.type,
            event_created_at=event.created_at,
            body=event.body,
            secrets=_valid_secrets(batch.endpoint, sent_at),
            timestamp=int(sent_at.timestamp()),
        )
        attempt = WebhookAttempt.objects.create(
            delivery_id=pk,
            state=AttemptState.SENDING,
            attempted_at=sent_at,
            request_headers=_recordable_headers(headers),
        )
        return _InFlight(delivery=delivery, attempt_id=attempt.pk, sent_at=sent_at, headers=headers)
    return None


def _send_and_record(batch: _Batch, current: _InFlight) -> _InFlight | None:
    """POST `current` outside any transaction, then in one transaction record its outcome and start the
    next delivery if the batch has room for it. Returns that next delivery in flight, if any."""
    delivery_id = current.delivery.pk
    status_code: int | None = None
    excerpt = ""
    error = ""
    retry_after_header: str | None = None
    started = time.monotonic()
    try:
        response = guarded_request(
            "POST",
            batch.endpoint.url,
            headers=current.headers,
            content=current.delivery.event.body,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            user_supplied=True,
            resolver=package.RESOLVER,
            pool=CONNECTIONS,
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

    with transaction.atomic():
        outcome = _record_attempt(
            delivery_id=delivery_id,
            attempt_id=current.attempt_id,
            lease_until=batch.token,
            sent_at=current.sent_at,
            status_code=status_code,
            excerpt=excerpt,
            error=error[:300],
            duration_ms=duration_ms,
            retry_after_header=retry_after_header,
            failing_endpoint_id=batch.endpoint.pk if batch.endpoint_failing else None,
        )
        batch.outcomes[delivery_id] = outcome
        if outcome == "succeeded":
            batch.endpoint_failing = False
        elif outcome in ("retry_scheduled", "failed"):
            batch.endpoint_failing = True
        if outcome == "endpoint_disabled":
            batch.waiting.clear()  # disabling failed every pending delivery of the endpoint, ours included
        return _start_next(batch) if batch.waiting and batch.has_room() else None


def _release(batch: _Batch) -> None:
    """Give back the deliveries the batch did not start (lease cleared: due again at once) and send one
    message for them; if it is lost, the sweeper finds them."""
    ids = [delivery.pk for delivery in batch.waiting]
    batch.waiting.clear()
    released = (
        DELIVERIES.rows().filter(pk__in=ids, claimed_until=batch.token).update(claimed_until=None, updated_at=utc_now())
    )
    if released:
        package._enqueue(ids[0])


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
    failing_endpoint_id: int | None,
) -> str:
    """Inside a transaction: complete the attempt and record the delivery's outcome. A success on a
    delivery still held is one conditional UPDATE (plus clearing `failing_since` when the caller says
    the endpoint, `failing_endpoint_id`, may be failing); anything else reads the delivery under its row
    lock."""
    now = utc_now()
    # By pk, whatever its state: a late outcome replaces a `worker_lost` guess.
    WebhookAttempt.objects.filter(pk=attempt_id).update(
        state=AttemptState.COMPLETED,
        status_code=status_code,
        response_excerpt=excerpt,
        duration_ms=duration_ms,
        error=error,
    )
    success = status_code is not None and 200 <= status_code < 300
    if success and DELIVERIES.held(delivery_id, lease_until).update(
        status=DeliveryStatus.SUCCEEDED,
        attempt_count=F("attempt_count") + 1,
        first_attempt_at=Coalesce(F("first_attempt_at"), Value(sent_at, output_field=DateTimeField())),
        last_attempt_at=sent_at,
        succeeded_at=now,
        next_attempt_at=None,
        claimed_until=None,
        updated_at=now,
    ):
        if failing_endpoint_id is not None:
            WebhookEndpoint.objects.filter(pk=failing_endpoint_id, failing_since__isnull=False).update(
                failing_since=None
            )
        return "succeeded"

    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
    endpoint = WebhookEndpoint.objects.get(pk=delivery.endpoint_id)
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
