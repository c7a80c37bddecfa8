"""CareOS leads API (spec: careos-leads-api.md). Thin: authenticate, parse and validate, call the
service, render. Errors are the spec's `{"error": msg}` (core.apis.CAREOS): the parser's 400s, and the
service's domain errors (IngestRejected, a core.domain.Invalid) mapped to 400 by the envelope.

A new lead's access row is inserted by the lead's own transaction (audit.middleware.access_row_join: one
durable commit for both, issue 15); every other answer's row is the middleware's, as for any request."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from audit.middleware import access_row_join
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
ANSWERED = 200  # a new lead and a replay alike


def _subjects(lead) -> dict[str, list[str]]:
    # The lead, and the person (internal id: one across partners, so staff find every access to them).
    return {"lead": [lead.public_id], "careos_user": [lead.user.public_id]}


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

        def access_row(lead):
            subjects = [f"{kind}:{value}" for kind, ids in _subjects(lead).items() for value in ids]
            return access_row_join(request, status_code=ANSWERED, subjects=subjects)

        result = lead_ingest(
            platform=principal.platform, payload=payload, actor=principal.actor, now=now, access_row=access_row
        )
        for kind, ids in _subjects(result.lead).items():
            note_subjects(request, kind, ids)
        return Response(s.IngestResponseSerializer(result.lead).data, status=ANSWERED)
