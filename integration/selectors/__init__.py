"""Every read of the partner API, scoped to the therapist the partner acts for.

Consent is read from the database on every call (no caching), so a client's change applies on the very
next request. Permission filtering happens here, in the queries: data above a link's level is never
fetched (mood of a BASIC client, journal text below FULL), and journal entries marked
`therapist_hidden` are excluded in SQL at every level.

List reads (clients, alerts, outcomes) run a fixed number of queries whatever the caseload size:
per-client values are correlated subqueries / LEFT JOINs, not per-row lookups.

Dates: "today" is the UTC date (`today_utc`); windows end today inclusive (90 days = today and the 89
days before it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import (
    Avg,
    BooleanField,
    Case,
    CharField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from core.time import iso_utc, utc_now
from integration.models import (
    CONSENTED,
    LEVEL_RANK,
    ActivityEntry,
    Alert,
    AlertRecipient,
    AlertType,
    Assessment,
    CheckIn,
    Client,
    Couple,
    CoupleProfile,
    CourseProgress,
    JournalEntry,
    Matchup,
    PermissionLevel,
    RatioEntry,
    Therapist,
    TherapistClientLink,
    TherapistTask,
    WeeklyStrategy,
    level_allows,
)

TREND_DAYS = 90  # progress: activity completion, mood and ratio trends, journal entries
DYNAMICS_DAYS = 30  # couple dynamics: activityDays, moodAvg
MAX_MATCHUPS = 10

NO_CONSENT_MESSAGE = "Client has not granted consent to this therapist"
LEVEL_TOO_LOW_MESSAGE = "Client's permission level too low for this data"
WITHHELD_REASON = "This partner has not granted consent to this therapist"


class ClientNotFound(Exception):
    """No such client (or couple, or alert visible to this therapist)."""


class NoConsent(Exception):
    """No link with consent in force between this therapist and the client."""


class LevelTooLow(Exception):
    """The link's permission level is below what the data requires."""


def today_utc() -> date:
    return utc_now().date()


