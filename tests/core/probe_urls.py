"""Probe views, one set per API, to exercise the shared mechanisms before the domain APIs exist.

Installed only by tests that ask for it (`@pytest.mark.urls("tests.core.probe_urls")`); the real
routes stay in place so unknown-path handling is tested against them too.
"""

from django.urls import include, path
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response

from accounts.authentication import OIDCAuthentication, PlatformJWTAuthentication
from core.api import ApiView
from core.apis import CAREOS, LOVERESCUE, MARK, ROUTIQ, THERAPIST


class _Probe(ApiView):
    def get(self, request):
        return Response({"ok": True, "user": request.user.pk})


class _Boom(ApiView):
    permission_classes = []
    authentication_classes = []

    def get(self, request):
        raise RuntimeError("secret internal detail /srv/app/db.py line 42")


class _StaffOnly(_Probe):
    permission_classes = [IsAdminUser]


def _probes(family, prefix):
    probe = type(f"{family.name}Probe", (_Probe,), {"api_family": family})
    boom = type(f"{family.name}Boom", (_Boom,), {"api_family": family})
    staff_only = type(f"{family.name}StaffOnly", (_StaffOnly,), {"api_family": family})
    return [
        path(f"{prefix}probe", probe.as_view()),
        path(f"{prefix}staff-only", staff_only.as_view()),
        path(f"{prefix}boom", boom.as_view()),
    ]


class RoutiqOIDCProbe(_Probe):
    """Routiq accepts external OIDC tokens and platform tokens."""

    api_family = ROUTIQ
    authentication_classes = [OIDCAuthentication, PlatformJWTAuthentication]

    def get(self, request):
        return Response({"user": request.user.pk, "sub": (request.auth or {}).get("sub")
                         if isinstance(request.auth, dict) else None})


class _PartnerKeyAuth:
    """Stands in for a partner API-key authentication: names the credential and its custom limit."""

    def authenticate(self, request):
        key = request.headers.get("X-Probe-Key")
        if not key:
            return None
        request._request.ratelimit_principal = f"partner:{key}"
        limit = request.headers.get("X-Probe-Limit")
        request._request.ratelimit_override = int(limit) if limit else None
        from django.contrib.auth.models import AnonymousUser

        return AnonymousUser(), key

    def authenticate_header(self, request):
        return "Bearer"


class LoveRescueKeyProbe(ApiView):
    api_family = LOVERESCUE
    authentication_classes = [_PartnerKeyAuth]
    permission_classes = []

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [
    path("api/integration/key-probe", LoveRescueKeyProbe.as_view()),
    path("api/v1/dashboard/oidc-probe", RoutiqOIDCProbe.as_view()),
    *_probes(LOVERESCUE, "api/integration/"),
    *_probes(MARK, "api/v1/"),
    *_probes(CAREOS, "api/leads/"),
    *_probes(THERAPIST, "api/session/"),
    *_probes(ROUTIQ, "api/v1/dashboard/"),
    path("", include("config.urls")),
]
