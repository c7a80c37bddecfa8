"""Issue 15: on PostgreSQL the access row of a read (a safe method) commits asynchronously, still inserted before
the answer leaves; the row of a request that may write keeps a durable commit; the asynchronous setting never
outlives the row's own transaction and never reaches a transaction the row is part of. A row that cannot be
written still withholds the answer. SQLite inserts every row as before."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from audit.models import AccessLog, AuditEvent
from audit.services import access_log_record, audit_event_record
from core.actors import Actor
from core.api import ApiView
from core.apis import CAREOS
from core.context import note_subjects, set_actor, set_organization
from core.time import utc_now

ASYNCHRONOUS_COMMIT = "set_config('synchronous_commit', 'off', true)"
SECRET = "protected-lead-name-7f3a"


class _ReadsAndWrites(ApiView):
    """A stand-in domain view answering every method with protected data and the subjects it touched."""

    api_family = CAREOS
    authentication_classes = []
    permission_classes = [AllowAny]

    def _answer(self, request):
        set_actor(request, Actor.partner_platform("acme"))
        set_organization(request, "org_commit")
        note_subjects(request, "lead", ["lead_9"])
        return Response({"name": SECRET})

    get = post = put = patch = delete = options = _answer


urlpatterns = [path("api/leads/commit-probe", _ReadsAndWrites.as_view()), path("", include("config.urls"))]


def _access_statement(queries) -> str:
    [statement] = [query["sql"] for query in queries.captured_queries if '"audit_accesslog"' in query["sql"]]
    return statement


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def _assert_probe_row(method: str, request_id: str) -> None:
    row = AccessLog.objects.get()
    assert (row.api, row.method, row.path, row.status_code) == ("careos", method, "/api/leads/commit-probe", 200)
    assert (row.actor_type, row.actor_id, row.organization_id) == ("partner_platform", "acme", "org_commit")
    assert (row.subject_ids, row.ip, row.user_agent) == (["lead:lead_9"], "127.0.0.1", "commit-test/1")
    assert row.request_id == request_id
    assert row.created_at is not None and row.duration_ms >= 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls(__name__)
@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_a_read_s_row_commits_asynchronously_on_postgresql(client, method):
    with CaptureQueriesContext(connection) as queries:
        response = client.generic(
            method, "/api/leads/commit-probe", HTTP_USER_AGENT="commit-test/1", HTTP_X_REQUEST_ID="req-commit-read-1"
        )
    assert response.status_code == 200
    statement = _access_statement(queries)
    assert statement.startswith('INSERT INTO "audit_accesslog"')
    assert (ASYNCHRONOUS_COMMIT in statement) == (connection.vendor == "postgresql")  # SQLite: as before
    _assert_probe_row(method, "req-commit-read-1")


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls(__name__)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "PROPFIND"])
def test_a_write_s_row_keeps_a_durable_commit(client, method):
    with CaptureQueriesContext(connection) as queries:
        response = client.generic(
            method, "/api/leads/commit-probe", HTTP_USER_AGENT="commit-test/1", HTTP_X_REQUEST_ID="req-commit-write"
        )
    statement = _access_statement(queries)
    assert statement.startswith('INSERT INTO "audit_accesslog"')
    assert ASYNCHRONOUS_COMMIT not in statement
    if method == "PROPFIND":  # a method the view does not know: a 405, durably logged all the same
        assert (response.status_code, AccessLog.objects.get().method) == (405, "PROPFIND")
    else:
        assert response.status_code == 200
        _assert_probe_row(method, "req-commit-write")


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls(__name__)
def test_the_asynchronous_commit_ends_with_the_row_s_own_transaction(require_postgres, client):
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/leads/commit-probe").status_code == 200
    assert ASYNCHRONOUS_COMMIT in _access_statement(queries)
    # The same connection afterwards: the next statement, and a service's transaction with its audit event,
    # commit durably.
    assert _synchronous_commit() == "on"
    with transaction.atomic():
        audit_event_record(action="test.after_a_read", actor=Actor.system("test"))
        assert _synchronous_commit() == "on"
    assert AuditEvent.objects.filter(action="test.after_a_read").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_row_written_inside_a_transaction_never_makes_that_transaction_asynchronous(require_postgres):
    fields = dict(created_at=utc_now(), api="careos", method="GET", path="/api/leads/x", status_code=200)
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        audit_event_record(action="test.with_a_row", actor=Actor.system("test"))
        access_log_record(durable=False, **fields)
        assert _synchronous_commit() == "on"
    assert ASYNCHRONOUS_COMMIT not in _access_statement(queries)
    assert AccessLog.objects.count() == 1


class _RefuseAccessRow:
    """connection.execute_wrapper: the access-log INSERT fails as a dropped connection does."""

    def __init__(self):
        self.refused: list[str] = []

    def __call__(self, execute, sql, params, many, context):
        if sql.lstrip().startswith('INSERT INTO "audit_accesslog"'):
            self.refused.append(sql)
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls(__name__)
def test_a_read_whose_asynchronous_row_fails_is_withheld(require_postgres, client):
    refuse = _RefuseAccessRow()
    with connection.execute_wrapper(refuse):
        response = client.get("/api/leads/commit-probe")
    [statement] = refuse.refused
    assert ASYNCHRONOUS_COMMIT in statement  # the read's own path, in autocommit as in production
    assert response.status_code == 503
    assert response.json() == {"error": "Service temporarily unavailable, try again shortly"}
    assert SECRET not in response.content.decode()
    assert AccessLog.objects.count() == 0


@pytest.mark.django_db
def test_an_unknown_field_is_refused_as_the_model_would():
    with pytest.raises(TypeError):
        access_log_record(created_at=utc_now(), method="GET", path="/api/leads/x", status_code=200, colour="red")
    assert AccessLog.objects.count() == 0
