"""External OIDC JWTs verified against a JWKS served on 127.0.0.1."""

import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client

from accounts import authentication
from accounts.models import ExternalIdentity
from tests.servers import LocalServer, Recorded, Reply

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.core.probe_urls")]
ISSUER = "https://clerk.example.test"
AUDIENCE = "routiq-api"
PROBE = "/api/v1/dashboard/oidc-probe"


def _key(kid):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return private, jwk


class Provider:
    def __init__(self):
        self.keys = dict([self._pair("key-1")])

    def _pair(self, kid):
        private, jwk = _key(kid)
        return kid, (private, jwk)

    def rotate(self, kid):
        self.keys.update([self._pair(kid)])

    def handler(self, request: Recorded) -> Reply:
        body = json.dumps({"keys": [jwk for _p, jwk in self.keys.values()]})
        return Reply(200, {"Content-Type": "application/json"}, body)

    def token(self, kid="key-1", **claims):
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user_2abc", "iat": now, "exp": now + 300, **claims}
        return jwt.encode(payload, self.keys[kid][0], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def provider(settings):
    provider = Provider()
    authentication._jwks_clients.clear()
    with LocalServer(provider.handler) as server:
        settings.OIDC_JWKS_URL = server.url("/.well-known/jwks.json")
        settings.OIDC_ISSUER = ISSUER
        settings.OIDC_AUDIENCE = AUDIENCE
        provider.server = server
        yield provider
    authentication._jwks_clients.clear()


def get(token):
    return Client().get(PROBE, HTTP_AUTHORIZATION=f"Bearer {token}")


def test_valid_token_authenticates_and_provisions_one_user(provider):
    first = get(provider.token())
    assert first.status_code == 200, first.content
    assert first.json()["sub"] == "user_2abc"
    second = get(provider.token())
    assert second.json()["user"] == first.json()["user"]
    assert ExternalIdentity.objects.filter(issuer=ISSUER, subject="user_2abc").count() == 1


def test_keys_are_cached_between_requests(provider):
    for _ in range(3):
        assert get(provider.token()).status_code == 200
    assert len(provider.server.requests) == 1


def test_unknown_kid_refetches_after_rotation(provider, settings):
    settings.OIDC_JWKS_REFETCH_COOLDOWN_SECONDS = 0
    assert get(provider.token()).status_code == 200
    provider.rotate("key-2")
    assert get(provider.token(kid="key-2")).status_code == 200
    assert len(provider.server.requests) == 2


def test_unknown_kids_within_the_cooldown_do_not_refetch(provider):
    assert get(provider.token()).status_code == 200
    provider.rotate("key-2")
    for _ in range(3):
        assert get(provider.token(kid="key-2")).status_code == 401
    assert len(provider.server.requests) == 1


@pytest.mark.parametrize(
    "claims, detail",
    [
        ({"iss": "https://evil.example"}, "Invalid or expired token"),
        ({"aud": "someone-else"}, "Invalid or expired token"),
        ({"exp": int(time.time()) - 120}, "Token expired"),
    ],
)
def test_wrong_issuer_audience_or_expired_is_401(provider, claims, detail):
    response = get(provider.token(**claims))
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "Authentication failed"
    assert body["detail"] == detail
    assert body["path"] == PROBE


def test_token_signed_by_a_key_not_in_the_jwks_is_401(provider):
    stranger, _ = _key("key-1")  # same kid, different key
    now = int(time.time())
    forged = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "iat": now, "exp": now + 60}, stranger,
                        algorithm="RS256", headers={"kid": "key-1"})
    assert get(forged).status_code == 401


def test_algorithm_confusion_hs256_with_public_key_is_refused(provider):
    public_pem = provider.keys["key-1"][0].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "iat": now, "exp": now + 60, "user_id": 1}
    import base64
    import hashlib
    import hmac

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "key-1"}).encode())
    body = b64(json.dumps(payload).encode())
    signature = b64(hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest())
    assert get((header + b"." + body + b"." + signature).decode()).status_code == 401


def test_unconfigured_provider_refuses_rs256_tokens(provider, settings):
    token = provider.token()
    settings.OIDC_JWKS_URL = ""
    assert get(token).status_code == 401


def test_jwks_server_down_is_401_not_500(settings):
    authentication._jwks_clients.clear()
    settings.OIDC_JWKS_URL = "http://127.0.0.1:9/jwks.json"  # discard port: connection refused
    settings.OIDC_ISSUER, settings.OIDC_AUDIENCE = ISSUER, AUDIENCE
    private, _ = _key("k")
    now = int(time.time())
    token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": str(uuid.uuid4()), "iat": now, "exp": now + 60},
                       private, algorithm="RS256", headers={"kid": "k"})
    response = get(token)
    assert response.status_code == 401
