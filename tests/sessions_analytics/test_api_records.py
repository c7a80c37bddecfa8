"""The therapist dashboard's record endpoints over HTTP: progress (POST/GET), snapshots (POST/GET), skills
(POST), analytics (POST) and evaluations (POST/GET). Success bodies (exact keys, 200 vs 201), idempotent
snapshot posts, progress replace + feedback append, and every validation rule naming its field by JSON path."""

from __future__ import annotations

import copy
import json
import re
from datetime import timedelta

import pytest
from django.test import Client

from sessions_analytics import services
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
from tests.sessions_analytics.factories import NOW, bearer, error, make_session, make_world, ok, send

pytestmark = pytest.mark.django_db

PROGRESS = "/api/session/progress"
SNAPSHOTS = "/api/session/snapshots"
SKILLS = "/api/session/skills"
ANALYTICS = "/api/session/analytics"
EVALUATION = "/api/evaluation"
METRICS = {
    "totalMessages": 42,
    "therapistMessages": 21,
    "clientMessages": 21,
    "sessionDuration": 3600,
    "activeTime": 3000,
    "skillScores": {"Active Listening": 85, "Empathy": 78},
    "responseTime": 2.5,
    "conversationFlow": 88,
    "milestonesReached": ["introduction", "exploration"],
}


@pytest.fixture
def world():
    return make_world()


@pytest.fixture
def session(world):
    return make_session(world.therapist, world.organization, start=NOW)


def path_of(details, path: str) -> str:
    """The message `details` gives for the field at a dotted JSON path ("snapshots.0.value" is the key
    "snapshots[0].value": details are flat, one string per field, core.apis.field_messages)."""
    key = re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", path)
    assert isinstance(details, dict) and key in details, (key, details)
    assert isinstance(details[key], str), details
    return details[key]


def progress_body(session, **metrics) -> dict:
    merged = {**METRICS, **metrics}
    return {"sessionId": session.public_id, "progressMetrics": {k: v for k, v in merged.items() if v is not ...}}


# --- Progress ---------------------------------------------------------------------------------------------


def test_progress_post_answers_200_and_get_returns_the_metrics(world, session):
    body = progress_body(session, lastMilestoneTime="2026-03-02T09:30:00+00:00")
    assert ok(send("post", PROGRESS, world.therapist, body)) == {"success": True, "sessionId": session.public_id}
    read = ok(send("get", PROGRESS, world.therapist, {"sessionId": session.public_id}))
    assert set(read) == {"sessionId", "progressMetrics"}  # no feedback key unless asked for
    assert read["progressMetrics"] == {
        **METRICS,
        "responseTime": 2.5,
        "conversationFlow": 88.0,
        "skillScores": {"Active Listening": 85.0, "Empathy": 78.0},
        "lastMilestoneTime": "2026-03-02T09:30:00.000Z",
    }


def test_progress_get_before_any_post_is_null(world, session):
    assert ok(send("get", PROGRESS, world.therapist, {"sessionId": session.public_id})) == {
        "sessionId": session.public_id,
        "progressMetrics": None,
    }


def test_progress_posted_twice_replaces_metrics_and_appends_feedback(world, session):
    first = {**progress_body(session), "evaluationFeedback": "Good rapport early on"}
    ok(send("post", PROGRESS, world.therapist, first))
    second = progress_body(session, totalMessages=50, skillScores={"Empathy": 90}, milestonesReached=["introduction"])
    ok(send("post", PROGRESS, world.supervisor, {**second, "evaluationFeedback": "Keep exploring feelings"}))
    ok(send("post", PROGRESS, world.therapist, {**second, "evaluationFeedback": ""}))  # empty: nothing appended
    assert ProgressMetrics.objects.filter(session=session).count() == 1
    read = ok(send("get", PROGRESS, world.therapist, {"sessionId": session.public_id, "includeFeedback": "true"}))
    assert read["progressMetrics"]["totalMessages"] == 50
    assert read["progressMetrics"]["skillScores"] == {"Active Listening": 85.0, "Empathy": 90.0}
    assert read["progressMetrics"]["milestonesReached"] == ["introduction", "exploration"]  # first reached kept
    assert Milestone.objects.filter(session=session).count() == 2
    assert [(f["therapistId"], f["feedback"]) for f in read["feedback"]] == [
        (world.therapist.public_id, "Good rapport early on"),
        (world.supervisor.public_id, "Keep exploring feelings"),
    ]
    assert set(read["feedback"][0]) == {"therapistId", "feedback", "createdAt"}
    without = ok(send("get", PROGRESS, world.therapist, {"sessionId": session.public_id, "includeFeedback": "false"}))
    assert "feedback" not in without


