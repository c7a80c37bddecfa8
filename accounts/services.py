"""Writes on accounts, each with its audit event in the same transaction."""

from __future__ import annotations

import hashlib
import re

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import ExternalIdentity, Membership, Organization, User
from audit.services import audit_event_record
from core.actors import Actor
from core.domain import Invalid


class AccountInvalid(Invalid):
    """Bad input for an accounts write; the message is for staff."""


_CLERK_ID = re.compile(r"^org_[A-Za-z0-9]{1,64}$")  # the form Organization.clerk_organization_id validates


@transaction.atomic
def external_identity_resolve(*, issuer: str, subject: str, claims: dict) -> User:
    """The platform user behind an external OIDC subject, provisioned on first sight."""
    identity = ExternalIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    if identity is not None:
        return identity.user
    digest = hashlib.sha256(f"{issuer}|{subject}".encode()).hexdigest()[:24]
    try:
        with transaction.atomic():
            user = User.objects.create(username=f"oidc_{digest}", email=claims.get("email", "") or "")
            user.set_unusable_password()
            user.save(update_fields=["password"])
            ExternalIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    except IntegrityError:
        # A concurrent first request provisioned it: use that one.
        return ExternalIdentity.objects.select_related("user").get(issuer=issuer, subject=subject).user
    audit_event_record(
        action="accounts.external_identity_provisioned",
        actor=Actor.system("oidc"),
        subject_type="user",
        subject_id=str(user.pk),
        metadata={"issuer": issuer},
    )
    return user


def _clerk_id(value: str | None, organization: Organization | None = None) -> str | None:
    clerk_id = (value or "").strip() or None
    if clerk_id is None:
        return None
    try:  # the model's own validator: one definition of the id's form
        Organization._meta.get_field("clerk_organization_id").run_validators(clerk_id)
    except ValidationError as exc:
        raise AccountInvalid(" ".join(exc.messages)) from None
    taken = Organization.objects.filter(clerk_organization_id=clerk_id)
    if organization is not None:
        taken = taken.exclude(pk=organization.pk)
    if taken.exists():
        raise AccountInvalid("Another organization is linked to this Clerk organization id.")
    return clerk_id


def _organization_name(value: str) -> str:
    name = (value or "").strip()
    if not name:
        raise AccountInvalid("An organization needs a name.")
    return name


@transaction.atomic
def organization_create(
    *, name: str, clerk_organization_id: str | None = None, is_active: bool = True, actor: Actor
) -> Organization:
    organization = Organization.objects.create(
        name=_organization_name(name), clerk_organization_id=_clerk_id(clerk_organization_id), is_active=is_active
    )
    metadata = {}
    if organization.clerk_organization_id or not organization.is_active:
        metadata = {"clerk_organization_id": organization.clerk_organization_id, "is_active": organization.is_active}
    audit_event_record(
        action="accounts.organization_created",
        actor=actor,
        organization_id=organization.public_id,
        subject_type="organization",
        subject_id=organization.public_id,
        metadata=metadata,
    )
    return organization


@transaction.atomic
def organization_update(
    *, organization: Organization, name: str, clerk_organization_id: str | None, is_active: bool, actor: Actor
) -> Organization:
    """Replace the editable fields. The Clerk id decides which Clerk organization signs in as this one and
    `is_active` whether anyone does: both are access-control changes, recorded with their new values.
    Nothing changed: nothing written."""
    current = Organization.objects.select_for_update().get(pk=organization.pk)
    wanted = {
        "name": _organization_name(name),
        "clerk_organization_id": _clerk_id(clerk_organization_id, current),
        "is_active": bool(is_active),
    }
    changed = [field for field, value in wanted.items() if getattr(current, field) != value]
    if not changed:
        return current
    for field in changed:
        setattr(current, field, wanted[field])
    current.save(update_fields=changed)
    metadata = {"changed": changed}
    metadata.update({field: wanted[field] for field in changed if field != "name"})
    audit_event_record(
        action="accounts.organization_updated",
        actor=actor,
        organization_id=current.public_id,
        subject_type="organization",
        subject_id=current.public_id,
        metadata=metadata,
    )
    return current


