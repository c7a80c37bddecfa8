"""Therapist dashboard demo data for `manage.py seed_demo` (key "therapist"), registered by
sessions_analytics/apps.py (order 600, after the base data that provides Demo Clinic and the demo password).

DEMO ONLY (seed_demo refuses production). In Demo Clinic (the same organization as the "platform" key):
- users `demo-therapist` and `demo-therapist-2` (role therapist) and `demo-supervisor` (role supervisor), each
  logging in with the demo password (POST /api/v1/auth/token); one membership each, so no X-Organization-ID
  is needed;
- DEMO_DAYS (28) days of training sessions for `demo-therapist`, one every 2-3 days: all completed but one
  cancelled, the latest active (its id is `sessionId`). Each has progress metrics, 3-5 skill scores rising
  over the weeks with some noise, a few snapshots, the milestones its progress reached, and for some a
  progress feedback; the supervisor evaluated two sessions and two comparisons link consecutive sessions;
- one completed session for `demo-therapist-2` (what a therapist may not read, a supervisor may).
Everything is written through sessions_analytics.services, the writes the API makes (audit trail, free text
encrypted), with their `now=` set to the planned moments so the history lies in the past.
The numbers come from a `random.Random(DEMO_SEED)`, never the global generator, so every run plans the same
history (shifted to the day it runs). Only when missing: a second run creates and changes nothing (the
marker is `demo-therapist` having sessions).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from accounts.models import Membership, Organization, User
from accounts.services import membership_set, user_create
from core.actors import Actor
from core.scoping import Role
from core.time import utc_now
from sessions_analytics import services
from sessions_analytics.models import TrainingSession
from sessions_analytics.selectors import Access

ACTOR = Actor.system("seed_demo")
THERAPIST_USERNAME = "demo-therapist"
OTHER_THERAPIST_USERNAME = "demo-therapist-2"
SUPERVISOR_USERNAME = "demo-supervisor"
DEMO_SEED = 13
DEMO_DAYS = 28
SESSION_HOUR_UTC = 10
SNAPSHOTS_PER_SESSION = 4
SNAPSHOT_STEP = timedelta(minutes=10)
# Each skill's starting level; every skill gains about SKILL_GAIN points over the weeks.
SKILL_BASE = {
    "Active Listening": 55.0,
    "Empathy": 60.0,
    "Open Questions": 45.0,
    "Summarizing": 50.0,
    "Risk Assessment": 35.0,
}
SKILL_GAIN = 30.0
# A session reaches a milestone when its progress is at least the threshold.
MILESTONES = (("rapport-established", 40.0), ("goals-agreed", 60.0), ("summary-delivered", 80.0))
FEEDBACK = (
    "Good reflective listening; leave more silence before summarising.",
    "Open questions worked well. Check for risk earlier in the session.",
)
EVALUATIONS = (
    (3, "Warm and attentive; the summary came too early.", "Practise pacing the closing phase."),
    (4, "Clear structure, good open questions, risk asked about directly.", ""),
)


@dataclass
class PlannedSession:
    start: datetime
    status: str
    progress: float
    client_label: str
    metrics: dict | None = None  # progress_record's snake_case metrics
    scores: dict[str, float] = field(default_factory=dict)
    milestones: list[str] = field(default_factory=list)
    snapshots: list[tuple[datetime, float]] = field(default_factory=list)
    feedback: str | None = None

    @property
    def end(self) -> datetime | None:
        if self.status == TrainingSession.Status.ACTIVE:
            return None
        duration = self.metrics["session_duration"] if self.metrics else 600
        return self.start + timedelta(seconds=duration)


def _clamp(value: float) -> float:
    return round(min(100.0, max(0.0, value)), 1)


def plan_history(now: datetime, rng: random.Random) -> list[PlannedSession]:
    """The first therapist's sessions, oldest first: every 2-3 days over DEMO_DAYS, the last one today
    (started an hour ago, active). Skills, progress and flow rise with the session's place in the weeks."""
    today = now.replace(hour=SESSION_HOUR_UTC, minute=0, second=0, microsecond=0)
    starts = []
    day = DEMO_DAYS
    while day > 1:
        starts.append(today - timedelta(days=day))
        day -= rng.choice((2, 3))
    starts.append(now - timedelta(hours=1))
    sessions = []
    for index, start in enumerate(starts):
        share = index / (len(starts) - 1)
        latest = index == len(starts) - 1
        status = TrainingSession.Status.COMPLETED
        if latest:
            status = TrainingSession.Status.ACTIVE
        elif index == 3:
            status = TrainingSession.Status.CANCELLED
        planned = PlannedSession(
            start=start,
            status=status,
            progress=_clamp(45 + 45 * share + rng.uniform(-5, 5)) if status != "cancelled" else 15.0,
            client_label=f"demo-client-{1 + index % 3}",
        )
        if status != TrainingSession.Status.CANCELLED:
            _plan_records(planned, share, rng, partial=latest)
        sessions.append(planned)
    return sessions


