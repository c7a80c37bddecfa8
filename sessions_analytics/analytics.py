"""Pure functions of the therapist dashboard: skill names to stable ids, comparison trends and the analytics
derived from stored sessions. No ORM, no clock: callers pass rows and `now` (like integration/analytics.py).
The thresholds are module constants, documented in docs/therapist-dashboard.md."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from core.rounding import round_half_up

SKILL_ID_MAX = 100
_NON_ALNUM = re.compile(r"[^a-z0-9]+")

# Known skills' categories; any other skill is "general".
SKILL_CATEGORIES = {
    "active-listening": "therapeutic",
    "empathy": "therapeutic",
    "reflection": "therapeutic",
    "validation": "therapeutic",
    "rapport-building": "therapeutic",
    "questioning": "communication",
    "open-questions": "communication",
    "summarizing": "communication",
    "clarification": "communication",
    "risk-assessment": "assessment",
    "safety-planning": "assessment",
    "crisis-intervention": "assessment",
}
DEFAULT_SKILL_CATEGORY = "general"


def skill_slug(name: str) -> str:
    """The stable id of a skill name: "Active Listening" -> "active-listening", "Empatía" -> "empatia".
    Accents dropped, lowercase, every run of other characters one "-", trimmed; "" when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode("ascii")
    return _NON_ALNUM.sub("-", ascii_text.lower()).strip("-")[:SKILL_ID_MAX].strip("-")


def skill_category(slug: str) -> str:
    return SKILL_CATEGORIES.get(slug, DEFAULT_SKILL_CATEGORY)


# --- Comparison trend ------------------------------------------------------------------------------------

TREND_THRESHOLD_POINTS = 2.0  # |progressImprovement + skillScoreImprovement| below this is "stable"
IMPROVING, DECLINING, STABLE = "improving", "declining", "stable"


def comparison_trend(progress_improvement: float, skill_score_improvement: float) -> str:
    """The trend of a comparison: "improving" when the net change (progress + skill score points) is at least
    +2, "declining" when at most -2, else "stable". The net is rounded to 6 places first (1.1 + 0.9 is 2)."""
    net = round(progress_improvement + skill_score_improvement, 6)
    if net >= TREND_THRESHOLD_POINTS:
        return IMPROVING
    if net <= -TREND_THRESHOLD_POINTS:
        return DECLINING
    return STABLE


# --- Shapes the aggregate reads return (snake_case; the API's output serializers map them to camelCase) ----

SOURCE_POSTED, SOURCE_DERIVED = "posted", "derived"
UP, DOWN = "up", "down"  # with STABLE: a skill's trend and a summary stat's direction


@dataclass(frozen=True)
class SkillSummary:
    """One skill of GET /api/session/skills."""

    skill_name: str
    skill_category: str
    current_score: float
    practice_sessions: int
    last_practiced: datetime
    created_at: datetime


# SessionMetric and DayRow: slotted, not frozen: a derived body makes hundreds of each per request and a
# frozen dataclass takes several times longer to build. Nothing changes them after they are built.
@dataclass(slots=True)
class SessionMetric:
    date: date
    sessions: int
    therapist_sessions: int
    average_session_progress: float
    session_id: str | None
    therapist_id: str | None
    milestones_achieved: int
    average_response_time: float


@dataclass(frozen=True)
class SkillProgress:
    skill: str  # display name
    skill_id: str
    score: float
    trend: str  # up | down | stable
    category: str
    sessions_practiced: int
    average_improvement: float


@dataclass(frozen=True)
class StatTrend:
    value: float
    direction: str  # up | down | stable
    period: str


@dataclass(frozen=True)
class SummaryStat:
    value: float
    label: str
    therapist_id: str | None
    trend: StatTrend | None  # optional in posted stats; always set in derived ones
    color: str


@dataclass(frozen=True)
class Snapshot:
    timestamp: datetime
    value: float


@dataclass(frozen=True)
class AnalyticsData:
    session_metrics: list[SessionMetric]
    skill_progress: list[SkillProgress]
    summary_stats: list[SummaryStat]
    progress_snapshots: list[Snapshot]
    source: str  # "posted" | "derived"


# --- Skills summary ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkillAggregateRow:
    """One skill over the sessions in scope, as the aggregate read computes it in SQL: the score of the latest
    practising session (by session start, ties by recorded_at), the sessions that scored it, the latest of
    their start times, and the first time it was scored."""

    skill_name: str
    skill_category: str
    latest_score: float
    sessions: int
    latest_session_start: datetime
    first_scored_at: datetime


