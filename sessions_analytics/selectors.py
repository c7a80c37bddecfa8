"""Therapist dashboard reads and the access rules they apply (docs/therapist-dashboard.md, "Roles").

Who may read what is decided here, once, and every view and aggregate goes through it:

- the dashboard roles are therapist, supervisor, owner and admin (DASHBOARD_ROLES); the reviewers among them
  (supervisor, owner, admin: REVIEWER_ROLES) read every session of their organization, a therapist only the
  sessions where they are the therapist (`sessions_readable`);
- a session that is unknown, of another organization, or another therapist's (for a therapist) is the same
  404 `SESSION_NOT_FOUND`, so an id never reveals that a session exists;
- a `therapistId` names the caller, or (reviewers only, else 403 `FORBIDDEN`) a member of the organization
  (else 404 `THERAPIST_NOT_FOUND`).

Reads return model rows and dataclasses, never response bodies, with their related rows joined or
prefetched so the number of queries does not grow with the number of rows
(tests/sessions_analytics/test_selectors.py counts them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Prefetch, QuerySet

from accounts.models import User
from core.domain import Invalid, NotFound, PermissionDenied
from core.ids import is_public_id
from core.pagination import Page, PageRequest, paginate
from core.scoping import OrganizationScope, Role
from core.time import utc_now
from sessions_analytics.models import (
    Evaluation,
    Milestone,
    ProgressFeedback,
    ProgressMetrics,
    ProgressSnapshot,
    SessionSkillScore,
    TrainingSession,
)

DASHBOARD_ROLES = frozenset({Role.THERAPIST, Role.SUPERVISOR, Role.OWNER, Role.ADMIN})
REVIEWER_ROLES = frozenset({Role.SUPERVISOR, Role.OWNER, Role.ADMIN})

# `timeRange` values and their length in days; the boundary instant is inside the range (`>= now - days`).
TIME_RANGES = {"7d": 7, "30d": 30, "90d": 90, "1y": 365}
TIME_RANGE_CHOICES = ", ".join(TIME_RANGES)

SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
THERAPIST_NOT_FOUND = "THERAPIST_NOT_FOUND"
FORBIDDEN = "FORBIDDEN"
INVALID_TIME_RANGE = "INVALID_TIME_RANGE"


@dataclass(frozen=True)
class Access:
    """The caller in the organization the request acts in, with their role there (from core.scoping, so a
    Clerk token's role counts, not a stored membership)."""

    organization: Any
    user: Any
    role: str

    @property
    def is_reviewer(self) -> bool:
        return self.role in REVIEWER_ROLES


def access_for(scope: OrganizationScope, user) -> Access:
    return Access(organization=scope.organization, user=user, role=scope.role)


def sessions_readable(access: Access) -> QuerySet[TrainingSession]:
    """Every session the caller may read: the organization's for a reviewer, their own for a therapist,
    none for any other role (the views refuse those roles first; this keeps the rule whole on its own)."""
    sessions = TrainingSession.objects.filter(organization=access.organization)
    if access.is_reviewer:
        return sessions
    if access.role == Role.THERAPIST:
        return sessions.filter(therapist=access.user)
    return sessions.none()


def therapist_sessions_readable(access: Access, therapist) -> bool:
    """Whether the caller may read `therapist`'s sessions of the organization: `sessions_readable` for one
    therapist, decided without a query (its readable sessions are all of theirs there or none): a reviewer
    reads anyone's, a therapist only their own, any other role nobody's."""
    if access.is_reviewer:
        return True
    return access.role == Role.THERAPIST and therapist.pk == access.user.pk


def _session_or_404(sessions: QuerySet[TrainingSession], session_id: str | None) -> TrainingSession:
    session = None
    if isinstance(session_id, str) and is_public_id(session_id, "ses"):
        # public_id is unique: no ORDER BY (first() would sort by the model's ordering), LIMIT 1.
        session = next(iter(sessions.filter(public_id=session_id).order_by()[:1]), None)
    if session is None:
        raise NotFound("Session not found", code=SESSION_NOT_FOUND)
    return session


def session_get(access: Access, session_id: str | None) -> TrainingSession:
    """The readable session with this public id, its therapist and organization joined; anything else
    (absent, malformed, unknown, another organization's, another therapist's) is the same 404."""
    return _session_or_404(sessions_readable(access).select_related("therapist", "organization"), session_id)


def therapist_resolve(access: Access, therapist_id: str | None) -> User:
    """The therapist a `therapistId` names: absent -> the caller; the caller's own id -> the caller; anyone
    else's only for a reviewer (403 `FORBIDDEN` otherwise), and only a member of this organization in any role
    (404 `THERAPIST_NOT_FOUND` otherwise, malformed ids included)."""
    if therapist_id is None or therapist_id == "" or therapist_id == access.user.public_id:
        return access.user
    if not access.is_reviewer:
        raise PermissionDenied("You may only act for yourself", code=FORBIDDEN)
    therapist = None
    if isinstance(therapist_id, str) and is_public_id(therapist_id, "usr"):
        therapist = User.objects.filter(public_id=therapist_id, memberships__organization=access.organization).first()
    if therapist is None:
        raise NotFound("Therapist not found", code=THERAPIST_NOT_FOUND)
    return therapist


def session_of_therapist(session: TrainingSession, therapist: User | None) -> None:
    """A request naming both a session and a therapist: the session must be that therapist's (400 naming
    `therapistId`); no therapist named, nothing to check."""
    if therapist is not None and session.therapist_id != therapist.pk:
        raise Invalid(
            "therapistId is not this session's therapist", details={"therapistId": "is not this session's therapist"}
        )


def evaluator_resolve(access: Access, evaluator_id: str | None) -> User:
    """The evaluator an `evaluatorId` names: absent or the caller's own id -> the caller; anyone else's is 403
    `FORBIDDEN` (an evaluation is always the caller's own)."""
    if evaluator_id is not None and evaluator_id != access.user.public_id:
        raise PermissionDenied("evaluatorId must be your own id", code=FORBIDDEN)
    return access.user


def sessions_page(
    access: Access,
    *,
    therapist: User | None,
    status: str | None,
    since: datetime | None,
    page: PageRequest,
) -> Page:
    """A page of readable sessions, newest start first, therapist joined: one COUNT and one SELECT.
    `therapist` None: all readable sessions (a therapist's own; a reviewer's whole organization)."""
    if status is not None and status not in TrainingSession.Status.values:
        choices = ", ".join(TrainingSession.Status.values)
        raise Invalid(f"status must be one of {choices}", details={"status": f"must be one of {choices}"})
    sessions = sessions_readable(access)
    if therapist is not None:
        sessions = sessions.filter(therapist=therapist)
    if status is not None:
        sessions = sessions.filter(status=status)
    if since is not None:
        sessions = sessions.filter(start_time__gte=since)
    return paginate(sessions.select_related("therapist").order_by("-start_time", "-id"), page)


@dataclass(frozen=True)
class SessionDetail:
    """GET /api/session/{id}: the session and its records. `analytics` is the posted analytics
    (sessions_analytics.aggregates.analytics_read), None when none were posted."""

    session: TrainingSession
    metrics: ProgressMetrics | None
    skill_scores: list[SessionSkillScore]
    milestones: list[Milestone]
    snapshots: list[ProgressSnapshot]
    analytics: Any | None


def _skill_scores() -> Prefetch:
    return Prefetch("skill_scores", queryset=SessionSkillScore.objects.select_related("skill").order_by("skill__name"))


def _milestones() -> Prefetch:
    return Prefetch("milestones", queryset=Milestone.objects.order_by("achieved_at", "id"))


def _snapshots() -> Prefetch:
    return Prefetch("snapshots", queryset=ProgressSnapshot.objects.order_by("timestamp"))


def _metrics_of(session: TrainingSession) -> ProgressMetrics | None:
    try:
        return session.progress_metrics
    except ProgressMetrics.DoesNotExist:
        return None


def session_detail(access: Access, session_id: str | None, *, now: datetime | None = None) -> SessionDetail:
    """One session with its metrics (joined), skill scores, milestones and snapshots (one prefetch each),
    plus its posted analytics when there are some: a constant number of queries."""
    sessions = (
        sessions_readable(access)
        .select_related("therapist", "organization", "progress_metrics")
        .prefetch_related(_skill_scores(), _milestones(), _snapshots())
    )
    session = _session_or_404(sessions, session_id)
    analytics = None
    if session.analytics_posted_at is not None:
        # Imported here: aggregates reads through this module (sessions_readable).
        from sessions_analytics.aggregates import analytics_read

        analytics = analytics_read(session, since=None, now=now or utc_now())
    return SessionDetail(
        session=session,
        metrics=_metrics_of(session),
        skill_scores=list(session.skill_scores.all()),
        milestones=list(session.milestones.all()),
        snapshots=list(session.snapshots.all()),
        analytics=analytics,
    )


@dataclass(frozen=True)
class ProgressRead:
    """GET /api/session/progress: the current metrics (None before the first post), the session's skill
    scores (skill joined, by name), its milestones (by achievement) and, when asked for, the progress feedback
    (author joined, oldest first; None when not asked for)."""

    session: TrainingSession
    metrics: ProgressMetrics | None
    skill_scores: list[SessionSkillScore]
    milestones: list[Milestone]
    feedback: list[ProgressFeedback] | None


def progress_read(session: TrainingSession, *, include_feedback: bool) -> ProgressRead:
    metrics = ProgressMetrics.objects.filter(session=session).first()
    feedback = None
    if include_feedback:
        feedback = list(
            ProgressFeedback.objects.filter(session=session).select_related("author").order_by("created_at", "id")
        )
    return ProgressRead(
        session=session,
        metrics=metrics,
        skill_scores=list(
            SessionSkillScore.objects.filter(session=session).select_related("skill").order_by("skill__name")
        ),
        milestones=list(Milestone.objects.filter(session=session).order_by("achieved_at", "id")),
        feedback=feedback,
    )


@dataclass(frozen=True)
class SnapshotsRead:
    session: TrainingSession
    snapshots: list[ProgressSnapshot]
    milestones: list[Milestone]


def snapshots_read(session: TrainingSession) -> SnapshotsRead:
    """The session's snapshots by timestamp and its milestones by achievement: two queries."""
    return SnapshotsRead(
        session=session,
        snapshots=list(ProgressSnapshot.objects.filter(session=session).order_by("timestamp")),
        milestones=list(Milestone.objects.filter(session=session).order_by("achieved_at", "id")),
    )


def evaluations_read(session: TrainingSession) -> list[Evaluation]:
    """The session's evaluations, oldest first, evaluator joined (the session's therapist and reviewers read
    them: whoever could resolve the session)."""
    return list(Evaluation.objects.filter(session=session).select_related("evaluator").order_by("created_at", "id"))


def time_range_since(value: str | None, now: datetime) -> datetime | None:
    """The start of a `timeRange` (7d, 30d, 90d, 1y = 365 days) before `now`, inclusive; None (absent) is all
    time; anything else, the empty string included, is 400 `INVALID_TIME_RANGE`."""
    if value is None:
        return None
    days = TIME_RANGES.get(value) if isinstance(value, str) else None
    if days is None:
        raise Invalid(
            f"timeRange must be one of {TIME_RANGE_CHOICES}",
            code=INVALID_TIME_RANGE,
            details={"timeRange": f"must be one of {TIME_RANGE_CHOICES}"},
        )
    return now - timedelta(days=days)
