"""Public platform endpoints (Routiq spec's core endpoints) and the operators' deep health check."""

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import get_user
from django.utils.decorators import method_decorator
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from health_check.views import HealthCheckView
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from core.api import ApiView, ApiViewMixin, public
from core.apis import EXEMPT_RATES, ROUTIQ, ROUTIQ_PUBLIC_RATES
from core.health import authentication_problems, encryption_problems
from core.serializers import ABSENT, IsoDateTimeField, OutputSerializer
from core.time import utc_now


def configuration_problems() -> dict[str, str]:
    """Setting name -> what is wrong with it (never its value), under the rules production starts with."""
    return authentication_problems(
        secret_key=settings.SECRET_KEY,
        jwt_signing_key=settings.SIMPLE_JWT["SIGNING_KEY"],
        dev_secret_key=settings.DEV_SECRET_KEY,
    ) | encryption_problems(
        field_keys=list(settings.FIELD_ENCRYPTION_KEYS),
        blind_index_key=settings.BLIND_INDEX_KEY,
        dev_field_key=settings.DEV_FIELD_KEY,
        dev_blind_index_key=settings.DEV_BLIND_INDEX_KEY,
    )


def _configured_environment(problems: dict[str, str]) -> dict:
    # Booleans only, judged by production's own start-up rules: production cannot run with a weak key, so
    # there they are always true and say nothing; which key is weak is for staff (see HealthView).
    return {
        "APP_ENV": settings.APP_ENV,
        "PORT": str(settings.PORT),
        "authentication_configured": not problems.keys() & {"SECRET_KEY", "JWT_SIGNING_KEY"},
        "database_configured": bool(settings.DATABASES["default"].get("NAME")),
        "encryption_configured": not problems.keys() & {"FIELD_ENCRYPTION_KEYS", "BLIND_INDEX_KEY"},
    }


class PublicView(ApiView):
    api_family = ROUTIQ
    rate_policy = ROUTIQ_PUBLIC_RATES
    authentication_classes = []
    permission_classes = [AllowAny]


class HealthEnvironmentSerializer(OutputSerializer):
    APP_ENV = serializers.CharField()
    PORT = serializers.CharField()
    authentication_configured = serializers.BooleanField()
    database_configured = serializers.BooleanField()
    encryption_configured = serializers.BooleanField()


class HealthSerializer(OutputSerializer):
    status = serializers.CharField()
    timestamp = IsoDateTimeField()
    version = serializers.CharField()
    environment = HealthEnvironmentSerializer()
    configuration_problems = serializers.DictField(
        child=serializers.CharField(), required=False, help_text="Setting name -> rule it fails. Staff only."
    )


@public
class HealthView(PublicView):
    # Liveness, probed every few seconds by load balancers: never limited, so it needs no Redis (issue 10,
    # finding 9). The spec's public tier still covers `/` and the docs.
    rate_policy = EXEMPT_RATES

    @extend_schema(
        tags=["Platform"],
        operation_id="health",
        responses=HealthSerializer,
        description="Liveness: the process answers. The `environment` booleans are true only when the keys "
        "pass production's start-up rules. Staff signed in to the admin also get `configuration_problems` "
        "(setting name -> rule it fails); the deep check (database, cache, broker) is `/ops/health/`, staff only.",
    )
    def get(self, request):
        problems = configuration_problems()
        health = {
            "status": "healthy",
            "timestamp": utc_now(),
            "version": settings.PLATFORM_VERSION,
            "environment": _configured_environment(problems),
            "configuration_problems": problems if _is_staff(request) else ABSENT,
        }
        return Response(HealthSerializer(health).data)


def _is_staff(request) -> bool:
    # DRF has set request.user to anonymous (no authentication classes here): read the admin session itself.
    # Without a session cookie this is no query.
    user = get_user(request._request)
    return bool(user.is_active and user.is_staff)


class RootSerializer(OutputSerializer):
    message = serializers.CharField()
    version = serializers.CharField()
    status = serializers.CharField()
    timestamp = IsoDateTimeField()
    docs = serializers.CharField()
    redoc = serializers.CharField()


@public
class RootView(PublicView):
    @extend_schema(tags=["Platform"], operation_id="root", responses=RootSerializer)
    def get(self, request):
        root = {
            "message": "Routiq Backend API",
            "version": settings.PLATFORM_VERSION,
            "status": "healthy",
            "timestamp": utc_now(),
            "docs": "/docs",
            "redoc": "/redoc",
        }
        return Response(RootSerializer(root).data)


class _PublicTier(ApiViewMixin):
    """Routiq's public tier (100 / 15 min per IP) covers `/` and `/docs` (`/health` is exempt)."""

    api_family = ROUTIQ
    rate_policy = ROUTIQ_PUBLIC_RATES


@public
class SchemaView(_PublicTier, SpectacularAPIView):
    pass


class _SelfOnlyPage:
    """The docs pages load nothing from third parties: their assets are served by us (sidecar), and a
    Content-Security-Policy makes the browser refuse anything else (e.g. Redoc's CDN-hosted logo)."""

    content_security_policy = (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
        "frame-ancestors 'none'"
    )

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Content-Security-Policy"] = self.content_security_policy
        return response


@public
class DocsView(_SelfOnlyPage, _PublicTier, SpectacularSwaggerView):
    pass


@public
class RedocView(_SelfOnlyPage, _PublicTier, SpectacularRedocView):
    template_name = "core/redoc.html"  # no third-party font links


@method_decorator(staff_member_required, name="dispatch")
class DeepHealthView(HealthCheckView):
    """Database, cache and broker, for operators (staff login), never public."""

    checks = (
        "health_check.checks.Database",
        "health_check.checks.Cache",
        "core.health.Broker",
    )
