"""The aggregate reads against the database (PostgreSQL and SQLite): skills across sessions, analytics posted
or derived with their time ranges, comparisons, who sees what, and query counts that do not grow with sessions."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from core.scoping import Role
from sessions_analytics.aggregates import COMPARISON_LIST_MAX, analytics_read, comparisons_read, skills_summary
from sessions_analytics.models import (
    AnalyticsSessionMetric,
    AnalyticsSkillProgress,
    AnalyticsSummaryStat,
    Milestone,
    ProgressMetrics,
    SessionComparison,
    TrainingSession,
)
from sessions_analytics.selectors import Access
from tests.sessions_analytics.factories import (
    NOW,
    make_score,
    make_session,
    make_skill,
    make_snapshots,
    make_world,
)

pytestmark = pytest.mark.django_db

COMPLETED = TrainingSession.Status.COMPLETED


@pytest.fixture
def world():
    return make_world()


def access(world, user, role=Role.THERAPIST) -> Access:
    return Access(organization=world.organization, user=user, role=role)


def metrics(session, response_time: float) -> ProgressMetrics:
    return ProgressMetrics.objects.create(
        session=session,
        total_messages=10,
        therapist_messages=5,
        client_messages=5,
        session_duration=600,
        active_time=500,
        response_time=response_time,
        conversation_flow=70,
        updated_at=session.start_time,
    )


def milestone(session, name: str) -> Milestone:
    return Milestone.objects.create(session=session, name=name, achieved_at=session.start_time)


def comparison(world, current, previous, *, progress=0.0, skill=0.0, analyzed_at=NOW) -> SessionComparison:
    return SessionComparison.objects.create(
        organization=world.organization,
        therapist=current.therapist,
        current_session=current,
        previous_session=previous,
        improvement_score=50,
        progress_improvement=progress,
        skill_score_improvement=skill,
        response_time_improvement=0.5,
        analyzed_at=analyzed_at,
        created_by=current.therapist,
    )


# --- skills_summary --------------------------------------------------------------------------------------------


def test_skills_current_score_is_the_latest_sessions_even_when_an_older_session_was_scored_later(world):
    listening = make_skill(world.organization, "active-listening", "Active Listening")
    empathy = make_skill(world.organization, "empathy", "Empathy")
    older = make_session(world.therapist, world.organization, start=NOW - timedelta(days=10))
    newer = make_session(world.therapist, world.organization, start=NOW - timedelta(days=2))
    make_score(newer, listening, 80, at=NOW - timedelta(days=2))
    make_score(older, listening, 55, at=NOW - timedelta(days=10))
    # The older session's score was changed after the newer one's: it still is not the current score.
    score = older.skill_scores.get(skill=listening)
    score.score, score.recorded_at = 60, NOW - timedelta(hours=1)
    score.save()
    make_score(older, empathy, 70, at=NOW - timedelta(days=9))

    skills = skills_summary(access(world, world.therapist), therapist=world.therapist)

    assert [s.skill_name for s in skills] == ["Active Listening", "Empathy"]
    listening_summary, empathy_summary = skills
    assert listening_summary.current_score == 80
    assert listening_summary.practice_sessions == 2
    assert listening_summary.last_practiced == newer.start_time
    assert listening_summary.created_at == NOW - timedelta(days=10)
    assert listening_summary.skill_category == "therapeutic"
    assert (empathy_summary.current_score, empathy_summary.practice_sessions) == (70, 1)
    assert empathy_summary.last_practiced == older.start_time


def test_skills_ties_on_session_start_go_to_the_later_recorded_score(world):
    skill = make_skill(world.organization, "empathy", "Empathy")
    first = make_session(world.therapist, world.organization, start=NOW)
    second = make_session(world.therapist, world.organization, start=NOW)
    make_score(first, skill, 40, at=NOW + timedelta(minutes=5))
    make_score(second, skill, 90, at=NOW + timedelta(minutes=1))

    [summary] = skills_summary(access(world, world.therapist), therapist=world.therapist)

    assert summary.current_score == 40


def test_skills_of_one_session_and_nobody_elses(world):
    skill = make_skill(world.organization, "empathy", "Empathy")
    mine = make_session(world.therapist, world.organization, start=NOW - timedelta(days=3))
    also_mine = make_session(world.therapist, world.organization, start=NOW - timedelta(days=1))
    theirs = make_session(world.other_therapist, world.organization, start=NOW)
    make_score(mine, skill, 50)
    make_score(also_mine, skill, 65)
    make_score(theirs, skill, 99)
    me = access(world, world.therapist)

    [for_session] = skills_summary(me, therapist=None, session=mine)
    [for_me] = skills_summary(me, therapist=world.therapist)

    assert (for_session.current_score, for_session.practice_sessions) == (50, 1)
    assert (for_me.current_score, for_me.practice_sessions) == (65, 2)
    # A therapist's access never reaches another therapist's scores, even when asked for them.
    assert skills_summary(me, therapist=world.other_therapist) == []
    [reviewed] = skills_summary(access(world, world.supervisor, Role.SUPERVISOR), therapist=world.other_therapist)
    assert reviewed.current_score == 99


def test_skills_of_a_session_that_is_not_the_named_therapists_are_none(world):
    skill = make_skill(world.organization, "empathy", "Empathy")
    theirs = make_session(world.other_therapist, world.organization, start=NOW)
    make_score(theirs, skill, 80)
    supervisor = access(world, world.supervisor, Role.SUPERVISOR)

    assert skills_summary(supervisor, therapist=world.therapist, session=theirs) == []
    [summary] = skills_summary(supervisor, therapist=world.other_therapist, session=theirs)
    assert (summary.current_score, summary.practice_sessions, summary.last_practiced) == (80, 1, NOW)


# --- analytics_read ----------------------------------------------------------------------------------------------


def test_derived_analytics_when_never_posted(world):
    listening = make_skill(world.organization, "active-listening", "Active Listening")
    day_one = NOW - timedelta(days=3)
    a = make_session(world.therapist, world.organization, start=day_one, status=COMPLETED, progress=60)
    b = make_session(world.therapist, world.organization, start=day_one + timedelta(hours=2), progress=71)
    c = make_session(world.therapist, world.organization, start=NOW - timedelta(days=1), progress=90)
    make_session(world.other_therapist, world.organization, start=NOW - timedelta(days=1), progress=10)
    metrics(a, 2.0)
    metrics(b, 3.5)
    milestone(a, "rapport")
    milestone(b, "rapport")
    milestone(b, "open-questions")
    make_score(a, listening, 50)
    make_score(b, listening, 60)
    make_score(c, listening, 63)
    make_snapshots(c, [10, 20])

    data = analytics_read(c, since=None, now=NOW)

    assert data.source == "derived"
    day1, day2 = data.session_metrics
    assert (day1.date, day1.sessions, day1.therapist_sessions) == (date(2026, 2, 27), 2, 1)
    assert day1.average_session_progress == 65.5
    assert (day1.milestones_achieved, day1.average_response_time) == (3, 2.75)
    assert (day1.session_id, day1.therapist_id) == (b.public_id, world.therapist.public_id)
    assert (day2.date, day2.sessions, day2.session_id, day2.average_response_time) == (
        date(2026, 3, 1),
        1,
        c.public_id,
        0,
    )
    [progress] = data.skill_progress
    assert (progress.skill, progress.skill_id, progress.score, progress.sessions_practiced) == (
        "Active Listening",
        "active-listening",
        63,
        3,
    )
    assert (progress.trend, progress.average_improvement, progress.category) == ("up", 6.5, "therapeutic")
    stats = {s.label: s for s in data.summary_stats}
    assert stats["Total Sessions"].value == 3
    assert stats["Completed Sessions"].value == 1
    assert stats["Average Progress"].value == 73.7
    assert stats["Milestones Reached"].value == 3
    assert stats["Total Sessions"].trend.period == "all time"
    assert [s.value for s in data.progress_snapshots] == [10, 20]


def test_derived_skill_progress_ranks_by_session_start_then_recorded_at_within_the_range(world):
    """Per skill: latest, previous and first score by session start (ties: the later recorded score is the
    later one), counted from `since` on inclusive; another therapist's scores never count."""
    listening = make_skill(world.organization, "active-listening", "Active Listening")
    empathy = make_skill(world.organization, "empathy", "Empathy")
    old_only = make_skill(world.organization, "validation", "Validation")
    since = NOW - timedelta(days=7)
    before = make_session(world.therapist, world.organization, start=since - timedelta(seconds=1))
    at_since = make_session(world.therapist, world.organization, start=since)
    middle = make_session(world.therapist, world.organization, start=NOW - timedelta(days=4))
    tied_a = make_session(world.therapist, world.organization, start=NOW - timedelta(days=2))
    tied_b = make_session(world.therapist, world.organization, start=NOW - timedelta(days=2))
    theirs = make_session(world.other_therapist, world.organization, start=NOW - timedelta(days=1))
    make_score(before, listening, 10)
    make_score(at_since, listening, 40)
    make_score(middle, listening, 50)
    make_score(tied_a, listening, 70, at=NOW - timedelta(hours=1))  # recorded after tied_b's: the latest
    make_score(tied_b, listening, 60, at=NOW - timedelta(hours=2))
    make_score(theirs, listening, 99)
    make_score(at_since, empathy, 80)
    make_score(middle, empathy, 75)
    make_score(before, old_only, 30)

    in_range = {p.skill_id: p for p in analytics_read(tied_a, since=since, now=NOW).skill_progress}
    all_time = {p.skill_id: p for p in analytics_read(tied_a, since=None, now=NOW).skill_progress}

    assert list(in_range) == ["active-listening", "empathy"]
    listening_now = in_range["active-listening"]
    assert (listening_now.score, listening_now.sessions_practiced, listening_now.trend) == (70, 4, "up")
    assert listening_now.average_improvement == 10  # (70 - 40) / 3
    empathy_now = in_range["empathy"]
    assert (empathy_now.score, empathy_now.sessions_practiced, empathy_now.trend) == (75, 2, "down")
    assert empathy_now.average_improvement == -5
    assert (all_time["active-listening"].sessions_practiced, all_time["active-listening"].average_improvement) == (
        5,
        15,  # (70 - 10) / 4
    )
    assert (all_time["validation"].score, all_time["validation"].trend) == (30, "stable")
    assert all_time["validation"].average_improvement == 0


