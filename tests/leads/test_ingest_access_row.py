"""Issue 15: a new lead's access row is inserted by the lead's own transaction (audit.middleware.access_row_join),
so the lead, its payment, its SMS row, their audit events and the request's access row commit together in one
durable commit. Every request still gets its row: when that transaction rolls back (a replay race, an error) the
access-log middleware writes it; when the answer changes after the commit, the status that left is recorded too;
when the row cannot be written, nothing of the lead is."""

from __future__ import annotations

import dataclasses
import json

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.models import AccessLog
from leads import selectors
from leads.api import views
from leads.models import Lead, PartnerPayment
from leads.services import ingest
from messaging.models import OutboundMessage
from messaging.tasks import send_message
from tests.leads.factories import INGEST, make_platform

PHONE = "+14155550123"
ACCESS_INSERT = 'INSERT INTO "audit_accesslog"'


@pytest.fixture(autouse=True)
def enqueued(monkeypatch) -> list[int]:
    """send_message.apply_async recorded, never published."""
    calls: list[int] = []
    monkeypatch.setattr(send_message, "apply_async", lambda args=None, **options: calls.append(args[0]))
    return calls


def _post(setup, body, request_id: str, client: Client | None = None):
    return (client or Client()).post(
        INGEST,
        json.dumps(body),
        content_type="application/json",
        HTTP_X_REQUEST_ID=request_id,
        HTTP_USER_AGENT="access-row-test/1",
        **setup.headers(),
    )


def _rows(request_id: str) -> list[AccessLog]:
    return list(AccessLog.objects.filter(request_id=request_id).order_by("id"))


def _subjects(lead: Lead) -> list[str]:
    return [f"lead:{lead.public_id}", f"careos_user:{lead.user.public_id}"]


@pytest.mark.django_db(transaction=True)
def test_a_new_person_s_lead_commits_its_access_row_in_its_one_statement(require_postgres, enqueued):
    """A person nobody referred before: the person, the welcome SMS, the lead, its payment, their audit events and
    the access row are one statement in autocommit, its own durable commit (no BEGIN, no COMMIT)."""
    setup = make_platform()
    with CaptureQueriesContext(connection) as queries:
        response = _post(setup, setup.lead(phone=PHONE), "req-join-new-1")
    assert response.status_code == 200, response.content
    statements = [query["sql"] for query in queries.captured_queries]
    assert "BEGIN" not in statements and "COMMIT" not in statements
    [with_row] = [sql for sql in statements if '"audit_accesslog"' in sql]
    assert with_row.startswith("WITH ")
    for table in (
        "leads_careuser",
        "messaging_outboundmessage",
        "leads_lead",
        "leads_partnerpayment",
        "audit_auditevent",
    ):
        assert f'"{table}"' in with_row
    assert not any(sql.startswith(ACCESS_INSERT) for sql in statements)

    lead = Lead.objects.get()
    assert response.json()["careos_lead_id"] == lead.public_id
    [row] = AccessLog.objects.all()
    assert (row.api, row.method, row.path, row.status_code, row.reason) == ("careos", "POST", INGEST, 200, "")
    assert (row.actor_type, row.actor_id, row.request_id) == ("partner_platform", "businessos", "req-join-new-1")
    assert (row.subject_ids, row.ip, row.user_agent) == (_subjects(lead), "127.0.0.1", "access-row-test/1")
    assert row.duration_ms >= 0
    assert PartnerPayment.objects.filter(lead=lead).count() == 1
    assert enqueued == [OutboundMessage.objects.get().pk]  # the welcome SMS, published once after the commit


@pytest.mark.django_db(transaction=True)
def test_a_known_person_s_lead_commits_its_access_row_in_its_transaction(require_postgres, enqueued):
    """A person referred before: the one statement stands down on the phone (writing nothing), and the lead is
    written in a transaction holding the person's row lock, the access row in the lead's own statement."""
    setup = make_platform()
    assert _post(setup, setup.lead(phone=PHONE), "req-join-first").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = _post(setup, setup.lead(phone=PHONE, source_conversation_id="conv-2"), "req-join-known")
    assert response.status_code == 200, response.content
    statements = [query["sql"] for query in queries.captured_queries]
    begin, commit = statements.index("BEGIN"), statements.index("COMMIT")
    [stood_down, with_row] = [number for number, sql in enumerate(statements) if '"audit_accesslog"' in sql]
    assert stood_down < begin < with_row < commit and statements[with_row].startswith("WITH ")
    assert '"leads_careuser"' in statements[stood_down] and '"leads_careuser"' not in statements[with_row]
    # The transaction starts with the person's locking read: no second INSERT of a person the statement found.
    assert not any(sql.startswith('INSERT INTO "leads_careuser"') for sql in statements[begin:commit])
    assert statements.count("COMMIT") == 1 and not any(sql.startswith(ACCESS_INSERT) for sql in statements)

    lead = Lead.objects.get(source_conversation_id="conv-2")
    assert response.json()["is_new_user"] is False
    [row] = _rows("req-join-known")
    assert (row.status_code, row.subject_ids) == (200, _subjects(lead))
    assert AccessLog.objects.count() == 2 and Lead.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_replay_s_row_is_written_by_the_middleware(require_postgres, enqueued):
    setup = make_platform()
    assert _post(setup, setup.lead(phone=PHONE), "req-join-first").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = _post(setup, setup.lead(phone=PHONE), "req-join-replay")
    assert response.status_code == 200
    statements = [query["sql"] for query in queries.captured_queries]
    assert "BEGIN" not in statements  # a replay writes nothing of its own
    assert sum(sql.startswith(ACCESS_INSERT) for sql in statements) == 1
    lead = Lead.objects.get()
    [row] = _rows("req-join-replay")
    assert (row.status_code, row.subject_ids) == (200, _subjects(lead))
    assert len(_rows("req-join-first")) == 1 and AccessLog.objects.count() == 2
    assert len(enqueued) == 1


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_race_still_gets_exactly_one_row(require_postgres, monkeypatch, enqueued):
    """The replay read misses a lead committed meanwhile: the lead's INSERT conflicts, the transaction (with
    the joined access row, the person, the SMS row) rolls back, and the answer is the other request's lead.
    The middleware writes the row, naming that lead, once."""
    setup = make_platform()
    assert _post(setup, setup.lead(phone=PHONE), "req-race-first").status_code == 200
    real_prelude = selectors.ingest_prelude
    monkeypatch.setattr(
        selectors, "ingest_prelude", lambda **kwargs: dataclasses.replace(real_prelude(**kwargs), lead_id=None)
    )
    joined = []
    real_join = views.access_row_join

    def join(*args, **kwargs):
        joined.append(real_join(*args, **kwargs))
        return joined[-1]

    monkeypatch.setattr(views, "access_row_join", join)

    response = _post(setup, setup.lead(phone=PHONE), "req-race-second")

    assert response.status_code == 200
    lead = Lead.objects.get()
    assert response.json()["careos_lead_id"] == lead.public_id
    # It joined twice: the one statement stood down on the known phone, then the transaction rolled back.
    assert len(joined) == 2 and all(row is not None and row.pk is None for row in joined)
    [row] = _rows("req-race-second")
    assert (row.status_code, row.subject_ids) == (200, _subjects(lead))
    assert AccessLog.objects.count() == 2 and OutboundMessage.objects.count() == 1 and len(enqueued) == 1


