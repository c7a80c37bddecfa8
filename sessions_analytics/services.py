"""Therapist dashboard writes (docs/therapist-dashboard.md). Each runs in one transaction with its audit
event, whose metadata holds ids and counts only, never the free text (feedback, comments).

Services receive what the selectors resolved (sessions the caller may read, users) and already validated
plain data; they enforce the rules that are about the action itself: session status transitions, the
snapshot cap, the comparison rules, and that only a reviewer evaluates (never their own session).

Writes to one session's records lock the session row first, so concurrent posts for a session run one after
the other (two PATCHes cannot both pass the transition check; two progress posts cannot both add a milestone).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction

from accounts.models import Membership
from core.actors import Actor
from core.auditing import audit_event
from core.domain import Conflict, Invalid, PermissionDenied
from core.time import utc_now
from sessions_analytics.analytics import skill_category, skill_slug
from sessions_analytics.models import (
    AnalyticsGeneration,
    AnalyticsSessionMetric,
    AnalyticsSkillProgress,
    AnalyticsSummaryStat,
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
from sessions_analytics.selectors import DASHBOARD_ROLES, FORBIDDEN, REVIEWER_ROLES, Access

# Stored snapshots per session; a post that would go beyond is refused whole (400 SNAPSHOT_LIMIT).
MAX_SNAPSHOTS_PER_SESSION = 10_000
SKILL_NAME_MAX = 100

Status = TrainingSession.Status
ENDED = frozenset({Status.COMPLETED, Status.CANCELLED})
# status -> the statuses a PATCH may move it to (staying put is always allowed: a no-op).
TRANSITIONS = {
    Status.ACTIVE: frozenset({Status.PAUSED, Status.COMPLETED, Status.CANCELLED}),
    Status.PAUSED: frozenset({Status.ACTIVE, Status.COMPLETED, Status.CANCELLED}),
    Status.COMPLETED: frozenset(),
    Status.CANCELLED: frozenset(),
}


def _audit(action: str, *, actor: Actor, session: TrainingSession, **metadata) -> None:
    audit_event(
        action=action,
        actor=actor,
        organization_id=session.organization.public_id,
        subject_type="training_session",
        subject_id=session.public_id,
        metadata=metadata,
    )


def analytics_changed(*, organization_id: int, therapist_id: int, now: datetime | None = None) -> None:
    """A new derived-analytics generation for the therapist in the organization (created on first use), so no
    body cached under the old one is served once the caller's transaction commits. Every write below that can
    change derived analytics calls it in its own transaction; anything else that writes those rows (a bulk
    load) must call it too."""
    AnalyticsGeneration.objects.bulk_create(
        [
            AnalyticsGeneration(
                organization_id=organization_id,
                therapist_id=therapist_id,
                token=secrets.token_hex(16),
                changed_at=now or utc_now(),
            )
        ],
        update_conflicts=True,
        unique_fields=["organization", "therapist"],
        update_fields=["token", "changed_at"],
    )


def _session_changed(session: TrainingSession) -> None:
    analytics_changed(organization_id=session.organization_id, therapist_id=session.therapist_id)


def _locked(session: TrainingSession) -> TrainingSession:
    """The session row again, locked until the transaction ends, organization and therapist joined."""
    return (
        TrainingSession.objects.select_for_update(of=("self",))
        .select_related("organization", "therapist")
        .get(pk=session.pk)
    )


# --- Skills --------------------------------------------------------------------------------------------


def _slug_or_invalid(name: str, field: str) -> str:
    slug = skill_slug(name) if isinstance(name, str) else ""
    if not slug:
        raise Invalid(
            "A skill name must contain a letter or a digit", details={field: "must contain a letter or a digit"}
        )
    return slug


def skill_for(organization, name: str, category: str | None = None) -> Skill:
    """The organization's skill for a name ("Active Listening" and "active listening" are one skill), created
    on first use with this display name and `category` (default: analytics.skill_category of its id).
    A name with no letter or digit is Invalid."""
    slug = _slug_or_invalid(name, "skill")
    skill, _ = Skill.objects.get_or_create(
        organization=organization,
        skill_id=slug,
        defaults={"name": name.strip()[:SKILL_NAME_MAX], "category": category or skill_category(slug)},
    )
    return skill


def _skills_for(organization, names: dict[str, str | None], field: str) -> dict[str, Skill]:
    """{name: Skill} for many names at once (`names`: name -> category for a skill created now, None for the
    default): one query for the known skills, one insert and one re-read for the new ones."""
    slugs = {name: _slug_or_invalid(name, field) for name in names}
    found = {
        skill.skill_id: skill
        for skill in Skill.objects.filter(organization=organization, skill_id__in=set(slugs.values()))
    }
    missing: dict[str, Skill] = {}
    for name, slug in slugs.items():
        if slug not in found and slug not in missing:
            missing[slug] = Skill(
                organization=organization,
                skill_id=slug,
                name=name.strip()[:SKILL_NAME_MAX],
                category=names[name] or skill_category(slug),
            )
    if missing:
        # ignore_conflicts: a concurrent post may create the same skill; its row wins and is read back.
        Skill.objects.bulk_create(missing.values(), ignore_conflicts=True)
        found.update(
            (skill.skill_id, skill) for skill in Skill.objects.filter(organization=organization, skill_id__in=missing)
        )
    return {name: found[slug] for name, slug in slugs.items()}


def _scores_upsert(session: TrainingSession, scores: dict[str, float], now: datetime, field: str) -> int:
    """Set the session's score of each skill (created_at kept for a skill scored before, recorded_at = now).
    Two names of one skill in a post: the later one's score counts. Returns how many skills were scored."""
    if not scores:
        return 0
    skills = _skills_for(session.organization, dict.fromkeys(scores), field)
    by_skill: dict[int, float] = {}
    for name, score in scores.items():
        by_skill[skills[name].pk] = float(score)
    existing = {row.skill_id: row for row in SessionSkillScore.objects.filter(session=session, skill_id__in=by_skill)}
    changed = []
    for skill_id, score in by_skill.items():
        row = existing.get(skill_id)
        if row is not None:
            row.score, row.recorded_at = score, now
            changed.append(row)
    if changed:
        SessionSkillScore.objects.bulk_update(changed, ["score", "recorded_at"])
    SessionSkillScore.objects.bulk_create(
        SessionSkillScore(
            session=session,
            skill_id=skill_id,
            # The session's, copied for the skill reads' index (neither changes after the session's creation).
            therapist_id=session.therapist_id,
            session_start=session.start_time,
            score=score,
            created_at=now,
            recorded_at=now,
        )
        for skill_id, score in by_skill.items()
        if skill_id not in existing
    )
    return len(by_skill)


