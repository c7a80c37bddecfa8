"""The accounts admin: every access-control change (users, passwords, memberships, organizations, groups)
goes through accounts.services and is audited with the staff user as actor, in the change's transaction."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from accounts import services
from accounts.models import ExternalIdentity, Membership, Organization, User
from audit.models import AuditEvent
from core.actors import Actor

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-admin-password-42"
NEW_PASSWORD = "another-long-password-77"
SEED = Actor.system("tests")


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser(username="admin", email="a@example.com", password=PASSWORD)


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def clinic():
    return services.organization_create(name="Clinic", actor=SEED)


def memberships(*rows, initial=0):
    data = {
        "memberships-TOTAL_FORMS": str(len(rows)),
        "memberships-INITIAL_FORMS": str(initial),
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        data.update({f"memberships-{index}-{key}": value for key, value in row.items()})
    return data


def user_form(user, **overrides):
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else None,
        "is_staff": "on" if user.is_staff else None,
        "is_superuser": "on" if user.is_superuser else None,
        **memberships(),
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def events(action: str):
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def by_staff(event: AuditEvent, admin_user) -> bool:
    return (event.actor_type, event.actor_id) == ("user", str(admin_user.pk))


def audit_down(**kwargs):
    raise RuntimeError("audit unavailable")


# --- Users ----------------------------------------------------------------------------------------------


def test_creating_a_user_is_audited_as_the_staff_user(staff, admin_user):
    response = staff.post(
        reverse("admin:accounts_user_add"),
        {
            "username": "newbie",
            "usable_password": "true",
            "password1": PASSWORD,
            "password2": PASSWORD,
            **memberships(),
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    user = User.objects.get(username="newbie")
    assert user.check_password(PASSWORD)
    [event] = events("accounts.user_created")
    assert by_staff(event, admin_user) and event.subject_id == str(user.pk)
    assert event.metadata == {"password_usable": True}
    assert PASSWORD not in str(event.metadata)


def test_a_user_is_never_created_without_its_audit_event(staff, monkeypatch):
    monkeypatch.setattr(services, "audit_event_record", audit_down)
    with pytest.raises(RuntimeError, match="audit unavailable"):
        staff.post(
            reverse("admin:accounts_user_add"),
            {"username": "newbie", "usable_password": "false", **memberships()},
        )
    assert not User.objects.filter(username="newbie").exists()


def test_granting_staff_and_groups_records_the_new_access(staff, admin_user):
    user = User.objects.create_user("clerk", password=PASSWORD)
    group = services.group_create(name="Support", permissions=[], actor=SEED)
    permission = Permission.objects.get(codename="view_organization")
    url = reverse("admin:accounts_user_change", args=[user.pk])
    form = user_form(
        user, is_staff="on", first_name="Carl", groups=[str(group.pk)], user_permissions=[str(permission.pk)]
    )
    response = staff.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    user.refresh_from_db()
    assert user.is_staff and list(user.groups.all()) == [group]
    [event] = events("accounts.user_updated")
    assert by_staff(event, admin_user)
    assert event.metadata == {
        "changed": ["first_name", "is_staff", "groups", "user_permissions"],
        "is_staff": True,
        "groups": ["Support"],
        "user_permissions": ["accounts.view_organization"],
    }
    staff.post(url, form)  # the same again: nothing recorded
    assert len(events("accounts.user_updated")) == 1


def test_deactivating_a_user_rolls_back_when_the_audit_write_fails(staff, monkeypatch):
    user = User.objects.create_user("clerk", password=PASSWORD)
    monkeypatch.setattr(services, "audit_event_record", audit_down)
    with pytest.raises(RuntimeError, match="audit unavailable"):
        staff.post(reverse("admin:accounts_user_deactivate", args=[user.pk]), {"post": "yes"})
    user.refresh_from_db()
    assert user.is_active


def test_deactivating_users_asks_first_and_names_the_organizations_they_lose(staff, admin_user, clinic):
    user = User.objects.create_user("mark-api", password=PASSWORD)
    services.membership_set(user=user, organization=clinic, role="staff", actor=SEED)
    changelist = reverse("admin:accounts_user_changelist")
    ask = {"action": "deactivate_users", "_selected_action": [str(user.pk)]}
    page = staff.post(changelist, ask).content.decode()
    assert "Deactivate these users?" in page and f"{clinic.name} (staff)" in page
    user.refresh_from_db()
    assert user.is_active

    assert staff.post(changelist, {**ask, "post": "yes"}).status_code == 302
    user.refresh_from_db()
    assert not user.is_active
    [event] = events("accounts.user_updated")
    assert by_staff(event, admin_user) and event.metadata["is_active"] is False

    # The form's checkbox is gone (a stale post changes nothing); the page's button reactivates.
    change = reverse("admin:accounts_user_change", args=[user.pk])
    staff.post(change, user_form(user, is_active="on"))
    user.refresh_from_db()
    assert not user.is_active
    reactivate = reverse("admin:accounts_user_reactivate", args=[user.pk])
    assert reactivate in staff.get(change).content.decode()
    assert staff.post(reactivate, {"post": "yes"})["Location"] == change
    user.refresh_from_db()
    assert user.is_active


def test_staff_cannot_deactivate_themselves(staff, admin_user):
    staff.post(reverse("admin:accounts_user_deactivate", args=[admin_user.pk]), {"post": "yes"})
    admin_user.refresh_from_db()
    assert admin_user.is_active


def test_setting_a_password_goes_through_the_service(staff, admin_user):
    user = User.objects.create_user("clerk", password=PASSWORD)
    url = reverse("admin:auth_user_password_change", args=[user.pk])
    response = staff.post(url, {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302, response.content.decode()[:3000]
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    [event] = events("accounts.password_set")
    assert by_staff(event, admin_user) and event.metadata == {"password_usable": True}

    response = staff.post(url, {"usable_password": "false", "unset-password": "1"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert not user.has_usable_password()
    assert [e.metadata for e in events("accounts.password_set")][-1] == {"password_usable": False}


def test_the_own_password_keeps_the_session(staff, admin_user):
    url = reverse("admin:auth_user_password_change", args=[admin_user.pk])
    response = staff.post(url, {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert staff.get(reverse("admin:index")).status_code == 200


def test_a_password_is_not_changed_without_its_audit_event(staff, monkeypatch):
    user = User.objects.create_user("clerk", password=PASSWORD)
    monkeypatch.setattr(services, "audit_event_record", audit_down)
    with pytest.raises(RuntimeError, match="audit unavailable"):
        staff.post(
            reverse("admin:auth_user_password_change", args=[user.pk]),
            {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


# --- Memberships (inline on the user) ---------------------------------------------------------------------


def test_memberships_added_changed_and_removed_are_audited(staff, admin_user, clinic):
    other = services.organization_create(name="Other clinic", actor=SEED)
    user = User.objects.create_user("clerk", password=PASSWORD)
    url = reverse("admin:accounts_user_change", args=[user.pk])

    staff.post(url, user_form(user, **memberships({"organization": str(clinic.pk), "role": "viewer"})))
    membership = Membership.objects.get(user=user)
    assert (membership.organization, membership.role) == (clinic, "viewer")
    [added] = events("accounts.membership_set")
    assert by_staff(added, admin_user) and added.organization_id == clinic.public_id
    assert added.metadata == {"role": "viewer"}

    row = {"id": str(membership.pk), "user": str(user.pk), "organization": str(clinic.pk), "role": "admin"}
    staff.post(url, user_form(user, **memberships(row, initial=1)))
    assert Membership.objects.get(user=user).role == "admin"
    assert events("accounts.membership_set")[-1].metadata == {"role": "admin"}

    # A stored row's organization cannot be changed (that would be a removal without its confirmation).
    row = {**row, "organization": str(other.pk)}
    response = staff.post(url, user_form(user, **memberships(row, initial=1)))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(Membership.objects.filter(user=user).values_list("organization", "role")) == [(clinic.pk, "admin")]
    # Nor is a row removed by the form ("DELETE" is ignored): only through the "Remove" link.
    row = {**row, "organization": str(clinic.pk), "DELETE": "on"}
    staff.post(url, user_form(user, **memberships(row, initial=1)))
    assert Membership.objects.filter(user=user).exists() and not events("accounts.membership_removed")

    remove = reverse("admin:accounts_user_membership_remove", args=[user.pk, membership.pk])
    assert remove in staff.get(url).content.decode()
    page = staff.get(remove).content.decode()
    assert f"Remove clerk from {clinic.name}?" in page and "loses its admin role" in page
    assert Membership.objects.filter(user=user).exists()
    assert staff.post(remove, {"post": "yes"})["Location"] == url
    assert not Membership.objects.filter(user=user).exists()
    [removed] = events("accounts.membership_removed")
    assert removed.organization_id == clinic.public_id and removed.metadata == {"role": "admin"}
    assert by_staff(removed, admin_user)


def test_a_membership_is_not_set_without_its_audit_event(staff, clinic, monkeypatch):
    user = User.objects.create_user("clerk", password=PASSWORD)
    monkeypatch.setattr(services, "audit_event_record", audit_down)
    with pytest.raises(RuntimeError, match="audit unavailable"):
        staff.post(
            reverse("admin:accounts_user_change", args=[user.pk]),
            user_form(user, **memberships({"organization": str(clinic.pk), "role": "owner"})),
        )
    assert not Membership.objects.exists()


# --- Organizations and groups ------------------------------------------------------------------------------


def test_organizations_are_created_and_edited_through_the_services(staff, admin_user):
    response = staff.post(reverse("admin:accounts_organization_add"), {"name": "Harbour", "is_active": "on"})
    assert response.status_code == 302, response.content.decode()[:3000]
    organization = Organization.objects.get(name="Harbour")
    [created] = events("accounts.organization_created")
    assert by_staff(created, admin_user) and created.subject_id == organization.public_id

    url = reverse("admin:accounts_organization_change", args=[organization.pk])
    # No is_active in the post: the form no longer suspends (only the confirmed action does).
    response = staff.post(url, {"name": "Harbour", "clerk_organization_id": "org_2abc"})
    assert response.status_code == 302, response.content.decode()[:3000]
    organization.refresh_from_db()
    assert organization.clerk_organization_id == "org_2abc" and organization.is_active
    [updated] = events("accounts.organization_updated")
    assert by_staff(updated, admin_user)
    assert updated.metadata == {"changed": ["clerk_organization_id"], "clerk_organization_id": "org_2abc"}

    bad = staff.post(url, {"name": "Harbour", "clerk_organization_id": "nope"})
    assert bad.status_code == 200 and "org_2xw" in bad.content.decode()


def test_suspending_organizations_asks_first_and_names_the_members_who_lose_access(staff, admin_user, clinic):
    member = User.objects.create_user(username="dr-lee", password=PASSWORD)
    services.membership_set(user=member, organization=clinic, role="staff", actor=SEED)
    changelist = reverse("admin:accounts_organization_changelist")
    ask = {"action": "suspend_organizations", "_selected_action": [str(clinic.pk)]}

    page = staff.post(changelist, ask)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Suspend these organizations?" in text and "dr-lee (staff)" in text and clinic.public_id in text
    clinic.refresh_from_db()
    assert clinic.is_active and not events("accounts.organization_updated")

    done = staff.post(changelist, {**ask, "post": "yes"})
    assert done.status_code == 302
    clinic.refresh_from_db()
    assert not clinic.is_active
    [suspended] = events("accounts.organization_updated")
    assert by_staff(suspended, admin_user) and suspended.metadata["is_active"] is False


def test_an_organization_page_suspends_and_reactivates_through_confirmation_pages(staff, clinic):
    change = reverse("admin:accounts_organization_change", args=[clinic.pk])
    suspend = reverse("admin:accounts_organization_suspend", args=[clinic.pk])
    assert suspend in staff.get(change).content.decode()

    assert "Yes, suspend" in staff.get(suspend).content.decode()
    clinic.refresh_from_db()
    assert clinic.is_active
    assert staff.post(suspend, {"post": "yes"})["Location"] == change
    clinic.refresh_from_db()
    assert not clinic.is_active

    reactivate = reverse("admin:accounts_organization_reactivate", args=[clinic.pk])
    assert reactivate in staff.get(change).content.decode()
    assert staff.post(reactivate, {"post": "yes"})["Location"] == change
    clinic.refresh_from_db()
    assert clinic.is_active


def test_the_organization_form_cannot_suspend_by_unticking_active(staff, clinic):
    change = reverse("admin:accounts_organization_change", args=[clinic.pk])
    assert 'name="is_active"' not in staff.get(change).content.decode()
    staff.post(change, {"name": clinic.name, "is_active": ""})
    clinic.refresh_from_db()
    assert clinic.is_active


def test_removing_a_two_factor_device_asks_first(staff, admin_user):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=admin_user, name="Phone", confirmed=True)
    changelist = reverse("admin:otp_totp_totpdevice_changelist")
    ask = {"action": "remove_devices", "_selected_action": [str(device.pk)]}
    page = staff.post(changelist, ask)
    assert page.status_code == 200 and "must enrol a new one" in page.content.decode()
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert staff.post(changelist, {**ask, "post": "yes"}).status_code == 302
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()


def test_an_organization_is_not_created_without_its_audit_event(staff, monkeypatch):
    monkeypatch.setattr(services, "audit_event_record", audit_down)
    with pytest.raises(RuntimeError, match="audit unavailable"):
        staff.post(reverse("admin:accounts_organization_add"), {"name": "Harbour", "is_active": "on"})
    assert not Organization.objects.exists()


def test_group_permissions_are_audited(staff, admin_user):
    permission = Permission.objects.get(codename="view_organization")
    response = staff.post(reverse("admin:auth_group_add"), {"name": "Support", "permissions": [str(permission.pk)]})
    assert response.status_code == 302, response.content.decode()[:3000]
    group = Group.objects.get(name="Support")
    assert list(group.permissions.all()) == [permission]
    [created] = events("accounts.group_created")
    assert by_staff(created, admin_user)
    assert created.metadata == {"name": "Support", "permissions": ["accounts.view_organization"]}

    staff.post(reverse("admin:auth_group_change", args=[group.pk]), {"name": "Support", "permissions": []})
    assert not group.permissions.exists()
    [updated] = events("accounts.group_updated")
    assert updated.metadata == {"changed": ["permissions"], "permissions": []}


# --- Deletes and external identities -----------------------------------------------------------------------


def test_users_organizations_and_groups_are_not_deleted_and_identities_are_read_only(staff, admin_user, clinic):
    group = services.group_create(name="Support", permissions=[], actor=SEED)
    identity = ExternalIdentity.objects.create(user=admin_user, issuer="https://clerk.example", subject="user_1")
    for name, pk in (("accounts_user", admin_user.pk), ("accounts_organization", clinic.pk), ("auth_group", group.pk)):
        assert staff.get(reverse(f"admin:{name}_delete", args=[pk])).status_code == 403, name
        assert "delete_selected" not in staff.get(reverse(f"admin:{name}_changelist")).content.decode(), name
    assert staff.get(reverse("admin:accounts_externalidentity_add")).status_code == 403
    page = staff.get(reverse("admin:accounts_externalidentity_change", args=[identity.pk]))
    assert page.status_code == 200 and 'name="subject"' not in page.content.decode()
    assert staff.get(reverse("admin:accounts_externalidentity_delete", args=[identity.pk])).status_code == 403


# --- Every admin in the project ------------------------------------------------------------------------------

# Third-party admins left as they are, and why.
UNAUDITED_BY_DESIGN = {
    # Celery beat schedules are edited in the admin by design (docs/operations.md); they hold no
    # protected data and no access rights.
    "django_celery_beat",
}


def test_no_admin_writes_around_a_service(admin_user, rf):
    """A superuser may add or change a row only where the ModelAdmin saves through its own save_model
    (a service); inlines that write need the parent's own save_related; nothing is deleted, bulk-edited
    in the list, or deleted in bulk."""
    from django.contrib import admin as django_admin

    request = rf.get("/admin/")
    request.user = admin_user
    for model, model_admin in django_admin.site._registry.items():
        label = model._meta.label
        if model._meta.app_label in UNAUDITED_BY_DESIGN:
            continue
        assert not model_admin.has_delete_permission(request), f"{label} can be deleted in the admin"
        assert not model_admin.list_editable, f"{label} is edited in the list"
        assert "delete_selected" not in model_admin.get_actions(request), label
        writes = model_admin.has_add_permission(request) or model_admin.has_change_permission(request)
        if writes:
            assert type(model_admin).save_model is not django_admin.ModelAdmin.save_model, f"{label}: default save"
        inline_writes = any(
            inline.has_add_permission(request, None)
            or inline.has_change_permission(request)
            or inline.has_delete_permission(request)
            for inline in model_admin.get_inline_instances(request)
        )
        if inline_writes:
            assert type(model_admin).save_related is not django_admin.ModelAdmin.save_related, f"{label}: inlines"


def test_identity_and_device_lists_name_the_user_with_a_link(staff, admin_user):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    ExternalIdentity.objects.create(user=admin_user, issuer="https://clerk.example.com", subject="user_2abc")
    TOTPDevice.objects.create(user=admin_user, name="Phone", confirmed=True)
    user_url = reverse("admin:accounts_user_change", args=[admin_user.pk])
    for changelist in ("admin:accounts_externalidentity_changelist", "admin:otp_totp_totpdevice_changelist"):
        assert f'<a href="{user_url}">admin</a>' in staff.get(reverse(changelist)).content.decode()
