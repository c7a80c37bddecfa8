"""What the LoveRescue app records for its client (`/api/app/...`), and the client's consent changes.

Every function is keyword-only and `@transaction.atomic`, takes the acting `actor` (the client in the
app; staff for links added in the admin), writes one audit event (ids and codes only: never journal
text, moods or scores) and runs the alert rules that react to the write (integration.services.alerts)
in the same transaction, so an alert exists iff the data it is about does. Bad input raises
ClientDataInvalid (a core.domain.Invalid, code BAD_REQUEST) whose message is for the app; a link or
task that is not the client's raises NotFound. The LoveRescue envelope renders both.

Dates: a day the app reports must not be after tomorrow (UTC; a client east of UTC is already in the
next day) nor more than MAX_PAST_DAYS in the past.

The course: an activity posted with `week_number` counts for that week of the client's course, which
must be the current one (`CourseProgress` is created at week 1 on first use). A week is completed when
its activities fall on DAYS_PER_WEEK distinct dates; the course then moves to the next week, and after
the last week the course is completed (inactive).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import Q

from audit.services import audit_event_record
from core.actors import Actor
from core.domain import Invalid, NotFound
from core.time import iso_utc, utc_now
from integration import catalogue
from integration.events import publish_to_partners
from integration.models import (
    ActivityEntry,
    Assessment,
    CheckIn,
    Client,
    Couple,
    CourseProgress,
    JournalEntry,
    PermissionLevel,
    RatioEntry,
    Therapist,
    TherapistClientLink,
    TherapistTask,
    WeeklyStrategy,
)
from integration.services.therapists import TherapistInvalid, clean_email, clean_name

logger = logging.getLogger("integration.client_data")

MAX_PAST_DAYS = 365
FUTURE_TOLERANCE_DAYS = 1
SCALE_MIN, SCALE_MAX = 1, 10
RATIO_MAX = 1000
JOURNAL_MAX_CHARS = 20_000
ACTIVITY_MAX_CHARS = 100
ACTIVITY_RE = re.compile(r"[a-z0-9]+(?:[_-][a-z0-9]+)*")

CONSENT_GRANTED, CONSENT_REVOKED, CONSENT_PENDING = "granted", "revoked", "pending"


class ClientDataInvalid(Invalid):
    """Bad input from the app; the message says what is wrong (400 BAD_REQUEST in the LoveRescue body)."""

    def __init__(self, message: str, *, code: str = "BAD_REQUEST", details=None):
        super().__init__(message, code=code, details=details)


@dataclass(frozen=True)
class ActivityRecorded:
    """A recorded activity with the course state the app shows next to it (read in the same transaction)."""

    entry: ActivityEntry
    weekly_strategy: WeeklyStrategy | None
    course: CourseProgress | None


def _alerts():
    # Imported when used: the alert rules import the models and services of this package.
    from integration.services import alerts

    return alerts


def _audit(action: str, client: Client, *, actor: Actor, **metadata) -> None:
    audit_event_record(
        action=action,
        actor=actor,
        subject_type="client",
        subject_id=str(client.pk),
        metadata=metadata,
    )


def today_utc() -> date:
    return utc_now().date()


def _check_day(value, *, today: date | None, name: str = "date") -> date:
    if not isinstance(value, date) or isinstance(value, datetime):
        raise ClientDataInvalid(f"{name} must be a date (YYYY-MM-DD)")
    today = today or today_utc()
    if value > today + timedelta(days=FUTURE_TOLERANCE_DAYS):
        raise ClientDataInvalid(f"{name} must not be in the future")
    if value < today - timedelta(days=MAX_PAST_DAYS):
        raise ClientDataInvalid(f"{name} must be within the last {MAX_PAST_DAYS} days")
    return value


def _check_int(value, *, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (low <= value <= high):
        raise ClientDataInvalid(f"{name} must be an integer from {low} to {high}")
    return value


def _check_bool(value, *, name: str) -> bool:
    if not isinstance(value, bool):
        raise ClientDataInvalid(f"{name} must be true or false")
    return value


# --- Daily records ----------------------------------------------------------------------------------


@transaction.atomic
def checkin_record(
    *,
    client: Client,
    date: date,
    mood: int,
    closeness: int,
    crisis: bool = False,
    today: date | None = None,
    actor: Actor,
) -> tuple[CheckIn, bool]:
    """Record the day's check-in; a second one for the same date replaces it. Returns (check-in, created)."""
    _check_day(date, today=today)
    _check_int(mood, name="mood", low=SCALE_MIN, high=SCALE_MAX)
    _check_int(closeness, name="closeness", low=SCALE_MIN, high=SCALE_MAX)
    _check_bool(crisis, name="crisis")
    checkin, created = CheckIn.objects.update_or_create(
        client=client, date=date, defaults={"mood": mood, "closeness": closeness, "crisis": crisis}
    )
    _audit("integration.checkin_recorded", client, actor=actor, checkin_id=checkin.pk, replaced=not created)
    _alerts().alerts_on_checkin(checkin=checkin)
    return checkin, created


