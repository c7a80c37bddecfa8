"""Therapist dashboard services: session creation and status transitions (409s included), progress posts
(metrics replaced, skill scores upserted, milestones at their first post with the latest snapshot value,
feedback appended and encrypted), idempotent and capped snapshots, posted analytics replaced, comparison
and evaluation rules. Every write has its audit event, whose metadata holds ids and counts, never free text."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from core.actors import Actor
from core.domain import Conflict, Invalid, PermissionDenied
from core.scoping import OrganizationScope, Role
from sessions_analytics import selectors, services
from sessions_analytics.models import (
    AnalyticsSessionMetric,
    AnalyticsSkillProgress,
    AnalyticsSummaryStat,
    Evaluation,
    Milestone,
    ProgressFeedback,
    ProgressMetrics,
    ProgressSnapshot,
    SessionSkillScore,
    Skill,
)
from tests.sessions_analytics.factories import NOW, make_session, make_skill, make_snapshots, make_world

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
LATER = NOW + HOUR
SECRET_TEXT = "Client disclosed a panic attack; therapist reflected well"


@pytest.fixture
def world():
    return make_world()


def access(world, user, role: str) -> selectors.Access:
    scope = OrganizationScope(organization=world.organization, public_id=world.organization.public_id, role=role)
    return selectors.access_for(scope, user)


def actor(user) -> Actor:
    return Actor.user(user)


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def raw_column(table: str, column: str, pk: int):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608 (names are constants)
        return cursor.fetchone()[0]


def metrics(**overrides) -> dict:
    return {
        "total_messages": 20,
        "therapist_messages": 10,
        "client_messages": 9,
        "session_duration": 900,
        "active_time": 800,
        "response_time": 3.5,
        "conversation_flow": 75.0,
        **overrides,
    }


@pytest.fixture
def session(world):
    return make_session(world.therapist, world.organization, start=NOW)


def record_progress(session, author, now=NOW, feedback=None, **overrides):
    services.progress_record(
        session=session, author=author, metrics=metrics(**overrides), feedback=feedback, actor=actor(author), now=now
    )


# --- Sessions ----------------------------------------------------------------------------------------------


def test_a_session_is_the_callers_and_starts_now_by_default(world):
    created = services.session_create(
        access=access(world, world.supervisor, Role.SUPERVISOR),
        client_label="sim-7",
        actor=actor(world.supervisor),
        now=NOW,
    )
    assert (created.therapist, created.organization, created.start_time, created.status, created.end_time) == (
        world.supervisor,
        world.organization,
        NOW,
        "active",
        None,
    )
    given = services.session_create(
        access=access(world, world.therapist, Role.THERAPIST),
        client_label="sim-8",
        start_time=NOW - HOUR,
        actor=actor(world.therapist),
        now=NOW,
    )
    assert given.start_time == NOW - HOUR
    (event, _) = events("training_session.created")
    assert (event.subject_type, event.subject_id, event.organization_id) == (
        "training_session",
        created.public_id,
        world.organization.public_id,
    )
    assert event.metadata == {"therapistId": world.supervisor.public_id}
    assert "sim-7" not in json.dumps(event.metadata)


def test_roles_outside_the_dashboard_create_no_session(world):
    with pytest.raises(PermissionDenied):
        services.session_create(
            access=access(world, world.staff, Role.STAFF), client_label="x", actor=actor(world.staff), now=NOW
        )


ALLOWED = {
    ("active", "paused"),
    ("paused", "active"),
    ("active", "completed"),
    ("active", "cancelled"),
    ("paused", "completed"),
    ("paused", "cancelled"),
}
STATUSES = ("active", "paused", "completed", "cancelled")


@pytest.mark.parametrize("source", STATUSES)
@pytest.mark.parametrize("target", STATUSES)
def test_the_transition_table(world, source, target):
    session = make_session(world.therapist, world.organization, start=NOW, status=source)
    if source == target or (source, target) in ALLOWED:
        updated = services.session_update(session=session, status=target, actor=actor(world.therapist), now=LATER)
        assert updated.status == target
        session.refresh_from_db()
        assert session.status == target
        assert len(events("training_session.updated")) == (0 if source == target else 1)
    else:
        with pytest.raises(Conflict) as caught:
            services.session_update(session=session, status=target, actor=actor(world.therapist), now=LATER)
        assert caught.value.code == "INVALID_TRANSITION"
        assert caught.value.details == {"from": source, "to": target}
        session.refresh_from_db()
        assert session.status == source
        assert events("training_session.updated") == []


@pytest.mark.parametrize("target", ["completed", "cancelled"])
def test_ending_a_session_without_an_end_time_ends_it_now(session, world, target):
    updated = services.session_update(session=session, status=target, actor=actor(world.therapist), now=LATER)
    assert updated.end_time == LATER
    (event,) = events("training_session.updated")
    assert event.metadata == {"fields": ["status", "endTime"], "from": "active", "to": target}


def test_ending_a_session_keeps_a_given_or_stored_end_time(world):
    given = make_session(world.therapist, world.organization, start=NOW)
    ended = services.session_update(
        session=given,
        status="completed",
        end_time=NOW + 30 * timedelta(minutes=1),
        actor=actor(world.therapist),
        now=LATER,
    )
    assert ended.end_time == NOW + timedelta(minutes=30)
    stored = make_session(world.therapist, world.organization, start=NOW, end_time=NOW + timedelta(minutes=10))
    ended = services.session_update(session=stored, status="cancelled", actor=actor(world.therapist), now=LATER)
    assert ended.end_time == NOW + timedelta(minutes=10)


def test_a_session_starting_later_than_now_ends_at_its_start(world):
    future = make_session(world.therapist, world.organization, start=LATER)
    assert (
        services.session_update(session=future, status="completed", actor=actor(world.therapist), now=NOW).end_time
        == LATER
    )


def test_an_end_time_before_the_start_is_invalid(session, world):
    with pytest.raises(Invalid) as caught:
        services.session_update(session=session, end_time=NOW - HOUR, actor=actor(world.therapist), now=LATER)
    assert set(caught.value.details) == {"endTime"}
    session.refresh_from_db()
    assert session.end_time is None


def test_progress_and_end_time_change_on_their_own(world):
    ended = make_session(world.therapist, world.organization, start=NOW, status="completed", end_time=LATER)
    updated = services.session_update(
        session=ended, progress=64.5, end_time=LATER + HOUR, actor=actor(world.supervisor), now=LATER
    )
    assert (updated.status, updated.progress, updated.end_time) == ("completed", 64.5, LATER + HOUR)
    (event,) = events("training_session.updated")
    assert event.metadata == {"fields": ["endTime", "progress"]}
    assert event.actor_id == str(world.supervisor.pk)


def test_nothing_changed_writes_nothing(session, world):
    services.session_update(session=session, status="active", progress=0, actor=actor(world.therapist), now=LATER)
    assert events("training_session.updated") == []


def test_the_update_locks_the_session_row(session, world, require_postgres):
    with CaptureQueriesContext(connection) as queries:
        services.session_update(session=session, status="paused", actor=actor(world.therapist), now=LATER)
    locking = [q["sql"] for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]
    assert len(locking) == 1 and '"sessions_analytics_trainingsession"' in locking[0]


# --- Progress ------------------------------------------------------------------------------------------------


def test_a_progress_post_stores_metrics_scores_milestones_and_feedback(session, world):
    make_snapshots(session, [40, 55])
    record_progress(
        session,
        world.therapist,
        skill_scores={"Active Listening": 80, "Empathy": 70},
        milestones_reached=["first-reflection", "rapport"],
        last_milestone_time=NOW - timedelta(minutes=5),
        feedback=SECRET_TEXT,
    )
    stored = ProgressMetrics.objects.get(session=session)
    assert (stored.total_messages, stored.conversation_flow, stored.last_milestone_time, stored.updated_at) == (
        20,
        75.0,
        NOW - timedelta(minutes=5),
        NOW,
    )
    scores = {s.skill.skill_id: (s.score, s.skill.name, s.skill.category) for s in session.skill_scores.all()}
    assert scores == {
        "active-listening": (80.0, "Active Listening", "therapeutic"),
        "empathy": (70.0, "Empathy", "therapeutic"),
    }
    milestones = [(m.name, m.value, m.achieved_at, m.metadata) for m in Milestone.objects.filter(session=session)]
    assert milestones == [
        ("first-reflection", 55.0, NOW, {"totalMessages": 20, "sessionDuration": 900}),
        ("rapport", 55.0, NOW, {"totalMessages": 20, "sessionDuration": 900}),
    ]
    (feedback,) = ProgressFeedback.objects.filter(session=session)
    assert (feedback.author, feedback.feedback, feedback.created_at) == (world.therapist, SECRET_TEXT, NOW)


def test_a_second_post_replaces_metrics_upserts_scores_and_appends_feedback(session, world):
    skill = make_skill(world.organization, "empathy", "Empathy")
    record_progress(session, world.therapist, skill_scores={"Empathy": 60, "Validation": 50}, feedback="first")
    record_progress(
        session,
        world.supervisor,
        now=LATER,
        total_messages=30,
        conversation_flow=90.0,
        skill_scores={"empathy": 72},
        feedback="second",
    )
    assert ProgressMetrics.objects.filter(session=session).count() == 1
    stored = ProgressMetrics.objects.get(session=session)
    assert (stored.total_messages, stored.conversation_flow, stored.updated_at) == (30, 90.0, LATER)
    empathy = SessionSkillScore.objects.get(session=session, skill=skill)
    assert (empathy.score, empathy.created_at, empathy.recorded_at) == (72.0, NOW, LATER)
    assert SessionSkillScore.objects.get(session=session, skill__skill_id="validation").recorded_at == NOW
    assert [(f.feedback, f.author) for f in ProgressFeedback.objects.filter(session=session)] == [
        ("first", world.therapist),
        ("second", world.supervisor),
    ]


def test_a_milestone_is_achieved_at_the_first_post_that_names_it(session, world):
    record_progress(session, world.therapist, milestones_reached=["opening"])
    make_snapshots(session, [35])
    record_progress(session, world.therapist, now=LATER, milestones_reached=["opening", "closing"], total_messages=40)
    rows = {m.name: (m.value, m.achieved_at, m.metadata["totalMessages"]) for m in Milestone.objects.all()}
    assert rows == {"opening": (None, NOW, 20), "closing": (35.0, LATER, 40)}


def test_the_milestone_value_is_the_latest_snapshot_by_timestamp(session, world):
    make_snapshots(session, [90], start=NOW + 2 * HOUR)  # inserted first, but the latest in time
    make_snapshots(session, [10, 20], start=NOW)
    record_progress(session, world.therapist, milestones_reached=["m"])
    assert Milestone.objects.get(session=session).value == 90.0


def test_blank_feedback_is_not_stored(session, world):
    record_progress(session, world.therapist, feedback="   ")
    record_progress(session, world.therapist, feedback=None)
    record_progress(session, world.therapist, feedback="")
    assert ProgressFeedback.objects.count() == 0


def test_progress_feedback_is_encrypted_at_rest_and_absent_from_the_audit(session, world):
    record_progress(
        session, world.therapist, skill_scores={"Empathy": 80}, milestones_reached=["a"], feedback=SECRET_TEXT
    )
    feedback = ProgressFeedback.objects.get()
    raw = raw_column("sessions_analytics_progressfeedback", "feedback", feedback.pk)
    assert raw and SECRET_TEXT not in raw and "panic" not in raw
    (event,) = events("training_session.progress_recorded")
    assert event.metadata == {"skills": 1, "milestonesPosted": 1, "milestonesAdded": 1, "feedbackAdded": True}
    assert "panic" not in json.dumps(event.metadata)
    assert (event.subject_id, event.organization_id) == (session.public_id, world.organization.public_id)


def test_a_skill_name_without_letters_or_digits_is_invalid(session, world):
    with pytest.raises(Invalid) as caught:
        record_progress(session, world.therapist, skill_scores={"!!!": 50})
    assert caught.value.details == {"progressMetrics.skillScores": "must contain a letter or a digit"}
    with pytest.raises(Invalid) as caught:
        services.skill_scores_record(session=session, scores={"  ": 50}, actor=actor(world.therapist), now=NOW)
    assert set(caught.value.details) == {"skillScores"}
    assert SessionSkillScore.objects.count() == 0


def _progress_queries(world, skills: int) -> int:
    session = make_session(world.therapist, world.organization)
    make_snapshots(session, [50])
    names = {f"Skill number {index}": 50 + index for index in range(skills)}
    milestones = [f"milestone-{index}" for index in range(skills)]
    record_progress(session, world.therapist, skill_scores=names, milestones_reached=milestones)
    with CaptureQueriesContext(connection) as second:  # scores now exist: the update path
        record_progress(session, world.therapist, skill_scores=names, milestones_reached=milestones, feedback="x")
    return len(second.captured_queries)


def test_a_progress_post_costs_the_same_queries_for_one_skill_or_many(world):
    assert _progress_queries(world, 1) == _progress_queries(world, 15)


def test_a_first_progress_post_costs_the_same_queries_for_one_skill_or_many(world):
    counts = []
    for skills in (1, 15):
        session = make_session(world.therapist, world.organization)
        names = {f"New skill {skills}-{index}": 50 for index in range(skills)}
        with CaptureQueriesContext(connection) as queries:
            record_progress(session, world.therapist, skill_scores=names, milestones_reached=list(names))
        counts.append(len(queries.captured_queries))
    assert counts[0] == counts[1]


# --- Skills ---------------------------------------------------------------------------------------------------


def test_skill_for_normalises_names_per_organization(world):
    skill = services.skill_for(world.organization, "Active Listening")
    assert (skill.skill_id, skill.name, skill.category) == ("active-listening", "Active Listening", "therapeutic")
    assert services.skill_for(world.organization, "  active   LISTENING!") == skill
    other = services.skill_for(world.other_organization, "Active Listening")
    assert other != skill
    custom = services.skill_for(world.organization, "Motivational Interviewing", "advanced")
    assert (custom.skill_id, custom.category) == ("motivational-interviewing", "advanced")
    assert services.skill_for(world.organization, "Empatía").skill_id == "empatia"
    with pytest.raises(Invalid) as caught:
        services.skill_for(world.organization, "¿?")
    assert caught.value.details == {"skill": "must contain a letter or a digit"}


def test_skill_scores_record_upserts_and_audits(session, world):
    services.skill_scores_record(session=session, scores={"Empathy": 60}, actor=actor(world.therapist), now=NOW)
    services.skill_scores_record(
        session=session, scores={"EMPATHY": 65, "Safety Planning": 40}, actor=actor(world.supervisor), now=LATER
    )
    rows = {
        s.skill.skill_id: (s.score, s.created_at, s.recorded_at, s.skill.category) for s in session.skill_scores.all()
    }
    assert rows == {
        "empathy": (65.0, NOW, LATER, "therapeutic"),
        "safety-planning": (40.0, LATER, LATER, "assessment"),
    }
    assert [e.metadata for e in events("training_session.skills_recorded")] == [{"skills": 1}, {"skills": 2}]


def test_every_score_written_carries_its_sessions_therapist_and_start(world):
    """The copies the skill reads index on (SessionSkillScore.therapist, .session_start) always equal the
    session's, whichever service writes the score and whoever posts it (a supervisor here)."""
    mine = make_session(world.therapist, world.organization, start=NOW - timedelta(days=3))
    theirs = make_session(world.other_therapist, world.organization, start=NOW - timedelta(days=1))
    services.skill_scores_record(session=mine, scores={"Empathy": 60}, actor=actor(world.supervisor), now=NOW)
    services.progress_record(
        session=theirs,
        author=world.supervisor,
        metrics=metrics(skill_scores={"Empathy": 70, "Validation": 50}),
        feedback=None,
        actor=actor(world.supervisor),
        now=NOW,
    )
    services.skill_scores_record(  # an update and an insert in one post
        session=mine, scores={"empathy": 65, "Reflection": 55}, actor=actor(world.therapist), now=LATER
    )

    rows = SessionSkillScore.objects.select_related("session").order_by("pk")
    assert [(r.session_id, r.skill.skill_id) for r in rows] == [
        (mine.pk, "empathy"),
        (theirs.pk, "empathy"),
        (theirs.pk, "validation"),
        (mine.pk, "reflection"),
    ]
    assert [(r.therapist_id, r.session_start) for r in rows] == [
        (r.session.therapist_id, r.session.start_time) for r in rows
    ]
    assert {r.therapist_id for r in rows} == {world.therapist.pk, world.other_therapist.pk}


