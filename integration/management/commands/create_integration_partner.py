"""Create an integration partner and its first API key + secret, printed once.

    manage.py create_integration_partner "SuperTool" --therapist <uuid> [--therapist <uuid>...]
        [--baa-signed] [--baa-signer "Pat Partner"] [--allow-ip 203.0.113.0/24]... [--rate-limit 300] [--json]

Everything is checked before anything is written, and the partner and credential are created in one
transaction (both audited): on any error (unknown or inactive therapist, bad CIDR, duplicate name, bad
rate limit) nothing exists afterwards. The secret is stored only as a bcrypt hash: copy it from this
output, it cannot be shown again (rotate it from the admin if lost).
"""

from __future__ import annotations

import json
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core.actors import Actor
from core.time import utc_now
from integration.models import Therapist
from integration.services import partners

ACTOR = Actor.system("create_integration_partner")


class Command(BaseCommand):
    help = "Create a LoveRescue integration partner with an API key and secret (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="partner name (unique)")
        parser.add_argument(
            "--therapist", action="append", required=True, metavar="UUID", help="therapist it may act for (repeat)"
        )
        parser.add_argument("--baa-signed", action="store_true", help="a signed BAA is on file (dated today)")
        parser.add_argument("--baa-signer", default="", metavar="NAME", help="who signed the BAA")
        parser.add_argument(
            "--allow-ip", action="append", default=[], metavar="CIDR", help="IPv4/IPv6 network allowed (repeat)"
        )
        parser.add_argument("--rate-limit", metavar="N", help="requests per minute per API key (default 100)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        therapists = self._therapists(options["therapist"])
        try:
            rate_limit = partners.validate_rate_limit(options["rate_limit"])
            allowed_ips = partners.normalize_allowed_ips(options["allow_ip"])
            with transaction.atomic():
                partner = partners.partner_create(
                    name=options["name"],
                    therapists=therapists,
                    baa_signed_at=utc_now().date() if options["baa_signed"] else None,
                    baa_signer=options["baa_signer"],
                    allowed_ips=allowed_ips,
                    rate_limit_per_minute=rate_limit,
                    actor=ACTOR,
                )
                issued = partners.partner_credential_create(partner=partner, actor=ACTOR)
        except partners.PartnerInvalid as exc:
            raise CommandError(str(exc)) from None

        therapist_ids = [str(t.pk) for t in therapists]
        if options["json"]:
            body = {
                "partnerId": str(partner.pk),
                "apiKey": issued.api_key,
                "apiSecret": issued.api_secret,
                "therapists": therapist_ids,
            }
            self.stdout.write(json.dumps(body, indent=2))
            return
        self.stdout.write(f"Created integration partner {partner.name} ({partner.pk})")
        self.stdout.write(f"Therapists: {', '.join(therapist_ids)}")
        self.stdout.write(f"API key:    {issued.api_key}")
        self.stdout.write(f"API secret: {issued.api_secret}")
        self.stdout.write("Store both now: the secret is shown only once (rotate it from the admin if lost).")
        if not partner.has_baa:
            self.stderr.write(
                "warning: no signed BAA on file; authentication is refused (403 NOT_CONFIGURED) until one is "
                "recorded in the admin."
            )

    def _therapists(self, raw_ids: list[str]) -> list[Therapist]:
        ids = []
        for raw in raw_ids:
            try:
                ids.append(uuid.UUID(raw))
            except ValueError:
                raise CommandError(f"--therapist {raw!r} is not a UUID") from None
        found = {t.pk: t for t in Therapist.objects.filter(pk__in=ids)}
        result = []
        for therapist_id in dict.fromkeys(ids):
            therapist = found.get(therapist_id)
            if therapist is None:
                raise CommandError(f"Unknown therapist {therapist_id}")
            if not therapist.is_active:
                raise CommandError(f"Therapist {therapist_id} is inactive")
            result.append(therapist)
        return result
