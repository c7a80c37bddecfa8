"""Issue 15: on PostgreSQL the access row's INSERT goes through one kept cursor per database connection
(core.kept_cursor), with its parameters bound on the server (and, with settings.DB_PREPARED_STATEMENTS, the
statement prepared once per connection), still inside Django's cursor wrapper (query log, execute_wrappers, error
translation). Every kind of value the row can hold is written as the model would write it, both ways."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from audit.models import AccessLog
from audit.services import access_log_record

pytestmark = pytest.mark.django_db(transaction=True)


def _fields(**changes) -> dict:
    return {
        "created_at": datetime(2026, 11, 30, 12, 0, 1, 123456, tzinfo=UTC),
        "api": "mark",
        "actor_type": "user",
        "actor_id": "42",
        "organization_id": "org_1",
        "method": "GET",
        "path": "/api/v1/patients/pat_1",
        "subject_ids": ["patient:pat_1", "patient:pat_2"],
        "status_code": 200,
        "ip": "10.0.0.1",
        "user_agent": "probe/1",
        "request_id": "r" * 32,
        "duration_ms": 3,
        **changes,
    }


def _prepared_access_inserts() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", ["%audit_accesslog%"])
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture(params=[False, True], ids=["unprepared", "prepared"])
def prepared(request, settings):
    """Both ways the row can be sent: on the kept server-binding cursor as is, and as a prepared statement."""
    settings.DB_PREPARED_STATEMENTS = request.param
    return request.param


def _kept(prepared: bool):
    """The connection's kept cursor for this mode: (psycopg connection, cursor)."""
    kept = connections["default"].__dict__.get("_kept_cursors", {})
    assert prepared in kept, f"no kept cursor for prepare={prepared}: {sorted(kept)}"
    return kept[prepared]


def test_the_row_is_sent_on_a_kept_server_binding_cursor(require_postgres, prepared):
    connection.close()  # a connection of its own: none of another test's statements prepared on it
    access_log_record(durable=False, **_fields())
    raw, cursor = _kept(prepared)
    # psycopg's raw server-binding cursor ($n placeholders), not Django's ClientCursor
    assert type(cursor).__mro__[1].__name__ == "RawCursor"
    access_log_record(durable=False, **_fields(request_id="second"))
    access_log_record(durable=True, **_fields(request_id="third", method="POST"))
    assert _kept(prepared) == (raw, cursor)  # one cursor for the connection's rows
    assert AccessLog.objects.count() == 3
    if not prepared:
        assert _prepared_access_inserts() == []  # nothing prepared: Django's own preparation setting untouched
        with connection.cursor() as django_cursor:
            django_cursor.execute("SELECT 1")
        assert _prepared_access_inserts() == []
        return
    prepared_statements = _prepared_access_inserts()
    # One statement each for the read's (asynchronous commit) and the write's INSERT, parameters as $n.
    assert len(prepared_statements) == 2
    assert all("$15" in statement and "%s" not in statement for statement in prepared_statements)
    assert sum("set_config('synchronous_commit', 'off', true)" in s for s in prepared_statements) == 1
    assert connection.connection.prepare_threshold is None  # Django's setting, back after each row


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"ip": "2001:db8::1"},
        {"ip": None, "subject_ids": []},
        {"status_code": 503, "reason": "SERVICE_UNAVAILABLE", "duration_ms": 0, "on_behalf_of": "therapist:7c0a"},
        {"path": '/api/v1/it\'s "quoted" \\ and %s', "user_agent": "ünïcode ☃"},
    ],
)
@pytest.mark.parametrize("durable", [False, True])
def test_every_kind_of_value_is_written_as_the_model_writes_it(require_postgres, prepared, changes, durable):
    fields = _fields(**changes)
    access_log_record(durable=durable, **fields)
    AccessLog(**{**fields, "request_id": "by-the-model"}).save(force_insert=True)
    ours, the_model_s = (
        AccessLog.objects.filter(request_id=request_id).values().get()
        for request_id in (fields["request_id"], "by-the-model")
    )
    for row in (ours, the_model_s):
        row.pop("id"), row.pop("request_id")
    assert ours == the_model_s
    assert (ours["ip"], ours["subject_ids"], ours["path"]) == (fields["ip"], fields["subject_ids"], fields["path"])


def test_a_new_connection_gets_a_new_cursor_and_prepares_again(require_postgres, prepared):
    access_log_record(durable=False, **_fields())
    first = _kept(prepared)
    connection.close()
    access_log_record(durable=False, **_fields(request_id="after-reconnect"))
    assert _kept(prepared)[0] is connection.connection is not first[0]
    assert len(_prepared_access_inserts()) == (1 if prepared else 0)
    assert AccessLog.objects.filter(request_id="after-reconnect").exists()


def test_the_row_is_in_the_query_log_with_its_statement(require_postgres, prepared):
    with CaptureQueriesContext(connection) as queries:
        access_log_record(durable=False, **_fields())
    [statement] = [query["sql"] for query in queries.captured_queries]
    assert statement.startswith('INSERT INTO "audit_accesslog"')