@transaction.atomic
def ratio_record(
    *, client: Client, date: date, positive: int, negative: int, today: date | None = None, actor: Actor
) -> tuple[RatioEntry, bool]:
    """Record the day's positive and negative interactions (replacing that day's). Returns (entry, created)."""
    _check_day(date, today=today)
    _check_int(positive, name="positive", low=0, high=RATIO_MAX)
    _check_int(negative, name="negative", low=0, high=RATIO_MAX)
    entry, created = RatioEntry.objects.update_or_create(
        client=client, date=date, defaults={"positive": positive, "negative": negative}
    )
    _audit("integration.ratio_recorded", client, actor=actor, ratio_id=entry.pk, replaced=not created)
    return entry, created


def _strategy(client: Client, week_number: int) -> WeeklyStrategy:
    strategy, _ = WeeklyStrategy.objects.get_or_create(
        client=client, week_number=week_number, defaults={"theme": catalogue.COURSE_WEEKS[week_number]}
    )
    return strategy


def course_progress_for(client: Client, *, lock: bool = False) -> CourseProgress:
    """The client's course, created at week 1 (with that week's strategy) on first use."""
    course, created = CourseProgress.objects.get_or_create(client=client, defaults={"current_week": 1})
    if created:
        _strategy(client, 1)
    if lock:
        course = CourseProgress.objects.select_for_update().get(pk=course.pk)
    return course


@transaction.atomic
def activity_record(
    *,
    client: Client,
    date: date,
    activity: str,
    week_number: int | None = None,
    today: date | None = None,
    actor: Actor,
) -> ActivityRecorded:
    """Record a completed activity; with `week_number` it is a day of that (current) course week.
    Returns the entry with that week's strategy (None without a week) and the client's course (None
    before the client's first course activity)."""
    _check_day(date, today=today)
    if not isinstance(activity, str) or not (1 <= len(activity) <= ACTIVITY_MAX_CHARS):
        raise ClientDataInvalid(f"activity must be 1 to {ACTIVITY_MAX_CHARS} characters")
    if not ACTIVITY_RE.fullmatch(activity):
        raise ClientDataInvalid("activity must be a slug: lowercase letters and digits joined by '_' or '-'")
    course = None
    if week_number is not None:
        _check_int(week_number, name="weekNumber", low=1, high=catalogue.COURSE_LENGTH_WEEKS)
        course = course_progress_for(client, lock=True)
        if not course.is_active:
            raise ClientDataInvalid("the course is already completed")
        if week_number != course.current_week:
            raise ClientDataInvalid(f"weekNumber must be the current course week ({course.current_week})")

    entry = ActivityEntry.objects.create(client=client, date=date, activity=activity, week_number=week_number)
    week_completed, strategy = False, None
    if course is not None:
        week_completed, strategy = _count_course_day(client, course, week_number)
    else:
        course = CourseProgress.objects.filter(client=client).first()
    _audit(
        "integration.activity_recorded",
        client,
        actor=actor,
        activity_id=entry.pk,
        week_number=week_number,
        week_completed=week_completed,
    )
    if week_completed:
        _alerts().alerts_on_week_completed(client=client, week_number=week_number)
    _alerts().alerts_on_activity(activity=entry)
    return ActivityRecorded(entry=entry, weekly_strategy=strategy, course=course)


