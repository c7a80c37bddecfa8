"""Partner platforms, their API keys and CareOS's RSA key pairs. Every write is audited in its transaction.

- Platforms: `platform_create`, `platform_update` (contact, payout settings), `platform_suspend` /
  `platform_reactivate` (a suspended platform's keys are refused at once; nothing is deleted).
- API keys `{slug}_{live|test}_{key_id}_{secret}`: `api_key_create` (shown once, stored as its SHA-256
  digest `core.apikeys.key_digest`; default expiry API_KEY_DEFAULT_DAYS = 90 days, the spec's rotation
  period), `api_key_revoke`, `find_api_key`. Several keys may be valid at once: rotation is "create the
  new key, let the partner switch, revoke (or let expire) the old one", without downtime.
- RSA pairs: `keypair_create` (the newest active pair is the public key handed out; older active pairs
  still decrypt), `keypair_retire` (refused for the last key that can decrypt; a pair that decrypted a
  lead within CAREOS_KEY_RETIRE_GUARD_DAYS needs its full fingerprint, else `KeyPairRetireRefused`),
  `keypair_handout_record` (a platform was given a pair's public key).

Every write takes the acting party as `actor` (a `core.actors.Actor`); refusals are `PlatformInvalid`
(a `core.domain.Invalid`), with a message for staff.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from audit.services import audit_event_record
from core.actors import Actor
from core.apikeys import constant_time_equals, generate_api_key, key_digest, parse_api_key
from core.domain import Invalid
from core.time import iso_utc, utc_now
from leads import crypto, selectors
from leads.models import CareosKeyPair, PartnerPlatform, PlatformApiKey

SLUG_RE = re.compile(r"[a-z][a-z0-9]{1,39}")
STRIPE_ACCOUNT_RE = re.compile(r"acct_[A-Za-z0-9]{1,90}")
API_KEY_DEFAULT_DAYS = 90  # spec: "API Keys: Rotate every 90 days"
API_KEY_MAX_DAYS = 3650


class PlatformInvalid(Invalid):
    """Bad input for a platform/key write; the message is for staff."""


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()


def default_api_key_expiry(now: datetime | None = None, days: int = API_KEY_DEFAULT_DAYS) -> datetime:
    return (now or utc_now()) + timedelta(days=days)


def parse_amount(value) -> Decimal:
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except (ArithmeticError, ValueError, TypeError):
        raise PlatformInvalid("The minimum payout must be an amount of 0 or more.") from None
    if not amount.is_finite() or amount < 0:
        raise PlatformInvalid("The minimum payout must be an amount of 0 or more.")
    return amount.quantize(Decimal("0.01"))


def validate_payout(minimum_payout: Decimal, payout_backend: str, stripe_account_id: str) -> None:
    if minimum_payout >= Decimal("1e10"):
        raise PlatformInvalid("The minimum payout is too large.")
    if payout_backend not in PartnerPlatform.PayoutBackend.values:
        raise PlatformInvalid("The payout backend must be 'manual' or 'stripe'.")
    if stripe_account_id and not STRIPE_ACCOUNT_RE.fullmatch(stripe_account_id):
        raise PlatformInvalid("The Stripe account id looks like acct_... (letters and digits).")
    if payout_backend == PartnerPlatform.PayoutBackend.STRIPE and not stripe_account_id:
        raise PlatformInvalid("Stripe payouts need the partner's connected account id (acct_...).")


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: PlatformApiKey
    full_key: str = field(repr=False)  # show once, never store or log


def _audit(action: str, *, subject_type: str, subject_id: str, actor: Actor, **metadata) -> None:
    audit_event_record(
        action=action,
        actor=actor,
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
    actor: Actor,
) -> PartnerPlatform:
    """A platform with a fresh phone-hash salt (32 random bytes, hex) unless one is agreed already."""
    if not isinstance(slug, str) or not SLUG_RE.fullmatch(slug):
        raise PlatformInvalid("The platform name must be 2-40 lowercase letters and digits, starting with a letter.")
    if PartnerPlatform.objects.filter(slug=slug).exists():
        raise PlatformInvalid(f"Platform {slug!r} already exists.")
    minimum_payout = parse_amount(minimum_payout)
    validate_payout(minimum_payout, payout_backend, stripe_account_id)
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
        actor=actor,
        payout_backend=payout_backend,
    )
    return platform


@transaction.atomic
def api_key_create(
    *, platform: PartnerPlatform, environment: str, expires_at: datetime | None = None, actor: Actor
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
        actor=actor,
        key_id=generated.key_id,
        environment=environment,
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    return IssuedApiKey(api_key=api_key, full_key=generated.full_key)


_ENVIRONMENTS = tuple(PlatformApiKey.Environment.values)  # Choices.values builds a new list on each read


def find_api_key(*, platform_slug: str, presented: str, now: datetime | None = None) -> PlatformApiKey | None:
    """The live (not revoked, not expired) key of an active platform `platform_slug` matching exactly
    `presented`, else None. One query. The key's own prefix must name the same platform."""
    if not isinstance(platform_slug, str) or not SLUG_RE.fullmatch(platform_slug) or not isinstance(presented, str):
        return None
    now = now or utc_now()
    for environment in _ENVIRONMENTS:
        parsed = parse_api_key(presented, f"{platform_slug}_{environment}")
        if parsed is None:
            continue
        api_key = selectors.unrevoked_api_key(key_id=parsed[0], environment=environment, platform_slug=platform_slug)
        if api_key is None or (api_key.expires_at is not None and api_key.expires_at <= now):
            return None
        return api_key if constant_time_equals(api_key.key_digest, key_digest(presented)) else None
    return None