def test_progress_get_parameters(world, session):
    error(send("get", PROGRESS, world.therapist), 400, "MISSING_PARAMETER")
    refused = error(
        send("get", PROGRESS, world.therapist, {"sessionId": session.public_id, "includeFeedback": "yes"}),
        400,
        "VALIDATION_ERROR",
    )
    assert "includeFeedback" in refused["details"]
    error(send("get", PROGRESS, world.therapist, {"sessionId": "ses_nope"}), 404, "SESSION_NOT_FOUND")


INVALID_METRICS = [
    ({"totalMessages": "42"}, "progressMetrics.totalMessages"),
    ({"therapistMessages": True}, "progressMetrics.therapistMessages"),
    ({"clientMessages": -1}, "progressMetrics.clientMessages"),
    ({"sessionDuration": 4.5}, "progressMetrics.sessionDuration"),
    ({"sessionDuration": 2_147_483_648, "activeTime": 1}, "progressMetrics.sessionDuration"),
    ({"activeTime": 3601}, "progressMetrics.activeTime"),
    ({"therapistMessages": 30}, "progressMetrics.totalMessages"),
    ({"responseTime": -0.1}, "progressMetrics.responseTime"),
    ({"responseTime": "2.5"}, "progressMetrics.responseTime"),
    ({"conversationFlow": 100.5}, "progressMetrics.conversationFlow"),
    ({"conversationFlow": False}, "progressMetrics.conversationFlow"),
    ({"skillScores": {"Empathy": 101}}, "progressMetrics.skillScores.Empathy"),
    ({"skillScores": {"Empathy": "80"}}, "progressMetrics.skillScores.Empathy"),
    ({"skillScores": {"!!!": 80}}, "progressMetrics.skillScores.!!!"),
    ({"skillScores": {"x" * 101: 80}}, "progressMetrics.skillScores." + "x" * 101),
    ({"skillScores": {f"skill {i}": 50 for i in range(51)}}, "progressMetrics.skillScores"),
    ({"skillScores": ["Empathy"]}, "progressMetrics.skillScores"),
    ({"milestonesReached": [f"m{i}" for i in range(51)]}, "progressMetrics.milestonesReached"),
    ({"milestonesReached": ["x" * 101]}, "progressMetrics.milestonesReached.0"),
    ({"milestonesReached": [""]}, "progressMetrics.milestonesReached.0"),
    ({"milestonesReached": "introduction"}, "progressMetrics.milestonesReached"),
    ({"lastMilestoneTime": "2026-03-02T09:30:00"}, "progressMetrics.lastMilestoneTime"),
    ({"totalMessages": ...}, "progressMetrics.totalMessages"),
    ({"conversationFlow": ...}, "progressMetrics.conversationFlow"),
]


@pytest.mark.parametrize(("change", "path"), INVALID_METRICS)
def test_progress_post_refuses_each_bad_metric_naming_it(world, session, change, path):
    refused = error(send("post", PROGRESS, world.therapist, progress_body(session, **change)), 400, "VALIDATION_ERROR")
    assert path_of(refused["details"], path)
    assert not ProgressMetrics.objects.exists()


def test_progress_post_refuses_non_finite_numbers(world, session):
    body = json.dumps(progress_body(session, responseTime="INFINITE"))
    raw = body.replace('"INFINITE"', "1e400")  # JSON without NaN/Infinity literals; 1e400 parses as inf
    response = Client().post(PROGRESS, raw, content_type="application/json", **bearer(world.therapist))
    assert path_of(error(response, 400, "VALIDATION_ERROR")["details"], "progressMetrics.responseTime")


def test_progress_post_refuses_long_feedback_and_a_missing_session(world, session):
    long = {**progress_body(session), "evaluationFeedback": "x" * 10_001}
    assert (
        "evaluationFeedback" in error(send("post", PROGRESS, world.therapist, long), 400, "VALIDATION_ERROR")["details"]
    )
    missing = {"progressMetrics": METRICS}
    assert "sessionId" in error(send("post", PROGRESS, world.therapist, missing), 400, "VALIDATION_ERROR")["details"]
    assert not ProgressFeedback.objects.exists()


