"""The therapist dashboard's aggregate reads: skills across sessions, analytics (posted or derived) and
comparisons. Each costs a constant number of queries however many sessions there are; the arithmetic on the
rows is pure (sessions_analytics.analytics). Who may read what comes from sessions_analytics.selectors.

The hot reads (skills, derived analytics) are hand-written SQL run on the connection's cursor, plain SQL that
PostgreSQL and SQLite both run (the UTC day comes from Django's own backend operation): building the same
statements with the ORM cost more per request than the database took to answer them (bench/therapist_api.py,
docs/therapist-dashboard.md "Speed"). Counts and the first/earliest values per skill come from one grouped
pass over the therapist's scores; the latest, second latest and first score of a skill are index probes of
(therapist, skill, session_start, recorded_at, id), so the cost grows with the skills, not the sessions. The day
totals read one narrow row per session of the period in start order and add them up here, in that order, so
the float sums (and their rounding) are exactly what they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import connection
from django.db.models import Q

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
    AnalyticsGeneration,
    AnalyticsSessionMetric,
    AnalyticsSkillProgress,
    AnalyticsSummaryStat,
    Milestone,
    ProgressMetrics,
    ProgressSnapshot,
    SessionComparison,
    SessionSkillScore,
    Skill,
    TrainingSession,
)
from sessions_analytics.selectors import Access, sessions_readable, therapist_sessions_readable

COMPARISON_LIST_MAX = 500  # GET /api/session/comparison returns at most this many, newest first

_SESSIONS = TrainingSession._meta.db_table
_METRICS = ProgressMetrics._meta.db_table
_MILESTONES = Milestone._meta.db_table
_SNAPSHOTS = ProgressSnapshot._meta.db_table
_SCORES = SessionSkillScore._meta.db_table
_SKILLS = Skill._meta.db_table


# --- Raw SQL plumbing (the two backends' differences: parameters and values of dates and times) ------------------


def _rows(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _instant_param(value: datetime):
    """A datetime as the backend compares it with a stored one (SQLite: naive UTC text, like the ORM's)."""
    return connection.ops.adapt_datetimefield_value(value)


def _instant(value) -> datetime | None:
    """A stored datetime as read from the cursor: aware UTC on PostgreSQL already; on SQLite text or a naive
    datetime (UTC), made aware as the ORM does."""
    if value is None or (isinstance(value, datetime) and value.tzinfo is not None):
        return value
    return connection.ops.convert_datetimefield_value(value, None, connection)


def _day(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _score_probe(column: str, *, newest_first: bool, since: datetime | None, offset: int = 0) -> tuple[str, list]:
    """A correlated subquery for a skill `sk` of the outer query: the `column` of the therapist's score ranked
    `offset` (0 = first) newest first (latest session start, then the later recorded_at, then the later row) or
    oldest first, among the scores from `since` on. An index range scan, read in the order wanted."""
    direction = "DESC" if newest_first else "ASC"
    in_range, params = "", []
    if since is not None:
        in_range, params = " AND x.session_start >= %s", [_instant_param(since)]
    sql = (
        # Table and column names are the models', every value a parameter.
        f"(SELECT x.{column} FROM {_SCORES} x WHERE x.therapist_id = %s AND x.skill_id = sk.id{in_range} "  # noqa: S608
        f"ORDER BY x.session_start {direction}, x.recorded_at {direction}, x.id {direction} LIMIT 1"
        f"{f' OFFSET {offset}' if offset else ''})"
    )
    return sql, params


def _skills_scored(
    therapist_id: int, organization_id: int, since: datetime | None, columns: list[str], probes: list[tuple[str, list]]
) -> list[tuple]:
    """Per skill of the organization that `therapist_id` scored (from `since` on): the skill's `columns`
    (of `sk`), the count `g.n`, the earliest `g.first_created`, then each probe's value. Scores belong to their
    skill's organization (services take a session's skills from its organization), so filtering the skills by
    organization scopes the scores too. One query."""
    in_range, range_params = "", []
    if since is not None:
        in_range, range_params = " AND session_start >= %s", [_instant_param(since)]
    probe_sql = ", ".join(sql for sql, _params in probes)
    probe_params = [p for _sql, params in probes for p in (therapist_id, *params)]
    sql = (
        f"SELECT {', '.join(columns)}, g.n, g.first_created, {probe_sql} "  # noqa: S608 (as in _score_probe)
        f"FROM (SELECT skill_id, COUNT(*) AS n, MIN(created_at) AS first_created FROM {_SCORES} "
        f"WHERE therapist_id = %s{in_range} GROUP BY skill_id) g "
        f"JOIN {_SKILLS} sk ON sk.id = g.skill_id WHERE sk.organization_id = %s"
    )
    return _rows(sql, [*probe_params, therapist_id, *range_params, organization_id])


# --- Skills --------------------------------------------------------------------------------------------------


def skills_summary(access: Access, *, therapist=None, session: TrainingSession | None = None) -> list[SkillSummary]:
    """The skills scored in the caller-readable sessions of `therapist` and/or the one `session`, sorted by
    name: currentScore from the latest practising session (by session start, ties by the score's recorded_at,
    then the later row), practiceSessions, lastPracticed (that session's start) and createdAt (the first
    score). One query (none when the caller may not read the therapist's sessions)."""
    if session is not None:
        return _session_skills(access, therapist, session)
    if therapist is None:
        raise ValueError("skills_summary needs a therapist or a session")
    if not therapist_sessions_readable(access, therapist):
        return []
    probes = [
        _score_probe("score", newest_first=True, since=None),
        _score_probe("session_start", newest_first=True, since=None),
    ]
    rows = _skills_scored(therapist.pk, access.organization.pk, None, ["sk.name", "sk.category"], probes)
    return skill_summaries(
        SkillAggregateRow(
            skill_name=name,
            skill_category=category,
            latest_score=latest_score,
            sessions=practiced,
            latest_session_start=_instant(latest_start),
            first_scored_at=_instant(first_scored_at),
        )
        for name, category, practiced, first_scored_at, latest_score, latest_start in rows
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
    """The session's progress snapshots from `since` on, by timestamp."""
    in_range, params = "", [session.pk]
    if since is not None:
        in_range, params = ' AND "timestamp" >= %s', [session.pk, _instant_param(since)]
    sql = f'SELECT "timestamp", value FROM {_SNAPSHOTS} WHERE session_id = %s{in_range} ORDER BY "timestamp"'  # noqa: S608
    rows = _rows(sql, params)
    return [Snapshot(timestamp=_instant(timestamp), value=value) for timestamp, value in rows]


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


def _day_rows(since: datetime | None, now: datetime, *, organization_id: int, therapist_id: int) -> list[DayRow]:
    """The therapist's sessions (in the organization) from the start of the previous period on, added up by UTC
    day of their start and period (in the range, or the previous period), with their milestones and each
    in-range day's latest session (by start, then the later row).

    One query of one narrow row per session in start order (metrics joined, milestones counted; the day and
    the period computed in SQL: parsing a timestamp per row costs more than the rest of the row), added up here
    in that order. Grouping in SQL instead was no faster (per-day sorts and the latest session of each day)
    and would add the floats in another order."""
    day_sql, day_params = connection.ops.datetime_cast_date_sql("s.start_time", (), "UTC")
    in_range_sql, in_range_params = "1", []
    where, where_params = "s.organization_id = %s AND s.therapist_id = %s", [organization_id, therapist_id]
    if since is not None:
        in_range_sql, in_range_params = "CASE WHEN s.start_time >= %s THEN 1 ELSE 0 END", [_instant_param(since)]
        where += " AND s.start_time >= %s"
        where_params.append(_instant_param(since - (now - since)))
    rows = _rows(
        f"SELECT {day_sql}, {in_range_sql}, s.public_id, CASE WHEN s.status = %s THEN 1 ELSE 0 END, s.progress, "  # noqa: S608
        f"pm.response_time, COUNT(m.id) FROM {_SESSIONS} s "
        f"LEFT JOIN {_METRICS} pm ON pm.session_id = s.id LEFT JOIN {_MILESTONES} m ON m.session_id = s.id "
        f"WHERE {where} GROUP BY s.id, pm.response_time ORDER BY s.start_time, s.id",
        [*day_params, *in_range_params, TrainingSession.Status.COMPLETED, *where_params],
    )
    # (day, in range) -> sessions, completed, progress sum, with metrics, response time sum, milestones, latest.
    days: dict[tuple, list] = {}
    for day, in_range, public_id, completed, progress, response_time, achieved in rows:
        totals = days.get((day, in_range))
        if totals is None:
            totals = days[(day, in_range)] = [0, 0, 0.0, 0, 0.0, 0, None]
        totals[0] += 1
        totals[1] += completed
        totals[2] += progress
        if response_time is not None:  # the session has progress metrics
            totals[3] += 1
            totals[4] += response_time
        totals[5] += achieved
        if in_range:
            totals[6] = public_id  # start order: the day's last one is its latest
    return [
        DayRow(
            day=_day(day),
            in_range=bool(in_range),
            sessions=totals[0],
            completed=totals[1],
            progress_sum=totals[2],
            with_metrics=totals[3],
            response_time_sum=totals[4],
            milestones=totals[5],
            latest_session_id=totals[6],
        )
        for (day, in_range), totals in days.items()
    ]


def _skill_rows(organization_id: int, therapist_id: int, since: datetime | None) -> list[SkillScoreRow]:
    """Per skill, only the scores derived analytics need, from `since` on: the latest, the one before it and
    the first, with their ranks and the skill's count (analytics.SkillScoreRow). One query: a grouped count
    and per-skill index probes, at most three rows a skill."""
    probes = [
        _score_probe("score", newest_first=True, since=since),
        _score_probe("score", newest_first=True, since=since, offset=1),
        _score_probe("score", newest_first=False, since=since),
    ]
    skills = _skills_scored(therapist_id, organization_id, since, ["sk.skill_id", "sk.name", "sk.category"], probes)
    rows = []
    for skill_id, name, category, practiced, _first_created, latest, previous, first in skills:
        # (score, rank from the latest): the first is the latest with one score, the previous with two.
        ranked = [(latest, 1), (previous, 2), (first, practiced)][: min(practiced, 3)]
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
    return derived_analytics(
        _day_rows(since, now, organization_id=session.organization_id, therapist_id=session.therapist_id),
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


# --- Derived analytics' cache key and validity (docs/therapist-dashboard.md, "Speed") ---------------------------


def derived_analytics_key(session: TrainingSession, since: datetime | None, now: datetime) -> str | None:
    """The cache key of `session`'s derived analytics over the range `since`..`now`: the session, the range's
    length and the therapist's current AnalyticsGeneration token, which every write that can change the
    body replaces in its own transaction. None (not cacheable) when the therapist has no generation row.

    Read before any of the body's rows: a body computed from rows committed after this read is stored under
    a token that is already gone, so it is never served."""
    token = (
        AnalyticsGeneration.objects.filter(organization_id=session.organization_id, therapist_id=session.therapist_id)
        .values_list("token", flat=True)
        .first()
    )
    if token is None:
        return None
    length = "all" if since is None else f"{(now - since) // timedelta(microseconds=1)}us"
    return f"therapist-analytics:v1:{session.public_id}:{length}:{token}"


def derived_analytics_valid_until(session: TrainingSession, since: datetime | None, now: datetime) -> datetime | None:
    """Until when (inclusive) a body derived at `now` over `since`..`now` stays exactly what a new derivation
    would give, if nothing is written (None: forever; all time does not depend on the clock).

    The range only moves forward, and a derived body depends on `since` only through `x >= since` on a
    session's start (in range), `x >= since - length` (read as the previous period) and a snapshot's
    timestamp (in range); skill scores are filtered by their session's start. So the body changes first when
    `since` passes the earliest in-range start or snapshot, or `since - length` passes the earliest start
    read. One query."""
    if since is None:
        return None
    length = now - since
    sql = (
        f"SELECT (SELECT MIN(start_time) FROM {_SESSIONS} WHERE organization_id = %s AND therapist_id = %s "  # noqa: S608
        "AND start_time >= %s), "
        f"(SELECT MIN(start_time) FROM {_SESSIONS} WHERE organization_id = %s AND therapist_id = %s "
        "AND start_time >= %s), "
        f'(SELECT MIN("timestamp") FROM {_SNAPSHOTS} WHERE session_id = %s AND "timestamp" >= %s)'
    )
    owner = [session.organization_id, session.therapist_id]
    first_in_range, first_read, first_snapshot = _rows(
        sql,
        [*owner, _instant_param(since), *owner, _instant_param(since - length), session.pk, _instant_param(since)],
    )[0]
    bounds = [
        _instant(first_in_range) + length if first_in_range is not None else None,
        _instant(first_read) + 2 * length if first_read is not None else None,
        _instant(first_snapshot) + length if first_snapshot is not None else None,
    ]
    bounds = [bound for bound in bounds if bound is not None]
    # No row the range can drop: the body holds until a write (bounded by the cache's own lifetime).
    return min(bounds) if bounds else None


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
