"""webhooks' periodic tasks, registered in webhooks/apps.py and installed by
`manage.py setup_periodic_tasks` (`name` must stay stable: renaming creates a new task and disables the old)."""

from core.registry import Interval, Schedule

PERIODIC_TASKS: tuple[Schedule, ...] = (
    Schedule(
        name="webhooks: sweep due deliveries",
        task="webhooks.tasks.sweep_due_webhook_deliveries",
        when=Interval(seconds=60),
        description="Re-enqueues due webhook deliveries (a lost broker message only delays one) and "
        "disables endpoints failing for WEBHOOK_DISABLE_AFTER_DAYS.",
    ),
)
