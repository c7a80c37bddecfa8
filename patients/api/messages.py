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

from django.conf import settings
from django.db import transaction
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from core import idempotency
from core.api import ApiView, public
from core.apis import MARK
from core.context import note_subjects, set_organization
from core.domain import NotFound
from core.errors import ApiError
from core.schema import error_responses
from patients import media, selectors, services
from patients.api import message_serializers as ms
from patients.api.views import _input, _MarkView, _schema
from patients.services import messages as message_services
from patients.storage import media_storage

logger = logging.getLogger("patients")


def idempotent_create(request, run, *, prepare=None):
    """A Mark create under the request's Idempotency-Key (core.idempotency): scoped to the caller's user
    and clinic."""
    return idempotency.idempotent(request, api=MARK.name, run=run, prepare=prepare)


def _body_patient(organization, patient_id: str):
    try:
        return selectors.patient_get(organization=organization, public_id=patient_id)
    except NotFound:
        # An id in a body is the caller's input, not the resource addressed: 400 naming the field.
        raise ApiError(400, "Unknown patient_id", details={"field": "patient_id"}) from None


def _render(request, message, *, status_code=status.HTTP_200_OK) -> Response:
    content_url = media.signed_media_url(message, request=request) if message.media else None
    return Response(ms.MessageOutput(ms.present(message, content_url=content_url)).data, status=status_code)


class MessageCreateView(_MarkView):
    @_schema(
        "mark_messages_send",
        "Send a text message to a patient on WhatsApp (stored as sender system; status follows the outbox)",
        request=ms.MessageCreateInput,
        responses={201: ms.MessageOutput},
        errors=(400, 401, 403, 404, 409, 422, 429),
        parameters=idempotency.PARAMETERS,
    )
    def post(self, request):
        data = _input(ms.MessageCreateInput, request)
        if data["content_type"] != "text":
            raise ApiError(
                400,
                "Voice messages are sent with POST /api/v1/messages/voice (multipart)",
                details={"field": "content_type"},
            )
        organization = self.organization(request)

        def run(_prepared):
            patient = _body_patient(organization, data["patient_id"])
            message = services.message_send_text(
                organization=organization, patient=patient, text=data["content"], actor=self.actor(request)
            )
            note_subjects(request, "message", [message.public_id])
            message = selectors.message_get(organization=organization, public_id=message.public_id)
            return _render(request, message, status_code=status.HTTP_201_CREATED)

        return idempotent_create(request, run)


class MessageVoiceView(_MarkView):
    parser_classes = [MultiPartParser]

    @_schema(
        "mark_messages_send_voice",
        "Send a voice message (MP3, WAV or OGG, checked by content) to a patient on WhatsApp",
        request={"multipart/form-data": ms.VoiceMessageInput},
        responses={201: ms.MessageOutput},
        errors=(400, 401, 403, 404, 409, 413, 415, 422, 429),
        parameters=idempotency.PARAMETERS,
    )
    def post(self, request):
        limit = settings.MARK_VOICE_MAX_BYTES
        declared = request.META.get("CONTENT_LENGTH") or ""
        if declared.isascii() and declared.isdigit() and int(declared) > limit + 64 * 1024:
            raise _too_large(limit)
        data = _input(ms.VoiceMessageInput, request)
        upload = data["audio_file"]
        if upload.size > limit:
            raise _too_large(limit)
        language = message_services.voice_language(data.get("language"))
        organization = self.organization(request)
        media_base_url = request.build_absolute_uri("/").rstrip("/")
        stored: list[str] = []

        def prepare():
            # Not run for a replay. Cheap refusals first, then the audio, then speech-to-text (a vendor
            # call: outside the transaction).
            patient = _body_patient(organization, data["patient_id"])
            message_services.voice_precheck(patient=patient)
            info = media.audio_inspect(upload)
            upload.seek(0)
            audio = upload.read()
            upload.seek(0)
            return patient, info, message_services.voice_transcribe(data=audio, info=info, language=language)

        def run(prepared):
            patient, info, transcription = prepared
            # One transaction up to the rendered answer: whatever fails after the file was stored rolls
            # the message back, and the file is deleted below.
            with transaction.atomic():
                message = message_services.message_send_voice(
                    organization=organization,
                    patient=patient,
                    fileobj=upload,
                    info=info,
                    transcription=transcription,
                    actor=self.actor(request),
                    media_base_url=media_base_url,
                )
                stored.append(message.media.name)
                note_subjects(request, "message", [message.public_id])
                message = selectors.message_get(organization=organization, public_id=message.public_id)
                return _render(request, message, status_code=status.HTTP_201_CREATED)

        try:
            return idempotent_create(request, run, prepare=prepare)
        except BaseException:
            for name in stored:  # the transaction that recorded it rolled back
                media.audio_delete(name)
            raise


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"audio_file is larger than {limit} bytes",
        code="audio_too_large",
        details={"field": "audio_file", "max_bytes": limit},
    )


class MessageDetailView(_MarkView):
    @_schema(
        "mark_messages_get",
        "Get a message (its status follows the outbox; a voice message's content is a fresh signed URL)",
        responses={200: ms.MessageOutput},
        errors=(400, 401, 403, 404, 429),
    )
    def get(self, request, message_id: str):
        message = selectors.message_get(organization=self.organization(request), public_id=message_id)
        note_subjects(request, "message", [message.public_id])
        return _render(request, message)


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
        message = selectors.message_with_media(public_id=message_id)
        set_organization(request, message.organization.public_id)
        note_subjects(request, "message", [message.public_id])
        try:
            handle = media_storage().open(message.media.name, "rb")
        except (FileNotFoundError, OSError):
            logger.warning("media file missing for message %s", message.public_id)
            raise ApiError(404, "Audio not found") from None
        content_type = media.CONTENT_TYPES.get(message.media_format, "application/octet-stream")
        response = FileResponse(handle, content_type=content_type)
        response["Cache-Control"] = "private, no-store"
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Disposition"] = f'inline; filename="{message.public_id}.{message.media_format or "bin"}"'
        return response
