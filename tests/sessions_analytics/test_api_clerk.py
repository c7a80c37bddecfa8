"""Clerk session tokens on the therapist dashboard: the same OIDC stack as Routiq (tests/clerk_stub.py serves
the JWKS on 127.0.0.1). A token acts in its active organization, linked to one of ours, with its Clerk role
mapped through CLERK_ROLE_MAP: "org:therapist" reads and writes its own sessions, "org:supervisor" every
session of the organization (and evaluates); a Clerk member mapped to staff has no dashboard role (403)."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import authentication
from accounts import services as accounts_services
from accounts.models import ExternalIdentity, User
from core.actors import Actor
from sessions_analytics.models import Evaluation, TrainingSession
from tests.clerk_stub import ClerkStub
from tests.sessions_analytics.factories import make_member, make_session

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("tests")
CLINIC_CLERK_ID = "org_2xwTrainingClerk01"
OTHER_CLERK_ID = "org_2xwOtherTraining02"
ROLE_MAP = {"org:therapist": "therapist", "org:supervisor": "supervisor"}


@pytest.fixture
def clerk(settings, frozen_ratelimit_clock):
    authentication._jwks_clients.clear()
    with ClerkStub() as stub:
        stub.configure(settings)
        settings.CLERK_ROLE_MAP = ROLE_MAP
        yield stub
    authentication._jwks_clients.clear()


@pytest.fixture
def clinic(db):
    return accounts_services.organization_create(
        name="Training clinic", clerk_organization_id=CLINIC_CLERK_ID, actor=ACTOR
    )


@pytest.fixture
def other(db):
    return accounts_services.organization_create(name="Other clinic", clerk_organization_id=OTHER_CLERK_ID, actor=ACTOR)


def send(token: str, method: str, path: str, body=None, **headers):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}", **headers}
    if method == "get":
        return Client().get(path, body or {}, **auth)
    return getattr(Client(), method)(path, body, content_type="application/json", **auth)


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.content[:600]
    return response.json()


def error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:600]
    body = response.json()
    assert set(body) == {"error", "code", "details"} and body["code"] == code, body
    return body


def user_of(sub: str) -> User:
    return ExternalIdentity.objects.select_related("user").get(subject=sub).user


@pytest.mark.parametrize("version", [1, 2])
def test_clerk_therapist_and_supervisor_act_with_their_mapped_roles(clerk, clinic, version):
    therapist = clerk.token(version=version, sub="user_2therapist", org_id=CLINIC_CLERK_ID, org_role="org:therapist")
    supervisor = clerk.token(version=version, sub="user_2supervisor", org_id=CLINIC_CLERK_ID, org_role="org:supervisor")

    created = ok(send(therapist, "post", "/api/session", {"clientId": "sim-client-clerk"}), 201)
    therapist_user = user_of("user_2therapist")
    assert created["therapistId"] == therapist_user.public_id
    assert TrainingSession.objects.get(public_id=created["id"]).organization == clinic
    snapshots = {"sessionId": created["id"], "snapshots": [{"timestamp": "2026-03-02T09:00:00Z", "value": 30}]}
    ok(send(therapist, "post", "/api/session/snapshots", snapshots))
    assert [item["id"] for item in ok(send(therapist, "get", "/api/session"))["data"]] == [created["id"]]

    # The supervisor reads the therapist's session and evaluates it; the therapist may not evaluate.
    read = ok(send(supervisor, "get", f"/api/session/{created['id']}"))
    assert read["progressSnapshots"] == [{"timestamp": "2026-03-02T09:00:00.000Z", "value": 30.0}]
    evaluation = {"sessionId": created["id"], "feedback": "Calm pacing", "rating": 5}
    error(send(therapist, "post", "/api/evaluation", evaluation), 403, "FORBIDDEN")
    ok(send(supervisor, "post", "/api/evaluation", evaluation), 201)
    assert Evaluation.objects.get().evaluator == user_of("user_2supervisor")
    listed = ok(send(therapist, "get", "/api/evaluation", {"sessionId": created["id"]}))
    assert [e["evaluatorId"] for e in listed["evaluations"]] == [user_of("user_2supervisor").public_id]


def test_clerk_therapist_reaches_only_their_own_sessions(clerk, clinic):
    colleague = make_member(clinic, "therapist")
    theirs = make_session(colleague, clinic)
    token = clerk.token(sub="user_2therapist", org_id=CLINIC_CLERK_ID, org_role="org:therapist")
    error(send(token, "get", f"/api/session/{theirs.public_id}"), 404, "SESSION_NOT_FOUND")
    error(send(token, "get", "/api/session", {"therapistId": colleague.public_id}), 403, "FORBIDDEN")
    assert ok(send(token, "get", "/api/session"))["total"] == 0
    supervisor = clerk.token(sub="user_2supervisor", org_id=CLINIC_CLERK_ID, org_role="org:supervisor")
    listed = ok(send(supervisor, "get", "/api/session", {"therapistId": colleague.public_id}))
    assert [item["id"] for item in listed["data"]] == [theirs.public_id]


@pytest.mark.parametrize("version", [1, 2])
def test_clerk_member_mapped_to_staff_gets_403(clerk, clinic, version):
    token = clerk.token(version=version, sub="user_2staff", org_id=CLINIC_CLERK_ID, org_role="org:member")
    session = make_session(make_member(clinic, "therapist"), clinic)
    error(send(token, "get", "/api/session"), 403, "PERMISSION_DENIED")
    error(send(token, "post", "/api/session", {"clientId": "c"}), 403, "PERMISSION_DENIED")
    error(send(token, "get", "/api/session/skills", {"sessionId": session.public_id}), 403, "PERMISSION_DENIED")
    assert TrainingSession.objects.count() == 1


def test_clerk_token_of_another_active_organization_is_403(clerk, clinic, other):
    token = clerk.token(sub="user_2therapist", org_id=OTHER_CLERK_ID, org_role="org:therapist")
    error(send(token, "get", "/api/session", HTTP_X_ORGANIZATION_ID=clinic.public_id), 403, "PERMISSION_DENIED")
    created = ok(send(token, "post", "/api/session", {"clientId": "c"}), 201)  # acts in its active organization
    assert TrainingSession.objects.get(public_id=created["id"]).organization == other
