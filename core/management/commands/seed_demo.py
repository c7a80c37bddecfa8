"""Demo data for a local run: `manage.py seed_demo [--json] [--force]`.

DEMO ONLY. The data carry public credentials (accounts/demo.py: DEMO_PASSWORD); the command refuses to run
under APP_ENV=production unless `--force` is given, and even then the accounts it creates must not stay.

The data come from the apps, not from core: each app registers its contributors in its AppConfig.ready()
(`core.registry.register(self, demo=[DemoContributor("<app>.demo.seed", order=...)])`). A contributor
is `def seed(ctx: SeedContext) -> tuple[str, object]`: it creates what is missing (idempotently, via the
app's services) and returns one key of the output and its JSON-serializable value. Contributors run by
ascending order, all inside one transaction: accounts' base data first (Demo Clinic, users `demo` and
`admin`: keys "platform", "admin", "docs"), then LoveRescue ("loverescue"), then CareOS ("careos").

`--json` prints exactly one JSON object on stdout (progress goes to stderr), one key per contributor.
A second run creates and changes nothing.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core import registry


class Command(BaseCommand):
    help = "Create idempotent demo data (DEMO ONLY: public credentials; refused in production without --force)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object on stdout, progress on stderr")
        parser.add_argument("--force", action="store_true", help="run even under APP_ENV=production (don't)")

    def handle(self, *args, **options):
        as_json = options["json"]
        if settings.APP_ENV == "production" and not options["force"]:
            raise CommandError(
                "seed_demo creates accounts with a public demo password: refused under APP_ENV=production "
                "(pass --force only for a throwaway environment)."
            )
        progress = self.stderr if as_json else self.stdout

        def log(message: str) -> None:
            progress.write(message)

        contributors = registry.demo_contributors()
        if not contributors:
            raise CommandError("seed_demo: no app registered demo data (core.registry)")
        with transaction.atomic():
            ctx = registry.SeedContext(log=log, base_url=f"http://localhost:{settings.PORT}")
            result: dict[str, object] = {}
            for contributor in contributors:
                key, value = contributor.resolve()(ctx)
                if key in result:
                    raise CommandError(f"seed_demo: two contributors return the key {key!r} ({contributor.label})")
                result[key] = value

        if not ctx.changes:
            log("demo data already present: nothing changed")
        if as_json:
            self.stdout.write(json.dumps(result, indent=2))
            return
        self.stdout.write("Demo data (DEMO ONLY: public credentials):")
        for key, value in result.items():
            self.stdout.write(f"  {key}: {json.dumps(value)}")
