"""The base demo data for `manage.py seed_demo` (keys "platform", "admin", "docs"), registered by
accounts/apps.py ahead of every other app's (orders 100, 110, 120).

DEMO ONLY. The demo password below is public (it is in this file); seed_demo refuses to run under
APP_ENV=production unless `--force` is given, and even then the accounts it creates must not stay.

What it makes, each only when missing (a second run creates and changes nothing):
- Organization "Demo Clinic" (accounts.services.organization_create);
- platform user `demo` / DEMO_PASSWORD, owner of Demo Clinic (accounts.services.membership_set). If its
  password was changed, it is reset so the printed credentials work;
- Django admin user `admin` / DEMO_PASSWORD (is_staff, is_superuser), created only if missing; an existing
  `admin` is never modified (a warning says its password may differ).

`platform` runs first and provides `ctx.organization`, `ctx.demo_user` and `ctx.password` to the
contributors after it (LoveRescue's clients log in with the same demo password).
"""

from __future__ import annotations

from accounts.models import Membership, Organization, User
from accounts.services import membership_set, organization_create
from audit.services import audit_event_record
from core.actors import Actor
from core.registry import SeedContext

DEMO_PASSWORD = "demo-password-123!"  # demo only: public by design, refused in production without --force
DEMO_ORGANIZATION_NAME = "Demo Clinic"
DEMO_USERNAME = "demo"
ADMIN_USERNAME = "admin"
SEED_ACTOR = "seed_demo"


def _user_created(user: User) -> None:
    audit_event_record(
        action="accounts.user_created",
        actor=Actor.system(SEED_ACTOR),
        subject_type="user",
        subject_id=str(user.pk),
        metadata={"source": SEED_ACTOR, "is_staff": user.is_staff},
    )


def seed_base(ctx: SeedContext) -> None:
    """Demo Clinic and its owner `demo`, provided to later contributors. Runs inside seed_demo's transaction."""
    organization = Organization.objects.filter(name=DEMO_ORGANIZATION_NAME).order_by("pk").first()
    if organization is None:
        organization = organization_create(name=DEMO_ORGANIZATION_NAME, actor=Actor.system(SEED_ACTOR))
        ctx.changed(f"created organization {organization.name} ({organization.public_id})")

    user = User.objects.filter(username=DEMO_USERNAME).first()
    if user is None:
        user = User.objects.create_user(username=DEMO_USERNAME, password=DEMO_PASSWORD)
        _user_created(user)
        ctx.changed(f"created platform user {DEMO_USERNAME}")
    elif not user.is_active or not user.check_password(DEMO_PASSWORD):
        user.is_active = True
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["is_active", "password"])
        ctx.changed(f"reset platform user {DEMO_USERNAME} (inactive or password changed)")

    membership = Membership.objects.filter(user=user, organization=organization).first()
    if membership is None or membership.role != Membership.Role.OWNER:
        membership_set(user=user, organization=organization, role=Membership.Role.OWNER, actor=Actor.system(SEED_ACTOR))
        ctx.changed(f"made {DEMO_USERNAME} owner of {organization.name}")

    ctx.provide(organization=organization, demo_user=user, password=DEMO_PASSWORD)


# --- contributors: one per key of the --json output ------------------------------------------------


def platform(ctx: SeedContext) -> tuple[str, dict]:
    seed_base(ctx)
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
