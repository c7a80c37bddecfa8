"""POST /api/integration/auth and the integration token on every request (spec section 1)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from core.actors import Actor
from integration import tokens
from integration.models import IntegrationPartner, PartnerCredential
from integration.services.partners import partner_credential_rotate_secret
from tests.integration.factories import make_partner, make_therapist

pytestmark = pytest.mark.django_db

AUTH = "/api/integration/auth"
CLIENTS = "/api/integration/clients"


@pytest.fixture
def setup():
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist])
    return therapist, partner


def exchange(client, partner, therapist, **overrides):
    body = {"apiKey": partner.api_key, "apiSecret": partner.api_secret, "therapistId": str(therapist.pk)}
    body.update(overrides)
    return client.post(AUTH, body, content_type="application/json")


def test_exchange_returns_a_one_hour_bearer_token(client, setup):
    therapist, partner = setup
    response = exchange(client, partner, therapist)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"token", "expiresIn", "tokenType"}
    assert body["expiresIn"] == 3600 and body["tokenType"] == "Bearer"
    claims = tokens.decode_token(body["token"])
    assert claims.therapist_id == therapist.pk and claims.partner_id == partner.partner.pk
    assert "X-RateLimit-Limit" in response.headers


@pytest.mark.parametrize(
    "overrides,status,error",
    [
        ({"apiKey": ""}, 400, "apiKey and apiSecret are required"),
        ({"apiSecret": None}, 400, "apiKey and apiSecret are required"),
        ({"apiKey": "lr_int_nosuchkey000_" + "a" * 40}, 401, "Invalid API key"),
        ({"apiKey": "garbage"}, 401, "Invalid API key"),
        ({"apiSecret": "sk_live_" + "x" * 40}, 401, "Invalid API secret"),
        ({"therapistId": "00000000-0000-0000-0000-000000000000"}, 404, "Therapist not found or inactive"),
        ({"therapistId": "not-a-uuid"}, 404, "Therapist not found or inactive"),
    ],
)
def test_exchange_errors_follow_the_spec_table(client, setup, overrides, status, error):
    therapist, partner = setup
    body = {"apiKey": partner.api_key, "apiSecret": partner.api_secret, "therapistId": str(therapist.pk)}
    body.update(overrides)
    body = {k: v for k, v in body.items() if v is not None}
    response = client.post(AUTH, body, content_type="application/json")
    assert response.status_code == status
    assert response.json()["error"] == error
    assert "code" in response.json()


def test_therapist_of_another_partner_is_not_found(client, setup):
    therapist, partner = setup
    other = make_therapist("Olga", "Other")
    make_partner(therapists=[other])
    response = exchange(client, partner, other)
    assert response.status_code == 404 and response.json()["error"] == "Therapist not found or inactive"


def test_inactive_therapist_is_not_found(client, setup):
    therapist, partner = setup
    therapist.is_active = False
    therapist.save()
    assert exchange(client, partner, therapist).status_code == 404


def test_suspended_partner_key_is_invalid_and_live_tokens_stop_at_once(client, setup):
    therapist, partner = setup
    headers = partner.headers(therapist)
    assert client.get(CLIENTS, **headers).status_code == 200
    IntegrationPartner.objects.filter(pk=partner.partner.pk).update(status="suspended")
    response = exchange(client, partner, therapist)
    assert response.status_code == 401 and response.json()["error"] == "Invalid API key"
    refused = client.get(CLIENTS, **headers)
    assert refused.status_code == 401 and refused.json()["code"] == "AUTH_FAILED"


def test_no_baa_refuses_authentication_and_tokens(client):
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist], baa=False)
    response = exchange(client, partner, therapist)
    assert response.status_code == 403 and response.json()["code"] == "NOT_CONFIGURED"
    refused = client.get(CLIENTS, **partner.headers(therapist))
    assert refused.status_code == 403 and refused.json()["code"] == "NOT_CONFIGURED"


@pytest.mark.parametrize(
    "allowlist,remote,allowed",
    [
        (["203.0.113.0/24"], "203.0.113.9", True),
        (["203.0.113.0/24"], "198.51.100.1", False),
        (["2001:db8::/32"], "2001:db8::5", True),
        (["2001:db8::/32"], "2001:db9::5", False),
        (["203.0.113.7/32", "2001:db8::/32"], "::ffff:203.0.113.7", True),
        ([], "198.51.100.1", True),
    ],
)
def test_ip_allowlist(client, allowlist, remote, allowed):
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist], allowed_ips=allowlist)
    response = client.post(
        AUTH,
        {"apiKey": partner.api_key, "apiSecret": partner.api_secret, "therapistId": str(therapist.pk)},
        content_type="application/json",
        REMOTE_ADDR=remote,
    )
    api = client.get(CLIENTS, REMOTE_ADDR=remote, **partner.headers(therapist))
    if allowed:
        assert response.status_code == 200 and api.status_code == 200
    else:
        assert response.status_code == 403 and response.json()["code"] == "IP_BLOCKED"
        assert api.status_code == 403 and api.json()["code"] == "IP_BLOCKED"


def test_expired_token_is_token_expired_and_bad_token_auth_failed(client, setup):
    therapist, partner = setup
    old = tokens.issue_token(
        partner_id=partner.partner.pk,
        credential_id=partner.credential.pk,
        therapist_id=therapist.pk,
        now=timezone.now() - timedelta(seconds=3601),
    )
    response = client.get(CLIENTS, HTTP_AUTHORIZATION=f"Bearer {old}")
    assert response.status_code == 401 and response.json()["code"] == "TOKEN_EXPIRED"
    fresh = tokens.issue_token(
        partner_id=partner.partner.pk,
        credential_id=partner.credential.pk,
        therapist_id=therapist.pk,
        now=timezone.now() - timedelta(seconds=3500),
    )
    assert client.get(CLIENTS, HTTP_AUTHORIZATION=f"Bearer {fresh}").status_code == 200
    for bad in ("nonsense", fresh[:-2] + "xx", "a.b.c"):
        response = client.get(CLIENTS, HTTP_AUTHORIZATION=f"Bearer {bad}")
        assert response.status_code == 401 and response.json()["code"] == "AUTH_FAILED"
    response = client.get(CLIENTS)
    assert response.status_code == 401 and response.json()["code"] == "AUTH_FAILED"


def test_platform_token_is_not_an_integration_token(client, setup):
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.models import User

    user = User.objects.create_user(username="someone", password="x-password-123")
    response = client.get(CLIENTS, HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    assert response.status_code == 401 and response.json()["code"] == "AUTH_FAILED"


def test_unassigned_therapist_token_stops_working(client, setup):
    therapist, partner = setup
    headers = partner.headers(therapist)
    partner.partner.therapists.remove(therapist)
    response = client.get(CLIENTS, **headers)
    assert response.status_code == 404 and response.json()["error"] == "Therapist not found or inactive"


def test_revoked_credential_tokens_stop_working(client, setup):
    therapist, partner = setup
    headers = partner.headers(therapist)
    PartnerCredential.objects.filter(pk=partner.credential.pk).update(revoked_at=timezone.now())
    assert client.get(CLIENTS, **headers).status_code == 401
    assert exchange(client, partner, therapist).status_code == 401


def test_secret_rotation_keeps_the_old_secret_for_the_overlap(client, setup):
    therapist, partner = setup
    new_secret = partner_credential_rotate_secret(
        credential=partner.credential, overlap=timedelta(hours=1), actor=Actor.system("tests")
    )
    assert exchange(client, partner, therapist).status_code == 200
    assert exchange(client, partner, therapist, apiSecret=new_secret).status_code == 200
    PartnerCredential.objects.filter(pk=partner.credential.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert exchange(client, partner, therapist).status_code == 401
    assert exchange(client, partner, therapist, apiSecret=new_secret).status_code == 200


def test_secret_is_stored_only_as_bcrypt(setup):
    _, partner = setup
    credential = PartnerCredential.objects.get(pk=partner.credential.pk)
    assert credential.secret_hash.startswith("$2")
    assert partner.api_secret not in credential.secret_hash
    assert partner.api_key not in credential.key_digest


def test_token_exchange_has_a_per_ip_limit(client, setup, settings, frozen_ratelimit_clock):
    # Every exchange counts, good or bad (bad ones also count as failures: tests/security/test_auth_failures.py).
    # The clock is pinned: 31 bcrypt-checked exchanges take seconds, and a window's end between them reset the
    # count (a CI run's 31st exchange got 200).
    therapist, partner = setup
    statuses = [exchange(client, partner, therapist).status_code for _ in range(31)]
    assert statuses[:30] == [200] * 30
    assert statuses[30] == 429
    assert exchange(client, partner, therapist).json()["error"] == "Rate limit exceeded"


# --- The allowlist is checked after the secret (issue 10, finding 7) ------------------------------------------

INSIDE, OUTSIDE = "203.0.113.9", "198.51.100.1"


@pytest.fixture
def allowlisted():
    therapist = make_therapist()
    return therapist, make_partner(therapists=[therapist], allowed_ips=["203.0.113.0/24"])


def _comparable(response) -> tuple:
    # Everything a caller sees, except what differs per request anyway (its id, rate-limit counters).
    headers = {k: v for k, v in response.headers.items() if k != "X-Request-ID" and not k.startswith("X-RateLimit")}
    return response.status_code, headers, response.content


@pytest.mark.parametrize(
    "overrides",
    [
        {"apiSecret": "sk_live_" + "x" * 40},  # right key, wrong secret
        {"apiKey": "lr_int_nosuchkey000_" + "a" * 40},  # unknown key
    ],
    ids=["wrong-secret", "unknown-key"],
)
def test_a_wrong_credential_looks_the_same_from_outside_the_allowlist(client, allowlisted, overrides):
    therapist, partner = allowlisted
    inside = exchange(Client(REMOTE_ADDR=INSIDE), partner, therapist, **overrides)
    outside = exchange(Client(REMOTE_ADDR=OUTSIDE), partner, therapist, **overrides)
    assert inside.status_code == 401 and inside.json()["code"] == "AUTH_FAILED"
    assert _comparable(outside) == _comparable(inside)


def test_only_the_right_secret_from_outside_the_allowlist_is_ip_blocked(allowlisted):
    therapist, partner = allowlisted
    outside = exchange(Client(REMOTE_ADDR=OUTSIDE), partner, therapist)
    assert outside.status_code == 403 and outside.json()["code"] == "IP_BLOCKED"
    assert "token" not in outside.json()
    assert exchange(Client(REMOTE_ADDR=INSIDE), partner, therapist).status_code == 200