# --- Snapshots --------------------------------------------------------------------------------------------------


def _snapshots(values, start=NOW):
    return [(start + index * timedelta(minutes=1), value) for index, value in enumerate(values)]


def test_posting_the_same_snapshots_twice_stores_them_once(session, world):
    posted = _snapshots([10, 20, 30])
    assert services.snapshots_record(session=session, snapshots=posted, actor=actor(world.therapist)) == 3
    assert services.snapshots_record(session=session, snapshots=posted, actor=actor(world.therapist)) == 0
    assert ProgressSnapshot.objects.filter(session=session).count() == 3
    assert [e.metadata for e in events("training_session.snapshots_recorded")] == [
        {"posted": 3, "stored": 3},
        {"posted": 3, "stored": 0},
    ]


def test_the_first_write_of_a_timestamp_wins(session, world):
    services.snapshots_record(session=session, snapshots=_snapshots([10, 20]), actor=actor(world.therapist))
    overlap = [(NOW + timedelta(minutes=1), 99), (NOW + timedelta(minutes=2), 30)]
    assert services.snapshots_record(session=session, snapshots=overlap, actor=actor(world.therapist)) == 1
    assert list(ProgressSnapshot.objects.filter(session=session).values_list("value", flat=True)) == [10, 20, 30]