# --- Sessions ------------------------------------------------------------------------------------------


@transaction.atomic
def session_create(
    *,
    access: Access,
    client_label: str,
    actor: Actor,
    start_time: datetime | None = None,
    now: datetime | None = None,
) -> TrainingSession:
    """A new active session of the caller (the therapist is always the caller, whatever their dashboard
    role), starting at `start_time` (default now)."""
    if access.role not in DASHBOARD_ROLES:
        raise PermissionDenied(f"The {access.role} role may not do this", code=FORBIDDEN)
    session = TrainingSession.objects.create(
        organization=access.organization,
        therapist=access.user,
        client_label=client_label,
        start_time=start_time or now or utc_now(),
        status=Status.ACTIVE,
    )
    _session_changed(session)
    _audit("training_session.created", actor=actor, session=session, therapistId=access.user.public_id)
    return session


@transaction.atomic
def session_update(
    *,
    session: TrainingSession,
    actor: Actor,
    status: str | None = None,
    end_time: datetime | None = None,
    progress: float | None = None,
    now: datetime | None = None,
) -> TrainingSession:
    """PATCH a session (None leaves a field as it is). Status moves per TRANSITIONS; the same status is a
    no-op; leaving completed/cancelled is 409 `INVALID_TRANSITION` {"from", "to"}. Completing or cancelling
    without an end time (given or stored) ends the session now (never before its start). An end time before
    the start is 400. Returns the updated session; the audit event names the fields that changed."""
    session = _locked(session)
    changed: list[str] = []
    if status is not None and status != session.status:
        if status not in TRANSITIONS.get(session.status, ()):
            raise Conflict(
                f"A {session.status} session cannot become {status}",
                code="INVALID_TRANSITION",
                details={"from": session.status, "to": status},
            )
        previous_status, session.status = session.status, status
        changed.append("status")
        if status in ENDED and end_time is None and session.end_time is None:
            end_time = max(now or utc_now(), session.start_time)
    else:
        previous_status = session.status
    if end_time is not None and end_time != session.end_time:
        if end_time < session.start_time:
            raise Invalid(
                "endTime is before the session's startTime", details={"endTime": "must not be before startTime"}
            )
        session.end_time = end_time
        changed.append("endTime")
    if progress is not None and float(progress) != session.progress:
        session.progress = float(progress)
        changed.append("progress")
    if changed:
        fields = {"status": "status", "endTime": "end_time", "progress": "progress"}
        session.save(update_fields=[fields[name] for name in changed] + ["updated_at"])
        _session_changed(session)
        _audit(
            "training_session.updated",
            actor=actor,
            session=session,
            fields=changed,
            **({"from": previous_status, "to": session.status} if "status" in changed else {}),
        )
    return session


