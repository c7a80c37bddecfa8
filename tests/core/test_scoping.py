"""core.scoping: organization resolution (public id or Clerk id, path vs header), roles, Clerk claims."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import resolve
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate

from accounts.models import Membership, Organization, User
from core.api import ApiView
from core.apis import MARK
from core.ids import PATH_CONVERTERS
from core.scoping import (
    ORGANIZATION_HEADER,
    OrganizationRolePermission,
    Role,
    clerk_active_organization,
    clerk_role,
)

pytestmark = pytest.mark.django_db
factory = APIRequestFactory()


class ScopedView(ApiView):
    api_family = MARK
    authentication_classes = []
    permission_classes = [OrganizationRolePermission]

    def get(self, request, organization_id=None):
        scope = request.organization_scope
        return Response({"organization": scope.public_id, "role": scope.role})

    def post(self, request, organization_id=None):
        return Response({"written": True}, status=201)


def call(user, method="get", *, header=None, path_org=None, claims=None):
    headers = {f"HTTP_{ORGANIZATION_HEADER.upper().replace('-', '_')}": header} if header else {}
    request = getattr(factory, method)("/api/v1/anything", **headers)
    force_authenticate(request, user=user, token=claims)
    kwargs = {"organization_id": path_org} if path_org else {}
    return ScopedView.as_view()(request, **kwargs)


@pytest.fixture
def clinic():
    return Organization.objects.create(name="Clinic", clerk_organization_id="org_2xwClerkClinic")


@pytest.fixture
def other():
    return Organization.objects.create(name="Other clinic")


def member(username: str, *pairs) -> User:
    user = User.objects.create(username=username)
    for organization, role in pairs:
        Membership.objects.create(user=user, organization=organization, role=role)
    return user


def test_single_membership_needs_no_header(clinic):
    response = call(member("a", (clinic, Role.STAFF)))
    assert response.status_code == 200
    assert response.data == {"organization": clinic.public_id, "role": "staff"}


def test_several_memberships_without_header_is_400_naming_the_header(clinic, other):
    response = call(member("a", (clinic, Role.STAFF), (other, Role.OWNER)))
    assert response.status_code == 400
    payload = json.loads(response.content)
    assert ORGANIZATION_HEADER in payload["error"]["message"]
    assert payload["error"]["details"] == {"header": ORGANIZATION_HEADER}


def test_no_membership_is_403(clinic):
    assert call(member("a")).status_code == 403


@pytest.mark.parametrize("use_clerk_id", [False, True])
def test_header_by_public_id_or_clerk_id_resolves_the_same_organization(clinic, other, use_clerk_id):
    user = member("a", (clinic, Role.VIEWER), (other, Role.OWNER))
    header = clinic.clerk_organization_id if use_clerk_id else clinic.public_id
    response = call(user, header=header)
    assert response.status_code == 200
    assert response.data == {"organization": clinic.public_id, "role": "viewer"}


def test_path_and_header_naming_the_same_organization_differently_agree(clinic):
    user = member("a", (clinic, Role.ADMIN))
    response = call(user, header=clinic.clerk_organization_id, path_org=clinic.public_id)
    assert response.status_code == 200


def test_path_and_header_that_disagree_are_400(clinic, other):
    user = member("a", (clinic, Role.ADMIN), (other, Role.ADMIN))
    response = call(user, header=other.public_id, path_org=clinic.public_id)
    assert response.status_code == 400
    assert b"names another organization" in response.content


def test_unknown_organization_is_404_and_foreign_one_403(clinic, other):
    user = member("a", (clinic, Role.OWNER))
    assert call(user, header="org_doesnotexist").status_code == 404
    assert call(user, path_org=other.public_id).status_code == 403


def test_inactive_organization_is_not_found(clinic):
    user = member("a", (clinic, Role.OWNER))
    Organization.objects.filter(pk=clinic.pk).update(is_active=False)
    assert call(user, header=clinic.public_id).status_code == 404


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [
        (Role.OWNER, 200, 201),
        (Role.ADMIN, 200, 201),
        (Role.STAFF, 200, 201),
        (Role.VIEWER, 200, 403),
        (Role.THERAPIST, 200, 403),
        (Role.SUPERVISOR, 200, 403),
    ],
)
def test_default_roles_everyone_reads_viewer_does_not_write(clinic, role, read, write):
    user = member("a", (clinic, role))
    assert call(user).status_code == read
    assert call(user, "post").status_code == write


def test_clerk_token_for_another_active_organization_is_403(clinic, other):
    user = member("a", (clinic, Role.ADMIN), (other, Role.ADMIN))
    claims = {"sub": "user_1", "org_id": "org_2somethingElse", "org_role": "org:admin"}
    assert call(user, header=clinic.public_id, claims=claims).status_code == 403
    matching = {"sub": "user_1", "o": {"id": clinic.clerk_organization_id, "rol": "admin"}}
    assert call(user, header=clinic.public_id, claims=matching).status_code == 200


def test_clerk_claims_v1_and_v2():
    assert clerk_active_organization({"org_id": "org_2a", "org_role": "org:admin"}) == ("org_2a", "org:admin")
    assert clerk_active_organization({"o": {"id": "org_2b", "rol": "member"}}) == ("org_2b", "member")
    assert clerk_active_organization({"sub": "user_1"}) is None
    assert clerk_active_organization("not claims") is None


def test_clerk_role_mapping_defaults_and_setting(settings):
    assert clerk_role("org:admin") == "admin"
    assert clerk_role("admin") == "admin"
    assert clerk_role("org:member") == "staff"
    assert clerk_role("member") == "staff"
    assert clerk_role("org:billing") is None
    settings.CLERK_ROLE_MAP = {"org:billing": "viewer", "org:member": "viewer", "org:evil": "superuser"}
    assert clerk_role("org:billing") == "viewer"
    assert clerk_role("org:member") == "viewer"
    assert clerk_role("org:evil") is None  # only our own roles can be granted


def test_path_converters_are_registered_and_typed():
    assert resolve("/api/leads/ingest")  # the URLconf (which registers them) loads
    from django.urls.converters import get_converters

    registered = get_converters()
    for name, converter in PATH_CONVERTERS.items():
        assert type(registered[name]) is converter
        prefix = name.removesuffix("_id")
        assert re.fullmatch(converter().regex, f"{prefix}_Ab3")
        assert not re.fullmatch(converter().regex, f"x{prefix}_Ab3")
    assert not re.fullmatch(PATH_CONVERTERS["pat_id"]().regex, "org_Ab3")
