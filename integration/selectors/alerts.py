"""GET /alerts and POST /alerts/:id/read: the alerts this therapist may see now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery

from integration.models import Alert, AlertRecipient, Therapist
from integration.selectors.common import consented_links, level_rank
from integration.selectors.consent import ClientNotFound


def alerts_visible_to(therapist: Therapist) -> QuerySet[Alert]:
    """Alerts this therapist may see now: the client has a consented link to them at the alert's
    `required_level` or above (checked in SQL at read time)."""
    links = (
        consented_links(therapist)
        .filter(client_id=OuterRef("client_id"))
        .annotate(level_rank=level_rank("permission_level"))
        .filter(level_rank__gte=OuterRef("required_rank"))
    )
    return Alert.objects.annotate(required_rank=level_rank("required_level")).filter(Exists(links))


def visible_alerts(therapist: Therapist) -> QuerySet[Alert]:
    """`alerts_visible_to`, annotated with this therapist's `read_at`."""
    read_at = AlertRecipient.objects.filter(alert_id=OuterRef("pk"), therapist=therapist).values("read_at")[:1]
    return alerts_visible_to(therapist).annotate(read_at=Subquery(read_at))


@dataclass(frozen=True)
class AlertFilters:
    alert_type: str | None = None
    unread_only: bool = False
    since: datetime | None = None
    limit: int = 100


@dataclass(frozen=True)
class AlertPage:
    alerts: list[Alert]  # newest first, up to the limit; `read_at` annotated, `client` loaded
    unread_count: int  # matching the filters, ignoring the limit
    total: int  # matching the filters, ignoring the limit


def alert_list(*, therapist: Therapist, filters: AlertFilters) -> AlertPage:
    """The visible alerts matching the filters. Two queries."""
    alerts = visible_alerts(therapist)
    if filters.alert_type:
        alerts = alerts.filter(alert_type=filters.alert_type)
    if filters.since is not None:
        alerts = alerts.filter(created_at__gt=filters.since)
    if filters.unread_only:
        alerts = alerts.filter(read_at__isnull=True)
    counts = alerts.aggregate(total=Count("pk"), unread=Count("pk", filter=Q(read_at__isnull=True)))
    page = list(alerts.select_related("client").order_by("-created_at", "-id")[: filters.limit])
    return AlertPage(alerts=page, unread_count=counts["unread"], total=counts["total"])


def visible_alert(*, therapist: Therapist, alert_id) -> Alert:
    """One visible alert (client loaded, `read_at` annotated), or ClientNotFound("Alert")."""
    alert = visible_alerts(therapist).select_related("client").filter(pk=alert_id).first()
    if alert is None:
        raise ClientNotFound("Alert")
    return alert