def test_a_timestamp_repeated_in_one_call_or_in_another_offset_does_not_fail(session, world):
    same_instant = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    in_paris = same_instant.astimezone(timezone(timedelta(hours=1)))
    posted = [(same_instant, 10), (same_instant, 50), (in_paris, 70)]
    assert services.snapshots_record(session=session, snapshots=posted, actor=actor(world.therapist)) == 1
    assert list(ProgressSnapshot.objects.values_list("value", flat=True)) == [10.0]


def test_the_per_session_cap(session, world, monkeypatch):
    monkeypatch.setattr(services, "MAX_SNAPSHOTS_PER_SESSION", 3)
    services.snapshots_record(session=session, snapshots=_snapshots([1, 2]), actor=actor(world.therapist))
    with pytest.raises(Invalid) as caught:
        services.snapshots_record(
            session=session, snapshots=_snapshots([3, 4], start=NOW + HOUR), actor=actor(world.therapist)
        )
    assert caught.value.code == "SNAPSHOT_LIMIT"
    assert set(caught.value.details) == {"snapshots"}
    assert ProgressSnapshot.objects.filter(session=session).count() == 2
    # Up to the cap is fine, and re-posting what is stored adds nothing, so it passes at the cap too.
    assert (
        services.snapshots_record(session=session, snapshots=_snapshots([1, 2, 3]), actor=actor(world.therapist)) == 1
    )
    assert (
        services.snapshots_record(session=session, snapshots=_snapshots([1, 2, 3]), actor=actor(world.therapist)) == 0
    )


