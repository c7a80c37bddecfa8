"""The therapist dashboard's aggregate reads over HTTP: GET skills (across a therapist's sessions or one
session), GET analytics (posted vs derived, timeRange) and comparisons (POST rules, GET trend and start times),
with their parameter errors and flat query counts (2 vs 30 sessions, the access-log write included)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.serializers import field_by_field_rendering
from core.time import utc_now
from sessions_analytics.models import SessionComparison, Skill
from tests.sessions_analytics.factories import (
    NOW,
    error,
    make_score,
    make_session,
    make_skill,
    make_snapshots,
    make_world,
    ok,
    send,
)

pytestmark = pytest.mark.django_db

SKILLS = "/api/session/skills"
ANALYTICS = "/api/session/analytics"
COMPARISON = "/api/session/comparison"
SKILL_KEYS = {"skillName", "skillCategory", "currentScore", "practiceSessions", "lastPracticed", "createdAt"}
COMPARISON_KEYS = {
    "id",
    "therapistId",
    "currentSessionId",
    "previousSessionId",
    "improvementScore",
    "metrics",
    "analyzedAt",
    "currentSessionStartedAt",
    "previousSessionStartedAt",
    "trend",
}


@pytest.fixture
def world():
    return make_world()


def queries(path: str, user, params: dict) -> int:
    with CaptureQueriesContext(connection) as captured:
        ok(send("get", path, user, params))
    return len(captured)


# --- GET /api/session/skills ------------------------------------------------------------------------------


@pytest.fixture
def scored(world):
    """Therapist A: three sessions; Empathy scored in all (the latest-started session scored earliest),
    Active Listening in one. Therapist B: one session with Empathy."""
    org = world.organization
    empathy, listening = make_skill(org, "empathy", "Empathy"), make_skill(org, "active-listening", "Active Listening")
    first = make_session(world.therapist, org, start=NOW - timedelta(days=10))
    middle = make_session(world.therapist, org, start=NOW - timedelta(days=5))
    latest = make_session(world.therapist, org, start=NOW - timedelta(days=1))
    make_score(first, empathy, 60, at=NOW - timedelta(days=10))
    make_score(middle, empathy, 70, at=NOW)  # scored last, but not in the latest session
    make_score(latest, empathy, 75, at=NOW - timedelta(days=1))
    make_score(middle, listening, 82, at=NOW - timedelta(days=5))
    make_score(make_session(world.other_therapist, org), empathy, 99)
    return {"first": first, "middle": middle, "latest": latest}


def test_skills_of_a_therapist_aggregate_their_sessions(world, scored):
    body = ok(send("get", SKILLS, world.therapist, {"therapistId": world.therapist.public_id}))
    assert (body["sessionId"], body["therapistId"]) == (None, world.therapist.public_id)
    assert [skill["skillName"] for skill in body["skills"]] == ["Active Listening", "Empathy"]
    listening, empathy = body["skills"]
    assert set(empathy) == SKILL_KEYS
    assert empathy == {
        "skillName": "Empathy",
        "skillCategory": "therapeutic",
        "currentScore": 75.0,  # the latest-started session's, not the latest-recorded
        "practiceSessions": 3,
        "lastPracticed": "2026-03-01T09:00:00.000Z",
        "createdAt": "2026-02-20T09:00:00.000Z",
    }
    assert (listening["currentScore"], listening["practiceSessions"]) == (82.0, 1)


def test_skills_of_one_session_and_of_a_supervisee(world, scored):
    one = ok(send("get", SKILLS, world.therapist, {"sessionId": scored["middle"].public_id}))
    assert (one["sessionId"], one["therapistId"]) == (scored["middle"].public_id, world.therapist.public_id)
    assert {s["skillName"]: s["currentScore"] for s in one["skills"]} == {"Active Listening": 82.0, "Empathy": 70.0}
    supervised = ok(send("get", SKILLS, world.supervisor, {"therapistId": world.other_therapist.public_id}))
    assert [(s["skillName"], s["currentScore"]) for s in supervised["skills"]] == [("Empathy", 99.0)]
    both = {"therapistId": world.therapist.public_id, "sessionId": scored["latest"].public_id}
    assert [s["currentScore"] for s in ok(send("get", SKILLS, world.supervisor, both))["skills"]] == [75.0]


def test_skills_parameter_errors(world, scored):
    error(send("get", SKILLS, world.therapist), 400, "MISSING_PARAMETER")
    error(send("get", SKILLS, world.therapist, {"therapistId": world.other_therapist.public_id}), 403, "FORBIDDEN")
    mismatch = {"therapistId": world.other_therapist.public_id, "sessionId": scored["latest"].public_id}
    refused = error(send("get", SKILLS, world.supervisor, mismatch), 400, "VALIDATION_ERROR")
    assert refused["details"] == {"therapistId": "is not this session's therapist"}
    error(
        send("get", SKILLS, world.other_therapist, {"sessionId": scored["latest"].public_id}), 404, "SESSION_NOT_FOUND"
    )
    outsider = {"therapistId": world.outsider_therapist.public_id}
    error(send("get", SKILLS, world.supervisor, outsider), 404, "THERAPIST_NOT_FOUND")


# --- GET /api/session/analytics ---------------------------------------------------------------------------


def _posted_analytics(session, days_ago: list[int]) -> dict:
    today = utc_now().date()
    return {
        "sessionId": session.public_id,
        "analyticsData": {
            "sessionMetrics": [
                {
                    "date": (today - timedelta(days=days)).isoformat(),
                    "sessions": 1,
                    "therapistSessions": 1,
                    "averageSessionProgress": 50,
                    "milestonesAchieved": 0,
                    "averageResponseTime": 1.5,
                }
                for days in days_ago
            ],
            "skillProgress": [],
            "summaryStats": [],
            "progressSnapshots": [
                {"timestamp": (utc_now() - timedelta(days=days)).isoformat(), "value": 10} for days in days_ago
            ],
        },
    }


def test_analytics_posted_are_returned_as_posted_and_filtered_by_time_range(world):
    session = make_session(world.therapist, world.organization, start=utc_now() - timedelta(days=40))
    ok(send("post", ANALYTICS, world.therapist, _posted_analytics(session, [20, 3])))
    everything = ok(send("get", ANALYTICS, world.supervisor, {"sessionId": session.public_id}))
    assert set(everything) == {"sessionId", "analyticsData"}
    data = everything["analyticsData"]
    assert set(data) == {"sessionMetrics", "skillProgress", "summaryStats", "progressSnapshots", "source"}
    assert data["source"] == "posted"
    assert (len(data["sessionMetrics"]), len(data["progressSnapshots"])) == (2, 2)
    week = ok(send("get", ANALYTICS, world.therapist, {"sessionId": session.public_id, "timeRange": "7d"}))
    assert week["analyticsData"]["sessionMetrics"] == [everything["analyticsData"]["sessionMetrics"][1]]
    assert len(week["analyticsData"]["progressSnapshots"]) == 1


def test_analytics_derived_when_never_posted(world):
    now = utc_now()
    org = world.organization
    empathy = make_skill(org, "empathy", "Empathy")
    earlier = make_session(world.therapist, org, start=now - timedelta(days=3), status="completed", progress=60)
    current = make_session(world.therapist, org, start=now - timedelta(days=1), progress=80)
    make_session(world.therapist, org, start=now - timedelta(days=60), progress=10)  # outside 30d
    make_score(earlier, empathy, 70)
    make_score(current, empathy, 75)
    make_snapshots(current, [20, 40])
    body = ok(send("get", ANALYTICS, world.therapist, {"sessionId": current.public_id, "timeRange": "30d"}))
    data = body["analyticsData"]
    assert data["source"] == "derived"
    assert [m["sessions"] for m in data["sessionMetrics"]] == [1, 1]
    assert data["sessionMetrics"][-1]["sessionId"] == current.public_id
    assert data["sessionMetrics"][0]["therapistSessions"] == 1
    [skill] = data["skillProgress"]
    assert (skill["skill"], skill["score"], skill["trend"], skill["sessionsPracticed"]) == ("Empathy", 75.0, "up", 2)
    assert [(s["label"], s["value"], s["color"]) for s in data["summaryStats"]][:2] == [
        ("Total Sessions", 2.0, "blue"),
        ("Completed Sessions", 1.0, "green"),
    ]
    assert data["summaryStats"][0]["trend"]["period"] == "previous 30d"
    assert [s["value"] for s in data["progressSnapshots"]] == [20.0, 40.0]
    all_time = ok(send("get", ANALYTICS, world.therapist, {"sessionId": current.public_id}))["analyticsData"]
    assert all_time["summaryStats"][0]["value"] == 3.0


@pytest.mark.parametrize("time_range", ["2w", "7", "", "1Y", "all"])
def test_analytics_refuses_an_unknown_time_range(world, time_range):
    session = make_session(world.therapist, world.organization)
    params = {"sessionId": session.public_id, "timeRange": time_range}
    refused = error(send("get", ANALYTICS, world.therapist, params), 400, "INVALID_TIME_RANGE")
    assert "timeRange" in refused["details"]


def test_analytics_needs_a_readable_session(world):
    error(send("get", ANALYTICS, world.therapist), 400, "MISSING_PARAMETER")
    theirs = make_session(world.other_therapist, world.organization)
    error(send("get", ANALYTICS, world.therapist, {"sessionId": theirs.public_id}), 404, "SESSION_NOT_FOUND")


# --- POST /api/session/comparison -------------------------------------------------------------------------


def comparison_body(current, previous, **fields) -> dict:
    return {
        "currentSessionId": current.public_id,
        "previousSessionId": previous.public_id,
        "improvementScore": 85,
        "metrics": {"progressImprovement": 10, "skillScoreImprovement": 5, "responseTimeImprovement": 0.5},
        **fields,
    }


@pytest.fixture
def pair(world):
    previous = make_session(world.therapist, world.organization, start=NOW - timedelta(days=7))
    current = make_session(world.therapist, world.organization, start=NOW)
    return current, previous


def test_comparison_post_is_201_with_the_comparison_id(world, pair):
    current, previous = pair
    body = ok(send("post", COMPARISON, world.therapist, comparison_body(current, previous)), 201)
    assert set(body) == {"success", "comparisonId", "therapistId", "currentSessionId"}
    assert body["success"] is True and body["comparisonId"].startswith("cmp_")
    assert (body["therapistId"], body["currentSessionId"]) == (world.therapist.public_id, current.public_id)
    stored = SessionComparison.objects.get(public_id=body["comparisonId"])
    assert (stored.previous_session, stored.improvement_score, stored.response_time_improvement) == (previous, 85, 0.5)
    by_reviewer = comparison_body(current, previous, therapistId=world.therapist.public_id)
    assert ok(send("post", COMPARISON, world.supervisor, by_reviewer), 201)["therapistId"] == world.therapist.public_id


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"improvementScore": 101}, ("improvementScore",)),
        ({"improvementScore": "85"}, ("improvementScore",)),
        (
            {"metrics": {"progressImprovement": 101, "skillScoreImprovement": 0, "responseTimeImprovement": 0}},
            ("metrics", "progressImprovement"),
        ),
        (
            {"metrics": {"progressImprovement": 0, "skillScoreImprovement": -100.5, "responseTimeImprovement": 0}},
            ("metrics", "skillScoreImprovement"),
        ),
        (
            {"metrics": {"progressImprovement": 0, "skillScoreImprovement": 0, "responseTimeImprovement": 86_401}},
            ("metrics", "responseTimeImprovement"),
        ),
        ({"metrics": {"progressImprovement": 0, "skillScoreImprovement": 0}}, ("metrics", "responseTimeImprovement")),
        ({"metrics": None}, ("metrics",)),
    ],
)
def test_comparison_post_refuses_bad_numbers(world, pair, fields, path):
    refused = error(
        send("post", COMPARISON, world.therapist, comparison_body(*pair, **fields)), 400, "VALIDATION_ERROR"
    )
    assert refused["details"][".".join(path)]
    assert not SessionComparison.objects.exists()


def test_comparison_post_session_rules(world, pair):
    current, previous = pair
    same = error(send("post", COMPARISON, world.therapist, comparison_body(current, current)), 400, "VALIDATION_ERROR")
    assert "previousSessionId" in same["details"]
    later = error(
        send("post", COMPARISON, world.therapist, comparison_body(previous, current)), 400, "VALIDATION_ERROR"
    )
    assert "previousSessionId" in later["details"]
    theirs = make_session(world.other_therapist, world.organization, start=NOW - timedelta(days=3))
    mixed = error(send("post", COMPARISON, world.supervisor, comparison_body(current, theirs)), 400, "VALIDATION_ERROR")
    assert "previousSessionId" in mixed["details"]
    wrong = comparison_body(current, previous, therapistId=world.other_therapist.public_id)
    assert "therapistId" in error(send("post", COMPARISON, world.supervisor, wrong), 400, "VALIDATION_ERROR")["details"]
    error(send("post", COMPARISON, world.therapist, wrong), 403, "FORBIDDEN")
    error(send("post", COMPARISON, world.therapist, comparison_body(current, theirs)), 404, "SESSION_NOT_FOUND")
    foreign = make_session(world.outsider_therapist, world.other_organization, start=NOW - timedelta(days=2))
    error(send("post", COMPARISON, world.supervisor, comparison_body(current, foreign)), 404, "SESSION_NOT_FOUND")
    assert not SessionComparison.objects.exists()


# --- GET /api/session/comparison --------------------------------------------------------------------------


def _compare(user, current, previous, progress: float, skill: float) -> str:
    metrics = {"progressImprovement": progress, "skillScoreImprovement": skill, "responseTimeImprovement": 0}
    return ok(send("post", COMPARISON, user, comparison_body(current, previous, metrics=metrics)), 201)["comparisonId"]


def test_comparison_get_lists_newest_first_with_trend_and_start_times(world):
    org = world.organization
    sessions = [make_session(world.therapist, org, start=NOW - timedelta(days=30 - 7 * i)) for i in range(4)]
    improving = _compare(world.therapist, sessions[1], sessions[0], 1.5, 0.5)  # net +2.0
    stable = _compare(world.therapist, sessions[2], sessions[1], 1.0, 0.99)  # net +1.99
    declining = _compare(world.therapist, sessions[3], sessions[2], -1.0, -1.0)  # net -2.0
    body = ok(send("get", COMPARISON, world.therapist, {"therapistId": world.therapist.public_id}))
    assert (body["therapistId"], body["sessionId"]) == (world.therapist.public_id, None)
    assert [(c["id"], c["trend"]) for c in body["comparisons"]] == [
        (declining, "declining"),
        (stable, "stable"),
        (improving, "improving"),
    ]
    newest = body["comparisons"][0]
    assert set(newest) == COMPARISON_KEYS
    assert newest["currentSessionStartedAt"] == "2026-02-21T09:00:00.000Z"
    assert newest["previousSessionStartedAt"] == "2026-02-14T09:00:00.000Z"
    assert newest["metrics"] == {
        "progressImprovement": -1.0,
        "skillScoreImprovement": -1.0,
        "responseTimeImprovement": 0.0,
    }
    assert (newest["currentSessionId"], newest["previousSessionId"]) == (sessions[3].public_id, sessions[2].public_id)
    # sessionId: comparisons where the session is the current or the previous one.
    by_session = ok(send("get", COMPARISON, world.supervisor, {"sessionId": sessions[2].public_id}))
    assert (by_session["therapistId"], by_session["sessionId"]) == (world.therapist.public_id, sessions[2].public_id)
    assert [c["id"] for c in by_session["comparisons"]] == [declining, stable]


def test_comparison_get_time_range_and_parameter_errors(world, pair):
    _compare(world.therapist, *pair, 5, 5)
    SessionComparison.objects.update(analyzed_at=utc_now() - timedelta(days=8))
    params = {"therapistId": world.therapist.public_id}
    assert len(ok(send("get", COMPARISON, world.therapist, {**params, "timeRange": "7d"}))["comparisons"]) == 0
    assert len(ok(send("get", COMPARISON, world.therapist, {**params, "timeRange": "30d"}))["comparisons"]) == 1
    error(send("get", COMPARISON, world.therapist, {**params, "timeRange": "week"}), 400, "INVALID_TIME_RANGE")
    error(send("get", COMPARISON, world.therapist), 400, "MISSING_PARAMETER")
    error(send("get", COMPARISON, world.therapist, {"therapistId": world.other_therapist.public_id}), 403, "FORBIDDEN")
    theirs = make_session(world.other_therapist, world.organization)
    error(send("get", COMPARISON, world.therapist, {"sessionId": theirs.public_id}), 404, "SESSION_NOT_FOUND")
    theirs_listed = ok(send("get", COMPARISON, world.other_therapist, {"therapistId": world.other_therapist.public_id}))
    assert theirs_listed["comparisons"] == []  # the other therapist has none of their own


# --- Query counts -----------------------------------------------------------------------------------------


def test_analytics_bodies_equal_the_declared_fields_rendering(world):
    # SessionMetricOutput renders its rows by hand (speed): derived and posted bodies must be exactly what
    # DRF's field-by-field rendering of the declared fields gives.
    sessions = _grow(world, 6)
    ok(send("post", ANALYTICS, world.therapist, _posted_analytics(sessions[-1], [5, 4])))
    paths = [
        {"sessionId": sessions[0].public_id},
        {"sessionId": sessions[0].public_id, "timeRange": "7d"},
        {"sessionId": sessions[-1].public_id},
    ]
    compiled = [send("get", ANALYTICS, world.therapist, params) for params in paths]
    assert [len(ok(r)["analyticsData"]["sessionMetrics"]) for r in compiled] == [6, 6, 2]
    with field_by_field_rendering():
        assert [send("get", ANALYTICS, world.therapist, params).content for params in paths] == [
            response.content for response in compiled
        ]


def _grow(world, count: int, start_day: int = 0):
    org = world.organization
    skills = [make_skill(org, slug, slug.title()) for slug in ("empathy", "reflection", "questioning")]
    sessions = []
    for day in range(start_day, start_day + count):
        session = make_session(world.therapist, org, start=utc_now() - timedelta(days=day, hours=1), progress=day % 100)
        for skill in skills:
            make_score(session, skill, (day * 7) % 100)
        make_snapshots(session, [10, 20])
        sessions.append(session)
    for current, previous in zip(sessions, sessions[1:], strict=False):
        SessionComparison.objects.create(
            organization=org,
            therapist=world.therapist,
            current_session=current,
            previous_session=previous,
            improvement_score=50,
            progress_improvement=1,
            skill_score_improvement=1,
            response_time_improvement=0,
            analyzed_at=utc_now(),
            created_by=world.therapist,
        )
    return sessions


def test_aggregate_reads_keep_their_query_count_as_sessions_grow(world):
    anchor = _grow(world, 2)[0]
    reads = [
        (SKILLS, {"therapistId": world.therapist.public_id}),
        (ANALYTICS, {"sessionId": anchor.public_id, "timeRange": "90d"}),
        (ANALYTICS, {"sessionId": anchor.public_id}),
        (COMPARISON, {"therapistId": world.therapist.public_id}),
    ]
    small = [queries(path, world.supervisor, params) for path, params in reads]
    _grow(world, 28, start_day=2)
    assert len(ok(send("get", COMPARISON, world.supervisor, reads[3][1]))["comparisons"]) == 28
    assert ok(send("get", SKILLS, world.supervisor, reads[0][1]))["skills"][0]["practiceSessions"] == 30
    assert [queries(path, world.supervisor, params) for path, params in reads] == small


def test_posted_skill_progress_keeps_its_posted_category_and_the_skill_keeps_its_own(world):
    session = make_session(world.therapist, world.organization, start=utc_now() - timedelta(days=2))
    make_skill(world.organization, "empathy", "Empathy", "therapeutic")
    body = _posted_analytics(session, [1])
    entry = {"skill": "Empathy", "score": 80, "trend": "up", "sessionsPracticed": 3, "averageImprovement": 4}
    body["analyticsData"]["skillProgress"] = [{**entry, "category": "relational"}, {**entry, "skill": "Pacing"}]
    ok(send("post", ANALYTICS, world.therapist, body))
    progress = ok(send("get", ANALYTICS, world.therapist, {"sessionId": session.public_id}))["analyticsData"]
    assert [(p["skillId"], p["category"]) for p in progress["skillProgress"]] == [
        ("empathy", "relational"),
        ("pacing", "general"),
    ]
    assert Skill.objects.get(organization=world.organization, skill_id="empathy").category == "therapeutic"