@pytest.mark.parametrize("session_id", ["ses_unknown", 12, None, "pat_abc", ["ses_x"], ""])
def test_progress_post_for_no_readable_session_is_404(world, session_id):
    body = {"sessionId": session_id, "progressMetrics": METRICS}
    error(send("post", PROGRESS, world.therapist, body), 404, "SESSION_NOT_FOUND")


def test_progress_post_therapist_id_rules(world, session):
    theirs = make_session(world.other_therapist, world.organization)
    error(send("post", PROGRESS, world.therapist, progress_body(theirs)), 404, "SESSION_NOT_FOUND")
    other_id = {**progress_body(session), "therapistId": world.other_therapist.public_id}
    error(send("post", PROGRESS, world.therapist, other_id), 403, "FORBIDDEN")
    mismatch = error(send("post", PROGRESS, world.supervisor, other_id), 400, "VALIDATION_ERROR")
    assert mismatch["details"] == {"therapistId": "is not this session's therapist"}
    outsider = {**progress_body(session), "therapistId": world.outsider_therapist.public_id}
    error(send("post", PROGRESS, world.supervisor, outsider), 404, "THERAPIST_NOT_FOUND")
    assert not ProgressMetrics.objects.exists()
    own = {**progress_body(session), "therapistId": world.therapist.public_id}
    ok(send("post", PROGRESS, world.supervisor, own))


# --- Snapshots --------------------------------------------------------------------------------------------


def snapshots_body(session, values, start="2026-03-02T09:0{}:00Z") -> dict:
    return {
        "sessionId": session.public_id,
        "snapshots": [{"timestamp": start.format(i), "value": v} for i, v in enumerate(values)],
    }


def test_snapshots_posted_twice_are_stored_once_and_read_back_in_order(world, session):
    body = snapshots_body(session, [10, 25, 40])
    assert ok(send("post", SNAPSHOTS, world.therapist, body)) == {"success": True, "sessionId": session.public_id}
    retry = copy.deepcopy(body)
    retry["snapshots"][0]["value"] = 99  # a retry with another value: the first write wins
    retry["snapshots"].insert(0, {"timestamp": "2026-03-02T08:59:00+00:00", "value": 5})
    ok(send("post", SNAPSHOTS, world.therapist, retry))
    assert ProgressSnapshot.objects.filter(session=session).count() == 4
    read = ok(send("get", SNAPSHOTS, world.therapist, {"sessionId": session.public_id}))
    assert set(read) == {"sessionId", "snapshots", "milestones"}
    assert [(s["timestamp"], s["value"]) for s in read["snapshots"]] == [
        ("2026-03-02T08:59:00.000Z", 5.0),
        ("2026-03-02T09:00:00.000Z", 10.0),
        ("2026-03-02T09:01:00.000Z", 25.0),
        ("2026-03-02T09:02:00.000Z", 40.0),
    ]


def test_snapshots_get_lists_milestones_with_their_value(world, session):
    ok(send("post", SNAPSHOTS, world.therapist, snapshots_body(session, [10, 30])))
    ok(send("post", PROGRESS, world.therapist, progress_body(session, milestonesReached=["introduction"])))
    read = ok(send("get", SNAPSHOTS, world.supervisor, {"sessionId": session.public_id}))
    [milestone] = read["milestones"]
    assert set(milestone) == {"milestoneName", "milestoneValue", "achievedAt", "metadata"}
    assert (milestone["milestoneName"], milestone["milestoneValue"]) == ("introduction", 30.0)
    assert milestone["metadata"] == {"totalMessages": 42, "sessionDuration": 3600}
    error(send("get", SNAPSHOTS, world.therapist), 400, "MISSING_PARAMETER")


@pytest.mark.parametrize(
    ("snapshots", "path"),
    [
        ([], "snapshots"),
        ("not a list", "snapshots"),
        ([{"timestamp": "2026-03-02T09:00:00Z", "value": 101}], "snapshots.0.value"),
        ([{"timestamp": "2026-03-02T09:00:00Z", "value": "10"}], "snapshots.0.value"),
        ([{"timestamp": "2026-03-02T09:00:00", "value": 10}], "snapshots.0.timestamp"),
        ([{"value": 10}], "snapshots.0.timestamp"),
        (
            [{"timestamp": "2026-03-02T09:00:00Z", "value": 1}, {"timestamp": "2026-03-02T10:00:00+01:00", "value": 2}],
            "snapshots.1.timestamp",
        ),
    ],
)
def test_snapshots_post_refuses_bad_snapshots(world, session, snapshots, path):
    body = {"sessionId": session.public_id, "snapshots": snapshots}
    assert path_of(error(send("post", SNAPSHOTS, world.therapist, body), 400, "VALIDATION_ERROR")["details"], path)
    assert not ProgressSnapshot.objects.exists()


