"""Partner platforms, their API keys and CareOS's RSA key pairs."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import transaction

from audit.services import audit_event_record
from core.apikeys import constant_time_equals, generate_api_key, parse_api_key
from core.time import utc_now
from leads import crypto
from leads.models import CareosKeyPair, PartnerPlatform, PlatformApiKey

SLUG_RE = re.compile(r"[a-z][a-z0-9]{1,39}")


class PlatformInvalid(ValueError):
    """Bad input for a platform/key write; the message is for staff."""


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: PlatformApiKey
    full_key: str = field(repr=False)  # show once, never store or log


def key_digest(full_key: str) -> str:
    return hashlib.sha256(full_key.encode("utf-8")).hexdigest()


def _audit(action: str, *, subject_type: str, subject_id: str, actor_type: str, actor_id: str, **metadata) -> None:
    audit_event_record(
        action=action,
        actor_type=actor_type,
        actor_id=str(actor_id),
        subject_type=subject_type,
        subject_id=str(subject_id),
        metadata=metadata,
    )


@transaction.atomic
def platform_create(
    *,
    slug: str,
    name: str = "",
    contact_name: str = "",
    contact_email: str | None = None,
    minimum_payout: Decimal = Decimal("50.00"),
    payout_backend: str = PartnerPlatform.PayoutBackend.MANUAL,
    stripe_account_id: str = "",
    phone_hash_salt: str | None = None,
    actor_type: str,
    actor_id: str,
) -> PartnerPlatform:
    """A platform with a fresh phone-hash salt (32 random bytes, hex) unless one is agreed already."""
    if not isinstance(slug, str) or not SLUG_RE.fullmatch(slug):
        raise PlatformInvalid("The platform name must be 2-40 lowercase letters and digits, starting with a letter.")
    if PartnerPlatform.objects.filter(slug=slug).exists():
        raise PlatformInvalid(f"Platform {slug!r} already exists.")
    if minimum_payout < 0:
        raise PlatformInvalid("The minimum payout cannot be negative.")
    platform = PartnerPlatform.objects.create(
        slug=slug,
        name=name or slug,
        contact_name=contact_name,
        contact_email=contact_email or None,
        minimum_payout=minimum_payout,
        payout_backend=payout_backend,
        stripe_account_id=stripe_account_id,
        phone_hash_salt=phone_hash_salt or secrets.token_hex(32),
    )
    _audit(
        "leads.platform_created",
        subject_type="leads.platform",
        subject_id=platform.slug,
        actor_type=actor_type,
        actor_id=actor_id,
        payout_backend=payout_backend,
    )
    return platform


@transaction.atomic
def api_key_create(
    *, platform: PartnerPlatform, environment: str, expires_at: datetime | None = None, actor_type: str, actor_id: str
) -> IssuedApiKey:
    """A new key `{slug}_{environment}_{key_id}_{secret}`; older keys stay valid (rotation)."""
    if environment not in PlatformApiKey.Environment.values:
        raise PlatformInvalid("The environment must be 'live' or 'test'.")
    if expires_at is not None and expires_at <= utc_now():
        raise PlatformInvalid("The expiry must be in the future.")
    prefix = f"{platform.slug}_{environment}"
    generated = generate_api_key(prefix)
    api_key = PlatformApiKey.objects.create(
        platform=platform,
        environment=environment,
        key_id=generated.key_id,
        key_digest=key_digest(generated.full_key),
        key_hint=f"{prefix}_{generated.key_id}…",
        expires_at=expires_at,
    )
    _audit(
        "leads.api_key_created",
        subject_type="leads.platform",
        subject_id=platform.slug,
        actor_type=actor_type,
        actor_id=actor_id,
        key_id=generated.key_id,
        environment=environment,
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    return IssuedApiKey(api_key=api_key, full_key=generated.full_key)


def find_api_key(*, platform_slug: str, presented: str, now: datetime | None = None) -> PlatformApiKey | None:
    """The live (not revoked, not expired) key of an active platform `platform_slug` matching exactly
    `presented`, else None. One query. The key's own prefix must name the same platform."""
    if not isinstance(platform_slug, str) or not SLUG_RE.fullmatch(platform_slug) or not isinstance(presented, str):
        return None
    now = now or utc_now()
    for environment in PlatformApiKey.Environment.values:
        parsed = parse_api_key(presented, f"{platform_slug}_{environment}")
        if parsed is None:
            continue
        api_key = (
            PlatformApiKey.objects.select_related("platform")
            .filter(
                key_id=parsed[0],
                environment=environment,
                platform__slug=platform_slug,
                platform__status=PartnerPlatform.Status.ACTIVE,
                revoked_at__isnull=True,
            )
            .first()
        )
        if api_key is None or (api_key.expires_at is not None and api_key.expires_at <= now):
            return None
        return api_key if constant_time_equals(api_key.key_digest, key_digest(presented)) else None
    return None


@transaction.atomic
def keypair_create(*, key_size: int = crypto.DEFAULT_KEY_SIZE, actor_type: str, actor_id: str) -> CareosKeyPair:
    """A new RSA pair; it becomes the public key handed to partners. Older active pairs still decrypt."""
    generated = crypto.generate_pair(key_size)
    pair = CareosKeyPair.objects.create(
        fingerprint=generated.fingerprint,
        public_pem=generated.public_pem,
        private_pem=generated.private_pem,
        key_size=generated.key_size,
    )
    _audit(
        "leads.rsa_key_created",
        subject_type="leads.rsa_key",
        subject_id=pair.fingerprint,
        actor_type=actor_type,
        actor_id=actor_id,
        key_size=key_size,
    )
    return pair
