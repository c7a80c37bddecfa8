"""Beat schedule edits in the admin are audit events (core/admin_beat.py, issue 14): each kind of edit
writes exactly one event per changed row naming what changed, with the staff actor, in the transaction
of the change; if the event cannot be written the edit is rolled back."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import call_command
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from audit.models import AuditEvent
from core import admin_beat
from core.management.commands.setup_periodic_tasks import MANAGED_MARKER

pytestmark = pytest.mark.django_db
TASK = "core.tasks.purge_idempotency_keys"


class AuditDown(Exception):
    pass


def failing_recorder(**kwargs):
    raise AuditDown("the audit table refused the row")


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="ops", email="ops@example.com", password="x" * 16)
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def hourly():
    return CrontabSchedule.objects.create(minute="0", hour="*", timezone="UTC")


@pytest.fixture
def task(hourly):
    return PeriodicTask.objects.create(name="purge keys", task=TASK, crontab=hourly, description="keeps it small")


@pytest.fixture
def audit_down(settings):
    settings.AUDIT_EVENT_RECORDER = "tests.core.test_beat_admin.failing_recorder"


def form_data(task: PeriodicTask, **overrides) -> dict:
    data = {
        "name": task.name,
        "regtask": "",
        "task": task.task,
        "enabled": "on" if task.enabled else "",
        "description": task.description,
        "interval": task.interval_id or "",
        "crontab": task.crontab_id or "",
        "solar": task.solar_id or "",
        "clocked": task.clocked_id or "",
        "start_time_0": "",
        "start_time_1": "",
        "one_off": "",
        "args": task.args,
        "kwargs": task.kwargs,
        "expires_0": "",
        "expires_1": "",
        "expire_seconds": "",
        "queue": task.queue or "",
        "exchange": task.exchange or "",
        "routing_key": task.routing_key or "",
        "priority": "",
        "headers": task.headers,
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not False}


def change(client, task: PeriodicTask, **overrides):
    response = client.post(
        reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]), form_data(task, **overrides)
    )
    assert response.status_code == 302, getattr(response, "context", {}) and response.context["adminform"].form.errors
    return response


def events(action: str | None = None):
    queryset = AuditEvent.objects.filter(action__startswith="beat.").order_by("pk")
    return list(queryset.filter(action=action) if action else queryset)


def act(client, action: str, tasks):
    return client.post(
        reverse("admin:django_celery_beat_periodictask_changelist"),
        {"action": action, ACTION_CHECKBOX_NAME: [str(t.pk) for t in tasks]},
    )


def test_django_celery_beats_admins_are_replaced_by_the_audited_ones():
    for model, model_admin in admin_beat.AUDITED_ADMINS.items():
        assert type(admin.site._registry[model]) is model_admin
    admin_beat.install()  # idempotent
    assert type(admin.site._registry[PeriodicTask]) is admin_beat.AuditedPeriodicTaskAdmin


def test_disabling_a_task_in_its_form_is_one_event_naming_the_change(staff, task):
    change(staff, task, enabled="")
    assert PeriodicTask.objects.get(pk=task.pk).enabled is False
    [event] = events()
    assert event.action == "beat.task_changed"
    assert (event.actor_type, event.actor_id) == ("user", str(staff.user.pk))
    assert event.subject_type == "django_celery_beat.periodictask" and event.subject_id == str(task.pk)
    assert event.metadata["name"] == "purge keys" and event.metadata["task"] == TASK
    assert event.metadata["changes"] == {"enabled": {"from": True, "to": False}}
    assert event.metadata["via"] == "form" and event.metadata["managed"] is False


def test_a_crontab_change_names_the_old_and_new_schedule(staff, task, hourly):
    quarter = CrontabSchedule.objects.create(minute="15", hour="3", timezone="UTC")
    change(staff, task, crontab=quarter.pk, description="at 03:15")
    [event] = events()
    assert event.metadata["changes"] == {
        "crontab": {"from": str(hourly), "to": str(quarter)},
        "description": {"from": "keeps it small", "to": "at 03:15"},
    }


def test_argument_values_are_not_recorded_only_that_they_changed(staff, task):
    change(staff, task, kwargs='{"token": "s3cret"}')
    [event] = events()
    assert event.metadata["changes"] == {"kwargs": {"changed": True}}
    assert "s3cret" not in str(event.metadata)


def test_saving_without_a_change_records_nothing(staff, task):
    change(staff, task)
    assert events() == []


def test_adding_a_task_is_one_event(staff, hourly):
    draft = PeriodicTask(name="new one", task=TASK, crontab=hourly)
    response = staff.post(reverse("admin:django_celery_beat_periodictask_add"), form_data(draft))
    assert response.status_code == 302
    created = PeriodicTask.objects.get(name="new one")
    [event] = events()
    assert event.action == "beat.task_created" and event.subject_id == str(created.pk)
    assert event.metadata["changes"]["name"] == {"from": None, "to": "new one"}
    assert event.metadata["changes"]["crontab"] == {"from": None, "to": str(hourly)}


def test_deleting_a_task_is_one_event(staff, task):
    url = reverse("admin:django_celery_beat_periodictask_delete", args=[task.pk])
    assert staff.post(url, {"post": "yes"}).status_code == 302
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()
    [event] = events()
    assert event.action == "beat.task_deleted" and event.metadata["name"] == "purge keys"


def test_delete_selected_is_one_event_per_task(staff, task, hourly):
    other = PeriodicTask.objects.create(name="other", task=TASK, crontab=hourly)
    response = staff.post(
        reverse("admin:django_celery_beat_periodictask_changelist"),
        {"action": "delete_selected", "post": "yes", ACTION_CHECKBOX_NAME: [task.pk, other.pk]},
    )
    assert response.status_code == 302 and not PeriodicTask.objects.exists()
    assert sorted(e.metadata["name"] for e in events("beat.task_deleted")) == ["other", "purge keys"]
    assert len(events()) == 2


def test_enable_disable_and_toggle_actions_record_each_task_they_change(staff, task, hourly):
    off = PeriodicTask.objects.create(name="off", task=TASK, crontab=hourly, enabled=False)
    act(staff, "disable_tasks", [task, off])  # `off` is already disabled: no change, no event
    [event] = events()
    assert event.subject_id == str(task.pk) and event.metadata["via"] == "disable_tasks"
    assert event.metadata["changes"] == {"enabled": {"from": True, "to": False}}

    act(staff, "enable_tasks", [task])
    assert events()[-1].metadata["changes"] == {"enabled": {"from": False, "to": True}}
    act(staff, "toggle_tasks", [task, off])
    toggled = events()[-2:]
    assert {(e.subject_id, e.metadata["changes"]["enabled"]["to"]) for e in toggled} == {
        (str(task.pk), False),
        (str(off.pk), True),
    }
    assert len(events()) == 4


def test_running_a_task_is_recorded(staff, task, monkeypatch):
    from celery import current_app

    current_app.loader.import_default_modules()
    sent = []
    monkeypatch.setattr(current_app.tasks[TASK], "apply_async", lambda *args, **kwargs: sent.append(kwargs))
    act(staff, "run_tasks", [task])
    assert len(sent) == 1
    [event] = events()
    assert event.action == "beat.task_run" and event.metadata["name"] == "purge keys"


def test_editing_a_crontab_names_the_tasks_it_drives(staff, task, hourly):
    url = reverse("admin:django_celery_beat_crontabschedule_change", args=[hourly.pk])
    data = {
        "minute": "30",
        "hour": "*",
        "day_of_month": "*",
        "month_of_year": "*",
        "day_of_week": "*",
        "timezone": "UTC",
        "periodictask_set-TOTAL_FORMS": "1",
        "periodictask_set-INITIAL_FORMS": "1",
        "periodictask_set-MIN_NUM_FORMS": "0",
        "periodictask_set-MAX_NUM_FORMS": "1000",
        "periodictask_set-0-id": str(task.pk),
        "periodictask_set-0-crontab": str(hourly.pk),
    }
    response = staff.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    [event] = events()
    assert event.action == "beat.schedule_changed" and event.subject_type == "django_celery_beat.crontabschedule"
    assert event.metadata["changes"] == {"minute": {"from": "0", "to": "30"}}
    assert event.metadata["kind"] == "crontabschedule" and event.metadata["tasks"] == ["purge keys"]


def test_adding_and_deleting_an_interval_are_events(staff):
    add = reverse("admin:django_celery_beat_intervalschedule_add")
    inline = {
        "periodictask_set-TOTAL_FORMS": "0",
        "periodictask_set-INITIAL_FORMS": "0",
        "periodictask_set-MIN_NUM_FORMS": "0",
        "periodictask_set-MAX_NUM_FORMS": "1000",
    }
    assert staff.post(add, {"every": "5", "period": "minutes", **inline}).status_code == 302
    interval = IntervalSchedule.objects.get(every=5)
    PeriodicTask.objects.create(name="every 5", task=TASK, interval=interval)
    delete = reverse("admin:django_celery_beat_intervalschedule_delete", args=[interval.pk])
    assert staff.post(delete, {"post": "yes"}).status_code == 302
    created, deleted = events()
    assert created.action == "beat.schedule_created"
    assert deleted.action == "beat.schedule_deleted" and deleted.metadata["tasks_deleted"] == 1
    assert deleted.metadata["tasks"] == ["every 5"]


def test_a_failing_audit_write_rolls_the_form_edit_back(staff, task, audit_down):
    with pytest.raises(AuditDown):
        staff.post(reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]), form_data(task, enabled=""))
    assert PeriodicTask.objects.get(pk=task.pk).enabled is True


def test_a_failing_audit_write_rolls_the_action_back(staff, task, audit_down):
    with pytest.raises(AuditDown):
        act(staff, "disable_tasks", [task])
    assert PeriodicTask.objects.get(pk=task.pk).enabled is True


def test_a_failing_audit_write_rolls_the_delete_back(staff, task, audit_down):
    with pytest.raises(AuditDown):
        staff.post(reverse("admin:django_celery_beat_periodictask_delete", args=[task.pk]), {"post": "yes"})
    assert PeriodicTask.objects.filter(pk=task.pk).exists()


def test_a_failing_audit_write_runs_nothing(staff, task, audit_down, monkeypatch):
    from celery import current_app

    current_app.loader.import_default_modules()
    sent = []
    monkeypatch.setattr(current_app.tasks[TASK], "apply_async", lambda *args, **kwargs: sent.append(kwargs))
    with pytest.raises(AuditDown):
        act(staff, "run_tasks", [task])
    assert sent == []


def test_managed_tasks_say_so_and_setup_periodic_tasks_still_owns_them(staff):
    call_command("setup_periodic_tasks", stdout=open("/dev/null", "w"))  # noqa: SIM115
    managed = PeriodicTask.objects.filter(description__contains=MANAGED_MARKER).order_by("name").first()
    page = staff.get(reverse("admin:django_celery_beat_periodictask_change", args=[managed.pk]))
    assert b"the next deploy puts its task" in page.content
    change(staff, managed, enabled="")
    [event] = events()
    assert event.metadata["managed"] is True
    call_command("setup_periodic_tasks", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert PeriodicTask.objects.get(pk=managed.pk).enabled is True  # the deploy puts it back, as documented


def test_task_list_shows_one_schedule_column_and_the_last_run(staff, task):
    """Fits 1,400 px: one schedule column (not beat's schedule and interval), no start time or one-off column."""
    listing = staff.get(reverse("admin:django_celery_beat_periodictask_changelist")).content.decode()
    assert "column-schedule" in listing and str(task.crontab) in listing
    assert "column-interval" not in listing and "column-start_time" not in listing
    assert "column-one_off" not in listing and "column-last_run" in listing
