"""Routiq administration (spec "Administration"): the database cleanup (a write, audited) and the system
health figures (a scoped read). See docs/routiq.md, "Administration".

- `database_cleanup(*, organizations, days_old, actor, now=None)` deletes operational rows older than
  `days_old` days: finished sync runs (pending/running ones are never touched, whatever their age) and
  expired Idempotency-Key records. `organizations` is the list the caller may clean (their organization),
  or None: platform-wide (staff only; the view decides). Audit rows (audit.AuditEvent, audit.AccessLog) are
  NEVER deleted here: they are kept for the retention period (AUDIT_RETENTION_YEARS, at least six years;
  the database refuses younger deletions anyway) and only the retention purge removes older ones. The
  answer says so in `cleanup_results`. Every cleanup is one audit event (`sync.database_cleanup`, counts
  and ids only) in the transaction of the deletions.
- `system_health(*, organizations, now=None)`: a real database round trip and cache round trip, and the
  figures of the organizations the caller may see (None = every one, staff).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Max, Q

from core.actors import Actor
from core.auditing import audit_event
from core.domain import Invalid, NotFound
from core.time import utc_now
from sync import selectors

logger = logging.getLogger("sync")

HISTORY_LIMIT_MAX = 100
DAYS_OLD_MIN = 1
DAYS_OLD_MAX = 3650
CLEANUP_BATCH = 5000


def _organization_filter(organizations, field: str = "organization") -> Q:
    if organizations is None:
        return Q()
    return Q(**{f"{field}__in": [organization.pk for organization in organizations]})


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
    runs = SyncRun.objects.filter(_organization_filter(organizations), created_at__lt=cutoff).exclude(
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


def _database_check() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # noqa: BLE001 - a health check reports, it does not raise
        logger.warning("System health: the database check failed", exc_info=True)
        return {"status": "unhealthy", "connected": False}
    return {"status": "healthy", "connected": True}


def _cache_check() -> dict:
    key = "routiq:system-health:probe"
    try:
        cache.set(key, "1", timeout=10)
        ok = cache.get(key) == "1"
    except Exception:  # noqa: BLE001
        logger.warning("System health: the cache check failed", exc_info=True)
        ok = False
    return {"status": "healthy" if ok else "unhealthy", "connected": ok}


def system_health(*, organizations, now: datetime | None = None) -> dict:
    """Checks and figures for the organizations the caller may see (None: the whole platform)."""
    from accounts.models import Organization
    from patients.models import Patient
    from sync.models import ClinikoConnection

    now = now or utc_now()
    database = _database_check()
    cache_state = _cache_check()
    if organizations is None:
        total_organizations = Organization.objects.filter(is_active=True).count()
    else:
        total_organizations = len(organizations)
    patients = Patient.objects.filter(_organization_filter(organizations), archived=False)
    # One window for a total over several organizations: the platform's (each organization's own window
    # applies to its dashboards).
    active = selectors.active_condition(now, selectors.recent_days())
    figures = patients.aggregate(total=Count("pk"), active=Count("pk", filter=active))
    connections = ClinikoConnection.objects.filter(_organization_filter(organizations)).aggregate(
        total=Count("pk"), healthy=Count("pk", filter=Q(credentials_valid=True, sync_enabled=True))
    )
    total_connections, healthy = connections["total"], connections["healthy"]
    if not total_connections:
        cliniko_status = "not_configured"
    elif healthy == total_connections:
        cliniko_status = "operational"
    elif healthy:
        cliniko_status = "degraded"
    else:
        cliniko_status = "down"
    return {
        "status": "healthy" if database["connected"] and cache_state["connected"] else "degraded",
        "scope": "platform" if organizations is None else "organization",
        "database": database,
        "cache": cache_state,
        "metrics": {
            "total_organizations": total_organizations,
            "total_patients": figures["total"],
            "active_patients": figures["active"],
            "configured_services": {"cliniko": total_connections, "chatwoot": 0},
        },
        "integrations": {
            "cliniko": {
                "status": cliniko_status,
                "total_connections": total_connections,
                "healthy_connections": healthy,
            }
        },
        "timestamp": now,
    }


# --- Reads of the sync and Cliniko operations (sync/api/ops.py) -------------------------------------------


def _connection(organization):
    from sync.models import ClinikoConnection

    return ClinikoConnection.objects.filter(organization=organization).first()


def _region(connection) -> str | None:
    if connection is None:
        return None
    return connection.shard or None


def sync_run_find(*, public_id: str):
    """The run with this sync id (any organization: the caller checks the scope), or None."""
    from sync.models import SyncRun

    if not public_id or len(public_id) > 40 or "\x00" in public_id:
        return None
    return SyncRun.objects.select_related("organization").filter(public_id=public_id).first()


def run_progress(run, *, organization_id: str, now: datetime | None = None) -> dict:
    """A run as /sync/progress shows it; percentage and estimate are the engine's (sync.services.run_progress)."""
    from sync import services

    progress = services.run_progress(run, now=now)
    errors = []
    for error in run.errors or []:
        if isinstance(error, dict):  # codes only (the engine writes no record data)
            errors.append(
                {"step": str(error.get("step", "")), "code": str(error.get("code", "")), "at": error.get("at")}
            )
    return {
        "sync_id": run.public_id,
        "organization_id": organization_id,
        "status": run.status,
        "sync_mode": run.mode,
        "incremental": run.incremental,
        "progress_percentage": progress["progress_percentage"],
        "current_step": run.current_step,
        "total_steps": run.total_steps,
        "completed_steps": run.completed_steps,
        "started_at": run.started_at,
        "completed_at": run.completed_at,
        "estimated_completion": progress["estimated_completion"],
        "records_processed": run.records_processed,
        "records_total": run.records_total,
        "records_success": run.records_success,
        "records_failed": run.records_failed,
        "errors": errors,
    }


