"""CareOS demo data for `manage.py seed_demo` (key "careos": platform, apiKey, publicKeyPem, phoneHashSalt).

DEMO ONLY. The API key and phone-hash salt below are public constants (like seed_demo's DEMO_PASSWORD),
shaped exactly like real ones so a partner's engineer can run the spec's curl and TypeScript locally;
seed_demo refuses to run in production. The key row stores the key as a real one is stored (a SHA-256
digest) and never expires.

What it makes, each only when missing (a second run creates and changes nothing, and prints the same):
- platform "businessos" (active), with DEMO_PHONE_HASH_SALT when the demo creates it (an existing
  platform keeps its own salt, which is printed);
- the demo live API key (re-enabled and re-pointed if it was revoked, expired or moved);
- CareOS's RSA key pair, only if no key can decrypt yet (no active pair, no CAREOS_PRIVATE_KEY): later
  runs reuse the current one. `publicKeyPem` is the public key partners encrypt to.
"""

from __future__ import annotations

from audit.services import audit_event_record
from core.actors import Actor
from core.apikeys import key_digest
from leads import crypto
from leads.models import PartnerPlatform, PlatformApiKey
from leads.services import platforms

# DEMO ONLY: public by design (this file is public), refused in production by seed_demo.
PLATFORM_SLUG = "businessos"
DEMO_KEY_ID = "demobusinos1"
DEMO_API_KEY = f"{PLATFORM_SLUG}_live_{DEMO_KEY_ID}_CareosDemoOnlyPublicKeyNeverUseInProd001"
DEMO_PHONE_HASH_SALT = "demo-only-public-phone-hash-salt-never-use-in-production"
ACTOR = Actor.system("seed_demo")


def seed(ctx) -> tuple[str, object]:
    """The "careos" key of seed_demo --json; creates what is missing (see the module docstring)."""
    platform = _platform(ctx)
    _api_key(ctx, platform)
    public_pem = crypto.current_public_pem()
    if public_pem is None:
        pair = platforms.keypair_create(actor=ACTOR)
        ctx.changed(f"created CareOS RSA-{pair.key_size} key pair {pair.fingerprint[:16]}")
        public_pem = pair.public_pem
    return "careos", {
        "platform": platform.slug,
        "apiKey": DEMO_API_KEY,
        "publicKeyPem": public_pem,
        "phoneHashSalt": platform.phone_hash_salt,
    }


def _platform(ctx) -> PartnerPlatform:
    platform = PartnerPlatform.objects.filter(slug=PLATFORM_SLUG).first()
    if platform is None:
        platform = platforms.platform_create(
            slug=PLATFORM_SLUG,
            name="BusinessOS (demo)",
            contact_name="BusinessOS demo",
            phone_hash_salt=DEMO_PHONE_HASH_SALT,
            actor=ACTOR,
        )
        ctx.changed(f"created CareOS partner platform {PLATFORM_SLUG}")
    elif not platform.is_active:
        platforms.platform_reactivate(platform=platform, actor=ACTOR)
        ctx.changed(f"reactivated CareOS partner platform {PLATFORM_SLUG}")
    return platform


def _api_key(ctx, platform: PartnerPlatform) -> PlatformApiKey:
    api_key = PlatformApiKey.objects.filter(key_id=DEMO_KEY_ID).first()
    if api_key is None:
        api_key = PlatformApiKey.objects.create(
            platform=platform,
            environment=PlatformApiKey.Environment.LIVE,
            key_id=DEMO_KEY_ID,
            key_digest=key_digest(DEMO_API_KEY),
            key_hint=f"{PLATFORM_SLUG}_live_{DEMO_KEY_ID}…",
            expires_at=None,
        )
        audit_event_record(
            action="leads.api_key_created",
            subject_type="leads.platform",
            subject_id=platform.slug,
            metadata={"key_id": DEMO_KEY_ID, "environment": "live", "expires_at": None, "demo": True},
            actor=ACTOR,
        )
        ctx.changed(f"created the demo API key of {PLATFORM_SLUG}")
        return api_key
    # Repair whatever would stop the printed key from working.
    wanted = {
        "platform_id": platform.pk,
        "environment": PlatformApiKey.Environment.LIVE,
        "key_digest": key_digest(DEMO_API_KEY),
        "revoked_at": None,
        "expires_at": None,
    }
    fields = [name for name, value in wanted.items() if getattr(api_key, name) != value]
    if fields:
        for name in fields:
            setattr(api_key, name, wanted[name])
        api_key.save(update_fields=[name.removesuffix("_id") for name in fields])
        audit_event_record(
            action="leads.api_key_reset",
            subject_type="leads.platform",
            subject_id=platform.slug,
            metadata={"key_id": DEMO_KEY_ID, "demo": True, "fields": sorted(fields)},
            actor=ACTOR,
        )
        ctx.changed(f"reset the demo API key of {PLATFORM_SLUG} ({', '.join(sorted(fields))})")
    return api_key
