"""The beat schedule's admin (django-celery-beat), audited: django-celery-beat's own ModelAdmins are
replaced by subclasses that behave the same and write one audit event per changed row, in the
transaction of the change, with the staff user as actor (issue 14). If the event cannot be written the
change is rolled back.

- a periodic task added, edited or deleted (form, delete page, "delete selected"): `beat.task_created`,
  `beat.task_changed`, `beat.task_deleted`, naming the task and each changed field from -> to;
- the list actions enable / disable / toggle: `beat.task_changed` for each task whose `enabled` changed;
  "run": `beat.task_run` for each task sent to the broker (written before it is sent; a broker failure
  rolls it back);
- a schedule (crontab, interval, solar, clocked) added, edited or deleted: `beat.schedule_created`,
  `beat.schedule_changed`, `beat.schedule_deleted`, naming the tasks it drives (editing one changes
  them all; deleting one deletes them).

Tasks installed by `manage.py setup_periodic_tasks` carry its marker (`managed: true` in the event); the
next deploy puts their task, schedule, description and enabled flag back as the code declares them, and
the change page says so.

Not recorded: the run bookkeeping beat itself writes (last run, run count, change time), and the values
of args, kwargs and headers (free-form, possibly sensitive): only that they changed.
"""

from __future__ import annotations

from datetime import date, datetime

from django.contrib import admin, messages
from django.db import models, transaction
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from core.admin import admin_actor, admin_datetime
from core.auditing import audit_event
from core.management.commands.setup_periodic_tasks import is_owned

NOT_RECORDED = {"id", "last_run_at", "total_run_count", "date_changed"}
VALUES_HIDDEN = {"args", "kwargs", "headers"}
TASK_NAMES_LISTED = 50


def _shown(value):
    """A field value as the audit event keeps it (JSON): related rows by their text, times in ISO 8601."""
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def snapshot(obj: models.Model) -> dict:
    """The row's recorded fields: {name: (comparable value, shown value)}."""
    values = {}
    for field in obj._meta.concrete_fields:
        if field.name in NOT_RECORDED:
            continue
        if field.is_relation:
            raw = getattr(obj, field.attname)
            values[field.name] = (raw, _shown(getattr(obj, field.name)) if raw is not None else None)
        else:
            raw = getattr(obj, field.attname)
            values[field.name] = (raw, _shown(raw))
    return values


def changes_between(before: dict, after: dict) -> dict:
    """{field: {"from": ..., "to": ...}} for each field whose value differs ({"changed": true} for the
    fields whose values are not recorded)."""
    changes = {}
    for name, (raw_after, shown_after) in after.items():
        raw_before, shown_before = before.get(name, (None, None))
        if raw_before == raw_after:
            continue
        changes[name] = {"changed": True} if name in VALUES_HIDDEN else {"from": shown_before, "to": shown_after}
    return changes


def created_fields(after: dict) -> dict:
    return changes_between({name: (None, None) for name in after}, after)


class AuditedBeatAdminMixin:
    """Form saves and deletions of the admin's model, each with its audit event (same transaction)."""

    audit_noun = ""  # "task" or "schedule": the events are beat.<noun>_created / _changed / _deleted

    def audit_metadata(self, obj) -> dict:
        return {}

    def record(self, request, obj, verb: str, **metadata) -> None:
        audit_event(
            action=f"beat.{self.audit_noun}_{verb}",
            actor=admin_actor(request),
            subject_type=obj._meta.label_lower,
            subject_id=str(obj.pk),
            metadata={**self.audit_metadata(obj), **metadata},
        )

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            before = snapshot(type(obj)._default_manager.select_for_update().get(pk=obj.pk)) if change else None
            super().save_model(request, obj, form, change)
            after = snapshot(obj)
            if before is None:
                self.record(request, obj, "created", changes=created_fields(after), via="form")
                return
            changes = changes_between(before, after)
            if changes:  # a save that changed nothing is no event
                self.record(request, obj, "changed", changes=changes, via="form")

    def delete_model(self, request, obj):
        with transaction.atomic():
            self.record(request, obj, "deleted", via="form", **self.deleted_metadata(obj))
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for obj in queryset:
                self.record(request, obj, "deleted", via="delete_selected", **self.deleted_metadata(obj))
            super().delete_queryset(request, queryset)

    def deleted_metadata(self, obj) -> dict:
        return {}


