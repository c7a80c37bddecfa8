"""Twilio's incoming-message webhook for the clinics' WhatsApp numbers (POST /api/messaging/twilio/inbound).

Public by design (`core.api.public`), like the status callback (messaging/api/views.py) and in the same
Platform family (its envelope and per-IP limit): Twilio calls it without our credentials and it
authenticates the request by `X-Twilio-Signature` instead: HMAC-SHA1 under TWILIO_AUTH_TOKEN over the URL
rebuilt from MESSAGING_STATUS_CALLBACK_BASE_URL (never the Host header or X-Forwarded-*) plus the POST
parameters. A missing or bad signature, or a server with no base URL or auth token set, answers 403 and
changes nothing.

It answers 204 with no body (Twilio sends no reply; the assistant's reply, if any, goes out later through
the outbox): for a stored message, a retried one (same MessageSid: stored once), and a `To` that is no
clinic's number (ignored: nothing Twilio could fix). The work behind it is patients.services.inbound; the
media fetch and the assistant reply run after commit in workers, so the webhook answers fast. The form
carries the sender's number, name and text: none of them is logged.
"""

from __future__ import annotations

import logging

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from core.api import ApiView, public
from core.apis import PLATFORM
from core.context import note_subjects
from core.schema import error_responses
from messaging.api.signatures import require_twilio_signature
from patients.services import inbound

logger = logging.getLogger("patients")

INBOUND_PATH = "/api/messaging/twilio/inbound"


def inbound_url() -> str:
    """The URL Twilio is given for incoming messages and signs; "" when the base URL is unset."""
    base = (settings.MESSAGING_STATUS_CALLBACK_BASE_URL or "").rstrip("/")
    return f"{base}{INBOUND_PATH}" if base else ""


class TwilioInboundSerializer(serializers.Serializer):
    """The fields of Twilio's incoming-message request this endpoint reads (Twilio sends more: AccountSid,
    WaId, SmsStatus, NumSegments, ApiVersion...; they are signed too, and ignored)."""

    MessageSid = serializers.RegexField(r"^[A-Z]{2}[0-9a-fA-F]{32}$", max_length=34)
    From = serializers.CharField(max_length=64)
    To = serializers.CharField(max_length=64)
    Body = serializers.CharField(max_length=10_000, required=False, allow_blank=True, trim_whitespace=False)
    ProfileName = serializers.CharField(max_length=500, required=False, allow_blank=True)
    # Form fields are text: a count of attachments written in digits.
    NumMedia = serializers.RegexField(r"^[0-9]{1,3}$", max_length=3, required=False, default="0")
    MediaUrl0 = serializers.URLField(max_length=2000, required=False, allow_blank=True)
    MediaContentType0 = serializers.CharField(max_length=200, required=False, allow_blank=True)
    AccountSid = serializers.CharField(max_length=64, required=False, allow_blank=True)

    def validate(self, attrs):
        for name in ("Body", "ProfileName", "From", "To"):
            if "\x00" in attrs.get(name, ""):
                raise serializers.ValidationError({name: "must not contain NUL characters"})
        return attrs


@public
class TwilioInboundView(ApiView):
    """POST /api/messaging/twilio/inbound: patients' WhatsApp messages to a clinic (signature-authenticated)."""

    api_family = PLATFORM
    authentication_classes = []
    permission_classes = [AllowAny]
    parser_classes = [FormParser]

    @extend_schema(
        tags=["Platform"],
        operation_id="messaging_twilio_inbound",
        request={"application/x-www-form-urlencoded": TwilioInboundSerializer},
        responses={
            204: OpenApiResponse(
                description="Stored (once per MessageSid), or ignored (a To that is no clinic's WhatsApp number)."
            ),
            **error_responses(PLATFORM, 400, 403, 415, 429),
        },
        description="Twilio incoming-message webhook of the clinics' WhatsApp numbers. Authenticated by "
        "`X-Twilio-Signature` (HMAC-SHA1 with the account's auth token over the webhook URL and the sorted "
        "POST parameters); a missing or bad signature is 403. Routed to the clinic by `To`; an unknown "
        "`From` becomes a new patient; STOP and similar words opt the patient out. Answers 204 (no TwiML "
        "reply).",
    )
    def post(self, request):
        require_twilio_signature(request, url=inbound_url(), what="inbound")

        data = TwilioInboundSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        result = inbound.inbound_whatsapp_record(
            inbound=inbound.Inbound(
                to=fields["To"],
                from_=fields["From"],
                body=fields.get("Body", ""),
                message_sid=fields["MessageSid"],
                profile_name=fields.get("ProfileName", ""),
                num_media=int(fields.get("NumMedia") or 0),
                media_url=fields.get("MediaUrl0", ""),
                media_content_type=fields.get("MediaContentType0", ""),
            )
        )
        if result.message is None:
            logger.info("twilio inbound ignored: %s", result.outcome)
        else:
            note_subjects(request, "patient", [result.patient.public_id])
            note_subjects(request, "message", [result.message.public_id])
            if result.outcome == "duplicate":
                logger.info("twilio inbound %s: already stored", result.message.public_id)
        return Response(status=204)
