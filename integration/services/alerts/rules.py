"""The LoveRescue alert rules: which alerts exist (CRISIS, RISK mood episodes, STAGNATION, MILESTONE).

Hooks (`alerts_on_*`) run inside the caller's transaction (client_data's writes) and return the alerts
they created. `alerts_evaluate_daily` runs the time-based rule (STAGNATION) for every client. Rules,
thresholds and message texts are documented in docs/loverescue.md ("Alert rules").

One alert per episode: `Alert(client, rule, episode_key)` is unique. An alert is created with
check-then-insert inside a savepoint; a concurrent insert of the same episode loses on the unique
constraint (IntegrityError, rolled back to the savepoint) and the hook returns nothing for it. A created
alert is handed to fanout.alert_dispatch (recipients, webhooks, immediate notifications, audit).
Nothing here ever carries client free text: messages are generated, metadata holds numbers and codes.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, Max, OuterRef, Q

from core.rounding import round_half_up
from core.time import utc_now
from integration import analytics, catalogue
from integration.models import (
    CONSENTED,
    ActivityEntry,
    Alert,
    AlertType,
    Assessment,
    CheckIn,
    Client,
    JournalEntry,
    PermissionLevel,
    Severity,
    TherapistClientLink,
)
from integration.services.alerts.fanout import alert_dispatch

SEVERITY = {
    AlertType.CRISIS: Severity.CRITICAL,
    AlertType.RISK: Severity.HIGH,
    AlertType.STAGNATION: Severity.MEDIUM,
    AlertType.MILESTONE: Severity.LOW,
}
REQUIRED_LEVEL = {
    AlertType.CRISIS: PermissionLevel.STANDARD,
    AlertType.RISK: PermissionLevel.STANDARD,
    AlertType.STAGNATION: PermissionLevel.BASIC,
    AlertType.MILESTONE: PermissionLevel.BASIC,
}

RULE_CRISIS_CHECKIN = "crisis_checkin"
RULE_CRISIS_JOURNAL = "crisis_journal"
RULE_RISK_MOOD = "risk_mood"
RULE_STAGNATION = "stagnation"
RULE_MILESTONE_WEEK = "milestone_week"
RULE_MILESTONE_COURSE = "milestone_course"
RULE_MILESTONE_STREAK = "milestone_streak"
RULE_MILESTONE_BREAKTHROUGH = "milestone_breakthrough"

CRISIS_MESSAGE = "Crisis pathway triggered — safety plan activation recommended"
# Every CRISIS alert, from a check-in or a journal entry (hidden or not), carries the same metadata, so
# the alert does not say which kind of writing raised it.
CRISIS_METADATA = {"source": "self_report"}
# A journal entry's crisis alert is raised by the batch at least this long after the entry and dated by
# the batch (docs/loverescue.md, "CRISIS"): enough to decouple the two, short for a safety alert.
JOURNAL_CRISIS_DELAY = timedelta(seconds=60)
# Check-ins older than this (before the day evaluated) are not looked at by the RISK rule: a run can
# start at most 365 days back, with its 30-day baseline before that.
RISK_LOOKBACK_DAYS = 365 + analytics.BASELINE_DAYS


# --- Creating an alert -----------------------------------------------------------------------------------


def _episode_exists(*, client_id, rule: str, episode_key: str) -> bool:
    return Alert.objects.filter(client_id=client_id, rule=rule, episode_key=episode_key).exists()


def _create(
    *,
    client_id,
    alert_type: str,
    rule: str,
    episode_key: str,
    message: str,
    metadata: dict,
    now: datetime | None = None,
) -> Alert | None:
    """The episode's alert if this call created it, else None (it exists already, or a concurrent
    transaction just created it)."""
    if _episode_exists(client_id=client_id, rule=rule, episode_key=episode_key):
        return None
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                client_id=client_id,
                alert_type=alert_type,
                severity=SEVERITY[alert_type],
                rule=rule,
                episode_key=episode_key,
                required_level=REQUIRED_LEVEL[alert_type],
                message=message,
                metadata=metadata,
                created_at=now or utc_now(),
            )
    except IntegrityError:
        return None
    alert_dispatch(alert)
    return alert


def _resolve(queryset, now: datetime | None = None) -> int:
    return queryset.filter(resolved_at__isnull=True).update(resolved_at=now or utc_now())


# --- CRISIS ----------------------------------------------------------------------------------------------


def _crisis_checkin(checkin: CheckIn) -> Alert | None:
    if not checkin.crisis:
        return None
    return _create(
        client_id=checkin.client_id,
        alert_type=AlertType.CRISIS,
        rule=RULE_CRISIS_CHECKIN,
        episode_key=checkin.date.isoformat(),
        message=CRISIS_MESSAGE,
        metadata=dict(CRISIS_METADATA),
    )


def alerts_on_journal_crises(*, now: datetime | None = None, client_id=None) -> list[Alert]:
    """The journal crisis batch: one CRISIS alert per client for their crisis-flagged journal entries
    written at least JOURNAL_CRISIS_DELAY before `now` and not yet handled, hidden or not alike.

    The alert is dated `now` (the batch), not the entry; its episode key is the batch instant, never an
    entry id; its message and metadata are those of a crisis check-in. So a partner cannot date the entry
    from the alert, join the alert to a visible entry, or tell a hidden entry's alert from a check-in's
    (docs/loverescue.md, "CRISIS"). Each client's entries are locked (SKIP LOCKED) and marked handled in
    the alert's transaction: overlapping runs never alert twice, a failed run leaves them pending."""
    now = now or utc_now()
    pending = JournalEntry.objects.filter(
        crisis=True, crisis_handled_at__isnull=True, created_at__lte=now - JOURNAL_CRISIS_DELAY
    )
    if client_id is not None:
        pending = pending.filter(client_id=client_id)
    created = []
    for pending_client in sorted(set(pending.values_list("client_id", flat=True))):
        with transaction.atomic():
            entry_ids = list(
                pending.filter(client_id=pending_client)
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)
            )
            if not entry_ids:
                continue
            alert = _create(
                client_id=pending_client,
                alert_type=AlertType.CRISIS,
                rule=RULE_CRISIS_JOURNAL,
                episode_key=f"batch:{now.isoformat()}",
                message=CRISIS_MESSAGE,
                metadata=dict(CRISIS_METADATA),
                now=now,
            )
            JournalEntry.objects.filter(pk__in=entry_ids).update(crisis_handled_at=now)
        if alert is not None:
            created.append(alert)
    return created


