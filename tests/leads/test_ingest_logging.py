"""The phone never reaches a log, an error body, the access log or the audit trail.

A full ingest (request, SQL, welcome SMS through a Twilio-like server over httpx) runs with every
logger at DEBUG, SQL logging forced on (django.db.backends) and httpx/httpcore included; no form of the
phone (E.164, digits, national, formatted) nor the user's message appears in any record."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection

from audit.models import AccessLog, AuditEvent
from leads.models import Lead
from messaging.models import OutboundMessage
from messaging.tasks import send_message
from tests.leads.factories import INGEST, make_platform

pytestmark = pytest.mark.django_db

PHONE = "+14155550123"
PHONE_FORMS = (
    "+14155550123",  # E.164
    "14155550123",  # digits only
    "4155550123",  # national digits
    "(415) 555-0123",  # national, formatted
    "415-555-0123",
    "415 555 0123",
    "+1 415-555-0123",  # international, formatted
    "%2B14155550123",  # URL-encoded
    "555-0123",
    "5550123",
)
MESSAGE = "I need help finding a caregiver for my mom who has mobility issues"
MESSAGE_WORDS = ("caregiver for my mom", "mobility issues")


@pytest.fixture
def sql_logged():
    """django.db.backends logs every query with its parameters (as with DEBUG=True)."""
    saved = connection.force_debug_cursor
    connection.force_debug_cursor = True
    yield
    connection.force_debug_cursor = saved


@pytest.fixture
def sends(monkeypatch) -> list[int]:
    queued: list[int] = []
    monkeypatch.setattr(send_message, "apply_async", lambda args=None, **options: queued.append(args[0]))
    return queued


def assert_no_phone_or_message(text: str) -> None:
    for form in PHONE_FORMS + (MESSAGE,) + MESSAGE_WORDS:
        assert form not in text, f"found {form!r}"


def test_a_full_ingest_logs_no_phone_and_no_message(
    client,
    logs,
    twilio,
    sql_logged,
    sends,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    setup = make_platform()
    body = setup.lead(phone=PHONE, original_message=MESSAGE)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(INGEST, json.dumps(body), content_type="application/json", **setup.headers())
    assert response.status_code == 200, response.content
    # The worker's side: the welcome SMS goes out through the Twilio-like server.
    assert sends and send_message.run(sends[0]) == "sent"
    assert twilio.form()["To"] == PHONE  # the number did travel, to the provider only

    text = logs.text()
    names = {record.name for record in logs.records}
    # The capture saw the request, the SQL (with parameters) and the HTTP client: a real full run.
    assert "django.db.backends" in names and {"httpx", "httpcore.http11"} <= names
    assert re.search(r"INSERT INTO \"leads_lead\"", text) and "outbound POST 127.0.0.1 -> 201" in text
    assert f"lead {Lead.objects.get().public_id} ingested from businessos" in text
    assert_no_phone_or_message(text)
    assert_no_phone_or_message(response.content.decode())


def _audit_text() -> str:
    rows = [
        [e.action, e.actor_id, e.subject_type, e.subject_id, json.dumps(e.metadata)] for e in AuditEvent.objects.all()
    ] + [[a.path, a.actor_id, json.dumps(a.subject_ids), a.user_agent] for a in AccessLog.objects.all()]
    return json.dumps(rows)


def test_the_audit_trail_and_access_log_hold_no_phone_even_from_the_query_string(client, logs, sql_logged):
    setup = make_platform()
    body = setup.lead(phone=PHONE, original_message=MESSAGE)
    url = f"{INGEST}?phone=%2B14155550123&note=4155550123"
    response = client.post(url, json.dumps(body), content_type="application/json", **setup.headers())
    assert response.status_code == 200
    log = AccessLog.objects.get()
    assert log.path == INGEST and log.status_code == 200
    assert AuditEvent.objects.filter(action="leads.lead_ingested").exists()
    assert OutboundMessage.objects.filter(purpose="careos.welcome").exists()
    assert_no_phone_or_message(_audit_text())
    assert_no_phone_or_message(logs.text())


@pytest.mark.parametrize(
    "overrides, error",
    [
        ({"user_phone_hash": "0" * 64}, "Phone hash mismatch"),
        ({"user_phone_encrypted": "AAAA"}, "Failed to decrypt user data"),
        ({"user_location_country": None, "phone": "4155550123"}, "Invalid phone number"),
        ({"user_consent": False}, "User consent required"),
    ],
    ids=["hash mismatch", "decryption", "invalid number", "consent"],
)
def test_refused_leads_log_and_answer_without_the_phone(client, logs, sql_logged, overrides, error):
    setup = make_platform()
    phone = overrides.pop("phone", PHONE)
    body = setup.lead(phone=phone, original_message=MESSAGE, **overrides)
    if body.get("user_location_country") is None:
        body.pop("user_location_country")
    response = client.post(
        f"{INGEST}?phone={phone}", json.dumps(body), content_type="application/json", **setup.headers()
    )
    assert (response.status_code, response.json()) == (400, {"error": error})
    assert "Bad Request: /api/leads/ingest" in logs.text()  # django.request's warning was captured
    assert_no_phone_or_message(logs.text())
    assert_no_phone_or_message(_audit_text())