def _count_course_day(client: Client, course: CourseProgress, week_number: int) -> tuple[bool, WeeklyStrategy]:
    """Update the week's completed days; complete the week (and the course) when they reach
    DAYS_PER_WEEK. Returns (True when this call completed the week, the week's strategy as saved)."""
    strategy = _strategy(client, week_number)
    days = ActivityEntry.objects.filter(client=client, week_number=week_number).values("date").distinct().count()
    strategy.completed_days = min(days, catalogue.DAYS_PER_WEEK)
    fields = ["completed_days"]
    completed = strategy.completed_at is None and days >= catalogue.DAYS_PER_WEEK
    now = utc_now()
    if completed:
        strategy.completed_at = now
        fields.append("completed_at")
    strategy.save(update_fields=fields)
    if completed:
        if week_number >= catalogue.COURSE_LENGTH_WEEKS:
            course.is_active = False
            course.completed_at = now
        else:
            course.current_week = week_number + 1
            _strategy(client, course.current_week)
        course.save(update_fields=["current_week", "is_active", "completed_at"])
    return completed, strategy


# --- Assessments and journal ---------------------------------------------------------------------------


def couples_of(client: Client):
    return Couple.objects.filter(Q(partner1=client) | Q(partner2=client)).order_by("created_at", "id")


@transaction.atomic
def assessment_record(
    *, client: Client, type: str, score, responses=None, completed_at: datetime | None = None, actor: Actor
) -> Assessment:
    """Record a completed assessment (score validated by the catalogue; `responses` are the client's
    individual answers, FULL-level data). Refreshes the analysis of each of the client's couples.
    `completed_at` defaults to now (imports and demo data pass their own)."""
    try:
        normalized = catalogue.validate_assessment(type, score)
    except catalogue.ScoreInvalid as exc:
        raise ClientDataInvalid(str(exc)) from None
    if responses is not None and not isinstance(responses, dict):
        raise ClientDataInvalid("responses must be an object")
    now = utc_now()
    completed_at = completed_at or now
    if completed_at > now:
        raise ClientDataInvalid("completedAt must not be in the future")
    assessment = Assessment.objects.create(
        client=client, type=type, score=normalized, responses=responses or None, completed_at=completed_at
    )
    _audit("integration.assessment_recorded", client, actor=actor, assessment_id=assessment.pk, type=type)
    _alerts().alerts_on_assessment(assessment=assessment)
    from integration.services.reports import couple_analysis_refresh

    for couple in couples_of(client):
        couple_analysis_refresh(couple=couple)
    return assessment


@transaction.atomic
def journal_record(
    *,
    client: Client,
    text: str,
    therapist_hidden: bool,
    crisis: bool = False,
    created_at: datetime | None = None,
    actor: Actor,
) -> JournalEntry:
    """Store a journal entry (encrypted). `therapist_hidden` entries are never shown to any therapist."""
    if not isinstance(text, str) or not text.strip():
        raise ClientDataInvalid("text must not be empty")
    if len(text) > JOURNAL_MAX_CHARS:
        raise ClientDataInvalid(f"text must be at most {JOURNAL_MAX_CHARS} characters")
    _check_bool(therapist_hidden, name="therapistHidden")
    _check_bool(crisis, name="crisis")
    now = utc_now()
    created_at = created_at or now
    if created_at > now:
        raise ClientDataInvalid("createdAt must not be in the future")
    entry = JournalEntry.objects.create(
        client=client, text=text, therapist_hidden=therapist_hidden, crisis=crisis, created_at=created_at
    )
    # No text, no length: only that an entry exists and whether therapists may see it.
    _audit(
        "integration.journal_recorded", client, actor=actor, entry_id=str(entry.pk), therapist_hidden=therapist_hidden
    )
    if crisis:
        # Not alerted here: the journal crisis batch raises it later, dated by the batch, so the alert
        # cannot date or identify the entry (alerts.alerts_on_journal_crises).
        transaction.on_commit(lambda: _enqueue_journal_crisis_batch(client.pk), robust=True)
    return entry


def _enqueue_journal_crisis_batch(client_id) -> None:
    """Ask for the client's journal crisis batch just after the delay; a lost message is covered by the
    every-minute beat run of the same task."""
    from integration.tasks import raise_journal_crisis_alerts

    try:
        raise_journal_crisis_alerts.apply_async(
            args=[str(client_id)], countdown=_alerts().JOURNAL_CRISIS_DELAY.total_seconds() + 1
        )
    except Exception:
        logger.exception("could not enqueue the journal crisis batch; the beat run will raise the alert")