# --- RISK --------------------------------------------------------------------------------------------------


def risk_message(days_below: int) -> str:
    return f"Mood has dropped 2+ SD below baseline for {days_below} consecutive days"


def _risk_mood(checkin: CheckIn) -> Alert | None:
    """Runs the low-mood rule around the posted check-in's date (analytics.mood_runs): a run of
    RISK_RUN_DAYS or more days containing that date makes one alert (episode key = the run's first day),
    unless an alert already exists for an episode starting inside the run. Open RISK alerts whose run
    has ended (a later check-in exists after it) or disappeared (replaced check-ins) are resolved."""
    rows = list(
        CheckIn.objects.filter(
            client_id=checkin.client_id, date__gte=checkin.date - timedelta(days=RISK_LOOKBACK_DAYS)
        ).values_list("date", "mood")
    )
    runs = analytics.mood_runs(rows)
    existing = {
        date.fromisoformat(key): alert_id
        for key, alert_id in Alert.objects.filter(client_id=checkin.client_id, rule=RULE_RISK_MOOD).values_list(
            "episode_key", "id"
        )
    }
    created = None
    run = next((r for r in runs if r.contains(checkin.date)), None)
    if run is not None and run.length >= analytics.RISK_RUN_DAYS:
        if not any(run.contains(start) for start in existing):
            created = _create(
                client_id=checkin.client_id,
                alert_type=AlertType.RISK,
                rule=RULE_RISK_MOOD,
                episode_key=run.start.isoformat(),
                message=risk_message(run.length),
                metadata={
                    "moodBaseline": round_half_up(run.baseline.mean),
                    "currentMood": run.latest_mood,
                    "daysBelow": run.length,
                },
            )

    last_day = max((d for d, _ in rows), default=None)
    ended = []
    for alert in Alert.objects.filter(client_id=checkin.client_id, rule=RULE_RISK_MOOD, resolved_at__isnull=True):
        start = date.fromisoformat(alert.episode_key)
        episode = next((r for r in runs if r.contains(start)), None)
        if episode is None or (last_day is not None and last_day > episode.end):
            ended.append(alert.pk)
    if ended:
        _resolve(Alert.objects.filter(pk__in=ended))
    return created


