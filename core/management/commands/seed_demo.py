"""Demo data for a local run: `manage.py seed_demo [--json] [--force]`.

DEMO ONLY. The demo password below is public (it is in this file); the command refuses to run under
APP_ENV=production unless `--force` is given, and even then the accounts it creates must not stay.

What it makes, each only when missing (a second run creates and changes nothing):
- Organization "Demo Clinic" (accounts.services.organization_create);
- platform user `demo` / DEMO_PASSWORD, owner of Demo Clinic (accounts.services.membership_set). If its
  password was changed, it is reset so the printed credentials work;
- Django admin user `admin` / DEMO_PASSWORD (is_staff, is_superuser), created only if missing; an existing
  `admin` is never modified (a warning says its password may differ).

`--json` prints exactly one JSON object on stdout (progress goes to stderr), one key per contributor.

Adding an API's demo data: write a function `def seed(ctx: SeedContext) -> tuple[str, object]` (in your
app, e.g. `patients/demo.py`), which may create rows (idempotently, via your services) and returns the
key and JSON-serializable value to show; then add one line to CONTRIBUTORS below, e.g.
`"patients.demo.seed",`. Contributors run in order, inside one transaction, after the base data exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.module_loading import import_string

from accounts.models import Membership, Organization, User
from accounts.services import membership_set, organization_create
from audit.services import audit_event_record

DEMO_PASSWORD = "demo-password-123!"  # demo only: public by design, refused in production without --force
DEMO_ORGANIZATION_NAME = "Demo Clinic"
DEMO_USERNAME = "demo"
ADMIN_USERNAME = "admin"
SEED_ACTOR = "seed_demo"


@dataclass
class SeedContext:
    organization: Organization
    demo_user: User
    password: str
    log: Callable[[str], None]
    base_url: str
    changes: list[str] = field(default_factory=list)

    def changed(self, message: str) -> None:
        self.changes.append(message)
        self.log(message)


def _user_created(user: User) -> None:
    audit_event_record(
        action="accounts.user_created",
        actor_type="system",
        actor_id=SEED_ACTOR,
        subject_type="user",
        subject_id=str(user.pk),
        metadata={"source": SEED_ACTOR, "is_staff": user.is_staff},
    )


def seed_base(log: Callable[[str], None]) -> SeedContext:
    """Demo Clinic and its owner `demo`. Must run inside a transaction."""
    changes: list[str] = []

    def changed(message: str) -> None:
        changes.append(message)
        log(message)

    organization = Organization.objects.filter(name=DEMO_ORGANIZATION_NAME).order_by("pk").first()
    if organization is None:
        organization = organization_create(name=DEMO_ORGANIZATION_NAME, actor="system")
        changed(f"created organization {organization.name} ({organization.public_id})")

    user = User.objects.filter(username=DEMO_USERNAME).first()
    if user is None:
        user = User.objects.create_user(username=DEMO_USERNAME, password=DEMO_PASSWORD)
        _user_created(user)
        changed(f"created platform user {DEMO_USERNAME}")
    elif not user.is_active or not user.check_password(DEMO_PASSWORD):
        user.is_active = True
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["is_active", "password"])
        changed(f"reset platform user {DEMO_USERNAME} (inactive or password changed)")

    membership = Membership.objects.filter(user=user, organization=organization).first()
    if membership is None or membership.role != Membership.Role.OWNER:
        membership_set(user=user, organization=organization, role=Membership.Role.OWNER, actor="system")
        changed(f"made {DEMO_USERNAME} owner of {organization.name}")

    return SeedContext(
        organization=organization,
        demo_user=user,
        password=DEMO_PASSWORD,
        log=log,
        base_url=f"http://localhost:{settings.PORT}",
        changes=changes,
    )


# --- contributors: one per key of the --json output ------------------------------------------------


def platform(ctx: SeedContext) -> tuple[str, dict]:
    return "platform", {
        "baseUrl": ctx.base_url,
        "tokenUrl": "/api/v1/auth/token",
        "username": ctx.demo_user.username,
        "password": ctx.password,
        "organizationId": ctx.organization.public_id,
    }


def admin(ctx: SeedContext) -> tuple[str, dict]:
    user = User.objects.filter(username=ADMIN_USERNAME).first()
    if user is None:
        user = User.objects.create_superuser(username=ADMIN_USERNAME, email="", password=ctx.password)
        _user_created(user)
        ctx.changed(f"created admin user {ADMIN_USERNAME}")
    elif not (user.is_active and user.is_staff and user.check_password(ctx.password)):
        ctx.log(f"warning: admin user {ADMIN_USERNAME} exists and was left as is: the password shown may not apply")
    return "admin", {"url": "/admin/", "username": ADMIN_USERNAME, "password": ctx.password}


def docs(ctx: SeedContext) -> tuple[str, str]:
    return "docs", "/docs"


Contributor = Callable[[SeedContext], tuple[str, object]] | str  # a function or its dotted path

CONTRIBUTORS: list[Contributor] = [
    platform,
    admin,
    docs,
    "integration.demo.seed",
    "leads.demo.seed",
]


def _resolve(contributor: Contributor) -> Callable[[SeedContext], tuple[str, object]]:
    return import_string(contributor) if isinstance(contributor, str) else contributor


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

        with transaction.atomic():
            ctx = seed_base(log)
            result: dict[str, object] = {}
            for contributor in CONTRIBUTORS:
                key, value = _resolve(contributor)(ctx)
                if key in result:
                    raise CommandError(f"seed_demo: two contributors return the key {key!r}")
                result[key] = value

        if not ctx.changes:
            log("demo data already present: nothing changed")
        if as_json:
            self.stdout.write(json.dumps(result, indent=2))
            return
        self.stdout.write("Demo data (DEMO ONLY: public credentials):")
        for key, value in result.items():
            self.stdout.write(f"  {key}: {json.dumps(value)}")
