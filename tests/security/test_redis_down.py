"""Issue 10, finding 9: with the rate limiter's Redis unreachable, API requests answer the API's own 503 with
Retry-After, never a 500; nothing is counted, so nothing passes uncounted either (failed credentials
included). `/health` needs no Redis at all; `/` and the docs fail open (documented per limit)."""

from __future__ import annotations

import pytest
from django.test import Client

from core.ratelimit import UNAVAILABLE_RETRY_AFTER

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_down(settings):
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


def _post(path, body, **headers):
    return Client().post(path, data=body, content_type="application/json", **headers)


def test_loverescue_token_exchange_is_a_loverescue_503(redis_down):
    response = _post("/api/integration/auth", {"apiKey": "lr_int_x", "apiSecret": "sk_live_x", "therapistId": "t"})
    assert response.status_code == 503
    assert response.json() == {
        "error": "Service temporarily unavailable, try again shortly",
        "code": "SERVICE_UNAVAILABLE",
    }
    assert response["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER)


def test_platform_token_is_a_mark_503(redis_down):
    response = _post("/api/v1/auth/token", {"username": "someone", "password": "whatever-it-is"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER)


def test_careos_ingest_with_a_valid_key_is_a_careos_503(redis_down):
    from tests.leads.factories import make_platform

    setup = make_platform()
    body = setup.lead()
    response = _post("/api/leads/ingest", body, **setup.headers())
    assert response.status_code == 503
    assert response.json() == {"error": "Service temporarily unavailable, try again shortly"}
    from leads.models import Lead

    assert Lead.objects.count() == 0


# --- Finding 9, the rest: liveness needs no Redis; failure counting fails closed like every limit -------------


def test_health_answers_with_redis_unreachable(redis_down):
    for _ in range(3):
        response = Client().get("/health")
        assert response.status_code == 200
        assert response.json()["status"] == "healthy"


def test_root_and_docs_fail_open_with_redis_unreachable(redis_down):
    # The public tier's documented fail-open (core.apis.ROUTIQ_PUBLIC_RATES): nothing secret behind it.
    root = Client().get("/")
    assert root.status_code == 200 and root.json()["message"] == "Routiq Backend API"
    assert "X-RateLimit-Limit" not in root  # not counted, and not pretending to be
    assert Client().get("/docs").status_code == 200


def test_bad_careos_key_is_a_careos_503_not_an_uncounted_401(redis_down):
    from tests.leads.factories import make_platform

    setup = make_platform()
    response = _post("/api/leads/ingest", setup.lead(), **setup.headers(api_key=setup.api_key[:-6] + "XXXXXX"))
    assert response.status_code == 503
    assert response.json() == {"error": "Service temporarily unavailable, try again shortly"}
    assert response["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER)


def test_bad_partner_token_is_a_loverescue_503(redis_down):
    response = Client().get("/api/integration/clients", HTTP_AUTHORIZATION="Bearer forged")
    assert response.status_code == 503
    assert response.json()["code"] == "SERVICE_UNAVAILABLE"
    assert response["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER)
