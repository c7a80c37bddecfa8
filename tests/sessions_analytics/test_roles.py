"""The therapist dashboard's role matrix: every route and method x every kind of caller.

One organization (make_world) with therapists A and B (two sessions each), a supervisor, an owner, an
admin, a staff member and a viewer; another organization with its own therapist and supervisor. Each case
sends an otherwise valid request, so the status it gets is the access rule's alone:
- a therapist acts on their own sessions; another therapist's session is 404 (its existence is not told);
  naming another therapist (`therapistId`) is 403;
- reviewers (supervisor, owner, admin) act on every session of the organization and alone POST evaluations;
- staff and viewer have no dashboard role: 403; another organization's members: 404 for this one's sessions;
- anonymous: 401.
Every refusal is in the therapist API's body, `{"error", "code", "details"}`, with nothing of the session.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.test import Client

from core.scoping import Role
from sessions_analytics.models import Evaluation, TrainingSession
from tests.sessions_analytics.factories import NOW, bearer, make_member, make_session, make_world

pytestmark = pytest.mark.django_db

OK = "ok"  # the operation's own success status
CLIENT_LABEL = "sim-client-roles"


@dataclass(frozen=True)
class Target:
    session: TrainingSession  # the session the request names
    previous: TrainingSession  # an earlier session of the same therapist (comparisons)
    therapist_id: str | None  # `therapistId` sent, when the case names one
    caller_id: str | None  # the caller's usr_ id (`evaluatorId`)


@dataclass(frozen=True)
class Op:
    route: str
    method: str
    success: int
    build: object  # Target -> (path, query or body)
    names_session: bool = True
    takes_therapist: bool = False


def _progress_metrics() -> dict:
    return {
        "totalMessages": 42,
        "therapistMessages": 21,
        "clientMessages": 21,
        "sessionDuration": 3600,
        "activeTime": 3000,
        "skillScores": {"Active Listening": 85},
        "responseTime": 2.5,
        "conversationFlow": 88,
        "milestonesReached": ["introduction"],
    }


def _with_therapist(body: dict, target: Target) -> dict:
    return {**body, "therapistId": target.therapist_id} if target.therapist_id else body


def _therapist_or_session(target: Target) -> dict:
    # With a therapist named, the read is of that therapist (no session): the therapistId rule alone decides.
    return {"therapistId": target.therapist_id} if target.therapist_id else {"sessionId": target.session.public_id}


OPS = [
    Op("td-sessions", "post", 201, lambda t: ("/api/session", {"clientId": "sim-client-new"}), names_session=False),
    Op(
        "td-sessions",
        "get",
        200,
        lambda t: ("/api/session", {"therapistId": t.therapist_id} if t.therapist_id else {}),
        names_session=False,
        takes_therapist=True,
    ),
    Op("td-session", "get", 200, lambda t: (f"/api/session/{t.session.public_id}", None)),
    Op("td-session", "patch", 200, lambda t: (f"/api/session/{t.session.public_id}", {"progress": 40})),
    Op(
        "td-progress",
        "post",
        200,
        lambda t: (
            "/api/session/progress",
            _with_therapist(
                {
                    "sessionId": t.session.public_id,
                    "progressMetrics": _progress_metrics(),
                    "evaluationFeedback": "Kept the pace",
                },
                t,
            ),
        ),
        takes_therapist=True,
    ),
    Op(
        "td-progress",
        "get",
        200,
        lambda t: ("/api/session/progress", {"sessionId": t.session.public_id, "includeFeedback": "true"}),
    ),
    Op(
        "td-snapshots",
        "post",
        200,
        lambda t: (
            "/api/session/snapshots",
            {"sessionId": t.session.public_id, "snapshots": [{"timestamp": "2026-03-02T09:10:00Z", "value": 25}]},
        ),
    ),
    Op("td-snapshots", "get", 200, lambda t: ("/api/session/snapshots", {"sessionId": t.session.public_id})),
    Op(
        "td-skills",
        "post",
        200,
        lambda t: (
            "/api/session/skills",
            _with_therapist({"sessionId": t.session.public_id, "skillScores": {"Empathy": 78}}, t),
        ),
        takes_therapist=True,
    ),
    Op("td-skills", "get", 200, lambda t: ("/api/session/skills", _therapist_or_session(t)), takes_therapist=True),
    Op(
        "td-analytics",
        "post",
        200,
        lambda t: (
            "/api/session/analytics",
            {
                "sessionId": t.session.public_id,
                "analyticsData": {
                    "sessionMetrics": [
                        {
                            "date": "2026-03-02",
                            "sessions": 1,
                            "therapistSessions": 1,
                            "averageSessionProgress": 50,
                            "milestonesAchieved": 1,
                            "averageResponseTime": 2.5,
                        }
                    ],
                    "skillProgress": [
                        {
                            "skill": "Empathy",
                            "score": 78,
                            "trend": "up",
                            "sessionsPracticed": 1,
                            "averageImprovement": 0,
                        }
                    ],
                    "summaryStats": [{"value": 1, "label": "Total Sessions"}],
                },
            },
        ),
    ),
    Op("td-analytics", "get", 200, lambda t: ("/api/session/analytics", {"sessionId": t.session.public_id})),
    Op(
        "td-comparison",
        "post",
        201,
        lambda t: (
            "/api/session/comparison",
            _with_therapist(
                {
                    "currentSessionId": t.session.public_id,
                    "previousSessionId": t.previous.public_id,
                    "improvementScore": 60,
                    "metrics": {"progressImprovement": 10, "skillScoreImprovement": 5, "responseTimeImprovement": 0.5},
                },
                t,
            ),
        ),
        takes_therapist=True,
    ),
    Op(
        "td-comparison",
        "get",
        200,
        lambda t: ("/api/session/comparison", _therapist_or_session(t)),
        takes_therapist=True,
    ),
    Op(
        "td-evaluation",
        "post",
        201,
        lambda t: (
            "/api/evaluation",
            {
                "sessionId": t.session.public_id,
                "feedback": "Warm opening",
                "rating": 4,
                **({"evaluatorId": t.caller_id} if t.caller_id else {}),
            },
        ),
    ),
    Op("td-evaluation", "get", 200, lambda t: ("/api/evaluation", {"sessionId": t.session.public_id})),
]


@dataclass(frozen=True)
class Caller:
    user: str | None  # World attribute (or "viewer"); None: anonymous
    owner_of_session: str  # whose session the request names
    therapist: str | None  # whose usr_ id goes in `therapistId`, for operations that take one
    status: object  # OK or a status code


CALLERS = {
    "therapist A, own session": Caller("therapist", "therapist", None, OK),
    "therapist A, B's session": Caller("therapist", "other_therapist", None, 404),
    "therapist A, therapistId of B": Caller("therapist", "therapist", "other_therapist", 403),
    "therapist A, own therapistId": Caller("therapist", "therapist", "therapist", OK),
    "therapist B, own session": Caller("other_therapist", "other_therapist", None, OK),
    "therapist B, A's session": Caller("other_therapist", "therapist", None, 404),
    "supervisor": Caller("supervisor", "therapist", None, OK),
    "supervisor, therapistId of A": Caller("supervisor", "therapist", "therapist", OK),
    "owner": Caller("owner", "therapist", None, OK),
    "admin, therapistId of A": Caller("admin", "therapist", "therapist", OK),
    "staff": Caller("staff", "therapist", None, 403),
    "viewer": Caller("viewer", "therapist", None, 403),
    "other organization's therapist": Caller("outsider_therapist", "therapist", None, 404),
    "other organization's supervisor": Caller("outsider_supervisor", "therapist", None, 404),
    "other organization's supervisor, therapistId of A": Caller("outsider_supervisor", "therapist", "therapist", 404),
    "anonymous": Caller(None, "therapist", None, 401),
}
THERAPISTS = {"therapist", "other_therapist"}
OUTSIDERS = {"outsider_therapist", "outsider_supervisor"}


def expected_status(op: Op, caller: Caller) -> int | None:
    """The table: the status `caller` gets on `op` (None: the case does not apply)."""
    if caller.therapist is not None and not op.takes_therapist:
        return None
    if not op.names_session:
        if caller.owner_of_session != caller.user and caller.user in THERAPISTS:
            return None  # "another's session" means nothing without a session
        if caller.user in OUTSIDERS and caller.therapist is None:
            return op.success  # they act in their own organization (see test_lists_are_scoped)
    if caller.status == OK and op.route == "td-evaluation" and op.method == "post" and caller.user in THERAPISTS:
        return 403  # only a reviewer evaluates
    return op.success if caller.status == OK else caller.status


CASES = [
    pytest.param(op, name, status, id=f"{op.method.upper()} {op.route} | {name} -> {status}")
    for op in OPS
    for name, caller in CALLERS.items()
    if (status := expected_status(op, caller)) is not None
]


@pytest.fixture(scope="module")
def module_world(django_db_setup, django_db_blocker):
    """The world, built once for the module inside a transaction rolled back at its end; each test runs in a
    savepoint inside it (pytest-django `db`), so one test's writes never reach the next."""
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            world = make_world()
            world.viewer = make_member(world.organization, Role.VIEWER)
            world.sessions = {}
            for who in THERAPISTS:
                therapist = getattr(world, who)
                previous = make_session(
                    therapist, world.organization, start=NOW - timedelta(days=2), client_label=CLIENT_LABEL
                )
                current = make_session(
                    therapist, world.organization, start=NOW - timedelta(days=1), client_label=CLIENT_LABEL
                )
                world.sessions[who] = (current, previous)
            yield world
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
            for connection in connections.all():
                connection.close_if_unusable_or_obsolete()