# --- Posted analytics ----------------------------------------------------------------------------------------


def analytics(skill="Active Listening", category=None, sessions=3):
    return {
        "session_metrics": [
            {
                "date": date(2026, 3, 1),
                "sessions": sessions,
                "therapist_sessions": 2,
                "average_session_progress": 55.5,
                "milestones_achieved": 4,
                "average_response_time": 2.5,
            },
            {
                "date": date(2026, 3, 2),
                "sessions": 1,
                "therapist_sessions": 1,
                "average_session_progress": 70,
                "milestones_achieved": 0,
                "average_response_time": 1.0,
            },
        ],
        "skill_progress": [
            {
                "skill": skill,
                "category": category,
                "score": 82,
                "trend": "up",
                "sessions_practiced": 5,
                "average_improvement": 3.2,
            }
        ],
        "summary_stats": [
            {
                "label": "Total Sessions",
                "value": 12,
                "color": "blue",
                "trend": {"value": 2, "direction": "up", "period": "previous 7d"},
            },
            {"label": "Focus", "value": 3, "trend": None},
        ],
        "progress_snapshots": [{"timestamp": NOW, "value": 40}, (NOW + HOUR, 60)],
    }


def test_posted_analytics_are_stored_in_order(session, world):
    services.analytics_record(session=session, data=analytics(category="core"), actor=actor(world.therapist), now=LATER)
    session.refresh_from_db()
    assert session.analytics_posted_at == LATER
    assert list(AnalyticsSessionMetric.objects.filter(session=session).values_list("position", "date", "sessions")) == [
        (0, date(2026, 3, 1), 3),
        (1, date(2026, 3, 2), 1),
    ]
    (progress,) = AnalyticsSkillProgress.objects.filter(session=session).select_related("skill")
    assert (progress.skill.skill_id, progress.skill.category, progress.score, progress.trend) == (
        "active-listening",
        "core",  # a skill created by the post takes the posted category
        82.0,
        "up",
    )
    stats = list(
        AnalyticsSummaryStat.objects.filter(session=session).values_list(
            "label", "value", "trend_value", "trend_direction", "trend_period", "color"
        )
    )
    assert stats == [("Total Sessions", 12.0, 2.0, "up", "previous 7d", "blue"), ("Focus", 3.0, None, "", "", "")]
    assert list(ProgressSnapshot.objects.filter(session=session).values_list("value", flat=True)) == [40, 60]
    (event,) = events("training_session.analytics_recorded")
    assert event.metadata == {
        "sessionMetrics": 2,
        "skillProgress": 1,
        "summaryStats": 2,
        "snapshotsPosted": 2,
        "snapshotsStored": 2,
    }


