"""Install every app's periodic tasks into django-celery-beat.

The entries come from `core.registry.periodic_tasks()`: each app declares its own in `<app>/schedules.py`
and registers them in its AppConfig.ready() (see core/registry.py), so this command imports no app.

Ownership: a PeriodicTask belongs to this command when its description contains `MANAGED_MARKER`
(the command appends it to every entry it writes). Only the name decides which row a declared entry
updates; only the marker decides which rows may be disabled when their entry is gone from the code:

- declared entry, no row of that name   -> created (schedule, task, description + marker, enabled)
- declared entry, row of that name      -> updated where task/schedule/description/enabled differ,
                                           otherwise left untouched (no save, so beat sees no change)
- owned row (marker) no longer declared -> disabled (never deleted: its history stays in the admin)
- any other row (staff-made, no marker) -> never touched

Run it on every deploy (after `migrate`). It is idempotent: a second run creates and changes nothing.
Every task name is checked against the Celery registry first; an unknown name fails the command
before anything is written.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from core import registry
from core.registry import Crontab, Interval, Schedule

MANAGED_MARKER = "[managed by setup_periodic_tasks]"
SCHEDULE_TIMEZONE = "UTC"
_CRONTAB_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")


def managed_description(entry: Schedule) -> str:
    return f"{entry.description} {MANAGED_MARKER}".strip()


def is_owned(task: PeriodicTask) -> bool:
    return MANAGED_MARKER in (task.description or "")


def registered_task_names() -> set[str]:
    from celery import current_app  # the project's Celery app (config/celery.py, loaded with the settings)

    app = current_app._get_current_object()
    app.loader.import_default_modules()  # runs autodiscovery: imports every installed app's tasks.py
    return set(app.tasks.keys())


def validate(entries: tuple[Schedule, ...] | list[Schedule]) -> None:
    problems = []
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            problems.append(f"duplicate name {entry.name!r}")
        seen.add(entry.name)
        if not isinstance(entry.when, Crontab | Interval):
            problems.append(f"{entry.name!r}: schedule must be Crontab or Interval, not {entry.when!r}")
        elif isinstance(entry.when, Interval) and entry.when.seconds <= 0:
            problems.append(f"{entry.name!r}: interval must be positive")
    registered = registered_task_names()
    for entry in entries:
        if entry.task not in registered:
            problems.append(f"{entry.name!r}: task {entry.task!r} is not a registered Celery task")
    if problems:
        raise CommandError("the registered periodic tasks (core.registry) are invalid:\n  " + "\n  ".join(problems))


def _crontab_matches(row: CrontabSchedule | None, when: Crontab) -> bool:
    return (
        row is not None
        and all(getattr(row, field) == getattr(when, field) for field in _CRONTAB_FIELDS)
        and str(row.timezone) == SCHEDULE_TIMEZONE
    )


def _interval_matches(row: IntervalSchedule | None, when: Interval) -> bool:
    return row is not None and row.every == when.seconds and row.period == IntervalSchedule.SECONDS


def _schedule_for(entry: Schedule, current: PeriodicTask | None) -> dict:
    """The schedule fields the task should have. Reuses the current row when it already matches (so an
    unchanged entry stays byte-identical), otherwise an existing equal row, otherwise a new one. Schedule
    rows may be shared between tasks, so they are never edited in place."""
    when = entry.when
    if isinstance(when, Crontab):
        if current is not None and _crontab_matches(current.crontab, when):
            crontab = current.crontab
        else:
            values = {field: getattr(when, field) for field in _CRONTAB_FIELDS}
            crontab = CrontabSchedule.objects.filter(**values, timezone=SCHEDULE_TIMEZONE).order_by("pk").first()
            if crontab is None:
                crontab = CrontabSchedule.objects.create(**values, timezone=SCHEDULE_TIMEZONE)
        return {"crontab": crontab, "interval": None, "solar": None, "clocked": None}
    if current is not None and _interval_matches(current.interval, when):
        interval = current.interval
    else:
        interval = (
            IntervalSchedule.objects.filter(every=when.seconds, period=IntervalSchedule.SECONDS).order_by("pk").first()
        )
        if interval is None:
            interval = IntervalSchedule.objects.create(every=when.seconds, period=IntervalSchedule.SECONDS)
    return {"crontab": None, "interval": interval, "solar": None, "clocked": None}


class Command(BaseCommand):
    help = "Create or update the platform's periodic tasks (each app's schedules.py) in django-celery-beat."

    def handle(self, *args, **options):
        entries = tuple(registry.periodic_tasks())
        validate(entries)
        counts = {"created": 0, "updated": 0, "unchanged": 0, "disabled": 0}
        with transaction.atomic():
            for entry in entries:
                outcome, detail = self._install(entry)
                counts[outcome] += 1
                self.stdout.write(f"{outcome}: {entry.name} ({entry.task}){detail}")
            declared = {entry.name for entry in entries}
            stale = PeriodicTask.objects.select_for_update().exclude(name__in=declared).filter(enabled=True)
            for task in stale.order_by("name"):
                if not is_owned(task):
                    continue  # staff-made: never ours to touch
                task.enabled = False
                task.save()  # save(), not update(): django-celery-beat's signals tell beat to reload
                counts["disabled"] += 1
                self.stdout.write(f"disabled: {task.name} ({task.task}): no longer declared by any app")
        self.stdout.write(", ".join(f"{count} {outcome}" for outcome, count in counts.items()))

    def _install(self, entry: Schedule) -> tuple[str, str]:
        current = (
            PeriodicTask.objects.select_for_update(of=("self",))
            .select_related("crontab", "interval")
            .filter(name=entry.name)
            .first()
        )
        wanted = {
            "task": entry.task,
            "description": managed_description(entry),
            "enabled": True,
            **_schedule_for(entry, current),
        }
        if current is None:
            PeriodicTask.objects.create(name=entry.name, **wanted)
            return "created", ""
        changed = [field for field, value in wanted.items() if getattr(current, field) != value]
        if not changed:
            return "unchanged", ""
        for field in changed:
            setattr(current, field, wanted[field])
        current.save()
        return "updated", ": " + ", ".join(changed)