def api_key_mark_used(*, api_key: PlatformApiKey, now: datetime, resolution: timedelta) -> None:
    """Refresh `last_used_at` (shown in the admin for rotation) at most once per `resolution`: no write on
    most requests. Bookkeeping, not an audited change (the access log records every request)."""
    if api_key.last_used_at is None or api_key.last_used_at < now - resolution:
        PlatformApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


@transaction.atomic
def keypair_create(*, key_size: int = crypto.DEFAULT_KEY_SIZE, actor: Actor) -> CareosKeyPair:
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
        actor=actor,
        key_size=key_size,
    )
    return pair


@transaction.atomic
def platform_update(
    *,
    platform: PartnerPlatform,
    actor: Actor,
    name=UNSET,
    contact_name=UNSET,
    contact_email=UNSET,
    minimum_payout=UNSET,
    payout_backend=UNSET,
    stripe_account_id=UNSET,
) -> PartnerPlatform:
    """Change a platform's name, contact or payout settings; only the arguments given change. The slug
    (the partner's X-Platform) and the phone-hash salt (agreed with the partner) are not editable here.
    One audit event names the changed fields (values only for non-personal ones). Returns the saved row."""
    current = PartnerPlatform.objects.select_for_update().get(pk=platform.pk)
    changed: dict[str, object] = {}

    def assign(field_name: str, value, shown: bool = True) -> None:
        if getattr(current, field_name) != value:
            setattr(current, field_name, value)
            changed[field_name] = value if shown else True

    if name is not UNSET:
        name = (name or "").strip()
        if not name or len(name) > 200:
            raise PlatformInvalid("A platform needs a name (at most 200 characters).")
        assign("name", name)
    if contact_name is not UNSET:
        assign("contact_name", (contact_name or "").strip()[:200], shown=False)
    if contact_email is not UNSET:
        assign("contact_email", (contact_email or "").strip() or None, shown=False)
    if minimum_payout is not UNSET:
        assign("minimum_payout", parse_amount(minimum_payout))
    if payout_backend is not UNSET:
        assign("payout_backend", payout_backend)
    if stripe_account_id is not UNSET:
        assign("stripe_account_id", (stripe_account_id or "").strip())
    validate_payout(current.minimum_payout, current.payout_backend, current.stripe_account_id)
    if changed:
        current.save(update_fields=[*changed, "updated_at"])
        if "minimum_payout" in changed:
            changed["minimum_payout"] = str(current.minimum_payout)
        _audit(
            "leads.platform_updated",
            subject_type="leads.platform",
            subject_id=current.slug,
            actor=actor,
            changed=sorted(changed),
            **{key: value for key, value in changed.items() if value is not True},
        )
    return current


def _set_status(platform: PartnerPlatform, status: str, action: str, actor: Actor) -> bool:
    current = PartnerPlatform.objects.select_for_update().get(pk=platform.pk)
    if current.status == status:
        return False
    current.status = status
    current.save(update_fields=["status", "updated_at"])
    platform.status = status
    _audit(action, subject_type="leads.platform", subject_id=current.slug, actor=actor)
    return True


@transaction.atomic
def platform_suspend(*, platform: PartnerPlatform, actor: Actor) -> bool:
    """Refuse the platform's keys from its next request on (401, like an unknown key). Its leads and
    payments stay. False when it was already suspended."""
    return _set_status(platform, PartnerPlatform.Status.SUSPENDED, "leads.platform_suspended", actor)


