"""Therapist notifications of LoveRescue alerts: immediate (CRITICAL: SMS + email, MEDIUM: email), the
HIGH batch (one email per therapist, every 30 minutes) and the LOW daily digest.

Messages carry neither names nor health details (SMS and email are not a secure channel). They are
queued through messaging's outbox as the alerts engine (`ALERTS_ACTOR`), whoever caused the alert.
Texts and timings are documented in docs/loverescue.md ("Notifications").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from django.db import transaction

from core.actors import Actor
from core.time import utc_now
from integration.models import CONSENTED, LEVEL_RANK, Alert, AlertRecipient, Severity, Therapist, TherapistClientLink
from messaging.services import MessagingError, message_queue

logger = logging.getLogger("integration.alerts")

# The alerts engine acts for itself: the same actor on every alert's audit row and message.
ALERTS_ACTOR = Actor.system("integration.alerts")

CRITICAL_SMS = "LoveRescue: 1 critical alert needs your attention. Open LoveRescue to review."
_FOOTER = (
    "\n\nOpen LoveRescue to review. For your clients' privacy this message contains no names or details."
    "\n\n— LoveRescue"
)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _queue(therapist: Therapist, *, channel: str, body: str, subject: str = "", purpose: str) -> bool:
    """Queue one message to the therapist's phone or email; False when they have none or it is unusable
    (logged without the value)."""
    recipient = therapist.phone if channel == "sms" else therapist.email
    if not recipient:
        return False
    try:
        message_queue(
            channel=channel,
            recipient=recipient,
            body=body,
            subject=subject,
            purpose=purpose,
            actor=ALERTS_ACTOR,
        )
    except MessagingError as exc:
        logger.warning(
            "alert notification not queued: therapist=%s channel=%s error=%s",
            therapist.pk,
            channel,
            type(exc).__name__,
        )
        return False
    return True


def notify_now(alert: Alert, therapist: Therapist) -> bool:
    """CRITICAL: SMS + email now; MEDIUM: email now. True when handled now (even with no contact
    details); HIGH and LOW wait for their batch tasks."""
    if alert.severity == Severity.CRITICAL:
        _queue(therapist, channel="sms", body=CRITICAL_SMS, purpose="integration.alert_critical")
        _queue(
            therapist,
            channel="email",
            subject="LoveRescue: critical alert",
            body="A client alert marked CRITICAL needs your attention now." + _FOOTER,
            purpose="integration.alert_critical",
        )
        return True
    if alert.severity == Severity.MEDIUM:
        _queue(
            therapist,
            channel="email",
            subject="LoveRescue: new alert",
            body="A new client alert (medium priority) is waiting for you." + _FOOTER,
            purpose="integration.alert_medium",
        )
        return True
    return False


def _send_batched(*, severity: str, now: datetime | None, compose: Callable[[int], tuple[str, str, str]]) -> int:
    """One email per therapist covering their un-notified alerts of `severity`; returns emails queued.

    Each therapist is handled in its own transaction with their rows locked (SKIP LOCKED), so two runs
    at once never notify twice; `notified_at` is set on every row handled, including rows whose
    therapist is inactive now or no longer consented at the alert's level (nothing is sent for them)."""
    now = now or utc_now()
    pending = AlertRecipient.objects.filter(
        notified_at__isnull=True, alert__severity=severity, alert__created_at__lte=now
    )
    therapist_ids = sorted(set(pending.values_list("therapist_id", flat=True)))
    sent = 0
    for therapist_id in therapist_ids:
        with transaction.atomic():
            rows = list(
                pending.filter(therapist_id=therapist_id)
                .select_for_update(skip_locked=True, of=("self",))
                .select_related("alert", "therapist")
                .order_by("pk")
            )
            if not rows:
                continue
            therapist = rows[0].therapist
            eligible = []
            if therapist.is_active:
                granted = dict(
                    TherapistClientLink.objects.filter(
                        CONSENTED, therapist_id=therapist_id, client_id__in={row.alert.client_id for row in rows}
                    ).values_list("client_id", "permission_level")
                )
                eligible = [
                    row
                    for row in rows
                    if row.alert.client_id in granted
                    and LEVEL_RANK[granted[row.alert.client_id]] >= LEVEL_RANK[row.alert.required_level]
                ]
            if eligible:
                subject, body, purpose = compose(len(eligible))
                if _queue(therapist, channel="email", subject=subject, body=body, purpose=purpose):
                    sent += 1
            AlertRecipient.objects.filter(pk__in=[row.pk for row in rows]).update(notified_at=now)
    return sent


def _compose_high(count: int) -> tuple[str, str, str]:
    noun = _plural(count, "high-priority alert")
    return (
        f"LoveRescue: {noun}",
        f"LoveRescue: {noun} {'needs' if count == 1 else 'need'} your attention." + _FOOTER,
        "integration.alert_high",
    )


def _compose_digest(count: int) -> tuple[str, str, str]:
    noun = _plural(count, "new update")
    return (
        f"LoveRescue daily digest: {noun}",
        f"LoveRescue daily digest: {noun} (such as milestones) since your last digest." + _FOOTER,
        "integration.alert_digest",
    )


def alert_notifications_send_high(*, now: datetime | None = None) -> int:
    """Every 30 minutes (beat): each therapist gets one email for their un-notified HIGH alerts."""
    return _send_batched(severity=Severity.HIGH, now=now, compose=_compose_high)


def alert_notifications_send_digest(*, now: datetime | None = None) -> int:
    """Daily (beat): each therapist gets one digest email for their un-notified LOW alerts."""
    return _send_batched(severity=Severity.LOW, now=now, compose=_compose_digest)
