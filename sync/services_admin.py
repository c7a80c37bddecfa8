"""Routiq administration writes (spec "Administration"; docs/routiq.md, "Administration"): the database
cleanup, the connection test (it records its outcome) and the hourly-sync switch, each audited. The reads
of the same endpoints (system health, sync progress and history, Cliniko status and debug) are selectors
(sync/selectors.py).

- `database_cleanup(*, organizations, days_old, actor, now=None)` deletes operational rows older than
  `days_old` days: finished sync runs (pending/running ones are never touched, whatever their age) and
  expired Idempotency-Key records. `organizations` is the list the caller may clean (their organization),
  or None: platform-wide (staff only; the view decides). Audit rows (audit.AuditEvent, audit.AccessLog) are
  NEVER deleted here: they are kept for the retention period (AUDIT_RETENTION_YEARS, at least six years;
  the database refuses younger deletions anyway) and only the retention purge removes older ones. The
  answer says so in `cleanup_results`. Every cleanup is one audit event (`sync.database_cleanup`, counts
  and ids only) in the transaction of the deletions.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from core.actors import Actor
from core.auditing import audit_event
from core.domain import Invalid, NotFound
from core.time import utc_now
from sync import selectors

logger = logging.getLogger("sync")

DAYS_OLD_MIN = 1
DAYS_OLD_MAX = 3650
CLEANUP_BATCH = 5000


def _delete_in_batches(queryset) -> int:
    total = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:CLEANUP_BATCH])
        if not ids:
            return total
        total += queryset.model.objects.filter(pk__in=ids).delete()[0]


@transaction.atomic
def database_cleanup(*, organizations, days_old: int, actor: Actor, now: datetime | None = None) -> dict:
    """Delete the old operational rows of `organizations` (None: platform-wide). Never audit rows."""
    from core.models import IdempotencyKey
    from sync.models import SyncRun

    if isinstance(days_old, bool) or not isinstance(days_old, int) or not DAYS_OLD_MIN <= days_old <= DAYS_OLD_MAX:
        raise Invalid(
            f"days_old must be a whole number of days from {DAYS_OLD_MIN} to {DAYS_OLD_MAX}",
            details={"parameter": "days_old"},
        )
    now = now or utc_now()
    cutoff = now - timedelta(days=days_old)
    runs = SyncRun.objects.filter(selectors.organization_filter(organizations), created_at__lt=cutoff).exclude(
        status__in=SyncRun.ACTIVE_STATUSES
    )
    runs_deleted = _delete_in_batches(runs)
    keys = IdempotencyKey.objects.filter(created_at__lt=cutoff, expires_at__lte=now)
    if organizations is not None:
        keys = keys.filter(organization__in=[organization.public_id for organization in organizations])
    keys_deleted = _delete_in_batches(keys)
    retention_years = settings.AUDIT_RETENTION_YEARS
    results = [
        f"Deleted {runs_deleted} old sync logs",
        f"Deleted {keys_deleted} expired idempotency records",
        (
            f"Deleted 0 audit logs: audit logs are kept for the {retention_years}-year retention period and "
            "are never deleted by this cleanup (the retention purge removes them after it)"
        ),
    ]
    scope = "platform" if organizations is None else "organization"
    organization_ids = [] if organizations is None else [organization.public_id for organization in organizations]
    audit_event(
        action="sync.database_cleanup",
        actor=actor,
        organization_id=organization_ids[0] if len(organization_ids) == 1 else "",
        subject_type="sync.syncrun",
        metadata={
            "scope": scope,
            "organization_ids": organization_ids,
            "days_old": days_old,
            "cutoff": cutoff.isoformat(),
            "sync_runs_deleted": runs_deleted,
            "idempotency_keys_deleted": keys_deleted,
            "audit_rows_deleted": 0,
        },
    )
    logger.info("Database cleanup (%s, %s days): %s runs, %s keys", scope, days_old, runs_deleted, keys_deleted)
    return {
        "success": True,
        "days_cleaned": days_old,
        "cleanup_results": results,
        "completed_at": now,
        "scope": scope,
        "sync_runs_deleted": runs_deleted,
        "idempotency_records_deleted": keys_deleted,
        "audit_logs_deleted": 0,
    }


def cliniko_connection_test(*, organization, actor: Actor) -> dict:
    """Call Cliniko with the stored key (sync.services.cliniko_test_connection records the outcome; no
    connection -> Conflict CLINIKO_NOT_CONNECTED)."""
    from sync import services

    outcome = services.cliniko_test_connection(organization=organization, actor=actor)
    ok = bool(outcome.get("ok"))
    return {
        "success": ok,
        "connected": ok,
        "code": None if ok else str(outcome.get("code") or "error"),
        "message": "Connected to Cliniko" if ok else "Cliniko refused or did not answer the connection test",
        "api_region": outcome.get("shard") or selectors.cliniko_region(selectors.cliniko_connection_of(organization)),
        "tested_at": outcome.get("checked_at") or utc_now(),
    }


@transaction.atomic
def cliniko_sync_enabled_set(*, organization, sync_enabled: bool, actor: Actor):
    """Turn the hourly schedule on or off for the organization's connection (the admin's checkbox).
    No connection -> NotFound; unchanged -> no write, no event. Audit `sync.cliniko_sync_enabled_changed`."""
    from sync.models import ClinikoConnection

    connection = ClinikoConnection.objects.select_for_update().filter(organization=organization).first()
    if connection is None:
        raise NotFound("This organization has no Cliniko connection")
    if connection.sync_enabled == bool(sync_enabled):
        return connection
    connection.sync_enabled = bool(sync_enabled)
    connection.save(update_fields=["sync_enabled", "updated_at"])
    audit_event(
        action="sync.cliniko_sync_enabled_changed",
        actor=actor,
        organization_id=organization.public_id,
        subject_type="cliniko_connection",
        subject_id=organization.public_id,
        metadata={"sync_enabled": connection.sync_enabled},
    )
    return connection
