"""Mark conversations API (spec: mark-assistant-api.md, "Conversations"): GET /api/v1/conversations,
GET and DELETE /api/v1/conversations/{conversation_id}, GET /api/v1/conversations/{conversation_id}/export.

Same scoping, roles, limits and error body as the patients endpoints (patients.api.views._MarkView):
another clinic's `conv_` id is a 404 exactly like an unknown one; viewers read and export, and get 403 on
DELETE. Thin views: query parameters checked here (400 naming the parameter), one selector, one service,
an output serializer or the export file.
"""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpResponse
from django.utils.dateparse import parse_date
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response

from core.context import note_subjects
from core.errors import ApiError
from core.pagination import page_body, page_request, page_serializer, paginate
from patients import selectors
from patients.api import conversation_serializers as cs
from patients.api import serializers as s
from patients.api.views import _filter, _instant_param, _MarkView, _schema
from patients.media import signed_media_url
from patients.models import Message
from patients.services import conversations as conversation_services

LIST_PARAMETERS = [
    OpenApiParameter("page", OpenApiTypes.INT, description="Page number, from 1 (default 1)"),
    OpenApiParameter("limit", OpenApiTypes.INT, description="Results per page, 1 to 100 (default 20)"),
    OpenApiParameter("patient_id", OpenApiTypes.STR, description="Only this patient's conversations (pat_...)"),
    OpenApiParameter(
        "start_date",
        OpenApiTypes.STR,
        description="ISO 8601 date or date-time: conversations that started at or after it",
    ),
    OpenApiParameter(
        "end_date",
        OpenApiTypes.STR,
        description="ISO 8601 date or date-time: conversations that started at or before it (a date: until "
        "the end of that day, UTC)",
    ),
    OpenApiParameter("language", OpenApiTypes.STR, description="Conversation language code, e.g. ca"),
]
FORMAT_PARAMETER = OpenApiParameter(
    "format", OpenApiTypes.STR, enum=cs.EXPORT_FORMATS, required=True, description="The file's format"
)
BINARY = OpenApiTypes.BINARY
EXPORT_DESCRIPTION = (
    'The file, as an attachment (Content-Disposition: attachment; filename="conv_....<format>"): PDF (A4, '
    "Unicode font, Arabic shaped right to left), CSV (UTF-8 with BOM, one row per message, formula-safe "
    "cells) or JSON"
)


def _end_param(params, name: str):
    """`end_date`: like start_date, but a date alone includes that whole day (UTC)."""
    value = _instant_param(params, name)
    if value is not None and parse_date(params[name].strip()) is not None:
        value += timedelta(days=1) - timedelta(microseconds=1)
    return value


class ConversationListView(_MarkView):
    @_schema(
        "mark_conversations_list",
        "List conversations (newest first)",
        responses={200: page_serializer(cs.ConversationListItemOutput)},
        errors=(400, 401, 403, 404, 429),
        parameters=LIST_PARAMETERS,
    )
    def get(self, request):
        params = request.query_params
        paging = page_request(params)
        start = _instant_param(params, "start_date")
        end = _end_param(params, "end_date")
        if start is not None and end is not None and end < start:
            raise ApiError(400, "end_date must not be before start_date", details={"parameter": "end_date"})
        filters = {
            "organization": self.organization(request),
            "patient_id": _filter(params, "patient_id", max_length=40),
            "start": start,
            "end": end,
            "language": _filter(params, "language", max_length=s.LANGUAGE_MAX),
        }
        page = paginate(
            selectors.conversation_list(**filters), paging, total=selectors.conversation_list_total(**filters)
        )
        note_subjects(request, "conversation", [conversation.public_id for conversation in page.items])
        return Response(page_body(page, cs.ConversationListItemOutput.render_many(page.items)))


class _ConversationView(_MarkView):
    def _conversation(self, request, conversation_id: str):
        conversation = selectors.conversation_get(organization=self.organization(request), public_id=conversation_id)
        note_subjects(request, "conversation", [conversation.public_id])
        note_subjects(request, "patient", [conversation.patient.public_id])
        return conversation


def _message_body(request, message: Message) -> dict:
    voice = message.content_type == Message.ContentType.VOICE
    return {
        "id": message.public_id,
        "timestamp": message.created_at,
        "sender": message.sender,
        # A voice message's audio: a signed URL that expires (patients.media); "" if its file is gone.
        "content": (signed_media_url(message, request=request) if message.media else "") if voice else message.content,
        "content_type": message.content_type,
    }


class ConversationDetailView(_ConversationView):
    @_schema(
        "mark_conversations_get",
        "Get a conversation with its messages",
        responses={200: cs.ConversationOutput},
        errors=(400, 401, 403, 404, 429),
    )
    def get(self, request, conversation_id: str):
        conversation = self._conversation(request, conversation_id)
        body = {
            "id": conversation.public_id,
            "patient_id": conversation.patient.public_id,
            "patient_name": conversation.patient.name,
            "start_time": conversation.start_time,
            "end_time": conversation.end_time,
            "language": conversation.language,
            "messages": [_message_body(request, message) for message in conversation.messages.all()],
            "metadata": conversation.metadata or None,
        }
        return Response(cs.ConversationOutput(body).data)

    @_schema(
        "mark_conversations_delete",
        "Delete a conversation and its messages (the patient and their other data stay)",
        responses={200: s.DeleteOutput},
        errors=(400, 401, 403, 404, 429),
    )
    def delete(self, request, conversation_id: str):
        conversation_services.conversation_delete(
            conversation=self._conversation(request, conversation_id), actor=self.actor(request)
        )
        return Response(s.DeleteOutput({"success": True, "message": "Conversation deleted successfully"}).data)


class _JsonOnly(BaseContentNegotiation):
    """The export is chosen by `?format=`, not by Accept (DRF would read `format` as its own renderer
    override and 404 on "pdf"): the view answers its file, or Mark's JSON error body, whatever is asked."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ConversationExportView(_ConversationView):
    content_negotiation_class = _JsonOnly

    @_schema(
        "mark_conversations_export",
        "Export a conversation as a PDF, CSV or JSON file (an audited event)",
        responses={
            (200, "application/pdf"): OpenApiResponse(BINARY, description=EXPORT_DESCRIPTION),
            (200, "text/csv"): OpenApiResponse(BINARY, description=EXPORT_DESCRIPTION),
            (200, "application/json"): OpenApiResponse(cs.ConversationExportOutput, description=EXPORT_DESCRIPTION),
        },
        errors=(400, 401, 403, 404, 429),
        parameters=[FORMAT_PARAMETER],
    )
    def get(self, request, conversation_id: str):
        fmt = request.query_params.get("format")
        if fmt not in cs.EXPORT_FORMATS:
            raise ApiError(
                400, f"format must be one of: {', '.join(cs.EXPORT_FORMATS)}", details={"parameter": "format"}
            )
        organization = self.organization(request)
        conversation = self._conversation(request, conversation_id)
        file = conversation_services.conversation_export(
            conversation=conversation,
            fmt=fmt,
            actor=self.actor(request),
            clinic_name=organization.name,
            time_zone=selectors.clinic_time_zone(organization=organization).key,
        )
        response = HttpResponse(file.content, content_type=file.media_type)
        response["Content-Disposition"] = f'attachment; filename="{file.filename}"'
        response["X-Content-Type-Options"] = "nosniff"
        return response
