"""Mark messages API (spec: mark-assistant-api.md, "Messages"): POST /api/v1/messages (text),
POST /api/v1/messages/voice (multipart audio), GET /api/v1/messages/{message_id}, and the signed audio
view GET /api/v1/messages/{message_id}/audio that voice messages' `content` URLs point at.

The audio view is public by design (`core.api.public`): the `expires` + `signature` query parameters
(patients.media) are its only credential, because Twilio fetches an outbound voice note's media without
our token. A missing, malformed or wrong signature is 403 `invalid_signature`, an expired one 403
`link_expired`; the message lookup runs only once the signature is good, so an unsigned caller cannot
learn whether an id exists. A message without audio (or erased) is 404.
"""

from __future__ import annotations

import logging

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny

from core.api import ApiView, public
from core.apis import MARK
from core.context import note_subjects, set_organization
from core.errors import ApiError
from core.schema import error_responses
from patients import media
from patients.services import messages as message_services

logger = logging.getLogger("patients")


class _FirstRenderer(BaseContentNegotiation):
    """The audio view answers audio or Mark's JSON error body whatever the Accept header says."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@public
class MessageAudioView(ApiView):
    api_family = MARK
    authentication_classes = []
    permission_classes = [AllowAny]
    content_negotiation_class = _FirstRenderer

    @extend_schema(
        tags=[MARK.tag],
        operation_id="mark_messages_audio",
        summary="Download a voice message's audio (signed, expiring URL; no token)",
        description=(
            "The URL is the `content` of a voice message: `expires` (Unix time) and `signature` (HMAC) are "
            "its only credential. Missing/bad signature or an expired link: 403. No audio: 404. The body is "
            "the audio file (audio/mpeg, audio/wav or audio/ogg), `Cache-Control: private, no-store`."
        ),
        auth=[],
        parameters=[
            OpenApiParameter("expires", OpenApiTypes.INT, required=True, description="Expiry, Unix seconds"),
            OpenApiParameter("signature", OpenApiTypes.STR, required=True, description="The URL's signature"),
        ],
        responses={
            (200, "audio/mpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="The audio file"),
            (200, "audio/wav"): OpenApiResponse(OpenApiTypes.BINARY, description="The audio file"),
            (200, "audio/ogg"): OpenApiResponse(OpenApiTypes.BINARY, description="The audio file"),
            **error_responses(MARK, 403, 404, 429),
        },
    )
    def get(self, request, message_id: str):
        params = request.query_params
        try:
            media.verify_media_signature(message_id, params.get("expires"), params.get("signature"))
        except media.SignatureRefused as refused:
            logger.info("media url refused: %s", refused.reason)
            if refused.reason == "expired":
                raise ApiError(403, "This link has expired", code="link_expired") from None
            raise ApiError(403, "Invalid or missing signature", code="invalid_signature") from None
        message = message_services.message_with_media(public_id=message_id)
        set_organization(request, message.organization.public_id)
        note_subjects(request, "message", [message.public_id])
        try:
            handle = message.media.storage.open(message.media.name, "rb")
        except (FileNotFoundError, OSError):
            logger.warning("media file missing for message %s", message.public_id)
            raise ApiError(404, "Audio not found") from None
        content_type = media.CONTENT_TYPES.get(message.media_format, "application/octet-stream")
        response = FileResponse(handle, content_type=content_type)
        response["Cache-Control"] = "private, no-store"
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Disposition"] = f'inline; filename="{message.public_id}.{message.media_format or "bin"}"'
        return response
