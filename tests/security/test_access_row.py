"""Issue 10, finding 10: no protected read leaves without its access-log row.

The database fails exactly when the access row is inserted (an execute wrapper refuses that one INSERT,
as a PostgreSQL that went away between the view and the row would): the client gets the API's own 503
body with Retry-After, never the data the view had prepared. tests/faults/test_database_restart.py does
the same through a real TCP cut in front of a live server process.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import pytest
from django.db import OperationalError, connection, transaction
from django.test import Client

from audit.models import AccessLog
from core.ratelimit import UNAVAILABLE_RETRY_AFTER

pytestmark = pytest.mark.django_db

ACCESS_INSERT = 'INSERT INTO "audit_accesslog"'


class _RefuseAccessRow:
    """connection.execute_wrapper: the access-log INSERT fails as a dropped connection does; every
    other statement runs."""

    def __init__(self):
        self.refused = 0

    def __call__(self, execute, sql, params, many, context):
        if sql.lstrip().startswith(ACCESS_INSERT):
            self.refused += 1
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)


@contextmanager
def refusing_access_row():
    """In a savepoint: a failed save marks the enclosing transaction for rollback, and these tests run
    inside pytest-django's (in production the INSERT runs in autocommit, nothing encloses it)."""
    wrapper = _RefuseAccessRow()
    with transaction.atomic(), connection.execute_wrapper(wrapper):
        yield wrapper


@pytest.fixture
def refuse_access_row():
    with refusing_access_row() as wrapper:
        yield wrapper


def test_client_list_is_withheld_when_its_access_row_cannot_be_written(lr_partner, lr_therapist, lr_link):
    name = lr_link.client.first_name
    healthy = Client().get("/api/integration/clients", **lr_partner.headers(lr_therapist))
    assert healthy.status_code == 200 and name in healthy.content.decode()  # the data the row protects

    with refusing_access_row() as refuse:
        response = Client().get(
            "/api/integration/clients", HTTP_X_REQUEST_ID="req-access-row-0001", **lr_partner.headers(lr_therapist)
        )

    assert refuse.refused == 1
    assert response.status_code == 503
    assert response.json() == {
        "error": "Service temporarily unavailable, try again shortly",
        "code": "SERVICE_UNAVAILABLE",
    }
    assert name not in response.content.decode()
    assert lr_link.client.last_name not in response.content.decode()
    assert response["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER)
    assert response["Cache-Control"] == "no-store"
    assert response["X-Request-ID"] == "req-access-row-0001"
    assert AccessLog.objects.count() == 1  # the healthy request's row only


def test_the_withheld_answer_keeps_the_rate_limit_headers(lr_partner, lr_therapist, lr_link, refuse_access_row):
    response = Client().get("/api/integration/clients", **lr_partner.headers(lr_therapist))
    assert response.status_code == 503
    assert response["X-RateLimit-Limit"] == "100"  # the request was counted; the caller still sees its budget
    assert int(response["X-RateLimit-Remaining"]) == 99


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/no-such-thing", {"error": {"code": "service_unavailable", "message": "Service temporarily unavailable, try again shortly", "details": None}}),  # noqa: E501
        ("/api/leads/no-such-thing", {"error": "Service temporarily unavailable, try again shortly"}),
        ("/api/session/no-such-thing", {"error": "Service temporarily unavailable, try again shortly", "code": "SERVICE_UNAVAILABLE", "details": {}}),  # noqa: E501
    ],
)
def test_every_api_answers_its_own_503(client, refuse_access_row, path, body):
    response = client.get(path)
    assert refuse_access_row.refused == 1
    assert response.status_code == 503
    assert response.json() == body
    assert response["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER)


def test_routiq_503_is_in_routiq_body(client, refuse_access_row):
    response = client.get("/api/v1/patients/org_nope/no-such-thing")
    assert response.status_code == 503
    body = response.json()
    assert (body["detail"], body["path"]) == (
        "Service temporarily unavailable, try again shortly",
        "/api/v1/patients/org_nope/no-such-thing",
    )
    assert set(body) == {"error", "detail", "timestamp", "path"}
    assert response["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER)  # not the window's reset, which it always sends


def test_the_lost_row_is_logged_with_request_id_actor_and_subjects(
    lr_partner, lr_therapist, lr_link, refuse_access_row, caplog
):
    with caplog.at_level(logging.ERROR, logger="audit"):
        response = Client().get(
            "/api/integration/clients", HTTP_X_REQUEST_ID="req-access-row-0002", **lr_partner.headers(lr_therapist)
        )
    assert response.status_code == 503
    [record] = [r for r in caplog.records if r.name == "audit"]
    message = record.getMessage()
    assert "req-access-row-0002" in message
    assert f"integration_partner:{lr_partner.partner.pk}" in message
    assert f"therapist:{lr_therapist.pk}" in message
    assert "withheld 200" in message
    assert f"client:{lr_link.client.pk}" in message
    assert lr_link.client.first_name not in message  # ids, never names


def test_a_written_row_lets_the_answer_through(lr_partner, lr_therapist, lr_link):
    response = Client().get("/api/integration/clients", **lr_partner.headers(lr_therapist))
    assert response.status_code == 200
    row = AccessLog.objects.get()
    assert (row.status_code, row.request_id) == (200, response["X-Request-ID"])
    assert f"client:{lr_link.client.pk}" in row.subject_ids
