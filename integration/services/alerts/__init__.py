"""LoveRescue alerts, split along their jobs:

- `rules`: which alerts exist (CRISIS, RISK mood episodes, STAGNATION, MILESTONE), one per episode; the
  `alerts_on_*` hooks client_data's writes run, and the daily evaluation;
- `fanout`: who hears of a new alert (AlertRecipient rows, partner webhooks, the audit event);
- `notifications`: therapist messages (CRITICAL/MEDIUM at once, HIGH batched, LOW daily digest).

The public functions are importable from here (`from integration.services import alerts`), as the
tasks and client_data use them.
"""

from integration.services.alerts.fanout import alert_dispatch, audience, webhook_payload
from integration.services.alerts.notifications import (
    ALERTS_ACTOR,
    CRITICAL_SMS,
    alert_notifications_send_digest,
    alert_notifications_send_high,
)
from integration.services.alerts.rules import (
    JOURNAL_CRISIS_DELAY,
    alerts_evaluate_daily,
    alerts_on_activity,
    alerts_on_assessment,
    alerts_on_checkin,
    alerts_on_journal_crises,
    alerts_on_week_completed,
    risk_message,
    stagnation_message,
)

__all__ = [
    "JOURNAL_CRISIS_DELAY",
    "ALERTS_ACTOR",
    "CRITICAL_SMS",
    "alert_dispatch",
    "alert_notifications_send_digest",
    "alert_notifications_send_high",
    "alerts_evaluate_daily",
    "alerts_on_activity",
    "alerts_on_assessment",
    "alerts_on_checkin",
    "alerts_on_journal_crises",
    "alerts_on_week_completed",
    "audience",
    "risk_message",
    "stagnation_message",
    "webhook_payload",
]
