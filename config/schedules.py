"""The platform's periodic tasks, installed into django-celery-beat by `manage.py setup_periodic_tasks`.

Each app adds its entries here. Schedules stay editable in the admin afterwards; the command only
creates or updates the entries it owns (matched by name) and never removes staff-made ones.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Crontab:
    minute: str = "0"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"


@dataclass(frozen=True)
class Interval:
    seconds: int


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    when: Crontab | Interval
    description: str = ""


PERIODIC_TASKS: tuple[Schedule, ...] = (
    Schedule(
        name="audit: retention purge",
        task="audit.tasks.purge_expired_audit_rows",
        when=Crontab(minute="17", hour="3"),
        description="Deletes access-log and audit-event rows older than AUDIT_RETENTION_YEARS (min 6).",
    ),
)
