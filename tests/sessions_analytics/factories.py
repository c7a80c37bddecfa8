"""Data for the therapist dashboard tests: an organization with therapists and a supervisor, sessions and
their records written directly as rows (the services are tested on their own), and platform tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services as accounts_services
from accounts.models import Organization, User
from core.actors import Actor
from core.scoping import Role
from sessions_analytics.models import ProgressSnapshot, SessionSkillScore, Skill, TrainingSession

ACTOR = Actor.system("tests")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_counter = {"n": 0}


def _next() -> int:
    _counter["n"] += 1
    return _counter["n"]


def make_organization(name: str = "Training Clinic") -> Organization:
    return accounts_services.organization_create(name=f"{name} {_next()}", actor=ACTOR)


def make_member(organization: Organization | None, role: str = Role.THERAPIST, username: str | None = None) -> User:
    username = username or f"{role}-{_next()}"
    user = User.objects.create_user(username=username, password=f"pw-{username}-123!")
    if organization is not None:
        accounts_services.membership_set(user=user, organization=organization, role=role, actor=ACTOR)
    return user


def bearer(user: User) -> dict:
    """Django test client headers with a platform access token (POST /api/v1/auth/token's kind)."""
    return {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(user)}"}


def make_session(
    therapist: User,
    organization: Organization,
    *,
    start: datetime | None = None,
    status: str = TrainingSession.Status.ACTIVE,
    progress: float = 0,
    client_label: str = "sim-client-1",
    **fields,
) -> TrainingSession:
    return TrainingSession.objects.create(
        organization=organization,
        therapist=therapist,
        client_label=client_label,
        start_time=start or NOW,
        status=status,
        progress=progress,
        **fields,
    )


def make_skill(organization: Organization, slug: str, name: str, category: str = "therapeutic") -> Skill:
    skill, _ = Skill.objects.get_or_create(
        organization=organization, skill_id=slug, defaults={"name": name, "category": category}
    )
    return skill


def make_score(session: TrainingSession, skill: Skill, score: float, at: datetime | None = None) -> SessionSkillScore:
    at = at or session.start_time
    return SessionSkillScore.objects.create(
        session=session,
        skill=skill,
        therapist_id=session.therapist_id,
        session_start=session.start_time,
        score=score,
        created_at=at,
        recorded_at=at,
    )


def make_snapshots(session: TrainingSession, values, *, start: datetime | None = None, step=timedelta(minutes=5)):
    start = start or session.start_time
    return ProgressSnapshot.objects.bulk_create(
        ProgressSnapshot(session=session, timestamp=start + i * step, value=v) for i, v in enumerate(values)
    )


@dataclass
class World:
    """One organization with two therapists and a supervisor, plus an owner, an admin and a staff member;
    another organization with its own therapist and supervisor."""

    organization: Organization
    therapist: User
    other_therapist: User
    supervisor: User
    owner: User
    admin: User
    staff: User
    other_organization: Organization
    outsider_therapist: User
    outsider_supervisor: User


def make_world() -> World:
    organization = make_organization("Training Clinic")
    other = make_organization("Other Clinic")
    return World(
        organization=organization,
        therapist=make_member(organization, Role.THERAPIST),
        other_therapist=make_member(organization, Role.THERAPIST),
        supervisor=make_member(organization, Role.SUPERVISOR),
        owner=make_member(organization, Role.OWNER),
        admin=make_member(organization, Role.ADMIN),
        staff=make_member(organization, Role.STAFF),
        other_organization=other,
        outsider_therapist=make_member(other, Role.THERAPIST),
        outsider_supervisor=make_member(other, Role.SUPERVISOR),
    )


# --- HTTP, as a dashboard calls it ---------------------------------------------------------------------------


def send(method: str, path: str, user=None, body=None, **extra):
    """A request as `user` (platform token; None: anonymous): GET with `body` as the query, else a JSON body."""
    headers = bearer(user) if user is not None else {}
    client = Client()
    if method == "get":
        return client.get(path, body or {}, **headers, **extra)
    return getattr(client, method)(path, body, content_type="application/json", **headers, **extra)


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.content[:600]
    return response.json()


def error(response, status: int, code: str) -> dict:
    """The therapist API's error body, with this status and code."""
    assert response.status_code == status, response.content[:600]
    body = response.json()
    assert set(body) == {"error", "code", "details"}, body
    assert body["code"] == code, body
    return body
