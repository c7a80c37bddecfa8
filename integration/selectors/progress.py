"""GET /clients/:id/progress: what the client did over the last 90 days, at the link's level."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet

from core.rounding import percentage, ratio
from core.serializers import ABSENT
from integration.models import (
    ActivityEntry,
    Assessment,
    CheckIn,
    CourseProgress,
    JournalEntry,
    PermissionLevel,
    RatioEntry,
    Therapist,
    TherapistClientLink,
    TherapistTask,
    WeeklyStrategy,
    level_allows,
)
from integration.selectors import common

TREND_DAYS = 90  # activity completion, mood and ratio trends, journal entries


@dataclass(frozen=True, slots=True)
class AssessmentScore:
    type: str
    score: Any
    completed_at: datetime


@dataclass(frozen=True, slots=True)
class ActivityCompletion:
    total_days: int
    days_active: int
    streak: int
    tasks_completed: int
    tasks_pending: int

    @property
    def completion_rate(self) -> int:
        return percentage(self.days_active, self.total_days)


@dataclass(frozen=True, slots=True)
class WeeklyStrategyRow:
    week_number: int
    theme: str
    completed_days: int
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class CourseSummary:
    current_week: int | None
    is_active: bool
    weekly_strategies: list[WeeklyStrategyRow]

    @property
    def completed_weeks(self) -> list[int]:
        return [s.week_number for s in self.weekly_strategies if s.completed_at is not None]


@dataclass(frozen=True, slots=True)
class MoodPoint:
    date: date
    mood: int
    closeness: int


@dataclass(frozen=True, slots=True)
class RatioPoint:
    date: date
    positive: int
    negative: int

    @property
    def ratio(self) -> float | None:
        # With no negative interaction the ratio is undefined: null (the counts are still given).
        return ratio(self.positive, self.negative)


@dataclass(frozen=True, slots=True)
class IndividualResponse:
    type: str
    responses: Any
    completed_at: datetime


@dataclass(frozen=True, slots=True)
class JournalEntryRow:
    id: uuid.UUID
    text: str
    created_at: datetime


@dataclass(frozen=True)
class ClientProgress:
    """Sections above the link's level are ABSENT (left out of the body, not null)."""

    client_id: uuid.UUID
    assessment_scores: list[AssessmentScore]
    activity_completion: ActivityCompletion
    course_progress: CourseSummary
    mood_trends: list[MoodPoint] | Any = field(default=ABSENT)  # STANDARD+
    ratio_trends: list[RatioPoint] | Any = field(default=ABSENT)  # STANDARD+
    individual_responses: list[IndividualResponse] | Any = field(default=ABSENT)  # FULL
    journal_entries: list[JournalEntryRow] | Any = field(default=ABSENT)  # FULL


# Each query is defined with the ORM and compiled once per process (common.CompiledQuery): GET /progress
# makes up to eight, and building and compiling them was most of its selector's CPU.
_ASSESSMENTS = common.CompiledQuery(
    lambda client_id: (
        Assessment.objects.filter(client_id=client_id)
        .order_by("completed_at", "id")
        .values_list("type", "score", "completed_at")
    ),
    uuids=("client_id",),
)
_ACTIVE_DAYS = common.CompiledQuery(
    # Every distinct active day up to today, newest first (a streak may be older than the window).
    lambda client_id, today: (
        ActivityEntry.objects.filter(client_id=client_id, date__lte=today)
        .order_by("-date")
        .values_list("date")
        .distinct()
    ),
    uuids=("client_id",),
    dates=("today",),
)
_TASK_COUNTS = common.CompiledQuery(
    # One row (completed, pending) when the therapist assigned the client any task, else none.
    lambda therapist_id, client_id: (
        TherapistTask.objects.filter(therapist_id=therapist_id, client_id=client_id)
        .order_by()
        .values("client_id")
        .annotate(
            completed=Count("pk", filter=Q(status=TherapistTask.Status.COMPLETED)),
            pending=Count("pk", filter=Q(status=TherapistTask.Status.PENDING)),
        )
        .values_list("completed", "pending")
    ),
    uuids=("therapist_id", "client_id"),
)
_COURSE = common.CompiledQuery(
    lambda client_id: (
        CourseProgress.objects.filter(client_id=client_id).order_by("pk").values_list("current_week", "is_active")[:1]
    ),
    uuids=("client_id",),
)
_STRATEGIES = common.CompiledQuery(
    lambda client_id: (
        WeeklyStrategy.objects.filter(client_id=client_id)
        .order_by("week_number")
        .values_list("week_number", "theme", "completed_days", "completed_at")
    ),
    uuids=("client_id",),
)
_CHECKINS = common.CompiledQuery(
    lambda client_id, start, today: (
        CheckIn.objects.filter(client_id=client_id, date__range=(start, today))
        .order_by("date")
        .values_list("date", "mood", "closeness")
    ),
    uuids=("client_id",),
    dates=("start", "today"),
)
_RATIOS = common.CompiledQuery(
    lambda client_id, start, today: (
        RatioEntry.objects.filter(client_id=client_id, date__range=(start, today))
        .order_by("date")
        .values_list("date", "positive", "negative")
    ),
    uuids=("client_id",),
    dates=("start", "today"),
)
_ANSWERED = common.CompiledQuery(
    lambda client_id: (
        Assessment.objects.filter(client_id=client_id, responses__isnull=False)
        .order_by("completed_at", "id")
        .values_list("type", "responses", "completed_at")
    ),
    uuids=("client_id",),
)


