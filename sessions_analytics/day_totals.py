"""The kept per-therapist day totals (models.TherapistDay) computed from the sessions themselves.

One computation for every writer: the services recount the one day a write touches (under that day row's
lock), migration 0004 backfills, the bench data and the test factories refill. The sums are added in session
start order (then id), the order the analytics read added them up per session, so a kept day gives exactly
the floats that read gave. The functions take the model classes, so the migration can pass its historical ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count

COMPLETED = "completed"  # TrainingSession.Status.COMPLETED (historical models have no enum)
_BATCH = 1000


@dataclass
class DayTotals:
    sessions: int = 0
    completed: int = 0
    progress_sum: float = 0.0
    with_metrics: int = 0
    response_time_sum: float = 0.0
    milestones: int = 0
    latest_start: datetime | None = None
    latest_session_id: int | None = None


def utc_day(instant: datetime) -> date:
    return instant.astimezone(UTC).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a UTC day."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def day_totals(sessions) -> dict[tuple[int, int, date], DayTotals]:
    """{(organization_id, therapist_id, UTC day): totals} of a TrainingSession queryset. One query."""
    rows = (
        sessions.annotate(achieved=Count("milestones"))
        .order_by("start_time", "pk")
        .values_list(
            "organization_id",
            "therapist_id",
            "start_time",
            "pk",
            "status",
            "progress",
            "progress_metrics__response_time",
            "achieved",
        )
    )
    days: dict[tuple[int, int, date], DayTotals] = {}
    for organization_id, therapist_id, start, pk, status, progress, response_time, achieved in rows.iterator(
        chunk_size=_BATCH
    ):
        totals = days.setdefault((organization_id, therapist_id, utc_day(start)), DayTotals())
        totals.sessions += 1
        totals.completed += status == COMPLETED
        totals.progress_sum += progress
        if response_time is not None:  # the session has progress metrics
            totals.with_metrics += 1
            totals.response_time_sum += response_time
        totals.milestones += achieved
        totals.latest_start, totals.latest_session_id = start, pk  # start order: the last one is the latest
    return days


def totals_fields(totals: DayTotals) -> dict:
    return {
        "sessions": totals.sessions,
        "completed": totals.completed,
        "progress_sum": totals.progress_sum,
        "with_metrics": totals.with_metrics,
        "response_time_sum": totals.response_time_sum,
        "milestones": totals.milestones,
        "latest_start": totals.latest_start,
        "latest_session_id": totals.latest_session_id,
    }


def days_refill(session_model, day_model, **sessions) -> int:
    """Replace the kept days of the sessions matching `sessions` (filters on organization/therapist; none =
    all) by their totals recomputed from the sessions. Not for concurrent use (backfill, bench data, tests):
    live writes go through the services' locked one-day recount. Returns how many days were written."""
    day_model.objects.filter(**sessions).delete()
    days = day_totals(session_model.objects.filter(**sessions))
    day_model.objects.bulk_create(
        (
            day_model(organization_id=organization_id, therapist_id=therapist_id, day=day, **totals_fields(totals))
            for (organization_id, therapist_id, day), totals in days.items()
        ),
        batch_size=_BATCH,
    )
    return len(days)
