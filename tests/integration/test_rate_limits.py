"""LoveRescue rate limits (spec section 4): 100/min per API key or the partner's own, headers on every
response, 429 body {"error": "Rate limit exceeded", "retryAfter": seconds}."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.actors import Actor
from integration.services.partners import partner_credential_create
from tests.integration.factories import make_partner, make_therapist

pytestmark = pytest.mark.django_db

CLIENTS = "/api/integration/clients"


def _reset_is_iso(value: str) -> bool:
    return value.endswith("Z") and datetime.fromisoformat(value.replace("Z", "+00:00")) is not None


def test_default_limit_is_100_per_minute_per_key(client, frozen_ratelimit_clock):
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist])
    headers = partner.headers(therapist)
    responses = [client.get(CLIENTS, **headers) for _ in range(101)]
    assert [r.status_code for r in responses[:100]] == [200] * 100
    assert responses[0].headers["X-RateLimit-Limit"] == "100"
    assert responses[0].headers["X-RateLimit-Remaining"] == "99"
    assert responses[99].headers["X-RateLimit-Remaining"] == "0"
    assert _reset_is_iso(responses[0].headers["X-RateLimit-Reset"])
    limited = responses[100]
    assert limited.status_code == 429
    body = limited.json()
    assert body["error"] == "Rate limit exceeded" and body["code"] == "RATE_LIMITED"
    assert isinstance(body["retryAfter"], int) and 0 < body["retryAfter"] <= 60
    assert limited.headers["X-RateLimit-Remaining"] == "0"


def test_limit_is_per_api_key_not_per_partner_or_ip(client, frozen_ratelimit_clock):
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist], rate_limit=3)
    second = partner_credential_create(partner=partner.partner, actor=Actor.system("tests"))
    first_headers = partner.headers(therapist)
    assert [client.get(CLIENTS, **first_headers).status_code for _ in range(4)] == [200, 200, 200, 429]
    from integration import tokens

    token = tokens.issue_token(
        partner_id=partner.partner.pk, credential_id=second.credential.pk, therapist_id=therapist.pk
    )
    assert client.get(CLIENTS, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_partner_custom_limit_applies(client, frozen_ratelimit_clock):
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist], rate_limit=150)
    headers = partner.headers(therapist)
    statuses = [client.get(CLIENTS, **headers).status_code for _ in range(151)]
    assert statuses[:150] == [200] * 150 and statuses[150] == 429
    assert client.get(CLIENTS, **headers).headers["X-RateLimit-Limit"] == "150"


def test_window_resets_after_a_minute(client, frozen_ratelimit_clock):
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist], rate_limit=2)
    headers = partner.headers(therapist)
    assert [client.get(CLIENTS, **headers).status_code for _ in range(3)] == [200, 200, 429]
    frozen_ratelimit_clock.now += 60
    assert client.get(CLIENTS, **headers).status_code == 200


def test_error_responses_carry_rate_headers(client, frozen_ratelimit_clock):
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist])
    response = client.get(
        "/api/integration/clients/00000000-0000-0000-0000-000000000000/progress", **partner.headers(therapist)
    )
    assert response.status_code in (403, 404)
    assert response.headers["X-RateLimit-Limit"] == "100"
