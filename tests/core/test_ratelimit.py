"""Rate limits: the policy of each API, its headers and its 429 body; atomic under concurrency in Redis."""

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest
from django.test import Client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_ratelimit_clock")]


def test_mark_token_endpoint_allows_exactly_60_per_minute_per_ip(frozen_ratelimit_clock):
    client = Client()
    statuses, remaining = [], []
    for _ in range(61):
        # Malformed bodies: counted by the request limit (it runs before the body is read) but not failed
        # credentials, whose own, tighter limit is tests/security/test_auth_failures.py's.
        response = client.post("/api/v1/auth/token", {"username": "x"}, content_type="application/json")
        statuses.append(response.status_code)
        remaining.append(int(response["X-RateLimit-Remaining"]))
        assert response["X-RateLimit-Limit"] == "60"
    assert statuses[:60] == [400] * 60
    assert statuses[60] == 429
    assert remaining[:60] == list(range(59, -1, -1))
    body = response.json()
    assert body["error"]["code"] == "rate_limited"
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    assert int(response["X-RateLimit-Reset"]) == frozen_ratelimit_clock.now + retry_after
    # Another client address has its own budget.
    other = Client(REMOTE_ADDR="198.51.100.7").post("/api/v1/auth/token", {"username": "x", "password": "y"},
                                                    content_type="application/json")
    assert other.status_code == 401


def test_x_forwarded_for_is_ignored_by_default(settings):
    client = Client()
    for i in range(60):
        client.post("/api/v1/auth/token", {}, content_type="application/json", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
    response = client.post("/api/v1/auth/token", {}, content_type="application/json",
                           HTTP_X_FORWARDED_FOR="203.0.113.250")
    assert response.status_code == 429


@pytest.mark.urls("tests.core.probe_urls")
def test_loverescue_headers_are_iso_and_429_body_is_the_specs():
    client = Client()
    for _ in range(100):
        response = client.get("/api/integration/key-probe", HTTP_X_PROBE_KEY="k1")
    assert response.status_code == 200
    assert response["X-RateLimit-Remaining"] == "0"
    reset = response["X-RateLimit-Reset"]
    assert reset.endswith("Z") and datetime.fromisoformat(reset.replace("Z", "+00:00"))
    response = client.get("/api/integration/key-probe", HTTP_X_PROBE_KEY="k1")
    assert response.status_code == 429
    body = response.json()
    assert body["error"] == "Rate limit exceeded"
    assert body["code"] == "RATE_LIMITED"
    assert isinstance(body["retryAfter"], int) and 1 <= body["retryAfter"] <= 60
    assert body["retryAfter"] == int(response["Retry-After"])


def test_routiq_public_tier_headers_on_every_response():
    # `/` is the public tier's probe; /health is exempt from limits (tests/core/test_health.py).
    response = Client().get("/")
    assert response["X-RateLimit-Limit"] == "100"
    assert response["X-RateLimit-Remaining"] == "99"
    assert 1 <= int(response["Retry-After"]) <= 900


def test_disabled_rate_limiting_sends_no_headers(settings):
    settings.RATELIMIT_ENABLE = False
    response = Client().get("/")
    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response


@pytest.mark.redis
def test_concurrent_clients_against_redis_exactly_the_limit_passes(live_server, settings, redis_url):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": f"test-rl-{uuid.uuid4().hex}",
        }
    }
    url = f"{live_server.url}/"

    def hit(_):
        with httpx.Client(timeout=10) as http:
            return http.get(url)

    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(hit, range(130)))
    ok = [r for r in responses if r.status_code == 200]
    limited = [r for r in responses if r.status_code == 429]
    assert len(ok) == 100
    assert len(limited) == 30
    assert sorted(int(r.headers["X-RateLimit-Remaining"]) for r in ok) == list(range(100))
    assert {r.headers["X-RateLimit-Limit"] for r in responses} == {"100"}
    body = limited[0].json()
    assert body["error"] == "Rate limit exceeded"
    assert body["rate_limit"]["limit"] == 100 and body["rate_limit"]["remaining"] == 0
    assert body["rate_limit"]["retry_after"] == int(limited[0].headers["Retry-After"])
    assert body["path"] == "/"


def test_docs_are_in_the_public_tier():
    response = Client().get("/docs")
    assert response.status_code == 200
    assert response["X-RateLimit-Limit"] == "100"


@pytest.mark.urls("tests.core.probe_urls")
def test_loverescue_counts_per_api_key_with_a_partner_override():
    client = Client()
    statuses = [client.get("/api/integration/key-probe", HTTP_X_PROBE_KEY="k1", HTTP_X_PROBE_LIMIT="3",
                           REMOTE_ADDR=f"198.51.100.{i}").status_code for i in range(4)]
    assert statuses == [200, 200, 200, 429]  # counted per key across client addresses
    limited = client.get("/api/integration/key-probe", HTTP_X_PROBE_KEY="k1", HTTP_X_PROBE_LIMIT="3")
    assert limited["X-RateLimit-Limit"] == "3"
    other_key = client.get("/api/integration/key-probe", HTTP_X_PROBE_KEY="k2")
    assert other_key.status_code == 200
    assert other_key["X-RateLimit-Limit"] == "100"  # the spec's default per key
    assert other_key["X-RateLimit-Remaining"] == "99"


@pytest.mark.urls("tests.core.probe_urls")
def test_therapist_limits_are_per_user_and_report_the_tightest():
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import AccessToken

    user = get_user_model().objects.create_user("therapist", password="x-long-password-1")
    token = AccessToken.for_user(user)
    response = Client().get("/api/session/probe", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    # 100/min and 1000/h: after one request the minute window is the tighter one.
    assert response["X-RateLimit-Limit"] == "100"
    assert response["X-RateLimit-Remaining"] == "99"
