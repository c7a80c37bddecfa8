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
import math
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from audit.services import audit_event_record
from core.actors import Actor
from core.domain import Conflict, Invalid
from core.time import utc_now
from sync.clients import (
    BudgetExhausted,
    ClinikoAppointment,
    ClinikoAppointmentType,
    ClinikoAuthError,
    ClinikoBusiness,
    ClinikoClient,
    ClinikoError,
    ClinikoPatient,
    ClinikoPermanentError,
    ClinikoPractitioner,
    ClinikoTransientError,
    Page,
    _check_base_url,
    _per_page,
    _with_page,
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


CHUNK_QUEUE_GRACE_SECONDS = 300  # a queued chunk may wait this long for a worker before the sweeper re-queues it


def _chunk_grace() -> timedelta:
    return timedelta(seconds=CHUNK_QUEUE_GRACE_SECONDS)


_eager = threading.local()


def _enqueue_chunk(run_id: int, seq: int, countdown: float = 0) -> None:
    from sync.tasks import sync_run_chunk

    if not getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        sync_run_chunk.apply_async(args=[run_id], kwargs={"seq": seq}, countdown=max(0, math.ceil(countdown)))
        return
    # Eager Celery (no worker: a local demo): chunks run here one after another, never nested in each other
    # (each chunk queues the next from its commit), waiting their countdowns.
    pending = getattr(_eager, "pending", None)
    if pending is not None:
        pending.append((run_id, seq, countdown))
        return
    _eager.pending = [(run_id, seq, countdown)]
    try:
        while _eager.pending:
            run_id, seq, countdown = _eager.pending.pop(0)
            if countdown > 0:
                time.sleep(countdown)
            sync_run_chunk(run_id=run_id, seq=seq)
    finally:
        _eager.pending = None


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


# --- Engine --------------------------------------------------------------------------------------
#
# A run is worked by chunks (sync.tasks.sync_run_chunk). A chunk claims the run (a lease: cursor.token +
# lease_until, longer than the task's hard time limit), then works in waves: one page (a collection's first
# page, or a `next` link) or one batch of concurrent pages (when total_entries is known), each wave imported
# and the cursor moved in one transaction, until the chunk's page or time allowance is used; then it
# releases the lease and enqueues the next chunk after commit. Lost work is at most one wave: imports are
# idempotent upserts, so a wave fetched again changes nothing.

# (path, resource key, extra parse arguments); `updated_since` only for patients and appointments.
COLLECTIONS: dict[str, tuple[tuple[str, str, dict], ...]] = {
    "business": (("businesses", "businesses", {}),),
    "practitioners": (
        ("practitioners", "practitioners", {}),
        ("practitioners/inactive", "practitioners", {"active": False}),
    ),
    "appointment_types": (
        ("appointment_types", "appointment_types", {}),
        ("appointment_types/archived", "appointment_types", {}),
    ),
    # Archived/deleted patients and cancelled/deleted appointments are read in full runs too: full and
    # incremental runs then end in the same state.
    "patients": (
        ("patients", "patients", {}),
        ("patients/archived", "patients", {}),
        ("patients/deleted", "patients", {}),
    ),
    "appointments": (
        ("individual_appointments", "individual_appointments", {}),
        ("individual_appointments/cancelled", "individual_appointments", {}),
        ("individual_appointments/deleted", "individual_appointments", {}),
    ),
}
INCREMENTAL_STEPS = ("patients", "appointments")
COUNTED_STEPS = ("patients", "appointments")  # records_total/processed count these (the rest are lookups)
MAX_CHUNK_ATTEMPTS = 3  # claims of one position without progress (a chunk that keeps crashing)


def _chunk_lease() -> timedelta:
    """Longer than the chunk task's hard time limit: a lease still valid means its worker may be alive."""
    return timedelta(seconds=_setting("CLINIKO_CHUNK_TIME_LIMIT_SECONDS", 300) + 60)


def _chunk_seconds() -> float:
    """A chunk starts no new wave after this long (the task's soft limit leaves room for one more)."""
    return float(_setting("CLINIKO_CHUNK_SECONDS", 90))


def _chunk_pages() -> int:
    return max(1, int(_setting("CLINIKO_CHUNK_PAGES", 20)))


MAX_RATE_LIMIT_DEFERRALS = 30  # 429 deferrals in a row without progress before the run fails


def _max_deferrals() -> int:
    return MAX_RATE_LIMIT_DEFERRALS


BUDGET_WAIT_SECONDS = 20.0  # a page waits this long for a slot of the shared budget, else the chunk defers
ENGINE_RATE_LIMIT_WAIT_SECONDS = 60.0  # one 429 wait per page inside a chunk; a second 429 defers the chunk


def engine_client(connection: ClinikoConnection, **options) -> ClinikoClient:
    """The client chunks use: at most one 429 wait per page (capped), so a chunk never sleeps long."""
    options.setdefault("max_rate_limit_retries", 1)
    options.setdefault(
        "max_rate_limit_wait",
        min(ENGINE_RATE_LIMIT_WAIT_SECONDS, _setting("CLINIKO_MAX_RATE_LIMIT_WAIT_SECONDS", 120.0)),
    )
    return cliniko_client(connection, **options)


@dataclass
class _Wave:
    """What one wave fetched: pages in order (a contiguous prefix of what was asked), where the cursor goes
    next, and why the chunk stops early (a deferral or an error), if it does."""

    pages: list[Page] = field(default_factory=list)
    first_total: int | None = None  # the collection's total, when this wave read its first page
    next_page: int | None = None
    next_url: str | None = None
    collection_done: bool = False
    defer_seconds: float | None = None
    rate_limited: bool = False
    error: ClinikoError | None = None


def _collection_url(client: ClinikoClient, run: SyncRun, step: str, path: str) -> str:
    updated_since = run.updated_since if (run.incremental and step in INCREMENTAL_STEPS) else None
    return client.url(path, updated_since=updated_since)


def _fetch_wave(client: ClinikoClient, run: SyncRun, cursor: dict, max_pages: int) -> _Wave:
    step = cursor["steps"][cursor["step"]]
    path, key, _ = COLLECTIONS[step][cursor["collection"]]
    first_url = _collection_url(client, run, step, path)
    wave = _Wave()
    if cursor["next_url"]:
        urls = [cursor["next_url"]]
    elif cursor["total"] is None:
        urls = [first_url]
    else:
        last = max(1, math.ceil(cursor["total"] / _per_page(first_url)))
        numbers = list(range(cursor["page"], min(last, cursor["page"] + max_pages - 1) + 1))
        urls = [_with_page(first_url, number) for number in numbers]
    results: list[Page | BaseException] = []
    if len(urls) == 1:
        try:
            results.append(client.get_page(urls[0], key, budget_timeout=BUDGET_WAIT_SECONDS))
        except (ClinikoError, BudgetExhausted) as exc:
            results.append(exc)
    else:
        with ThreadPoolExecutor(max_workers=min(client.concurrency, len(urls)), thread_name_prefix="sync-page") as pool:
            futures = [pool.submit(client.get_page, url, key, budget_timeout=BUDGET_WAIT_SECONDS) for url in urls]
            for future in futures:
                try:
                    results.append(future.result())
                except (ClinikoError, BudgetExhausted) as exc:
                    results.append(exc)
    for result in results:
        if isinstance(result, BaseException):
            if isinstance(result, BudgetExhausted):
                wave.defer_seconds = max(1.0, result.retry_after)
            elif isinstance(result, ClinikoTransientError) and result.code == "cliniko_rate_limited":
                wave.defer_seconds = max(1.0, result.retry_after or 60.0)
                wave.rate_limited = True
            else:
                wave.error = result
            break
        wave.pages.append(result)
    if not wave.pages:
        return wave
    first_read = cursor["total"] is None and not cursor["next_url"]
    if first_read:
        wave.first_total = wave.pages[0].total_entries
    last_page = wave.pages[-1]
    if cursor["next_url"] or (first_read and wave.first_total is None):
        # Following links: one page at a time.
        wave.next_url = last_page.next_url
        wave.next_page = None
        wave.collection_done = last_page.next_url is None
        return wave
    total = wave.first_total if first_read else cursor["total"]
    last = max(1, math.ceil(total / _per_page(first_url)))
    fetched_to = (cursor["page"] if not first_read else 1) + len(wave.pages) - 1
    if fetched_to >= last:
        # The last page may still link further (records added while reading): follow it.
        wave.next_url = last_page.next_url
        wave.collection_done = last_page.next_url is None
    else:
        wave.next_page = fetched_to + 1
    return wave


def _parse(step: str, collection: int, records: list[dict]) -> list:
    _, _, extra = COLLECTIONS[step][collection]
    parser = {
        "business": ClinikoBusiness.from_api,
        "practitioners": ClinikoPractitioner.from_api,
        "appointment_types": ClinikoAppointmentType.from_api,
        "patients": ClinikoPatient.from_api,
        "appointments": ClinikoAppointment.from_api,
    }[step]
    parsed = (parser(record, **extra) for record in records)
    return [item for item in parsed if item is not None]


def _import(step: str, *, connection: ClinikoConnection, run: SyncRun, records: list, now: datetime) -> int:
    """Import one wave's records of a step; returns how many failed."""
    from sync import importing

    organization = run.organization
    if not records:
        return 0
    if step == "business":
        country = next((business.country_code for business in records if business.country_code), "")
        if country and country != connection.business_country:
            ClinikoConnection.objects.filter(pk=connection.pk).update(business_country=country)
            connection.business_country = country
        return 0
    if step == "patients":
        counts = importing.import_patients(
            organization=organization, records=records, region=connection.business_country, now=now, run=run
        )
    elif step == "appointments":
        counts = importing.import_appointments(organization=organization, records=records, now=now, run=run)
    elif step == "appointment_types":
        counts = importing.import_appointment_types(organization=organization, records=records, now=now, run=run)
    else:
        counts = importing.import_practitioners(organization=organization, records=records, now=now, run=run)
    return int(getattr(counts, "failed", 0) or 0)


def _now(clock: Callable[[], datetime] | None) -> datetime:
    return clock() if clock is not None else utc_now()


def _error(step: str, code: str, at: datetime, **extra) -> dict:
    return {"step": step, "code": code, "at": at.isoformat(), **extra}


def _release(run: SyncRun, *, now: datetime, countdown: float = 0) -> None:
    """Drop the lease and queue the next chunk (after commit); the sweeper re-queues it if it is lost."""
    cursor = run.cursor
    cursor["token"] = None
    cursor["seq"] += 1
    run.lease_until = now + timedelta(seconds=countdown) + _chunk_grace()
    _enqueue_after_commit(run.pk, cursor["seq"], countdown)


def _finish(run: SyncRun, connection: ClinikoConnection, *, status: str, now: datetime, code: str = "") -> None:
    """End a run (inside the caller's transaction, run row locked). Only a completed run of a mode that reads
    patients and appointments moves the incremental watermark."""
    step = run.cursor["steps"][min(run.cursor["step"], len(run.cursor["steps"]) - 1)]
    if code:
        run.errors = [*run.errors, _error(step, code, now)]
    run.status = status
    run.completed_at = now
    run.lease_until = None
    run.cursor["token"] = None
    if status != SyncRun.Status.FAILED:
        run.completed_steps = run.total_steps
        run.current_step = "Completed"
    run.save()
    if status == SyncRun.Status.COMPLETED and run.mode in WATERMARK_MODES:
        ClinikoConnection.objects.filter(pk=connection.pk).update(last_successful_sync_started_at=run.started_at)
    if code == "cliniko_http_401":
        ClinikoConnection.objects.filter(pk=connection.pk).update(credentials_valid=False, credentials_checked_at=now)
    _audit(
        "sync.run_finished",
        actor=Actor.system("sync"),
        organization=run.organization,
        subject_type="sync_run",
        subject_id=run.public_id,
        status=status,
        code=code,
        records_processed=run.records_processed,
        records_failed=run.records_failed,
    )


def _claim(run_id: int, seq: int | None, now: datetime) -> tuple[SyncRun, ClinikoConnection, str] | dict:
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().select_related("organization").filter(pk=run_id).first()
        if run is None or run.status not in SyncRun.ACTIVE_STATUSES:
            return {"result": "skipped", "reason": "not_active"}
        cursor = run.cursor
        if seq is not None and seq != cursor.get("seq"):
            return {"result": "skipped", "reason": "duplicate"}
        if cursor.get("token") and run.lease_until is not None and run.lease_until > now:
            return {"result": "skipped", "reason": "leased"}
        connection = ClinikoConnection.objects.filter(organization_id=run.organization_id).first()
        if connection is None:
            _finish(run, _Gone(), status=SyncRun.Status.FAILED, now=now, code="cliniko_not_connected")
            return {"result": "finished", "status": run.status}
        if (run.started_at or run.created_at) < now - run_max_age():
            _finish(run, connection, status=SyncRun.Status.FAILED, now=now, code="stalled")
            return {"result": "finished", "status": run.status}
        cursor["attempts"] = cursor.get("attempts", 0) + 1
        if cursor["attempts"] > MAX_CHUNK_ATTEMPTS:
            _finish(run, connection, status=SyncRun.Status.FAILED, now=now, code="chunk_failed")
            return {"result": "finished", "status": run.status}
        token = uuid.uuid4().hex
        cursor["token"] = token
        run.lease_until = now + _chunk_lease()
        run.status = SyncRun.Status.RUNNING
        if run.started_at is None:
            run.started_at = now
        run.save()
        return run, connection, token


class _Gone:
    """A connection deleted under a run: _finish has nothing to update."""

    pk = None


def _advance(run: SyncRun, wave: _Wave) -> bool:
    """Move the cursor past what the wave fetched; True when the run's last step is done."""
    cursor = run.cursor
    step = cursor["steps"][cursor["step"]]
    received = sum(len(page.records) for page in wave.pages)
    if wave.first_total is not None:
        cursor["total"] = wave.first_total
        cursor["step_total"] += wave.first_total
        if step in COUNTED_STEPS:
            run.records_total += wave.first_total
    elif cursor["total"] is None and not cursor["next_url"]:
        cursor["total"] = 0 if wave.collection_done else None  # no total from Cliniko: follow links
    cursor["received"] += received
    cursor["step_done"] += received
    cursor["next_url"] = wave.next_url
    if wave.next_page is not None:
        cursor["page"] = wave.next_page
    if not wave.collection_done:
        return False
    if cursor["total"] and cursor["received"] < cursor["total"]:
        # Offset paging lost records (deleted or moved while reading): the run cannot say "completed".
        path = COLLECTIONS[step][cursor["collection"]][0]
        cursor.setdefault("incomplete", []).append(path)
    cursor.update(collection=cursor["collection"] + 1, page=1, total=None, next_url=None, received=0)
    if cursor["collection"] < len(COLLECTIONS[step]):
        return False
    cursor.update(step=cursor["step"] + 1, collection=0, step_total=0, step_done=0)
    run.completed_steps = min(run.total_steps, run.completed_steps + 1)
    if cursor["step"] >= len(cursor["steps"]):
        return True
    run.current_step = STEP_LABELS[cursor["steps"][cursor["step"]]]
    return False


def sync_run_chunk(
    *,
    run_id: int,
    seq: int | None = None,
    clock: Callable[[], datetime] | None = None,
    client: ClinikoClient | None = None,
) -> dict:
    claimed = _claim(run_id, seq, _now(clock))
    if isinstance(claimed, dict):
        return claimed
    run, connection, token = claimed
    try:
        client = client or engine_client(connection)
    except ClinikoError as exc:  # the stored key or base URL no longer passes the client's rules
        with transaction.atomic():
            run = SyncRun.objects.select_for_update().get(pk=run.pk)
            _finish(run, connection, status=SyncRun.Status.FAILED, now=_now(clock), code=exc.code)
        return {"result": "finished", "status": SyncRun.Status.FAILED}
    started = client.clock()
    pages_left = _chunk_pages()
    waves = 0
    while True:
        wave = _fetch_wave(client, run, run.cursor, min(pages_left, client.concurrency))
        now = _now(clock)
        with transaction.atomic():
            locked = SyncRun.objects.select_for_update().select_related("organization").get(pk=run.pk)
            if locked.cursor.get("token") != token or locked.status not in SyncRun.ACTIVE_STATUSES:
                return {"result": "skipped", "reason": "lease_lost"}  # the sweeper gave the run to another
            run = locked
            cursor = run.cursor
            step = cursor["steps"][cursor["step"]]
            failed = 0
            for page in wave.pages:
                records = _parse(step, cursor["collection"], page.records)
                failed += _import(step, connection=connection, run=run, records=records, now=now)
            received = sum(len(page.records) for page in wave.pages)
            if step in COUNTED_STEPS:
                run.records_processed += received
                run.records_success += max(0, received - failed)
                if step == "patients":
                    run.patients_processed += received
                else:
                    run.appointments_processed += received
            if failed:
                run.records_failed += failed
                run.errors = [*run.errors, _error(step, "records_failed", now, count=failed)]
            finished = _advance(run, wave) if wave.pages else False
            if wave.pages:
                cursor["attempts"] = 0
                if not wave.rate_limited:
                    cursor["deferrals"] = 0
            run.lease_until = now + _chunk_lease()
            if finished:
                clean = run.records_failed == 0 and not cursor.get("incomplete")
                if cursor.get("incomplete"):
                    run.errors = [*run.errors, _error(step, "listing_incomplete", now)]
                _finish(run, connection, status=SyncRun.Status.COMPLETED if clean else SyncRun.Status.PARTIAL, now=now)
                return {"result": "finished", "status": run.status}
            if wave.error is not None:
                logger.warning("sync run %s failed: %s", run.public_id, wave.error.code)
                _finish(run, connection, status=SyncRun.Status.FAILED, now=now, code=wave.error.code)
                return {"result": "finished", "status": run.status, "code": wave.error.code}
            if wave.defer_seconds is not None:
                if wave.rate_limited:
                    cursor["deferrals"] = cursor.get("deferrals", 0) + 1
                    if cursor["deferrals"] > _max_deferrals():
                        _finish(run, connection, status=SyncRun.Status.FAILED, now=now, code="cliniko_rate_limited")
                        return {"result": "finished", "status": run.status, "code": "cliniko_rate_limited"}
                cursor["attempts"] = 0  # waiting for the budget is not a crash
                _release(run, now=now, countdown=wave.defer_seconds)
                run.save()
                return {"result": "deferred", "countdown": wave.defer_seconds}
            waves += 1
            pages_left -= len(wave.pages)
            if pages_left <= 0 or client.clock() - started >= _chunk_seconds():
                _release(run, now=now)
                run.save()
                return {"result": "continued", "waves": waves}
            run.save()


# --- Sweeper and schedule ------------------------------------------------------------------------


def sync_runs_resume_stalled(*, now: datetime | None = None) -> dict[str, int]:
    """Every minute (beat). An active run whose lease expired (its worker died, or its queued chunk was
    lost) gets its next chunk queued again; one older than CLINIKO_RUN_MAX_HOURS is failed (`stalled`)."""
    now = now or utc_now()
    cutoff = now - run_max_age()
    candidates = list(
        SyncRun.objects.filter(status__in=SyncRun.ACTIVE_STATUSES)
        .filter(
            Q(lease_until__lt=now) | Q(lease_until__isnull=True) | Q(started_at__lt=cutoff) | Q(created_at__lt=cutoff)
        )
        .values_list("pk", flat=True)[:500]
    )
    resumed = failed = 0
    for run_id in candidates:
        with transaction.atomic():
            run = (
                SyncRun.objects.select_for_update(skip_locked=True)
                .select_related("organization")
                .filter(pk=run_id, status__in=SyncRun.ACTIVE_STATUSES)
                .first()
            )
            if run is None:
                continue  # finished meanwhile, or a chunk holds its row right now
            if (run.started_at or run.created_at) < cutoff:
                connection = ClinikoConnection.objects.filter(organization_id=run.organization_id).first()
                _finish(run, connection or _Gone(), status=SyncRun.Status.FAILED, now=now, code="stalled")
                failed += 1
                continue
            if run.lease_until is not None and run.lease_until >= now:
                continue
            _release(run, now=now)
            run.save()
            resumed += 1
    return {"resumed": resumed, "failed": failed}


def sync_schedule_hourly(*, now: datetime | None = None) -> dict[str, int]:
    """Every hour (beat): a comprehensive run (incremental when possible) for every organization with a
    Cliniko connection and sync enabled; an organization whose run is still going keeps that one."""
    started = running = errors = 0
    connections = list(ClinikoConnection.objects.filter(sync_enabled=True).select_related("organization"))
    for connection in connections:
        try:
            _, created = sync_run_start(
                organization=connection.organization,
                mode=SyncRun.Mode.COMPREHENSIVE,
                trigger=SyncRun.Trigger.SCHEDULE,
                actor=Actor.system("sync.schedule"),
                now=now,
            )
        except Exception:  # one organization's failure never stops the others
            logger.exception("hourly sync: could not start a run for organization %s", connection.organization_id)
            errors += 1
            continue
        started += created
        running += not created
    return {"started": started, "running": running, "errors": errors}