@pytest.fixture
def world(module_world, db):
    return module_world


def _send(user, method: str, path: str, payload) -> object:
    headers = bearer(user) if user is not None else {}
    http = Client(raise_request_exception=False)
    if method == "get":
        return http.get(path, payload or {}, **headers)
    return getattr(http, method)(path, json.dumps(payload), content_type="application/json", **headers)


def call(world, op: Op, caller: Caller):
    user = getattr(world, caller.user) if caller.user else None
    current, previous = world.sessions[caller.owner_of_session]
    target = Target(
        session=current,
        previous=previous,
        therapist_id=getattr(world, caller.therapist).public_id if caller.therapist else None,
        caller_id=user.public_id if user is not None else None,
    )
    path, payload = op.build(target)
    return _send(user, op.method, path, payload), target


def assert_refusal(response, status: int, target: Target) -> None:
    where = (response.status_code, response.content[:300])
    assert response.status_code == status, where
    body = response.json()
    assert set(body) == {"error", "code", "details"}, where
    assert isinstance(body["error"], str) and body["error"], where
    assert body["code"] == body["code"].upper() and body["code"], where
    assert isinstance(body["details"], dict), where
    # Nothing of the session: not its client label, start time or status.
    text = response.content.decode()
    assert CLIENT_LABEL not in text and "startTime" not in text and "progressSnapshots" not in text, where
    if status == 404 and target.therapist_id is None:
        assert body["code"] == "SESSION_NOT_FOUND", where
    if status == 404 and target.therapist_id is not None:
        assert body["code"] in {"SESSION_NOT_FOUND", "THERAPIST_NOT_FOUND"}, where


