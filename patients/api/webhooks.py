"""Mark webhooks API (spec: "Webhooks"): POST /api/v1/webhooks (as the spec), GET /api/v1/webhooks (the
clinic's endpoints, paginated) and DELETE /api/v1/webhooks/{id}. Organization-scoped: another clinic's
`wh_` id is a 404 exactly like an unknown one. owner/admin/staff write, viewer reads. The secret is
never returned. Endpoints and events: patients.events (docs/mark.md, "Webhooks")."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import status
from rest_framework.response import Response

from core.context import note_subjects
from core.pagination import page_body, page_request, page_serializer, paginate
from patients import events
from patients.api import webhook_serializers as s
from patients.api.views import _input, _MarkView, _schema

LIST_PARAMETERS = [
    OpenApiParameter("page", OpenApiTypes.INT, description="Page number, from 1 (default 1)"),
    OpenApiParameter("limit", OpenApiTypes.INT, description="Results per page, 1 to 100 (default 20)"),
]


class WebhookListView(_MarkView):
    @_schema(
        "mark_webhooks_list",
        "List the clinic's webhooks (newest first; the secrets are never shown)",
        responses={200: page_serializer(s.WebhookOutput)},
        errors=(400, 401, 403, 404, 429),
        parameters=LIST_PARAMETERS,
    )
    def get(self, request):
        paging = page_request(request.query_params)
        page = paginate(events.webhook_list(organization=self.organization(request)), paging)
        note_subjects(request, "webhook", [endpoint.public_id for endpoint in page.items])
        return Response(page_body(page, s.WebhookOutput.render_many(page.items)))

    @_schema(
        "mark_webhooks_create",
        "Configure a webhook (events signed with HMAC-SHA256 of the body under your secret: X-Mark-Signature)",
        request=s.WebhookCreateInput,
        responses={201: s.WebhookOutput},
        errors=(400, 401, 403, 404, 409, 429),
    )
    def post(self, request):
        data = _input(s.WebhookCreateInput, request)
        endpoint = events.webhook_register(organization=self.organization(request), actor=self.actor(request), **data)
        note_subjects(request, "webhook", [endpoint.public_id])
        return Response(s.WebhookOutput(endpoint).data, status=status.HTTP_201_CREATED)


class WebhookDetailView(_MarkView):
    @_schema(
        "mark_webhooks_delete",
        "Delete a webhook (nothing more is sent to it; its id then answers 404)",
        responses={200: s.WebhookDeleteOutput},
        errors=(400, 401, 403, 404, 429),
    )
    def delete(self, request, webhook_id: str):
        endpoint = events.webhook_get(organization=self.organization(request), public_id=webhook_id)
        note_subjects(request, "webhook", [endpoint.public_id])
        events.webhook_delete(endpoint=endpoint, actor=self.actor(request))
        return Response(s.WebhookDeleteOutput({"success": True, "message": "Webhook deleted successfully"}).data)
