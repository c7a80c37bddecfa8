"""Append-only audit tables. PostgreSQL refuses UPDATE and TRUNCATE on them and DELETE of any row younger
than six years (the floor of AUDIT_RETENTION_YEARS), whatever the application does; the retention purge is
the only deletion, of older rows. The app's database role may only INSERT and SELECT here (core.db_roles)."""

import pgtrigger
from django.db import models

# The database's own floor for retention, in sync with the settings check (AUDIT_RETENTION_YEARS >= 6).
RETENTION_FLOOR_SQL = "OLD.created_at > now() - interval '6 years'"


def _append_only_triggers(table: str):
    return [
        pgtrigger.Protect(name=f"{table}_no_update", operation=pgtrigger.Update),
        pgtrigger.Protect(
            name=f"{table}_no_young_delete",
            operation=pgtrigger.Delete,
            condition=pgtrigger.Condition(RETENTION_FLOOR_SQL),
        ),
        # TRUNCATE fires no row triggers; a statement trigger refuses it, for every role but a superuser
        # who disables triggers (docs/operations.md, "Database roles": nobody runs the app as one).
        pgtrigger.Trigger(
            name=f"{table}_no_truncate",
            operation=pgtrigger.Truncate,
            level=pgtrigger.Statement,
            when=pgtrigger.Before,
            func="RAISE EXCEPTION 'pgtrigger: Cannot truncate % table', TG_TABLE_NAME;",
        ),
    ]


class AccessLog(models.Model):
    """One row per request under an API's paths."""

    APPEND_ONLY = True  # core.db_roles: the app role may only INSERT and SELECT

    created_at = models.DateTimeField(db_index=True)
    api = models.CharField(max_length=20, db_index=True)
    actor_type = models.CharField(max_length=20, blank=True)  # core.actors.ActorType
    actor_id = models.CharField(max_length=100, blank=True, db_index=True)
    # Whom the actor acted for, "therapist:<uuid>" (a LoveRescue partner token acts for one therapist).
    on_behalf_of = models.CharField(max_length=121, blank=True)
    organization_id = models.CharField(max_length=80, blank=True, db_index=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    subject_ids = models.JSONField(default=list, blank=True)  # ["client:<uuid>", "patient:pat_..."]
    status_code = models.PositiveSmallIntegerField(db_index=True)
    # Why a request was refused: the error code of the answer ("IP_BLOCKED", "RATE_LIMITED"); "" when served.
    reason = models.CharField(max_length=40, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        triggers = _append_only_triggers("accesslog")
        indexes = [
            # Only the rows that have one (LoveRescue partner traffic): the other APIs' inserts skip it.
            models.Index(fields=["on_behalf_of"], name="accesslog_on_behalf_of", condition=~models.Q(on_behalf_of="")),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.method} {self.path} {self.status_code}"


class AuditEvent(models.Model):
    """A domain event (consent revoked, key rotated, export made), written in its service's transaction."""

    APPEND_ONLY = True

    created_at = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=100, db_index=True)
    actor_type = models.CharField(max_length=20, blank=True)
    actor_id = models.CharField(max_length=100, blank=True, db_index=True)
    organization_id = models.CharField(max_length=80, blank=True, db_index=True)
    subject_type = models.CharField(max_length=40, blank=True)
    subject_id = models.CharField(max_length=100, blank=True, db_index=True)
    metadata = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["-created_at"]
        triggers = _append_only_triggers("auditevent")

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.subject_type}:{self.subject_id}"
