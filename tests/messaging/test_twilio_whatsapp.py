"""The outbox's per-message sender, WhatsApp templates and media against the Twilio-like server on
127.0.0.1: From = the row's sender (or MessagingServiceSid), ContentSid + ContentVariables (JSON) instead
of the body, MediaUrl; and message_queue's validation of those fields (nothing stored when refused)."""

from __future__ import annotations

import json

import pytest

from messaging.models import OutboundMessage
from messaging.services import InvalidMessageError
from tests.fixtures.messaging import BODY, PHONE, WHATSAPP_FROM, queue, run

pytestmark = pytest.mark.django_db

CLINIC_NUMBER = "+34911234567"
SERVICE_SID = "MG" + "ab" * 16
CONTENT_SID = "HX" + "cd" * 16
VARIABLES = {"1": "Clínica Zebrafinch", "2": "03/03/2026", "3": "10:30"}
MEDIA = "https://platform.example.com/api/v1/messages/msg_x/audio?signature=abc"


def test_the_rows_sender_number_is_the_from(twilio):
    message = queue(channel="whatsapp", recipient=PHONE, body=BODY, sender=f"whatsapp:{CLINIC_NUMBER}")
    assert message.sender == CLINIC_NUMBER  # stored as E.164
    assert run(message) == "sent"
    form = twilio.form()
    assert (form["To"], form["From"], form["Body"]) == (f"whatsapp:{PHONE}", f"whatsapp:{CLINIC_NUMBER}", BODY)
    assert "MessagingServiceSid" not in form and "ContentSid" not in form and "MediaUrl" not in form


def test_a_messaging_service_replaces_the_from(twilio):
    message = queue(channel="whatsapp", recipient=PHONE, body=BODY, sender=SERVICE_SID)
    assert run(message) == "sent"
    form = twilio.form()
    assert form["MessagingServiceSid"] == SERVICE_SID and "From" not in form
    assert form["To"] == f"whatsapp:{PHONE}"


def test_no_sender_on_the_row_uses_the_platforms(twilio):
    run(queue(channel="whatsapp", recipient=PHONE, body=BODY))
    assert twilio.form()["From"] == f"whatsapp:{WHATSAPP_FROM}"


def test_an_sms_row_with_a_sender_sends_from_it(twilio):
    run(queue(channel="sms", recipient=PHONE, body=BODY, sender=CLINIC_NUMBER))
    assert twilio.form()["From"] == CLINIC_NUMBER


def test_a_template_sends_content_sid_and_variables_instead_of_the_body(twilio, logs):
    message = queue(
        channel="whatsapp", recipient=PHONE, body=BODY, content_sid=CONTENT_SID, content_variables=VARIABLES
    )
    assert run(message) == "sent"
    assert twilio.problems == []
    form = twilio.form()
    assert form["ContentSid"] == CONTENT_SID
    assert json.loads(form["ContentVariables"]) == VARIABLES
    assert "Body" not in form
    stored = OutboundMessage.objects.get(pk=message.pk)
    assert stored.body == BODY  # the rendered text, kept for the record
    assert json.loads(stored.content_variables) == VARIABLES
    logs.assert_clean(PHONE, BODY, VARIABLES["1"])


def test_media_is_attached_with_the_body(twilio):
    run(queue(channel="whatsapp", recipient=PHONE, body=BODY, media_url=MEDIA))
    form = twilio.form()
    assert (form["MediaUrl"], form["Body"]) == (MEDIA, BODY)


@pytest.mark.parametrize(
    "channel, fields",
    [
        ("whatsapp", {"sender": "+1 not a number"}),
        ("whatsapp", {"sender": "MG123"}),
        ("email", {"sender": CLINIC_NUMBER}),
        ("whatsapp", {"content_sid": "HX123"}),
        ("sms", {"content_sid": CONTENT_SID}),
        ("whatsapp", {"content_variables": VARIABLES}),  # variables without a template
        ("whatsapp", {"content_sid": CONTENT_SID, "content_variables": {"1": 5}}),
        ("whatsapp", {"content_sid": CONTENT_SID, "content_variables": ["x"]}),
        ("whatsapp", {"media_url": "ftp://example.com/a.ogg"}),
        ("whatsapp", {"media_url": "https://example.com/a b.ogg"}),
        ("sms", {"media_url": MEDIA}),
    ],
)
def test_bad_sender_template_or_media_is_refused_and_nothing_is_stored(channel, fields):
    recipient = "patient@example.org" if channel == "email" else PHONE
    with pytest.raises(InvalidMessageError):
        queue(channel=channel, recipient=recipient, body=BODY, **fields)
    assert not OutboundMessage.objects.exists()
