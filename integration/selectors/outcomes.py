"""GET /outcomes: caseload outcomes over the therapist's consented clients, two queries whatever the
caseload size.

Set-based: the links join their clients' alerts once and count them per link (a hash join and one
aggregate over the caseload's alerts, where a correlated count per client and alert type probed the
alerts table twice per client), and the distinct assessment types are one grouped pass over the
caseload's assessments, merged by client id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import NamedTuple

from django.db.models import BooleanField, Count, ExpressionWrapper, Q

from core.rounding import ratio
from integration.models import AlertType, Assessment, PermissionLevel, Therapist
from integration.selectors.common import TherapistQuery, consented_links, uuid_text_sql


class OutcomeRow(NamedTuple):
    client_id: uuid.UUID | str  # str on PostgreSQL (common.uuid_text_sql)
    assessment_types: int  # distinct assessment types completed
    course_week: int | None
    course_active: bool | None
    course_completed: bool
    crisis_alerts: int  # 0 below STANDARD: CRISIS alerts are STANDARD data
    milestones: int


@dataclass(frozen=True)
class OutcomeSummary:
    total_clients: int
    active_in_course: int  # course active and not completed
    course_completed: int
    total_crisis_alerts: int
    total_milestones: int
    avg_course_week: float | None  # mean current week of clients with a course, 1 decimal


@dataclass(frozen=True)
class Outcomes:
    summary: OutcomeSummary
    clients: list[OutcomeRow]


def _assessment_types_query(therapist: Therapist):
    return (
        Assessment.objects.filter(client_id__in=consented_links(therapist).values("client_id"))
        .order_by()
        .values("client_id")
        .annotate(n=Count("type", distinct=True), client_text=uuid_text_sql("client_id"))
        .values_list("client_text", "n")
    )


_ASSESSMENT_TYPES = TherapistQuery(_assessment_types_query)


def _assessment_types(therapist: Therapist) -> dict[uuid.UUID | str, int]:
    """client id -> distinct assessment types completed, for the consented clients that have any: one
    grouped pass over the caseload's assessments (an index-only scan)."""
    return dict(_ASSESSMENT_TYPES.rows(therapist))


def _links_query(therapist: Therapist):
    standard_or_more = [PermissionLevel.STANDARD, PermissionLevel.FULL]
    return (
        consented_links(therapist)
        .annotate(
            # Only whether the course was completed is shown: no timestamp to parse.
            course_completed=ExpressionWrapper(
                Q(client__course__completed_at__isnull=False), output_field=BooleanField()
            ),
            # The client's alerts joined once and counted per link; CRISIS alerts are STANDARD data,
            # counted only for a STANDARD or FULL link.
            crisis_alerts=Count(
                "client__alerts",
                filter=Q(client__alerts__alert_type=AlertType.CRISIS, permission_level__in=standard_or_more),
            ),
            milestones=Count("client__alerts", filter=Q(client__alerts__alert_type=AlertType.MILESTONE)),
            client_text=uuid_text_sql("client_id"),
        )
        .order_by("client__last_name", "client__first_name", "client_id")
        .values_list(
            "client_text",
            "client__course__current_week",
            "client__course__is_active",
            "course_completed",
            "crisis_alerts",
            "milestones",
        )
    )


_LINKS = TherapistQuery(_links_query)


def outcomes(*, therapist: Therapist) -> Outcomes:
    """Caseload outcomes over consented clients by last name, first name. Two queries, each defined with
    the ORM and compiled once per process (common.TherapistQuery)."""
    links = _LINKS.rows(therapist)
    types = _assessment_types(therapist)
    rows = [
        OutcomeRow(client_id, types.get(client_id, 0), week, active, completed, crisis, milestones)
        for client_id, week, active, completed, crisis, milestones in links
    ]
    weeks = [row.course_week for row in rows if row.course_week is not None]
    summary = OutcomeSummary(
        total_clients=len(rows),
        active_in_course=sum(1 for row in rows if row.course_active and not row.course_completed),
        course_completed=sum(1 for row in rows if row.course_completed),
        total_crisis_alerts=sum(row.crisis_alerts for row in rows),
        total_milestones=sum(row.milestones for row in rows),
        avg_course_week=ratio(sum(weeks), len(weeks)),
    )
    return Outcomes(summary=summary, clients=rows)
