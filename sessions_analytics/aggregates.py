"""The therapist dashboard's aggregate reads: skills across sessions, analytics (posted or derived) and
comparisons. Each costs a constant number of queries however many sessions there are; the arithmetic on the
rows is pure (sessions_analytics.analytics). Who may read what comes from sessions_analytics.selectors.

The skill reads are per-skill index lookups (correlated subqueries over the scores' copied therapist and
session start), a few rows per skill, rather than one window over all of a therapist's scores: with a
thousand sessions that sort was most of the request. The day totals read one narrow row per session of the
period and add them up here. Correlated subqueries are plain SQL on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.db.models import Case, Count, Exists, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import TruncDate

from sessions_analytics.analytics import (
    SOURCE_POSTED,
    AnalyticsData,
    DayRow,
    SessionMetric,
    SkillAggregateRow,
    SkillProgress,
    SkillScoreRow,
    SkillSummary,
    Snapshot,
    StatTrend,
    SummaryStat,
    comparison_trend,
    derived_analytics,
    skill_summaries,
)
from sessions_analytics.models import (
    AnalyticsSessionMetric,
    AnalyticsSkillProgress,
    AnalyticsSummaryStat,
    ProgressSnapshot,
    SessionComparison,
    SessionSkillScore,
    Skill,
    TrainingSession,
)
from sessions_analytics.selectors import Access, sessions_readable

COMPARISON_LIST_MAX = 500  # GET /api/session/comparison returns at most this many, newest first


# --- Skills --------------------------------------------------------------------------------------------------


def _skill_lookups(fields: tuple[str, ...], **scores) -> dict[str, Subquery]:
    """Per-skill lookups among a skill's scores filtered by `scores` (`therapist_id`, optionally
    `session_start__gte`), as annotations for a Skill queryset: correlated subqueries, each an index range scan
    of (therapist, skill, session_start, recorded_at, id) in the order the lookup wants (no sort), so the cost
    grows with the skills, not with the therapist's sessions. Newest = latest session start, ties by the later
    recorded_at, then the later row. Every lookup is None for a skill without such scores. Scores belong to
    their skill's organization (services take a session's skills from its organization), so filtering the
    skills by organization scopes the scores too. Only the `fields` asked for are built."""
    of_skill = SessionSkillScore.objects.filter(skill=OuterRef("pk"), **scores).order_by()
    newest_first = ("-session_start", "-recorded_at", "-id")
    lookups = {
        "practiced": lambda: of_skill.values("skill").annotate(n=Count("id")).values("n"),
        "latest_score": lambda: of_skill.order_by(*newest_first).values("score")[:1],
        "latest_start": lambda: of_skill.order_by(*newest_first).values("session_start")[:1],
        "previous_score": lambda: of_skill.order_by(*newest_first).values("score")[1:2],
        "first_score": lambda: of_skill.order_by("session_start", "recorded_at", "id").values("score")[:1],
        "first_scored_at": lambda: of_skill.order_by("created_at").values("created_at")[:1],
    }
    return {field: Subquery(lookups[field]()) for field in fields}


def skills_summary(access: Access, *, therapist=None, session: TrainingSession | None = None) -> list[SkillSummary]:
    """The skills scored in the caller-readable sessions of `therapist` and/or the one `session`, sorted by
    name: currentScore from the latest practising session (by session start, ties by the score's recorded_at,
    then the later row), practiceSessions, lastPracticed (that session's start) and createdAt (the first
    score). One query."""
    if session is not None:
        return _session_skills(access, therapist, session)
    if therapist is None:
        raise ValueError("skills_summary needs a therapist or a session")
    fields = ("practiced", "latest_score", "latest_start", "first_scored_at")
    # One therapist's readable sessions are all of theirs in the organization or none (the selectors' rule):
    # this EXISTS keeps the rule in one place for the price of one index probe.
    readable = sessions_readable(access).filter(therapist=therapist)
    skills = (
        Skill.objects.filter(Exists(readable), organization=access.organization)
        .order_by()
        .annotate(**_skill_lookups(fields, therapist_id=therapist.pk))
        .values_list("name", "category", *fields)
    )
    return skill_summaries(
        SkillAggregateRow(
            skill_name=name,
            skill_category=category,
            latest_score=latest_score,
            sessions=practiced,
            latest_session_start=latest_start,
            first_scored_at=first_scored_at,
        )
        for name, category, practiced, latest_score, latest_start, first_scored_at in skills
        if practiced
    )


def _session_skills(access: Access, therapist, session: TrainingSession) -> list[SkillSummary]:
    """One session's skills: a session has at most one score per skill, so each is its own summary."""
    sessions = sessions_readable(access).filter(pk=session.pk)
    if therapist is not None:
        sessions = sessions.filter(therapist=therapist)
    scores = SessionSkillScore.objects.filter(session__in=sessions).select_related("skill").order_by()
    return skill_summaries(
        SkillAggregateRow(
            skill_name=score.skill.name,
            skill_category=score.skill.category,
            latest_score=score.score,
            sessions=1,
            latest_session_start=score.session_start,
            first_scored_at=score.created_at,
        )
        for score in scores
    )