def alerts_on_checkin(*, checkin: CheckIn) -> list[Alert]:
    """CRISIS when the check-in carries the crisis flag (one per client and date); RISK per the low-mood
    rule, evaluated for the date posted."""
    return [alert for alert in (_crisis_checkin(checkin), _risk_mood(checkin)) if alert is not None]


# --- MILESTONE -----------------------------------------------------------------------------------------


def alerts_on_week_completed(*, client: Client, week_number: int) -> list[Alert]:
    """One milestone per course week (key "week:N"); completing the last week also makes the course
    milestone (key "course")."""
    created = [
        _create(
            client_id=client.pk,
            alert_type=AlertType.MILESTONE,
            rule=RULE_MILESTONE_WEEK,
            episode_key=f"week:{week_number}",
            message=f"Course week {week_number} completed",
            metadata={"milestone": "week_completed", "weekNumber": week_number},
        )
    ]
    if week_number >= catalogue.COURSE_LENGTH_WEEKS:
        created.append(
            _create(
                client_id=client.pk,
                alert_type=AlertType.MILESTONE,
                rule=RULE_MILESTONE_COURSE,
                episode_key="course",
                message=f"All {catalogue.COURSE_LENGTH_WEEKS} course weeks completed",
                metadata={"milestone": "course_completed", "weekNumber": week_number},
            )
        )
    return [alert for alert in created if alert is not None]


def _parse_streak_key(key: str) -> tuple[int, date] | None:
    try:
        _, length, start = key.split(":")
        return int(length), date.fromisoformat(start)
    except ValueError:
        return None


def _streaks(activity: ActivityEntry) -> list[Alert]:
    """Streak milestones: the run of consecutive activity days containing the activity's date reached
    7, 30 or 90 days. Key "streak:<len>:<first day>"; not repeated when an alert of that length exists
    for a streak starting inside the run (backfilled days that move the start earlier)."""
    days = set(ActivityEntry.objects.filter(client_id=activity.client_id).values_list("date", flat=True))
    span = analytics.streak_containing(days, activity.date)
    if span is None:
        return []
    first, last = span
    length = (last - first).days + 1
    existing = [
        parsed
        for parsed in map(
            _parse_streak_key,
            Alert.objects.filter(client_id=activity.client_id, rule=RULE_MILESTONE_STREAK).values_list(
                "episode_key", flat=True
            ),
        )
        if parsed is not None
    ]
    created = []
    for milestone in analytics.STREAK_MILESTONES:
        if length < milestone or any(n == milestone and first <= start <= last for n, start in existing):
            continue
        alert = _create(
            client_id=activity.client_id,
            alert_type=AlertType.MILESTONE,
            rule=RULE_MILESTONE_STREAK,
            episode_key=f"streak:{milestone}:{first.isoformat()}",
            message=f"{milestone}-day activity streak",
            metadata={"milestone": "streak", "streakDays": milestone, "streakStart": first.isoformat()},
        )
        if alert is not None:
            created.append(alert)
    return created


def alerts_on_activity(*, activity: ActivityEntry) -> list[Alert]:
    """Any new activity ends the client's STAGNATION episode; streak milestones."""
    _resolve(Alert.objects.filter(client_id=activity.client_id, rule=RULE_STAGNATION))
    return _streaks(activity)


