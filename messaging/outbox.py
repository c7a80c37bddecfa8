"""The messaging outbox (core.outbox): queued rows, the claim leases (per kind), and the task that sends one.

Two kinds of lease (settings, docs/decisions.md "Short leases for urgent messages"):
- ordinary messages: MESSAGING_LEASE_SECONDS (300 s), longer than any send can last: a crashed worker's
  message waits for it to expire, then for the sweeper (at most about 6 minutes);
- urgent purposes (MESSAGING_URGENT_PURPOSES, crisis alerts): MESSAGING_URGENT_LEASE_SECONDS (20 s) kept
  alive by a heartbeat while the worker lives (core.outbox.LeaseHeartbeat), and a watchdog task enqueued
  for just after it would expire: a crashed worker's crisis SMS goes out again about 20 s after the crash.

Wake-ups (issue 15). An urgent message gets a broker message of its own. An ordinary one does not: its commit
wakes a DRAIN (a send task with `drain=True`, carrying the message's id), and at most one such prompt is on its
way at a time: the flag `SendWakeup.wake_until` says one is. Publishing takes the flag after commit (one
conditional statement: free or expired) and publishes only if it took it, so a burst of N messages costs one broker
message, not N (a broker publish is about 1.7 ms of CPU, a sixth of a CareOS lead). A drain clears the flag
(committed) before its first read, then sends the prompt's message and every ordinary message due and unclaimed,
batch after batch, until none is left. So a publisher that finds the flag taken took its look after its message
was committed and before the clear: the drain's reads start after the clear and find that message. A batch that
comes back full invites a second drain (a prompt, if it takes the flag), so workers share a backlog; a drain that
has run for DRAIN_BUDGET hands the rest on with a forced prompt (under the task's time limit). A lost prompt leaves
the flag taken until it expires (WAKE_TTL) and its messages to the sweeper, which enqueues every due message
after its grace whatever the flag says. A duplicate prompt is harmless: each message is claimed once.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.models import Q

from core.kept_cursor import fetch_one
from core.outbox import Outbox
from core.time import utc_now
from messaging.models import OutboundMessage, SendWakeup

logger = logging.getLogger("messaging")

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


# --- Wake-ups (module docstring) ---------------------------------------------------------------------

# Messages a drain reads at a time; a full batch invites a second drain.
DRAIN_BATCH = 20
# A drain hands the rest on after this long: the send task's soft time limit is 60 s, and one send started
# just before the budget ends takes at most guarded_request's deadline (3 x OUTBOUND_TIMEOUT_SECONDS, 30 s).
DRAIN_BUDGET = timedelta(seconds=30)
# How long a taken flag holds without a drain clearing it: a lost prompt's flag frees itself after this, and
# its messages wait for the sweeper meanwhile (its grace is shorter).
WAKE_TTL = timedelta(seconds=90)
_FLAG = 1


@functools.cache
def _take_statement(vendor: str) -> str:
    """Take the flag if it is free or expired before a given time (`_take_params`), creating its row on first
    use; returns the row's id when taken. Names from the model only.

    On PostgreSQL a conditional UPDATE, and an INSERT only when the row is missing: a taken flag (most of a
    burst) is then a read, no row lock, no transaction id, so no WAL flush (an upsert's ON CONFLICT DO UPDATE
    locks the row even when its WHERE is false: a commit to disk per message, measured). Elsewhere (SQLite,
    no writable CTE) the upsert."""
    table = connection.ops.quote_name(SendWakeup._meta.db_table)
    if vendor == "postgresql":
        free = '("wake_until" IS NULL OR "wake_until" <= %s)'
        return (
            f'WITH taken AS (UPDATE {table} SET "wake_until" = %s WHERE "id" = %s AND {free} RETURNING "id"), '  # noqa: S608
            f'created AS (INSERT INTO {table} ("id", "wake_until") SELECT %s, %s '
            f'WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE "id" = %s) ON CONFLICT ("id") DO NOTHING RETURNING "id") '
            'SELECT "id" FROM taken UNION ALL SELECT "id" FROM created'
        )
    return (
        f'INSERT INTO {table} ("id", "wake_until") VALUES (%s, %s) '  # noqa: S608
        f'ON CONFLICT ("id") DO UPDATE SET "wake_until" = EXCLUDED."wake_until" '
        f'WHERE {table}."wake_until" IS NULL OR {table}."wake_until" <= %s RETURNING "id"'
    )


def _take_params(vendor: str, until: datetime, expired_before: datetime) -> list:
    if vendor == "postgresql":
        return [until, _FLAG, expired_before, _FLAG, until, _FLAG]
    return [_FLAG, until, expired_before]


def wake(first_message_id: int, *, force: bool = False, now: datetime | None = None) -> bool:
    """Prompt a drain, starting with `first_message_id`, if this call takes the flag (free or expired; always
    with `force`). Outside any transaction: the take is one statement, committed on its own (the row is
    created on first use). If the flag cannot be written the prompt is sent anyway (a duplicate costs a read; a
    missing one a sweep). Returns whether a prompt was sent."""
    from messaging.tasks import enqueue_send

    now = now or utc_now()
    until = now + WAKE_TTL
    try:
        conn = connections[DEFAULT_DB_ALIAS]  # the wrapper, not the proxy that looks it up on every attribute
        statement, params = _take_statement(conn.vendor), _take_params(conn.vendor, until, until if force else now)
        taken = fetch_one(conn, statement, params) is not None
    except DatabaseError:
        logger.exception("messaging: could not take the wake-up flag; prompting a drain anyway")
        taken = True
    if taken:
        enqueue_send(first_message_id, urgent=False, drain=True)
    return taken


def wake_clear() -> None:
    """A drain starting: clear the flag, committed on its own BEFORE the drain's first read (module
    docstring). One UPDATE, a write only if the flag was set."""
    SendWakeup.objects.filter(pk=_FLAG, wake_until__isnull=False).update(wake_until=None)


def drain_batch(*, now: datetime | None = None) -> list[int]:
    """Ids of ordinary queued messages a drain may send now (due, never claimed or released: a lease that
    expired is the sweeper's to note first), oldest due first, at most DRAIN_BATCH."""
    now = now or utc_now()
    rows = (
        MESSAGES.rows()
        .filter(claimed_until__isnull=True)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + MESSAGES.due_tolerance))
        .exclude(purpose__in=settings.MESSAGING_URGENT_PURPOSES)
    )
    return list(rows.order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:DRAIN_BATCH])
