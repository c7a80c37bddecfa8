"""core's periodic tasks, registered in core/apps.py and installed by `manage.py setup_periodic_tasks`
(`name` must stay stable: renaming creates a new task and disables the old)."""

from core.registry import Crontab, Schedule

PERIODIC_TASKS: tuple[Schedule, ...] = (
    Schedule(
        name="core: purge expired idempotency keys",
        task="core.tasks.purge_idempotency_keys",
        when=Crontab(minute="23"),
        description="Deletes Idempotency-Key records past their 24 hours (they are ignored once expired; "
        "this keeps the table, which holds encrypted response bodies, small).",
    ),
)
