"""sync's periodic tasks, registered in sync/apps.py and installed by `manage.py setup_periodic_tasks`
(`name` must stay stable: renaming creates a new task and disables the old)."""

from core.registry import Interval, Schedule

PERIODIC_TASKS: tuple[Schedule, ...] = (
    Schedule(
        name="sync: hourly Cliniko syncs",
        task="sync.tasks.start_scheduled_syncs",
        when=Interval(seconds=3600),
        description="Routiq: starts a comprehensive Cliniko sync (incremental when a run completed before) for "
        "every organization with a connection and sync enabled; one running already is left to finish.",
    ),
    Schedule(
        name="sync: resume stalled sync runs",
        task="sync.tasks.resume_stalled_runs",
        when=Interval(seconds=60),
        description="Routiq: queues again the sync runs whose chunk lease expired (a worker died) and fails "
        "runs older than CLINIKO_RUN_MAX_HOURS (error `stalled`), so no run stays running forever.",
    ),
)