def visible_journal_entries(client_id, *, since: date) -> QuerySet[JournalEntry]:
    """Journal entries a therapist may read (FULL only; the caller checks the level). Entries marked
    therapist-hidden are excluded in the query itself, so their text is never even decrypted."""
    return JournalEntry.objects.filter(
        client_id=client_id, therapist_hidden=False, created_at__date__gte=since
    ).order_by("created_at", "id")


_JOURNAL = common.CompiledQuery(
    lambda client_id, since: visible_journal_entries(client_id, since=since).values_list("pk", "text", "created_at"),
    uuids=("client_id",),
    dates=("since",),
)


def assessment_scores(client_id) -> list[AssessmentScore]:
    """Every assessment of the client, oldest first."""
    return [AssessmentScore(*row) for row in _ASSESSMENTS.rows(client_id=client_id)]


def _streak(active_days_desc: list[date], today: date) -> int:
    """Consecutive days with activity ending today, or yesterday when today has none yet."""
    days = set(active_days_desc)
    if today in days:
        day = today
    elif today - timedelta(days=1) in days:
        day = today - timedelta(days=1)
    else:
        return 0
    streak = 0
    while day in days:
        streak += 1
        day -= timedelta(days=1)
    return streak


def activity_completion(*, therapist: Therapist, client_id, today: date) -> ActivityCompletion:
    start = today - timedelta(days=TREND_DAYS - 1)
    days = [row[0] for row in _ACTIVE_DAYS.rows(client_id=client_id, today=today)]
    tasks = _TASK_COUNTS.rows(therapist_id=therapist.pk, client_id=client_id)
    completed, pending = tasks[0] if tasks else (0, 0)
    return ActivityCompletion(
        total_days=TREND_DAYS,
        days_active=sum(1 for day in days if day >= start),
        streak=_streak(days, today),
        tasks_completed=completed,
        tasks_pending=pending,
    )


def course_progress(client_id) -> CourseSummary:
    course = _COURSE.rows(client_id=client_id)
    course = course[0] if course else None
    return CourseSummary(
        current_week=course[0] if course else None,
        is_active=bool(course and course[1]),
        weekly_strategies=[WeeklyStrategyRow(*row) for row in _STRATEGIES.rows(client_id=client_id)],
    )


def client_progress(*, therapist: Therapist, link: TherapistClientLink, today: date | None = None) -> ClientProgress:
    """The progress of `link`'s client (from consent.client_link_for); sections above the link's level
    are ABSENT and never queried."""
    today = today or common.today_utc()
    client_id = link.client_id
    start = today - timedelta(days=TREND_DAYS - 1)
    level = link.permission_level
    sections: dict[str, Any] = {
        "assessment_scores": assessment_scores(client_id),
        "activity_completion": activity_completion(therapist=therapist, client_id=client_id, today=today),
        "course_progress": course_progress(client_id),
    }
    if level_allows(level, PermissionLevel.STANDARD):
        checkins = _CHECKINS.rows(client_id=client_id, start=start, today=today)
        sections["mood_trends"] = [MoodPoint(*row) for row in checkins]
        ratios = _RATIOS.rows(client_id=client_id, start=start, today=today)
        sections["ratio_trends"] = [RatioPoint(*row) for row in ratios]
    if level_allows(level, PermissionLevel.FULL):
        answered = _ANSWERED.rows(client_id=client_id)
        sections["individual_responses"] = [IndividualResponse(*row) for row in answered]
        entries = _JOURNAL.rows(client_id=client_id, since=start)
        sections["journal_entries"] = [JournalEntryRow(*row) for row in entries]
    return ClientProgress(client_id=client_id, **sections)