# --- Progress, snapshots, skills -----------------------------------------------------------------------

_METRICS_FIELDS = (
    "total_messages",
    "therapist_messages",
    "client_messages",
    "session_duration",
    "active_time",
    "response_time",
    "conversation_flow",
)


@transaction.atomic
def progress_record(
    *,
    session: TrainingSession,
    author,
    metrics: dict,
    feedback: str | None,
    actor: Actor,
    now: datetime | None = None,
) -> None:
    """A progress post: replaces the session's ProgressMetrics, upserts its skill scores, records milestones
    reached for the first time and appends the feedback.

    `metrics` (validated, snake_case): total_messages, therapist_messages, client_messages, session_duration,
    active_time (ints), response_time, conversation_flow (floats), and optionally skill_scores
    ({skill name: score}), milestones_reached ([milestone name]), last_milestone_time (datetime | None).

    A milestone name not yet reached in the session becomes a Milestone achieved now, whose value is the
    session's latest snapshot value by timestamp (None without snapshots) and whose metadata is
    {"totalMessages", "sessionDuration"} of this post; names reached before keep their first achievement.
    `feedback` (non-blank) is appended as ProgressFeedback by `author`, encrypted at rest.
    """
    now = now or utc_now()
    session = _locked(session)
    values = {field: metrics[field] for field in _METRICS_FIELDS}
    ProgressMetrics.objects.update_or_create(
        session=session,
        defaults={**values, "last_milestone_time": metrics.get("last_milestone_time"), "updated_at": now},
    )
    skills = _scores_upsert(session, metrics.get("skill_scores") or {}, now, "progressMetrics.skillScores")
    names = list(dict.fromkeys(metrics.get("milestones_reached") or []))
    added = 0
    if names:
        reached = set(Milestone.objects.filter(session=session, name__in=names).values_list("name", flat=True))
        new = [name for name in names if name not in reached]
        if new:
            value = (
                ProgressSnapshot.objects.filter(session=session)
                .order_by("-timestamp")
                .values_list("value", flat=True)
                .first()
            )
            details = {"totalMessages": values["total_messages"], "sessionDuration": values["session_duration"]}
            Milestone.objects.bulk_create(
                Milestone(session=session, name=name, value=value, achieved_at=now, metadata=details) for name in new
            )
            added = len(new)
    has_feedback = isinstance(feedback, str) and bool(feedback.strip())
    if has_feedback:
        ProgressFeedback.objects.create(session=session, author=author, feedback=feedback, created_at=now)
    _session_changed(session)
    _audit(
        "training_session.progress_recorded",
        actor=actor,
        session=session,
        skills=skills,
        milestonesPosted=len(names),
        milestonesAdded=added,
        feedbackAdded=has_feedback,
    )


def _snapshots_store(session: TrainingSession, snapshots: Iterable[tuple[datetime, float]]) -> tuple[int, int]:
    """Insert the snapshots whose timestamp the session does not have yet (first write wins); returns
    (posted, stored). Refuses the whole post when the session would hold more than MAX_SNAPSHOTS_PER_SESSION.
    The caller holds the session's lock."""
    posted = list(snapshots)
    by_timestamp: dict[datetime, float] = {}
    for timestamp, value in posted:
        by_timestamp.setdefault(timestamp, float(value))  # a repeated timestamp: its first value, as stored
    if not by_timestamp:
        return len(posted), 0
    stored_before = ProgressSnapshot.objects.filter(session=session).count()
    known = set(
        ProgressSnapshot.objects.filter(session=session, timestamp__in=list(by_timestamp)).values_list(
            "timestamp", flat=True
        )
    )
    new = [timestamp for timestamp in by_timestamp if timestamp not in known]
    if stored_before + len(new) > MAX_SNAPSHOTS_PER_SESSION:
        raise Invalid(
            f"A session holds at most {MAX_SNAPSHOTS_PER_SESSION} snapshots",
            code="SNAPSHOT_LIMIT",
            details={"snapshots": f"the session would hold more than {MAX_SNAPSHOTS_PER_SESSION}"},
        )
    ProgressSnapshot.objects.bulk_create(
        (ProgressSnapshot(session=session, timestamp=t, value=by_timestamp[t]) for t in new), ignore_conflicts=True
    )
    stored = ProgressSnapshot.objects.filter(session=session).count() - stored_before
    return len(posted), stored


