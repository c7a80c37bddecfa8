"""OpenAPI pieces shared by every API: each API's error body as a schema component."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from core.errors import DEFAULT_MESSAGES


def _error_serializers():
    mark_inner = inline_serializer(
        "MarkErrorDetail",
        {"code": serializers.CharField(), "message": serializers.CharField(), "details": serializers.JSONField()},
    )
    rate_limit = inline_serializer(
        "RoutiqRateLimit",
        {
            "limit": serializers.IntegerField(),
            "remaining": serializers.IntegerField(),
            "reset_time": serializers.IntegerField(),
            "retry_after": serializers.IntegerField(),
        },
        required=False,  # 429 only
        help_text="429 only",
    )
    return {
        "loverescue": inline_serializer(
            "LoveRescueError",
            {
                "error": serializers.CharField(),
                "code": serializers.CharField(help_text="e.g. TOKEN_EXPIRED, NO_CONSENT, AUTH_FAILED"),
                "retryAfter": serializers.IntegerField(required=False, help_text="429 only: seconds"),
            },
        ),
        "mark": inline_serializer("MarkError", {"error": mark_inner}),
        "careos": inline_serializer("CareOSError", {"error": serializers.CharField()}),
        "platform": inline_serializer(
            "PlatformError", {"error": serializers.CharField(), "code": serializers.CharField()}
        ),
        "therapist": inline_serializer(
            "TherapistError",
            {"error": serializers.CharField(), "code": serializers.CharField(), "details": serializers.JSONField()},
        ),
        "routiq": inline_serializer(
            "RoutiqError",
            {
                "error": serializers.CharField(),
                "detail": serializers.CharField(),
                "timestamp": serializers.DateTimeField(),
                "path": serializers.CharField(),
                "rate_limit": rate_limit,
            },
        ),
    }


_SERIALIZERS = None


def error_responses(family, *statuses: int) -> dict:
    """`responses={200: X, **error_responses(MARK, 400, 401)}` in `extend_schema`."""
    global _SERIALIZERS
    if _SERIALIZERS is None:
        _SERIALIZERS = _error_serializers()
    schema = _SERIALIZERS[family.name]
    return {
        status: OpenApiResponse(response=schema, description=DEFAULT_MESSAGES.get(status, "Error"))
        for status in statuses
    }


# --- Security schemes: one per kind of bearer token, named after who issues it ----------------------


class _BearerScheme(OpenApiAuthenticationExtension):
    description = ""

    def get_security_definition(self, auto_schema):
        definition = build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix="Bearer", bearer_format="JWT"
        )
        definition["description"] = self.description
        return definition


class PlatformTokenScheme(_BearerScheme):
    target_class = "accounts.authentication.PlatformJWTAuthentication"
    name = "platformToken"
    description = "Platform access token from POST /api/v1/auth/token (1 hour)."


class OIDCTokenScheme(_BearerScheme):
    target_class = "accounts.authentication.OIDCAuthentication"
    name = "oidcToken"
    description = "RS256 JWT of the configured OIDC provider, verified against its JWKS."


class LoveRescueTokenScheme(_BearerScheme):
    target_class = "integration.api.authentication.IntegrationTokenAuthentication"
    name = "loveRescueIntegrationToken"
    description = "Integration token from POST /api/integration/auth (1 hour; acts for one therapist)."
