"""Writes on accounts, each with its audit event in the same transaction."""

from __future__ import annotations

import hashlib

from django.db import IntegrityError, transaction

from accounts.models import ExternalIdentity, Membership, Organization, User
from audit.services import audit_event_record
from core.actors import Actor


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


@transaction.atomic
def organization_create(*, name: str, actor: Actor) -> Organization:
    organization = Organization.objects.create(name=name)
    audit_event_record(
        action="accounts.organization_created",
        actor=actor,
        organization_id=organization.public_id,
        subject_type="organization",
        subject_id=organization.public_id,
    )
    return organization


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
