"""Audit writes: the access log row of a request and domain audit events."""

from __future__ import annotations

import logging
from datetime import datetime

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction

from audit.models import AccessLog, AuditEvent
from core.actors import Actor
from core.context import current_request_id
from core.kept_cursor import kept_cursor
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
    event = audit_event_new(
        action=action,
        actor=actor,
        organization_id=organization_id,
        subject_type=subject_type,
        subject_id=subject_id,
        metadata=metadata,
    )
    event.save(force_insert=True)
    return event


def audit_event_new(
    *,
    action: str,
    actor: Actor,
    organization_id: str = "",
    subject_type: str = "",
    subject_id: str = "",
    metadata: dict | None = None,
) -> AuditEvent:
    """The event `audit_event_record` writes, unsaved: for a service that inserts it together with its own
    rows in one statement (issue 15), inside the same transaction as its change, as audit_event_record
    would. Same rule for `metadata`: ids and codes only."""
    return AuditEvent(
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


def _access_insert_statements() -> tuple[str, str, list]:
    """The access row's INSERT, durable and asynchronously committed, and the model fields in its column
    order. The asynchronous one sets `synchronous_commit = off` for its own (autocommit) transaction inside
    the statement, so it is still one round trip on the request's own connection."""
    model_fields = [field for field in AccessLog._meta.concrete_fields if not field.primary_key]
    # Names from the model only, values always parameters.
    columns = ", ".join(f'"{field.column}"' for field in model_fields)
    insert = f'INSERT INTO "{AccessLog._meta.db_table}" ({columns})'
    placeholders = ", ".join(["%s"] * len(model_fields))
    durable = f"{insert} VALUES ({placeholders})"
    asynchronous = (
        f"{insert} SELECT {placeholders} "  # noqa: S608 (names are the model's)
        "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous_commit"
    )
    return durable, asynchronous, model_fields


_ACCESS_INSERT_DURABLE, _ACCESS_INSERT_ASYNCHRONOUS, _ACCESS_FIELDS = _access_insert_statements()
_ACCESS_FIELD_NAMES = frozenset(field.name for field in _ACCESS_FIELDS)
# How each column's value becomes its parameter when it already has the column's usual Python type, exactly as
# the field's get_db_prep_save would make it: text as is, an int through the backend's integer adapter, an aware
# datetime through its datetime adapter. Anything else (the JSON list, the IP address, a value of another type,
# a naive datetime) goes through the field's own conversion.
_TEXT, _INTEGER, _DATETIME = "text", "integer", "datetime"
_KINDS = {
    "CharField": _TEXT,
    "PositiveIntegerField": _INTEGER,
    "PositiveSmallIntegerField": _INTEGER,
    "DateTimeField": _DATETIME,
}
_ACCESS_COLUMNS = tuple(
    (field, field.name, _KINDS.get(field.get_internal_type()), field.get_internal_type()) for field in _ACCESS_FIELDS
)


def _access_params(fields: dict, conn) -> list:
    """The INSERT's parameters in column order, as the model's save would send them (issue 15: Django's generic
    get_db_prep_save on every column was about a third of the row's CPU)."""
    ops = conn.ops
    params = []
    for field, name, kind, internal_type in _ACCESS_COLUMNS:
        if name not in fields:
            params.append(field.get_db_prep_save(field.get_default(), conn))
            continue
        value = fields[name]
        value_type = type(value)
        if kind is _TEXT and value_type is str:
            params.append(value)
        elif kind is _INTEGER and value_type is int:
            params.append(ops.adapt_integerfield_value(value, internal_type))
        elif kind is _DATETIME and value_type is datetime and value.tzinfo is not None:
            params.append(ops.adapt_datetimefield_value(value))
        else:
            params.append(field.get_db_prep_save(value, conn))
    return params


def access_log_record(*, durable: bool = True, **fields) -> None:
    """One round trip: a single INSERT in autocommit, no read before it, no model instance (issue 15).

    `durable=False` (the row of a safe-method request) commits the row asynchronously on PostgreSQL: it is
    inserted, and visible, before this returns, but its WAL may be flushed up to 3 x wal_writer_delay later,
    so a PostgreSQL or OS crash in that window can lose it (docs/decisions.md, issue 15). Only in autocommit:
    inside a transaction the setting would carry over to that transaction's commit (a service's writes and
    audit events), so there the row is part of that transaction as usual. SQLite: the ORM's INSERT."""
    conn = connections[DEFAULT_DB_ALIAS]
    if conn.vendor != "postgresql":
        AccessLog(**fields).save(force_insert=True)
        return
    if unknown := fields.keys() - _ACCESS_FIELD_NAMES:
        raise TypeError(f"AccessLog has no field(s) {sorted(unknown)}")  # as the model's constructor would
    asynchronous = not durable and not conn.in_atomic_block
    params = _access_params(fields, conn)
    # The connection's kept server-binding cursor (core.kept_cursor), the INSERT a prepared statement unless
    # settings.DB_PREPARED_STATEMENTS is off: PostgreSQL then neither parses nor plans it again (about half the
    # row's server CPU, docs/decisions.md issue 15).
    kept_cursor(conn).execute(_ACCESS_INSERT_ASYNCHRONOUS if asynchronous else _ACCESS_INSERT_DURABLE, params)


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
