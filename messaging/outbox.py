"""The messaging outbox (core.outbox): queued rows, the claim leases (per kind), and the task that sends one.

Two kinds of lease (settings, docs/decisions.md "Short leases for urgent messages"):
- ordinary messages: MESSAGING_LEASE_SECONDS (300 s), longer than any send can last: a crashed worker's
  message waits for it to expire, then for the sweeper (at most about 6 minutes);
- urgent purposes (MESSAGING_URGENT_PURPOSES, crisis alerts): MESSAGING_URGENT_LEASE_SECONDS (20 s) kept
  alive by a heartbeat while the worker lives (core.outbox.LeaseHeartbeat), and a watchdog task enqueued
  for just after it would expire: a crashed worker's crisis SMS goes out again about 20 s after the crash.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q

from core.outbox import Outbox
from messaging.models import OutboundMessage

# An urgent message's heartbeat stops renewing after this long: the send task's hard time limit.
URGENT_MAX_HOLD = timedelta(seconds=90)


def lease() -> timedelta:
    """An ordinary message's claim: longer than the send task's hard time limit."""
    return timedelta(seconds=settings.MESSAGING_LEASE_SECONDS)


def urgent_lease() -> timedelta:
    return timedelta(seconds=settings.MESSAGING_URGENT_LEASE_SECONDS)


def is_urgent(purpose: str) -> bool:
    return purpose in settings.MESSAGING_URGENT_PURPOSES


def _enqueue_send(message_id: int) -> None:
    from messaging.tasks import enqueue_send

    enqueue_send(message_id)


MESSAGES = Outbox(
    model=OutboundMessage,
    pending=Q(status=OutboundMessage.Status.QUEUED),
    lease=lease,
    enqueue=_enqueue_send,
    # Up to this much early, a due-time check still counts (clock skew between workers, countdown rounding).
    due_tolerance=timedelta(seconds=2),
    # The grace leaves the task enqueued at commit (or by a retry's countdown) time to run before the
    # sweeper enqueues the same message again (which would be harmless: the claim dedupes).
    sweep_grace=timedelta(seconds=30),
    sweep_batch=1000,
)
