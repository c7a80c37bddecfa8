"""Thin Celery tasks over sync.services (queue `sync`): they take ids, are idempotent and time-limited.

A run is worked by `sync_run_chunk` tasks, each one chunk (sync.services.sync_run_chunk): a chunk never
outlives CLINIKO_CHUNK_TIME_LIMIT_SECONDS; its lease is longer, so a lease still valid means the worker may be
alive, and an expired one is resumed by `resume_stalled_runs` (every minute).
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from sync import services

CHUNK_TIME_LIMIT = getattr(settings, "CLINIKO_CHUNK_TIME_LIMIT_SECONDS", 300)


@shared_task(
    name="sync.tasks.sync_run_chunk", soft_time_limit=max(30, CHUNK_TIME_LIMIT - 60), time_limit=CHUNK_TIME_LIMIT
)
def sync_run_chunk(run_id: int, seq: int | None = None) -> dict:
    """One chunk of a sync run; it queues the next one itself (after commit). A duplicate or late message
    (another `seq`, or a run that finished) does nothing."""
    return services.sync_run_chunk(run_id=run_id, seq=seq)


@shared_task(name="sync.tasks.resume_stalled_runs", soft_time_limit=50, time_limit=60)
def resume_stalled_runs() -> dict[str, int]:
    """Every minute (beat): queue again the runs whose lease expired; fail those older than
    CLINIKO_RUN_MAX_HOURS (`stalled`)."""
    return services.sync_runs_resume_stalled()


@shared_task(name="sync.tasks.start_scheduled_syncs", soft_time_limit=50, time_limit=60)
def start_scheduled_syncs() -> dict[str, int]:
    """Every hour (beat): a comprehensive run for every organization with Cliniko connected and sync on."""
    return services.sync_schedule_hourly()