@transaction.atomic
def platform_reactivate(*, platform: PartnerPlatform, actor: Actor) -> bool:
    """Accept the platform's (unrevoked, unexpired) keys again. False when it was already active."""
    return _set_status(platform, PartnerPlatform.Status.ACTIVE, "leads.platform_reactivated", actor)


@transaction.atomic
def api_key_revoke(*, api_key: PlatformApiKey, actor: Actor, now: datetime | None = None) -> bool:
    """Stop accepting a key from now on (irreversible: issue a new key instead). False if already revoked."""
    current = PlatformApiKey.objects.select_for_update().select_related("platform").get(pk=api_key.pk)
    if current.revoked_at is not None:
        return False
    current.revoked_at = now or utc_now()
    current.save(update_fields=["revoked_at"])
    api_key.revoked_at = current.revoked_at
    _audit(
        "leads.api_key_revoked",
        subject_type="leads.platform",
        subject_id=current.platform.slug,
        actor=actor,
        key_id=current.key_id,
        environment=current.environment,
    )
    return True


class KeyPairRetireRefused(PlatformInvalid):
    """Retiring this pair needs its full fingerprint typed: it decrypted a lead within
    CAREOS_KEY_RETIRE_GUARD_DAYS, so partners probably still encrypt to it."""

    def __init__(self, *, pair: CareosKeyPair, last_decrypted_at: datetime, guard_days: int):
        self.pair = pair
        self.last_decrypted_at = last_decrypted_at
        self.guard_days = guard_days
        super().__init__(
            f"Key pair {pair.fingerprint[:16]}… decrypted a lead at {iso_utc(last_decrypted_at)}, within the last "
            f"{guard_days} days: partners may still encrypt to it. Type its full fingerprint to retire it anyway."
        )


def keypair_retire_guard_since(now: datetime) -> datetime | None:
    """Retiring a pair that decrypted a lead after this time needs its fingerprint typed (None: no guard)."""
    days = settings.CAREOS_KEY_RETIRE_GUARD_DAYS
    return now - timedelta(days=days) if days > 0 else None


@transaction.atomic
def keypair_retire(
    *, pair: CareosKeyPair, actor: Actor, now: datetime | None = None, confirmed_fingerprint: str = ""
) -> bool:
    """Stop decrypting with `pair` (after the partners moved to a newer public key). Refused when it is
    the last key able to decrypt (no other active pair and no CAREOS_PRIVATE_KEY): every lead would fail;
    and, with `KeyPairRetireRefused`, when it decrypted a lead within CAREOS_KEY_RETIRE_GUARD_DAYS unless
    `confirmed_fingerprint` is its full fingerprint. False when it was already retired."""
    now = now or utc_now()
    # Lock every active pair: two staff retiring the last two pairs at once cannot both succeed.
    active = list(CareosKeyPair.objects.select_for_update().filter(retired_at__isnull=True).order_by("pk"))
    current = next((p for p in active if p.pk == pair.pk), None)
    if current is None:
        return False
    if len(active) == 1 and crypto.env_private_key() is None:
        raise PlatformInvalid(
            "This is the only key pair that can decrypt phones: create a new pair (and give partners its "
            "public key) before retiring it."
        )
    decrypts = selectors.keypair_decrypts(pair=current)
    last_decrypted_at = decrypts[0].at if decrypts else None
    guard_since = keypair_retire_guard_since(now)
    confirmed = (confirmed_fingerprint or "").strip().lower() == current.fingerprint
    recent = guard_since is not None and last_decrypted_at is not None and last_decrypted_at > guard_since
    if recent and not confirmed:
        raise KeyPairRetireRefused(
            pair=current, last_decrypted_at=last_decrypted_at, guard_days=settings.CAREOS_KEY_RETIRE_GUARD_DAYS
        )
    current.retired_at = now
    current.save(update_fields=["retired_at"])
    pair.retired_at = current.retired_at
    _audit(
        "leads.rsa_key_retired",
        subject_type="leads.rsa_key",
        subject_id=current.fingerprint,
        actor=actor,
        last_decrypted_at=iso_utc(last_decrypted_at) if last_decrypted_at else None,
        decrypted_for=[use.slug for use in decrypts],
        fingerprint_typed=confirmed,
    )
    return True


@transaction.atomic
def keypair_handout_record(*, pair: CareosKeyPair, platform: PartnerPlatform, actor: Actor) -> None:
    """Record that `platform` was given `pair`'s public key (the retire page lists who has it)."""
    _audit(
        selectors.KEYPAIR_GIVEN_ACTION,
        subject_type="leads.rsa_key",
        subject_id=pair.fingerprint,
        actor=actor,
        platform=platform.slug,
    )