@pytest.mark.django_db(transaction=True)
def test_an_error_after_the_row_joined_leaves_the_row_to_the_middleware(require_postgres, monkeypatch, enqueued):
    """A known person's lead, in a transaction: an error after its statement and before the commit rolls the row
    back with the lead, and the middleware writes the request's row."""
    setup = make_platform()
    assert _post(setup, setup.lead(phone=PHONE), "req-join-first").status_code == 200
    real_insert = ingest._rows_insert

    def insert_then_fail(rows, **options):
        inserted = real_insert(rows, **options)
        if not options and inserted:  # the transaction's statement (not the one that stood down)
            assert any(isinstance(instance, AccessLog) for instance, _links in rows)  # the row was in it
            raise RuntimeError("after the rows, before the commit")
        return inserted

    monkeypatch.setattr(ingest, "_rows_insert", insert_then_fail)
    second = setup.lead(phone=PHONE, source_conversation_id="conv-2")
    response = _post(setup, second, "req-join-error", Client(raise_request_exception=False))

    assert response.status_code == 500
    assert Lead.objects.count() == 1 and OutboundMessage.objects.count() == 1 and len(enqueued) == 1
    [row] = _rows("req-join-error")
    assert (row.status_code, row.subject_ids) == (500, [])


@pytest.mark.django_db(transaction=True)
def test_an_answer_changed_after_the_commit_is_recorded_as_well(require_postgres, monkeypatch):
    """The row committed with the lead says 200; if the answer then becomes an error, the middleware records
    the status that left in a second row for the request (never a row that overstates what was answered
    without one that tells the truth)."""
    setup = make_platform()

    class Broken:
        def __init__(self, lead):
            raise RuntimeError("rendering failed after the commit")

    monkeypatch.setattr(views.s, "IngestResponseSerializer", Broken)
    response = _post(setup, setup.lead(phone=PHONE), "req-join-changed", Client(raise_request_exception=False))

    assert response.status_code == 500
    lead = Lead.objects.get()  # committed before the answer failed
    rows = _rows("req-join-changed")
    assert [row.status_code for row in rows] == [200, 500]
    assert rows[0].subject_ids == rows[1].subject_ids == _subjects(lead)


@pytest.mark.django_db(transaction=True)
def test_no_lead_without_its_access_row(require_postgres, enqueued):
    """The row cannot be written (the database refuses the access log): the lead's transaction fails with it,
    so nothing of the lead is committed, and the answer is withheld (the middleware's own row fails too)."""
    setup = make_platform()
    refused = []

    def refuse_access_rows(execute, sql, params, many, context):
        if '"audit_accesslog"' in sql:
            refused.append(sql)
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse_access_rows):
        response = _post(setup, setup.lead(phone=PHONE), "req-join-refused", Client(raise_request_exception=False))

    assert response.status_code == 503
    assert "lead_" not in response.content.decode()
    assert len(refused) == 2 and refused[0].startswith("WITH ") and refused[1].startswith(ACCESS_INSERT)
    assert Lead.objects.count() == 0 and PartnerPayment.objects.count() == 0 and OutboundMessage.objects.count() == 0
    assert AccessLog.objects.count() == 0 and enqueued == []


@pytest.mark.django_db
def test_inside_a_wrapping_transaction_the_middleware_writes_the_row(enqueued, django_capture_on_commit_callbacks):
    """The lead's transaction is not the outermost one (here the test's): a joined row would commit only with
    that outer transaction, so the row is not joined; the middleware writes it, once."""
    setup = make_platform()
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(setup, setup.lead(phone=PHONE), "req-wrapped")
    assert response.status_code == 200
    lead = Lead.objects.get()
    [row] = AccessLog.objects.all()
    assert (row.request_id, row.status_code, row.subject_ids) == ("req-wrapped", 200, _subjects(lead))
