"""Who is calling the CareOS leads API: a partner platform, by `X-API-Key` + `X-Platform`.

The key must be a live key (not revoked, not expired) of the active platform named in `X-Platform`
(`leads.services.platforms.find_api_key`), and the body's `source_platform` must name the same platform
(`check_source_platform`, called by the view once the body is parsed). Every failure, including missing
headers, is the spec's 401 `{"error": "Invalid API key"}`: a caller never learns which part was wrong.
Each refusal counts as a failed attempt of the client address and of the platform named in `X-Platform`
(core.ratelimit.failure_guard, run by core.api around authentication).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, permissions

from core.actors import Actor
from core.context import set_actor
from core.errors import ApiError
from core.ratelimit import claim_account
from core.time import utc_now
from leads.models import PartnerPlatform, PlatformApiKey
from leads.services.platforms import api_key_mark_used, find_api_key

INVALID_API_KEY = "Invalid API key"
# `last_used_at` (shown in the admin for rotation) is refreshed at most this often: no write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def invalid_api_key() -> ApiError:
    # The body stays the spec's {"error"}; the code is for the access log's reason column.
    return ApiError(401, INVALID_API_KEY, code="INVALID_API_KEY")


@dataclass(frozen=True)
class PlatformPrincipal:
    """`request.user` on the CareOS API: the partner platform and the key it used."""

    platform: PartnerPlatform
    api_key: PlatformApiKey
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_staff: bool = False
    pk = None  # not a platform user

    @property
    def actor(self) -> Actor:
        """Who acts on this request, for services and the access log."""
        return Actor.partner_platform(self.platform.slug)

    def __str__(self) -> str:
        return f"partner platform {self.platform.slug}"


class PlatformApiKeyAuthentication(authentication.BaseAuthentication):
    """`X-API-Key` + `X-Platform`. Refuses (never passes over) a request without them, so the API's own
    401 body is used rather than DRF's generic one."""

    # claim_account runs before any key is read (core.ratelimit.failure_guard's `claims_first`).
    claims_account_first = True

    def authenticate(self, request):
        presented = request.headers.get("X-API-Key", "")
        slug = request.headers.get("X-Platform", "")
        if not presented or not slug:
            raise invalid_api_key()
        claim_account(request, f"platform:{slug.strip()}")
        api_key = find_api_key(platform_slug=slug.strip(), presented=presented.strip())
        if api_key is None:
            raise invalid_api_key()
        platform = api_key.platform
        api_key_mark_used(api_key=api_key, now=utc_now(), resolution=LAST_USED_RESOLUTION)
        # CAREOS_RATES counts 100/min per partner (not per key: a partner rotating keys keeps one budget).
        request._request.ratelimit_principal = f"careos:{platform.slug}"
        principal = PlatformPrincipal(platform=platform, api_key=api_key)
        set_actor(request, principal.actor)
        return principal, None

    def authenticate_header(self, request):
        return 'ApiKey realm="careos"'


class IsPartnerPlatform(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, PlatformPrincipal)


def check_source_platform(principal: PlatformPrincipal, source_platform) -> None:
    """The body's `source_platform` must name the authenticated platform (else the spec's 401).
    A missing value is left to validation (400, named among the missing fields)."""
    if source_platform is None:
        return
    if not isinstance(source_platform, str) or source_platform.strip() != principal.platform.slug:
        raise invalid_api_key()


class PlatformApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "leads.api.authentication.PlatformApiKeyAuthentication"
    name = "careosPartnerApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "The partner's API key (`businessos_live_...`), sent with `X-Platform: <platform>`.",
        }
