"""Training sessions through the HTTP API: POST/GET /api/session and GET/PATCH /api/session/{id} (issue 13's
additions to the therapist dashboard spec): bodies (exact camelCase keys, 201 vs 200), validation naming each
field, transitions (409), who sees which session (404 alike), pagination and flat query counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from core.time import utc_now
from sessions_analytics.models import TrainingSession
from tests.sessions_analytics.factories import NOW, bearer, error, make_session, make_snapshots, make_world, ok, send

pytestmark = pytest.mark.django_db

SESSIONS = "/api/session"
BRIEF_KEYS = {"id", "clientId", "therapistId", "startTime", "endTime", "status", "progress"}
DETAIL_KEYS = BRIEF_KEYS | {"progressSnapshots", "progressMetrics"}


@pytest.fixture
def world():
    return make_world()


def detail_path(session) -> str:
    return f"{SESSIONS}/{session.public_id}"


# --- POST /api/session ------------------------------------------------------------------------------------


def test_create_answers_201_with_the_session_whose_therapist_is_the_caller(world):
    body = ok(send("post", SESSIONS, world.therapist, {"clientId": "sim-client-7"}), 201)
    assert set(body) == DETAIL_KEYS
    assert body["id"].startswith("ses_")
    assert body["clientId"] == "sim-client-7"
    assert body["therapistId"] == world.therapist.public_id
    assert (body["status"], body["progress"], body["endTime"]) == ("active", 0.0, None)
    assert body["progressSnapshots"] == [] and body["progressMetrics"] is None
    session = TrainingSession.objects.get(public_id=body["id"])
    assert session.organization == world.organization and session.therapist == world.therapist
    assert abs((session.start_time - utc_now()).total_seconds()) < 60  # default: now
    assert AuditEvent.objects.filter(action="training_session.created", subject_id=body["id"]).count() == 1


def test_create_takes_a_start_time_with_an_offset_and_ignores_unknown_fields(world):
    body = {"clientId": "c", "startTime": "2026-03-02T10:00:00+01:00", "status": "completed", "therapistId": "x"}
    created = ok(send("post", SESSIONS, world.supervisor, body), 201)
    assert created["startTime"] == "2026-03-02T09:00:00.000Z"
    assert created["status"] == "active"  # unknown (not writable here) fields are ignored
    assert created["therapistId"] == world.supervisor.public_id  # whoever creates is the therapist


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "clientId"),
        ({"clientId": ""}, "clientId"),
        ({"clientId": 7}, "clientId"),
        ({"clientId": "x" * 201}, "clientId"),
        ({"clientId": "c", "startTime": "2026-03-02T10:00:00"}, "startTime"),
        ({"clientId": "c", "startTime": "yesterday"}, "startTime"),
        ({"clientId": "c", "startTime": 1767225600}, "startTime"),
    ],
)
def test_create_refuses_bad_fields_naming_them(world, body, field):
    refused = error(send("post", SESSIONS, world.therapist, body), 400, "VALIDATION_ERROR")
    assert list(refused["details"]) == [field]
    assert not TrainingSession.objects.exists()


@pytest.mark.parametrize("raw", ["[]", '"session"', "7", "null"])
def test_a_body_that_is_not_a_json_object_is_400(world, raw):
    response = Client().post(SESSIONS, raw, content_type="application/json", **bearer(world.therapist))
    error(response, 400, "VALIDATION_ERROR")
    assert not TrainingSession.objects.exists()


def test_anonymous_is_401_and_staff_403(world):
    error(send("post", SESSIONS, None, {"clientId": "c"}), 401, "AUTHENTICATION_FAILED")
    error(send("get", SESSIONS), 401, "AUTHENTICATION_FAILED")
    error(send("post", SESSIONS, world.staff, {"clientId": "c"}), 403, "PERMISSION_DENIED")
    error(send("get", SESSIONS, world.staff), 403, "PERMISSION_DENIED")
    assert not TrainingSession.objects.exists()


# --- GET /api/session -------------------------------------------------------------------------------------


def test_list_a_therapist_sees_their_own_sessions_newest_first(world):
    older = make_session(world.therapist, world.organization, start=NOW - timedelta(days=2))
    newer = make_session(world.therapist, world.organization, start=NOW)
    make_session(world.other_therapist, world.organization)
    make_session(world.outsider_therapist, world.other_organization)
    body = ok(send("get", SESSIONS, world.therapist))
    assert (body["total"], body["page"], body["limit"]) == (2, 1, 20)
    assert [item["id"] for item in body["data"]] == [newer.public_id, older.public_id]
    assert set(body["data"][0]) == BRIEF_KEYS
    assert body["data"][0]["therapistId"] == world.therapist.public_id
    assert body["data"][0]["startTime"] == "2026-03-02T09:00:00.000Z"


def test_list_a_reviewer_sees_the_organization_and_filters_by_therapist(world):
    mine = make_session(world.therapist, world.organization)
    theirs = make_session(world.other_therapist, world.organization)
    make_session(world.outsider_therapist, world.other_organization)
    everything = ok(send("get", SESSIONS, world.supervisor))
    assert {item["id"] for item in everything["data"]} == {mine.public_id, theirs.public_id}
    one = ok(send("get", SESSIONS, world.owner, {"therapistId": world.other_therapist.public_id}))
    assert [item["id"] for item in one["data"]] == [theirs.public_id]


def test_list_therapist_id_rules(world):
    error(send("get", SESSIONS, world.therapist, {"therapistId": world.other_therapist.public_id}), 403, "FORBIDDEN")
    own = ok(send("get", SESSIONS, world.therapist, {"therapistId": world.therapist.public_id}))
    assert own["total"] == 0
    outsider = {"therapistId": world.outsider_therapist.public_id}
    error(send("get", SESSIONS, world.supervisor, outsider), 404, "THERAPIST_NOT_FOUND")


def test_list_filters_status_and_time_range(world):
    now = utc_now()
    recent = make_session(world.therapist, world.organization, start=now - timedelta(days=6, hours=23))
    old = make_session(world.therapist, world.organization, start=now - timedelta(days=8), status="completed")
    by_status = ok(send("get", SESSIONS, world.therapist, {"status": "completed"}))
    assert [item["id"] for item in by_status["data"]] == [old.public_id]
    by_range = ok(send("get", SESSIONS, world.therapist, {"timeRange": "7d"}))
    assert [item["id"] for item in by_range["data"]] == [recent.public_id]
    assert ok(send("get", SESSIONS, world.therapist, {"timeRange": "30d"}))["total"] == 2


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"status": "done"}, "VALIDATION_ERROR"),
        ({"timeRange": "2w"}, "INVALID_TIME_RANGE"),
        ({"limit": "0"}, "VALIDATION_ERROR"),
        ({"limit": "101"}, "VALIDATION_ERROR"),
        ({"page": "0"}, "VALIDATION_ERROR"),
        ({"page": "x"}, "VALIDATION_ERROR"),
    ],
)
def test_list_refuses_bad_parameters(world, params, code):
    error(send("get", SESSIONS, world.therapist, params), 400, code)


def test_list_paginates(world):
    for day in range(5):
        make_session(world.therapist, world.organization, start=NOW - timedelta(days=day))
    page = ok(send("get", SESSIONS, world.therapist, {"page": "2", "limit": "2"}))
    assert (page["total"], page["page"], page["limit"], len(page["data"])) == (5, 2, 2, 2)
    assert page["data"][0]["startTime"] == "2026-02-28T09:00:00.000Z"
    past = ok(send("get", SESSIONS, world.therapist, {"page": "9", "limit": "2"}))
    assert (past["total"], past["data"]) == (5, [])


def _list_queries(user) -> int:
    with CaptureQueriesContext(connection) as queries:
        ok(send("get", SESSIONS, user, {"limit": "100"}))
    return len(queries)


def test_list_query_count_does_not_grow_with_sessions(world):
    for day in range(2):
        make_session(world.therapist, world.organization, start=NOW - timedelta(days=day))
    with_two = _list_queries(world.supervisor)
    for day in range(2, 30):
        make_session(world.other_therapist, world.organization, start=NOW - timedelta(days=day))
    assert ok(send("get", SESSIONS, world.supervisor, {"limit": "100"}))["total"] == 30
    assert _list_queries(world.supervisor) == with_two


# --- GET /api/session/{id} --------------------------------------------------------------------------------


def test_get_returns_the_session_with_its_snapshots_and_no_analytics_key_until_posted(world):
    session = make_session(world.therapist, world.organization, progress=40, client_label="sim-9")
    make_snapshots(session, [10, 25])
    body = ok(send("get", detail_path(session), world.therapist))
    assert set(body) == DETAIL_KEYS  # analyticsData is left out, not null
    assert (body["id"], body["clientId"], body["progress"]) == (session.public_id, "sim-9", 40.0)
    assert body["progressSnapshots"] == [
        {"timestamp": "2026-03-02T09:00:00.000Z", "value": 10.0},
        {"timestamp": "2026-03-02T09:05:00.000Z", "value": 25.0},
    ]
    assert body["progressMetrics"] is None
    analytics = {"sessionMetrics": [], "skillProgress": [], "summaryStats": []}
    ok(
        send(
            "post",
            "/api/session/analytics",
            world.therapist,
            {"sessionId": session.public_id, "analyticsData": analytics},
        )
    )
    posted = ok(send("get", detail_path(session), world.therapist))
    assert set(posted) == DETAIL_KEYS | {"analyticsData"}
    assert posted["analyticsData"]["source"] == "posted"


def test_get_shows_progress_metrics_once_posted(world):
    session = make_session(world.therapist, world.organization)
    metrics = {
        "totalMessages": 10,
        "therapistMessages": 5,
        "clientMessages": 4,
        "sessionDuration": 600,
        "activeTime": 500,
        "responseTime": 2.5,
        "conversationFlow": 70,
        "skillScores": {"Empathy": 80},
        "milestonesReached": ["introduction"],
    }
    ok(
        send(
            "post",
            "/api/session/progress",
            world.therapist,
            {"sessionId": session.public_id, "progressMetrics": metrics},
        )
    )
    shown = ok(send("get", detail_path(session), world.supervisor))["progressMetrics"]
    assert shown == {
        **metrics,
        "responseTime": 2.5,
        "conversationFlow": 70.0,
        "skillScores": {"Empathy": 80.0},
        "lastMilestoneTime": None,
    }


def test_get_answers_404_alike_for_unknown_foreign_and_other_therapists_sessions(world):
    mine = make_session(world.therapist, world.organization)
    theirs = make_session(world.other_therapist, world.organization)
    foreign = make_session(world.outsider_therapist, world.other_organization)
    bodies = [
        error(send("get", detail_path(theirs), world.therapist), 404, "SESSION_NOT_FOUND"),
        error(send("get", detail_path(foreign), world.supervisor), 404, "SESSION_NOT_FOUND"),
        error(send("get", f"{SESSIONS}/ses_unknown000", world.therapist), 404, "SESSION_NOT_FOUND"),
        error(send("get", detail_path(mine), world.outsider_supervisor), 404, "SESSION_NOT_FOUND"),
    ]
    assert all(body["error"] == "Session not found" for body in bodies)
    assert ok(send("get", detail_path(theirs), world.supervisor))["id"] == theirs.public_id
    assert ok(send("get", detail_path(mine), world.admin))["id"] == mine.public_id


# --- PATCH /api/session/{id} ------------------------------------------------------------------------------


def test_patch_moves_through_the_transitions_and_ends_the_session(world):
    session = make_session(world.therapist, world.organization, start=utc_now() - timedelta(hours=1))
    path = detail_path(session)
    assert ok(send("patch", path, world.therapist, {"status": "paused"}))["status"] == "paused"
    assert ok(send("patch", path, world.therapist, {"status": "active", "progress": 55}))["progress"] == 55.0
    assert ok(send("patch", path, world.therapist, {"status": "active"}))["status"] == "active"  # no-op
    completed = ok(send("patch", path, world.therapist, {"status": "completed"}))
    assert set(completed) == DETAIL_KEYS
    assert completed["status"] == "completed" and completed["endTime"] is not None  # ended now
    refused = error(send("patch", path, world.therapist, {"status": "active"}), 409, "INVALID_TRANSITION")
    assert refused["details"] == {"from": "completed", "to": "active"}
    session.refresh_from_db()
    assert session.status == "completed" and session.progress == 55


def test_patch_sets_end_time_and_a_reviewer_may_patch(world):
    session = make_session(world.therapist, world.organization, start=NOW)
    body = ok(
        send(
            "patch", detail_path(session), world.supervisor, {"status": "cancelled", "endTime": "2026-03-02T10:30:00Z"}
        )
    )
    assert (body["status"], body["endTime"]) == ("cancelled", "2026-03-02T10:30:00.000Z")
    error(send("patch", detail_path(session), world.supervisor, {"status": "paused"}), 409, "INVALID_TRANSITION")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "done"}, "status"),
        ({"progress": 101}, "progress"),
        ({"progress": -1}, "progress"),
        ({"progress": "50"}, "progress"),
        ({"progress": True}, "progress"),
        ({"endTime": "2026-03-02"}, "endTime"),
    ],
)
def test_patch_refuses_bad_fields(world, body, field):
    session = make_session(world.therapist, world.organization)
    refused = error(send("patch", detail_path(session), world.therapist, body), 400, "VALIDATION_ERROR")
    assert list(refused["details"]) == [field]


def test_patch_needs_a_field_and_an_end_after_the_start(world):
    session = make_session(world.therapist, world.organization, start=NOW)
    empty = error(send("patch", detail_path(session), world.therapist, {"note": "x"}), 400, "VALIDATION_ERROR")
    assert "non_field_errors" in empty["details"]
    early = error(
        send("patch", detail_path(session), world.therapist, {"endTime": "2026-03-02T08:59:59Z"}),
        400,
        "VALIDATION_ERROR",
    )
    assert "endTime" in early["details"]
    session.refresh_from_db()
    assert session.end_time is None


def test_patch_of_a_session_the_caller_cannot_read_is_404(world):
    theirs = make_session(world.other_therapist, world.organization)
    error(send("patch", detail_path(theirs), world.therapist, {"status": "paused"}), 404, "SESSION_NOT_FOUND")
    theirs.refresh_from_db()
    assert theirs.status == "active"
