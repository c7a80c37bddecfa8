"""POST /api/integration/auth: API key + secret + therapist id -> 1-hour Bearer token."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from core.actors import Actor
from core.api import ApiView, public
from core.apis import LOVERESCUE, LOVERESCUE_AUTH_RATES
from core.context import set_actor
from core.errors import ApiError
from core.net import client_ip
from core.ratelimit import claim_account, failure_guard
from core.schema import error_responses
from core.serializers import StrictCharField
from core.validation import validated
from integration.services.auth import claimed_key_id, partner_authenticate


class AuthRequestSerializer(serializers.Serializer):
    apiKey = StrictCharField(required=False, allow_blank=True, trim_whitespace=False, max_length=256)
    apiSecret = StrictCharField(required=False, allow_blank=True, trim_whitespace=False, max_length=256)
    therapistId = StrictCharField(required=False, allow_blank=True, max_length=64)


class AuthResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    expiresIn = serializers.IntegerField()
    tokenType = serializers.CharField()


@public
class IntegrationAuthView(ApiView):
    """Exchange a partner's API key and secret for a token acting for one therapist."""

    api_family = LOVERESCUE
    # Per client IP, counted before the credentials are checked: slows guessing from any one address.
    rate_policy = LOVERESCUE_AUTH_RATES
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        tags=[LOVERESCUE.tag],
        operation_id="integration_auth",
        request=AuthRequestSerializer,
        responses={200: AuthResponseSerializer, **error_responses(LOVERESCUE, 400, 401, 403, 404, 429)},
    )
    def post(self, request):
        values = validated(AuthRequestSerializer, request.data, first_only=True, code="BAD_REQUEST")
        if not values.get("apiKey") or not values.get("apiSecret"):
            raise ApiError(400, "apiKey and apiSecret are required", code="BAD_REQUEST")
        if not values.get("therapistId"):
            raise ApiError(400, "therapistId is required", code="BAD_REQUEST")
        # Failures count per client address and per API key id (core.ratelimit.failure_guard).
        with failure_guard(request, LOVERESCUE.auth_failures):
            claim_account(request, claimed_key_id(values["apiKey"]))
            issued = partner_authenticate(
                api_key=values["apiKey"],
                api_secret=values["apiSecret"],
                therapist_id=values["therapistId"],
                ip=client_ip(request._request),
                # A proven key and secret name the partner in the access log even if the exchange is then
                # refused (IP_BLOCKED, NOT_CONFIGURED): staff see whose request it was.
                on_identified=lambda partner: set_actor(request, Actor.integration_partner(partner.pk)),
            )
        acting_for = Actor.therapist(issued.therapist.pk)
        set_actor(request, Actor.integration_partner(issued.partner.pk), on_behalf_of=acting_for)
        return Response({"token": issued.token, "expiresIn": issued.expires_in, "tokenType": "Bearer"})
