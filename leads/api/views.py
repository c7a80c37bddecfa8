"""CareOS leads API (spec: careos-leads-api.md). Thin: authenticate, parse and validate, call the
service, render. Errors are the spec's `{"error": msg}` (core.apis.CAREOS): the parser's 400s, and the
service's domain errors (IngestRejected, a core.domain.Invalid) mapped to 400 by the envelope."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from core.api import ApiView
from core.apis import CAREOS
from core.context import note_subjects
from core.schema import error_responses
from core.time import utc_now
from leads.api import serializers as s
from leads.api.authentication import (
    IsPartnerPlatform,
    PlatformApiKeyAuthentication,
    check_source_platform,
    invalid_api_key,
)
from leads.services.ingest import lead_ingest

TAGS = [CAREOS.tag]


class LeadIngestView(ApiView):
    """Receive a consented lead from a partner platform (e.g. BusinessOS).

    Idempotent per (platform, `source_conversation_id`): sending the same conversation again answers
    200 with the first answer's ids and flags and creates nothing. 100 requests/min per partner."""

    api_family = CAREOS
    authentication_classes = [PlatformApiKeyAuthentication]
    permission_classes = [IsPartnerPlatform]
    # Declared for the OpenAPI schema; the body is read by serializers.parse_body (exact decimals, size
    # limit, the API's own 400s), never through request.data.
    parser_classes = [JSONParser]

    def permission_denied(self, request, message=None, code=None):
        raise invalid_api_key()

    @extend_schema(
        tags=TAGS,
        operation_id="careos_leads_ingest",
        request=s.InboundLeadSerializer,
        responses={200: s.IngestResponseSerializer, **error_responses(CAREOS, 400, 401, 429, 500)},
        parameters=[
            OpenApiParameter(
                "X-Platform", str, OpenApiParameter.HEADER, required=True, description="The platform, e.g. businessos"
            ),
        ],
    )
    def post(self, request):
        principal = request.user
        data = s.parse_body(request._request)
        check_source_platform(principal, data.get("source_platform"))
        now = utc_now()
        payload = s.parse_inbound_lead(data, now=now)
        result = lead_ingest(platform=principal.platform, payload=payload, actor=principal.actor, now=now)
        note_subjects(request, "lead", [result.lead.public_id])
        # The person (internal id: one across partners, so staff find every access to them).
        note_subjects(request, "careos_user", [result.lead.user.public_id])
        return Response(s.IngestResponseSerializer(result.lead).data)
