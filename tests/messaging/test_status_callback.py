"""POST /api/messaging/twilio/status: signature checked with an independent implementation of
Twilio's documented algorithm, status mapping, never backwards, 403 changes nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlencode

import pytest
from django.test import Client

from core.time import utc_now
from messaging import clients
from messaging.models import OutboundMessage
from tests.fixtures.messaging import ACCOUNT_SID, AUTH_TOKEN, BODY, CALLBACK_BASE, CALLBACK_URL, PHONE, queue

pytestmark = pytest.mark.django_db

PATH = "/api/messaging/twilio/status"
SID = "SM" + "ab12" * 8


def expected_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Written from Twilio's "Webhooks security" page: take the full URL, append each POST parameter
    name and value (no delimiters) sorted by name, HMAC-SHA1 with the auth token, base64."""
    payload = url
    for name in sorted(params):
        payload += name + params[name]
    return base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def test_independent_signature_matches_twilios_published_example():
    # The example of Twilio's docs (auth token 12345) and its published signature.
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert expected_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert clients.compute_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


@pytest.fixture
def callback_settings(settings):
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.MESSAGING_STATUS_CALLBACK_BASE_URL = CALLBACK_BASE
    return settings


@pytest.fixture
def sent_message(callback_settings) -> OutboundMessage:
    message = queue(channel="sms", recipient=PHONE, body=BODY)
    OutboundMessage.objects.filter(pk=message.pk).update(
        status="sent", provider="twilio", provider_message_id=SID, sent_at=utc_now(), attempts=1
    )
    message.refresh_from_db()
    return message


def report(status: str, sid: str = SID, *, signature: str | None = None, extra: dict | None = None, **headers):
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": ACCOUNT_SID,
        "To": PHONE,
        "From": "+15005550006",
        "ApiVersion": "2010-04-01",
        **(extra or {}),
    }
    if signature is None:
        signature = expected_signature(AUTH_TOKEN, CALLBACK_URL, params)
    if signature:
        headers["HTTP_X_TWILIO_SIGNATURE"] = signature
    return Client().post(PATH, urlencode(params), content_type="application/x-www-form-urlencoded", **headers)


def test_good_signature_marks_delivered(sent_message, logs):
    response = report("delivered")
    assert response.status_code == 204
    sent_message.refresh_from_db()
    assert sent_message.status == "delivered" and sent_message.delivered_at is not None
    logs.assert_clean(PHONE, BODY)


@pytest.mark.parametrize("signature", ["", "bad", expected_signature("another-token", CALLBACK_URL, {})])
def test_bad_or_missing_signature_is_403_and_changes_nothing(sent_message, signature, logs):
    before = OutboundMessage.objects.filter(pk=sent_message.pk).values().get()
    response = report("delivered", signature=signature)
    assert response.status_code == 403
    assert response.json() == {"error": "Invalid Twilio signature", "code": "invalid_signature"}
    assert OutboundMessage.objects.filter(pk=sent_message.pk).values().get() == before
    logs.assert_clean(PHONE, BODY)


def test_signature_over_other_params_is_refused(sent_message):
    """A valid signature for "failed" cannot be replayed with the status changed to "delivered"."""
    params = {"MessageSid": SID, "MessageStatus": "failed"}
    signature = expected_signature(AUTH_TOKEN, CALLBACK_URL, params)
    response = Client().post(
        PATH,
        urlencode({**params, "MessageStatus": "delivered"}),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )
    assert response.status_code == 403
    sent_message.refresh_from_db()
    assert sent_message.status == "sent"


def test_url_is_the_configured_one_not_the_host_header(sent_message):
    """Signed for the URL a proxy would show (its own Host): refused, since Twilio signs the configured URL."""
    params = {"MessageSid": SID, "MessageStatus": "delivered"}
    forged = expected_signature(AUTH_TOKEN, "http://testserver" + PATH, params)
    response = Client().post(
        PATH, urlencode(params), content_type="application/x-www-form-urlencoded", HTTP_X_TWILIO_SIGNATURE=forged
    )
    assert response.status_code == 403
    sent_message.refresh_from_db()
    assert sent_message.status == "sent"


def test_delivered_never_goes_back_to_sent(sent_message):
    assert report("delivered").status_code == 204
    assert report("sent").status_code == 204  # a late, out-of-order report
    sent_message.refresh_from_db()
    assert sent_message.status == "delivered"


def test_failed_is_final_and_records_the_error_code(sent_message):
    assert report("undelivered", extra={"ErrorCode": "30003"}).status_code == 204
    sent_message.refresh_from_db()
    assert sent_message.status == "failed" and sent_message.last_error == "twilio_error_30003"
    assert report("delivered").status_code == 204
    sent_message.refresh_from_db()
    assert sent_message.status == "failed"


@pytest.mark.parametrize(
    "twilio_status, ours",
    [
        ("queued", "sent"),
        ("sending", "sent"),
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("read", "delivered"),
        ("failed", "failed"),
        ("undelivered", "failed"),
    ],
)
def test_status_mapping(callback_settings, twilio_status, ours):
    message = queue()
    OutboundMessage.objects.filter(pk=message.pk).update(status="queued", provider="twilio", provider_message_id=SID)
    assert report(twilio_status).status_code == 204
    message.refresh_from_db()
    assert message.status == ours


def test_sent_report_keeps_the_original_sent_at(sent_message):
    original = sent_message.sent_at
    report("sent")
    sent_message.refresh_from_db()
    assert sent_message.sent_at == original


def test_unknown_sid_is_204_and_changes_nothing(sent_message):
    before = OutboundMessage.objects.filter(pk=sent_message.pk).values().get()
    response = report("delivered", sid="SM" + "ff" * 16)
    assert response.status_code == 204
    assert OutboundMessage.objects.filter(pk=sent_message.pk).values().get() == before


def test_untracked_status_is_ignored(sent_message):
    assert report("receiving").status_code == 204
    sent_message.refresh_from_db()
    assert sent_message.status == "sent"


def test_refused_when_callbacks_are_not_configured(sent_message, settings):
    settings.MESSAGING_STATUS_CALLBACK_BASE_URL = ""
    response = report("delivered")
    assert response.status_code == 403
    assert response.json()["code"] == "not_configured"
    sent_message.refresh_from_db()
    assert sent_message.status == "sent"


def test_json_body_is_refused_in_the_platform_envelope(sent_message):
    response = Client().post(PATH, {"MessageSid": SID, "MessageStatus": "delivered"}, content_type="application/json")
    assert response.status_code == 415
    assert response.json() == {
        "error": 'Unsupported media type "application/json" in request.',
        "code": "unsupported_media_type",
    }


def test_get_is_405_in_the_platform_envelope(callback_settings):
    response = Client().get(PATH)
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_signed_report_missing_fields_is_400(sent_message):
    params = {"AccountSid": ACCOUNT_SID}
    response = Client().post(
        PATH,
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=expected_signature(AUTH_TOKEN, CALLBACK_URL, params),
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_callback_is_in_the_openapi_schema():
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    post = schema["paths"][PATH]["post"]
    assert post["tags"] == ["Platform"]
    assert "application/x-www-form-urlencoded" in post["requestBody"]["content"]
    assert {"204", "403"} <= set(post["responses"])