@transaction.atomic
def snapshots_record(*, session: TrainingSession, snapshots: list[tuple[datetime, float]], actor: Actor) -> int:
    """Store (timestamp, value) snapshots idempotently: a timestamp the session already has is skipped, so
    posting the same snapshots twice stores them once. Returns how many were new."""
    session = _locked(session)
    posted, stored = _snapshots_store(session, snapshots)
    if stored:
        _session_changed(session)
    _audit("training_session.snapshots_recorded", actor=actor, session=session, posted=posted, stored=stored)
    return stored


@transaction.atomic
def skill_scores_record(
    *, session: TrainingSession, scores: dict[str, float], actor: Actor, now: datetime | None = None
) -> None:
    """Upsert the session's score of each named skill (skills created on first use)."""
    session = _locked(session)
    skills = _scores_upsert(session, scores, now or utc_now(), "skillScores")
    _session_changed(session)
    _audit("training_session.skills_recorded", actor=actor, session=session, skills=skills)


# --- Posted analytics ----------------------------------------------------------------------------------


@transaction.atomic
def analytics_record(*, session: TrainingSession, data: dict, actor: Actor, now: datetime | None = None) -> None:
    """Replace the session's posted analytics (the three tables, deleted and inserted in this transaction),
    store its snapshots like snapshots_record (idempotent, capped) and mark the session as posted.

    `data` (validated, snake_case; entry sessionId/therapistId/skillId were checked by the API, not stored):
    - session_metrics: [{"date": date, "sessions": int, "therapist_sessions": int,
      "average_session_progress": float, "milestones_achieved": int, "average_response_time": float}]
    - skill_progress: [{"skill": name, "category": str | None, "score": float, "trend": "up"|"down"|"stable",
      "sessions_practiced": int, "average_improvement": float}] — the name is normalised to the
      organization's Skill; `category` only applies to a skill created by this post
    - summary_stats: [{"label": str, "value": float, "color": str (optional), "trend": None or
      {"value": float, "direction": "up"|"down"|"stable", "period": str}}]
    - progress_snapshots (optional): [(timestamp, value)] or [{"timestamp", "value"}]
    Entries keep their posted order (`position`).
    """
    now = now or utc_now()
    session = _locked(session)
    metrics = data.get("session_metrics") or []
    progress = data.get("skill_progress") or []
    stats = data.get("summary_stats") or []
    AnalyticsSessionMetric.objects.filter(session=session).delete()
    AnalyticsSkillProgress.objects.filter(session=session).delete()
    AnalyticsSummaryStat.objects.filter(session=session).delete()
    AnalyticsSessionMetric.objects.bulk_create(
        AnalyticsSessionMetric(
            session=session,
            position=position,
            date=entry["date"],
            sessions=entry["sessions"],
            therapist_sessions=entry["therapist_sessions"],
            average_session_progress=entry["average_session_progress"],
            milestones_achieved=entry["milestones_achieved"],
            average_response_time=entry["average_response_time"],
        )
        for position, entry in enumerate(metrics)
    )
    skills = {}
    if progress:
        categories: dict[str, str | None] = {}
        for entry in progress:
            categories.setdefault(entry["skill"], entry.get("category"))
        skills = _skills_for(session.organization, categories, "analyticsData.skillProgress")
    AnalyticsSkillProgress.objects.bulk_create(
        AnalyticsSkillProgress(
            session=session,
            position=position,
            skill=skills[entry["skill"]],
            score=entry["score"],
            trend=entry["trend"],
            category=entry.get("category") or "",
            sessions_practiced=entry["sessions_practiced"],
            average_improvement=entry["average_improvement"],
        )
        for position, entry in enumerate(progress)
    )
    AnalyticsSummaryStat.objects.bulk_create(
        _summary_stat(session, position, entry) for position, entry in enumerate(stats)
    )
    snapshots = [_snapshot_pair(item) for item in data.get("progress_snapshots") or []]
    posted, stored = _snapshots_store(session, snapshots)
    session.analytics_posted_at = now
    session.save(update_fields=["analytics_posted_at", "updated_at"])
    _session_changed(session)
    _audit(
        "training_session.analytics_recorded",
        actor=actor,
        session=session,
        sessionMetrics=len(metrics),
        skillProgress=len(progress),
        summaryStats=len(stats),
        snapshotsPosted=posted,
        snapshotsStored=stored,
    )