def test_snapshots_post_caps_the_request_and_the_session(world, session, monkeypatch):
    start = NOW
    too_many = [{"timestamp": (start + timedelta(seconds=i)).isoformat(), "value": 1} for i in range(501)]
    body = {"sessionId": session.public_id, "snapshots": too_many}
    assert "snapshots" in error(send("post", SNAPSHOTS, world.therapist, body), 400, "VALIDATION_ERROR")["details"]
    ok(send("post", SNAPSHOTS, world.therapist, {**body, "snapshots": too_many[:500]}))
    monkeypatch.setattr(services, "MAX_SNAPSHOTS_PER_SESSION", 501)
    over = {
        **body,
        "snapshots": [
            {"timestamp": "2027-01-01T00:00:00Z", "value": 1},
            {"timestamp": "2027-01-02T00:00:00Z", "value": 1},
        ],
    }
    error(send("post", SNAPSHOTS, world.therapist, over), 400, "SNAPSHOT_LIMIT")
    assert ProgressSnapshot.objects.filter(session=session).count() == 500


# --- Skills (POST) ----------------------------------------------------------------------------------------


def test_skills_post_answers_with_the_sessions_therapist_and_normalises_names(world, session):
    body = {"sessionId": session.public_id, "skillScores": {"Active Listening": 85, "Empathy": 78}}
    assert ok(send("post", SKILLS, world.supervisor, body)) == {
        "success": True,
        "sessionId": session.public_id,
        "therapistId": world.therapist.public_id,
    }
    ok(
        send(
            "post", SKILLS, world.therapist, {"sessionId": session.public_id, "skillScores": {"active  listening": 90}}
        )
    )
    assert list(
        Skill.objects.filter(organization=world.organization).values_list("skill_id", flat=True).order_by("skill_id")
    ) == [
        "active-listening",
        "empathy",
    ]
    scores = dict(SessionSkillScore.objects.filter(session=session).values_list("skill__skill_id", "score"))
    assert scores == {"active-listening": 90.0, "empathy": 78.0}


@pytest.mark.parametrize(
    ("scores", "path"),
    [
        ({}, "skillScores"),
        ({f"skill {i}": 50 for i in range(51)}, "skillScores"),
        ({"Empathy": -1}, "skillScores.Empathy"),
        ({"Empathy": None}, "skillScores.Empathy"),
        ({"-- --": 50}, "skillScores.-- --"),
    ],
)
def test_skills_post_refuses_bad_scores(world, session, scores, path):
    body = {"sessionId": session.public_id, "skillScores": scores}
    assert path_of(error(send("post", SKILLS, world.therapist, body), 400, "VALIDATION_ERROR")["details"], path)
    assert not SessionSkillScore.objects.exists()


def test_skills_post_therapist_id_must_be_the_sessions(world, session):
    body = {
        "sessionId": session.public_id,
        "skillScores": {"Empathy": 50},
        "therapistId": world.other_therapist.public_id,
    }
    error(send("post", SKILLS, world.therapist, body), 403, "FORBIDDEN")
    error(send("post", SKILLS, world.supervisor, body), 400, "VALIDATION_ERROR")
    assert not SessionSkillScore.objects.exists()


# --- Analytics (POST) -------------------------------------------------------------------------------------


def analytics_body(session, therapist, **changes) -> dict:
    data = {
        "sessionMetrics": [
            {
                "date": "2026-03-01",
                "sessions": 1,
                "therapistSessions": 1,
                "averageSessionProgress": 85,
                "sessionId": session.public_id,
                "therapistId": therapist.public_id,
                "milestonesAchieved": 2,
                "averageResponseTime": 2.5,
            }
        ],
        "skillProgress": [
            {
                "skill": "Active Listening",
                "skillId": "active-listening",
                "score": 85,
                "trend": "up",
                "category": "therapeutic",
                "sessionsPracticed": 5,
                "averageImprovement": 12,
            }
        ],
        "summaryStats": [
            {
                "value": 1,
                "label": "Total Sessions",
                "therapistId": therapist.public_id,
                "trend": {"value": 1, "direction": "up", "period": "recent"},
                "color": "blue",
            }
        ],
        "progressSnapshots": [{"timestamp": "2026-03-02T09:00:00Z", "value": 25}],
    }
    data.update(changes)
    return {"sessionId": session.public_id, "analyticsData": data}