# --- Analytics -------------------------------------------------------------------------------------------------


def _snapshots(session: TrainingSession, since: datetime | None) -> list[Snapshot]:
    rows = ProgressSnapshot.objects.filter(session=session)
    if since is not None:
        rows = rows.filter(timestamp__gte=since)
    return [Snapshot(timestamp=t, value=v) for t, v in rows.order_by("timestamp").values_list("timestamp", "value")]


def _posted(session: TrainingSession, since: datetime | None) -> AnalyticsData:
    """As posted: sessionMetrics from `since`'s UTC date on, progressSnapshots from `since` on. The entries'
    sessionId/therapistId were checked to be this session's when posted, so they are echoed from it."""
    session_id, therapist_id = session.public_id, session.therapist.public_id
    metrics = AnalyticsSessionMetric.objects.filter(session=session).order_by("position")
    if since is not None:
        metrics = metrics.filter(date__gte=since.astimezone(UTC).date())
    skills = AnalyticsSkillProgress.objects.filter(session=session).select_related("skill").order_by("position")
    stats = AnalyticsSummaryStat.objects.filter(session=session).order_by("position")
    return AnalyticsData(
        session_metrics=[
            SessionMetric(
                date=m.date,
                sessions=m.sessions,
                therapist_sessions=m.therapist_sessions,
                average_session_progress=m.average_session_progress,
                session_id=session_id,
                therapist_id=therapist_id,
                milestones_achieved=m.milestones_achieved,
                average_response_time=m.average_response_time,
            )
            for m in metrics
        ],
        skill_progress=[
            SkillProgress(
                skill=s.skill.name,
                skill_id=s.skill.skill_id,
                score=s.score,
                trend=s.trend,
                category=s.category or s.skill.category,
                sessions_practiced=s.sessions_practiced,
                average_improvement=s.average_improvement,
            )
            for s in skills
        ],
        summary_stats=[
            SummaryStat(
                value=s.value,
                label=s.label,
                therapist_id=therapist_id,
                trend=None
                if s.trend_value is None
                else StatTrend(value=s.trend_value, direction=s.trend_direction, period=s.trend_period),
                color=s.color,
            )
            for s in stats
        ],
        progress_snapshots=_snapshots(session, since),
        source=SOURCE_POSTED,
    )


@dataclass
class _DayTotals:
    sessions: int = 0
    completed: int = 0
    progress_sum: float = 0.0
    with_metrics: int = 0
    response_time_sum: float = 0.0
    milestones: int = 0
    latest_session_id: str | None = None


def _day_rows(since: datetime | None, now: datetime, **therapist) -> list[DayRow]:
    """The therapist's sessions (`therapist`: organization_id and therapist_id) from the start of the previous
    period on, added up by UTC day of their start and period (in the range, or the previous period), with their
    milestones and each in-range day's latest session (by start, then the later row).

    One query of one narrow row per session in start order (metrics and milestone count joined; the day and the
    period computed in SQL: parsing a timestamp with time zone per row costs more than the rest of the row).
    That costs less than grouping in SQL did: three queries (days, their milestones, each day's latest)."""
    sessions = TrainingSession.objects.filter(**therapist)
    in_range: Value | Case = Value(True)
    if since is not None:
        sessions = sessions.filter(start_time__gte=since - (now - since))
        in_range = Case(When(start_time__gte=since, then=Value(True)), default=Value(False))
    rows = (
        sessions.annotate(day=TruncDate("start_time", tzinfo=UTC), in_range=in_range, achieved=Count("milestones"))
        .order_by("start_time", "pk")
        .values_list(
            "day", "in_range", "public_id", "status", "progress", "progress_metrics__response_time", "achieved"
        )
    )
    days: dict[tuple[date, bool], _DayTotals] = {}
    for day, in_range_, public_id, status, progress, response_time, achieved in rows:
        totals = days.setdefault((day, bool(in_range_)), _DayTotals())
        totals.sessions += 1
        totals.completed += status == TrainingSession.Status.COMPLETED
        totals.progress_sum += progress
        if response_time is not None:  # the session has progress metrics
            totals.with_metrics += 1
            totals.response_time_sum += response_time
        totals.milestones += achieved
        if in_range_:
            totals.latest_session_id = public_id  # start order: the day's last one is its latest
    return [
        DayRow(
            day=day,
            in_range=in_range_,
            sessions=totals.sessions,
            completed=totals.completed,
            progress_sum=totals.progress_sum,
            with_metrics=totals.with_metrics,
            response_time_sum=totals.response_time_sum,
            milestones=totals.milestones,
            latest_session_id=totals.latest_session_id,
        )
        for (day, in_range_), totals in days.items()
    ]


