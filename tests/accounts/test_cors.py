"""CORS for the browser dashboards (django-cors-headers): configured origins only, on the dashboard API
paths only (Routiq, the token endpoint, the therapist dashboard), preflights answered before the rate
limiter and the access log, rate-limit headers exposed."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.test import Client, override_settings

from accounts.oidc import CORS_EXACT_PATHS, CORS_PATH_PREFIXES, cors_allowed_origins
from audit.models import AccessLog
from core.apis import MARK, ROUTIQ, THERAPIST, family_for_path
from tests.security.routes import ROUTES
from tests.settings_process import PRODUCTION_ENV, ROOT

pytestmark = pytest.mark.django_db

ALLOWED = "https://dashboard.example.test"
REFUSED = "https://evil.example.test"
EXPOSED = {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"}
CORS_HEADERS = {
    "access-control-allow-origin",
    "access-control-allow-headers",
    "access-control-allow-methods",
    "access-control-expose-headers",
    "access-control-max-age",
    "access-control-allow-credentials",
}
DASHBOARD_PATHS = [
    "/api/v1/auth/token",
    "/api/v1/auth/verify",
    "/api/v1/dashboard/org_2abc",
    "/api/v1/patients/org_2abc/active/summary",
    "/api/v1/sync/trigger",
    "/api/v1/admin/system-health",
    "/api/session/",
    "/api/evaluation",
]
NOT_DASHBOARD_PATHS = [
    "/admin/login/",
    "/health",
    "/",
    "/api/schema/",
    "/api/v1/patients",  # Mark: a clinic's servers, not a browser
    "/api/v1/patients/pat_Sample123",
    "/api/v1/appointments",
    "/api/v1/auth/token/",
    "/api/v1/auth/tokenx",
    "/api/integration/auth",
    "/api/leads/ingest",
]


@pytest.fixture(autouse=True)
def origins(settings, frozen_ratelimit_clock):
    settings.CORS_ALLOWED_ORIGINS = [ALLOWED]


def preflight(path: str, origin: str, headers: str = "authorization, x-organization-id, content-type"):
    return Client().options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST" if path.endswith("token") else "GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS=headers,
    )


def cors_headers(response) -> set[str]:
    return {name.lower() for name in response.headers} & CORS_HEADERS


def split(value: str) -> set[str]:
    return {part.strip().lower() for part in value.split(",") if part.strip()}


@pytest.mark.parametrize("path", DASHBOARD_PATHS)
def test_preflight_from_an_allowed_origin_is_answered(path):
    response = preflight(path, ALLOWED)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ALLOWED
    assert {"authorization", "x-organization-id", "content-type"} <= split(response["Access-Control-Allow-Headers"])
    assert {"get", "post", "options"} <= split(response["Access-Control-Allow-Methods"])
    assert EXPOSED <= split(response["Access-Control-Expose-Headers"])
    assert "Access-Control-Allow-Credentials" not in response  # bearer tokens, never cookies
    assert response["Access-Control-Max-Age"] == "3600"
    assert "origin" in split(response["Vary"])


@pytest.mark.parametrize("path", DASHBOARD_PATHS)
def test_refused_origin_gets_no_cors_headers(path):
    assert cors_headers(preflight(path, REFUSED)) == set()
    assert cors_headers(Client().get(path, HTTP_ORIGIN=REFUSED)) == set()


@pytest.mark.parametrize("path", NOT_DASHBOARD_PATHS)
def test_other_paths_never_get_cors_headers_even_for_an_allowed_origin(path):
    assert cors_headers(preflight(path, ALLOWED)) == set()
    assert cors_headers(Client().get(path, HTTP_ORIGIN=ALLOWED)) == set()


def test_no_origins_configured_means_no_cors_at_all(settings):
    settings.CORS_ALLOWED_ORIGINS = []
    assert cors_headers(preflight("/api/v1/auth/token", ALLOWED)) == set()


def test_actual_request_from_an_allowed_origin_can_read_the_answer_and_its_rate_limit_headers(django_user_model):
    django_user_model.objects.create_user(username="dash", password="a-long-password-123")
    response = Client().post(
        "/api/v1/auth/token",
        {"username": "dash", "password": "a-long-password-123"},
        content_type="application/json",
        HTTP_ORIGIN=ALLOWED,
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ALLOWED
    assert EXPOSED <= split(response["Access-Control-Expose-Headers"])
    assert "X-RateLimit-Remaining" in response  # what the exposed names let the page read
    assert "Access-Control-Allow-Headers" not in response  # preflight-only headers stay off


def test_a_429_carries_cors_headers_so_the_page_can_read_retry_after():
    client = Client()
    statuses = []
    for _ in range(12):  # bad passwords: the per-address failure limit answers 429
        response = client.post(
            "/api/v1/auth/token",
            {"username": "nobody", "password": "wrong-password-123"},
            content_type="application/json",
            HTTP_ORIGIN=ALLOWED,
        )
        statuses.append(response.status_code)
    assert statuses[-1] == 429, statuses
    assert response["Access-Control-Allow-Origin"] == ALLOWED
    assert "Retry-After" in response
    assert "retry-after" in split(response["Access-Control-Expose-Headers"])


@override_settings(ROOT_URLCONF="tests.core.probe_urls")
def test_routiq_answer_to_an_allowed_origin_exposes_the_rate_limit_headers(django_user_model):
    from rest_framework_simplejwt.tokens import AccessToken

    user = django_user_model.objects.create_user(username="dash", password="a-long-password-123")
    response = Client().get(
        "/api/v1/dashboard/probe", HTTP_ORIGIN=ALLOWED, HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}"
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ALLOWED
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"):
        assert name in response and name.lower() in split(response["Access-Control-Expose-Headers"])
    # An anonymous call is refused in Routiq's body, and the page can read that too.
    refused = Client().get("/api/v1/dashboard/probe", HTTP_ORIGIN=ALLOWED)
    assert refused.status_code == 401
    assert refused["Access-Control-Allow-Origin"] == ALLOWED
    assert refused.json()["error"] == "Authentication failed"


def test_preflights_are_neither_rate_limited_nor_access_logged():
    before = AccessLog.objects.count()
    # More than any per-address limit of these paths (Mark's token endpoint: 60 a minute).
    statuses = {preflight("/api/v1/auth/token", ALLOWED).status_code for _ in range(80)}
    assert statuses == {200}
    assert AccessLog.objects.count() == before
    # The actual request is still counted and logged as before.
    Client().post("/api/v1/auth/token", {}, content_type="application/json", HTTP_ORIGIN=ALLOWED)
    assert AccessLog.objects.count() == before + 1


def test_cors_middleware_sits_before_the_access_log_and_the_api_error_middleware():
    order = list(django_settings.MIDDLEWARE)
    cors = order.index("corsheaders.middleware.CorsMiddleware")
    assert cors < order.index("audit.middleware.AccessLogMiddleware")
    assert cors < order.index("core.middleware.ApiErrorMiddleware")
    assert cors < order.index("django.middleware.common.CommonMiddleware")
    assert cors < order.index("whitenoise.middleware.WhiteNoiseMiddleware")


# --- The path list stays in step with the APIs ------------------------------------------------------------


def test_cors_paths_are_exactly_routiq_the_therapist_dashboard_and_the_token_endpoint():
    assert set(CORS_PATH_PREFIXES) == set(ROUTIQ.prefixes) | set(THERAPIST.prefixes)
    assert CORS_EXACT_PATHS == ("/api/v1/auth/token",)
    regex = re.compile(django_settings.CORS_URLS_REGEX)
    for path, _name, _callback in ROUTES:
        path = f"/{path}"
        family = family_for_path(path)
        wanted = family in (ROUTIQ, THERAPIST) or path in CORS_EXACT_PATHS
        assert bool(regex.match(path)) == wanted, path
    # Mark's own routes are in the walk above; make sure there were some.
    assert any(family_for_path(f"/{path}") is MARK for path, _n, _c in ROUTES)


# --- Start-up rules ------------------------------------------------------------------------------------------


def test_origins_are_normalised():
    values = [" https://App.Example.com/ ", "http://localhost:5173", "https://app.example.com", ""]
    assert cors_allowed_origins(values) == ["https://app.example.com", "http://localhost:5173"]


def _start(env: dict):
    names = set(PRODUCTION_ENV) | {"OUTBOUND_ALLOW_LOOPBACK", "DEBUG", "JWT_SIGNING_KEY"}
    environment = {k: v for k, v in os.environ.items() if k not in names and not k.startswith(("OIDC_", "CORS_"))}
    environment.update(PRODUCTION_ENV, DJANGO_SETTINGS_MODULE="config.settings", **env)
    code = "import django; django.setup(); from django.conf import settings; print(settings.CORS_ALLOWED_ORIGINS)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("app_env", ["production", "development"])
@pytest.mark.parametrize("value", ["*", "https://*.example.com", "https://app.example.com,*"])
def test_a_wildcard_origin_stops_start_up(app_env, value):
    result = _start({"APP_ENV": app_env, "CORS_ALLOWED_ORIGINS": value})
    assert result.returncode != 0
    assert "CORS_ALLOWED_ORIGINS never takes a wildcard" in result.stderr


@pytest.mark.parametrize("value", ["app.example.com", "https://app.example.com/path", "ftp://app.example.com", "null"])
def test_a_malformed_origin_stops_start_up(value):
    result = _start({"CORS_ALLOWED_ORIGINS": value})
    assert result.returncode != 0
    assert "is not an origin such as https://app.example.com" in result.stderr


def test_listed_origins_start():
    result = _start({"CORS_ALLOWED_ORIGINS": "https://app.example.com,https://admin.example.com"})
    assert result.returncode == 0, result.stderr
    assert "['https://app.example.com', 'https://admin.example.com']" in result.stdout
