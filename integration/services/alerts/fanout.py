"""What happens when an alert is created: who hears of it and how.

Audience: every active therapist consented to the client at the alert's required level or above (read
now, no cache). Per such therapist: an AlertRecipient row, the partner webhooks (`alert.created`, plus
`alert.critical` / `milestone.achieved`) and the immediate notifications (notifications.notify_now);
then one audit event. Runs inside the transaction that created the alert.
"""

from __future__ import annotations

from audit.services import audit_event_record
from core.time import iso_utc, utc_now
from integration.events import publish_to_partners
from integration.models import (
    CONSENTED,
    LEVEL_RANK,
    Alert,
    AlertRecipient,
    AlertType,
    Severity,
    Therapist,
    TherapistClientLink,
)
from integration.services.alerts.notifications import ALERTS_ACTOR, notify_now


def _levels_at_or_above(required: str) -> list[str]:
    return [level for level, rank in LEVEL_RANK.items() if rank >= LEVEL_RANK[required]]


def audience(*, client_id, required_level: str) -> list[Therapist]:
    """Active therapists consented to the client at `required_level` or above (read now, no cache)."""
    links = (
        TherapistClientLink.objects.filter(
            CONSENTED,
            client_id=client_id,
            therapist__is_active=True,
            permission_level__in=_levels_at_or_above(required_level),
        )
        .select_related("therapist")
        .order_by("therapist_id")
    )
    return [link.therapist for link in links]


def webhook_payload(alert: Alert, therapist: Therapist) -> dict:
    """The spec's webhook body plus `therapistId` (a partner may act for several therapists)."""
    return {
        "alertId": str(alert.id),
        "clientId": str(alert.client_id),
        "therapistId": str(therapist.id),
        "alertType": alert.alert_type,
        "severity": alert.severity,
        "message": alert.message,
        "metadata": alert.metadata,
        "createdAt": iso_utc(alert.created_at),
    }


def events_for(alert: Alert) -> list[str]:
    events = ["alert.created"]
    if alert.severity == Severity.CRITICAL:
        events.append("alert.critical")
    if alert.alert_type == AlertType.MILESTONE:
        events.append("milestone.achieved")
    return events


def alert_dispatch(alert: Alert) -> None:
    """Recipients, webhooks, immediate notifications and the audit event of a new alert."""
    therapists = audience(client_id=alert.client_id, required_level=alert.required_level)
    now = utc_now()
    recipients = []
    for therapist in therapists:
        notified = notify_now(alert, therapist)
        recipients.append(AlertRecipient(alert=alert, therapist=therapist, notified_at=now if notified else None))
        for event_type in events_for(alert):
            publish_to_partners(event_type=event_type, payload=webhook_payload(alert, therapist), therapist=therapist)
    AlertRecipient.objects.bulk_create(recipients, ignore_conflicts=True)
    audit_event_record(
        action="integration.alert_created",
        actor=ALERTS_ACTOR,
        subject_type="client",
        subject_id=str(alert.client_id),
        metadata={
            "alert_id": str(alert.id),
            "alert_type": alert.alert_type,
            "severity": alert.severity,
            "rule": alert.rule,
            "recipients": len(recipients),
        },
    )