# --- Consent -------------------------------------------------------------------------------------------


def consent_state(link: TherapistClientLink) -> str:
    if link.has_consent:
        return CONSENT_GRANTED
    if link.consent_revoked_at is not None:
        return CONSENT_REVOKED
    return CONSENT_PENDING


def link_not_found() -> NotFound:
    return NotFound("Therapist link not found", code="NOT_FOUND")


@transaction.atomic
def link_create(
    *,
    therapist: Therapist,
    client: Client,
    permission_level: str,
    consent_granted_at: datetime | None = None,
    actor: Actor,
) -> TherapistClientLink:
    """Link a therapist to a client (staff in the admin). Consent belongs to the client: the link starts
    pending; only demo data and imports of consent given elsewhere pass `consent_granted_at`."""
    if permission_level not in PermissionLevel.values:
        raise ClientDataInvalid(f"permissionLevel must be one of {', '.join(PermissionLevel.values)}")
    link = TherapistClientLink.objects.create(
        therapist=therapist,
        client=client,
        permission_level=permission_level,
        consent_granted_at=consent_granted_at,
        consent_revoked_at=None,
    )
    _audit(
        "integration.link_created",
        client,
        actor=actor,
        link_id=str(link.pk),
        therapist_id=str(therapist.pk),
        permission_level=permission_level,
    )
    return link


@transaction.atomic
def link_update(
    *,
    client: Client,
    link_id,
    permission_level: str | None = None,
    consent: str | None = None,
    actor: Actor,
) -> TherapistClientLink:
    """The client changes what one therapist may see: the permission level and/or consent ("granted" /
    "revoked"). Applies to the therapist's partners on their very next request (nothing is cached).
    Revoking consent in force publishes `consent.revoked` to those partners (ids only, no PHI).
    Each actual change is audited; repeating the current state changes nothing. NotFound when the link
    is not this client's (the same answer as for an unknown id)."""
    if permission_level is None and consent is None:
        raise ClientDataInvalid("permissionLevel or consent is required")
    if permission_level is not None and permission_level not in PermissionLevel.values:
        raise ClientDataInvalid(f"permissionLevel must be one of {', '.join(PermissionLevel.values)}")
    if consent is not None and consent not in (CONSENT_GRANTED, CONSENT_REVOKED):
        raise ClientDataInvalid("consent must be granted or revoked")
    link = (
        TherapistClientLink.objects.select_for_update()
        .select_related("therapist")
        .filter(pk=link_id, client=client)
        .first()
    )
    if link is None:
        raise link_not_found()
    now = utc_now()
    common = {"link_id": str(link.pk), "therapist_id": str(link.therapist_id)}

    if permission_level is not None and permission_level != link.permission_level:
        old = link.permission_level
        link.permission_level = permission_level
        link.save(update_fields=["permission_level", "updated_at"])
        _audit(
            "integration.permission_changed", client, actor=actor, old_level=old, new_level=permission_level, **common
        )

    if consent == CONSENT_REVOKED and link.consent_revoked_at is None:
        was_in_force = link.has_consent
        link.consent_revoked_at = now
        link.save(update_fields=["consent_revoked_at", "updated_at"])
        _audit("integration.consent_revoked", client, actor=actor, was_in_force=was_in_force, **common)
        if was_in_force:
            publish_to_partners(
                event_type="consent.revoked",
                payload={
                    "event": "consent.revoked",
                    "clientId": str(client.pk),
                    "therapistId": str(link.therapist_id),
                    "linkId": str(link.pk),
                    "revokedAt": iso_utc(now),
                },
                therapist=link.therapist,
            )
    elif consent == CONSENT_GRANTED and not link.has_consent:
        link.consent_granted_at = now
        link.consent_revoked_at = None
        link.save(update_fields=["consent_granted_at", "consent_revoked_at", "updated_at"])
        _audit("integration.consent_granted", client, actor=actor, **common)
    return link


# --- Staff writes on clients and couples (the admin) -----------------------------------------------------


