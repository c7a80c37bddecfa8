"""The webhook deliveries outbox (core.outbox): pending rows, the lease, the batch claim of one endpoint's
due deliveries, and the endpoint's wake-up flag.

Wake-ups (issue 15). A broker message prompts a worker to drain ONE ENDPOINT, not to send one delivery, and
an endpoint has at most one such message waiting at a time: the flag `WebhookEndpoint.wake_until` says one
is on its way. Publishing takes the flag after commit (one conditional UPDATE: free or expired) and sends a
message only if it took it, so a burst of N events for an endpoint costs one message, not N. A run clears
the flag (committed) before its first claim, then claims batch after batch until nothing is claimable. So
when a publisher finds the flag taken, the run that will clear it has not cleared it yet: that run's claims
start after the publisher's delivery was committed, and send it (`wake_clear`). A run whose claim fills a whole
batch while more is waiting invites a second run (a message, if it takes the flag), so two or more workers
share a backlog. A lost message leaves the flag taken until it expires (`wake_ttl`), and its deliveries to
the sweeper, which wakes the endpoint of any delivery still due after its grace whatever the flag says.
A duplicate message is harmless: its run claims nothing another run holds (SKIP LOCKED) and costs a read.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Case, Q, QuerySet, Value, When

from core.outbox import Outbox, unclaimed
from core.time import utc_now
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger("webhooks")


def delivery_lease() -> timedelta:
    """How long a claim lasts: longer than the longest attempt (guarded_request's deadline is 3x the
    timeout), so a lease only expires when the worker holding it died. WEBHOOK_LEASE_SECONDS (checked at
    start-up to exceed that deadline) shortens it: a crashed worker's delivery is retried sooner."""
    if settings.WEBHOOK_LEASE_SECONDS:
        return timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
    return timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS * 3 + 60)


def wake_ttl() -> timedelta:
    """How long a wake-up flag holds without its message's run clearing it (the lease: 90 s by default).
    A flag left by a lost message frees itself after this; a message that waits longer in a busy queue
    only lets a publisher send another (harmless)."""
    return delivery_lease()


def _enqueue_delivery(delivery_id: int) -> None:
    import webhooks.services as package  # the swappable seam, read at call time

    package._enqueue(delivery_id)


DELIVERIES = Outbox(
    model=WebhookDelivery,
    pending=Q(status=DeliveryStatus.PENDING),
    lease=delivery_lease,
    enqueue=_enqueue_delivery,
    # The sweeper leaves deliveries alone for this long after they fall due: their own message is
    # normally on its way, and re-enqueueing them at once would only add duplicates.
    sweep_grace=timedelta(seconds=30),
    sweep_batch=1000,
)


def claimable(endpoint_id: int, now: datetime) -> QuerySet:
    """The endpoint's pending deliveries that are due and that no live lease holds."""
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + DELIVERIES.due_tolerance)
    return DELIVERIES.rows().filter(due, unclaimed(now), endpoint_id=endpoint_id)


def first_claimable(endpoint_id: int, now: datetime | None = None) -> int | None:
    """The oldest due, unclaimed delivery of the endpoint (one indexed read), or None."""
    rows = claimable(endpoint_id, now or utc_now()).order_by("next_attempt_at", "pk")
    return rows.values_list("pk", flat=True).first()


def claim_batch(
    endpoint_id: int, *, limit: int, now: datetime, first: int | None = None
) -> tuple[datetime, list[int]] | None:
    """Take one lease on up to `limit` pending, due, unclaimed deliveries of the endpoint, delivery `first`
    first if it is one of them, then the oldest due. Returns the lease expiry (the claim token `held` takes,
    the same on every row) and the ids; None when nothing was claimable.

    Run it in autocommit, like `Outbox.claim`: one short transaction locks the rows with SKIP LOCKED, so two
    runs claiming one endpoint at once split its deliveries instead of waiting for each other, and each row
    is claimed by one run only (PostgreSQL; SQLite's write transactions run one at a time). It reads the
    partial index of pending deliveries per endpoint, never the delivered history."""
    token = now + DELIVERIES.lease_duration()
    rows = claimable(endpoint_id, now).select_for_update(skip_locked=True)
    if first is not None:
        rows = rows.annotate(requested=Case(When(pk=first, then=Value(0)), default=Value(1))).order_by(
            "requested", "next_attempt_at", "pk"
        )
    else:
        rows = rows.order_by("next_attempt_at", "pk")
    with transaction.atomic():
        ids = list(rows.values_list("pk", flat=True)[:limit])
        if ids:
            WebhookDelivery.objects.filter(pk__in=ids).update(claimed_until=token, updated_at=now)
    return (token, ids) if ids else None


def claim_one(delivery_id: int, *, now: datetime) -> tuple[datetime, list[int]] | None:
    """The lease on delivery `delivery_id` itself, or None (`Outbox.claim`: one conditional UPDATE)."""
    token = DELIVERIES.claim(delivery_id, now=now, updated_at=now)
    return (token, [delivery_id]) if token is not None else None


# --- Wake-ups (module docstring) ---------------------------------------------------------------------


def _free(now: datetime) -> Q:
    return Q(wake_until__isnull=True) | Q(wake_until__lte=now)


def wake_endpoints(first_by_endpoint: dict[int, int], *, force: bool = False, now: datetime | None = None) -> int:
    """Wake endpoints: one message for each endpoint whose flag this call takes, carrying the endpoint's
    delivery given here (its run drains the whole endpoint). A flag is taken when it is free or expired, or
    always with `force` (the sweeper, whose endpoints' messages may be lost; a run handing its endpoint on).
    Outside any transaction: each take is one conditional UPDATE. If the flag cannot be written, every
    endpoint gets its message anyway (a duplicate costs a read; a missing one a sweep). Returns how many
    messages were sent."""
    if not first_by_endpoint:
        return 0
    now = now or utc_now()
    until = now + wake_ttl()
    taken: list[int] = []
    for endpoint_id in first_by_endpoint:
        rows = WebhookEndpoint.objects.filter(pk=endpoint_id)
        try:
            if (rows if force else rows.filter(_free(now))).update(wake_until=until):
                taken.append(endpoint_id)
        except DatabaseError:
            logger.exception("webhook endpoint %s: could not set its wake-up flag; messaging it anyway", endpoint_id)
            taken.append(endpoint_id)
    for endpoint_id in taken:
        _enqueue_delivery(first_by_endpoint[endpoint_id])
    return len(taken)


def wake_clear(endpoint_id: int) -> None:
    """A run starting: clear the endpoint's flag, committed on its own (autocommit) BEFORE the run's first
    claim reads. A publisher that still finds the flag taken began its take before this commit, so after
    its delivery was committed: the claim, which starts after this commit, reads that delivery. (Cleared
    inside the claim's transaction instead, a take between the claim's read and its commit would still see
    the flag taken, and that delivery would wait for the sweeper.) One UPDATE, a write only if it was set."""
    WebhookEndpoint.objects.filter(pk=endpoint_id, wake_until__isnull=False).update(wake_until=None)


def wake_after_commit(first_by_endpoint: dict[int, int]) -> None:
    """`wake_endpoints` once the current transaction commits (nothing if it rolls back)."""
    if first_by_endpoint:
        transaction.on_commit(lambda: wake_endpoints(first_by_endpoint), robust=True)
