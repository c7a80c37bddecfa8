"""Organization scoping and role permissions, for every organization-scoped API (Mark, Routiq, the
therapist dashboard).

A request names its organization in the path (`/api/v1/patients/<org_id:organization_id>/...`), in the
`X-Organization-ID` header, or not at all (a caller with exactly one membership). An organization is
named by its public id (`org_...`) or, where it is linked to Clerk, by its Clerk organization id
(`org_2xw...`): both resolve to the same organization. The rules, the same for every route:

- a path and a header that name different organizations -> 400 naming the header;
- no organization named and the caller belongs to several -> 400 naming the header; to none -> 403;
- an organization that does not exist -> 404; one the caller does not belong to -> 403;
- a Clerk token whose active organization is not the one asked for -> 403;
- then the caller's role must be in the view's `read_roles` (safe methods) or `write_roles`.

A verified external (Clerk) token acts in its active organization only (docs/identity.md): with no
organization named, the request acts in the token's active organization; a token without an active
organization, or whose active organization is not linked to one of ours, reaches no organization (403);
the role is the token's Clerk role mapped to ours (`clerk_role`), not a stored membership, so a role
changed or revoked in Clerk takes effect with the next token.

core knows no models: the organizations and memberships come from the directory named by the setting
`ORGANIZATION_DIRECTORY` (accounts provides it), so core imports no other app.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from django.conf import settings
from django.db import models
from django.utils.module_loading import import_string
from rest_framework.permissions import SAFE_METHODS, BasePermission

from core.context import set_organization
from core.domain import Invalid, NotFound, PermissionDenied

ORGANIZATION_HEADER = "X-Organization-ID"
ORGANIZATION_URL_KWARG = "organization_id"


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    STAFF = "staff", "Staff"
    THERAPIST = "therapist", "Therapist"
    SUPERVISOR = "supervisor", "Supervisor"
    VIEWER = "viewer", "Viewer"


ALL_ROLES = frozenset(Role.values)
# The defaults of an organization-scoped view: everyone reads, the viewer does not write.
READ_ROLES = ALL_ROLES
WRITE_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.STAFF})
MANAGE_ROLES = frozenset({Role.OWNER, Role.ADMIN})

# Clerk's role keys -> ours. v1 tokens carry "org:admin"; v2 tokens carry "admin" in `o.rol`.
DEFAULT_CLERK_ROLE_MAP = {"org:admin": Role.ADMIN.value, "org:member": Role.STAFF.value}


def clerk_role(value: str | None) -> str | None:
    """Our role for a Clerk organization role, or None when it maps to nothing (no access)."""
    if not value:
        return None
    mapping = {**DEFAULT_CLERK_ROLE_MAP, **getattr(settings, "CLERK_ROLE_MAP", {})}
    key = value if value.startswith("org:") else f"org:{value}"
    role = mapping.get(key)
    return role if role in ALL_ROLES else None


def clerk_active_organization(claims: Any) -> tuple[str, str] | None:
    """(Clerk organization id, Clerk role) of a verified Clerk session token's active organization:
    `org_id`/`org_role` in v1 tokens, `o.id`/`o.rol` in v2 tokens; None without one."""
    if not isinstance(claims, dict):
        return None
    compact = claims.get("o")
    if isinstance(compact, dict) and compact.get("id"):
        return str(compact["id"]), str(compact.get("rol") or "")
    if claims.get("org_id"):
        return str(claims["org_id"]), str(claims.get("org_role") or "")
    return None


class OIDCClaims(dict):
    """The verified claims of an external OIDC (Clerk) token, as `request.auth`: the type says they came
    from the identity provider, so scoping applies the active-organization rules above to them."""


def token_active_organization(request) -> tuple[str, str] | None:
    """(Clerk organization id, Clerk role) of the request's token's active organization, or None."""
    return clerk_active_organization(getattr(request, "auth", None))


def _is_external_token(request) -> bool:
    return isinstance(getattr(request, "auth", None), OIDCClaims)


class OrganizationDirectory(Protocol):
    """What scoping needs to know about organizations (implemented by accounts)."""

    def find(self, identifier: str) -> Any | None:
        """The active organization with this public id or Clerk organization id."""

    def public_id(self, organization: Any) -> str: ...

    def clerk_id(self, organization: Any) -> str: ...

    def role(self, user: Any, organization: Any) -> str | None:
        """The user's role in the organization, or None for a non-member."""

    def only_organization(self, user: Any) -> tuple[Any | None, int]:
        """(the organization, 1) when the user belongs to exactly one; else (None, how many: 0 or 2)."""


