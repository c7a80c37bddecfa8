"""One outbox mechanism: lease, claim, sweep. Generic: each app plugs in its model, task and rules.

Work that must not be lost is a database row first (DESIGN.md, "Background work"); a broker message only
prompts a worker. The row carries two columns (`OutboxRow`): `next_attempt_at` (when a worker may next try
it) and `claimed_until` (the lease of the worker trying it right now). An app declares its outbox once:

    MESSAGES = Outbox(model=OutboundMessage, pending=Q(status="queued"), lease=timedelta(minutes=5),
                      enqueue=lambda pk: send_message.apply_async((pk,)))

and then:

1. `claim(pk)`: ONE conditional UPDATE takes the lease on a pending, due, unclaimed row; it returns the lease
   expiry (the claim token) to the worker whose UPDATE matched, None to every other. Run it in autocommit
   (outside any transaction.atomic), so the lease is committed before the slow work starts and no row lock
   is held across the network.
2. do the work outside any transaction; then record the outcome through `held(pk, token)`, the row only
   while this claim still holds it (an UPDATE on it matches nothing if the row was cancelled, finished
   or taken over meanwhile).
3. a worker that dies leaves a lease that expires; `sweep()` (beat, every minute) hands the ids of pending
   rows that are due (for longer than `sweep_grace`) and unclaimed to `enqueue`, oldest first, in one
   bounded batch (a row whose lease expired at once, without the grace). A lost broker message thus
   delays work by about a minute; a duplicate one is harmless (the claim lets one run do the work).
4. urgent work takes a SHORT lease (`claim(pk, lease=...)`) and keeps it alive while it works with
   `LeaseHeartbeat` (renewed every third of the lease while the worker lives, never beyond `max_hold`):
   a dead worker's lease then expires in seconds instead of after the longest possible attempt, while a
   live but slow one is never taken over. The heartbeat moves the token: record with `heartbeat.token`.

Nothing here imports a domain app.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, models
from django.db.models import Q, QuerySet

from core.time import utc_now

logger = logging.getLogger("core.outbox")


class OutboxRow(models.Model):
    """The lease columns of an outbox table (same names and types in every outbox: no schema change)."""

    # When a worker may next try the row (pending rows only; None once it is final).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Lease held by the worker trying it right now; an expired lease is free to take again.
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


def unclaimed(now: datetime) -> Q:
    """Rows no live lease holds."""
    return Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)


def leased(now: datetime) -> Q:
    """Rows a worker is working on right now (a live lease)."""
    return Q(claimed_until__gt=now)


@dataclass(frozen=True)
class Outbox:
    """One outbox table and its rules.

    - `pending`: which rows are still work to do (e.g. `Q(status="queued")`);
    - `lease`: how long a claim lasts, or a callable returning it (read at claim time, so a setting can
      change it): longer than the longest attempt, so a lease only expires when its worker died;
    - `enqueue(pk)`: prompt a worker for one row (the app's Celery task);
    - `due_tolerance`: a row due this soon is claimable already (clock skew, countdown rounding);
    - `sweep_grace`: the sweeper leaves a due row alone this long (its own message is normally on the way);
    - `sweep_batch`: at most this many ids per sweep.
    """

    model: type[models.Model]
    pending: Q
    lease: timedelta | Callable[[], timedelta]
    enqueue: Callable[[int], Any]
    due_tolerance: timedelta = timedelta(0)
    sweep_grace: timedelta = timedelta(seconds=30)
    sweep_batch: int = 1000

    def lease_duration(self) -> timedelta:
        return self.lease() if callable(self.lease) else self.lease

    def rows(self) -> QuerySet:
        return self.model._default_manager.filter(self.pending)

    def claim(
        self, pk: int, *, now: datetime | None = None, lease: timedelta | None = None, **changes: Any
    ) -> datetime | None:
        """Take the lease on row `pk` if it is pending, due and unclaimed: one conditional UPDATE, which also
        applies `changes` (e.g. `attempts=F("attempts") + 1`). Returns the lease expiry (the token `held`
        takes) if this worker won, else None. A row without a due time counts as due. `lease` overrides the
        outbox's lease for this claim (a per-kind lease: short for urgent work, kept by a heartbeat)."""
        now = now or utc_now()
        until = now + (self.lease_duration() if lease is None else lease)
        due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + self.due_tolerance)
        taken = self.rows().filter(due, unclaimed(now), pk=pk).update(claimed_until=until, **changes)
        return until if taken else None

    def held(self, pk: int, token: datetime) -> QuerySet:
        """Row `pk` only while still pending under the claim `token`: record outcomes through it."""
        return self.rows().filter(pk=pk, claimed_until=token)

    def due_ids(self, *, now: datetime | None = None, within: Q | None = None, limit: int | None = None) -> list[int]:
        """Ids of pending rows due for longer than `sweep_grace` and unclaimed, oldest due first, at most
        `limit` (default `sweep_batch`). `within` narrows them (e.g. endpoints still active). A row whose
        lease expired (its worker died: finishing a row clears its lease) needs no grace: no message is on
        its way for it."""
        now = now or utc_now()
        abandoned = Q(claimed_until__isnull=False, claimed_until__lte=now)
        queryset = self.rows().filter(unclaimed(now)).filter(Q(next_attempt_at__lte=now - self.sweep_grace) | abandoned)
        if within is not None:
            queryset = queryset.filter(within)
        queryset = queryset.order_by("next_attempt_at").values_list("pk", flat=True)
        return list(queryset[: self.sweep_batch if limit is None else limit])

    def sweep(self, *, now: datetime | None = None, within: Q | None = None, limit: int | None = None) -> int:
        """Hand every id `due_ids` finds to `enqueue`; returns how many. Recovers rows whose broker message
        was lost and rows whose worker died (expired lease)."""
        ids = self.due_ids(now=now, within=within, limit=limit)
        for pk in ids:
            self.enqueue(pk)
        return len(ids)