def test_a_second_analytics_post_replaces_the_first(session, world):
    existing = make_skill(world.organization, "empathy", "Empathy", category="therapeutic")
    services.analytics_record(session=session, data=analytics(), actor=actor(world.therapist), now=NOW)
    second = analytics(skill="EMPATHY", category="other", sessions=9)
    second["session_metrics"] = second["session_metrics"][:1]
    services.analytics_record(session=session, data=second, actor=actor(world.therapist), now=LATER)
    assert list(AnalyticsSessionMetric.objects.filter(session=session).values_list("sessions", flat=True)) == [9]
    assert [p.skill for p in AnalyticsSkillProgress.objects.filter(session=session)] == [existing]
    existing.refresh_from_db()
    assert existing.category == "therapeutic"  # an existing skill keeps its category
    assert AnalyticsSummaryStat.objects.filter(session=session).count() == 2
    assert ProgressSnapshot.objects.filter(session=session).count() == 2  # same snapshots: stored once
    session.refresh_from_db()
    assert session.analytics_posted_at == LATER


def test_analytics_without_entries_clear_the_posted_ones(session, world):
    services.analytics_record(session=session, data=analytics(), actor=actor(world.therapist), now=NOW)
    services.analytics_record(
        session=session,
        data={"session_metrics": [], "skill_progress": [], "summary_stats": []},
        actor=actor(world.therapist),
        now=LATER,
    )
    assert AnalyticsSessionMetric.objects.count() == AnalyticsSkillProgress.objects.count() == 0
    assert AnalyticsSummaryStat.objects.count() == 0


