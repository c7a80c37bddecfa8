"""Integration partners and their credentials (staff side: admin and `create_integration_partner`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.conf import settings
from django.db import transaction

from audit.services import audit_event_record
from core.apikeys import generate_api_key, generate_secret
from core.net import parse_networks
from core.time import utc_now
from integration.models import IntegrationPartner, PartnerCredential, Therapist
from integration.services.auth import API_KEY_PREFIX, SECRET_PREFIX, key_digest


class PartnerInvalid(ValueError):
    """Bad input for a partner write; the message is for staff."""


@dataclass(frozen=True)
class IssuedCredential:
    """A new credential and its API key + secret: show both once, never store or log them."""

    credential: PartnerCredential
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)


def _audit(action: str, partner: IntegrationPartner, *, actor_type: str, actor_id: str, **metadata) -> None:
    audit_event_record(
        action=action,
        actor_type=actor_type,
        actor_id=str(actor_id),
        subject_type="integration_partner",
        subject_id=str(partner.pk),
        metadata={"partner": partner.name, **metadata},
    )


def normalize_allowed_ips(cidrs) -> list[str]:
    """Canonical CIDR strings; PartnerInvalid names the first bad entry."""
    try:
        return [str(network) for network in parse_networks(cidrs or [])]
    except ValueError as exc:
        raise PartnerInvalid(str(exc)) from None


@transaction.atomic
def partner_create(
    *,
    name: str,
    therapists: list[Therapist] = (),
    baa_signed_at: date | None = None,
    baa_signer: str = "",
    allowed_ips: list[str] = (),
    rate_limit_per_minute: int | None = None,
    actor_type: str,
    actor_id: str,
) -> IntegrationPartner:
    name = (name or "").strip()
    if not name:
        raise PartnerInvalid("A partner needs a name.")
    if IntegrationPartner.objects.filter(name=name).exists():
        raise PartnerInvalid(f"A partner named {name!r} already exists.")
    if rate_limit_per_minute is not None and not (1 <= int(rate_limit_per_minute) <= 100_000):
        raise PartnerInvalid("The rate limit must be between 1 and 100000 requests per minute.")
    partner = IntegrationPartner.objects.create(
        name=name,
        baa_signed_at=baa_signed_at,
        baa_signer=baa_signer,
        allowed_ips=normalize_allowed_ips(allowed_ips),
        rate_limit_per_minute=rate_limit_per_minute,
    )
    partner.therapists.set(therapists)
    _audit(
        "integration.partner_created",
        partner,
        actor_type=actor_type,
        actor_id=actor_id,
        therapists=[str(t.pk) for t in therapists],
        baa_on_file=baa_signed_at is not None,
        allowed_ips=partner.allowed_ips,
        rate_limit_per_minute=rate_limit_per_minute,
    )
    return partner


@transaction.atomic
def partner_credential_create(*, partner: IntegrationPartner, actor_type: str, actor_id: str) -> IssuedCredential:
    """A new API key (`lr_int_...`) and secret (`sk_live_...`) for the partner."""
    key = generate_api_key(API_KEY_PREFIX)
    secret = generate_secret(SECRET_PREFIX)
    credential = PartnerCredential.objects.create(
        partner=partner,
        key_id=key.key_id,
        key_digest=key_digest(key.full_key),
        key_hint=f"{API_KEY_PREFIX}_{key.key_id}…",
        secret_hash=secret.secret_hash,
    )
    _audit("integration.credential_created", partner, actor_type=actor_type, actor_id=actor_id, key_id=key.key_id)
    return IssuedCredential(credential=credential, api_key=key.full_key, api_secret=secret.secret)


@transaction.atomic
def partner_credential_rotate_secret(
    *, credential: PartnerCredential, overlap: timedelta | None = None, actor_type: str, actor_id: str
) -> str:
    """A new secret for the same API key, returned once. The old secret keeps working for `overlap`
    (default LOVERESCUE_SECRET_OVERLAP_HOURS) so the partner can deploy the new one without downtime."""
    credential = PartnerCredential.objects.select_for_update().get(pk=credential.pk)
    if overlap is None:
        overlap = timedelta(hours=settings.LOVERESCUE_SECRET_OVERLAP_HOURS)
    now = utc_now()
    secret = generate_secret(SECRET_PREFIX)
    credential.previous_secret_hash = credential.secret_hash if overlap > timedelta(0) else ""
    credential.previous_secret_expires_at = now + overlap if overlap > timedelta(0) else None
    credential.secret_hash = secret.secret_hash
    credential.secret_rotated_at = now
    credential.save(
        update_fields=["previous_secret_hash", "previous_secret_expires_at", "secret_hash", "secret_rotated_at"]
    )
    _audit(
        "integration.credential_secret_rotated",
        credential.partner,
        actor_type=actor_type,
        actor_id=actor_id,
        key_id=credential.key_id,
        overlap_seconds=int(overlap.total_seconds()),
    )
    return secret.secret
