"""LoveRescue app (client) API, `/api/app/...`: what the client's app records, and the client's
control over each therapist link (permission level, consent). Authenticated with a platform token
(POST /api/v1/auth/token) of a user who is a LoveRescue client; errors in the LoveRescue body.

Views are thin: an input serializer checks types (core.validation), one service in
integration.services.client_data writes (audited, running the alert rules) or one selector in
integration.selectors.app reads, scoped to the client; one output serializer per response renders the
body and is the schema. Services' domain errors (ClientDataInvalid 400 BAD_REQUEST, NotFound 404) are
rendered by the LoveRescue envelope. The access log names the client.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from core.actors import Actor
from core.apis import LOVERESCUE
from core.context import note_subjects
from core.schema import error_responses
from core.validation import validated
from integration.api import app_serializers as s
from integration.api.base import ClientAppView, check_no_fields_body
from integration.selectors import app as selectors
from integration.services import client_data

API = "LoveRescue app (client) API"
AUTH_NOTE = (
    "Authenticated as the client with a platform token from POST /api/v1/auth/token; a platform user who "
    "is not a LoveRescue client gets 403."
)


def _schema(summary: str, description: str, *, request=None, responses: dict, errors=(400, 401, 403, 429)):
    return extend_schema(
        tags=[LOVERESCUE.tag],
        summary=summary,
        description=f"{API}. {description} {AUTH_NOTE}",
        request=request,
        responses={**responses, **error_responses(LOVERESCUE, *errors)},
    )


def _input(serializer_class, request) -> dict:
    """The request body checked by its input serializer, or 400 BAD_REQUEST naming each bad field."""
    return validated(serializer_class, request.data, code="BAD_REQUEST")


def _actor(request) -> Actor:
    return Actor.client(request.lr_client.pk)


class _AppView(ClientAppView):
    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        note_subjects(request, "client", [request.lr_client.pk])


class CheckInView(_AppView):
    @_schema(
        "Record the day's check-in",
        "One check-in per day: 201 when created, 200 when it replaced that day's. `crisis: true` raises a "
        "CRISIS alert for the client's therapists.",
        request=s.CheckInInput,
        responses={201: s.CheckInOutput, 200: s.CheckInOutput},
    )
    def post(self, request):
        data = _input(s.CheckInInput, request)
        checkin, created = client_data.checkin_record(
            client=request.lr_client,
            date=data["date"],
            mood=data["mood"],
            closeness=data["closeness"],
            crisis=data["crisis"],
            actor=_actor(request),
        )
        return Response(
            s.CheckInOutput(checkin).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class RatioView(_AppView):
    @_schema(
        "Record the day's positive and negative interactions",
        "Gottman's 5:1 ratio, one entry per day: 201 when created, 200 when it replaced that day's.",
        request=s.RatioInput,
        responses={201: s.RatioOutput, 200: s.RatioOutput},
    )
    def post(self, request):
        data = _input(s.RatioInput, request)
        entry, created = client_data.ratio_record(
            client=request.lr_client,
            date=data["date"],
            positive=data["positive"],
            negative=data["negative"],
            actor=_actor(request),
        )
        return Response(s.RatioOutput(entry).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ActivityView(_AppView):
    @_schema(
        "Record a completed activity",
        "With `weekNumber` (must be the client's current course week) the activity is a day of that week's "
        "strategy; a week is completed after activities on 7 distinct days, and the course moves on.",
        request=s.ActivityInput,
        responses={201: s.ActivityOutput},
    )
    def post(self, request):
        data = _input(s.ActivityInput, request)
        recorded = client_data.activity_record(
            client=request.lr_client,
            date=data["date"],
            activity=data["activity"],
            week_number=data.get("weekNumber"),
            actor=_actor(request),
        )
        return Response(s.ActivityOutput(recorded).data, status=status.HTTP_201_CREATED)


class AssessmentView(_AppView):
    @_schema(
        "Record a completed assessment",
        "The score's shape depends on the type (attachment, relationship_satisfaction, communication, "
        "conflict_resolution, love_language); `responses` are the individual answers, shown to therapists "
        "only at FULL permission.",
        request=s.AssessmentInput,
        responses={201: s.AssessmentOutput},
    )
    def post(self, request):
        data = _input(s.AssessmentInput, request)
        assessment = client_data.assessment_record(
            client=request.lr_client,
            type=data["type"],
            score=data["score"],
            responses=data.get("responses"),
            actor=_actor(request),
        )
        return Response(s.AssessmentOutput(assessment).data, status=status.HTTP_201_CREATED)


class JournalView(_AppView):
    @_schema(
        "Write a journal entry",
        "Stored encrypted; the text is not echoed back. `therapistHidden: true` entries are never shown to "
        "any therapist, at any permission level; others are visible at FULL permission.",
        request=s.JournalInput,
        responses={201: s.JournalOutput},
    )
    def post(self, request):
        data = _input(s.JournalInput, request)
        entry = client_data.journal_record(
            client=request.lr_client,
            text=data["text"],
            therapist_hidden=data["therapistHidden"],
            crisis=data["crisis"],
            actor=_actor(request),
        )
        return Response(s.JournalOutput(entry).data, status=status.HTTP_201_CREATED)


class TherapistLinkListView(_AppView):
    @_schema(
        "The client's therapists",
        "Each therapist link with its permission level and consent state.",
        responses={200: s.LinkListOutput},
        errors=(401, 403, 429),
    )
    def get(self, request):
        return Response(s.LinkListOutput({"links": selectors.client_links(client=request.lr_client)}).data)


class TherapistLinkView(_AppView):
    @_schema(
        "Change a therapist's permission level or consent",
        "At least one of permissionLevel (BASIC, STANDARD, FULL) and consent (granted, revoked). Takes "
        "effect on the therapist's partners' very next request; revoking publishes `consent.revoked`.",
        request=s.LinkUpdateInput,
        responses={200: s.LinkUpdateOutput},
        errors=(400, 401, 403, 404, 429),
    )
    def patch(self, request, link_id):
        data = _input(s.LinkUpdateInput, request)
        link = client_data.link_update(
            client=request.lr_client,
            link_id=link_id,
            permission_level=data.get("permissionLevel"),
            consent=data.get("consent"),
            actor=_actor(request),
        )
        return Response(s.LinkUpdateOutput({"link": link}).data)


class TaskListView(_AppView):
    @_schema(
        "Tasks assigned by the client's therapists",
        "Newest first.",
        responses={200: s.TaskListOutput},
        errors=(401, 403, 429),
    )
    def get(self, request):
        return Response(s.TaskListOutput({"tasks": selectors.client_tasks(client=request.lr_client)}).data)


class TaskCompleteView(_AppView):
    @_schema(
        "Mark a task completed",
        "Idempotent: completing a completed task returns it unchanged. No body (or {}).",
        request={"application/json": OpenApiTypes.OBJECT},  # no fields: empty or {}
        responses={200: s.TaskCompleteOutput},
        errors=(400, 401, 403, 404, 429),
    )
    def post(self, request, task_id):
        check_no_fields_body(request)
        task = client_data.task_complete(client=request.lr_client, task_id=task_id, actor=_actor(request))
        return Response(s.TaskCompleteOutput({"task": task}).data)
