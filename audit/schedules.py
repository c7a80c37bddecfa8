"""audit's periodic tasks, registered in audit/apps.py and installed by `manage.py setup_periodic_tasks`
(crontabs in UTC; `name` must stay stable: renaming creates a new task and disables the old)."""

from core.registry import Crontab, Schedule

PERIODIC_TASKS: tuple[Schedule, ...] = (
    Schedule(
        name="audit: retention purge",
        task="audit.tasks.purge_expired_audit_rows",
        when=Crontab(minute="17", hour="3"),
        description="Deletes access-log and audit-event rows older than AUDIT_RETENTION_YEARS (min 6).",
    ),
)
