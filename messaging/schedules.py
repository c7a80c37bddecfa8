"""messaging's periodic tasks, registered in messaging/apps.py and installed by
`manage.py setup_periodic_tasks` (`name` must stay stable: renaming creates a new task and disables the old)."""

from core.registry import Interval, Schedule

PERIODIC_TASKS: tuple[Schedule, ...] = (
    Schedule(
        name="messaging: sweep queued messages",
        task="messaging.tasks.sweep_queued_messages",
        when=Interval(seconds=60),
        description="Re-enqueues queued messages that are due and not claimed (a lost broker message only "
        "delays a message).",
    ),
)