def test_time_range_boundary_is_inclusive(world):
    since = NOW - timedelta(days=7)
    at_boundary = make_session(world.therapist, world.organization, start=since, progress=40)
    make_session(world.therapist, world.organization, start=since - timedelta(seconds=1), progress=80)
    skill = make_skill(world.organization, "empathy", "Empathy")
    make_score(at_boundary, skill, 70)
    make_snapshots(at_boundary, [5, 15], start=since - timedelta(seconds=1), step=timedelta(seconds=1))

    data = analytics_read(at_boundary, since=since, now=NOW)

    assert [(m.date, m.sessions, m.session_id) for m in data.session_metrics] == [
        (since.date(), 1, at_boundary.public_id)
    ]
    stats = {s.label: s for s in data.summary_stats}
    assert stats["Total Sessions"].value == 1
    assert stats["Average Progress"].value == 40
    # The one-second-earlier session is the previous period's: the trend compares with it.
    assert (stats["Total Sessions"].trend.value, stats["Total Sessions"].trend.direction) == (0, "stable")
    assert (stats["Average Progress"].trend.value, stats["Average Progress"].trend.direction) == (-40, "down")
    assert stats["Average Progress"].trend.period == "previous 7d"
    assert [s.value for s in data.progress_snapshots] == [15]
    assert [p.sessions_practiced for p in data.skill_progress] == [1]