def test_analytics_post_stores_as_posted_and_a_second_post_replaces(world, session):
    body = analytics_body(session, world.therapist)
    assert ok(send("post", ANALYTICS, world.therapist, body)) == {"success": True, "sessionId": session.public_id}
    read = ok(send("get", ANALYTICS, world.therapist, {"sessionId": session.public_id}))["analyticsData"]
    assert read["source"] == "posted"
    assert read["sessionMetrics"] == [
        {**body["analyticsData"]["sessionMetrics"][0], "averageSessionProgress": 85.0, "averageResponseTime": 2.5}
    ]
    assert read["skillProgress"][0]["skillId"] == "active-listening"
    assert read["summaryStats"][0]["trend"] == {"value": 1.0, "direction": "up", "period": "recent"}
    assert read["progressSnapshots"] == [{"timestamp": "2026-03-02T09:00:00.000Z", "value": 25.0}]
    replacement = analytics_body(session, world.therapist, sessionMetrics=[], summaryStats=[], progressSnapshots=[])
    ok(send("post", ANALYTICS, world.supervisor, replacement))
    assert not AnalyticsSessionMetric.objects.filter(session=session).exists()
    assert not AnalyticsSummaryStat.objects.filter(session=session).exists()
    assert AnalyticsSkillProgress.objects.filter(session=session).count() == 1
    assert ProgressSnapshot.objects.filter(session=session).count() == 1  # snapshots are kept, not replaced


def test_analytics_post_entry_ids_must_be_this_sessions(world, session):
    other = make_session(world.therapist, world.organization)
    body = analytics_body(session, world.therapist)
    body["analyticsData"]["sessionMetrics"][0]["sessionId"] = other.public_id
    body["analyticsData"]["summaryStats"][0]["therapistId"] = world.other_therapist.public_id
    refused = error(send("post", ANALYTICS, world.therapist, body), 400, "VALIDATION_ERROR")
    assert path_of(refused["details"], "analyticsData.sessionMetrics.0.sessionId")
    assert path_of(refused["details"], "analyticsData.summaryStats.0.therapistId")
    assert not AnalyticsSessionMetric.objects.exists()


def _entry(key: str, **fields) -> dict:
    return {key: [{**analytics_body_template()[key][0], **fields}]}


def analytics_body_template() -> dict:
    class _Stub:
        public_id = "ses_x"

    return analytics_body(_Stub, _Stub)["analyticsData"]


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        (_entry("sessionMetrics", date="2026/03/01"), "analyticsData.sessionMetrics.0.date"),
        (_entry("sessionMetrics", date="2026-03-01T00:00:00Z"), "analyticsData.sessionMetrics.0.date"),
        (_entry("sessionMetrics", sessions=-1), "analyticsData.sessionMetrics.0.sessions"),
        (_entry("sessionMetrics", averageSessionProgress=120), "analyticsData.sessionMetrics.0.averageSessionProgress"),
        (_entry("sessionMetrics", averageResponseTime=-2), "analyticsData.sessionMetrics.0.averageResponseTime"),
        (_entry("skillProgress", skillId="listening"), "analyticsData.skillProgress.0.skillId"),
        (_entry("skillProgress", skill="???"), "analyticsData.skillProgress.0.skill"),
        (_entry("skillProgress", trend="sideways"), "analyticsData.skillProgress.0.trend"),
        (_entry("skillProgress", score="85"), "analyticsData.skillProgress.0.score"),
        (_entry("summaryStats", label="x" * 101), "analyticsData.summaryStats.0.label"),
        (_entry("summaryStats", color="x" * 31), "analyticsData.summaryStats.0.color"),
        (
            _entry("summaryStats", trend={"value": 1, "direction": "up", "period": "x" * 51}),
            "analyticsData.summaryStats.0.trend.period",
        ),
        ({"sessionMetrics": [analytics_body_template()["sessionMetrics"][0]] * 367}, "analyticsData.sessionMetrics"),
        ({"skillProgress": [analytics_body_template()["skillProgress"][0]] * 51}, "analyticsData.skillProgress"),
        ({"summaryStats": [analytics_body_template()["summaryStats"][0]] * 21}, "analyticsData.summaryStats"),
        (
            {
                "progressSnapshots": [
                    {"timestamp": f"2026-03-02T09:00:{i % 60:02d}.{i:03d}Z", "value": 1} for i in range(501)
                ]
            },
            "analyticsData.progressSnapshots",
        ),
        ({"skillProgress": ...}, "analyticsData.skillProgress"),
    ],
)
def test_analytics_post_refuses_bad_entries(world, session, changes, path):
    body = analytics_body(session, world.therapist)
    body["analyticsData"].update(changes)
    body["analyticsData"] = {k: v for k, v in body["analyticsData"].items() if v is not ...}
    for entry in body["analyticsData"].get("sessionMetrics", []):
        entry["sessionId"], entry["therapistId"] = session.public_id, world.therapist.public_id
    for entry in body["analyticsData"].get("summaryStats", []):
        entry["therapistId"] = world.therapist.public_id
    refused = error(send("post", ANALYTICS, world.therapist, body), 400, "VALIDATION_ERROR")
    assert path_of(refused["details"], path)
    assert not AnalyticsSessionMetric.objects.exists()
    session.refresh_from_db()
    assert session.analytics_posted_at is None