@pytest.mark.parametrize("op, caller_name, status", CASES)
def test_role_matrix(world, frozen_ratelimit_clock, op, caller_name, status):
    response, target = call(world, op, CALLERS[caller_name])
    if status == op.success:
        assert response.status_code == status, (response.status_code, response.content[:300])
        assert "error" not in response.json()
    else:
        assert_refusal(response, status, target)


def test_every_route_and_method_is_in_the_matrix():
    from tests.security.routes import ROUTES, methods

    therapist_routes = {
        (name, method) for _path, name, callback in ROUTES if name.startswith("td-") for method in methods(callback)
    }
    assert therapist_routes, "no therapist routes found"
    assert therapist_routes == {(op.route, op.method) for op in OPS}


def test_every_kind_of_caller_meets_every_route():
    """The table is not thinned out by accident: every operation gets the callers without a therapistId."""
    for op in OPS:
        names = {name for op_, name, _status in (case.values for case in CASES) if op_ is op}
        plain = {name for name, caller in CALLERS.items() if caller.therapist is None}
        if op.names_session:
            assert plain <= names, (op.route, op.method, plain - names)
        else:
            assert {"anonymous", "staff", "viewer", "supervisor", "therapist A, own session"} <= names


# --- What the roles read and write (beyond the status) ------------------------------------------------