def test_posted_analytics_are_returned_as_posted_and_filtered_by_the_range(world):
    session = make_session(world.therapist, world.organization, start=NOW - timedelta(days=40), analytics_posted_at=NOW)
    skill = make_skill(world.organization, "empathy", "Empathy", category="therapeutic")
    since = NOW - timedelta(days=30)
    for position, day in enumerate([since.date() - timedelta(days=1), since.date(), NOW.date()]):
        AnalyticsSessionMetric.objects.create(
            session=session,
            position=position,
            date=day,
            sessions=position + 1,
            therapist_sessions=1,
            average_session_progress=85,
            milestones_achieved=2,
            average_response_time=2.5,
        )
    AnalyticsSkillProgress.objects.create(
        session=session, position=0, skill=skill, score=85, trend="up", sessions_practiced=5, average_improvement=12
    )
    AnalyticsSummaryStat.objects.create(
        session=session,
        position=0,
        label="Total Sessions",
        value=1,
        trend_value=1,
        trend_direction="up",
        trend_period="recent",
        color="blue",
    )
    AnalyticsSummaryStat.objects.create(session=session, position=1, label="No trend", value=3)
    make_snapshots(session, [25, 30], start=since - timedelta(seconds=1), step=timedelta(seconds=1))

    data = analytics_read(session, since=since, now=NOW)
    everything = analytics_read(session, since=None, now=NOW)

    assert data.source == "posted"
    assert [(m.date, m.sessions) for m in data.session_metrics] == [(since.date(), 2), (NOW.date(), 3)]
    assert {(m.session_id, m.therapist_id) for m in data.session_metrics} == {
        (session.public_id, world.therapist.public_id)
    }
    [progress] = data.skill_progress
    assert (progress.skill, progress.skill_id, progress.score, progress.trend, progress.average_improvement) == (
        "Empathy",
        "empathy",
        85,
        "up",
        12,
    )
    stat, bare = data.summary_stats
    assert (stat.label, stat.value, stat.color, stat.trend.period, stat.trend.direction) == (
        "Total Sessions",
        1,
        "blue",
        "recent",
        "up",
    )
    assert bare.trend is None
    assert [s.value for s in data.progress_snapshots] == [30]
    assert len(everything.session_metrics) == 3
    assert [s.value for s in everything.progress_snapshots] == [25, 30]


