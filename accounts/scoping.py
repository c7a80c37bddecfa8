"""The organization directory that core.scoping asks (settings.ORGANIZATION_DIRECTORY)."""

from __future__ import annotations

from django.db.models import Q

from accounts.models import Membership, Organization


class AccountsDirectory:
    def find(self, identifier: str) -> Organization | None:
        if not identifier or len(identifier) > 80:
            return None
        matches = list(
            Organization.objects.filter(Q(public_id=identifier) | Q(clerk_organization_id=identifier), is_active=True)[
                :2
            ]
        )
        # Our own public id wins should a Clerk id ever equal another organization's public id.
        matches.sort(key=lambda organization: organization.public_id != identifier)
        return matches[0] if matches else None

    def public_id(self, organization: Organization) -> str:
        return organization.public_id

    def clerk_id(self, organization: Organization) -> str:
        return organization.clerk_organization_id or ""

    def role(self, user, organization: Organization) -> str | None:
        return (
            Membership.objects.filter(user_id=user.pk, organization_id=organization.pk)
            .values_list("role", flat=True)
            .first()
        )

    def only_organization(self, user) -> tuple[Organization | None, int]:
        memberships = list(
            Membership.objects.filter(user_id=user.pk, organization__is_active=True).select_related("organization")[:2]
        )
        if len(memberships) == 1:
            return memberships[0].organization, 1
        return None, len(memberships)