# --- Comparisons -----------------------------------------------------------------------------------------------


@pytest.fixture
def pair(world):
    previous = make_session(world.therapist, world.organization, start=NOW - 24 * HOUR)
    current = make_session(world.therapist, world.organization, start=NOW)
    return previous, current


COMPARISON_METRICS = {"progress_improvement": 5.0, "skill_score_improvement": -1.5, "response_time_improvement": 12.0}


def compare(world, current, previous, therapist=None, caller=None, role=Role.THERAPIST):
    caller = caller or world.therapist
    return services.comparison_create(
        access=access(world, caller, role),
        therapist=therapist,
        current=current,
        previous=previous,
        improvement_score=66.0,
        metrics=COMPARISON_METRICS,
        actor=actor(caller),
        now=LATER,
    )


def test_a_comparison_stores_its_metrics(world, pair):
    previous, current = pair
    comparison = compare(world, current, previous, therapist=world.therapist)
    comparison.refresh_from_db()
    assert comparison.public_id.startswith("cmp_")
    assert (
        comparison.organization,
        comparison.therapist,
        comparison.current_session,
        comparison.previous_session,
        comparison.improvement_score,
        comparison.progress_improvement,
        comparison.skill_score_improvement,
        comparison.response_time_improvement,
        comparison.analyzed_at,
        comparison.created_by,
    ) == (world.organization, world.therapist, current, previous, 66.0, 5.0, -1.5, 12.0, LATER, world.therapist)
    (event,) = events("session_comparison.created")
    assert (event.subject_id, event.metadata) == (
        current.public_id,
        {"comparisonId": comparison.public_id, "previousSessionId": previous.public_id},
    )


def test_a_reviewer_compares_a_supervisees_sessions_without_naming_them(world, pair):
    previous, current = pair
    comparison = compare(world, current, previous, caller=world.supervisor, role=Role.SUPERVISOR)
    assert (comparison.therapist, comparison.created_by) == (world.therapist, world.supervisor)