@lru_cache(maxsize=4)
def _directory(path: str) -> OrganizationDirectory:
    return import_string(path)()


def directory() -> OrganizationDirectory:
    return _directory(settings.ORGANIZATION_DIRECTORY)


@dataclass(frozen=True)
class OrganizationScope:
    organization: Any
    public_id: str
    role: str

    def allows(self, roles) -> bool:
        return self.role in roles


def _find(identifier: str, source: str):
    # An identifier with NUL names no organization (and PostgreSQL text cannot hold one: it was a 500).
    organization = directory().find(identifier) if "\x00" not in identifier else None
    if organization is None:
        raise NotFound("Organization not found", details={source: identifier})
    return organization


def resolve_scope(request, path_identifier: str | None = None) -> OrganizationScope:
    """The organization this request acts in and the caller's role there, or a domain error."""
    found = directory()
    header = (request.headers.get(ORGANIZATION_HEADER) or "").strip()
    organization = _find(path_identifier, "path") if path_identifier else None
    if header:
        named = _find(header, "header")
        if organization is not None and found.public_id(named) != found.public_id(organization):
            raise Invalid(
                f"{ORGANIZATION_HEADER} names another organization than the path",
                details={"header": ORGANIZATION_HEADER},
            )
        organization = named
    user = request.user
    active = token_active_organization(request)
    if active is None and _is_external_token(request):
        raise PermissionDenied("The token has no active organization: choose one in the identity provider")
    if organization is None and active is not None:
        # No organization named: the token's active one (when it is linked to one of ours).
        organization = found.find(active[0]) if "\x00" not in active[0] else None
        if organization is None:
            raise PermissionDenied("The token's active organization is not linked to an organization here")
    if organization is None:
        organization, count = found.only_organization(user)
        if organization is None and count == 0:
            raise PermissionDenied("You belong to no organization")
        if organization is None:
            raise Invalid(
                f"You belong to several organizations: name one with the {ORGANIZATION_HEADER} header",
                details={"header": ORGANIZATION_HEADER},
            )
    if active is not None and active[0] not in (found.clerk_id(organization), found.public_id(organization)):
        raise PermissionDenied("The token's active organization is not this organization")
    if active is not None:
        # The identity provider's current word, not a stored membership (which records the last one seen).
        role = clerk_role(active[1])
        if role is None:
            raise PermissionDenied("Your role in the token's active organization grants no access here")
    else:
        role = found.role(user, organization)
    if role is None:
        raise PermissionDenied("You are not a member of this organization")
    return OrganizationScope(organization=organization, public_id=found.public_id(organization), role=role)


class OrganizationRolePermission(BasePermission):
    """DRF permission for organization-scoped views. Resolves the scope once (`request.organization_scope`,
    also noted for the access log), then checks the role: safe methods need one of the view's
    `read_roles`, others one of its `write_roles` (defaults READ_ROLES / WRITE_ROLES)."""

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        url_kwarg = getattr(view, "organization_url_kwarg", ORGANIZATION_URL_KWARG)
        scope = resolve_scope(request, (view.kwargs or {}).get(url_kwarg))
        request.organization_scope = scope
        set_organization(request, scope.public_id)
        if request.method in SAFE_METHODS:
            roles = getattr(view, "read_roles", READ_ROLES)
        else:
            roles = getattr(view, "write_roles", WRITE_ROLES)
        if not scope.allows(roles):
            raise PermissionDenied(f"The {scope.role} role may not do this")
        return True
