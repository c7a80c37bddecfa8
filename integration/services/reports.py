"""Session-prep reports and couple analysis (matchups, couple profile), computed deterministically.

`session_prep_report_generate` summarizes a client's data since the last session and persists the
report; `couple_analysis_refresh` recomputes a couple's matchup and profile from both partners' latest
assessments, writing only when the inputs changed. Rules: docs/loverescue.md ("Session prep reports",
"Couple analysis"); the pure computations live in integration.analytics. Neither ever reads journal
text or any other free text a client wrote.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q

from audit.services import audit_event_record
from core.actors import Actor
from core.domain import Invalid
from core.rounding import ratio, round_half_up
from core.time import utc_now
from integration import analytics
from integration.models import (
    ActivityEntry,
    Alert,
    AlertType,
    Assessment,
    CheckIn,
    Client,
    Couple,
    CoupleProfile,
    Matchup,
    RatioEntry,
    SessionPrepReport,
    Therapist,
)

DEFAULT_WINDOW = timedelta(days=7)

EXPERTS = {
    "ratio": "Gottman",
    "conflict_resolution": "Gottman",
    "attachment": "Attachment",
    "communication": "Communication",
    "relationship_satisfaction": "Relationship satisfaction",
    "love_language": "Chapman",
}
_SCORED_LABELS = {
    "relationship_satisfaction": "Relationship satisfaction",
    "communication": "Communication",
    "conflict_resolution": "Conflict resolution",
}


class ReportInvalid(Invalid):
    """Bad input (e.g. a last session date in the future); the message is for the API caller."""

    def __init__(self, message: str):
        super().__init__(message, code="BAD_REQUEST")


# --- Session prep ----------------------------------------------------------------------------------------


def report_window(
    *, therapist: Therapist, client: Client, last_session_date: datetime | None, now: datetime
) -> datetime:
    """The window's start: `last_session_date`, else the report_date of this therapist's previous report
    on this client (before `now`), else now - 7 days. The window is (start, now]."""
    if last_session_date is not None:
        if last_session_date > now:
            raise ReportInvalid("lastSessionDate must not be in the future")
        return last_session_date
    previous = (
        SessionPrepReport.objects.filter(therapist=therapist, client=client, report_date__lt=now)
        .order_by("-report_date")
        .values_list("report_date", flat=True)
        .first()
    )
    return previous or now - DEFAULT_WINDOW


def window_days(start: datetime, now: datetime) -> tuple[date, date]:
    """The calendar days (UTC) a report covers: the days after the start's date up to now's date; when
    both fall on one date, that date alone."""
    first = start.date() + timedelta(days=1)
    return min(first, now.date()), now.date()


def _fmt(value: float | None) -> str:
    return f"{round_half_up(value, 1):.1f}"


def _gottman_insight(client: Client, first: date, last: date) -> dict | None:
    """Positive:negative ratio in the window vs the equally long period just before it."""
    length = (last - first).days + 1
    before_first = first - timedelta(days=length)
    rows = list(
        RatioEntry.objects.filter(client=client, date__gte=before_first, date__lte=last).values_list(
            "date", "positive", "negative"
        )
    )
    during = analytics.ratio([(p, n) for d, p, n in rows if d >= first])
    if during is None:
        return None
    before = analytics.ratio([(p, n) for d, p, n in rows if d < first])
    if before is None:
        insight = f"5:1 ratio averaged {_fmt(during)} since last session (target 5.0)"
    else:
        delta = round_half_up(during, 1) - round_half_up(before, 1)
        if abs(delta) < 0.05:
            insight = f"5:1 ratio unchanged at {_fmt(during)} (target 5.0)"
        else:
            verb = "improved" if delta > 0 else "declined"
            insight = f"5:1 ratio {verb} from {_fmt(before)} to {_fmt(during)} (target 5.0)"
    return {"expert": EXPERTS["ratio"], "insight": insight}


def _assessment_insight(type_name: str, before: dict, after: dict) -> dict | None:
    if type_name == "attachment":
        if before["style"] != after["style"]:
            insight = f"Attachment style shifted from {before['style']} to {after['style']}"
        else:
            insight = (
                f"Attachment anxiety {_fmt(before['anxiety'])} → {_fmt(after['anxiety'])}, avoidance "
                f"{_fmt(before['avoidance'])} → {_fmt(after['avoidance'])} (style remains {after['style']})"
            )
    elif type_name == "love_language":
        if before["primary"] == after["primary"]:
            return None
        names = analytics.LOVE_LANGUAGE_NAMES
        insight = f"Primary love language changed from {names[before['primary']]} to {names[after['primary']]}"
    elif type_name in _SCORED_LABELS:
        label = _SCORED_LABELS[type_name]
        b, a = before["score"], after["score"]
        if a == b:
            insight = f"{label} score unchanged at {b:g}"
        else:
            insight = f"{label} score {'improved' if a > b else 'declined'} from {b:g} to {a:g}"
    else:
        return None
    return {"expert": EXPERTS.get(type_name, type_name), "insight": insight}


def _summary(*, active_days: int, total_days: int, average: float | None, trend: str | None, crises: int) -> str:
    parts = [f"Since last session, client completed {active_days}/{total_days} daily activities"]
    if average is None:
        parts.append("no mood check-ins")
    elif trend is None:
        parts.append(f"average mood {average:.1f}")
    else:
        parts.append(f"average mood {average:.1f} ({trend})")
    if crises == 0:
        parts.append("no crisis flags")
    else:
        parts.append(f"{crises} crisis flag{'s' if crises != 1 else ''}")
    return ", ".join(parts) + "."


def session_prep_content(*, client: Client, start: datetime, now: datetime) -> dict:
    """The report body for the window (start, now] (datetimes) / window_days (dates)."""
    first, last = window_days(start, now)
    total_days = (last - first).days + 1

    activities = list(
        ActivityEntry.objects.filter(client=client, date__gte=first, date__lte=last)
        .order_by("date", "pk")
        .values_list("date", "activity")
    )
    activities_completed = [{"date": d.isoformat(), "activity": a} for d, a in activities]
    active_days = len({d for d, _ in activities})

    in_window = list(
        Assessment.objects.filter(client=client, completed_at__gt=start, completed_at__lte=now).order_by(
            "completed_at", "pk"
        )
    )
    assessment_changes: dict = {}
    insights: list[dict] = []
    for type_name in sorted({a.type for a in in_window}):
        after = [a for a in in_window if a.type == type_name][-1]
        before = (
            Assessment.objects.filter(client=client, type=type_name, completed_at__lte=start)
            .order_by("-completed_at", "-pk")
            .first()
        )
        assessment_changes[type_name] = {"before": before.score if before else None, "after": after.score}
        if before is not None:
            insight = _assessment_insight(type_name, before.score, after.score)
            if insight:
                insights.append(insight)

    moods = list(CheckIn.objects.filter(client=client, date__gte=first, date__lte=last).values_list("date", "mood"))
    average = ratio(sum(m for _, m in moods), len(moods)) if moods else None
    mood_trend = analytics.mood_trend(moods)

    crisis_alerts = Alert.objects.filter(
        client=client, alert_type=AlertType.CRISIS, created_at__gt=start, created_at__lte=now
    ).order_by("created_at", "id")
    crisis_flags = [
        {
            "date": alert.created_at.date().isoformat(),
            "alertId": str(alert.id),
            "source": alert.metadata.get("source", "self_report"),
        }
        for alert in crisis_alerts
    ]

    gottman = _gottman_insight(client, first, last)
    if gottman:
        insights.insert(0, gottman)

    return {
        "activitiesCompleted": activities_completed,
        "assessmentChanges": assessment_changes,
        "moodTrends": {"average": average, "trend": mood_trend},
        "crisisFlags": crisis_flags,
        "generatedSummary": _summary(
            active_days=active_days,
            total_days=total_days,
            average=average,
            trend=mood_trend,
            crises=len(crisis_flags),
        ),
        "expertInsights": insights,
    }


@transaction.atomic
def session_prep_report_generate(
    *,
    therapist: Therapist,
    client: Client,
    last_session_date: datetime | None,
    now: datetime | None = None,
    actor: Actor,
) -> SessionPrepReport:
    """Generate and persist a session-prep report (the caller checks consent and level: STANDARD+).
    `last_session_date` must not be after `now` (ReportInvalid). The stored `last_session_date` is the
    window start actually used."""
    now = now or utc_now()
    start = report_window(therapist=therapist, client=client, last_session_date=last_session_date, now=now)
    report = SessionPrepReport.objects.create(
        therapist=therapist,
        client=client,
        report_date=now,
        last_session_date=start,
        content=session_prep_content(client=client, start=start, now=now),
    )
    audit_event_record(
        action="integration.session_prep_generated",
        actor=actor,
        subject_type="client",
        subject_id=str(client.pk),
        metadata={"report_id": str(report.id), "therapist_id": str(therapist.pk)},
    )
    return report


# --- Couple analysis -------------------------------------------------------------------------------------


def latest_scores(client_id) -> dict[str, dict]:
    """{type: score} of the client's latest assessment of each type (by completed_at, then id)."""
    scores: dict[str, dict] = {}
    for type_name, score in (
        Assessment.objects.filter(client_id=client_id).order_by("completed_at", "pk").values_list("type", "score")
    ):
        scores[type_name] = score
    return scores


