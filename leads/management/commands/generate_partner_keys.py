"""Keys for a partner platform: the Django version of the spec's `scripts/generate-partner-keys.ts`.

    manage.py generate_partner_keys businessos live [--json] [--expires-days 90] [--rotate-rsa]

In one transaction (on any error nothing is written):
- creates the platform if it does not exist (with a fresh PHONE_HASH_SALT, 32 random bytes in hex);
- creates a new API key `businessos_live_<key id>_<secret>`, printed once and stored only as a SHA-256
  digest. It expires after --expires-days (default 90, the spec's rotation period; 0 = never). Earlier
  keys stay valid until they expire or are revoked in the admin, so running the command again is a
  rotation without downtime;
- creates CareOS's RSA key pair (private key encrypted at rest) if none is active and CAREOS_PRIVATE_KEY
  is not set, or a new one with --rotate-rsa (older pairs keep decrypting until retired in the admin);
- records that the platform was given the current pair's public key (the admin's retire page lists it).

It prints what the partner needs: the API key, CareOS's current public key (PEM) and the platform's
phone-hash salt. `--json` prints one object: platform, environment, apiKey, expiresAt, publicKeyPem,
phoneHashSalt, createdPlatform, createdKeyPair.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core.actors import Actor
from core.time import iso_utc, utc_now
from leads import crypto, selectors
from leads.models import CareosKeyPair, PartnerPlatform, PlatformApiKey
from leads.services import platforms

ACTOR = Actor.system("generate_partner_keys")
RSA_SIZES = (2048, 3072, 4096)


class Command(BaseCommand):
    help = "Create a partner platform's API key (shown once) and, if needed, CareOS's RSA key pair."

    def add_arguments(self, parser):
        parser.add_argument("platform", help="the platform's name: its X-Platform header, e.g. businessos")
        parser.add_argument("environment", help="live or test")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--expires-days",
            type=int,
            default=platforms.API_KEY_DEFAULT_DAYS,
            metavar="N",
            help=f"the key expires after N days (default {platforms.API_KEY_DEFAULT_DAYS}; 0 = never)",
        )
        parser.add_argument(
            "--rotate-rsa",
            action="store_true",
            help="create a new RSA pair even if one is active (older ones still decrypt)",
        )
        parser.add_argument(
            "--rsa-bits", type=int, default=crypto.DEFAULT_KEY_SIZE, help=f"RSA key size for a new pair {RSA_SIZES}"
        )

    def handle(self, *args, **options):
        slug, environment = options["platform"], options["environment"]
        if not platforms.SLUG_RE.fullmatch(slug):
            raise CommandError(
                f"Invalid platform name {slug!r}: 2-40 lowercase letters and digits, starting with a letter."
            )
        if environment not in PlatformApiKey.Environment.values:
            raise CommandError(f"Invalid environment {environment!r}: live or test.")
        days = options["expires_days"]
        if not 0 <= days <= platforms.API_KEY_MAX_DAYS:
            raise CommandError(f"--expires-days must be between 0 (never) and {platforms.API_KEY_MAX_DAYS}.")
        if options["rsa_bits"] not in RSA_SIZES:
            raise CommandError(f"--rsa-bits must be one of {', '.join(map(str, RSA_SIZES))}.")

        now = utc_now()
        try:
            with transaction.atomic():
                platform = PartnerPlatform.objects.select_for_update().filter(slug=slug).first()
                created_platform = platform is None
                if platform is None:
                    platform = platforms.platform_create(slug=slug, actor=ACTOR)
                issued = platforms.api_key_create(
                    platform=platform,
                    environment=environment,
                    expires_at=platforms.default_api_key_expiry(now, days) if days else None,
                    actor=ACTOR,
                )
                has_pair = CareosKeyPair.objects.filter(retired_at__isnull=True).exists()
                created_pair = options["rotate_rsa"] or not (has_pair or crypto.env_private_key() is not None)
                if created_pair:
                    platforms.keypair_create(key_size=options["rsa_bits"], actor=ACTOR)
                public_key = crypto.current_public_pem()
                given = selectors.handed_out_keypair()  # None when the public key is CAREOS_PRIVATE_KEY's
                if given is not None:
                    platforms.keypair_handout_record(pair=given, platform=platform, actor=ACTOR)
        except platforms.PlatformInvalid as exc:
            raise CommandError(str(exc)) from None

        expires_at = issued.api_key.expires_at
        if options["json"]:
            body = {
                "platform": platform.slug,
                "environment": environment,
                "apiKey": issued.full_key,
                "expiresAt": iso_utc(expires_at) if expires_at else None,
                "publicKeyPem": public_key,
                "phoneHashSalt": platform.phone_hash_salt,
                "createdPlatform": created_platform,
                "createdKeyPair": created_pair,
            }
            self.stdout.write(json.dumps(body, indent=2))
        else:
            self._print(platform, environment, issued, public_key, created_platform, created_pair)
        if not platform.is_active:
            self.stderr.write(
                f"warning: platform {platform.slug} is suspended: its keys are refused until it is reactivated "
                "in the admin."
            )

    def _print(self, platform, environment, issued, public_key, created_platform, created_pair) -> None:
        write = self.stdout.write
        write(f"{'Created' if created_platform else 'Existing'} platform {platform.slug}")
        expires_at = issued.api_key.expires_at
        write(
            f"New {environment} API key (expires {iso_utc(expires_at) if expires_at else 'never'}; earlier keys "
            "stay valid until they expire or are revoked):"
        )
        write(f"  {issued.full_key}")
        write("Copy it now: it is stored hashed and cannot be shown again.")
        write("")
        if created_pair:
            write("Created a new CareOS RSA key pair (older active pairs still decrypt until retired).")
        write("Give the partner these values (partner .env):")
        write(f'  CAREOS_API_KEY="{issued.full_key}"')
        write(f'  PHONE_HASH_SALT="{platform.phone_hash_salt}"')
        write('  CAREOS_PUBLIC_KEY="' + (public_key or "").strip().replace("\n", "\\n") + '"')
        write("")
        write("CareOS public key (PEM):")
        write((public_key or "").strip())
