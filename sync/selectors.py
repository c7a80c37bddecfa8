"""sync: the Routiq read side (patients, dashboards, activity), scoped to one organization.

Every derived field is computed in SQL at read time from `patients.Appointment` rows (correlated
subqueries with COUNT/MIN/MAX, CASE expressions), so "recent", "upcoming" and the time until the next
appointment move with the clock, and the summaries aggregate the very querysets the lists page through:
their numbers always equal what the lists return. Definitions (docs/routiq.md, "Definitions"):

- recent: an appointment not cancelled whose start is within the last N days (`now - N days <= start <= now`,
  N = the organization's `recent_days` (clinic settings), else settings.ROUTIQ_RECENT_DAYS, 30 by default;
  the boundary instant counts as recent);
- upcoming: an appointment not cancelled whose start is after now;
- total: every appointment not cancelled; first / last: the earliest start / the latest start up to now;
- is_active: at least one recent or upcoming appointment; archived patients are never active;
- activity_status: `active` (recent and upcoming), `has_upcoming` (upcoming only), `recent_activity` (recent
  only), `imported` (neither: a record with no current activity, typically imported from Cliniko);
- treatment_notes: the notes of the latest appointment that has begun (not cancelled), else of the next one;
- primary_appointment_type: the most frequent type among the patient's non-cancelled appointments (ties: the
  alphabetically first), "" types ignored; next_appointment_type: the type of the next upcoming one;
- priority (with-appointments): `high` when the next appointment is within 24 hours, `medium` within 7 days,
  `low` later.

Query counts do not grow with the number of patients: a page is one SELECT, its total one COUNT, the
recent and upcoming arrays one prefetch each (a window-limited query), the treatment notes one query.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import (
    Avg,
    BooleanField,
    Case,
    CharField,
    Count,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from core.time import utc_now
from patients.models import Appointment, ClinicSettings, Patient
from sync.models import ClinikoConnection, SyncRun

logger = logging.getLogger("sync")

# How many entries each patient's recent_appointments / upcoming_appointments arrays carry.
APPOINTMENTS_PER_ARRAY = 5
PRIORITY_HIGH_HOURS = 24
PRIORITY_MEDIUM_HOURS = 24 * 7

ACTIVITY_ACTIVE = "active"
ACTIVITY_HAS_UPCOMING = "has_upcoming"
ACTIVITY_RECENT = "recent_activity"
ACTIVITY_IMPORTED = "imported"
ACTIVITY_STATUSES = (ACTIVITY_ACTIVE, ACTIVITY_HAS_UPCOMING, ACTIVITY_RECENT, ACTIVITY_IMPORTED)
PRIORITIES = ("high", "medium", "low")


def recent_days(organization=None) -> int:
    """The "recent" window in days: the organization's own (clinic settings, `recent_days`), else
    settings.ROUTIQ_RECENT_DAYS. Read fresh (one query) so a change shows on the next request."""
    if organization is not None:
        own = ClinicSettings.objects.filter(organization=organization).values_list("recent_days", flat=True).first()
        if own:
            return int(own)
    return int(getattr(settings, "ROUTIQ_RECENT_DAYS", 30))


@dataclass(frozen=True)
class Window:
    now: datetime
    recent_from: datetime

    @classmethod
    def at(cls, now: datetime, days: int) -> Window:
        return cls(now=now, recent_from=now - timedelta(days=days))


# --- Appointment conditions (relative to the patient's own appointment rows) -------------------------------


def _not_cancelled() -> Q:
    return ~Q(status=Appointment.Status.CANCELED)


def _recent(window: Window) -> Q:
    return _not_cancelled() & Q(start_time__gte=window.recent_from, start_time__lte=window.now)


def _upcoming(window: Window) -> Q:
    return _not_cancelled() & Q(start_time__gt=window.now)


def _appointments_of_patient(condition: Q) -> QuerySet:
    return Appointment.objects.filter(condition, patient=OuterRef("pk")).order_by()


def _aggregate(condition: Q, aggregate, output_field):
    """A correlated scalar subquery: `aggregate` over the patient's appointments matching `condition`."""
    return Subquery(
        _appointments_of_patient(condition).values("patient").annotate(value=aggregate).values("value")[:1],
        output_field=output_field,
    )


