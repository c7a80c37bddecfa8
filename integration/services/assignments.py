"""What a therapist does through a partner: assign tasks to a client (POST clients/:id/assign) and mark
alerts read (POST alerts/:id/read). Consent is checked by the caller (integration.selectors.consent,
selectors.alerts) in the same request; these services only write, each with its audit event in the same
transaction, in the name of `actor` (the partner acting for the therapist, or the therapist)."""

from __future__ import annotations

from datetime import date

from django.db import transaction

from audit.services import audit_event_record
from core.actors import Actor
from core.time import utc_now
from integration.models import Alert, AlertRecipient, Client, IntegrationPartner, Therapist, TherapistTask


@transaction.atomic
def task_assign(
    *,
    therapist: Therapist,
    client: Client,
    partner: IntegrationPartner | None,
    description: str,
    module: str = "",
    activities: list[str] | None = None,
    notes: str | None = None,
    due_date: date | None = None,
    priority: str = TherapistTask.Priority.MEDIUM,
    actor: Actor,
) -> TherapistTask:
    """Create a pending task for the client from this therapist (description and notes are encrypted at
    rest; the audit event carries ids and codes only). `partner` is the partner the task came through
    (stored on the task)."""
    task = TherapistTask.objects.create(
        therapist=therapist,
        client=client,
        partner=partner,
        description=description,
        module=module or "",
        activities=list(activities or []),
        notes=notes or None,
        due_date=due_date,
        priority=priority,
    )
    audit_event_record(
        action="integration.task_assigned",
        actor=actor,
        subject_type="client",
        subject_id=str(client.pk),
        metadata={
            "task_id": str(task.pk),
            "therapist_id": str(therapist.pk),
            "module": task.module,
            "activities": len(task.activities),
            "priority": task.priority,
            "due_date": due_date.isoformat() if due_date else None,
        },
    )
    return task


@transaction.atomic
def alert_mark_read(*, alert: Alert, therapist: Therapist, actor: Actor) -> AlertRecipient:
    """Mark the alert read for this therapist (other therapists' read state is their own). Idempotent: the
    first read time is kept. The caller has checked the alert is visible to the therapist."""
    recipient, _ = AlertRecipient.objects.select_for_update().get_or_create(alert=alert, therapist=therapist)
    if recipient.read_at is None:
        recipient.read_at = utc_now()
        recipient.save(update_fields=["read_at"])
        audit_event_record(
            action="integration.alert_read",
            actor=actor,
            subject_type="client",
            subject_id=str(alert.client_id),
            metadata={"alert_id": str(alert.pk), "therapist_id": str(therapist.pk)},
        )
    return recipient
