"""GET /outcomes: caseload outcomes over the therapist's consented clients, three queries whatever the
caseload size.

Set-based: the links (with course columns) in one query, then each per-client count in one grouped pass
over its table, restricted to the consented clients by a semi-join (`client_id IN (consented links)`),
merged by client id here. (Per-client correlated subqueries cost an index probe per client and count;
one hash aggregate over the caseload's rows is several times cheaper at 1,000 clients.)"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import NamedTuple

from django.db.models import BooleanField, Count, ExpressionWrapper, Q

from core.rounding import ratio
from integration.models import Alert, AlertType, Assessment, PermissionLevel, Therapist
from integration.selectors.common import consented_links


class OutcomeRow(NamedTuple):
    client_id: uuid.UUID
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


def _alert_counts(therapist: Therapist) -> dict[uuid.UUID, tuple[int, int]]:
    """client id -> (crisis alerts, milestones) for the consented clients that have any. CRISIS alerts
    are counted only for clients consented at STANDARD or above: a BASIC client's are never read."""
    consented_ids = consented_links(therapist).values("client_id")
    standard_ids = (
        consented_links(therapist)
        .filter(permission_level__in=[PermissionLevel.STANDARD, PermissionLevel.FULL])
        .values("client_id")
    )
    rows = (
        Alert.objects.filter(
            Q(alert_type=AlertType.MILESTONE) | Q(alert_type=AlertType.CRISIS, client_id__in=standard_ids),
            client_id__in=consented_ids,
        )
        .order_by()
        .values("client_id")
        .annotate(
            crisis=Count("pk", filter=Q(alert_type=AlertType.CRISIS)),
            milestones=Count("pk", filter=Q(alert_type=AlertType.MILESTONE)),
        )
        .values_list("client_id", "crisis", "milestones")
    )
    return {client_id: (crisis, milestones) for client_id, crisis, milestones in rows}


def _assessment_types(therapist: Therapist) -> dict[uuid.UUID, int]:
    """client id -> distinct assessment types completed, for the consented clients that have any."""
    rows = (
        Assessment.objects.filter(client_id__in=consented_links(therapist).values("client_id"))
        .order_by()
        .values("client_id")
        .annotate(n=Count("type", distinct=True))
        .values_list("client_id", "n")
    )
    return dict(rows)


def outcomes(*, therapist: Therapist) -> Outcomes:
    """Caseload outcomes over consented clients by last name, first name. Three queries."""
    links = (
        consented_links(therapist)
        .annotate(
            # Only whether the course was completed is shown: no timestamp to parse.
            course_completed=ExpressionWrapper(
                Q(client__course__completed_at__isnull=False), output_field=BooleanField()
            ),
        )
        .order_by("client__last_name", "client__first_name", "client_id")
        .values_list("client_id", "client__course__current_week", "client__course__is_active", "course_completed")
    )
    alert_counts = _alert_counts(therapist)
    assessment_types = _assessment_types(therapist)
    no_alerts = (0, 0)
    rows = []
    for client_id, course_week, course_active, course_completed in links:
        crisis, milestones = alert_counts.get(client_id, no_alerts)
        rows.append(
            OutcomeRow(
                client_id,
                assessment_types.get(client_id, 0),
                course_week,
                course_active,
                course_completed,
                crisis,
                milestones,
            )
        )
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
