"""LoveRescue's periodic tasks (alerts), registered in integration/apps.py and installed by
`manage.py setup_periodic_tasks` (crontabs in UTC; `name` must stay stable: renaming creates a new task
and disables the old)."""

from core.registry import Crontab, Interval, Schedule

PERIODIC_TASKS: tuple[Schedule, ...] = (
    Schedule(
        name="integration: evaluate daily alerts",
        task="integration.tasks.evaluate_daily_alerts",
        when=Crontab(minute="5", hour="5"),
        description="LoveRescue time-based alert rules (STAGNATION: no activity for 7 days), once per UTC day.",
    ),
    Schedule(
        name="integration: journal crisis alerts",
        task="integration.tasks.raise_journal_crisis_alerts",
        when=Interval(seconds=60),
        description="LoveRescue CRISIS alerts of crisis-flagged journal entries, raised a minute after the entry "
        "and dated by the batch (backstop for the message enqueued per entry).",
    ),
    Schedule(
        name="integration: high alert notifications",
        task="integration.tasks.send_high_alert_notifications",
        when=Crontab(minute="*/30"),
        description="LoveRescue HIGH alerts: one email per therapist for un-notified alerts (within the hour).",
    ),
    Schedule(
        name="integration: low alert digest",
        task="integration.tasks.send_low_alert_digest",
        when=Crontab(minute="0", hour="8"),
        description="LoveRescue LOW alerts (milestones): one daily digest email per therapist.",
    ),
)