def _summary_stat(session: TrainingSession, position: int, entry: dict) -> AnalyticsSummaryStat:
    trend = entry.get("trend") or None
    return AnalyticsSummaryStat(
        session=session,
        position=position,
        label=entry["label"],
        value=entry["value"],
        trend_value=trend["value"] if trend else None,
        trend_direction=trend["direction"] if trend else "",
        trend_period=trend["period"] if trend else "",
        color=entry.get("color") or "",
    )


def _snapshot_pair(item) -> tuple[datetime, float]:
    if isinstance(item, dict):
        return item["timestamp"], item["value"]
    timestamp, value = item
    return timestamp, value


# --- Comparisons and evaluations -----------------------------------------------------------------------


@transaction.atomic
def comparison_create(
    *,
    access: Access,
    therapist,
    current: TrainingSession,
    previous: TrainingSession,
    improvement_score: float,
    metrics: dict,
    actor: Actor,
    now: datetime | None = None,
) -> SessionComparison:
    """Store a comparison of two sessions the caller may read (the selectors resolved them).

    Rules (400, details naming the field): both sessions are `therapist`'s (None: the current session's
    therapist; a therapistId that is not the current session's therapist names `therapistId`), the two
    differ, and the previous one started before the current one (these name `previousSessionId`).
    `metrics` (snake_case): progress_improvement, skill_score_improvement, response_time_improvement."""
    if therapist is not None and current.therapist_id != therapist.pk:
        raise Invalid(
            "therapistId is not this session's therapist", details={"therapistId": "is not this session's therapist"}
        )
    if previous.pk == current.pk:
        raise Invalid(
            "The previous session must differ from the current one",
            details={"previousSessionId": "must differ from currentSessionId"},
        )
    if previous.therapist_id != current.therapist_id:
        raise Invalid(
            "The two sessions must be the same therapist's",
            details={"previousSessionId": "is not the same therapist's session"},
        )
    if previous.start_time >= current.start_time:
        raise Invalid(
            "The previous session must have started before the current one",
            details={"previousSessionId": "must have started before the current session"},
        )
    comparison = SessionComparison.objects.create(
        organization=access.organization,
        therapist_id=current.therapist_id,
        current_session=current,
        previous_session=previous,
        improvement_score=improvement_score,
        progress_improvement=metrics["progress_improvement"],
        skill_score_improvement=metrics["skill_score_improvement"],
        response_time_improvement=metrics["response_time_improvement"],
        analyzed_at=now or utc_now(),
        created_by=access.user,
    )
    _audit(
        "session_comparison.created",
        actor=actor,
        session=current,
        comparisonId=comparison.public_id,
        previousSessionId=previous.public_id,
    )
    return comparison


def _role_in(organization, user) -> str | None:
    return Membership.objects.filter(organization=organization, user=user).values_list("role", flat=True).first()


@transaction.atomic
def evaluation_create(
    *,
    session: TrainingSession,
    evaluator,
    rating: int,
    feedback: str,
    comments: str | None,
    actor: Actor,
    access: Access | None = None,
    now: datetime | None = None,
) -> Evaluation:
    """A reviewer's evaluation of a session (feedback and comments encrypted at rest). Only a supervisor,
    owner or admin evaluates (403 otherwise), never their own session (403). The evaluator's role is the
    request's (`access`, which names the evaluator) when given, else their membership in the session's
    organization."""
    if access is not None and access.user.pk == evaluator.pk:
        role = access.role
    else:
        role = _role_in(session.organization, evaluator)
    if role not in REVIEWER_ROLES:
        raise PermissionDenied("Only a supervisor may evaluate a session", code=FORBIDDEN)
    if session.therapist_id == evaluator.pk:
        raise PermissionDenied("You may not evaluate your own session", code=FORBIDDEN)
    evaluation = Evaluation.objects.create(
        session=session,
        evaluator=evaluator,
        rating=rating,
        feedback=feedback,
        comments=comments or "",
        created_at=now or utc_now(),
    )
    _audit("evaluation.created", actor=actor, session=session, evaluationId=evaluation.public_id, rating=rating)
    return evaluation
