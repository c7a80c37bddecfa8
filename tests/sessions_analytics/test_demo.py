"""The therapist dashboard's demo data (seed_demo key "therapist"): three users of Demo Clinic, four weeks of
sessions for the first therapist with their records, idempotent, planned from its own seeded generator."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from accounts import demo as accounts_demo
from accounts.models import Membership, User
from audit.models import AuditEvent
from core.registry import SeedContext
from sessions_analytics import demo
from sessions_analytics.models import (
    Evaluation,
    Milestone,
    ProgressFeedback,
    ProgressMetrics,
    ProgressSnapshot,
    SessionComparison,
    SessionSkillScore,
    Skill,
    TrainingSession,
)

pytestmark = pytest.mark.django_db
MODELS = (
    TrainingSession, ProgressMetrics, ProgressSnapshot, Milestone, SessionSkillScore, Skill, ProgressFeedback,
    SessionComparison, Evaluation, User, Membership, AuditEvent,
)  # fmt: skip


def run_seed() -> tuple[dict, SeedContext]:
    """The base data's contributor (Demo Clinic, the demo password), then this one, as seed_demo runs them."""
    ctx = SeedContext(log=lambda message: None, base_url="http://localhost:8000")
    accounts_demo.platform(ctx)
    key, value = demo.seed(ctx)
    assert key == "therapist"
    return value, ctx


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def test_key_names_demo_clinic_three_users_and_the_latest_active_session():
    data, ctx = run_seed()

    assert set(data) == {"organizationId", "therapist", "otherTherapist", "supervisor", "sessionId"}
    assert data["organizationId"] == ctx.organization.public_id
    roles = {}
    for key, role in (("therapist", "therapist"), ("otherTherapist", "therapist"), ("supervisor", "supervisor")):
        assert data[key]["password"] == accounts_demo.DEMO_PASSWORD
        user = User.objects.get(username=data[key]["username"])
        assert user.check_password(accounts_demo.DEMO_PASSWORD) and not user.is_staff
        roles[key] = list(user.memberships.values_list("organization__public_id", "role"))
        assert roles[key] == [(data["organizationId"], role)]  # one membership: no X-Organization-ID needed
    assert len({data[key]["username"] for key in roles}) == 3
    session = TrainingSession.objects.get(public_id=data["sessionId"])
    assert session.therapist.username == data["therapist"]["username"]
    assert session.status == TrainingSession.Status.ACTIVE and session.end_time is None
    latest = TrainingSession.objects.filter(therapist=session.therapist).order_by("-start_time").first()
    assert latest == session


def test_four_weeks_of_sessions_with_their_records():
    data, _ = run_seed()
    therapist = User.objects.get(username=data["therapist"]["username"])
    sessions = list(TrainingSession.objects.filter(therapist=therapist).order_by("start_time"))

    assert 9 <= len(sessions) <= 15
    span = sessions[-1].start_time - sessions[0].start_time
    assert timedelta(days=25) <= span <= timedelta(days=29)
    gaps = [(b.start_time.date() - a.start_time.date()).days for a, b in zip(sessions, sessions[1:])]
    assert all(1 <= gap <= 3 for gap in gaps), gaps
    statuses = [s.status for s in sessions]
    assert statuses[-1] == "active" and statuses.count("active") == 1
    assert statuses.count("cancelled") == 1 and statuses.count("completed") == len(sessions) - 2
    for session in sessions:
        if session.status == "completed":
            assert session.end_time > session.start_time
        if session.status == "cancelled":
            continue
        metrics = ProgressMetrics.objects.get(session=session)
        assert metrics.therapist_messages + metrics.client_messages <= metrics.total_messages
        assert metrics.active_time <= metrics.session_duration
        assert 3 <= session.skill_scores.count() <= 5
        assert session.snapshots.count() == demo.SNAPSHOTS_PER_SESSION
    scored = [s for s in sessions if s.status != "cancelled"]

    def mean_score(session):
        values = list(session.skill_scores.values_list("score", flat=True))
        return sum(values) / len(values)

    assert mean_score(scored[-1]) > mean_score(scored[0]) + 10  # rising over the weeks
    assert Milestone.objects.filter(session__therapist=therapist).count() >= 3
    assert set(Skill.objects.values_list("skill_id", flat=True)) == {
        "active-listening", "empathy", "open-questions", "summarizing", "risk-assessment"}  # fmt: skip
    assert Skill.objects.get(skill_id="risk-assessment").category == "assessment"
    supervisor = User.objects.get(username=data["supervisor"]["username"])
    evaluations = list(Evaluation.objects.filter(session__therapist=therapist))
    assert len(evaluations) == 2 and {e.evaluator for e in evaluations} == {supervisor}
    assert all(e.session.status == "completed" and 1 <= e.rating <= 5 for e in evaluations)
    comparisons = list(SessionComparison.objects.filter(therapist=therapist))
    assert len(comparisons) == 2
    assert all(c.previous_session.start_time < c.current_session.start_time for c in comparisons)
    assert ProgressFeedback.objects.filter(session__therapist=therapist).exists()
    other = User.objects.get(username=data["otherTherapist"]["username"])
    assert TrainingSession.objects.filter(therapist=other).count() == 1