@transaction.atomic
def client_create(*, user, first_name: str, last_name: str, email: str | None = None, actor: Actor) -> Client:
    """Register a LoveRescue client for a platform login (`user`, who then signs in to the app as them).
    Bad input raises TherapistInvalid (a core.domain.Invalid, message for staff)."""
    if user is None:
        raise TherapistInvalid("A client needs a platform user to sign in with.")
    if Client.objects.filter(user=user).exists():
        raise TherapistInvalid("This user is already a client.")
    client = Client.objects.create(
        user=user,
        first_name=clean_name(first_name, label="First name"),
        last_name=clean_name(last_name, label="Last name"),
        email=clean_email(email),
    )
    _audit("integration.client_created", client, actor=actor, user_id=str(user.pk))
    return client


@transaction.atomic
def client_update(*, client: Client, first_name: str, last_name: str, email: str | None, actor: Actor) -> Client:
    """Replace a client's name and email (the login is fixed at creation). One audit event names the
    fields that changed (never their values); nothing changed: nothing written."""
    current = Client.objects.select_for_update().get(pk=client.pk)
    wanted = {
        "first_name": clean_name(first_name, label="First name"),
        "last_name": clean_name(last_name, label="Last name"),
        "email": clean_email(email),
    }
    changed = [name for name, value in wanted.items() if getattr(current, name) != value]
    if changed:
        for name in changed:
            setattr(current, name, wanted[name])
        current.save(update_fields=changed)
        _audit("integration.client_updated", current, actor=actor, changed=changed)
    return current


def couple_pair_check(partner1: Client, partner2: Client) -> None:
    """Invalid when the two cannot form a new couple: the same client, or already a couple (either order)."""
    if partner1.pk == partner2.pk:
        raise TherapistInvalid("A couple is two different clients.")
    pair = Q(partner1=partner1, partner2=partner2) | Q(partner1=partner2, partner2=partner1)
    if Couple.objects.filter(pair).exists():
        raise TherapistInvalid("These two clients are already a couple.")


def _audit_couple(action: str, couple: Couple, *, actor: Actor, **metadata) -> None:
    audit_event_record(
        action=action,
        actor=actor,
        subject_type="couple",
        subject_id=str(couple.pk),
        metadata={"partner1_id": str(couple.partner1_id), "partner2_id": str(couple.partner2_id), **metadata},
    )


@transaction.atomic
def couple_create(*, partner1: Client, partner2: Client, status: str = Couple.Status.ACTIVE, actor: Actor) -> Couple:
    if status not in Couple.Status.values:
        raise TherapistInvalid(f"status must be one of {', '.join(Couple.Status.values)}")
    couple_pair_check(partner1, partner2)
    couple = Couple.objects.create(partner1=partner1, partner2=partner2, status=status)
    _audit_couple("integration.couple_created", couple, actor=actor, status=status)
    return couple


@transaction.atomic
def couple_set_status(*, couple: Couple, status: str, actor: Actor) -> bool:
    """Active or inactive (what partners see as the couple's status). True when it changed anything."""
    if status not in Couple.Status.values:
        raise TherapistInvalid(f"status must be one of {', '.join(Couple.Status.values)}")
    current = Couple.objects.select_for_update().get(pk=couple.pk)
    if current.status == status:
        return False
    old, current.status = current.status, status
    current.save(update_fields=["status"])
    _audit_couple("integration.couple_status_changed", current, actor=actor, old_status=old, new_status=status)
    return True


# --- Tasks ---------------------------------------------------------------------------------------------


@transaction.atomic
def task_complete(*, client: Client, task_id, actor: Actor) -> TherapistTask:
    """Mark one of the client's tasks completed (idempotent: the first completion time is kept).
    NotFound when the task is not this client's."""
    task = TherapistTask.objects.select_for_update().filter(pk=task_id, client=client).first()
    if task is None:
        raise NotFound("Task not found", code="NOT_FOUND")
    if task.status != TherapistTask.Status.COMPLETED:
        task.status = TherapistTask.Status.COMPLETED
        task.completed_at = utc_now()
        task.save(update_fields=["status", "completed_at"])
        _audit(
            "integration.task_completed",
            client,
            actor=actor,
            task_id=str(task.pk),
            therapist_id=str(task.therapist_id),
        )
    return task
