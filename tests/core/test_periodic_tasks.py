"""`manage.py setup_periodic_tasks`: installs every app's registered schedules into django-celery-beat,
idempotently."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

from core import registry
from core.management.commands.setup_periodic_tasks import MANAGED_MARKER
from core.registry import Crontab, Interval, Schedule

pytestmark = pytest.mark.django_db

PURGE_TASK = "audit.tasks.purge_expired_audit_rows"


def declare(monkeypatch, entries) -> None:
    """Make the registry return exactly `entries` (what the apps would have registered)."""
    entries = tuple(entries)
    monkeypatch.setattr(registry, "periodic_tasks", lambda: entries)


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
    entries = [entry for entry in registry.periodic_tasks() if entry.task == PURGE_TASK]
    assert len(entries) == 1, "the apps must declare the audit retention purge exactly once"
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
    assert PeriodicTask.objects.filter(description__contains=MANAGED_MARKER).count() == len(registry.periodic_tasks())


def test_second_run_creates_and_changes_nothing():
    run()
    before = snapshot()

    output = run()

    assert snapshot() == before
    assert "created:" not in output and "updated:" not in output
    assert f"{len(registry.periodic_tasks())} unchanged" in output


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
    declare(
        monkeypatch,
        (Schedule(name="core: ping", task="core.tasks.ping", when=Interval(seconds=90), description="Ping."),),
    )
    run()
    task = PeriodicTask.objects.get(name="core: ping")
    assert (task.interval.every, task.interval.period, task.crontab) == (90, IntervalSchedule.SECONDS, None)

    declare(
        monkeypatch,
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
    declare(monkeypatch, (*registry.periodic_tasks(), extra))
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
    declare(
        monkeypatch,
        (
            *registry.periodic_tasks(),
            Schedule(name="nope: missing", task="nope.tasks.does_not_exist", when=Interval(seconds=60)),
        ),
    )

    with pytest.raises(CommandError, match=r"nope\.tasks\.does_not_exist.*not a registered Celery task"):
        run()

    assert PeriodicTask.objects.count() == 0


def test_fails_on_duplicate_names(monkeypatch):
    entry = purge_entry()
    declare(monkeypatch, (entry, entry))

    with pytest.raises(CommandError, match="duplicate name"):
        run()
    assert PeriodicTask.objects.count() == 0


# --- the registry: each app declares its own entries ------------------------------------------------

# What config/schedules.py declared before each app declared its own: the installed rows must not change.
EXPECTED = {
    "core: purge expired idempotency keys": (
        "core.tasks.purge_idempotency_keys",
        Crontab(minute="23"),
        "Deletes Idempotency-Key records past their 24 hours (they are ignored once expired; this keeps the "
        "table, which holds encrypted response bodies, small).",
    ),
    "core: compact kept counts": (
        "core.tasks.compact_kept_counts",
        Interval(seconds=300),
        "Folds the parts of each kept count (the Mark lists' totals) into one per combination: the totals do not "
        "change, their reads stay a sum over a few rows.",
    ),
    "audit: retention purge": (
        "audit.tasks.purge_expired_audit_rows",
        Crontab(minute="17", hour="3"),
        "Deletes access-log and audit-event rows older than AUDIT_RETENTION_YEARS (min 6).",
    ),
    "messaging: sweep queued messages": (
        "messaging.tasks.sweep_queued_messages",
        Interval(seconds=60),
        "Re-enqueues queued messages that are due and not claimed (a lost broker message only delays a message).",
    ),
    "webhooks: sweep due deliveries": (
        "webhooks.tasks.sweep_due_webhook_deliveries",
        Interval(seconds=60),
        "Re-enqueues due webhook deliveries (a lost broker message only delays one) and disables endpoints "
        "failing for WEBHOOK_DISABLE_AFTER_DAYS.",
    ),
    "patients: send due reminders": (
        "patients.tasks.send_due_reminders",
        Interval(seconds=60),
        "Mark: queues the WhatsApp text of each due appointment reminder through the messaging outbox (once; "
        "never after a cancel or reschedule).",
    ),
    "patients: close idle conversations": (
        "patients.tasks.close_idle_conversations",
        Interval(seconds=300),
        "Mark: ends the WhatsApp conversations idle for MARK_CONVERSATION_IDLE_MINUTES (end_time = the last "
        "message) and asks the clinic's responder for their summaries.",
    ),
    "sync: hourly Cliniko syncs": (
        "sync.tasks.start_scheduled_syncs",
        Interval(seconds=3600),
        "Routiq: starts a comprehensive Cliniko sync (incremental when a run completed before) for every "
        "organization with a connection and sync enabled; one running already is left to finish.",
    ),
    "sync: resume stalled sync runs": (
        "sync.tasks.resume_stalled_runs",
        Interval(seconds=60),
        "Routiq: queues again the sync runs whose chunk lease expired (a worker died) and fails runs older "
        "than CLINIKO_RUN_MAX_HOURS (error `stalled`), so no run stays running forever.",
    ),
    "integration: evaluate daily alerts": (
        "integration.tasks.evaluate_daily_alerts",
        Crontab(minute="5", hour="5"),
        "LoveRescue time-based alert rules (STAGNATION: no activity for 7 days), once per UTC day.",
    ),
    "integration: journal crisis alerts": (
        "integration.tasks.raise_journal_crisis_alerts",
        Interval(seconds=60),
        "LoveRescue CRISIS alerts of crisis-flagged journal entries, raised a minute after the entry "
        "and dated by the batch (backstop for the message enqueued per entry).",
    ),
    "integration: high alert notifications": (
        "integration.tasks.send_high_alert_notifications",
        Crontab(minute="*/30"),
        "LoveRescue HIGH alerts: one email per therapist for un-notified alerts (within the hour).",
    ),
    "integration: low alert digest": (
        "integration.tasks.send_low_alert_digest",
        Crontab(minute="0", hour="8"),
        "LoveRescue LOW alerts (milestones): one daily digest email per therapist.",
    ),
    "leads: monthly partner payouts": (
        "leads.tasks.process_partner_payments",
        Crontab(minute="0", hour="6", day_of_month="1"),
        "CareOS partner payouts on the 1st of each month at 06:00 UTC: due pending payments per partner over its "
        "minimum, one batch each, paid through the partner's backend (manual or Stripe).",
    ),
    "leads: resume payout batches": (
        "leads.tasks.resume_payout_batches",
        Crontab(minute="40", hour="6"),
        "Daily: finishes payout batches left 'created' by a crash or a provider outage (same idempotency key: "
        "never pays twice). Creates no new batch.",
    ),
}


def test_registry_collects_each_apps_schedules_module():
    from importlib import import_module

    per_app = {
        label: import_module(f"{label}.schedules").PERIODIC_TASKS
        for label in ("core", "audit", "webhooks", "messaging", "integration", "patients", "leads", "sync")
    }
    collected = registry.periodic_tasks()

    assert collected == tuple(entry for entries in per_app.values() for entry in entries)  # INSTALLED_APPS order
    for label, entries in per_app.items():
        assert entries, label
        assert all(entry.task.startswith(f"{label}.") for entry in entries), label  # each app declares its own
    assert {entry.name: (entry.task, entry.when, entry.description) for entry in collected} == EXPECTED


def test_installed_rows_are_what_the_apps_declare():
    run()

    rows = {task.name: task for task in PeriodicTask.objects.select_related("crontab", "interval")}
    assert set(rows) == set(EXPECTED)
    for name, (task_name, when, description) in EXPECTED.items():
        row = rows[name]
        assert (row.task, row.enabled, row.description) == (task_name, True, f"{description} {MANAGED_MARKER}")
        if isinstance(when, Interval):
            assert (row.crontab, row.interval.every, row.interval.period) == (None, when.seconds, "seconds")
        else:
            assert row.interval is None
            assert (
                row.crontab.minute,
                row.crontab.hour,
                row.crontab.day_of_week,
                row.crontab.day_of_month,
                row.crontab.month_of_year,
                str(row.crontab.timezone),
            ) == (when.minute, when.hour, when.day_of_week, when.day_of_month, when.month_of_year, "UTC")


def test_register_replaces_an_apps_entries_and_ignores_apps_not_installed(monkeypatch):
    monkeypatch.setattr(registry, "_contributions", dict(registry._contributions))
    ping = Schedule(name="core: ping", task="core.tasks.ping", when=Interval(seconds=60))

    registry.register("not_an_installed_app", schedules=[ping])
    assert ping not in registry.periodic_tasks()

    registry.register("core", schedules=[ping])
    registry.register("core", schedules=[ping])  # ready() again: replaced, not added
    assert registry.periodic_tasks().count(ping) == 1
    assert registry.periodic_tasks()[0] == ping  # core comes first in INSTALLED_APPS

    with pytest.raises(TypeError):
        registry.register("core", schedules=[("core: ping", "core.tasks.ping")])
