"""GET /outcomes: caseload outcomes over the therapist's consented clients, one query."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import NamedTuple

from django.db.models import (
    BooleanField,
    Case,
    Count,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from core.rounding import ratio
from integration.models import LEVEL_RANK, Alert, AlertType, Assessment, PermissionLevel, Therapist
from integration.selectors.common import consented_links, count_subquery, level_rank


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


def outcomes(*, therapist: Therapist) -> Outcomes:
    """Caseload outcomes over consented clients by last name, first name. One query."""

    def alerts_of(alert_type: str) -> QuerySet:
        return Alert.objects.filter(client_id=OuterRef("client_id"), alert_type=alert_type)

    types = (
        Assessment.objects.filter(client_id=OuterRef("client_id"))
        .order_by()
        .values("client_id")
        .annotate(n=Count("type", distinct=True))
        .values("n")
    )
    rows = [
        OutcomeRow(*row)
        for row in consented_links(therapist)
        .annotate(
            level_rank=level_rank("permission_level"),
            assessment_types=Coalesce(Subquery(types, output_field=IntegerField()), Value(0)),
            course_week=F("client__course__current_week"),
            course_active=F("client__course__is_active"),
            # Only whether the course was completed is shown: no timestamp to parse.
            course_completed=ExpressionWrapper(
                Q(client__course__completed_at__isnull=False), output_field=BooleanField()
            ),
            milestones=count_subquery(alerts_of(AlertType.MILESTONE)),
        )
        .annotate(
            crisis_alerts=Case(
                When(level_rank__gte=LEVEL_RANK[PermissionLevel.STANDARD], then=count_subquery(alerts_of("CRISIS"))),
                default=Value(0),
                output_field=IntegerField(),
            )
        )
        .order_by("client__last_name", "client__first_name", "client_id")
        .values_list(
            "client_id",
            "assessment_types",
            "course_week",
            "course_active",
            "course_completed",
            "crisis_alerts",
            "milestones",
        )
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