@transaction.atomic
def membership_set(*, user: User, organization: Organization, role: str, actor: Actor) -> Membership:
    membership, _ = Membership.objects.update_or_create(user=user, organization=organization, defaults={"role": role})
    audit_event_record(
        action="accounts.membership_set",
        actor=actor,
        organization_id=organization.public_id,
        subject_type="user",
        subject_id=str(user.pk),
        metadata={"role": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, user: User, organization: Organization, actor: Actor) -> bool:
    """The user loses their role in the organization. True when there was one."""
    membership = Membership.objects.select_for_update().filter(user=user, organization=organization).first()
    if membership is None:
        return False
    role = membership.role
    membership.delete()
    audit_event_record(
        action="accounts.membership_removed",
        actor=actor,
        organization_id=organization.public_id,
        subject_type="user",
        subject_id=str(user.pk),
        metadata={"role": role},
    )
    return True


@transaction.atomic
def membership_record_from_token(
    *, user: User, clerk_organization_id: str, role: str | None, clerk_role: str, actor: Actor
) -> Membership | None:
    """Record what a verified Clerk token says about the user in its active organization: the membership
    with `role` (our role mapped from `clerk_role`), or none when the Clerk role maps to nothing. Only an
    active organization linked to that Clerk id is touched; nothing changed, nothing written (this runs
    on every Clerk-authenticated request). Returns the membership, or None."""
    organization = None
    if _CLERK_ID.match(clerk_organization_id or ""):
        organization = Organization.objects.filter(clerk_organization_id=clerk_organization_id, is_active=True).first()
    if organization is None:
        return None
    memberships = Membership.objects.filter(user=user, organization=organization)
    current = memberships.first()
    if (current.role if current is not None else None) == role:
        return current  # the usual case: one read, no row lock
    current = memberships.select_for_update().first()  # about to change it: read again under the lock
    previous = current.role if current is not None else None
    if previous == role:
        return current
    metadata = {"role": role, "previous_role": previous, "clerk_role": clerk_role[:64], "source": "clerk_token"}
    if role is None:
        current.delete()
        action, membership = "accounts.membership_removed", None
    elif current is not None:
        current.role = role
        current.save(update_fields=["role"])
        action, membership = "accounts.membership_set", current
    else:
        try:
            with transaction.atomic():
                membership = Membership.objects.create(user=user, organization=organization, role=role)
        except IntegrityError:
            # A concurrent request of the same user recorded it first: bring it to this token's role.
            membership = Membership.objects.select_for_update().get(user=user, organization=organization)
            if membership.role == role:
                return membership
            metadata["previous_role"] = membership.role
            membership.role = role
            membership.save(update_fields=["role"])
        action = "accounts.membership_set"
    audit_event_record(
        action=action,
        actor=actor,
        organization_id=organization.public_id,
        subject_type="user",
        subject_id=str(user.pk),
        metadata=metadata,
    )
    return membership


# --- Users and groups (the admin) ------------------------------------------------------------------------

# What user_update may change. Passwords have their own service; login dates are the system's.
USER_FIELDS = ("username", "first_name", "last_name", "email", "is_active", "is_staff", "is_superuser")
# Changes recorded with their new value (who may sign in, and with which powers); the rest by name only.
ACCESS_FIELDS = ("is_active", "is_staff", "is_superuser")


def _audit_user(action: str, user: User, *, actor: Actor, **metadata) -> None:
    audit_event_record(action=action, actor=actor, subject_type="user", subject_id=str(user.pk), metadata=metadata)


def _username(value: str, user: User | None = None) -> str:
    username = (value or "").strip()
    if not username:
        raise AccountInvalid("A user needs a username.")
    taken = User.objects.filter(username=username)
    if user is not None:
        taken = taken.exclude(pk=user.pk)
    if taken.exists():
        raise AccountInvalid("A user with that username already exists.")
    return username


def _permission_names(permissions) -> list[str]:
    return sorted(f"{p.content_type.app_label}.{p.codename}" for p in permissions)


@transaction.atomic
def user_create(
    *,
    username: str,
    password: str | None,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    actor: Actor,
) -> User:
    """A platform user; `password` None makes password sign-in impossible (SSO only)."""
    user = User(username=_username(username), email=email or "", first_name=first_name, last_name=last_name)
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save()
    _audit_user("accounts.user_created", user, actor=actor, password_usable=password is not None)
    return user


@transaction.atomic
def user_update(*, user: User, actor: Actor, groups=None, user_permissions=None, **fields) -> User:
    """Change the given fields of USER_FIELDS and, when given, replace the groups / direct permissions.
    One audit event names what changed, with the new values of ACCESS_FIELDS, groups and permissions.
    Nothing changed: nothing written."""
    unknown = set(fields) - set(USER_FIELDS)
    if unknown:
        raise AccountInvalid(f"Not editable here: {', '.join(sorted(unknown))}")
    current = User.objects.select_for_update().get(pk=user.pk)
    if "username" in fields:
        fields["username"] = _username(fields["username"], current)
    changed = [name for name, value in fields.items() if getattr(current, name) != value]
    metadata: dict[str, object] = {}
    if changed:
        for name in changed:
            setattr(current, name, fields[name])
        current.save(update_fields=changed)
        metadata.update({name: fields[name] for name in changed if name in ACCESS_FIELDS})
    if groups is not None and {g.pk for g in groups} != set(current.groups.values_list("pk", flat=True)):
        current.groups.set(groups)
        changed.append("groups")
        metadata["groups"] = sorted(group.name for group in groups)
    if user_permissions is not None:
        wanted = list(user_permissions)
        if {p.pk for p in wanted} != set(current.user_permissions.values_list("pk", flat=True)):
            current.user_permissions.set(wanted)
            changed.append("user_permissions")
            metadata["user_permissions"] = _permission_names(wanted)
    if changed:
        _audit_user("accounts.user_updated", current, actor=actor, changed=changed, **metadata)
    return current


@transaction.atomic
def user_password_set(*, user: User, password: str | None, actor: Actor) -> User:
    """Set a new password (None: password sign-in disabled). Updates `user` itself, so the caller can keep
    its session valid when it is the staff user's own password."""
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save(update_fields=["password"])
    _audit_user("accounts.password_set", user, actor=actor, password_usable=password is not None)
    return user


def _group_name(value: str, group: Group | None = None) -> str:
    name = (value or "").strip()
    if not name:
        raise AccountInvalid("A group needs a name.")
    taken = Group.objects.filter(name=name)
    if group is not None:
        taken = taken.exclude(pk=group.pk)
    if taken.exists():
        raise AccountInvalid("A group with that name already exists.")
    return name


def _audit_group(action: str, group: Group, *, actor: Actor, **metadata) -> None:
    audit_event_record(action=action, actor=actor, subject_type="group", subject_id=str(group.pk), metadata=metadata)


@transaction.atomic
def group_create(*, name: str, permissions, actor: Actor) -> Group:
    group = Group.objects.create(name=_group_name(name))
    permissions = list(permissions)
    group.permissions.set(permissions)
    _audit_group(
        "accounts.group_created", group, actor=actor, name=group.name, permissions=_permission_names(permissions)
    )
    return group


@transaction.atomic
def group_update(*, group: Group, name: str, permissions, actor: Actor) -> Group:
    """Rename a group and/or replace its permissions (every member's access changes with them)."""
    current = Group.objects.select_for_update().get(pk=group.pk)
    changed: list[str] = []
    metadata: dict[str, object] = {}
    name = _group_name(name, current)
    if name != current.name:
        current.name = name
        current.save(update_fields=["name"])
        changed.append("name")
        metadata["name"] = name
    permissions = list(permissions)
    if {p.pk for p in permissions} != set(current.permissions.values_list("pk", flat=True)):
        current.permissions.set(permissions)
        changed.append("permissions")
        metadata["permissions"] = _permission_names(permissions)
    if changed:
        _audit_group("accounts.group_updated", current, actor=actor, changed=changed, **metadata)
    return current
