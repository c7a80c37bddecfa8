"""Demo data for a local run: `manage.py seed_demo [--json] [--force] [--credentials-file PATH]`.

DEMO ONLY. The data carry public credentials (accounts/demo.py: DEMO_PASSWORD); the command refuses to run
under APP_ENV=production unless `--force` is given, and even then the accounts it creates must not stay.

The data come from the apps, not from core: each app registers its contributors in its AppConfig.ready()
(`core.registry.register(self, demo=[DemoContributor("<app>.demo.seed", order=...)])`). A contributor
is `def seed(ctx: SeedContext) -> tuple[str, object]`: it creates what is missing (idempotently, via the
app's services) and returns one key of the output and its JSON-serializable value. Contributors run by
ascending order, all inside one transaction: accounts' base data first (Demo Clinic, users `demo` and
`admin`: keys "platform", "admin", "docs"), then LoveRescue ("loverescue"), then CareOS ("careos").

`--json` prints exactly one JSON object on stdout (progress goes to stderr), one key per contributor.
`--credentials-file PATH` also writes that object to PATH, readable by its owner only (mode 0600): `make run`
saves it in `.local/demo-credentials.json` and, instead of printing the credentials here where the workers'
start-up banners would scroll them away, prints them once everything is up (bin/announce-demo). Without
`--json` or a file, the summary on stdout lists them. A second run creates and changes nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core import registry


class Command(BaseCommand):
    help = "Create idempotent demo data (DEMO ONLY: public credentials; refused in production without --force)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object on stdout, progress on stderr")
        parser.add_argument("--force", action="store_true", help="run even under APP_ENV=production (don't)")
        parser.add_argument(
            "--credentials-file",
            type=Path,
            metavar="PATH",
            help="also write the JSON object to PATH (mode 0600), e.g. .local/demo-credentials.json",
        )

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
        credentials_file = options["credentials_file"]
        if credentials_file is not None:
            write_private_json(credentials_file, result)
        if as_json:
            self.stdout.write(json.dumps(result, indent=2))
        elif credentials_file is not None:
            self.stdout.write(
                f"Demo data ready (DEMO ONLY: public credentials), saved in {credentials_file.resolve()} (mode 0600)."
            )
        else:
            self.stdout.write("Demo data (DEMO ONLY: public credentials):")
            for key, value in result.items():
                self.stdout.write(f"  {key}: {json.dumps(value)}")


def write_private_json(path: Path, value: object) -> None:
    """Write `value` to `path` as JSON, readable by its owner only, whole or not at all (a reader never sees
    half a file: written beside it, then renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # the mode given to os.open applies only to a file it creates
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(value, file, indent=2)
        file.write("\n")
    os.replace(partial, path)