def test_comparison_rules(world, pair):
    previous, current = pair
    with pytest.raises(Invalid) as caught:
        compare(world, current, previous, therapist=world.other_therapist, caller=world.supervisor, role="supervisor")
    assert set(caught.value.details) == {"therapistId"}
    theirs = make_session(world.other_therapist, world.organization, start=NOW - 48 * HOUR)
    later = make_session(world.therapist, world.organization, start=NOW + HOUR)
    same_start = make_session(world.therapist, world.organization, start=NOW)
    for earlier in (theirs, current, later, same_start):
        with pytest.raises(Invalid) as caught:
            compare(world, current, earlier, caller=world.supervisor, role=Role.SUPERVISOR)
        assert set(caught.value.details) == {"previousSessionId"}
    assert events("session_comparison.created") == []


# --- Evaluations -------------------------------------------------------------------------------------------------


def evaluate(world, session, evaluator, role=None, **fields):
    fields.setdefault("rating", 4)
    fields.setdefault("feedback", SECRET_TEXT)
    fields.setdefault("comments", "Keep the pace slower")
    return services.evaluation_create(
        session=session,
        evaluator=evaluator,
        actor=actor(evaluator),
        access=access(world, evaluator, role) if role else None,
        now=LATER,
        **fields,
    )


def test_a_reviewer_evaluates_and_the_text_is_encrypted_at_rest(world, session):
    evaluation = evaluate(world, session, world.supervisor, Role.SUPERVISOR)
    evaluation.refresh_from_db()
    assert (evaluation.public_id[:4], evaluation.rating, evaluation.feedback, evaluation.comments) == (
        "evl_",
        4,
        SECRET_TEXT,
        "Keep the pace slower",
    )
    assert (evaluation.evaluator, evaluation.created_at) == (world.supervisor, LATER)
    for column, plain in (("feedback", "panic"), ("comments", "pace")):
        raw = raw_column("sessions_analytics_evaluation", column, evaluation.pk)
        assert raw and plain not in raw
    (event,) = events("evaluation.created")
    assert event.metadata == {"evaluationId": evaluation.public_id, "rating": 4}
    assert (event.subject_type, event.subject_id) == ("training_session", session.public_id)


def test_owners_and_admins_evaluate_too_and_comments_are_optional(world, session):
    for user, role in ((world.owner, Role.OWNER), (world.admin, Role.ADMIN)):
        assert evaluate(world, session, user, role, comments=None).comments == ""
    assert Evaluation.objects.filter(session=session).count() == 2


def test_only_a_reviewer_evaluates(world, session):
    for user, role in ((world.therapist, Role.THERAPIST), (world.other_therapist, None), (world.staff, Role.STAFF)):
        with pytest.raises(PermissionDenied) as caught:
            evaluate(world, session, user, role)
        assert (caught.value.message, caught.value.code) == ("Only a supervisor may evaluate a session", "FORBIDDEN")
    assert Evaluation.objects.count() == 0
    assert events("evaluation.created") == []


def test_the_requests_role_counts_over_the_stored_membership(world, session):
    # The supervisor's token says therapist (e.g. a Clerk role change): refused although the membership says supervisor.
    with pytest.raises(PermissionDenied):
        evaluate(world, session, world.supervisor, Role.THERAPIST)
    # Without the request's access, the membership decides.
    assert evaluate(world, session, world.supervisor).evaluator == world.supervisor


def test_nobody_evaluates_their_own_session(world):
    own = make_session(world.supervisor, world.organization)
    with pytest.raises(PermissionDenied) as caught:
        evaluate(world, own, world.supervisor, Role.SUPERVISOR)
    assert caught.value.message == "You may not evaluate your own session"
    assert Evaluation.objects.count() == 0


def test_no_write_puts_free_text_in_audit_metadata(world, session):
    record_progress(session, world.therapist, skill_scores={"Empathy": 70}, feedback=SECRET_TEXT)
    evaluate(world, session, world.supervisor, Role.SUPERVISOR)
    services.analytics_record(session=session, data=analytics(), actor=actor(world.therapist), now=LATER)
    ours = AuditEvent.objects.filter(subject_type="training_session")
    dumped = json.dumps([e.metadata for e in ours])
    assert sorted(ours.values_list("action", flat=True)) == [
        "evaluation.created",
        "training_session.analytics_recorded",
        "training_session.progress_recorded",
    ]
    for text in ("panic", "pace", "Total Sessions", "Active Listening", "Empathy"):
        assert text not in dumped
    assert Skill.objects.filter(organization=world.organization).count() == 2