def skill_summaries(rows: Iterable[SkillAggregateRow]) -> list[SkillSummary]:
    """The skills sorted by display name (case-insensitively, then exactly, so the order is stable)."""
    return [
        SkillSummary(
            skill_name=row.skill_name,
            skill_category=row.skill_category,
            current_score=row.latest_score,
            practice_sessions=row.sessions,
            last_practiced=row.latest_session_start,
            created_at=row.first_scored_at,
        )
        for row in sorted(rows, key=lambda row: (row.skill_name.casefold(), row.skill_name))
    ]


# --- Derived analytics (sessions never given posted analytics) -----------------------------------------------

SKILL_TREND_POINTS = 2.0  # latest - previous score at least this: "up"; at most minus this: "down"
PROGRESS_PLACES = 1  # averageSessionProgress, averageImprovement, the "Average Progress" stat and its trend
RESPONSE_TIME_PLACES = 2  # averageResponseTime (seconds)
ALL_TIME_PERIOD = "all time"
# label, color: the derived summary stats, in this order.
SUMMARY_STATS = (
    ("Total Sessions", "blue"),
    ("Completed Sessions", "green"),
    ("Average Progress", "purple"),
    ("Milestones Reached", "orange"),
)
_RANGE_LABELS = {7: "7d", 30: "30d", 90: "90d", 365: "1y"}


@dataclass(slots=True)
class DayRow:
    """The therapist's sessions that started on one UTC day, in one period: `in_range` for the requested range,
    else the previous period of the same length (summary trends only). Sums, so periods and days add up."""

    day: date
    in_range: bool
    sessions: int
    completed: int
    progress_sum: float
    with_metrics: int  # sessions with progress metrics
    response_time_sum: float  # over those
    milestones: int
    latest_session_id: str | None = None  # the day's latest session (in_range rows)


@dataclass(frozen=True)
class SkillScoreRow:
    """A score of one skill in one session of the range. `from_latest`/`from_first` rank it among the skill's
    scores in the range ordered by session start (1 = latest / first), `practiced` counts them. Only the
    first, the latest and the second latest are needed, so the aggregate read passes just those."""

    skill_id: str
    skill_name: str
    category: str
    score: float
    from_latest: int
    from_first: int
    practiced: int


_FAST_ROUNDING_LIMIT = 1e15  # below it a float's repr is plain digits and its ulp far finer than the rounding


def _round_half_up(value: float, places: int) -> float:
    """core.rounding.round_half_up(value, places) of a float, without Decimal (a derived analytics body has
    hundreds of averages). Half up applies to the float's shortest repr. When that repr is not a tie at the
    place rounded away, round() on the exact binary value agrees with it (a tie point between the two would
    itself be a shorter or closer repr); a tie ("20.15") goes up in magnitude, in integers, and one division
    by a power of ten gives the nearest float, as float(Decimal) does. Other types and huge values: core."""
    if value.__class__ is float and -_FAST_ROUNDING_LIMIT < value < _FAST_ROUNDING_LIMIT:
        text = repr(value)
        if "e" not in text:
            point = text.index(".")
            if text[-1] != "5" or len(text) - point - 1 != places + 1:
                return round(value, places)
            negative = text[0] == "-"
            magnitude = (int(text[negative:point] + text[point + 1 : -1]) + 1) / 10**places
            return -magnitude if negative else magnitude
    return round_half_up(value, places)


def _mean(total: float, count: int, places: int) -> float:
    return _round_half_up(total / count, places) if count else 0.0


def _direction(delta: float, threshold: float) -> str:
    """UP when the change is at least `threshold` (any rise when it is 0), DOWN when at most minus it."""
    delta = round(delta, 6)  # 82.1 - 80.1 is 2 points, not 1.9999999999999943
    if delta >= threshold and delta != 0:
        return UP
    if delta <= -threshold and delta != 0:
        return DOWN
    return STABLE


def _combined(a: DayRow, b: DayRow) -> DayRow:
    return DayRow(
        day=a.day,
        in_range=a.in_range,
        sessions=a.sessions + b.sessions,
        completed=a.completed + b.completed,
        progress_sum=a.progress_sum + b.progress_sum,
        with_metrics=a.with_metrics + b.with_metrics,
        response_time_sum=a.response_time_sum + b.response_time_sum,
        milestones=a.milestones + b.milestones,
        latest_session_id=a.latest_session_id or b.latest_session_id,
    )