def inputs_fingerprint(scores1: dict, scores2: dict) -> str:
    canonical = json.dumps(
        {"rules": analytics.RULES_VERSION, "partner1": scores1, "partner2": scores2},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@transaction.atomic
def couple_analysis_refresh(
    *, couple: Couple, now: datetime | None = None
) -> tuple[Matchup | None, CoupleProfile | None]:
    """The couple's current matchup and profile, recomputed only when the inputs changed.

    Inputs: each partner's latest assessment of every type. (None, None) while a partner has no
    assessment. The profile is updated in place when its fingerprint differs. A Matchup row is added per
    distinct inputs (unique per couple and fingerprint); inputs seen before (A -> B -> A) reuse their
    row, its generated_at moved to now so it is the latest again. Matchup is None when the partners have
    no assessment type in common."""
    now = now or utc_now()
    scores1 = latest_scores(couple.partner1_id)
    scores2 = latest_scores(couple.partner2_id)
    if not scores1 or not scores2:
        return None, None
    fingerprint = inputs_fingerprint(scores1, scores2)

    profile = CoupleProfile.objects.select_for_update().filter(couple=couple).first()
    if profile is None:
        try:
            with transaction.atomic():
                profile = CoupleProfile.objects.create(
                    couple=couple,
                    content=analytics.couple_profile(scores1, scores2),
                    inputs_fingerprint=fingerprint,
                    generated_at=now,
                )
        except IntegrityError:  # created concurrently: lock and use it
            profile = CoupleProfile.objects.select_for_update().get(couple=couple)
    if profile.inputs_fingerprint != fingerprint:
        profile.content = analytics.couple_profile(scores1, scores2)
        profile.inputs_fingerprint = fingerprint
        profile.generated_at = now
        profile.save(update_fields=["content", "inputs_fingerprint", "generated_at"])

    result = analytics.matchup(scores1, scores2)
    if result is None:
        return None, profile
    score, alignments = result
    matchup = Matchup.objects.filter(couple=couple, inputs_fingerprint=fingerprint).first()
    if matchup is None:
        try:
            with transaction.atomic():
                matchup = Matchup.objects.create(
                    couple=couple,
                    score=score,
                    alignments=alignments,
                    inputs_fingerprint=fingerprint,
                    generated_at=now,
                )
        except IntegrityError:
            matchup = Matchup.objects.get(couple=couple, inputs_fingerprint=fingerprint)
    else:
        newer = Matchup.objects.filter(couple=couple).filter(
            Q(generated_at__gt=matchup.generated_at) & ~Q(pk=matchup.pk)
        )
        if newer.exists():
            matchup.generated_at = now
            matchup.save(update_fields=["generated_at"])
    return matchup, profile
