"""core.outbox: one claim wins, leases expire, the sweeper finds due and abandoned rows in bounded batches.

The mechanism is generic; these tests plug in messaging's table (any OutboxRow model would do) with rules
of their own, so they exercise the mechanism and not messaging's settings."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F, Q

from core.outbox import LeaseHeartbeat, Outbox, OutboxRow, leased, unclaimed
from core.time import utc_now
from messaging.models import OutboundMessage

pytestmark = pytest.mark.django_db

LEASE = timedelta(minutes=5)


@pytest.fixture
def enqueued() -> list[int]:
    return []


@pytest.fixture
def outbox(enqueued) -> Outbox:
    return Outbox(
        model=OutboundMessage,
        pending=Q(status="queued"),
        lease=LEASE,
        enqueue=enqueued.append,
        due_tolerance=timedelta(seconds=2),
        sweep_grace=timedelta(seconds=30),
        sweep_batch=3,
    )


def row(*, due_in: timedelta = timedelta(0), status: str = "queued", claimed_until=None) -> OutboundMessage:
    now = utc_now()
    return OutboundMessage.objects.create(
        channel="sms", recipient="+447911123456", recipient_index="x", body="b", status=status,
        next_attempt_at=now + due_in, claimed_until=claimed_until,
    )  # fmt: skip


def test_both_outboxes_share_the_lease_columns():
    from webhooks.models import WebhookDelivery

    assert issubclass(OutboundMessage, OutboxRow) and issubclass(WebhookDelivery, OutboxRow)
    assert OutboxRow._meta.abstract


def test_one_claim_wins_and_a_second_gets_nothing(outbox):
    message = row()
    now = utc_now()
    token = outbox.claim(message.pk, now=now, attempts=F("attempts") + 1)
    assert token == now + LEASE
    assert outbox.claim(message.pk, now=now) is None
    message.refresh_from_db()
    assert message.claimed_until == token and message.attempts == 1


def test_an_expired_lease_is_taken_over_and_the_old_holder_records_nothing(outbox):
    message = row()
    now = utc_now()
    old = outbox.claim(message.pk, now=now)
    new = outbox.claim(message.pk, now=now + LEASE + timedelta(seconds=1))
    assert new is not None and new != old
    assert outbox.held(message.pk, old).update(status="sent") == 0
    assert outbox.held(message.pk, new).update(status="sent", claimed_until=None) == 1


def test_only_pending_and_due_rows_are_claimed(outbox):
    assert outbox.claim(row(status="sent").pk) is None
    assert outbox.claim(row(due_in=timedelta(minutes=1)).pk) is None
    assert outbox.claim(row(due_in=timedelta(seconds=1)).pk) is not None  # within the due tolerance
    assert outbox.claim(987654) is None


def test_the_lease_may_be_read_at_claim_time(enqueued):
    durations = [timedelta(seconds=10)]
    outbox = Outbox(model=OutboundMessage, pending=Q(status="queued"), lease=lambda: durations[0],
                    enqueue=enqueued.append)  # fmt: skip
    first, second = row(), row()
    now = utc_now()
    assert outbox.claim(first.pk, now=now) == now + timedelta(seconds=10)
    durations[0] = timedelta(seconds=99)
    assert outbox.claim(second.pk, now=now) == now + timedelta(seconds=99)


def test_sweep_enqueues_due_unclaimed_rows_oldest_first_in_one_bounded_batch(outbox, enqueued):
    now = utc_now()
    oldest = row(due_in=-timedelta(minutes=10))
    old = row(due_in=-timedelta(minutes=5))
    abandoned = row(due_in=-timedelta(minutes=4), claimed_until=now - timedelta(seconds=1))  # its worker died
    row(due_in=-timedelta(minutes=3), claimed_until=now + timedelta(minutes=1))  # being worked on
    row(due_in=-timedelta(seconds=5))  # within the grace: its own message is on the way
    row(due_in=-timedelta(minutes=2), status="failed")
    latest = row(due_in=-timedelta(minutes=1))
    assert outbox.sweep(now=now) == 3  # sweep_batch
    assert enqueued == [oldest.pk, old.pk, abandoned.pk]
    assert outbox.due_ids(now=now, limit=10) == [oldest.pk, old.pk, abandoned.pk, latest.pk]
    assert outbox.due_ids(now=now, within=Q(pk__in=[latest.pk])) == [latest.pk]


def test_lease_predicates_are_complements():
    now = utc_now()
    free, held = row(claimed_until=now - timedelta(seconds=1)), row(claimed_until=now + timedelta(seconds=1))
    never = row()
    assert set(OutboundMessage.objects.filter(unclaimed(now)).values_list("pk", flat=True)) == {free.pk, never.pk}
    assert list(OutboundMessage.objects.filter(leased(now)).values_list("pk", flat=True)) == [held.pk]


@pytest.mark.postgres
def test_simultaneous_claims_on_postgres_one_wins(transactional_db, require_postgres, outbox):
    message = row()
    barrier = threading.Barrier(4)
    tokens = []

    def run() -> None:
        try:
            barrier.wait()
            tokens.append(outbox.claim(message.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(tokens) == 4 and len([token for token in tokens if token is not None]) == 1


def test_a_claim_may_take_a_shorter_lease_than_the_outbox(outbox):
    message = row()
    now = utc_now()
    assert outbox.claim(message.pk, now=now, lease=timedelta(seconds=15)) == now + timedelta(seconds=15)


SHORT = timedelta(seconds=0.6)  # renewed every 0.2 s


def test_a_heartbeat_keeps_a_short_lease_alive_while_its_worker_works(transactional_db, outbox):
    message = row()
    token = outbox.claim(message.pk, lease=SHORT)
    with LeaseHeartbeat(outbox, message.pk, token, lease=SHORT, max_hold=timedelta(minutes=1)) as beat:
        time.sleep(SHORT.total_seconds() * 2.5)  # the first lease has expired meanwhile
        assert outbox.claim(message.pk) is None  # ... but another worker still cannot take the row
    assert beat.renewals >= 2 and beat.token > token
    message.refresh_from_db()
    assert message.claimed_until == beat.token
    assert outbox.held(message.pk, token).update(status="sent") == 0  # the first token is stale
    assert outbox.held(message.pk, beat.token).update(status="sent", claimed_until=None) == 1


def test_without_its_heartbeat_a_short_lease_expires_and_the_row_is_taken_over(transactional_db, outbox):
    """The worker died: nothing renews its lease, which expires within the short lease."""
    message = row()
    outbox.claim(message.pk, lease=SHORT)
    time.sleep(SHORT.total_seconds() + 0.1)
    assert outbox.claim(message.pk) is not None


def test_a_heartbeat_stops_renewing_at_max_hold(transactional_db, outbox):
    """A hung worker keeps a lease no longer than max_hold: then it expires and the row is free again."""
    message = row()
    token = outbox.claim(message.pk, lease=SHORT)
    max_hold = timedelta(seconds=0.9)
    with LeaseHeartbeat(outbox, message.pk, token, lease=SHORT, max_hold=max_hold) as beat:
        time.sleep(1.8)
        assert outbox.claim(message.pk) is not None  # taken over while the hung worker still "works"
    assert beat.token <= token - SHORT + max_hold


def test_a_heartbeat_stops_when_the_row_is_taken_from_it(transactional_db, outbox):
    message = row()
    token = outbox.claim(message.pk, lease=SHORT)
    with LeaseHeartbeat(outbox, message.pk, token, lease=SHORT, max_hold=timedelta(minutes=1)) as beat:
        OutboundMessage.objects.filter(pk=message.pk).update(status="failed", claimed_until=None)  # cancelled
        time.sleep(0.5)
    message.refresh_from_db()
    assert beat.renewals == 0 and message.claimed_until is None


def test_a_quick_job_never_renews(transactional_db, outbox):
    """Work shorter than a third of the lease ends before the first renewal: the lease is untouched."""
    message = row()
    lease = timedelta(seconds=30)
    token = outbox.claim(message.pk, lease=lease)
    with LeaseHeartbeat(outbox, message.pk, token, lease=lease, max_hold=timedelta(minutes=1)) as beat:
        pass
    message.refresh_from_db()
    assert beat.renewals == 0 and beat.token == token == message.claimed_until


def test_a_row_whose_lease_expired_is_swept_without_the_grace(outbox, enqueued):
    """Its worker died: no message is on its way for it, so the sweeper need not wait."""
    now = utc_now()
    abandoned = row(due_in=-timedelta(seconds=5), claimed_until=now - timedelta(seconds=1))
    row(due_in=-timedelta(seconds=5))  # just due, never claimed: its own message is on the way
    assert outbox.due_ids(now=now) == [abandoned.pk]