def scheduler_status(*, organization) -> dict:
    from sync.models import SyncRun

    connection = _connection(organization)
    runs = SyncRun.objects.filter(organization=organization)
    active = runs.filter(status__in=SyncRun.ACTIVE_STATUSES).values_list("public_id", flat=True).first()
    last_finished = runs.filter(completed_at__isnull=False).aggregate(last=Max("completed_at"))["last"]
    return {
        "sync_running": active is not None,
        "current_sync_id": active,
        "last_sync_time": last_finished,
        "scheduler_active": bool(connection and connection.sync_enabled),
        "cliniko_connected": connection is not None,
        "message": "Scheduler status retrieved successfully",
    }


def _seconds(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return round(value.total_seconds(), 1)
    return round(float(value) / 1_000_000, 1)  # SQLite averages durations as microseconds


def sync_history(*, organization, limit: int) -> dict:
    """Totals over every run of the organization (one query) and its `limit` most recent runs (one query)."""
    from sync.models import SyncRun

    runs = SyncRun.objects.filter(organization=organization)
    duration = ExpressionWrapper(F("completed_at") - F("started_at"), output_field=DurationField())
    totals = runs.aggregate(
        total=Count("pk"),
        completed=Count("pk", filter=Q(status="completed")),
        partial=Count("pk", filter=Q(status="partial")),
        failed=Count("pk", filter=Q(status="failed")),
        last_sync_at=Max("created_at"),
        last_successful=Max("completed_at", filter=Q(status="completed")),
        average=Avg(duration, filter=Q(started_at__isnull=False, completed_at__isnull=False)),
    )
    recent = [
        {
            "sync_id": run.public_id,
            "started_at": run.started_at,
            "completed_at": run.completed_at,
            "status": run.status,
            "records_processed": run.records_processed,
            "records_success": run.records_success,
            "records_failed": run.records_failed,
            "metadata": {
                "sync_type": run.mode,
                "trigger": run.trigger,
                "incremental": run.incremental,
                "patients_processed": run.patients_processed,
                "appointments_processed": run.appointments_processed,
            },
        }
        for run in runs.order_by("-created_at", "-id")[:limit]
    ]
    return {
        "total_syncs": totals["total"],
        "successful_syncs": totals["completed"],
        "partial_syncs": totals["partial"],
        "failed_syncs": totals["failed"],
        "last_sync_at": totals["last_sync_at"],
        "last_successful_sync_at": totals["last_successful"],
        "average_sync_duration_seconds": _seconds(totals["average"]),
        "recent_syncs": recent,
    }


def cliniko_status(*, organization) -> dict:
    from patients.models import Patient
    from sync.models import SyncRun

    connection = _connection(organization)
    last_sync = SyncRun.objects.filter(organization=organization, status="completed").aggregate(
        last=Max("completed_at")
    )["last"]
    total = Patient.objects.filter(organization=organization, external_id__isnull=False, archived=False).count()
    return {
        "cliniko_connected": connection is not None,
        "api_region": _region(connection),
        "last_sync": last_sync,
        "total_patients": total,
        "sync_enabled": bool(connection and connection.sync_enabled),
        "credentials_valid": connection.credentials_valid if connection else None,
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
        "api_region": outcome.get("shard") or _region(_connection(organization)),
        "tested_at": outcome.get("checked_at") or utc_now(),
    }


def cliniko_debug(*, organization) -> dict:
    """Counts and the last run (its error codes): never a record, a name, a phone or the key."""
    from patients.models import Appointment, Patient
    from sync.models import ClinikoAppointmentType, ClinikoPractitioner, SyncRun

    connection = _connection(organization)
    patients = Patient.objects.filter(organization=organization).aggregate(
        total=Count("pk"),
        cliniko=Count("pk", filter=Q(external_id__isnull=False)),
        archived=Count("pk", filter=Q(archived=True)),
    )
    appointments = Appointment.objects.filter(organization=organization).aggregate(
        total=Count("pk"), cliniko=Count("pk", filter=Q(external_id__isnull=False))
    )
    runs = SyncRun.objects.filter(organization=organization)
    last = runs.order_by("-created_at", "-id").first()
    return {
        "connection": {
            "connected": connection is not None,
            "api_region": _region(connection),
            "custom_base_url": bool(connection and connection.base_url),
            "sync_enabled": bool(connection and connection.sync_enabled),
            "credentials_valid": connection.credentials_valid if connection else None,
            "credentials_checked_at": connection.credentials_checked_at if connection else None,
            "business_country": (connection.business_country or None) if connection else None,
            "incremental_since": connection.last_successful_sync_started_at if connection else None,
        },
        "counts": {
            "patients": patients["total"],
            "patients_from_cliniko": patients["cliniko"],
            "patients_archived": patients["archived"],
            "appointments": appointments["total"],
            "appointments_from_cliniko": appointments["cliniko"],
            "appointment_types": ClinikoAppointmentType.objects.filter(organization=organization).count(),
            "practitioners": ClinikoPractitioner.objects.filter(organization=organization).count(),
            "sync_runs": runs.count(),
        },
        "last_sync": run_progress(last, organization_id=organization.public_id) if last else None,
        "timestamp": utc_now(),
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
