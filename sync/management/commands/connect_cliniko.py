"""`manage.py connect_cliniko ORG_ID [--base-url URL]`: connect an organization to Cliniko.

The API key is read from standard input, never from the command line (argv is visible to every user of the
machine in `ps` and lands in shell history): `printf %s "$KEY" | manage.py connect_cliniko org_...`, or run
it in a terminal and paste the key at the hidden prompt. The key is stored encrypted (sync.services.
cliniko_connect), then one request checks it and the result is printed. Nothing prints the key.
"""

from __future__ import annotations

import getpass
import sys

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from core.actors import Actor
from core.domain import DomainError
from sync import services


class Command(BaseCommand):
    help = "Connect an organization to Cliniko. The API key is read from standard input (never an argument)."
    stealth_options = ("stdin",)  # call_command(..., stdin=io.StringIO(key)) in tests

    def add_arguments(self, parser):
        parser.add_argument("organization_id", help="The organization's id (org_...) or its Clerk organization id.")
        parser.add_argument(
            "--base-url",
            default="",
            help="Cliniko API base URL instead of the key's shard (self-hosted stand-ins, tests); must be https "
            "unless OUTBOUND_ALLOW_LOOPBACK is on.",
        )

    def _read_key(self) -> str:
        stream = self.stdin if getattr(self, "stdin", None) is not None else sys.stdin
        if stream.isatty():
            return getpass.getpass("Cliniko API key (input hidden): ")
        return stream.readline()

    def execute(self, *args, **options):
        self.stdin = options.pop("stdin", None)
        return super().execute(*args, **options)

    def handle(self, *args, organization_id: str, base_url: str, **options):
        organization = (
            Organization.objects.filter(public_id=organization_id).first()
            or Organization.objects.filter(clerk_organization_id=organization_id).first()
        )
        if organization is None:
            raise CommandError(f"No organization {organization_id!r}.")
        key = self._read_key().strip()
        if not key:
            raise CommandError(
                'No API key on standard input. Pipe it in (printf %s "$KEY" | manage.py connect_cliniko '
                f"{organization_id}) or run the command in a terminal to be prompted; it is never an argument."
            )
        try:
            connection = services.cliniko_connect(
                organization=organization, api_key=key, base_url=base_url, actor=Actor.system("connect_cliniko")
            )
        except DomainError as exc:
            field = (exc.details or {}).get("field", "") if isinstance(exc.details, dict) else ""
            raise CommandError(f"{exc.message}{f' ({field})' if field else ''}.") from None
        where = connection.base_url or f"shard {connection.shard}"
        self.stdout.write(f"Connected {organization.public_id} to Cliniko ({where}); the key is stored encrypted.")
        result = services.cliniko_test_connection(organization=organization, actor=Actor.system("connect_cliniko"))
        if result["ok"]:
            total = result.get("total_patients")
            self.stdout.write(
                self.style.SUCCESS(f"Connection test: OK ({total if total is not None else 'unknown'} patients).")
            )
        else:
            self.stdout.write(self.style.WARNING(f"Connection test failed: {result['code']}."))
            raise CommandError(
                "Cliniko did not accept the connection test; the key is saved (connect again to replace it)."
            )
