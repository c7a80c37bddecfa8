"""Issue 10 finding 5: hostile input is a 400 in the API's own error body, never a 500, and writes nothing.

Walked against every API: LoveRescue partner (/api/integration/) and app (/api/app/), CareOS
(/api/leads/ingest), the token endpoint (/api/v1/auth/token) and the Twilio status callback. The causes
are fixed in core (core.parsers, core.time.parse_instant, core.pagination.parse_ascii_int); these tests
go through HTTP so a view that bypasses them shows up here.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.test import Client

from audit.models import AuditEvent
from integration.models import CheckIn, JournalEntry, SessionPrepReport
from leads.models import Lead
from messaging import clients
from messaging.models import OutboundMessage
from tests.fixtures.messaging import ACCOUNT_SID, AUTH_TOKEN, CALLBACK_BASE, CALLBACK_URL, PHONE, queue
from tests.integration.factories import CLIENT_PASSWORD, link, make_client, make_partner, make_therapist
from tests.leads.factories import INGEST, make_platform

pytestmark = pytest.mark.django_db

DEEP = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"a":' * 5000 + "1" + "}" * 5000


def rows() -> dict[str, int]:
    return {
        "audit": AuditEvent.objects.count(),
        "leads": Lead.objects.count(),
        "reports": SessionPrepReport.objects.count(),
        "checkins": CheckIn.objects.count(),
        "journal": JournalEntry.objects.count(),
        "messages": OutboundMessage.objects.count(),
    }


def assert_loverescue_400(response, code: str = "BAD_REQUEST"):
    """LoveRescue's error body: `{"error", "code"}` (a malformed body's code is INVALID_REQUEST, as before)."""
    assert response.status_code == 400, response.content
    body = response.json()
    assert list(body) == ["error", "code"] and body["code"] == code and body["error"], body
    return body


# --- LoveRescue partner API ------------------------------------------------------------------------


@pytest.fixture
def partner_world():
    therapist = make_therapist()
    lr_client = make_client()
    link(therapist, lr_client)
    partner = make_partner(therapists=[therapist])
    return partner.headers(therapist), lr_client


@pytest.mark.parametrize(
    "query, fragment",
    [
        ("lastSessionDate=0001-01-01", "lastSessionDate"),
        ("lastSessionDate=0001-01-01T00:00:00%2B14:00", "lastSessionDate"),
        ("lastSessionDate=1000-06-01", "lastSessionDate"),
    ],
)
def test_session_prep_with_an_out_of_range_date_is_a_400(client, partner_world, query, fragment):
    headers, lr_client = partner_world
    before = rows()
    response = client.get(f"/api/integration/clients/{lr_client.pk}/session-prep?{query}", **headers)
    assert fragment in assert_loverescue_400(response)["error"]
    assert rows() == before


@pytest.mark.parametrize(
    "query, fragment",
    [
        ("since=0001-01-01T00:00:00%2B14:00", "since"),
        ("since=9999-12-31T23:59:59-14:00", "since"),
        ("since=0001-01-01", "since"),
        ("limit=%C2%B2", "limit"),  # "²": str.isdigit() is True, int() raises
        ("limit=%D9%A3", "limit"),  # Arabic-Indic 3: int() accepts it; we take ASCII digits only
    ],
)
def test_alerts_with_a_bad_parameter_is_a_400(client, partner_world, query, fragment):
    headers, _ = partner_world
    response = client.get(f"/api/integration/alerts?{query}", **headers)
    assert fragment in assert_loverescue_400(response)["error"]


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT, '{"taskDescription": "a\\u0000b"}'])
def test_partner_json_bodies_too_deep_or_with_nul_are_a_400(client, partner_world, body):
    headers, lr_client = partner_world
    before = rows()
    for path in (f"/api/integration/clients/{lr_client.pk}/assign", "/api/integration/webhook/register"):
        response = client.post(path, body, content_type="application/json", **headers)
        assert "JSON parse error" in assert_loverescue_400(response, "INVALID_REQUEST")["error"]
    assert rows() == before


# --- LoveRescue app API ----------------------------------------------------------------------------


@pytest.fixture
def app_headers(client):
    lr_client = make_client("Nul", "Tester", username="nul.tester")
    response = client.post(
        "/api/v1/auth/token",
        {"username": lr_client.user.username, "password": CLIENT_PASSWORD},
        content_type="application/json",
    )
    return {"HTTP_AUTHORIZATION": f"Bearer {response.json()['access_token']}"}


@pytest.mark.parametrize(
    "path, body",
    [
        ("journal", '{"text": "dear diary\\u0000"}'),
        ("journal", '{"text\\u0000": "dear diary"}'),
        ("journal", DEEP),
        ("checkins", DEEP_OBJECT),
    ],
)
def test_app_bodies_with_nul_or_too_deep_are_a_400(client, app_headers, path, body):
    before = rows()
    response = client.post(f"/api/app/{path}", body, content_type="application/json", **app_headers)
    assert "JSON parse error" in assert_loverescue_400(response, "INVALID_REQUEST")["error"]
    assert rows() == before


def test_an_escaped_backslash_before_u0000_is_text_not_nul(client, app_headers):
    # "\\u0000" in JSON is a backslash then "u0000": six ordinary characters, accepted.
    response = client.post(
        "/api/app/journal",
        '{"text": "path C:\\\\u0000", "therapistHidden": false}',
        content_type="application/json",
        **app_headers,
    )
    assert response.status_code == 201, response.content


# --- CareOS ----------------------------------------------------------------------------------------


@pytest.fixture
def careos(monkeypatch):
    from messaging.tasks import send_message

    monkeypatch.setattr(send_message, "apply_async", lambda *args, **kwargs: None)
    return make_platform()


def _careos_post(client, setup, payload: str):
    return client.post(INGEST, payload, content_type="application/json", **setup.headers())


@pytest.mark.parametrize("field", ["user_name", "original_message", "category", "source_conversation_id"])
def test_careos_nul_in_a_string_field_is_a_400(client, careos, field):
    lead = careos.lead(phone="+14155550123")
    lead[field] = f"{lead[field] or 'x'}\x00"
    before = rows()
    response = _careos_post(client, careos, json.dumps(lead))
    assert response.status_code == 400, response.content
    assert response.json() == {"error": "Request body must not contain NUL characters"}
    assert rows() == before


@pytest.mark.parametrize(
    "timestamp",
    ["0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00+23:59", "0001-01-01T00:30:00+01:00", "1000-01-01T00:00:00Z"],
)
def test_careos_extreme_consent_timestamp_is_a_400(client, careos, timestamp):
    lead = careos.lead(phone="+14155550123")
    lead["consent_timestamp"] = timestamp
    before = rows()
    response = _careos_post(client, careos, json.dumps(lead))
    assert response.status_code == 400, response.content
    assert response.json()["error"].startswith("consent_timestamp must be an ISO 8601 timestamp")
    assert rows() == before


@pytest.mark.parametrize("depth", [65, 500, 900, 5000])
def test_careos_deeply_nested_details_are_a_400(client, careos, depth):
    lead = careos.lead(phone="+14155550123")
    body = json.dumps(lead)
    nested = '{"x":' * depth + "1" + "}" * depth
    payload = body[:-1] + f', "ai_extracted_details": {{"deep": {nested}}}}}'
    before = rows()
    response = _careos_post(client, careos, payload)
    assert response.status_code == 400, response.content
    assert response.json() == {"error": "Malformed JSON body"}
    assert rows() == before


# --- Token endpoint --------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT, '{"username": "a\\u0000", "password": "b"}'])
def test_token_endpoint_refuses_deep_or_nul_json_with_a_400(body):
    before = rows()
    response = Client().post("/api/v1/auth/token", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "JSON parse error" in json.dumps(response.json())
    assert rows() == before


# --- Twilio status callback ------------------------------------------------------------------------


def test_twilio_callback_refuses_a_json_body_without_a_500(settings):
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.MESSAGING_STATUS_CALLBACK_BASE_URL = CALLBACK_BASE
    response = Client().post("/api/messaging/twilio/status", DEEP, content_type="application/json")
    assert 400 <= response.status_code < 500, response.content


def test_twilio_callback_with_nul_in_a_signed_field_writes_nothing(settings):
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.MESSAGING_STATUS_CALLBACK_BASE_URL = CALLBACK_BASE
    message = queue(channel="sms", recipient=PHONE, body="hello")
    OutboundMessage.objects.filter(pk=message.pk).update(status="sent", provider="twilio", provider_message_id="SM1")
    before = OutboundMessage.objects.filter(pk=message.pk).values().get()
    params = {"MessageSid": "SM1", "MessageStatus": "delivered\x00", "AccountSid": ACCOUNT_SID, "ErrorCode": "3\x00"}
    signature = clients.compute_signature(AUTH_TOKEN, CALLBACK_URL, params)
    response = Client().post(
        "/api/messaging/twilio/status",
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )
    assert response.status_code < 500, response.content
    assert OutboundMessage.objects.filter(pk=message.pk).values().get() == before