# --- comparisons_read ----------------------------------------------------------------------------------------------


def test_comparisons_newest_first_with_start_times_and_trend(world):
    first = make_session(world.therapist, world.organization, start=NOW - timedelta(days=5))
    second = make_session(world.therapist, world.organization, start=NOW - timedelta(days=3))
    third = make_session(world.therapist, world.organization, start=NOW - timedelta(days=1))
    older = comparison(world, second, first, progress=1.5, skill=0.5, analyzed_at=NOW - timedelta(days=2))
    newer = comparison(world, third, second, progress=-1, skill=-0.99, analyzed_at=NOW)
    other_first = make_session(world.other_therapist, world.organization, start=NOW - timedelta(days=4))
    other_second = make_session(world.other_therapist, world.organization, start=NOW - timedelta(days=2))
    theirs = comparison(world, other_second, other_first, progress=-5, analyzed_at=NOW)
    me = access(world, world.therapist)

    rows = comparisons_read(me, therapist=world.therapist)

    assert [r.id for r in rows] == [newer.public_id, older.public_id]
    assert [r.trend for r in rows] == ["stable", "improving"]
    assert (rows[1].current_session_started_at, rows[1].previous_session_started_at) == (
        second.start_time,
        first.start_time,
    )
    assert (rows[1].therapist_id, rows[1].current_session_id, rows[1].previous_session_id) == (
        world.therapist.public_id,
        second.public_id,
        first.public_id,
    )
    assert rows[1].metrics.progress_improvement == 1.5
    assert [r.id for r in comparisons_read(me, session=second)] == [newer.public_id, older.public_id]
    assert [r.id for r in comparisons_read(me, session=third)] == [newer.public_id]
    assert [r.id for r in comparisons_read(me, therapist=world.therapist, since=NOW - timedelta(days=1))] == [
        newer.public_id
    ]
    # A therapist never sees another's comparisons; a reviewer sees them, trend "declining".
    assert comparisons_read(me, therapist=world.other_therapist) == []
    [reviewed] = comparisons_read(access(world, world.supervisor, Role.SUPERVISOR), therapist=world.other_therapist)
    assert (reviewed.id, reviewed.trend) == (theirs.public_id, "declining")
    outsider = Access(organization=world.other_organization, user=world.outsider_supervisor, role=Role.SUPERVISOR)
    assert comparisons_read(outsider, session=second) == []