class AuditedPeriodicTaskAdmin(AuditedBeatAdminMixin, beat_admin.PeriodicTaskAdmin):
    audit_noun = "task"
    # Fits 1,400 px beside the filters: one schedule column (beat's own list repeats it as "interval"); the
    # start time and one-off flag are on the task's page and in the filters, the last run to the minute.
    list_display = ("name", "enabled", "schedule", "last_run")

    @admin.display(description="schedule")
    def schedule(self, obj: PeriodicTask) -> str:
        return str(obj.scheduler) if obj.scheduler is not None else "-"

    @admin.display(description="last run", ordering="last_run_at")
    def last_run(self, obj: PeriodicTask) -> str:
        return admin_datetime(obj.last_run_at)[:16] if obj.last_run_at is not None else "-"

    def audit_metadata(self, obj: PeriodicTask) -> dict:
        return {"name": obj.name, "task": obj.task, "managed": is_owned(obj)}

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "GET" and object_id:
            task = self.get_object(request, object_id)
            if task is not None and is_owned(task):
                self.message_user(
                    request,
                    "This task is installed by setup_periodic_tasks: the next deploy puts its task, schedule, "
                    "description and enabled flag back as the code declares them. Edits here are temporary.",
                    messages.WARNING,
                )
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _audited_flag_change(self, request, queryset, action: str, run) -> None:
        """Run the parent's bulk action (one UPDATE) and record each task whose `enabled` it changed."""
        with transaction.atomic():
            ids = list(queryset.values_list("pk", flat=True))
            locked = PeriodicTask.objects.select_for_update().filter(pk__in=ids).order_by("pk")
            before = {task.pk: task for task in locked}
            run(request, PeriodicTask.objects.filter(pk__in=ids))
            after = dict(PeriodicTask.objects.filter(pk__in=ids).values_list("pk", "enabled"))
            for pk, task in before.items():
                if pk in after and after[pk] != task.enabled:
                    self.record(
                        request,
                        task,
                        "changed",
                        changes={"enabled": {"from": task.enabled, "to": after[pk]}},
                        via=action,
                    )

    @admin.action(description="Enable selected tasks")
    def enable_tasks(self, request, queryset):
        self._audited_flag_change(request, queryset, "enable_tasks", super().enable_tasks)

    @admin.action(description="Disable selected tasks")
    def disable_tasks(self, request, queryset):
        self._audited_flag_change(request, queryset, "disable_tasks", super().disable_tasks)

    @admin.action(description="Toggle activity of selected tasks")
    def toggle_tasks(self, request, queryset):
        self._audited_flag_change(request, queryset, "toggle_tasks", super().toggle_tasks)

    @admin.action(description="Run selected tasks")
    def run_tasks(self, request, queryset):
        """Each run is recorded before its task is sent; an unknown task name runs nothing (the parent's
        message), and so records nothing."""
        self.celery_app.loader.import_default_modules()
        tasks = list(queryset)
        if any(self.celery_app.tasks.get(task.task) is None for task in tasks):
            return super().run_tasks(request, queryset)
        with transaction.atomic():
            for task in tasks:
                self.record(request, task, "run", via="run_tasks")
            return super().run_tasks(request, queryset)


class AuditedScheduleAdminMixin(AuditedBeatAdminMixin):
    audit_noun = "schedule"

    def audit_metadata(self, obj) -> dict:
        key = next(f.name for f in PeriodicTask._meta.concrete_fields if f.is_relation and f.related_model is type(obj))
        names = list(PeriodicTask.objects.filter(**{key: obj}).order_by("name").values_list("name", flat=True))
        return {
            "kind": obj._meta.model_name,
            "schedule": str(obj),
            "tasks": names[:TASK_NAMES_LISTED],
            "task_count": len(names),
        }

    def deleted_metadata(self, obj) -> dict:
        # PeriodicTask's schedule keys cascade: deleting a schedule deletes the tasks it drives.
        return {"tasks_deleted": self.audit_metadata(obj)["task_count"]}


class AuditedCrontabScheduleAdmin(AuditedScheduleAdminMixin, beat_admin.CrontabScheduleAdmin):
    pass


class AuditedIntervalScheduleAdmin(AuditedScheduleAdminMixin, beat_admin.IntervalScheduleAdmin):
    pass


class AuditedSolarScheduleAdmin(AuditedScheduleAdminMixin, beat_admin.SolarScheduleAdmin):
    pass


class AuditedClockedScheduleAdmin(AuditedScheduleAdminMixin, beat_admin.ClockedScheduleAdmin):
    pass


AUDITED_ADMINS = {
    PeriodicTask: AuditedPeriodicTaskAdmin,
    CrontabSchedule: AuditedCrontabScheduleAdmin,
    IntervalSchedule: AuditedIntervalScheduleAdmin,
    SolarSchedule: AuditedSolarScheduleAdmin,
    ClockedSchedule: AuditedClockedScheduleAdmin,
}


def install(site: admin.AdminSite = admin.site) -> None:
    """Replace django-celery-beat's ModelAdmins on `site` by the audited ones (idempotent)."""
    for model, model_admin in AUDITED_ADMINS.items():
        if site.is_registered(model):
            if isinstance(site._registry[model], model_admin):
                continue
            site.unregister(model)
        site.register(model, model_admin)


install()
