"""sync: every write of the Cliniko sync (connection, runs, the chunked engine). docs/routiq.md.

Public functions (keyword-only; `actor` is a core.actors.Actor):

    cliniko_connect(*, organization, api_key: str, base_url: str = "", actor) -> ClinikoConnection
        Validates the key (non-empty printable, no spaces, <= 200 chars) and the base URL (https; plain http
        only with OUTBOUND_ALLOW_LOOPBACK) by sync.clients' rules -> Invalid naming `api_key` / `base_url`.
        Stores the key encrypted; the shard comes from its suffix. Reconnecting replaces the key and resets
        the incremental watermark, the credential check and the business country (the next run is full).
        Audit `sync.cliniko_connected` (shard, whether a base URL is set, whether it replaced a key; never
        the key).

    cliniko_test_connection(*, organization, actor=None) -> dict
        One request to Cliniko. {"ok": True, "shard", "total_patients", "checked_at"} or {"ok": False,
        "code": "cliniko_http_401" | "cliniko_http_500" | ..., "checked_at"}; never raises for a vendor
        failure. Records credentials_valid (False only for a refused key) and credentials_checked_at.
        No connection -> Conflict code CLINIKO_NOT_CONNECTED.

    sync_run_start(*, organization, mode: str, trigger: str, requested_by=None, actor, full=False, now=None)
        -> tuple[SyncRun, bool]
        At most one pending/running run per organization: a start while one is active returns that run and
        False (the connection row lock serialises starts; the partial unique index is the backstop).
        No connection -> Conflict CLINIKO_NOT_CONNECTED; unknown mode -> Invalid naming `mode`; unknown
        trigger -> Invalid naming `trigger`. Incremental (updated_since = the watermark minus
        CLINIKO_INCREMENTAL_MARGIN_MINUTES) when the connection has a watermark and `full` is false.
        The first chunk is enqueued after commit. Audit `sync.run_started`.

    sync_run_chunk(*, run_id: int, seq: int | None = None, now=None, client=None) -> dict
        One chunk of a run (what the task `sync.tasks.sync_run_chunk` calls): claims the run with a lease,
        fetches one page or one batch of pages, imports them (sync.importing), moves the cursor, counts and
        progress, finishes or fails the run, and enqueues the next chunk after commit.
        Returns {"result": "continued" | "deferred" | "finished" | "skipped", ...}.

    sync_runs_resume_stalled(*, now=None) -> dict
        The beat sweeper: re-enqueues active runs whose lease expired; fails runs older than
        CLINIKO_RUN_MAX_HOURS (error `stalled`).

    sync_schedule_hourly(*, now=None) -> dict
        Every organization with a connection and sync_enabled: sync_run_start(comprehensive, schedule).

    run_progress(run, *, now=None) -> {"progress_percentage": float, "estimated_completion": datetime | None}
        Read-only helper for the API/admin (a run's progress from its steps and counts).

Nothing here logs or stores the API key, a patient's name, phone, email or notes: errors are codes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from audit.services import audit_event_record
from core.actors import Actor
from core.domain import Conflict, Invalid
from core.time import utc_now
from sync.clients import (
    ClinikoAuthError,
    ClinikoClient,
    ClinikoError,
    ClinikoPermanentError,
    _check_base_url,
    shard_from_key,
)
from sync.models import ClinikoConnection, SyncRun

logger = logging.getLogger("sync.services")

API_KEY_MAX_LENGTH = 200
NOT_CONNECTED = "CLINIKO_NOT_CONNECTED"

# Steps of each mode, in order. Appointment types and practitioners are read in full every time (a few
# requests); patients and appointments incrementally when the connection has a watermark.
STEPS_BY_MODE: dict[str, tuple[str, ...]] = {
    SyncRun.Mode.COMPREHENSIVE: ("business", "practitioners", "appointment_types", "patients", "appointments"),
    SyncRun.Mode.BASIC: ("patients", "appointments"),
    SyncRun.Mode.PATIENTS_ONLY: ("patients",),
}
STEP_LABELS = {
    "business": "Reading the business",
    "practitioners": "Processing practitioners",
    "appointment_types": "Processing appointment types",
    "patients": "Processing patients",
    "appointments": "Processing appointments",
}
# Modes whose completed run moves the incremental watermark (they read patients AND appointments).
WATERMARK_MODES = (SyncRun.Mode.COMPREHENSIVE, SyncRun.Mode.BASIC)


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(message, details={"field": field})


def _audit(action: str, *, actor: Actor, organization, subject_type: str, subject_id: str, **metadata) -> None:
    audit_event_record(
        action=action,
        actor=actor,
        organization_id=organization.public_id,
        subject_type=subject_type,
        subject_id=subject_id,
        metadata=metadata,
    )


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def incremental_margin() -> timedelta:
    return timedelta(minutes=_setting("CLINIKO_INCREMENTAL_MARGIN_MINUTES", 10))


def run_max_age() -> timedelta:
    return timedelta(hours=_setting("CLINIKO_RUN_MAX_HOURS", 6))


# --- Connection ----------------------------------------------------------------------------------


def _clean_api_key(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid("api_key", "The Cliniko API key is required")
    key = value.strip()
    if len(key) > API_KEY_MAX_LENGTH or any(ord(ch) < 33 or ord(ch) == 127 for ch in key):
        raise _invalid("api_key", "This is not a Cliniko API key")
    return key


def _clean_base_url(value: Any) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or len(value) > 300:
        raise _invalid("base_url", "The base URL must be an https URL")
    try:
        return _check_base_url(value)
    except ClinikoPermanentError as exc:
        message = (
            "The base URL must use https"
            if exc.code == "cliniko_base_url_not_https"
            else "The base URL must be an https URL without credentials, query or fragment"
        )
        raise _invalid("base_url", message) from None


@transaction.atomic
def cliniko_connect(*, organization, api_key: str, base_url: str = "", actor: Actor) -> ClinikoConnection:
    key = _clean_api_key(api_key)
    url = _clean_base_url(base_url)
    connection = ClinikoConnection.objects.select_for_update().filter(organization=organization).first()
    reconnected = connection is not None
    if connection is None:
        connection = ClinikoConnection(organization=organization)
    connection.api_key = key
    connection.base_url = url
    connection.shard = "" if url else shard_from_key(key)
    connection.business_country = ""
    connection.credentials_valid = None
    connection.credentials_checked_at = None
    connection.last_successful_sync_started_at = None  # a new key may be another account: full run next
    connection.save()
    _audit(
        "sync.cliniko_connected",
        actor=actor,
        organization=organization,
        subject_type="cliniko_connection",
        subject_id=organization.public_id,
        shard=connection.shard,
        base_url_set=bool(url),
        reconnected=reconnected,
    )
    return connection


def _connection_of(organization, *, lock: bool = False) -> ClinikoConnection:
    queryset = ClinikoConnection.objects.filter(organization=organization)
    if lock:
        queryset = queryset.select_for_update()
    connection = queryset.first()
    if connection is None:
        raise Conflict("This organization has no Cliniko connection", code=NOT_CONNECTED)
    return connection


def cliniko_client(connection: ClinikoConnection, **options) -> ClinikoClient:
    """The Cliniko client of a connection (key decrypted here only; tests pass clock/sleep/budget)."""
    return ClinikoClient(api_key=connection.api_key, base_url=connection.base_url or None, **options)


def cliniko_test_connection(
    *, organization, actor: Actor | None = None, client: ClinikoClient | None = None, now: datetime | None = None
) -> dict:
    connection = _connection_of(organization)
    result: dict[str, Any]
    valid: bool | None
    try:
        client = client or cliniko_client(connection)
        check = client.check_connection()
    except ClinikoAuthError as exc:
        result, valid = {"ok": False, "code": exc.code}, False
    except ClinikoError as exc:
        result, valid = {"ok": False, "code": exc.code}, None
    else:
        result, valid = {"ok": True, "shard": check.shard, "total_patients": check.total_patients}, True
    checked_at = now or utc_now()
    result["checked_at"] = checked_at
    with transaction.atomic():
        updated = {"credentials_checked_at": checked_at}
        if valid is not None:
            updated["credentials_valid"] = valid
        ClinikoConnection.objects.filter(pk=connection.pk).update(**updated)
        _audit(
            "sync.cliniko_connection_tested",
            actor=actor or Actor.system("sync"),
            organization=organization,
            subject_type="cliniko_connection",
            subject_id=organization.public_id,
            ok=result["ok"],
            code=result.get("code", ""),
        )
    return result


# --- Runs ----------------------------------------------------------------------------------------


def _chunk_grace() -> timedelta:
    """How long a queued chunk may wait for a worker before the sweeper enqueues it again."""
    return timedelta(seconds=_setting("CLINIKO_CHUNK_QUEUE_GRACE_SECONDS", 300))


def _enqueue_chunk(run_id: int, seq: int, countdown: float = 0) -> None:
    from sync.tasks import sync_run_chunk

    sync_run_chunk.apply_async(args=[run_id], kwargs={"seq": seq}, countdown=max(0, int(countdown)))


def _enqueue_after_commit(run_id: int, seq: int, countdown: float = 0) -> None:
    transaction.on_commit(lambda: _enqueue_chunk(run_id, seq, countdown), robust=True)


@transaction.atomic
def sync_run_start(
    *,
    organization,
    mode: str,
    trigger: str,
    requested_by=None,
    actor: Actor,
    full: bool = False,
    now: datetime | None = None,
) -> tuple[SyncRun, bool]:
    if mode not in STEPS_BY_MODE:
        raise _invalid("mode", f"mode must be one of {', '.join(STEPS_BY_MODE)}")
    if trigger not in SyncRun.Trigger.values:
        raise _invalid("trigger", f"trigger must be one of {', '.join(SyncRun.Trigger.values)}")
    now = now or utc_now()
    connection = _connection_of(organization, lock=True)  # serialises starts of this organization
    active = SyncRun.objects.filter(organization=organization, status__in=SyncRun.ACTIVE_STATUSES).first()
    if active is not None:
        return active, False
    steps = list(STEPS_BY_MODE[mode])
    if "business" not in steps and not connection.business_country:
        steps.insert(0, "business")  # phone numbers are read in the business's country
    watermark = connection.last_successful_sync_started_at
    incremental = watermark is not None and not full
    run = SyncRun(
        organization=organization,
        mode=mode,
        trigger=trigger,
        incremental=incremental,
        updated_since=(watermark - incremental_margin()) if incremental else None,
        status=SyncRun.Status.PENDING,
        current_step=STEP_LABELS[steps[0]],
        total_steps=len(steps),
        completed_steps=0,
        cursor=_new_cursor(steps),
        lease_until=now + _chunk_grace(),
        requested_by=requested_by,
        created_at=now,
    )
    try:
        with transaction.atomic():
            run.save()
    except IntegrityError:  # the partial unique index: a run started without the lock (never by us)
        active = SyncRun.objects.filter(organization=organization, status__in=SyncRun.ACTIVE_STATUSES).first()
        if active is None:
            raise
        return active, False
    _audit(
        "sync.run_started",
        actor=actor,
        organization=organization,
        subject_type="sync_run",
        subject_id=run.public_id,
        mode=mode,
        trigger=trigger,
        incremental=incremental,
    )
    _enqueue_after_commit(run.pk, 0)
    return run, True


def _new_cursor(steps: list[str]) -> dict:
    return {
        "steps": steps,
        "step": 0,  # index into steps
        "collection": 0,  # index into the step's collections
        "page": 1,  # next page number (when the collection's total is known)
        "total": None,  # the collection's total_entries, once its first page is read
        "next_url": None,  # a `next` link to follow (no total, or records added meanwhile)
        "received": 0,  # distinct records received from the current collection
        "step_total": 0,  # records announced by the current step's collections so far
        "step_done": 0,  # records of the current step processed
        "seq": 0,  # chunk sequence: a queued chunk with another seq is a duplicate and does nothing
        "token": None,  # the lease holder's token (None: queued, no worker on it)
        "attempts": 0,  # claims of the current position without progress (a crashing chunk fails the run)
        "deferrals": 0,  # consecutive rate-limit deferrals
        "incomplete": [],  # collections that delivered fewer records than they announced
    }


def run_progress(run: SyncRun, *, now: datetime | None = None) -> dict:
    """Progress percentage (0-100) and estimated completion of a run, from its steps and counts."""
    if run.status in (SyncRun.Status.COMPLETED, SyncRun.Status.PARTIAL, SyncRun.Status.FAILED):
        return {"progress_percentage": 100.0, "estimated_completion": run.completed_at}
    total_steps = run.total_steps or 1
    cursor = run.cursor or {}
    step_total = cursor.get("step_total") or 0
    fraction = min(1.0, (cursor.get("step_done") or 0) / step_total) if step_total else 0.0
    done = min(1.0, (run.completed_steps + fraction) / total_steps)
    estimated = None
    if run.started_at is not None and done > 0:
        elapsed = (now or utc_now()) - run.started_at
        estimated = run.started_at + elapsed / done
    return {"progress_percentage": round(done * 100, 1), "estimated_completion": estimated}