def iso_date(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _rank(field: str) -> Case:
    """A permission level column as its rank (BASIC 1, STANDARD 2, FULL 3) for comparisons in SQL."""
    return Case(
        *(When(**{field: level}, then=Value(rank)) for level, rank in LEVEL_RANK.items()),
        default=Value(0),
        output_field=IntegerField(),
    )


def _iso_utc_sql(field: str) -> Func | F:
    """A timestamp column for `_iso`: on PostgreSQL rendered by the database exactly as core.time.iso_utc
    renders it ("2025-06-30T12:00:00.000Z": UTC, milliseconds truncated, year unpadded like strftime's
    %Y), which saves the driver's datetime parsing and Python's formatting per row; elsewhere the column
    itself, formatted in Python."""
    if connection.vendor == "postgresql":
        return Func(
            F(field),
            template="""to_char(%(expressions)s AT TIME ZONE 'UTC', 'FMYYYY-MM-DD"T"HH24:MI:SS.MS"Z"')""",
            output_field=CharField(),
        )
    return F(field)


def _iso(value: str | datetime | None) -> str | None:
    """The ISO 8601 UTC text of a `_iso_utc_sql` value."""
    return value if value.__class__ is str else iso_utc(value)


def _count_subquery(queryset: QuerySet, group_field: str = "client_id") -> Coalesce:
    """COUNT(*) of a correlated queryset as a scalar subquery (0 when no rows)."""
    counted = queryset.order_by().values(group_field).annotate(n=Count("*")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def _consented_links(therapist: Therapist) -> QuerySet[TherapistClientLink]:
    return TherapistClientLink.objects.filter(CONSENTED, therapist=therapist)


def person(client: Client) -> dict[str, Any]:
    return {"id": str(client.pk), "firstName": client.first_name, "lastName": client.last_name}


# --- Consent --------------------------------------------------------------------------------------


def client_link_for(*, therapist: Therapist, client_id, required_level: str = PermissionLevel.BASIC):
    """The consented link of `therapist` to the client, at `required_level` or above.

    ClientNotFound for an unknown client; NoConsent when unlinked, unconsented or revoked (another
    therapist's client, or the client of another partner's therapist, is simply unlinked here);
    LevelTooLow when the level is below `required_level`. One query when allowed."""
    link = _consented_links(therapist).select_related("client").filter(client_id=client_id).first()
    if link is None:
        if not Client.objects.filter(pk=client_id).exists():
            raise ClientNotFound()
        raise NoConsent()
    if not level_allows(link.permission_level, required_level):
        raise LevelTooLow()
    return link


# --- GET /clients ---------------------------------------------------------------------------------


def _latest_mood_subquery() -> Subquery:
    return Subquery(CheckIn.objects.filter(client_id=OuterRef("client_id")).order_by("-date").values("mood")[:1])


def _unread_alerts_subquery(therapist: Therapist) -> Coalesce:
    """Alerts of the outer link's client visible at the outer link's level, not read by this therapist."""
    alerts = (
        Alert.objects.filter(client_id=OuterRef("client_id"))
        .annotate(required_rank=_rank("required_level"))
        .filter(required_rank__lte=OuterRef("level_rank"))
        .exclude(
            Exists(AlertRecipient.objects.filter(alert_id=OuterRef("pk"), therapist=therapist, read_at__isnull=False))
        )
    )
    return _count_subquery(alerts)


def client_list(*, therapist: Therapist) -> list[dict[str, Any]]:
    """The therapist's consented clients, as the spec's `clients` items. Two queries (links, couples).

    Plain rows (values()), not model instances, and only the columns the body shows: the client's
    email is the one encrypted column decrypted here (a couple partner's email is never loaded)."""
    standard_or_more = [PermissionLevel.STANDARD, PermissionLevel.FULL]
    links = list(
        _consented_links(therapist)
        .annotate(
            level_rank=_rank("permission_level"),
            latest_activity=Subquery(
                ActivityEntry.objects.filter(client_id=OuterRef("client_id")).order_by("-date").values("date")[:1]
            ),
            # Mood is STANDARD data: a BASIC client's mood never leaves the database.
            latest_mood=Case(
                When(permission_level__in=standard_or_more, then=_latest_mood_subquery()),
                default=Value(None),
                output_field=IntegerField(),
            ),
            course_week=F("client__course__current_week"),
            course_active=F("client__course__is_active"),
            consent_granted_iso=_iso_utc_sql("consent_granted_at"),
        )
        .annotate(unread_alerts=_unread_alerts_subquery(therapist))
        .order_by("client__last_name", "client__first_name", "client_id")
        .values_list(
            "pk",
            "client_id",
            "client__first_name",
            "client__last_name",
            "client__email",
            "permission_level",
            "consent_granted_iso",
            "latest_activity",
            "latest_mood",
            "course_week",
            "course_active",
            "unread_alerts",
        )
    )
    consented_ids = {row[1] for row in links}
    couples = _couple_summaries(therapist, consented_ids)
    return [
        {
            "id": str(client_id),
            "linkId": str(link_id),
            "firstName": first_name,
            "lastName": last_name,
            "email": email,
            "permissionLevel": level,
            "consentGrantedAt": _iso(granted_at),
            "couple": couples.get(client_id),
            "latestActivity": iso_date(latest_activity),
            "latestMood": latest_mood,
            "courseWeek": course_week,
            "courseActive": bool(course_active),
            "unreadAlerts": unread_alerts,
        }
        for (
            link_id,
            client_id,
            first_name,
            last_name,
            email,
            level,
            granted_at,
            latest_activity,
            latest_mood,
            course_week,
            course_active,
            unread_alerts,
        ) in links
    ]


def _couple_summaries(therapist: Therapist, consented_ids: set) -> dict:
    """client id -> the `couple` item of their couple (an active one first, then the newest), in one
    query. Members are named only when consented to this therapist (`consented_ids`); the other member
    is just an id. Reads ids, status and names only (no partner emails, no timestamps)."""
    consented_client_ids = _consented_links(therapist).values("client_id")
    couples = (
        Couple.objects.filter(Q(partner1_id__in=consented_client_ids) | Q(partner2_id__in=consented_client_ids))
        .order_by("created_at", "id")
        .values_list(
            "id",
            "status",
            "partner1_id",
            "partner1__first_name",
            "partner1__last_name",
            "partner2_id",
            "partner2__first_name",
            "partner2__last_name",
        )
    )
    active = Couple.Status.ACTIVE
    chosen: dict = {}  # member id -> (status, row)
    for row in couples:
        status = row[1]
        for member_id in (row[2], row[5]):
            if member_id not in consented_ids:
                continue
            current = chosen.get(member_id)
            # Later rows are newer; an active couple beats an inactive one.
            if current is None or not (current[0] == active and status != active):
                chosen[member_id] = (status, row)

    def member(client_id, first_name: str, last_name: str) -> dict[str, Any]:
        if client_id in consented_ids:
            return {"id": str(client_id), "firstName": first_name, "lastName": last_name}
        return {"id": str(client_id), "withheld": True}

    summaries: dict = {}  # couple id -> its summary, built once and shared by both members
    result: dict = {}
    for member_id, (_, row) in chosen.items():
        summary = summaries.get(row[0])
        if summary is None:
            summary = summaries[row[0]] = {
                "id": str(row[0]),
                "status": row[1],
                "partner1": member(row[2], row[3], row[4]),
                "partner2": member(row[5], row[6], row[7]),
            }
        result[member_id] = summary
    return result


# --- GET /clients/:id/progress --------------------------------------------------------------------


def assessment_scores(client_id) -> list[dict[str, Any]]:
    """Every assessment of the client, oldest first: [{type, score, completedAt}]."""
    rows = Assessment.objects.filter(client_id=client_id).order_by("completed_at", "id")
    return [
        {"type": type_, "score": score, "completedAt": iso_utc(completed_at)}
        for type_, score, completed_at in rows.values_list("type", "score", "completed_at")
    ]


def _streak(active_days_desc: list[date], today: date) -> int:
    """Consecutive days with activity ending today, or yesterday when today has none yet."""
    days = set(active_days_desc)
    if today in days:
        day = today
    elif today - timedelta(days=1) in days:
        day = today - timedelta(days=1)
    else:
        return 0
    streak = 0
    while day in days:
        streak += 1
        day -= timedelta(days=1)
    return streak


def activity_completion(*, therapist: Therapist, client_id, today: date) -> dict[str, Any]:
    start = today - timedelta(days=TREND_DAYS - 1)
    # Every distinct active day (a streak may be older than the window); one row per day at most.
    days = list(
        ActivityEntry.objects.filter(client_id=client_id, date__lte=today)
        .order_by("-date")
        .values_list("date", flat=True)
        .distinct()
    )
    days_active = sum(1 for day in days if day >= start)
    tasks = TherapistTask.objects.filter(therapist=therapist, client_id=client_id).aggregate(
        completed=Count("pk", filter=Q(status=TherapistTask.Status.COMPLETED)),
        pending=Count("pk", filter=Q(status=TherapistTask.Status.PENDING)),
    )
    return {
        "totalDays": TREND_DAYS,
        "daysActive": days_active,
        "completionRate": round(days_active * 100 / TREND_DAYS),
        "streak": _streak(days, today),
        "tasksCompleted": tasks["completed"],
        "tasksPending": tasks["pending"],
    }


def course_progress(client_id) -> dict[str, Any]:
    course = CourseProgress.objects.filter(client_id=client_id).values_list("current_week", "is_active").first()
    strategies = list(
        WeeklyStrategy.objects.filter(client_id=client_id)
        .order_by("week_number")
        .values_list("week_number", "theme", "completed_days", "completed_at")
    )
    return {
        "currentWeek": course[0] if course else None,
        "isActive": bool(course and course[1]),
        "completedWeeks": [week for week, _, _, completed_at in strategies if completed_at is not None],
        "weeklyStrategies": [
            {
                "weekNumber": week,
                "theme": theme,
                "completedDays": completed_days,
                "completedAt": iso_utc(completed_at),
            }
            for week, theme, completed_days, completed_at in strategies
        ],
    }


def _ratio(positive: int, negative: int) -> float | None:
    # With no negative interaction the ratio is undefined: null (the counts are still given).
    return round(positive / negative, 1) if negative else None


def client_progress(*, therapist: Therapist, link: TherapistClientLink, today: date | None = None) -> dict:
    """The progress body for `link` (from client_link_for): keys above the link's level are absent."""
    today = today or today_utc()
    client_id = link.client_id
    body: dict[str, Any] = {
        "clientId": str(client_id),
        "assessmentScores": assessment_scores(client_id),
        "activityCompletion": activity_completion(therapist=therapist, client_id=client_id, today=today),
        "courseProgress": course_progress(client_id),
    }
    start = today - timedelta(days=TREND_DAYS - 1)
    level = link.permission_level
    if level_allows(level, PermissionLevel.STANDARD):
        checkins = CheckIn.objects.filter(client_id=client_id, date__range=(start, today)).order_by("date")
        body["moodTrends"] = [
            {"date": iso_date(day), "mood": mood, "closeness": closeness}
            for day, mood, closeness in checkins.values_list("date", "mood", "closeness")
        ]
        ratios = RatioEntry.objects.filter(client_id=client_id, date__range=(start, today)).order_by("date")
        body["ratioTrends"] = [
            {"date": iso_date(day), "positive": pos, "negative": neg, "ratio": _ratio(pos, neg)}
            for day, pos, neg in ratios.values_list("date", "positive", "negative")
        ]
    if level_allows(level, PermissionLevel.FULL):
        answered = Assessment.objects.filter(client_id=client_id, responses__isnull=False).order_by(
            "completed_at", "id"
        )
        body["individualResponses"] = [
            {"type": type_, "responses": responses, "completedAt": iso_utc(completed_at)}
            for type_, responses, completed_at in answered.values_list("type", "responses", "completed_at")
        ]
        entries = visible_journal_entries(client_id, since=start).values_list("pk", "text", "created_at")
        body["journalEntries"] = [
            {"id": str(pk), "text": text, "createdAt": iso_utc(created_at)} for pk, text, created_at in entries
        ]
    return body


def visible_journal_entries(client_id, *, since: date) -> QuerySet[JournalEntry]:
    """Journal entries a therapist may read (FULL only; the caller checks the level). Entries marked
    therapist-hidden are excluded in the query itself, so their text is never even decrypted."""
    return JournalEntry.objects.filter(
        client_id=client_id, therapist_hidden=False, created_at__date__gte=since
    ).order_by("created_at", "id")


# --- GET /couples/:id/dynamics --------------------------------------------------------------------


def couple_dynamics(*, therapist: Therapist, couple_id, today: date | None = None) -> tuple[dict, list]:
    """The dynamics body and the client ids it shows. A side is shown only when that partner has a
    consented link to this therapist; matchups and the couple profile (both partners' data) only when
    both have. ClientNotFound for an unknown couple; NoConsent when neither partner consented."""
    today = today or today_utc()
    couple = Couple.objects.select_related("partner1", "partner2").filter(pk=couple_id).first()
    if couple is None:
        raise ClientNotFound()
    levels = dict(
        _consented_links(therapist)
        .filter(client_id__in=[couple.partner1_id, couple.partner2_id])
        .values_list("client_id", "permission_level")
    )
    if not levels:
        raise NoConsent()
    start = today - timedelta(days=DYNAMICS_DAYS - 1)
    shown: list = []

    def side(client: Client) -> dict[str, Any]:
        level = levels.get(client.pk)
        if level is None:
            return {"withheld": True, "reason": WITHHELD_REASON}
        shown.append(client.pk)
        body: dict[str, Any] = {
            "user": person(client),
            "assessmentScores": assessment_scores(client.pk),
            "activityDays": ActivityEntry.objects.filter(client=client, date__range=(start, today))
            .values("date")
            .distinct()
            .count(),
        }
        if level_allows(level, PermissionLevel.STANDARD):
            avg = CheckIn.objects.filter(client=client, date__range=(start, today)).aggregate(avg=Avg("mood"))["avg"]
            body["moodAvg"] = round(avg, 1) if avg is not None else None
        return body

    both = couple.partner1_id in levels and couple.partner2_id in levels
    matchups: list[dict[str, Any]] = []
    profile = None
    if both:
        matchups = [
            {"score": m.score, "alignments": m.alignments, "generatedAt": iso_utc(m.generated_at)}
            for m in Matchup.objects.filter(couple=couple).order_by("-generated_at", "-id")[:MAX_MATCHUPS]
        ]
        profile = CoupleProfile.objects.filter(couple=couple).values_list("content", flat=True).first()
    body = {
        "couple": {"id": str(couple.pk), "status": couple.status},
        "consent": {"partner1": couple.partner1_id in levels, "partner2": couple.partner2_id in levels},
        "partner1": side(couple.partner1),
        "partner2": side(couple.partner2),
        "matchups": matchups,
        "coupleProfile": profile,
    }
    return body, shown


# --- Alerts ---------------------------------------------------------------------------------------


def visible_alerts(therapist: Therapist) -> QuerySet[Alert]:
    """Alerts this therapist may see now: the client has a consented link to them at the alert's
    `required_level` or above (checked in SQL at read time). Annotated with this therapist's `read_at`."""
    links = (
        _consented_links(therapist)
        .filter(client_id=OuterRef("client_id"))
        .annotate(level_rank=_rank("permission_level"))
        .filter(level_rank__gte=OuterRef("required_rank"))
    )
    read_at = AlertRecipient.objects.filter(alert_id=OuterRef("pk"), therapist=therapist).values("read_at")[:1]
    return (
        Alert.objects.annotate(required_rank=_rank("required_level"))
        .filter(Exists(links))
        .annotate(read_at=Subquery(read_at))
    )


@dataclass(frozen=True)
class AlertFilters:
    alert_type: str | None = None
    unread_only: bool = False
    since: datetime | None = None
    limit: int = 100


def alert_list(*, therapist: Therapist, filters: AlertFilters) -> tuple[list[Alert], int, int]:
    """(alerts newest first up to the limit, total matching the filters, unread among them). Two queries."""
    alerts = visible_alerts(therapist)
    if filters.alert_type:
        alerts = alerts.filter(alert_type=filters.alert_type)
    if filters.since is not None:
        alerts = alerts.filter(created_at__gt=filters.since)
    if filters.unread_only:
        alerts = alerts.filter(read_at__isnull=True)
    counts = alerts.aggregate(total=Count("pk"), unread=Count("pk", filter=Q(read_at__isnull=True)))
    page = list(alerts.select_related("client").order_by("-created_at", "-id")[: filters.limit])
    return page, counts["total"], counts["unread"]


def visible_alert(*, therapist: Therapist, alert_id) -> Alert:
    alert = visible_alerts(therapist).select_related("client").filter(pk=alert_id).first()
    if alert is None:
        raise ClientNotFound()
    return alert


def alert_body(alert: Alert) -> dict[str, Any]:
    """One alert as the spec shows it; `alert.read_at` comes from visible_alerts' annotation."""
    return {
        "id": str(alert.pk),
        "clientId": str(alert.client_id),
        "client": person(alert.client),
        "alertType": alert.alert_type,
        "severity": alert.severity,
        "message": alert.message,
        "metadata": alert.metadata,
        "readAt": iso_utc(alert.read_at),
        "createdAt": iso_utc(alert.created_at),
    }


# --- GET /outcomes --------------------------------------------------------------------------------


def outcomes(*, therapist: Therapist) -> dict[str, Any]:
    """Caseload outcomes over consented clients, one query. CRISIS alerts are STANDARD data: counted
    only for clients at STANDARD or FULL (0 for BASIC clients)."""

    def alerts_of(alert_type: str) -> QuerySet:
        return Alert.objects.filter(client_id=OuterRef("client_id"), alert_type=alert_type)

    types = (
        Assessment.objects.filter(client_id=OuterRef("client_id"))
        .order_by()
        .values("client_id")
        .annotate(n=Count("type", distinct=True))
        .values("n")
    )
    rows = list(
        _consented_links(therapist)
        .annotate(
            level_rank=_rank("permission_level"),
            assessment_types=Coalesce(Subquery(types, output_field=IntegerField()), Value(0)),
            course_week=F("client__course__current_week"),
            course_active=F("client__course__is_active"),
            # Only whether the course was completed is shown: no timestamp to parse.
            course_completed=ExpressionWrapper(
                Q(client__course__completed_at__isnull=False), output_field=BooleanField()
            ),
            milestones=_count_subquery(alerts_of(AlertType.MILESTONE)),
        )
        .annotate(
            crisis_alerts=Case(
                When(level_rank__gte=LEVEL_RANK[PermissionLevel.STANDARD], then=_count_subquery(alerts_of("CRISIS"))),
                default=Value(0),
                output_field=IntegerField(),
            )
        )
        .order_by("client__last_name", "client__first_name", "client_id")
        .values(
            "client_id",
            "assessment_types",
            "course_week",
            "course_active",
            "course_completed",
            "crisis_alerts",
            "milestones",
        )
    )
    clients = [
        {
            "clientId": str(row["client_id"]),
            "assessmentTypes": row["assessment_types"],
            "courseWeek": row["course_week"],
            "courseCompleted": bool(row["course_completed"]),
            "crisisAlerts": row["crisis_alerts"],
            "milestones": row["milestones"],
        }
        for row in rows
    ]
    weeks = [row["course_week"] for row in rows if row["course_week"] is not None]
    summary = {
        "totalClients": len(rows),
        "activeInCourse": sum(1 for row in rows if row["course_active"] and not row["course_completed"]),
        "courseCompleted": sum(1 for row in rows if row["course_completed"]),
        "totalCrisisAlerts": sum(row["crisis_alerts"] for row in rows),
        "totalMilestones": sum(row["milestones"] for row in rows),
        "avgCourseWeek": round(sum(weeks) / len(weeks), 1) if weeks else None,
    }
    return {"summary": summary, "clients": clients}


# --- Session prep ---------------------------------------------------------------------------------


def report_body(report) -> dict[str, Any]:
    """A SessionPrepReport as the spec's `report`: ids and dates, then the generated content keys."""
    return {
        "id": str(report.pk),
        "therapistId": str(report.therapist_id),
        "clientId": str(report.client_id),
        "reportDate": iso_utc(report.report_date),
        "lastSessionDate": iso_utc(report.last_session_date),
        **(report.content or {}),
    }
