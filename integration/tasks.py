"""Thin Celery tasks over integration.services.alerts: idempotent and time-limited (docs/loverescue.md).

Re-running any of them is harmless: alerts are unique per episode, and a notification is only sent for
AlertRecipient rows whose `notified_at` is still empty (rows are locked while being handled).
"""

from __future__ import annotations

from celery import shared_task

from integration.services import alerts


@shared_task(name="integration.tasks.evaluate_daily_alerts", soft_time_limit=1700, time_limit=1800)
def evaluate_daily_alerts() -> int:
    """Daily (beat): the time-based alert rules (STAGNATION) for every client; returns alerts created."""
    return alerts.alerts_evaluate_daily()


@shared_task(name="integration.tasks.send_high_alert_notifications", soft_time_limit=840, time_limit=900)
def send_high_alert_notifications() -> int:
    """Every 30 minutes (beat): one email per therapist with un-notified HIGH alerts."""
    return alerts.alert_notifications_send_high()


@shared_task(name="integration.tasks.send_low_alert_digest", soft_time_limit=1700, time_limit=1800)
def send_low_alert_digest() -> int:
    """Daily (beat): one digest email per therapist with un-notified LOW alerts."""
    return alerts.alert_notifications_send_digest()


@shared_task(name="integration.tasks.raise_journal_crisis_alerts", soft_time_limit=50, time_limit=60)
def raise_journal_crisis_alerts(client_id: str | None = None) -> int:
    """The journal crisis batch (docs/loverescue.md, "CRISIS"): enqueued for one client just after the
    delay when a flagged entry is written, and every minute by beat for all clients (a lost message only
    delays the alert by a minute). Returns alerts created; a rerun finds the entries handled."""
    return len(alerts.alerts_on_journal_crises(client_id=client_id))
