"""patients' periodic tasks, registered in patients/apps.py and installed by
`manage.py setup_periodic_tasks` (`name` must stay stable: renaming creates a new task and disables the old)."""

from core.registry import Interval, Schedule

PERIODIC_TASKS: tuple[Schedule, ...] = (
    Schedule(
        name="patients: send due reminders",
        task="patients.tasks.send_due_reminders",
        when=Interval(seconds=60),
        description="Mark: queues the WhatsApp text of each due appointment reminder through the messaging "
        "outbox (once; never after a cancel or reschedule).",
    ),
    Schedule(
        name="patients: close idle conversations",
        task="patients.tasks.close_idle_conversations",
        when=Interval(seconds=300),
        description="Mark: ends the WhatsApp conversations idle for MARK_CONVERSATION_IDLE_MINUTES "
        "(end_time = the last message) and asks the clinic's responder for their summaries.",
    ),
)