def _count(condition: Q):
    return Coalesce(_aggregate(condition, Count("pk"), IntegerField()), 0)


def _first_value(condition: Q, ordering: tuple[str, ...], field: str, output_field):
    return Subquery(
        _appointments_of_patient(condition).order_by(*ordering).values(field)[:1], output_field=output_field
    )


def _primary_type():
    most_frequent = (
        Appointment.objects.filter(_not_cancelled(), patient=OuterRef("pk"))
        .exclude(appointment_type="")
        .order_by()
        .values("appointment_type")
        .annotate(frequency=Count("pk"))
        .order_by("-frequency", "appointment_type")
        .values("appointment_type")[:1]
    )
    return Subquery(most_frequent, output_field=CharField())


def patients_annotated(*, organization, now: datetime, days: int | None = None) -> QuerySet:
    """The organization's non-archived patients with every derived field as an SQL annotation."""
    window = Window.at(now, recent_days(organization) if days is None else days)
    recent_count = _count(_recent(window))
    upcoming_count = _count(_upcoming(window))
    queryset = (
        Patient.objects.filter(organization=organization, archived=False)
        .annotate(
            recent_appointment_count=recent_count,
            upcoming_appointment_count=upcoming_count,
            total_appointment_count=_count(_not_cancelled()),
        )
        .annotate(
            first_appointment_date=_aggregate(_not_cancelled(), Min("start_time"), DateTimeField()),
            last_appointment_date=_aggregate(
                _not_cancelled() & Q(start_time__lte=window.now), Max("start_time"), DateTimeField()
            ),
            next_appointment_time=_aggregate(_upcoming(window), Min("start_time"), DateTimeField()),
            next_appointment_type=_first_value(
                _upcoming(window), ("start_time", "id"), "appointment_type", CharField()
            ),
            primary_appointment_type=_primary_type(),
            # Whose notes are the treatment notes: the latest appointment that has begun, not cancelled;
            # with none begun yet, the next one.
            latest_appointment_id=Coalesce(
                _first_value(
                    _not_cancelled() & Q(start_time__lte=window.now), ("-start_time", "-id"), "id", IntegerField()
                ),
                _first_value(_upcoming(window), ("start_time", "id"), "id", IntegerField()),
            ),
            is_active=Case(
                When(Q(recent_appointment_count__gt=0) | Q(upcoming_appointment_count__gt=0), then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            ),
            activity_status=Case(
                When(
                    Q(recent_appointment_count__gt=0, upcoming_appointment_count__gt=0),
                    then=Value(ACTIVITY_ACTIVE),
                ),
                When(upcoming_appointment_count__gt=0, then=Value(ACTIVITY_HAS_UPCOMING)),
                When(recent_appointment_count__gt=0, then=Value(ACTIVITY_RECENT)),
                default=Value(ACTIVITY_IMPORTED),
                output_field=CharField(),
            ),
        )
    )
    return queryset


def active_condition(now: datetime, days: int) -> Q:
    """A patient filter: the patient is active (a recent or an upcoming appointment, as defined above),
    without annotating the counts (one EXISTS per patient: for totals over many organizations)."""
    window = Window.at(now, days)
    return Q(Exists(_appointments_of_patient(_recent(window) | _upcoming(window))))


def _active_filter() -> Q:
    return Q(recent_appointment_count__gt=0) | Q(upcoming_appointment_count__gt=0)


def active_patients(*, organization, now: datetime, days: int | None = None) -> QuerySet:
    """`/patients`: the active patients (a recent or an upcoming appointment), the next appointment first."""
    return (
        patients_annotated(organization=organization, now=now, days=days)
        .filter(_active_filter())
        .order_by(F("next_appointment_time").asc(nulls_last=True), "name_search", "id")
    )


def patients_with_appointments(*, organization, now: datetime, days: int | None = None) -> QuerySet:
    """`/patients/with-appointments`: the active patients with an upcoming appointment, soonest first, with
    the time until it and a priority from it."""
    return (
        patients_annotated(organization=organization, now=now, days=days)
        .filter(upcoming_appointment_count__gt=0)
        .annotate(
            time_until_next_appointment=ExpressionWrapper(
                F("next_appointment_time") - Value(now, output_field=DateTimeField()), output_field=DurationField()
            ),
            priority=Case(
                When(next_appointment_time__lte=now + timedelta(hours=PRIORITY_HIGH_HOURS), then=Value("high")),
                When(next_appointment_time__lte=now + timedelta(hours=PRIORITY_MEDIUM_HOURS), then=Value("medium")),
                default=Value("low"),
                output_field=CharField(),
            ),
        )
        .order_by("next_appointment_time", "name_search", "id")
    )


def patients_by_appointment_type(*, organization, appointment_type: str, now: datetime, days=None) -> QuerySet:
    """`/patients/by-appointment-type/{type}`: active patients whose next or most frequent appointment type
    is exactly `appointment_type`."""
    return active_patients(organization=organization, now=now, days=days).filter(
        Q(next_appointment_type=appointment_type) | Q(primary_appointment_type=appointment_type)
    )


# --- A page of patients ------------------------------------------------------------------------------------


def _array_prefetch(condition: Q, ordering: tuple[str, ...], to_attr: str) -> Prefetch:
    # A sliced prefetch: one query for the whole page, each patient's first few rows (a window function).
    rows = Appointment.objects.filter(condition).order_by(*ordering)[:APPOINTMENTS_PER_ARRAY]
    return Prefetch("appointments", queryset=rows, to_attr=to_attr)


def patient_page(queryset: QuerySet, *, now: datetime, days: int, limit: int, offset: int):
    """(total, the page's patients): one COUNT, one SELECT, two prefetches and one query for the notes;
    each patient gets `recent_appointments`, `upcoming_appointments` and `treatment_notes`."""
    total = queryset.count()
    if offset >= total:
        return total, []
    window = Window.at(now, days)  # the window `queryset` was annotated with
    page = list(
        queryset.prefetch_related(
            _array_prefetch(_recent(window), ("-start_time", "-id"), "recent_appointments"),
            _array_prefetch(_upcoming(window), ("start_time", "id"), "upcoming_appointments"),
        )[offset : offset + limit]
    )
    latest_ids = [patient.latest_appointment_id for patient in page if patient.latest_appointment_id]
    # Decrypted for this page's patients only.
    notes = dict(Appointment.objects.filter(pk__in=latest_ids).values_list("pk", "notes")) if latest_ids else {}
    for patient in page:
        patient.treatment_notes = notes.get(patient.latest_appointment_id) or None
    return total, page


# --- Summaries (the same querysets as the lists) ------------------------------------------------------------


def _last_sync_time(organization) -> datetime | None:
    return (
        SyncRun.objects.filter(organization=organization, status=SyncRun.Status.COMPLETED)
        .order_by("-completed_at")
        .values_list("completed_at", flat=True)
        .first()
    )


def active_summary(*, organization, now: datetime, days: int | None = None) -> dict:
    numbers = active_patients(organization=organization, now=now, days=days).aggregate(
        total_active_patients=Count("pk"),
        patients_with_recent_appointments=Count("pk", filter=Q(recent_appointment_count__gt=0)),
        patients_with_upcoming_appointments=Count("pk", filter=Q(upcoming_appointment_count__gt=0)),
        recent_sum=Sum("recent_appointment_count"),
        total_sum=Sum("total_appointment_count"),
    )
    active = numbers["total_active_patients"]
    return {
        "total_active_patients": active,
        "patients_with_recent_appointments": numbers["patients_with_recent_appointments"],
        "patients_with_upcoming_appointments": numbers["patients_with_upcoming_appointments"],
        "recent_appointment_total": numbers["recent_sum"] or 0,
        "total_appointment_total": numbers["total_sum"] or 0,
        "last_sync_date": _last_sync_time(organization),
    }


def appointment_type_summary(*, organization, now: datetime, days: int | None = None) -> list[dict]:
    """The active patients grouped by (next, primary) appointment type: how many, how many with an upcoming
    appointment, and the earliest and latest of their next appointments."""
    rows = (
        active_patients(organization=organization, now=now, days=days)
        .order_by()
        .values("next_appointment_type", "primary_appointment_type")
        .annotate(
            patient_count=Count("pk"),
            patients_with_upcoming=Count("pk", filter=Q(upcoming_appointment_count__gt=0)),
            earliest_upcoming=Min("next_appointment_time"),
            latest_upcoming=Max("next_appointment_time"),
        )
        .order_by("-patient_count", "next_appointment_type", "primary_appointment_type")
    )
    return list(rows)


def dashboard_summary(*, organization, now: datetime, days: int | None = None) -> dict:
    """The dashboard's numbers, aggregated over the same annotated queryset the lists use."""
    numbers = patients_annotated(organization=organization, now=now, days=days).aggregate(
        total_patients=Count("pk"),
        active_patients=Count("pk", filter=_active_filter()),
        patients_with_upcoming=Count("pk", filter=Q(upcoming_appointment_count__gt=0)),
        patients_with_recent=Count("pk", filter=Q(recent_appointment_count__gt=0)),
        total_upcoming_appointments=Sum("upcoming_appointment_count"),
        total_recent_appointments=Sum("recent_appointment_count"),
        total_all_appointments=Sum("total_appointment_count"),
        synced_patients=Count("pk", filter=Q(last_synced_at__isnull=False)),
    )
    connection = ClinikoConnection.objects.filter(organization=organization).values("credentials_valid").first()
    return {
        **{key: value or 0 for key, value in numbers.items()},
        "last_sync_time": _last_sync_time(organization),
        "connected": connection is not None,
        "credentials_valid": connection["credentials_valid"] if connection else None,
    }


def sync_activity(*, organization, limit: int) -> list[SyncRun]:
    """The organization's latest sync runs, newest first."""
    return list(SyncRun.objects.filter(organization=organization).order_by("-created_at", "-id")[:limit])


# --- Operations: health, sync progress and history, Cliniko status (sync/api/ops.py) ----------------------

HISTORY_LIMIT_MAX = 100


def organization_filter(organizations, field: str = "organization") -> Q:
    """Rows of these organizations (None: every organization, for staff)."""
    if organizations is None:
        return Q()
    return Q(**{f"{field}__in": [organization.pk for organization in organizations]})


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
    patients = Patient.objects.filter(organization_filter(organizations), archived=False)
    # One window for a total over several organizations: the platform's (each organization's own window
    # applies to its dashboards).
    active = active_condition(now, recent_days())
    figures = patients.aggregate(total=Count("pk"), active=Count("pk", filter=active))
    connections = ClinikoConnection.objects.filter(organization_filter(organizations)).aggregate(
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


def cliniko_connection_of(organization):
    from sync.models import ClinikoConnection

    return ClinikoConnection.objects.filter(organization=organization).first()


def cliniko_region(connection) -> str | None:
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

    connection = cliniko_connection_of(organization)
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

    connection = cliniko_connection_of(organization)
    last_sync = SyncRun.objects.filter(organization=organization, status="completed").aggregate(
        last=Max("completed_at")
    )["last"]
    total = Patient.objects.filter(organization=organization, external_id__isnull=False, archived=False).count()
    return {
        "cliniko_connected": connection is not None,
        "api_region": cliniko_region(connection),
        "last_sync": last_sync,
        "total_patients": total,
        "sync_enabled": bool(connection and connection.sync_enabled),
        "credentials_valid": connection.credentials_valid if connection else None,
    }


def cliniko_debug(*, organization) -> dict:
    """Counts and the last run (its error codes): never a record, a name, a phone or the key."""
    from patients.models import Appointment, Patient
    from sync.models import ClinikoAppointmentType, ClinikoPractitioner, SyncRun

    connection = cliniko_connection_of(organization)
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
            "api_region": cliniko_region(connection),
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