def _listed(world, user, **query) -> set[str]:
    response = _send(user, "get", "/api/session", {"limit": 100, **query})
    assert response.status_code == 200, response.content[:300]
    return {row["id"] for row in response.json()["data"]}


def test_lists_are_scoped(world):
    a = {s.public_id for s in world.sessions["therapist"]}
    b = {s.public_id for s in world.sessions["other_therapist"]}
    assert _listed(world, world.therapist) == a
    assert _listed(world, world.other_therapist) == b
    for reviewer in (world.supervisor, world.owner, world.admin):
        assert _listed(world, reviewer) == a | b
        assert _listed(world, reviewer, therapistId=world.other_therapist.public_id) == b
    for outsider in (world.outsider_therapist, world.outsider_supervisor):
        assert not _listed(world, outsider) & (a | b)


def test_created_sessions_belong_to_the_caller(world):
    response = _send(world.supervisor, "post", "/api/session", {"clientId": "sim-client-new"})
    assert response.status_code == 201, response.content[:300]
    assert response.json()["therapistId"] == world.supervisor.public_id
    assert TrainingSession.objects.get(public_id=response.json()["id"]).organization == world.organization


def test_a_reviewer_may_not_evaluate_their_own_session(world):
    own = make_session(world.supervisor, world.organization, client_label=CLIENT_LABEL)
    response = _send(
        world.supervisor, "post", "/api/evaluation", {"sessionId": own.public_id, "feedback": "x", "rating": 5}
    )
    assert_refusal(response, 403, Target(own, own, None, None))
    assert not Evaluation.objects.exists()


def test_evaluator_id_must_be_the_caller(world):
    session = world.sessions["therapist"][0]
    body = {"sessionId": session.public_id, "feedback": "x", "rating": 5, "evaluatorId": world.owner.public_id}
    response = _send(world.supervisor, "post", "/api/evaluation", body)
    assert_refusal(response, 403, Target(session, session, None, None))
    assert not Evaluation.objects.exists()


def test_a_therapist_may_not_evaluate_even_with_their_own_evaluator_id(world):
    session = world.sessions["therapist"][0]
    body = {"sessionId": session.public_id, "feedback": "x", "rating": 5, "evaluatorId": world.therapist.public_id}
    response = _send(world.therapist, "post", "/api/evaluation", body)
    assert_refusal(response, 403, Target(session, session, None, None))
    assert response.json()["error"] == "Only a supervisor may evaluate a session"
    assert not Evaluation.objects.exists()


def test_a_therapist_naming_another_is_told_only_that(world):
    response = _send(world.therapist, "get", "/api/session/skills", {"therapistId": world.other_therapist.public_id})
    assert_refusal(response, 403, Target(world.sessions["therapist"][0], world.sessions["therapist"][1], "x", None))
    assert (response.json()["code"], response.json()["error"]) == ("FORBIDDEN", "You may only act for yourself")


def test_reviewer_naming_a_non_member_gets_therapist_not_found(world):
    response = _send(
        world.supervisor, "get", "/api/session/skills", {"therapistId": world.outsider_therapist.public_id}
    )
    assert response.status_code == 404, response.content[:300]
    assert response.json()["code"] == "THERAPIST_NOT_FOUND"


def test_refused_writes_store_nothing(world):
    """A 403/404 write leaves the session as it was (the matrix checks statuses; this checks effects)."""
    session = world.sessions["therapist"][0]
    for user in (world.other_therapist, world.staff, world.viewer, world.outsider_supervisor, None):
        _send(user, "patch", f"/api/session/{session.public_id}", {"progress": 77, "status": "completed"})
        _send(
            user,
            "post",
            "/api/session/snapshots",
            {"sessionId": session.public_id, "snapshots": [{"timestamp": "2026-03-02T09:10:00Z", "value": 25}]},
        )
    session.refresh_from_db()
    assert (session.progress, session.status) == (0, TrainingSession.Status.ACTIVE)
    assert not session.snapshots.exists()