class LeaseHeartbeat:
    """Keeps a short lease alive while its worker works (a thread renewing it every `lease / 3`).

        token = OUTBOX.claim(pk, lease=SHORT)
        with LeaseHeartbeat(OUTBOX, pk, token, lease=SHORT, max_hold=timedelta(seconds=90)) as beat:
            ...slow work...
        OUTBOX.held(pk, beat.token).update(...)

    Each renewal is one conditional UPDATE (`claimed_until = now + lease` where it still equals the token)
    in autocommit on the thread's own connection; a renewal that matches nothing (the row was finished,
    cancelled or taken over) stops the heartbeat. If the process dies, renewals stop and the lease expires
    within `lease`. `max_hold` bounds a hung worker: no renewal past `claimed at + max_hold`, so its lease
    expires then at the latest. The thread only opens a database connection once it renews (work shorter
    than a third of the lease costs no query) and closes it when it stops.
    """

    def __init__(self, outbox: Outbox, pk: int, token: datetime, *, lease: timedelta, max_hold: timedelta):
        self.outbox = outbox
        self.pk = pk
        self.token = token
        self.lease = lease
        self.renewals = 0
        self._give_up_at = token - lease + max_hold
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-heartbeat:{pk}", daemon=True)

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        interval = self.lease.total_seconds() / 3
        used_connection = False
        try:
            while not self._stop.wait(interval):
                used_connection = True
                if not self._renew():
                    return
        except Exception:  # a database hiccup: stop renewing; the lease then simply expires
            logger.exception("outbox %s row %s: lease heartbeat stopped", self.outbox.model.__name__, self.pk)
        finally:
            if used_connection:
                connection.close()

    def _renew(self) -> bool:
        now = utc_now()
        until = min(now + self.lease, self._give_up_at)
        if until <= self.token or self._stop.is_set():
            return False
        renewed = self.outbox.held(self.pk, self.token).update(claimed_until=until)
        if renewed:
            self.token = until  # read by the worker only after __exit__ joined this thread
            self.renewals += 1
        return bool(renewed)
