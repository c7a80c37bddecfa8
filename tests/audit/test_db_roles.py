"""The audit trail against its own application: connected as the app role (core/db_roles.py), none of the
ways to empty or silence the audit tables works; the purge role deletes only rows past six years.

Each test creates its own throwaway login roles in the cluster (trust auth on 127.0.0.1, as CI and the
dev machine have) and drops them afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import psycopg
import pytest
from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import connection, transaction
from psycopg import errors

from audit.models import AccessLog, AuditEvent
from audit.services import access_log_record, audit_event_record
from core.actors import Actor
from core.db_roles import apply_grants, role_problems
from core.time import utc_now
from tests.conftest import skip_or_fail

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

AUDIT_TABLES = ("audit_accesslog", "audit_auditevent")


@pytest.fixture
def roles():
    if connection.vendor != "postgresql":
        skip_or_fail("needs PostgreSQL: set DATABASE_URL=postgres://...")
    suffix = uuid.uuid4().hex[:8]
    app, purge = f"test_app_{suffix}", f"test_purge_{suffix}"
    with connection.cursor() as cursor:
        for role in (app, purge):
            cursor.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
    apply_grants(connection, app_role=app, purge_role=purge)
    yield app, purge
    with connection.cursor() as cursor:
        for role in (app, purge):
            cursor.execute(f"DROP OWNED BY {role}")
            cursor.execute(f"DROP ROLE {role}")


def _connect(role: str) -> psycopg.Connection:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.update(user=role, autocommit=True)
    params.pop("password", None)
    return psycopg.connect(**params)


def _seed_rows(ages: dict[str, relativedelta]) -> dict[str, int]:
    now = utc_now()
    return {
        label: AuditEvent.objects.create(created_at=now - age, action=f"test.{label}", actor_type="system").pk
        for label, age in ages.items()
    }


BYPASSES = {
    "update": "UPDATE {table} SET path = path" ,
    "delete": "DELETE FROM {table}",
    "truncate": "TRUNCATE {table}",
    "disable_trigger": "ALTER TABLE {table} DISABLE TRIGGER ALL",
    "drop": "DROP TABLE {table}",
    "replica_mode": "SET session_replication_role = replica",
}


@pytest.mark.parametrize("table", AUDIT_TABLES)
@pytest.mark.parametrize("bypass", sorted(BYPASSES))
def test_the_app_role_cannot_bypass_the_audit_triggers(roles, table, bypass):
    app, _ = roles
    _seed_rows({"old": relativedelta(years=7)})
    AccessLog.objects.create(created_at=utc_now() - relativedelta(years=7), api="mark", method="GET", path="/x",
                             status_code=200)
    before = {name: model.objects.count() for name, model in (("a", AccessLog), ("e", AuditEvent))}
    statement = BYPASSES[bypass].format(table=table)
    if table == "audit_auditevent":
        statement = statement.replace("path = path", "action = action")
    with _connect(app) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)
    assert {name: model.objects.count() for name, model in (("a", AccessLog), ("e", AuditEvent))} == before


def test_the_app_role_may_insert_and_read_audit_rows_and_write_ordinary_tables(roles):
    app, _ = roles
    with _connect(app) as conn:
        conn.execute(
            "INSERT INTO audit_auditevent (created_at, action, actor_type, actor_id, organization_id, "
            "subject_type, subject_id, metadata, request_id) VALUES (now(), 'test.app', 'system', '', '', '', '', "
            "'{}', '')"
        )
        assert conn.execute("SELECT count(*) FROM audit_auditevent WHERE action = 'test.app'").fetchone() == (1,)
        privileges = conn.execute(
            "SELECT has_table_privilege('accounts_organization', 'SELECT, INSERT, UPDATE, DELETE'), "
            "has_table_privilege('accounts_organization', 'TRUNCATE'), "
            "has_schema_privilege('public', 'CREATE')"
        ).fetchone()
    assert privileges == (True, False, False)


def test_the_platform_writes_its_audit_trail_as_the_app_role(roles):
    """The ordinary write path (an event in a service transaction, an access row in autocommit) works
    connected as the app role, which role_problems() accepts; the superuser it replaces is refused."""
    app, _ = roles
    assert any("superuser" in problem for problem in role_problems(connection))
    connection.close()
    original = connection.settings_dict["USER"]
    connection.settings_dict["USER"] = app
    try:
        assert role_problems(connection) == []
        with transaction.atomic():
            audit_event_record(action="test.service", actor=Actor.system("test"))
        access_log_record(created_at=utc_now(), api="mark", method="GET", path="/p", status_code=200)
        assert AuditEvent.objects.filter(action="test.service").count() == 1
        assert AccessLog.objects.filter(path="/p").count() == 1
    finally:
        connection.close()
        connection.settings_dict["USER"] = original


def _purge_in_a_process(*, app: str, purge: str) -> subprocess.CompletedProcess:
    """The retention purge as production runs it: DATABASE_URL as the app role, AUDIT_PURGE_DATABASE_URL
    as `purge`, against this test database."""
    params = connection.settings_dict
    url = f"postgres://{{role}}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{params['NAME']}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": url.format(role=app),
        "AUDIT_PURGE_DATABASE_URL": url.format(role=purge),
    }
    code = (
        "import django, json; django.setup(); "
        "from audit.services import audit_purge_expired as purge; print(json.dumps(purge()))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_purge_role_deletes_only_rows_older_than_six_years(roles, settings):
    _, purge = roles
    ids = _seed_rows({"old": relativedelta(years=7), "young": relativedelta(years=5)})
    with _connect(purge) as conn:
        with pytest.raises(errors.RaiseException, match="pgtrigger: Cannot delete"):
            conn.execute("DELETE FROM audit_auditevent WHERE id = %s", [ids["young"]])
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("UPDATE audit_auditevent SET action = 'x'")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("TRUNCATE audit_auditevent")
        assert conn.execute("DELETE FROM audit_auditevent WHERE id = %s", [ids["old"]]).rowcount == 1
    assert not AuditEvent.objects.filter(pk=ids["old"]).exists()
    assert AuditEvent.objects.filter(pk=ids["young"]).exists()


def test_the_retention_purge_runs_as_the_purge_role_and_the_app_role_could_not(roles):
    app, purge = roles
    ids = _seed_rows({"old": relativedelta(years=7), "young": relativedelta(years=1)})
    refused = _purge_in_a_process(app=app, purge=app)  # the app role named as the purge connection
    assert refused.returncode != 0 and "permission denied" in refused.stderr, refused.stderr[-500:]
    assert AuditEvent.objects.filter(pk=ids["old"]).exists()

    done = _purge_in_a_process(app=app, purge=purge)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["auditevent"] == 1
    assert not AuditEvent.objects.filter(pk=ids["old"]).exists()
    assert AuditEvent.objects.filter(pk=ids["young"]).exists()
    assert AuditEvent.objects.filter(action="audit.retention_purge").count() == 1
