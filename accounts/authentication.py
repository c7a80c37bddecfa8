"""Authentication classes shared by the APIs.

- PlatformJWTAuthentication: our own HS256 access tokens from `POST /api/v1/auth/token` (simplejwt).
- OIDCAuthentication: RS256 JWTs from an external OIDC provider (Clerk session tokens), verified against
  the provider's JWKS (fetched through core.outbound, cached, refetched on an unknown `kid`): issuer
  required, audience checked when OIDC_AUDIENCE is set, `azp` against OIDC_AUTHORIZED_PARTIES when set,
  exp/nbf/iat with OIDC_LEEWAY_SECONDS, `sub` required, a Clerk session that is not active (`sts`) refused.
  The token's active organization (v1 `org_id`/`org_role`, v2 `o.id`/`o.rol`) is recorded as the user's
  membership there (accounts.services.membership_record_from_token) and the claims become `request.auth`
  as core.scoping.OIDCClaims, which core.scoping reads (docs/identity.md). It only claims tokens whose
  header says RS256, so both classes can be listed together.

Both run inside core.ratelimit.failure_guard (core.api): a refused token counts as a failed attempt of the
client address, except a correctly signed token that has only expired (marked `genuine_credential`).
"""

from __future__ import annotations

import threading
import time

import jwt
from django.conf import settings
from rest_framework import authentication
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import ExpiredTokenError, InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from core.actors import Actor
from core.errors import ApiError
from core.outbound import OutboundError, guarded_request
from core.ratelimit import genuine_credential
from core.scoping import OIDCClaims, clerk_active_organization, clerk_role


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


# A JWKS is a few keys (Clerk's: one or two, ~1 KB): anything much larger is not one.
JWKS_MAX_BYTES = 64 * 1024
JWKS_TIMEOUT_SECONDS = 5.0
_SUBJECT_MAX_LENGTH = 255  # ExternalIdentity.subject holds 300


class GuardedJWKClient(jwt.PyJWKClient):
    """PyJWT's JWKS client (key-set cache, refetch on an unknown kid with a cooldown) fetching through the
    guarded outbound client: timeouts and an overall deadline, no redirects, a size cap, no proxies from the
    environment. The URL is the operator's (OIDC_JWKS_URL), so it is not treated as user-supplied."""

    def fetch_data(self):
        try:
            response = guarded_request(
                "GET",
                self.uri,
                headers={"Accept": "application/json"},
                timeout=self.timeout,
                max_bytes=JWKS_MAX_BYTES,
                user_supplied=False,
            )
        except OutboundError as exc:
            raise jwt.PyJWKClientConnectionError(f"JWKS fetch failed: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise jwt.PyJWKClientConnectionError(f"JWKS endpoint answered {response.status_code}")
        try:
            data = response.json()
        except ValueError as exc:
            raise jwt.PyJWKClientError("The JWKS endpoint did not return JSON") from exc
        if not isinstance(data, dict):
            raise jwt.PyJWKClientError("The JWKS endpoint did not return a JSON object")
        # PyJWT's own fetch_data starts the unknown-kid refetch cooldown here; get_jwk_set caches the set.
        self._last_successful_fetch = time.monotonic()
        return data


_jwks_clients: dict[tuple, jwt.PyJWKClient] = {}
_jwks_lock = threading.Lock()


def jwks_client(url: str) -> jwt.PyJWKClient:
    """One cached client per JWKS URL for the process: the key set is fetched once per cache period.
    Keys are looked up in that cached set only (no per-kid cache that would outlive it), so a key the
    provider withdraws stops verifying within OIDC_JWKS_CACHE_SECONDS."""
    cache_key = (url, settings.OIDC_JWKS_CACHE_SECONDS, settings.OIDC_JWKS_REFETCH_COOLDOWN_SECONDS)
    with _jwks_lock:
        client = _jwks_clients.get(cache_key)
        if client is None:
            client = GuardedJWKClient(
                url,
                cache_keys=False,
                cache_jwk_set=True,
                lifespan=settings.OIDC_JWKS_CACHE_SECONDS,
                # An unknown kid refetches the set (key rotation), at most once per cooldown, so
                # tokens with random kids cannot make us hammer the provider.
                cooldown_duration=settings.OIDC_JWKS_REFETCH_COOLDOWN_SECONDS,
                timeout=JWKS_TIMEOUT_SECONDS,
            )
            _jwks_clients[cache_key] = client
        return client


def _refused(message: str = "Invalid or expired token") -> ApiError:
    return ApiError(401, message, code="token_not_valid")


def verify_oidc_token(token: str) -> OIDCClaims:
    """Verified claims of an external RS256 JWT, or ApiError(401).

    RS256 only (the header is checked before any key is looked up, and PyJWT is given that one
    algorithm); the key is the JWKS key named by `kid`; `iss` must be OIDC_ISSUER; `aud` must include
    OIDC_AUDIENCE when that is set (Clerk session tokens carry no `aud`), and is not checked otherwise;
    when OIDC_AUTHORIZED_PARTIES is set, `azp` must be one of them (a token without `azp` is refused);
    `exp` and `iat` are required, `nbf` checked when present, each with OIDC_LEEWAY_SECONDS of clock skew;
    `sub` must be a non-empty string; a Clerk session status (`sts`) other than "active" is refused."""
    if not (settings.OIDC_JWKS_URL and settings.OIDC_ISSUER):
        raise ApiError(401, "External identity provider is not configured")
    audience = settings.OIDC_AUDIENCE or None
    try:
        if jwt.get_unverified_header(token).get("alg") != "RS256":
            raise _refused()
        signing_key = jwks_client(settings.OIDC_JWKS_URL).get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            signing_key.key,
            algorithms=["RS256"],
            issuer=settings.OIDC_ISSUER,
            audience=audience,
            options={"require": ["exp", "iat", "iss", "sub"], "verify_aud": audience is not None},
            leeway=settings.OIDC_LEEWAY_SECONDS,
        )
    except jwt.ExpiredSignatureError as exc:
        # PyJWT verifies the signature before the claims: the provider did sign this one.
        raise genuine_credential(ApiError(401, "Token expired", code="token_expired")) from exc
    except (jwt.PyJWKClientError, jwt.PyJWTError) as exc:
        raise _refused() from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > _SUBJECT_MAX_LENGTH:
        raise _refused()
    parties = settings.OIDC_AUTHORIZED_PARTIES
    if parties and claims.get("azp") not in parties:
        raise _refused("Token not issued for an authorized party")
    if claims.get("sts", "active") != "active":
        # Clerk's "pending" session (tasks such as choosing an organization left to do): Clerk's own SDKs
        # treat it as signed out by default.
        raise _refused("Session not active")
    return OIDCClaims(claims)


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
        record_token_membership(user, claims)
        return user, claims

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


def record_token_membership(user, claims) -> None:
    """Record the membership a verified token's active organization grants (created, changed or removed
    with an audit event; nothing written when it already says so). Access itself follows the token
    (core.scoping), not this record."""
    active = clerk_active_organization(claims)
    if active is None:
        return
    from accounts.services import membership_record_from_token

    clerk_organization_id, role_name = active
    membership_record_from_token(
        user=user,
        clerk_organization_id=clerk_organization_id,
        role=clerk_role(role_name),
        clerk_role=role_name,
        actor=Actor.system("oidc"),
    )