def test_written_through_the_services_audited_with_free_text_encrypted():
    run_seed()
    sessions = TrainingSession.objects.count()

    assert AuditEvent.objects.filter(action="training_session.created").count() == sessions
    assert AuditEvent.objects.filter(action="training_session.progress_recorded").exists()
    assert AuditEvent.objects.filter(action="evaluation.created").count() == 2
    assert AuditEvent.objects.filter(action="session_comparison.created").count() == 2
    evaluation = Evaluation.objects.order_by("created_at").first()
    assert evaluation.feedback in {feedback for _, feedback, _ in demo.EVALUATIONS}
    with connection.cursor() as cursor:
        cursor.execute("SELECT feedback FROM sessions_analytics_evaluation WHERE id = %s", [evaluation.pk])
        assert evaluation.feedback not in cursor.fetchone()[0]  # encrypted at rest
    # History lies in the past: milestones and scores carry the session's own moments, not the seeding time.
    first = TrainingSession.objects.order_by("start_time").exclude(status="cancelled").first()
    assert first.skill_scores.first().recorded_at < first.start_time + timedelta(hours=1)


def test_a_second_run_creates_and_changes_nothing():
    first, _ = run_seed()
    before = counts()
    assert before["TrainingSession"] > 0

    second, ctx = run_seed()

    assert counts() == before
    assert second == first
    assert ctx.changes == []


def test_the_plan_uses_its_own_generator_not_the_global_one():
    now = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
    random.seed(1)
    state = random.getstate()

    first = demo.plan_history(now, random.Random(demo.DEMO_SEED))
    assert random.getstate() == state  # the global generator was not drawn from
    random.seed(2)
    second = demo.plan_history(now, random.Random(demo.DEMO_SEED))

    assert first == second
    assert first != demo.plan_history(now, random.Random(demo.DEMO_SEED + 1))
    assert first[-1].start == now - timedelta(hours=1)


def test_demo_credentials_work_on_the_api(client):
    """The printed users sign in; the therapist and the supervisor read the session, the other therapist
    gets 404; the dashboard has skills and derived analytics to show."""
    data, _ = run_seed()

    def headers(key: str) -> dict:
        credentials = {"username": data[key]["username"], "password": data[key]["password"]}
        response = client.post("/api/v1/auth/token", credentials, content_type="application/json")
        assert response.status_code == 200, response.content
        return {"HTTP_AUTHORIZATION": f"Bearer {response.json()['access_token']}"}

    therapist, other, supervisor = headers("therapist"), headers("otherTherapist"), headers("supervisor")
    url = f"/api/session/{data['sessionId']}"
    session = client.get(url, **therapist)
    assert session.status_code == 200 and session.json()["status"] == "active"
    assert client.get(url, **supervisor).status_code == 200
    assert client.get(url, **other).status_code == 404
    therapist_id = session.json()["therapistId"]
    skills = client.get("/api/session/skills", {"therapistId": therapist_id}, **therapist).json()["skills"]
    assert len(skills) == 5 and all(skill["practiceSessions"] >= 1 for skill in skills)
    analytics = client.get("/api/session/analytics", {"sessionId": data["sessionId"], "timeRange": "30d"}, **therapist)
    body = analytics.json()["analyticsData"]
    assert body["source"] == "derived" and len(body["sessionMetrics"]) >= 9
    comparisons = client.get("/api/session/comparison", {"therapistId": therapist_id}, **supervisor).json()
    assert len(comparisons["comparisons"]) == 2
