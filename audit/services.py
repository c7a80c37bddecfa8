"""Audit writes: the access log row of a request and domain audit events."""

from __future__ import annotations

import logging
from datetime import datetime

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import connection, transaction

from audit.models import AccessLog, AuditEvent
from core.actors import Actor
from core.context import current_request_id
from core.time import utc_now

logger = logging.getLogger("audit")
PURGE_BATCH = 5000


def audit_event_record(
    *,
    action: str,
    actor: Actor,
    organization_id: str = "",
    subject_type: str = "",
    subject_id: str = "",
    metadata: dict | None = None,
) -> AuditEvent:
    """Record a domain event inside the caller's transaction, so the event exists iff the change does.

    Never put PHI (phone numbers, message text) in `metadata`: ids and codes only.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("audit_event_record must run inside the service's transaction.atomic block")
    return AuditEvent.objects.create(
        created_at=utc_now(),
        action=action,
        actor_type=actor.type,
        actor_id=actor.id,
        organization_id=organization_id or "",
        subject_type=subject_type,
        subject_id=str(subject_id)[:100],
        metadata=metadata or {},
        request_id=current_request_id(),
    )


def access_log_record(**fields) -> None:
    """One round trip: a single INSERT in autocommit, no read before it. (`bulk_create` would wrap it in
    BEGIN ... COMMIT, three round trips; `save(force_insert=True)` on a model without parents does not.)"""
    AccessLog(**fields).save(force_insert=True)


def retention_cutoff(now: datetime | None = None) -> datetime:
    return (now or utc_now()) - relativedelta(years=settings.AUDIT_RETENTION_YEARS)


def audit_purge_expired(*, now: datetime | None = None) -> dict[str, int]:
    """Delete access-log and audit-event rows older than the retention period, in batches.

    The database refuses to delete anything younger than six years whatever this computes.
    """
    cutoff = retention_cutoff(now)
    using = settings.AUDIT_PURGE_DATABASE_ALIAS  # the purge role: the only one allowed to DELETE here
    deleted = {}
    for model in (AccessLog, AuditEvent):
        total = 0
        rows = model.objects.using(using)
        while True:
            with transaction.atomic(using=using):
                ids = list(rows.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:PURGE_BATCH])
                if not ids:
                    break
                total += rows.filter(pk__in=ids).delete()[0]
        deleted[model._meta.model_name] = total
    with transaction.atomic():
        audit_event_record(
            action="audit.retention_purge",
            actor=Actor.system("beat"),
            metadata={"cutoff": cutoff.isoformat(), **deleted},
        )
    logger.info("Audit retention purge before %s: %s", cutoff.isoformat(), deleted)
    return deleted
