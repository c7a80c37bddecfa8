"""core's periodic tasks, registered in core/apps.py and installed by `manage.py setup_periodic_tasks`
(`name` must stay stable: renaming creates a new task and disables the old)."""

from core.registry import Crontab, Interval, Schedule

PERIODIC_TASKS: tuple[Schedule, ...] = (
    Schedule(
        name="core: purge expired idempotency keys",
        task="core.tasks.purge_idempotency_keys",
        when=Crontab(minute="23"),
        description="Deletes Idempotency-Key records past their 24 hours (they are ignored once expired; "
        "this keeps the table, which holds encrypted response bodies, small).",
    ),
    Schedule(
        name="core: compact kept counts",
        task="core.tasks.compact_kept_counts",
        when=Interval(seconds=300),
        description="Folds the parts of each kept count (the Mark lists' totals) into one per combination: "
        "the totals do not change, their reads stay a sum over a few rows.",
    ),
)
