"""Base views of the two LoveRescue APIs, and the body check of their POSTs that take no fields."""

from __future__ import annotations

from rest_framework import serializers

from accounts.authentication import PlatformJWTAuthentication
from core.api import ApiView
from core.apis import LOVERESCUE
from core.validation import validated
from integration.api.authentication import IntegrationTokenAuthentication, IsLoveRescueClient, IsPartner


class NoFieldsInput(serializers.Serializer):
    """The body of a POST that takes no fields: none, or a JSON object (its keys are ignored)."""


def check_no_fields_body(request) -> None:
    """A JSON body must be an object: an array, string or number is a 400 BAD_REQUEST. A body of another
    media type is not read (these endpoints take no input, and a bodyless POST sent as an empty form
    keeps working)."""
    if request.content_type.split(";")[0].strip().lower() == "application/json":
        validated(NoFieldsInput, request.data, first_only=True, code="BAD_REQUEST")


class PartnerApiView(ApiView):
    """`/api/integration/...` called by a partner with an integration token; `request.user` is a
    PartnerPrincipal (`.partner`, `.credential`, `.therapist`)."""

    api_family = LOVERESCUE
    authentication_classes = [IntegrationTokenAuthentication]
    permission_classes = [IsPartner]


class ClientAppView(ApiView):
    """`/api/app/...` called by the LoveRescue app as the client (platform token from
    POST /api/v1/auth/token); `request.lr_client` is the Client."""

    api_family = LOVERESCUE
    authentication_classes = [PlatformJWTAuthentication]
    permission_classes = [IsLoveRescueClient]