def _plan_records(planned: PlannedSession, share: float, rng: random.Random, *, partial: bool) -> None:
    if partial:  # an active session is part-way through
        planned.progress = _clamp(planned.progress * 0.6)
    duration = rng.randint(1500, 3000) if not partial else 1800
    total = rng.randint(30, 70)
    therapist_messages = total // 2 + rng.randint(-3, 3)
    planned.metrics = {
        "total_messages": total,
        "therapist_messages": therapist_messages,
        "client_messages": total - therapist_messages,
        "session_duration": duration,
        "active_time": int(duration * rng.uniform(0.75, 0.95)),
        "response_time": round(max(2.0, 12 - 7 * share + rng.uniform(-1, 1)), 1),
        "conversation_flow": _clamp(55 + 35 * share + rng.uniform(-4, 4)),
    }
    names = list(SKILL_BASE)
    practised = sorted(rng.sample(names, rng.randint(3, 5)), key=names.index)
    planned.scores = {name: _clamp(SKILL_BASE[name] + SKILL_GAIN * share + rng.uniform(-4, 4)) for name in practised}
    planned.milestones = [name for name, threshold in MILESTONES if planned.progress >= threshold]
    planned.snapshots = [
        (planned.start + step * SNAPSHOT_STEP, _clamp(planned.progress * step / SNAPSHOTS_PER_SESSION))
        for step in range(1, SNAPSHOTS_PER_SESSION + 1)
    ]


# --- writes -------------------------------------------------------------------------------------------


