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


def assessment_scores(client_id) -> list[AssessmentScore]:
    """Every assessment of the client, oldest first."""
    rows = Assessment.objects.filter(client_id=client_id).order_by("completed_at", "id")
    return [AssessmentScore(*row) for row in rows.values_list("type", "score", "completed_at")]


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
    # Every distinct active day (a streak may be older than the window); one row per day at most.
    days = list(
        ActivityEntry.objects.filter(client_id=client_id, date__lte=today)
        .order_by("-date")
        .values_list("date", flat=True)
        .distinct()
    )
    tasks = TherapistTask.objects.filter(therapist=therapist, client_id=client_id).aggregate(
        completed=Count("pk", filter=Q(status=TherapistTask.Status.COMPLETED)),
        pending=Count("pk", filter=Q(status=TherapistTask.Status.PENDING)),
    )
    return ActivityCompletion(
        total_days=TREND_DAYS,
        days_active=sum(1 for day in days if day >= start),
        streak=_streak(days, today),
        tasks_completed=tasks["completed"],
        tasks_pending=tasks["pending"],
    )


def course_progress(client_id) -> CourseSummary:
    course = CourseProgress.objects.filter(client_id=client_id).values_list("current_week", "is_active").first()
    strategies = WeeklyStrategy.objects.filter(client_id=client_id).order_by("week_number")
    return CourseSummary(
        current_week=course[0] if course else None,
        is_active=bool(course and course[1]),
        weekly_strategies=[
            WeeklyStrategyRow(*row)
            for row in strategies.values_list("week_number", "theme", "completed_days", "completed_at")
        ],
    )


def visible_journal_entries(client_id, *, since: date) -> QuerySet[JournalEntry]:
    """Journal entries a therapist may read (FULL only; the caller checks the level). Entries marked
    therapist-hidden are excluded in the query itself, so their text is never even decrypted."""
    return JournalEntry.objects.filter(
        client_id=client_id, therapist_hidden=False, created_at__date__gte=since
    ).order_by("created_at", "id")


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
        checkins = CheckIn.objects.filter(client_id=client_id, date__range=(start, today)).order_by("date")
        sections["mood_trends"] = [MoodPoint(*row) for row in checkins.values_list("date", "mood", "closeness")]
        ratios = RatioEntry.objects.filter(client_id=client_id, date__range=(start, today)).order_by("date")
        sections["ratio_trends"] = [RatioPoint(*row) for row in ratios.values_list("date", "positive", "negative")]
    if level_allows(level, PermissionLevel.FULL):
        answered = Assessment.objects.filter(client_id=client_id, responses__isnull=False).order_by(
            "completed_at", "id"
        )
        sections["individual_responses"] = [
            IndividualResponse(*row) for row in answered.values_list("type", "responses", "completed_at")
        ]
        entries = visible_journal_entries(client_id, since=start).values_list("pk", "text", "created_at")
        sections["journal_entries"] = [JournalEntryRow(*row) for row in entries]
    return ClientProgress(client_id=client_id, **sections)
