"""Base views of the two LoveRescue APIs."""

from __future__ import annotations

from accounts.authentication import PlatformJWTAuthentication
from core.api import ApiView
from core.apis import LOVERESCUE
from integration.api.authentication import IntegrationTokenAuthentication, IsLoveRescueClient, IsPartner


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