def _user(ctx, username: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        user = user_create(username=username, password=ctx.password, actor=ACTOR)
        ctx.changed(f"created platform user {username}")
    elif not user.is_active or not user.check_password(ctx.password):
        user.is_active = True
        user.set_password(ctx.password)
        user.save(update_fields=["is_active", "password"])
        ctx.changed(f"reset platform user {username} (inactive or password changed)")
    return user


def _member(ctx, organization: Organization, username: str, role: str) -> User:
    user = _user(ctx, username)
    if not Membership.objects.filter(user=user, organization=organization, role=role).exists():
        membership_set(user=user, organization=organization, role=role, actor=ACTOR)
        ctx.changed(f"made {username} {role} of {organization.name}")
    return user


def _write_session(access: Access, planned: PlannedSession, *, feedback_author: User) -> TrainingSession:
    """One planned session through the services the API calls, in the order a client would post: create,
    snapshots, progress (so milestones take the latest snapshot's value), then the final status."""
    session = services.session_create(
        access=access, client_label=planned.client_label, start_time=planned.start, actor=ACTOR
    )
    if planned.snapshots:
        services.snapshots_record(session=session, snapshots=planned.snapshots, actor=ACTOR)
    if planned.metrics is not None:
        recorded = planned.snapshots[-1][0] if planned.snapshots else planned.start
        services.progress_record(
            session=session,
            author=feedback_author,
            metrics={
                **planned.metrics,
                "skill_scores": planned.scores,
                "milestones_reached": planned.milestones,
                "last_milestone_time": recorded if planned.milestones else None,
            },
            feedback=planned.feedback,
            actor=ACTOR,
            now=recorded,
        )
    ended = planned.status != TrainingSession.Status.ACTIVE
    return services.session_update(
        session=session,
        status=planned.status if ended else None,
        end_time=planned.end,
        progress=planned.progress,
        actor=ACTOR,
        now=planned.end or planned.start,
    )


def _mean_score_change(current: PlannedSession, previous: PlannedSession) -> float:
    common = set(current.scores) & set(previous.scores)
    if not common:
        return 0.0
    return sum(current.scores[name] - previous.scores[name] for name in common) / len(common)


def _history(ctx, organization: Organization, therapist: User, other: User, supervisor: User, now: datetime):
    as_therapist = Access(organization=organization, user=therapist, role=Role.THERAPIST)
    as_supervisor = Access(organization=organization, user=supervisor, role=Role.SUPERVISOR)
    planned = plan_history(now, random.Random(DEMO_SEED))
    for index, entry in enumerate(planned):
        if entry.metrics is not None and index % 3 == 1:
            entry.feedback = FEEDBACK[index % len(FEEDBACK)]
    sessions = [_write_session(as_therapist, entry, feedback_author=supervisor) for entry in planned]
    completed = [(s, p) for s, p in zip(sessions, planned, strict=True) if s.status == TrainingSession.Status.COMPLETED]
    for (rating, feedback, comments), (session, _) in zip(EVALUATIONS, completed[-2:], strict=True):
        services.evaluation_create(
            session=session,
            evaluator=supervisor,
            rating=rating,
            feedback=feedback,
            comments=comments,
            access=as_supervisor,
            actor=ACTOR,
            now=session.end_time + timedelta(hours=2),
        )
    for (current, current_plan), (previous, previous_plan) in (
        (completed[-1], completed[-2]),
        (completed[-2], completed[-3]),
    ):
        progress_change = current_plan.progress - previous_plan.progress
        skill_change = _mean_score_change(current_plan, previous_plan)
        services.comparison_create(
            access=as_therapist,
            therapist=therapist,
            current=current,
            previous=previous,
            improvement_score=_clamp(50 + progress_change + skill_change),
            metrics={
                "progress_improvement": round(progress_change, 1),
                "skill_score_improvement": round(skill_change, 1),
                "response_time_improvement": round(
                    previous_plan.metrics["response_time"] - current_plan.metrics["response_time"], 1
                ),
            },
            actor=ACTOR,
            now=current.end_time + timedelta(hours=1),
        )
    other_plan = plan_history(now, random.Random(DEMO_SEED + 1))[-2]
    other_plan.client_label = "demo-client-other"
    _write_session(
        Access(organization=organization, user=other, role=Role.THERAPIST), other_plan, feedback_author=other
    )
    ctx.changed(f"created {len(sessions)} demo training sessions for {therapist.username} in {organization.name}")


def _demo_session(therapist: User) -> TrainingSession | None:
    """The latest active session of the demo therapist (the `sessionId` of the key)."""
    return (
        TrainingSession.objects.filter(therapist=therapist, status=TrainingSession.Status.ACTIVE)
        .order_by("-start_time", "-id")
        .first()
    )


def seed(ctx) -> tuple[str, object]:
    """The "therapist" key of seed_demo --json."""
    organization = ctx.organization
    therapist = _member(ctx, organization, THERAPIST_USERNAME, Role.THERAPIST)
    other = _member(ctx, organization, OTHER_THERAPIST_USERNAME, Role.THERAPIST)
    supervisor = _member(ctx, organization, SUPERVISOR_USERNAME, Role.SUPERVISOR)
    if not TrainingSession.objects.filter(therapist=therapist).exists():
        _history(ctx, organization, therapist, other, supervisor, utc_now())
    session = _demo_session(therapist)

    def credentials(user: User) -> dict:
        return {"username": user.username, "password": ctx.password}

    return "therapist", {
        "organizationId": organization.public_id,
        "therapist": credentials(therapist),
        "otherTherapist": credentials(other),
        "supervisor": credentials(supervisor),
        "sessionId": session.public_id if session else None,
    }
