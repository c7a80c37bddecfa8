"""GET /clients: the therapist's consented clients with their couple, latest activity and mood, course
and unread alerts. Three queries (links, unread alert counts, couples) whatever the caseload size."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from core.serializers import ABSENT
from integration.models import (
    ActivityEntry,
    AlertRecipient,
    CheckIn,
    Couple,
    PermissionLevel,
    Therapist,
)
from integration.selectors.alerts import alerts_visible_to
from integration.selectors.common import TherapistQuery, consented_links, iso_utc_sql, uuid_text_sql


@dataclass(frozen=True, slots=True)
class CoupleMember:
    """A couple member as this therapist may see them: id and names only when consented to this
    therapist, else `withheld` with a null id and names ABSENT (the client id is not this therapist's to
    know, and would link the member across partners)."""

    id: uuid.UUID | None
    first_name: str | Any = ABSENT
    last_name: str | Any = ABSENT
    withheld: bool | Any = ABSENT


@dataclass(frozen=True, slots=True)
class CoupleSummary:
    id: uuid.UUID
    status: str
    partner1: CoupleMember
    partner2: CoupleMember


class ClientRow(NamedTuple):
    """One consented client (a plain row: tuples are the cheapest rows for a 1,000-client caseload). Ids
    (here and in the couple) are text on PostgreSQL (common.uuid_text_sql), uuid.UUID elsewhere."""

    link_id: uuid.UUID | str
    client_id: uuid.UUID | str
    first_name: str
    last_name: str
    email: str | None
    permission_level: str
    consent_granted_at: str | datetime  # ISO text on PostgreSQL (common.iso_utc_sql), else a datetime
    latest_activity: date | None
    latest_mood: int | None  # None below STANDARD: a BASIC client's mood never leaves the database
    course_week: int | None
    course_active: bool
    unread_alerts: int
    couple: CoupleSummary | None


def _latest_mood_subquery() -> Subquery:
    return Subquery(CheckIn.objects.filter(client_id=OuterRef("client_id")).order_by("-date").values("mood")[:1])


def _unread_alert_counts_query(therapist: Therapist):
    read = AlertRecipient.objects.filter(alert_id=OuterRef("pk"), therapist=therapist, read_at__isnull=False)
    return (
        alerts_visible_to(therapist)
        .exclude(Exists(read))
        .order_by()
        .values("client_id")
        .annotate(n=Count("*"), client_text=uuid_text_sql("client_id"))
        .values_list("client_text", "n")
    )


_UNREAD_ALERT_COUNTS = TherapistQuery(_unread_alert_counts_query)


def _unread_alert_counts(therapist: Therapist) -> dict[uuid.UUID, int]:
    """client id -> alerts visible at the client's level (selectors.alerts' one definition) that this
    therapist has not read, for the clients that have any. One grouped query: a semi-join to the
    consented links and an anti-join to this therapist's read marks, hashed once for the caseload
    (a correlated count per client probed the alerts and their read marks 1,000 times)."""
    return dict(_UNREAD_ALERT_COUNTS.rows(therapist))


def _links_query(therapist: Therapist):
    standard_or_more = [PermissionLevel.STANDARD, PermissionLevel.FULL]
    return (
        consented_links(therapist)
        .annotate(
            latest_activity=Subquery(
                ActivityEntry.objects.filter(client_id=OuterRef("client_id")).order_by("-date").values("date")[:1]
            ),
            latest_mood=Case(
                When(permission_level__in=standard_or_more, then=_latest_mood_subquery()),
                default=Value(None),
                output_field=IntegerField(),
            ),
            course_week=F("client__course__current_week"),
            course_active=Coalesce(F("client__course__is_active"), Value(False), output_field=BooleanField()),
            consent_granted_iso=iso_utc_sql("consent_granted_at"),
            link_text=uuid_text_sql("pk"),
            client_text=uuid_text_sql("client_id"),
        )
        .order_by("client__last_name", "client__first_name", "client_id")
        .values_list(
            "link_text",
            "client_text",
            "client__first_name",
            "client__last_name",
            "client__email",
            "permission_level",
            "consent_granted_iso",
            "latest_activity",
            "latest_mood",
            "course_week",
            "course_active",
        )
    )


_LINKS = TherapistQuery(_links_query)


def client_list(*, therapist: Therapist) -> list[ClientRow]:
    """The therapist's consented clients by last name, first name. Three queries (links, unread alert
    counts, couples).

    Plain rows (values_list), not model instances, and only the columns the body shows: the client's
    email is the one encrypted column decrypted here (a couple partner's email is never loaded). The
    latest activity and mood stay correlated `LIMIT 1` subqueries: each is one backward step on the
    (client, date) index, cheaper than aggregating every client's 90 days. Each query is defined with the
    ORM and compiled once per process (common.TherapistQuery)."""
    links = _LINKS.rows(therapist)
    unread = _unread_alert_counts(therapist)
    couples = _couple_summaries(therapist, {row[1] for row in links})
    return [ClientRow(*row, unread.get(row[1], 0), couples.get(row[1])) for row in links]


def _couples_query(therapist: Therapist):
    consented_client_ids = consented_links(therapist).values("client_id")
    return (
        Couple.objects.filter(Q(partner1_id__in=consented_client_ids) | Q(partner2_id__in=consented_client_ids))
        .annotate(
            couple_text=uuid_text_sql("id"),
            partner1_text=uuid_text_sql("partner1_id"),
            partner2_text=uuid_text_sql("partner2_id"),
        )
        .order_by("created_at", "id")
        .values_list(
            "couple_text",
            "status",
            "partner1_text",
            "partner1__first_name",
            "partner1__last_name",
            "partner2_text",
            "partner2__first_name",
            "partner2__last_name",
        )
    )


_COUPLES = TherapistQuery(_couples_query)


def _couple_summaries(therapist: Therapist, consented_ids: set) -> dict[uuid.UUID, CoupleSummary]:
    """client id -> their couple (an active one first, then the newest), in one query. Members are named
    only when consented to this therapist (`consented_ids`); the other member is just an id. Reads ids,
    status and names only (no partner emails, no timestamps)."""
    couples = _COUPLES.rows(therapist)
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

    def member(client_id, first_name: str, last_name: str) -> CoupleMember:
        if client_id in consented_ids:
            return CoupleMember(client_id, first_name, last_name)
        return CoupleMember(None, withheld=True)

    summaries: dict = {}  # couple id -> its summary, built once and shared by both members
    result: dict = {}
    for member_id, (_, row) in chosen.items():
        summary = summaries.get(row[0])
        if summary is None:
            summary = summaries[row[0]] = CoupleSummary(
                row[0], row[1], member(row[2], row[3], row[4]), member(row[5], row[6], row[7])
            )
        result[member_id] = summary
    return result