def session_metrics(days: Iterable[DayRow], *, therapist_id: str | None) -> list[SessionMetric]:
    """One entry per UTC day of the range with sessions, ascending (rows of the same day are added up)."""
    by_day: dict[date, DayRow] = {}
    for row in days:
        if row.in_range:
            by_day[row.day] = _combined(by_day[row.day], row) if row.day in by_day else row
    return [
        SessionMetric(
            date=day,
            sessions=row.sessions,
            therapist_sessions=row.completed,
            average_session_progress=_mean(row.progress_sum, row.sessions, PROGRESS_PLACES),
            session_id=row.latest_session_id,
            therapist_id=therapist_id,
            milestones_achieved=row.milestones,
            average_response_time=_mean(row.response_time_sum, row.with_metrics, RESPONSE_TIME_PLACES),
        )
        for day, row in sorted(by_day.items())
    ]


def skill_progress(rows: Iterable[SkillScoreRow]) -> list[SkillProgress]:
    """Per skill over its scores in the range: score = the latest; sessionsPracticed = how many;
    averageImprovement = (latest - first) / (count - 1), 0 with one score, 1 dp; trend = "up" when
    latest - previous >= SKILL_TREND_POINTS, "down" when <= -SKILL_TREND_POINTS, else (or with one) "stable".
    Sorted by display name."""
    by_skill: dict[str, dict[str, SkillScoreRow]] = {}
    for row in rows:
        ranks = by_skill.setdefault(row.skill_id, {})
        if row.from_latest == 1:
            ranks["latest"] = row
        if row.from_latest == 2:
            ranks["previous"] = row
        if row.from_first == 1:
            ranks["first"] = row
    progress = []
    for skill_id, ranks in by_skill.items():
        latest, first, previous = ranks["latest"], ranks["first"], ranks.get("previous")
        count = latest.practiced
        improvement = _round_half_up((latest.score - first.score) / (count - 1), PROGRESS_PLACES) if count > 1 else 0.0
        progress.append(
            SkillProgress(
                skill=latest.skill_name,
                skill_id=skill_id,
                score=latest.score,
                trend=_direction(latest.score - previous.score, SKILL_TREND_POINTS) if previous else STABLE,
                category=latest.category,
                sessions_practiced=count,
                average_improvement=improvement,
            )
        )
    return sorted(progress, key=lambda item: (item.skill.casefold(), item.skill))


def period_label(since: datetime | None, now: datetime) -> str:
    """The trend period of derived summary stats: "previous 7d" (30d, 90d, 1y) for the API's ranges,
    "previous N days" for any other, "all time" without a range (there is no previous period)."""
    if since is None:
        return ALL_TIME_PERIOD
    days = round((now - since) / timedelta(days=1), 6)
    if days in _RANGE_LABELS:
        return f"previous {_RANGE_LABELS[days]}"
    return f"previous {days:g} days"


def _period_totals(rows: list[DayRow]) -> tuple[float, ...]:
    sessions = completed = milestones = 0
    progress_sum = 0  # an int start, as sum() had: the float additions are the same, in the same order
    for row in rows:
        sessions += row.sessions
        completed += row.completed
        progress_sum += row.progress_sum
        milestones += row.milestones
    return sessions, completed, _mean(progress_sum, sessions, PROGRESS_PLACES), milestones


def summary_stats(
    days: Iterable[DayRow], *, therapist_id: str | None, since: datetime | None, now: datetime
) -> list[SummaryStat]:
    """Total sessions, completed sessions, average progress (1 dp) and milestones reached in the range, each
    with its change from the previous period of the same length (just before `since`). Without a range
    there is no previous period: trend 0, "stable", period "all time"."""
    days = list(days)
    current = _period_totals([r for r in days if r.in_range])
    previous = _period_totals([r for r in days if not r.in_range]) if since is not None else current
    period = period_label(since, now)
    stats = []
    for (label, color), value, before in zip(SUMMARY_STATS, current, previous, strict=True):
        delta = round_half_up(value - before, PROGRESS_PLACES) if label == "Average Progress" else value - before
        stats.append(
            SummaryStat(
                value=value,
                label=label,
                therapist_id=therapist_id,
                trend=StatTrend(value=delta, direction=_direction(delta, 0.0), period=period),
                color=color,
            )
        )
    return stats


def derived_analytics(
    days: Iterable[DayRow],
    skills: Iterable[SkillScoreRow],
    *,
    therapist_id: str | None,
    since: datetime | None,
    now: datetime,
    snapshots: Iterable[Snapshot] = (),
) -> AnalyticsData:
    """The analytics of a session never given posted ones, over its therapist's sessions that started in the
    range (`since` to now; None = all time): see session_metrics, skill_progress and summary_stats."""
    days = list(days)
    return AnalyticsData(
        session_metrics=session_metrics(days, therapist_id=therapist_id),
        skill_progress=skill_progress(skills),
        summary_stats=summary_stats(days, therapist_id=therapist_id, since=since, now=now),
        progress_snapshots=list(snapshots),
        source=SOURCE_DERIVED,
    )
