"""`manage.py setup_periodic_tasks`: installs config.schedules into django-celery-beat, idempotently."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

from config import schedules
from config.schedules import Crontab, Interval, Schedule
from core.management.commands.setup_periodic_tasks import MANAGED_MARKER

pytestmark = pytest.mark.django_db

PURGE_TASK = "audit.tasks.purge_expired_audit_rows"


def run() -> str:
    out = io.StringIO()
    call_command("setup_periodic_tasks", stdout=out)
    return out.getvalue()


def snapshot() -> dict:
    return {
        "tasks": sorted(
            PeriodicTask.objects.values_list(
                "name", "task", "enabled", "description", "crontab_id", "interval_id", "date_changed"
            )
        ),
        "crontabs": CrontabSchedule.objects.count(),
        "intervals": IntervalSchedule.objects.count(),
        "beat_last_update": PeriodicTasks.last_change(),
    }


def purge_entry() -> Schedule:
    entries = [entry for entry in schedules.PERIODIC_TASKS if entry.task == PURGE_TASK]
    assert len(entries) == 1, "config.schedules must declare the audit retention purge exactly once"
    return entries[0]


def test_installs_the_audit_purge_schedule():
    entry = purge_entry()
    assert isinstance(entry.when, Crontab)

    output = run()

    task = PeriodicTask.objects.get(name=entry.name)
    assert task.task == PURGE_TASK
    assert task.enabled is True
    assert task.interval is None
    assert task.description == f"{entry.description} {MANAGED_MARKER}"
    assert (task.crontab.minute, task.crontab.hour) == (entry.when.minute, entry.when.hour)
    assert (task.crontab.day_of_week, task.crontab.day_of_month, task.crontab.month_of_year) == (
        entry.when.day_of_week,
        entry.when.day_of_month,
        entry.when.month_of_year,
    )
    assert str(task.crontab.timezone) == "UTC"
    assert f"created: {entry.name}" in output
    assert PeriodicTask.objects.filter(description__contains=MANAGED_MARKER).count() == len(schedules.PERIODIC_TASKS)


def test_second_run_creates_and_changes_nothing():
    run()
    before = snapshot()

    output = run()

    assert snapshot() == before
    assert "created:" not in output and "updated:" not in output
    assert f"{len(schedules.PERIODIC_TASKS)} unchanged" in output


def test_restores_an_edited_schedule_without_duplicating_rows():
    entry = purge_entry()
    run()
    task = PeriodicTask.objects.get(name=entry.name)
    task.crontab = CrontabSchedule.objects.create(minute="0", hour="12", timezone="Europe/Berlin")
    task.enabled = False
    task.description = "edited"
    task.save()
    crontabs = CrontabSchedule.objects.count()

    output = run()

    task.refresh_from_db()
    assert task.enabled is True
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == (
        entry.when.minute,
        entry.when.hour,
        "UTC",
    )
    assert task.description.endswith(MANAGED_MARKER)
    assert CrontabSchedule.objects.count() == crontabs  # the original UTC row is reused
    assert f"updated: {entry.name}" in output


def test_interval_schedule_and_switching_kinds(monkeypatch):
    monkeypatch.setattr(
        schedules,
        "PERIODIC_TASKS",
        (Schedule(name="core: ping", task="core.tasks.ping", when=Interval(seconds=90), description="Ping."),),
    )
    run()
    task = PeriodicTask.objects.get(name="core: ping")
    assert (task.interval.every, task.interval.period, task.crontab) == (90, IntervalSchedule.SECONDS, None)

    monkeypatch.setattr(
        schedules,
        "PERIODIC_TASKS",
        (Schedule(name="core: ping", task="core.tasks.ping", when=Crontab(minute="*/5"), description="Ping."),),
    )
    run()
    task.refresh_from_db()
    assert task.interval is None
    assert (task.crontab.minute, task.crontab.hour) == ("*/5", "*")


def test_never_touches_a_staff_made_task():
    crontab = CrontabSchedule.objects.create(minute="5", hour="4", timezone="UTC")
    staff = PeriodicTask.objects.create(
        name="audit: staff ad-hoc purge", task=PURGE_TASK, crontab=crontab, description="made in the admin"
    )
    before = PeriodicTask.objects.filter(pk=staff.pk).values().get()

    run()
    run()

    assert PeriodicTask.objects.filter(pk=staff.pk).values().get() == before


def test_disables_an_owned_task_no_longer_declared(monkeypatch):
    extra = Schedule(name="core: ping", task="core.tasks.ping", when=Interval(seconds=60), description="Ping.")
    monkeypatch.setattr(schedules, "PERIODIC_TASKS", (*schedules.PERIODIC_TASKS, extra))
    run()
    assert PeriodicTask.objects.get(name="core: ping").enabled is True
    monkeypatch.undo()

    output = run()

    removed = PeriodicTask.objects.get(name="core: ping")  # disabled, not deleted
    assert removed.enabled is False
    assert "disabled: core: ping" in output
    assert PeriodicTask.objects.get(name=purge_entry().name).enabled is True
    # A third run leaves the disabled row alone.
    changed = removed.date_changed
    assert "disabled:" not in run()
    removed.refresh_from_db()
    assert (removed.enabled, removed.date_changed) == (False, changed)


def test_fails_on_an_unregistered_task_before_writing_anything(monkeypatch):
    monkeypatch.setattr(
        schedules,
        "PERIODIC_TASKS",
        (
            *schedules.PERIODIC_TASKS,
            Schedule(name="nope: missing", task="nope.tasks.does_not_exist", when=Interval(seconds=60)),
        ),
    )

    with pytest.raises(CommandError, match=r"nope\.tasks\.does_not_exist.*not a registered Celery task"):
        run()

    assert PeriodicTask.objects.count() == 0


def test_fails_on_duplicate_names(monkeypatch):
    entry = purge_entry()
    monkeypatch.setattr(schedules, "PERIODIC_TASKS", (entry, entry))

    with pytest.raises(CommandError, match="duplicate name"):
        run()
    assert PeriodicTask.objects.count() == 0