def alerts_on_assessment(*, assessment: Assessment) -> list[Alert]:
    """Breakthrough milestone: the catalogue's improvement from the client's previous assessment of the
    same type (the latest completed before this one) to this one is at least the type's breakthrough_at."""
    assessment_type = catalogue.ASSESSMENT_TYPES.get(assessment.type)
    if assessment_type is None or assessment_type.breakthrough_at is None:
        return []
    previous = (
        Assessment.objects.filter(client_id=assessment.client_id, type=assessment.type)
        .filter(
            Q(completed_at__lt=assessment.completed_at) | Q(completed_at=assessment.completed_at, pk__lt=assessment.pk)
        )
        .order_by("-completed_at", "-pk")
        .first()
    )
    if previous is None:
        return []
    improvement = assessment_type.improvement(previous.score, assessment.score)
    if improvement is None or improvement < assessment_type.breakthrough_at:
        return []
    alert = _create(
        client_id=assessment.client_id,
        alert_type=AlertType.MILESTONE,
        rule=RULE_MILESTONE_BREAKTHROUGH,
        episode_key=str(assessment.pk),
        message=f"Assessment breakthrough: {assessment.type.replace('_', ' ')} improved",
        metadata={
            "milestone": "assessment_breakthrough",
            "assessmentType": assessment.type,
            "improvement": round_half_up(improvement),
        },
    )
    return [alert] if alert else []


# --- STAGNATION (daily) -----------------------------------------------------------------------------------


def stagnation_message(days: int) -> str:
    return f"No activity for {days} days"


def alerts_evaluate_daily(*, today: date | None = None) -> int:
    """The time-based rule for every client with at least one consented link to an active therapist
    whose course is not completed: STAGNATION when the client's last activity (or, with none, the start
    of their course, else their sign-up) is STAGNATION_DAYS or more days before `today` (UTC). Episode
    key: the last activity's date ("start:<date>" without any activity), so one alert per episode
    however many days the inactivity lasts. Open STAGNATION alerts of a superseded episode are resolved.
    Returns the number of alerts created."""
    today = today or utc_now().date()
    consented = TherapistClientLink.objects.filter(CONSENTED, client=OuterRef("pk"), therapist__is_active=True)
    clients = (
        Client.objects.filter(Exists(consented))
        .exclude(course__is_active=False, course__completed_at__isnull=False)
        .annotate(last_activity=Max("activities__date"), course_started=F("course__started_at"))
        .values_list("pk", "last_activity", "course_started", "created_at")
    )
    current: dict = {}
    candidates = []
    for client_id, last_activity, course_started, created_at in clients.iterator(chunk_size=2000):
        if last_activity is not None:
            reference, key = last_activity, last_activity.isoformat()
        else:
            reference = (course_started or created_at).date()
            key = f"start:{reference.isoformat()}"
        current[client_id] = key
        days = analytics.days_inactive(reference, today)
        if days >= analytics.STAGNATION_DAYS:
            candidates.append((client_id, key, days, last_activity))

    stale = [
        pk
        for pk, client_id, key in Alert.objects.filter(
            rule=RULE_STAGNATION, resolved_at__isnull=True, client_id__in=list(current)
        ).values_list("pk", "client_id", "episode_key")
        if current.get(client_id) != key
    ]
    if stale:
        with transaction.atomic():
            _resolve(Alert.objects.filter(pk__in=stale))

    existing = set(
        Alert.objects.filter(rule=RULE_STAGNATION, client_id__in=[c[0] for c in candidates]).values_list(
            "client_id", "episode_key"
        )
    )
    created = 0
    for client_id, key, days, last_activity in candidates:
        if (client_id, key) in existing:
            continue
        with transaction.atomic():
            alert = _create(
                client_id=client_id,
                alert_type=AlertType.STAGNATION,
                rule=RULE_STAGNATION,
                episode_key=key,
                message=stagnation_message(days),
                metadata={
                    "daysInactive": days,
                    "lastActivity": last_activity.isoformat() if last_activity else None,
                },
            )
        created += alert is not None
    return created
