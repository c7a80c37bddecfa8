"""The audit tables are append-only in PostgreSQL itself: no UPDATE ever, no DELETE of a row younger than
six years, whichever way the statement arrives (ORM or raw SQL)."""

from __future__ import annotations

import pytest
from dateutil.relativedelta import relativedelta
from django.db import ProgrammingError, connection, transaction
from psycopg.errors import RaiseException

from audit.models import AccessLog, AuditEvent
from core.time import utc_now

pytestmark = pytest.mark.postgres

# pgtrigger's Protect trigger does RAISE EXCEPTION: SQLSTATE P0001, psycopg.errors.RaiseException, a
# psycopg ProgrammingError, which Django re-raises as django.db.ProgrammingError (checked, not assumed).
TRIGGER_MESSAGE = "pgtrigger: Cannot"


def _access_log(created_at=None) -> AccessLog:
    return AccessLog.objects.create(
        created_at=created_at or utc_now(),
        api="mark",
        actor_type="anonymous",
        method="GET",
        path="/api/v1/patients",
        status_code=200,
        ip="127.0.0.1",
    )


def _audit_event(created_at=None) -> AuditEvent:
    return AuditEvent.objects.create(created_at=created_at or utc_now(), action="test.event", actor_type="system")


MAKERS = {AccessLog: _access_log, AuditEvent: _audit_event}
MODELS = pytest.mark.parametrize("model", [AccessLog, AuditEvent], ids=lambda m: m.__name__)


def _refused(statement, verb: str) -> None:
    with pytest.raises(ProgrammingError, match=f"{TRIGGER_MESSAGE} {verb} rows") as info:
        with transaction.atomic():  # a savepoint: the test's transaction stays usable
            statement()
    assert isinstance(info.value.__cause__, RaiseException)
    assert info.value.__cause__.sqlstate == "P0001"


@MODELS
def test_orm_queryset_update_is_refused(require_postgres, model):
    row = MAKERS[model]()
    _refused(lambda: model.objects.filter(pk=row.pk).update(actor_id="tampered"), "update")
    assert model.objects.get(pk=row.pk).actor_id == ""


@MODELS
def test_orm_save_of_existing_row_is_refused(require_postgres, model):
    row = MAKERS[model]()
    row.actor_id = "tampered"
    _refused(row.save, "update")
    assert model.objects.get(pk=row.pk).actor_id == ""


@MODELS
def test_raw_sql_update_is_refused_even_for_old_rows(require_postgres, model):
    row = MAKERS[model](utc_now() - relativedelta(years=7))
    table = connection.ops.quote_name(model._meta.db_table)

    def update():
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET actor_id = %s WHERE id = %s", ["tampered", row.pk])

    _refused(update, "update")
    assert model.objects.get(pk=row.pk).actor_id == ""


@MODELS
def test_delete_of_recent_row_is_refused(require_postgres, model):
    row = MAKERS[model](utc_now() - relativedelta(years=5))
    _refused(lambda: model.objects.filter(pk=row.pk).delete(), "delete")
    _refused(row.delete, "delete")
    table = connection.ops.quote_name(model._meta.db_table)

    def raw_delete():
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE id = %s", [row.pk])

    _refused(raw_delete, "delete")
    assert model.objects.filter(pk=row.pk).exists()


@MODELS
def test_delete_just_inside_six_years_is_refused(require_postgres, model):
    row = MAKERS[model](utc_now() - relativedelta(years=6) + relativedelta(days=1))
    _refused(lambda: model.objects.filter(pk=row.pk).delete(), "delete")
    assert model.objects.filter(pk=row.pk).exists()


@MODELS
def test_delete_of_row_older_than_six_years_succeeds(require_postgres, model):
    old = MAKERS[model](utc_now() - relativedelta(years=7))  # INSERT with any created_at is allowed
    recent = MAKERS[model]()
    with transaction.atomic():
        deleted, _ = model.objects.filter(pk=old.pk).delete()
    assert deleted == 1
    assert not model.objects.filter(pk=old.pk).exists()
    assert model.objects.filter(pk=recent.pk).exists()


def test_triggers_are_installed(require_postgres):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN "
            "('audit_accesslog'::regclass, 'audit_auditevent'::regclass) ORDER BY tgname"
        )
        names = [name for (name,) in cursor.fetchall()]
    assert len(names) == 6
    for table in ("accesslog", "auditevent"):
        assert any(name.startswith(f"pgtrigger_{table}_no_update_") for name in names)
        assert any(name.startswith(f"pgtrigger_{table}_no_young_delete_") for name in names)
        assert any(name.startswith(f"pgtrigger_{table}_no_truncate_") for name in names)


@MODELS
def test_truncate_is_refused(require_postgres, model):
    """TRUNCATE fires no row trigger: the statement trigger is what refuses it (failed before 0002)."""
    MAKERS[model]()
    with pytest.raises(ProgrammingError, match="pgtrigger: Cannot truncate"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {model._meta.db_table}")
    assert model.objects.exists()
