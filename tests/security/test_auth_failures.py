"""Issue 10, finding 6: failed authentication is counted per client address and per claimed account on every
API credential (core.ratelimit.failure_guard, limits declared per API in core.apis), answered with that API's
own 429 and Retry-After. Throttle, never lock out: the right credential from a throttled address is refused,
from another address it works; an account that failed too often is refused only from addresses that never
authenticated it, so nobody can lock a partner's integration out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from core.apis import CAREOS_FAILURES, LOVERESCUE_FAILURES, MARK_FAILURES, ROUTIQ_FAILURES
from core.ratelimit import TOO_MANY_FAILURES
from integration import tokens
from tests.integration.factories import make_partner, make_therapist
from tests.leads.factories import make_platform

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_ratelimit_clock")]

ATTACKER, OTHER, HOME = "198.51.100.66", "203.0.113.10", "192.0.2.20"
CLIENTS = "/api/integration/clients"


def _retry_after_is_the_window(response, clock, period) -> None:
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= period
    assert (clock.now + retry_after) % period == 0  # the end of the fixed window


@pytest.fixture
def partner_world():
    therapist = make_therapist()
    return therapist, make_partner(therapists=[therapist])


# --- LoveRescue -------------------------------------------------------------------------------------------


def test_150_bad_partner_tokens_get_loverescue_429s(partner_world, frozen_ratelimit_clock):
    therapist, partner = partner_world
    attacker = Client(REMOTE_ADDR=ATTACKER)
    responses = [attacker.get(CLIENTS, HTTP_AUTHORIZATION=f"Bearer forged.token.{i}") for i in range(150)]
    statuses = [r.status_code for r in responses]
    assert statuses == [401] * LOVERESCUE_FAILURES.per_ip + [429] * (150 - LOVERESCUE_FAILURES.per_ip)
    limited = responses[-1]
    body = limited.json()
    assert body == {"error": TOO_MANY_FAILURES, "code": "RATE_LIMITED", "retryAfter": int(limited["Retry-After"])}
    _retry_after_is_the_window(limited, frozen_ratelimit_clock, LOVERESCUE_FAILURES.period_seconds)
    assert limited["X-RateLimit-Limit"] == str(LOVERESCUE_FAILURES.per_ip)
    assert limited["X-RateLimit-Remaining"] == "0"
    # A real token from the throttled address is refused too (it could be a lucky guess) ...
    assert attacker.get(CLIENTS, **partner.headers(therapist)).status_code == 429
    # ... and works from anywhere else.
    assert Client(REMOTE_ADDR=OTHER).get(CLIENTS, **partner.headers(therapist)).status_code == 200


def test_expired_genuine_tokens_are_not_failures(partner_world):
    therapist, partner = partner_world
    stale = tokens.issue_token(
        partner_id=partner.partner.pk,
        credential_id=partner.credential.pk,
        therapist_id=therapist.pk,
        now=timezone.now() - timedelta(hours=2),
    )
    client = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(LOVERESCUE_FAILURES.per_ip + 5):
        response = client.get(CLIENTS, HTTP_AUTHORIZATION=f"Bearer {stale}")
        assert response.status_code == 401 and response.json()["code"] == "TOKEN_EXPIRED"
    assert client.get(CLIENTS, **partner.headers(therapist)).status_code == 200


def test_token_exchange_counts_bad_secrets_per_address(partner_world):
    therapist, partner = partner_world
    body = {"apiKey": partner.api_key, "apiSecret": "sk_live_" + "w" * 40, "therapistId": str(therapist.pk)}
    right = {**body, "apiSecret": partner.api_secret}
    attacker = Client(REMOTE_ADDR=ATTACKER)
    statuses = [attacker.post("/api/integration/auth", body, content_type="application/json").status_code
                for _ in range(LOVERESCUE_FAILURES.per_ip + 1)]
    assert statuses == [401] * LOVERESCUE_FAILURES.per_ip + [429]
    refused = attacker.post("/api/integration/auth", right, content_type="application/json")
    assert refused.status_code == 429 and refused.json()["code"] == "RATE_LIMITED"
    assert "token" not in refused.json()
    works = Client(REMOTE_ADDR=OTHER).post("/api/integration/auth", right, content_type="application/json")
    assert works.status_code == 200 and works.json()["token"]


def test_a_window_later_the_address_may_try_again(partner_world, frozen_ratelimit_clock):
    therapist, partner = partner_world
    attacker = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(LOVERESCUE_FAILURES.per_ip):
        attacker.get(CLIENTS, HTTP_AUTHORIZATION="Bearer nonsense")
    assert attacker.get(CLIENTS, **partner.headers(therapist)).status_code == 429
    frozen_ratelimit_clock.now += LOVERESCUE_FAILURES.period_seconds
    assert attacker.get(CLIENTS, **partner.headers(therapist)).status_code == 200


# --- CareOS ---------------------------------------------------------------------------------------------------


def _ingest(client, setup, **headers):
    return client.post("/api/leads/ingest", setup.lead(), content_type="application/json", **headers)


def test_120_bad_careos_keys_get_careos_429s(frozen_ratelimit_clock):
    setup = make_platform()
    attacker = Client(REMOTE_ADDR=ATTACKER)
    bad = setup.headers(api_key=setup.api_key[:-6] + "XXXXXX")
    responses = [_ingest(attacker, setup, **bad) for _ in range(120)]
    statuses = [r.status_code for r in responses]
    assert statuses == [401] * CAREOS_FAILURES.per_ip + [429] * (120 - CAREOS_FAILURES.per_ip)
    assert responses[0].json() == {"error": "Invalid API key"}
    assert responses[-1].json() == {"error": TOO_MANY_FAILURES}
    _retry_after_is_the_window(responses[-1], frozen_ratelimit_clock, CAREOS_FAILURES.period_seconds)
    assert _ingest(attacker, setup, **setup.headers()).status_code == 429
    # Refused before any key is read: without credentials at all (no account claimed) it is the 429 too.
    assert _ingest(attacker, setup).status_code == 429
    assert _ingest(Client(REMOTE_ADDR=OTHER), setup, **setup.headers()).status_code == 200

    from leads.models import Lead

    assert Lead.objects.count() == 1


def test_a_distributed_guesser_cannot_lock_the_partner_out():
    setup = make_platform()
    home = Client(REMOTE_ADDR=HOME)
    assert _ingest(home, setup, **setup.headers()).status_code == 200  # the partner's own server
    bad = setup.headers(api_key=setup.api_key[:-6] + "XXXXXX")
    failures = 0
    for octet in range(1, 10):
        guesser = Client(REMOTE_ADDR=f"198.51.100.{octet}")
        for _ in range(CAREOS_FAILURES.per_ip):
            if failures < CAREOS_FAILURES.per_account:
                assert _ingest(guesser, setup, **bad).status_code == 401
                failures += 1
    # The account has used up its failures: a new address is refused, whatever key it sends ...
    assert _ingest(Client(REMOTE_ADDR=OTHER), setup, **bad).status_code == 429
    assert _ingest(Client(REMOTE_ADDR=OTHER), setup, **setup.headers()).status_code == 429
    # ... while the partner's server, which has authenticated before, keeps working.
    second = setup.lead(phone="+14155550124", source_conversation_id="bizos-lead-2")
    response = home.post("/api/leads/ingest", second, content_type="application/json", **setup.headers())
    assert response.status_code == 200, response.content
    # Failures claiming another platform are counted apart.
    other_setup = make_platform("otherplatform", pair_index=0)
    assert _ingest(Client(REMOTE_ADDR=OTHER), other_setup, **other_setup.headers()).status_code == 200


# --- Platform token (Mark) and platform bearer tokens -----------------------------------------------------------


@pytest.fixture
def alice():
    from accounts.models import User

    return User.objects.create_user(username="alice", password="correct-horse-battery-1")


def _token(client, username, password):
    return client.post("/api/v1/auth/token", {"username": username, "password": password},
                       content_type="application/json")


def test_platform_token_counts_bad_passwords_per_address(alice):
    attacker = Client(REMOTE_ADDR=ATTACKER)
    statuses = [_token(attacker, "alice", f"guess-{i}").status_code for i in range(MARK_FAILURES.per_ip + 1)]
    assert statuses == [401] * MARK_FAILURES.per_ip + [429]
    refused = _token(attacker, "alice", "correct-horse-battery-1")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["message"] == TOO_MANY_FAILURES
    assert _token(Client(REMOTE_ADDR=OTHER), "alice", "correct-horse-battery-1").status_code == 200


def test_platform_token_account_throttle_spares_known_addresses(alice):
    home = Client(REMOTE_ADDR=HOME)
    assert _token(home, "alice", "correct-horse-battery-1").status_code == 200
    failures = 0
    for octet in range(1, 10):
        guesser = Client(REMOTE_ADDR=f"198.51.100.{octet}")
        for i in range(MARK_FAILURES.per_ip):
            if failures < MARK_FAILURES.per_account:
                # Spelling the name differently is the same account.
                assert _token(guesser, "ALICE" if i % 2 else "alice", f"guess-{i}").status_code == 401
                failures += 1
    assert _token(Client(REMOTE_ADDR=OTHER), "alice", "correct-horse-battery-1").status_code == 429
    assert _token(home, "alice", "correct-horse-battery-1").status_code == 200
    # Other accounts are untouched.
    from accounts.models import User

    User.objects.create_user(username="bob", password="another-good-password-2")
    assert _token(Client(REMOTE_ADDR=OTHER), "bob", "another-good-password-2").status_code == 200


@pytest.mark.urls("tests.core.probe_urls")
def test_bad_platform_bearer_tokens_get_the_apis_429(alice):
    from rest_framework_simplejwt.tokens import AccessToken

    attacker = Client(REMOTE_ADDR=ATTACKER)
    statuses = [attacker.get("/api/v1/dashboard/probe", HTTP_AUTHORIZATION=f"Bearer bad.{i}.x").status_code
                for i in range(ROUTIQ_FAILURES.per_ip + 1)]
    assert statuses == [401] * ROUTIQ_FAILURES.per_ip + [429]
    good = f"Bearer {AccessToken.for_user(alice)}"
    limited = attacker.get("/api/v1/dashboard/probe", HTTP_AUTHORIZATION=good)
    assert limited.status_code == 429
    body = limited.json()
    assert body["error"] == "Rate limit exceeded" and body["path"] == "/api/v1/dashboard/probe"
    assert body["rate_limit"]["limit"] == ROUTIQ_FAILURES.per_ip
    assert body["rate_limit"]["retry_after"] == int(limited["Retry-After"])
    assert Client(REMOTE_ADDR=OTHER).get("/api/v1/dashboard/probe", HTTP_AUTHORIZATION=good).status_code == 200


@pytest.mark.urls("tests.core.probe_urls")
def test_expired_platform_tokens_are_not_failures(alice):
    from rest_framework_simplejwt.tokens import AccessToken

    expired = AccessToken.for_user(alice)
    expired.set_exp(lifetime=-timedelta(minutes=5))
    client = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(ROUTIQ_FAILURES.per_ip + 3):
        assert client.get("/api/v1/dashboard/probe", HTTP_AUTHORIZATION=f"Bearer {expired}").status_code == 401
    fresh = f"Bearer {AccessToken.for_user(alice)}"
    assert client.get("/api/v1/dashboard/probe", HTTP_AUTHORIZATION=fresh).status_code == 200


@pytest.mark.urls("tests.core.probe_urls")
def test_bad_oidc_tokens_count_like_any_other(settings, alice):
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    settings.OIDC_JWKS_URL = "http://127.0.0.1:9/jwks.json"  # nothing listens: every RS256 token is refused
    settings.OIDC_ISSUER, settings.OIDC_AUDIENCE = "https://idp.test", "routiq"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode({"sub": "x", "iss": "https://idp.test"}, key, algorithm="RS256", headers={"kid": "k"})
    attacker = Client(REMOTE_ADDR=ATTACKER)
    statuses = [attacker.get("/api/v1/dashboard/oidc-probe", HTTP_AUTHORIZATION=f"Bearer {forged}").status_code
                for _ in range(ROUTIQ_FAILURES.per_ip + 1)]
    assert statuses == [401] * ROUTIQ_FAILURES.per_ip + [429]


def test_missing_credentials_are_not_counted(partner_world):
    client = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(LOVERESCUE_FAILURES.per_ip + 5):
        assert client.get(CLIENTS).status_code == 401  # no Authorization header: nothing was guessed
    therapist, partner = partner_world
    assert client.get(CLIENTS, **partner.headers(therapist)).status_code == 200
