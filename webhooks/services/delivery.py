"""Delivery: attempts of due deliveries, a batch of one endpoint's at a time, and their record.

A broker message wakes an ENDPOINT (the task `deliver_webhook(delivery_id)`: that delivery's endpoint; one
message per endpoint while one is pending or running, see webhooks.services.outbox, "Wake-ups"). Its run
takes batches until the endpoint has nothing claimable:

1. claim, in one short transaction (outbox.claim_batch): up to `limit` pending, due, unclaimed
   deliveries of the endpoint, the message's own first if it is claimable, then the oldest due, under one
   lease; rows another run is claiming at that moment are skipped, not waited for. Attempts an earlier
   holder left `sending` are closed as `worker_lost` (that worker died: we hold its lease now);
2. the claimed deliveries go out in groups of GROUP_SIZE: the group's attempt rows (`sending`) are
   committed BEFORE any of its requests leaves; each is signed and POSTed in turn outside any
   transaction, through a keep-alive pool (core.outbound.ConnectionPool: a connection serves only the
   address vetted for this request, and the same host); then ONE short transaction completes the
   group's attempts, records each delivery's outcome (conditioned on still holding the claim) and writes
   the next group's `sending` rows. So every POST is recorded before and after it, at a few statements
   and one commit per group instead of three commits per POST;
3. no request starts that could outlast the lease (or after WEBHOOK_BATCH_SECONDS): attempts written for
   requests that were not sent are removed, and the deliveries not sent are released at once with one
   message for them (the endpoint is handed on: its flag stays taken);
4. before its first claim the run clears the endpoint's wake-up flag; a delivery published after that sends
   its own message (unless one is already waiting), and one published before it is claimed by this run. A claim
   that fills a whole batch while more is waiting invites one more run, so workers share a backlog.

A worker killed mid-batch leaves its group's attempts `sending` and every delivery it holds claimed
until the lease expires (WEBHOOK_LEASE_SECONDS, default 3 x the timeout + 60 s); the sweeper then marks
those attempts `worker_lost` and re-enqueues the deliveries, which are POSTed again (at-least-once:
receivers dedupe on the event id). Requests of the group that had not left yet are counted `worker_lost`
too: after a crash the history may over-count POSTs, never under-count them. A recorded success is
final: no later run sends that delivery. Within a batch deliveries go out one after another, oldest due
first; across runs and retries they are not ordered (docs/webhooks.md).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from celery.worker import state as worker_state
from django.conf import settings
from django.db import connection, transaction
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
from webhooks.services.outbox import (
    DELIVERIES,
    claim_batch,
    claim_one,
    delivery_lease,
    first_claimable,
    wake_clear,
    wake_endpoints,
)
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

# Attempt rows written together (one INSERT, one commit) before their requests leave one after another.
# A worker killed mid-group leaves all of them `sending`, so up to GROUP_SIZE - 1 never-sent attempts may
# be counted `worker_lost`: the history may over-count POSTs after a crash, never under-count them.
GROUP_SIZE = 20

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
    sent_at: datetime  # the attempt's time: its group's, signed into its headers
    headers: dict[str, str]


@dataclass
class _Result:
    sent: _InFlight
    status_code: int | None
    excerpt: str
    error: str
    duration_ms: int
    retry_after_header: str | None

    @property
    def success(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class _Batch:
    token: datetime  # the claim's lease expiry, on every claimed row
    endpoint: WebhookEndpoint
    waiting: deque[WebhookDelivery]  # claimed, not started yet
    stop_at: float  # time.monotonic(): start no request after this
    endpoint_failing: bool
    outcomes: dict[int, str] = field(default_factory=dict)
    posted: int = 0
    released: list[int] = field(default_factory=list)  # claimed, not sent, given back (lease cleared)

    def has_room(self) -> bool:
        """Whether one more request surely ends (and is recorded) before the lease expires, within the
        batch's time and while the worker is not shutting down (a warm shutdown then finishes quickly
        instead of being killed mid-batch). The batch's first request always goes (the lease is longer
        than one attempt)."""
        if self.posted == 0:
            return True
        if _worker_stopping():
            return False
        return time.monotonic() < self.stop_at and utc_now() + _attempt_limit() + LEASE_MARGIN <= self.token


def webhook_delivery_attempt(*, delivery_id: int) -> str:
    """Make one attempt of a delivery if it is due and nobody else holds it; returns the outcome:
    "skipped" (not pending, not due, or claimed by another run), "succeeded", "retry_scheduled",
    "failed" (attempts exhausted, or the endpoint is disabled), "endpoint_disabled" (410 or 5 days).

    Only the run whose claim matched sends. After a success the row is no longer pending, so any later
    run skips it.
    """
    return webhook_deliveries_attempt(delivery_id=delivery_id, limit=1).get(delivery_id, "skipped")


def webhook_deliveries_attempt(*, delivery_id: int, limit: int | None = None, drain: bool = False) -> dict[int, str]:
    """Attempt a batch of up to `limit` (default WEBHOOK_BATCH_SIZE) due deliveries of the endpoint of
    `delivery_id`, that one first if it is claimable (module docstring). Returns the outcome of each
    delivery the run handled (see `webhook_delivery_attempt`), in order; empty when nothing could be
    claimed. With `limit=1` only `delivery_id` itself is ever claimed.

    With `drain` (the task: a wake-up message of the endpoint) the run clears the endpoint's wake-up flag
    and takes batch after batch until the endpoint has nothing claimable (`_drain`); after
    WEBHOOK_BATCH_SECONDS, or when the worker is asked to stop, it hands the endpoint on to a new message
    instead (other endpoints' messages get their turn)."""
    limit = settings.WEBHOOK_BATCH_SIZE if limit is None else max(limit, 1)
    single = limit == 1 and not drain
    if delivery_lease() < 2 * _attempt_limit() + LEASE_MARGIN:
        limit = 1  # a lease with room for one attempt only: never claim rows the batch could not start
    stop_at = time.monotonic() + settings.WEBHOOK_BATCH_SECONDS
    if single:
        claimed = claim_one(delivery_id, now=utc_now())
        batch = _run_batch(claimed, stop_at=stop_at) if claimed is not None else None
        return batch.outcomes if batch is not None else {}
    endpoint_id = WebhookDelivery.objects.filter(pk=delivery_id).values_list("endpoint_id", flat=True).first()
    if endpoint_id is None:
        return {}
    if not drain:
        batch = _run_batch(claim_batch(endpoint_id, limit=limit, now=utc_now(), first=delivery_id), stop_at=stop_at)
        if batch is None:
            return {}
        if batch.released:
            wake_endpoints({endpoint_id: batch.released[0]}, force=True)
        return batch.outcomes
    return _drain(endpoint_id, first=delivery_id, limit=limit, stop_at=stop_at)


def _drain(endpoint_id: int, *, first: int, limit: int, stop_at: float) -> dict[int, str]:
    """The task's run (see `webhook_deliveries_attempt`): it clears the endpoint's wake-up flag (committed,
    before its first claim: webhooks.services.outbox, "Wake-ups"), then claims and sends until nothing is
    claimable. A claim that fills a whole batch while more is waiting invites one more run; out of time, the
    run hands what is left on. Both send a message only if they take the flag: a flag already taken means a
    message whose run has not started yet, and that run will claim what is left."""
    outcomes: dict[int, str] = {}
    batches = 0
    invited = False
    wake_clear(endpoint_id)
    while True:
        if batches and (time.monotonic() >= stop_at or _worker_stopping()):  # the first batch always goes
            next_id = first_claimable(endpoint_id)
            if next_id is not None:
                wake_endpoints({endpoint_id: next_id})
            return outcomes
        claimed = claim_batch(endpoint_id, limit=limit, now=utc_now(), first=None if batches else first)
        if claimed is None:
            return outcomes
        if not invited and limit > 1 and len(claimed[1]) == limit:
            next_id = first_claimable(endpoint_id)
            if next_id is not None:
                invited = True
                wake_endpoints({endpoint_id: next_id})  # another worker takes the next batch meanwhile
        batch = _run_batch(claimed, stop_at=stop_at)
        batches += 1
        if batch is None:
            continue
        outcomes.update(batch.outcomes)
        if batch.released:  # out of time or lease, or the worker is stopping: a new message takes the rest
            wake_endpoints({endpoint_id: batch.released[0]})
            return outcomes


def _worker_stopping() -> bool:
    """The Celery worker running us was asked to shut down (warm or cold)."""
    return worker_state.should_stop is not None or worker_state.should_terminate is not None


def _run_batch(claimed: tuple[datetime, list[int]] | None, *, stop_at: float) -> _Batch | None:
    """Send one claimed batch (module docstring); None when nothing was claimed."""
    if claimed is None:
        return None
    token, ids = claimed
    lost = WebhookAttempt.objects.filter(delivery_id__in=ids, state=AttemptState.SENDING)  # rare
    for lost_delivery_id in set(lost.values_list("delivery_id", flat=True)):
        close_lost_attempts(lost_delivery_id, lease_held=True)
    by_id = WebhookDelivery.objects.select_related("event").in_bulk(ids)
    deliveries = [by_id[pk] for pk in ids if pk in by_id]
    if not deliveries:
        return None
    endpoint = WebhookEndpoint.objects.get(pk=deliveries[0].endpoint_id)  # once: its secrets are decrypted
    batch = _Batch(
        token=token,
        endpoint=endpoint,
        waiting=deque(deliveries),
        stop_at=stop_at,
        endpoint_failing=endpoint.failing_since is not None,
    )

    with transaction.atomic():
        group = _start_group(batch)
    while group:
        results = []
        for sent in group:
            if not batch.has_room():
                break
            results.append(_post(batch, sent))
            batch.posted += 1
            if results[-1].status_code == 410:
                break  # the endpoint is gone: the rest of the group is not sent
        with transaction.atomic():
            _unsend(batch, group[len(results) :])
            _record_group(batch, results)
            group = _start_group(batch) if batch.waiting and batch.has_room() else []
    if batch.waiting:
        _release(batch)
    return batch


def _start_group(batch: _Batch) -> list[_InFlight]:
    """Inside a transaction: up to GROUP_SIZE waiting deliveries still held and still to be tried get
    their attempt rows (`sending`, one INSERT), committed with this transaction before any of their
    requests leaves. Deliveries no longer held (cancelled, or failed by a disable, meanwhile) are
    skipped; exhausted ones, or all of a disabled endpoint, are failed."""
    policy = retry.policy_for(batch.endpoint.scheme)
    sendable: list[WebhookDelivery] = []
    while batch.waiting and not sendable:
        candidates = [batch.waiting.popleft() for _ in range(min(GROUP_SIZE, len(batch.waiting)))]
        held = set(
            DELIVERIES.rows()
            .filter(pk__in=[delivery.pk for delivery in candidates], claimed_until=batch.token)
            .values_list("pk", flat=True)
        )
        exhausted: list[int] = []
        for delivery in candidates:
            if delivery.pk not in held:
                batch.outcomes[delivery.pk] = "skipped"
            # Lost attempts count: a delivery whose request keeps killing its worker ends failed, not in a loop.
            elif not batch.endpoint.is_active or delivery.attempt_count >= policy.max_attempts:
                exhausted.append(delivery.pk)
                batch.outcomes[delivery.pk] = "failed"
            else:
                sendable.append(delivery)
        if exhausted:
            DELIVERIES.rows().filter(pk__in=exhausted, claimed_until=batch.token).update(
                status=DeliveryStatus.FAILED, next_attempt_at=None, claimed_until=None, updated_at=utc_now()
            )
    if not sendable:
        return []
    sent_at = utc_now()
    secrets = _valid_secrets(batch.endpoint, sent_at)
    group = []
    attempts = []
    for delivery in sendable:
        event = delivery.event
        headers = signing.build_headers(
            scheme=batch.endpoint.scheme,
            event_id=event.public_id,
            event_type=event.type,
            event_created_at=event.created_at,
            body=event.body,
            secrets=secrets,
            timestamp=int(sent_at.timestamp()),
        )
        group.append(_InFlight(delivery=delivery, attempt_id=0, sent_at=sent_at, headers=headers))
        attempts.append(
            WebhookAttempt(
                delivery_id=delivery.pk,
                state=AttemptState.SENDING,
                attempted_at=sent_at,
                request_headers=_recordable_headers(headers),
            )
        )
    for sent, attempt in zip(group, WebhookAttempt.objects.bulk_create(attempts), strict=True):
        sent.attempt_id = attempt.pk
    return group


def _post(batch: _Batch, sent: _InFlight) -> _Result:
    """One request, outside any transaction; every failure becomes the result's error."""
    status_code: int | None = None
    excerpt = ""
    error = ""
    retry_after_header: str | None = None
    started = time.monotonic()
    try:
        response = guarded_request(
            "POST",
            batch.endpoint.url,
            headers=sent.headers,
            content=sent.delivery.event.body,
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
        logger.exception("webhook delivery %s: unexpected error", sent.delivery.pk)
        error = f"unexpected error: {type(exc).__name__}"
    duration_ms = int((time.monotonic() - started) * 1000)
    if status_code is not None and 300 <= status_code < 400:
        error = "redirect not followed (3xx counts as a failure)"
    return _Result(sent, status_code, excerpt, error[:300], duration_ms, retry_after_header)


def _unsend(batch: _Batch, unsent: list[_InFlight]) -> None:
    """Inside a transaction: attempts written for a group but never sent (the lease or the batch's time
    ran out, or the endpoint answered 410) are removed, and their deliveries wait to be released."""
    if not unsent:
        return
    WebhookAttempt.objects.filter(pk__in=[sent.attempt_id for sent in unsent]).delete()
    batch.waiting.extendleft(reversed([sent.delivery for sent in unsent]))


def _complete_attempts(results: list[_Result]) -> None:
    """Inside a transaction: each attempt's outcome, by pk whatever its state (a late outcome replaces a
    `worker_lost` guess). One parameterized UPDATE run for every row (psycopg pipelines them in one round
    trip); Django's bulk_update builds a CASE per column, which costs more CPU than the whole POST."""
    table = connection.ops.quote_name(WebhookAttempt._meta.db_table)
    columns = ("state", "status_code", "response_excerpt", "duration_ms", "error")
    assignments = ", ".join(f"{connection.ops.quote_name(column)} = %s" for column in columns)
    completed = AttemptState.COMPLETED.value
    rows = [(completed, r.status_code, r.excerpt, r.duration_ms, r.error, r.sent.attempt_id) for r in results]
    with connection.cursor() as cursor:
        # Identifiers from the model, quoted; every value is a parameter.
        sql = f"UPDATE {table} SET {assignments} WHERE {connection.ops.quote_name(WebhookAttempt._meta.pk.column)} = %s"  # noqa: S608
        cursor.executemany(sql, rows)


def _record_group(batch: _Batch, results: list[_Result]) -> None:
    """Inside a transaction: complete the group's attempts (one UPDATE) and record each delivery's
    outcome. Successes on deliveries still held are one UPDATE together; anything else goes through
    `_record_outcome`, under the delivery's row lock."""
    if not results:
        return
    now = utc_now()
    _complete_attempts(results)
    sent_at = results[0].sent.sent_at  # one per group
    succeeded = [result.sent.delivery.pk for result in results if result.success]
    recorded: set[int] = set()
    if succeeded:
        count = (
            DELIVERIES.rows()
            .filter(pk__in=succeeded, claimed_until=batch.token)
            .update(
                status=DeliveryStatus.SUCCEEDED,
                attempt_count=F("attempt_count") + 1,
                first_attempt_at=Coalesce(F("first_attempt_at"), Value(sent_at, output_field=DateTimeField())),
                last_attempt_at=sent_at,
                succeeded_at=now,
                next_attempt_at=None,
                claimed_until=None,
                updated_at=now,
            )
        )
        if count == len(succeeded):
            recorded = set(succeeded)
        elif count:
            recorded = set(
                WebhookDelivery.objects.filter(pk__in=succeeded, succeeded_at=now).values_list("pk", flat=True)
            )
        if recorded and batch.endpoint_failing:
            WebhookEndpoint.objects.filter(pk=batch.endpoint.pk, failing_since__isnull=False).update(failing_since=None)
            batch.endpoint_failing = False
    for result in results:
        pk = result.sent.delivery.pk
        if pk in recorded:
            batch.outcomes[pk] = "succeeded"
            continue
        outcome = _record_outcome(
            delivery_id=pk,
            lease_until=batch.token,
            sent_at=result.sent.sent_at,
            status_code=result.status_code,
            retry_after_header=result.retry_after_header,
            now=now,
        )
        batch.outcomes[pk] = outcome
        if outcome in ("retry_scheduled", "failed"):
            batch.endpoint_failing = True
        elif outcome == "endpoint_disabled":
            batch.waiting.clear()  # disabling failed every pending delivery of the endpoint, ours included


def _release(batch: _Batch) -> None:
    """Give back the deliveries the batch did not start (lease cleared: due again at once); the caller
    sends one message for them (a wake-up of the endpoint). If it is lost, the sweeper finds them."""
    ids = [delivery.pk for delivery in batch.waiting]
    batch.waiting.clear()
    released = (
        DELIVERIES.rows().filter(pk__in=ids, claimed_until=batch.token).update(claimed_until=None, updated_at=utc_now())
    )
    if released:
        batch.released = ids


def _record_outcome(
    *,
    delivery_id: int,
    lease_until: datetime,
    sent_at: datetime,
    status_code: int | None,
    retry_after_header: str | None,
    now: datetime,
) -> str:
    """Inside a transaction, the delivery's row locked: its outcome after an attempt (already completed),
    when it is not a success on a delivery still held."""
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
    endpoint = WebhookEndpoint.objects.get(pk=delivery.endpoint_id)
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
