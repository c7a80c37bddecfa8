"""Twilio's message status callback.

Public by design (`core.api.public`): Twilio calls it without our credentials. It authenticates the
request by its `X-Twilio-Signature` instead: HMAC-SHA1 under TWILIO_AUTH_TOKEN over the URL Twilio was
given plus the POST parameters. That URL is rebuilt from MESSAGING_STATUS_CALLBACK_BASE_URL, never
from the Host header or X-Forwarded-* (a proxy or client cannot choose what is verified). A missing or
bad signature answers 403 and changes nothing, as does a server with no callback URL or auth token set.

An unknown MessageSid answers 204 and changes nothing (a report about a message we do not have is not
an error Twilio can fix, and an error status would only make it retry and raise alerts). The form
carries the recipient's number (To): it is never logged.
"""

from __future__ import annotations

import logging

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from core.api import ApiView, public
from core.apis import PLATFORM
from core.context import note_subjects
from core.schema import error_responses
from messaging import clients, services
from messaging.api.serializers import TwilioStatusCallbackSerializer
from messaging.api.signatures import require_twilio_signature
from messaging.backends import status_callback_url

logger = logging.getLogger("messaging")


@public
class TwilioStatusCallbackView(ApiView):
    """POST /api/messaging/twilio/status: Twilio's delivery reports (signature-authenticated)."""

    # Vendor callbacks belong to the Platform family: its envelope ({"error", "code"}) and per-IP limit.
    api_family = PLATFORM
    authentication_classes = []
    permission_classes = [AllowAny]
    parser_classes = [FormParser]

    @extend_schema(
        tags=["Platform"],
        operation_id="messaging_twilio_status_callback",
        request={"application/x-www-form-urlencoded": TwilioStatusCallbackSerializer},
        responses={
            204: OpenApiResponse(description="Recorded, or ignored (unknown MessageSid, or an older status)."),
            **error_responses(PLATFORM, 400, 403, 415, 429),
        },
        description="Twilio message status callback. Authenticated by `X-Twilio-Signature` (HMAC-SHA1 with "
        "the account's auth token over the callback URL and the sorted POST parameters); a missing or bad "
        "signature is 403. MessageStatus queued/sending/sent -> sent, delivered/read -> delivered, "
        "failed/undelivered -> failed; a message never moves backwards.",
    )
    def post(self, request):
        require_twilio_signature(request, url=status_callback_url(), what="status callback")

        data = TwilioStatusCallbackSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        status = clients.outbox_status(fields["MessageStatus"])
        if status is None:
            return Response(status=204)  # a status we do not track (receiving, partially_delivered...)
        message = services.message_status_record(
            provider="twilio",
            provider_message_id=fields["MessageSid"],
            status=status,
            error_code=fields.get("ErrorCode", ""),
        )
        if message is None:
            logger.info("twilio status callback for an unknown message sid; ignored")
        else:
            note_subjects(request, "message", [message.public_id])
        return Response(status=204)