def _skill_rows(organization_id: int, therapist_id: int, since: datetime | None) -> list[SkillScoreRow]:
    """Per skill, only the scores derived analytics need, from `since` on: the latest, the one before it and
    the first, with their ranks and the skill's count (analytics.SkillScoreRow). One query of per-skill index
    lookups (_skill_lookups), at most three rows a skill."""
    in_range = {} if since is None else {"session_start__gte": since}
    fields = ("practiced", "latest_score", "previous_score", "first_score")
    skills = (
        Skill.objects.filter(organization_id=organization_id)
        .order_by()
        .annotate(**_skill_lookups(fields, therapist_id=therapist_id, **in_range))
        .values_list("skill_id", "name", "category", *fields)
    )
    rows = []
    for skill_id, name, category, practiced, latest, previous, first in skills:
        # (score, rank from the latest): the first is the latest with one score, the previous with two.
        ranked = [(latest, 1), (previous, 2), (first, practiced)][: min(practiced or 0, 3)]
        rows.extend(
            SkillScoreRow(
                skill_id=skill_id,
                skill_name=name,
                category=category,
                score=score,
                from_latest=from_latest,
                from_first=practiced - from_latest + 1,
                practiced=practiced,
            )
            for score, from_latest in ranked
        )
    return rows


def _derived(session: TrainingSession, since: datetime | None, now: datetime) -> AnalyticsData:
    """Computed over the session's therapist's sessions (in its organization) that started from `since` on
    (all, without a range); the summary trends compare with the same length of time just before `since`."""
    therapist = {"organization_id": session.organization_id, "therapist_id": session.therapist_id}
    return derived_analytics(
        _day_rows(since, now, **therapist),
        _skill_rows(session.organization_id, session.therapist_id, since),
        therapist_id=session.therapist.public_id,
        since=since,
        now=now,
        snapshots=_snapshots(session, since),
    )


def analytics_read(session: TrainingSession, *, since: datetime | None, now: datetime) -> AnalyticsData:
    """The session's analytics: as posted when analytics were posted for it (source "posted"), else derived
    from the stored sessions, scores and milestones (source "derived"). `since` None = all time."""
    if session.analytics_posted_at is not None:
        return _posted(session, since)
    return _derived(session, since, now)


# --- Comparisons -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComparisonMetrics:
    progress_improvement: float
    skill_score_improvement: float
    response_time_improvement: float


@dataclass(frozen=True)
class ComparisonRow:
    """A stored comparison with its two sessions' start times and its trend (analytics.comparison_trend)."""

    comparison: SessionComparison
    trend: str

    @property
    def id(self) -> str:
        return self.comparison.public_id

    @property
    def therapist_id(self) -> str:
        return self.comparison.therapist.public_id

    @property
    def current_session_id(self) -> str:
        return self.comparison.current_session.public_id

    @property
    def previous_session_id(self) -> str:
        return self.comparison.previous_session.public_id

    @property
    def improvement_score(self) -> float:
        return self.comparison.improvement_score

    @property
    def metrics(self) -> ComparisonMetrics:
        return ComparisonMetrics(
            progress_improvement=self.comparison.progress_improvement,
            skill_score_improvement=self.comparison.skill_score_improvement,
            response_time_improvement=self.comparison.response_time_improvement,
        )

    @property
    def analyzed_at(self) -> datetime:
        return self.comparison.analyzed_at

    @property
    def current_session_started_at(self) -> datetime:
        return self.comparison.current_session.start_time

    @property
    def previous_session_started_at(self) -> datetime:
        return self.comparison.previous_session.start_time


def comparisons_read(
    access: Access, *, therapist=None, session: TrainingSession | None = None, since: datetime | None = None
) -> list[ComparisonRow]:
    """The caller-readable comparisons of `therapist` and/or those where `session` is the current or the
    previous one, analyzed from `since` on, newest first, at most COMPARISON_LIST_MAX. One query."""
    comparisons = SessionComparison.objects.filter(
        organization=access.organization, current_session__in=sessions_readable(access)
    )
    if therapist is not None:
        comparisons = comparisons.filter(therapist=therapist)
    if session is not None:
        comparisons = comparisons.filter(Q(current_session=session) | Q(previous_session=session))
    if since is not None:
        comparisons = comparisons.filter(analyzed_at__gte=since)
    comparisons = comparisons.select_related("therapist", "current_session", "previous_session").order_by(
        "-analyzed_at", "-id"
    )[:COMPARISON_LIST_MAX]
    return [
        ComparisonRow(comparison=c, trend=comparison_trend(c.progress_improvement, c.skill_score_improvement))
        for c in comparisons
    ]
