"""Authentication classes shared by the APIs.

- PlatformJWTAuthentication: our own HS256 access tokens from `POST /api/v1/auth/token` (simplejwt).
- OIDCAuthentication: RS256 JWTs from an external OIDC provider (Clerk-style), verified against the
  provider's JWKS (keys cached, refetched on an unknown `kid`), issuer and audience checked. It only
  claims tokens whose header says RS256, so both classes can be listed together.

Both run inside core.ratelimit.failure_guard (core.api): a refused token counts as a failed attempt of the
client address, except a correctly signed token that has only expired (marked `genuine_credential`).
"""

from __future__ import annotations

import threading

import jwt
from django.conf import settings
from rest_framework import authentication
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import ExpiredTokenError, InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from core.errors import ApiError
from core.ratelimit import genuine_credential


class PlatformJWTAuthentication(JWTAuthentication):
    www_authenticate_realm = "api"

    def get_validated_token(self, raw_token):
        try:
            return super().get_validated_token(raw_token)
        except InvalidToken as exc:
            if _only_expired(raw_token):
                raise genuine_credential(exc) from None
            raise


def _only_expired(raw_token) -> bool:
    # simplejwt checks the signature before the expiry: ExpiredTokenError means a token we signed.
    for token_class in jwt_settings.AUTH_TOKEN_CLASSES:
        try:
            token_class(raw_token)
        except ExpiredTokenError:
            return True
        except TokenError:
            continue
    return False


_jwks_clients: dict[tuple, jwt.PyJWKClient] = {}
_jwks_lock = threading.Lock()


def jwks_client(url: str) -> jwt.PyJWKClient:
    """One cached client per JWKS URL for the process: keys are fetched once per cache period."""
    cache_key = (url, settings.OIDC_JWKS_CACHE_SECONDS, settings.OIDC_JWKS_REFETCH_COOLDOWN_SECONDS)
    with _jwks_lock:
        client = _jwks_clients.get(cache_key)
        if client is None:
            client = jwt.PyJWKClient(
                url,
                cache_keys=True,
                cache_jwk_set=True,
                lifespan=settings.OIDC_JWKS_CACHE_SECONDS,
                # An unknown kid refetches the set (key rotation), at most once per cooldown, so
                # tokens with random kids cannot make us hammer the provider.
                cooldown_duration=settings.OIDC_JWKS_REFETCH_COOLDOWN_SECONDS,
                timeout=5,
            )
            _jwks_clients[cache_key] = client
        return client


def verify_oidc_token(token: str) -> dict:
    """Verified claims of an external RS256 JWT, or ApiError(401)."""
    if not (settings.OIDC_JWKS_URL and settings.OIDC_ISSUER and settings.OIDC_AUDIENCE):
        raise ApiError(401, "External identity provider is not configured")
    try:
        signing_key = jwks_client(settings.OIDC_JWKS_URL).get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            signing_key.key,
            algorithms=["RS256"],
            issuer=settings.OIDC_ISSUER,
            audience=settings.OIDC_AUDIENCE,
            options={"require": ["exp", "iat", "iss", "sub"]},
            leeway=30,
        )
    except jwt.ExpiredSignatureError as exc:
        # PyJWT verifies the signature before the claims: the provider did sign this one.
        raise genuine_credential(ApiError(401, "Token expired", code="token_expired")) from exc
    except (jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
        raise ApiError(401, "Invalid or expired token", code="token_not_valid") from exc


class OIDCAuthentication(authentication.BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() != self.keyword:
            return None
        token = parts[1].decode("latin-1")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            return None
        if header.get("alg") != "RS256":
            return None  # not ours: a platform token, left to PlatformJWTAuthentication
        claims = verify_oidc_token(token)
        from accounts.services import external_identity_resolve

        user = external_identity_resolve(issuer=claims["iss"], subject=claims["sub"], claims=claims)
        if not user.is_active:
            raise ApiError(401, "User inactive")
        return user, claims

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