def test_comparisons_are_capped(world, monkeypatch):
    import sessions_analytics.aggregates as aggregates

    monkeypatch.setattr(aggregates, "COMPARISON_LIST_MAX", 2)
    a = make_session(world.therapist, world.organization, start=NOW - timedelta(days=2))
    b = make_session(world.therapist, world.organization, start=NOW - timedelta(days=1))
    for hours in range(3):
        comparison(world, b, a, analyzed_at=NOW - timedelta(hours=hours))

    assert len(comparisons_read(access(world, world.therapist), therapist=world.therapist)) == 2
    assert COMPARISON_LIST_MAX == 500


# --- query counts ----------------------------------------------------------------------------------------------


def _sessions(world, therapist, n: int) -> list[TrainingSession]:
    """n sessions of the therapist over 20 days, each with metrics, a milestone, three skill scores and a
    snapshot, and a comparison of each with the one before."""
    skills = [make_skill(world.organization, f"skill-{i}", f"Skill {i}") for i in range(3)]
    sessions = []
    for i in range(n):
        session = make_session(therapist, world.organization, start=NOW - timedelta(days=i % 20, hours=i), progress=i)
        metrics(session, 1.0 + i)
        milestone(session, "first")
        for skill in skills:
            make_score(session, skill, (i * 7) % 100)
        make_snapshots(session, [i])
        sessions.append(session)
    for current, previous in zip(sessions, sessions[1:], strict=False):
        comparison(world, previous, current)  # the later-listed session started earlier
    return sessions


@pytest.mark.parametrize("posted", [False, True], ids=["derived", "posted"])
@pytest.mark.parametrize("n", [2, 40])
def test_query_counts_do_not_grow_with_sessions(world, django_assert_num_queries, posted, n):
    sessions = _sessions(world, world.therapist, n)
    TrainingSession.objects.filter(pk=sessions[0].pk).update(analytics_posted_at=NOW if posted else None)
    anchor = TrainingSession.objects.select_related("therapist", "organization").get(pk=sessions[0].pk)
    me = access(world, world.therapist)

    with django_assert_num_queries(1):  # the skills with their per-skill lookups
        assert len(skills_summary(me, therapist=world.therapist)) == 3
    with django_assert_num_queries(1):
        assert len(skills_summary(me, therapist=world.therapist, session=sessions[-1])) == 3
    # Derived: the sessions (metrics and milestone counts joined), the skills with their lookups, snapshots.
    # Posted: the three tables and the snapshots.
    with django_assert_num_queries(4 if posted else 3):
        assert len(analytics_read(anchor, since=None, now=NOW).progress_snapshots) == 1
    with django_assert_num_queries(4 if posted else 3):
        analytics_read(anchor, since=NOW - timedelta(days=7), now=NOW)
    with django_assert_num_queries(1):
        assert len(comparisons_read(me, therapist=world.therapist)) == n - 1
