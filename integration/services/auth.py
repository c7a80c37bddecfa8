"""The partner token exchange: API key + secret + therapist id -> 1-hour integration token."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from core.apikeys import constant_time_equals, key_digest, parse_api_key, verify_missing, verify_secret
from core.domain import AuthenticationFailed, NotFound, PermissionDenied
from core.net import ip_allowed
from core.time import utc_now
from integration import tokens
from integration.models import IntegrationPartner, PartnerCredential, Therapist

API_KEY_PREFIX = "lr_int"
SECRET_PREFIX = "sk_live"


# The spec's messages for the token exchange, and the codes of its error table (a fresh error per raise).
# Domain errors: the LoveRescue envelope gives them their status (401/403/404) and body.
def invalid_key() -> AuthenticationFailed:
    return AuthenticationFailed("Invalid API key", code="AUTH_FAILED")


def invalid_secret() -> AuthenticationFailed:
    return AuthenticationFailed("Invalid API secret", code="AUTH_FAILED")


def therapist_not_found() -> NotFound:
    return NotFound("Therapist not found or inactive", code="NOT_FOUND")


def ip_blocked() -> PermissionDenied:
    return PermissionDenied("Request from an IP address outside the partner's allowlist", code="IP_BLOCKED")


def not_configured() -> PermissionDenied:
    return PermissionDenied("Integration not configured: no signed BAA on file for this partner", code="NOT_CONFIGURED")


def partner_suspended() -> AuthenticationFailed:
    return AuthenticationFailed("Integration partner suspended", code="AUTH_FAILED")


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    partner: IntegrationPartner
    credential: PartnerCredential
    therapist: Therapist


def claimed_key_id(api_key: str) -> str | None:
    """The key id an API key names (whether or not it exists): the account its failures count against."""
    parsed = parse_api_key(api_key, API_KEY_PREFIX)
    return f"key:{parsed[0]}" if parsed else None


def find_credential(api_key: str) -> PartnerCredential | None:
    """The live credential of an active partner for this exact key, or None (one query)."""
    parsed = parse_api_key(api_key, API_KEY_PREFIX)
    if parsed is None:
        return None
    credential = (
        PartnerCredential.objects.select_related("partner").filter(key_id=parsed[0], revoked_at__isnull=True).first()
    )
    if credential is None or not constant_time_equals(credential.key_digest, key_digest(api_key)):
        return None
    return credential


def token_credential(*, credential_id: int, partner_id) -> PartnerCredential | None:
    """The live credential a token was issued with, with its partner, or None once revoked (one query)."""
    return (
        PartnerCredential.objects.select_related("partner")
        .filter(pk=credential_id, partner_id=partner_id, revoked_at__isnull=True)
        .first()
    )


def secret_matches(credential: PartnerCredential, api_secret: str, now) -> bool:
    if verify_secret(api_secret, credential.secret_hash):
        return True
    return bool(
        credential.previous_secret_hash
        and credential.previous_secret_expires_at
        and credential.previous_secret_expires_at > now
        and verify_secret(api_secret, credential.previous_secret_hash)
    )


def check_partner_access(partner: IntegrationPartner, ip: str) -> None:
    """What every request of a partner needs besides a credential: active, inside its allowlist, BAA."""
    if not partner.is_active:
        raise partner_suspended()
    if not ip_allowed(ip, partner.allowed_ips):
        raise ip_blocked()
    if not partner.has_baa:
        raise not_configured()


def acting_therapist(partner: IntegrationPartner, therapist_id) -> Therapist:
    """The active therapist `therapist_id` if this partner may act for them; else 404 (same answer for
    unknown, inactive and not-this-partner's, so ids cannot be probed)."""
    try:
        therapist_uuid = uuid.UUID(str(therapist_id))
    except (ValueError, TypeError, AttributeError):
        raise therapist_not_found() from None
    therapist = partner.therapists.filter(pk=therapist_uuid, is_active=True).first()
    if therapist is None:
        raise therapist_not_found()
    return therapist


@transaction.atomic
def partner_authenticate(
    *,
    api_key: str,
    api_secret: str,
    therapist_id,
    ip: str,
    on_identified: Callable[[IntegrationPartner], None] | None = None,
) -> IssuedToken:
    """Check the credentials and issue a token; raises a core.domain error with the spec's message and
    code (AuthenticationFailed 401, PermissionDenied 403, NotFound 404). An unknown key spends the same
    bcrypt time as a wrong secret. The allowlist is checked only once the secret is proven: a wrong secret
    looks the same from any address, so IP_BLOCKED never confirms that a key exists (issue 10, finding 7).
    `on_identified(partner)` runs once key and secret are proven, before the checks that may still refuse
    (allowlist, BAA, therapist): the access log names the partner on those refusals, never the caller."""
    now = utc_now()
    credential = find_credential(api_key)
    if credential is None:
        verify_missing(api_secret)
        raise invalid_key()
    partner = credential.partner
    if not partner.is_active:
        verify_missing(api_secret)
        raise invalid_key()  # spec: "API key not found or partner suspended"
    if not secret_matches(credential, api_secret, now):
        raise invalid_secret()
    if on_identified is not None:
        on_identified(partner)
    if not ip_allowed(ip, partner.allowed_ips):
        raise ip_blocked()
    if not partner.has_baa:
        raise not_configured()
    therapist = acting_therapist(partner, therapist_id)
    PartnerCredential.objects.filter(pk=credential.pk).update(last_used_at=now)
    token = tokens.issue_token(partner_id=partner.pk, credential_id=credential.pk, therapist_id=therapist.pk, now=now)
    return IssuedToken(token, tokens.TOKEN_TTL_SECONDS, partner, credential, therapist)