# --- Evaluations ------------------------------------------------------------------------------------------


def evaluation_body(session, **fields) -> dict:
    return {
        "sessionId": session.public_id,
        "feedback": "Clear structure",
        "rating": 4,
        "comments": "More silence",
        **fields,
    }


def test_evaluation_post_by_a_supervisor_is_201_and_listed_oldest_first(world, session):
    created = ok(send("post", EVALUATION, world.supervisor, evaluation_body(session)), 201)
    assert set(created) == {"success", "evaluationId"} and created["success"] is True
    assert created["evaluationId"].startswith("evl_")
    body = evaluation_body(session, evaluatorId=world.owner.public_id, rating=5, comments=None)
    second = ok(send("post", EVALUATION, world.owner, body), 201)
    listed = ok(send("get", EVALUATION, world.therapist, {"sessionId": session.public_id}))
    assert listed["sessionId"] == session.public_id
    assert [e["id"] for e in listed["evaluations"]] == [created["evaluationId"], second["evaluationId"]]
    first = listed["evaluations"][0]
    assert set(first) == {"id", "feedback", "evaluatorId", "rating", "comments", "createdAt"}
    assert (first["feedback"], first["evaluatorId"], first["rating"], first["comments"]) == (
        "Clear structure",
        world.supervisor.public_id,
        4,
        "More silence",
    )
    assert listed["evaluations"][1]["comments"] == ""


def test_evaluation_refusals(world, session):
    forbidden = error(send("post", EVALUATION, world.therapist, evaluation_body(session)), 403, "FORBIDDEN")
    assert forbidden["error"] == "Only a supervisor may evaluate a session"
    as_other = evaluation_body(session, evaluatorId=world.owner.public_id)
    error(send("post", EVALUATION, world.supervisor, as_other), 403, "FORBIDDEN")
    own = make_session(world.supervisor, world.organization)
    error(send("post", EVALUATION, world.supervisor, evaluation_body(own)), 403, "FORBIDDEN")
    foreign = make_session(world.outsider_therapist, world.other_organization)
    error(send("post", EVALUATION, world.supervisor, evaluation_body(foreign)), 404, "SESSION_NOT_FOUND")
    assert not Evaluation.objects.exists()
    error(send("get", EVALUATION, world.supervisor), 400, "MISSING_PARAMETER")
    error(send("get", EVALUATION, world.other_therapist, {"sessionId": session.public_id}), 404, "SESSION_NOT_FOUND")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": "5"}, "rating"),
        ({"rating": 4.5}, "rating"),
        ({"rating": True}, "rating"),
        ({"feedback": ""}, "feedback"),
        ({"feedback": "   "}, "feedback"),
        ({"feedback": "x" * 10_001}, "feedback"),
        ({"comments": "x" * 10_001}, "comments"),
        ({"evaluatorId": 5}, "evaluatorId"),
    ],
)
def test_evaluation_post_refuses_bad_fields(world, session, fields, field):
    refused = error(
        send("post", EVALUATION, world.supervisor, evaluation_body(session, **fields)), 400, "VALIDATION_ERROR"
    )
    assert list(refused["details"]) == [field]
    assert not Evaluation.objects.exists()


def test_evaluation_post_needs_feedback_and_rating(world, session):
    refused = error(
        send("post", EVALUATION, world.supervisor, {"sessionId": session.public_id}), 400, "VALIDATION_ERROR"
    )
    assert set(refused["details"]) == {"feedback", "rating"}
