"""Integration tokens: the 1-hour JWTs a partner gets from `POST /api/integration/auth`.

HS256 with a key derived from SECRET_KEY for this one purpose (a platform token can never pass as an
integration token, nor the reverse: different key, issuer and audience). Claims: `sub` partner id,
`cid` credential id, `tid` therapist id, `iat`, `exp`, `jti`. Everything else (partner still active,
BAA, allowlist, therapist still assigned and active) is checked again on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt
from django.conf import settings

from core.time import utc_now

TOKEN_TTL_SECONDS = 3600  # spec: "JWT, 1-hour expiry"
ISSUER = "loverescue-integration"
AUDIENCE = "loverescue-partner-api"
ALGORITHM = "HS256"


def _signing_key() -> bytes:
    return hmac.new(settings.SECRET_KEY.encode(), b"loverescue-integration-token-v1", hashlib.sha256).digest()


@dataclass(frozen=True)
class TokenClaims:
    partner_id: uuid.UUID
    credential_id: int
    therapist_id: uuid.UUID


class TokenExpired(Exception):
    pass


class TokenInvalid(Exception):
    pass


def issue_token(*, partner_id, credential_id: int, therapist_id, now=None) -> str:
    now = now or utc_now()
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(partner_id),
        "cid": int(credential_id),
        "tid": str(therapist_id),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=TOKEN_TTL_SECONDS)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, _signing_key(), algorithm=ALGORITHM)


def decode_token(token: str) -> TokenClaims:
    """The claims of a valid token; TokenExpired or TokenInvalid otherwise (never another exception)."""
    try:
        claims = jwt.decode(
            token,
            _signing_key(),
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            audience=AUDIENCE,
            options={"require": ["exp", "iat", "sub", "cid", "tid", "iss", "aud"]},
        )
        return TokenClaims(
            partner_id=uuid.UUID(claims["sub"]),
            credential_id=int(claims["cid"]),
            therapist_id=uuid.UUID(claims["tid"]),
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired() from exc
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError) as exc:
        raise TokenInvalid() from exc
