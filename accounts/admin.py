"""Accounts admin: who may sign in, with which powers, in which organization. Every write here is an
access-control change, so each goes through accounts.services with the staff user as actor and is audited
in the same transaction:

- users: created (user_create), edited (user_update: names, staff/superuser flags, groups, permissions),
  password set or disabled (user_password_set); login dates are read-only. Deactivated and reactivated by
  the actions (or the button on the user's page), a deactivation only after a confirmation page naming the
  organizations it loses; never deleted here (their client record, memberships and the audit trail would
  go with them): deactivate instead.
- memberships (inline on the user): added or their role changed (membership_set); removed
  (membership_remove) only through the row's "Remove" link and its confirmation page (the user loses that
  organization); a row's organization cannot be changed (remove it, add another);
- organizations: created (organization_create), edited (organization_update: name, Clerk id); suspended
  and reactivated by the actions (or the buttons on its page), a suspension only after a confirmation page
  that names the members who lose access; never deleted (memberships and the audit trail refer to them);
- groups: created and edited (group_create / group_update); never deleted here;
- external identities: read-only. They are provisioned by sign-in only (external_identity_resolve); an
  identity decides who signs in as a user, so nobody adds or re-points one by hand.
- two-factor devices (django-otp TOTP): read-only, never their key; "Remove" (accounts.two_factor,
  audited, after a confirmation page) for a lost phone. Staff enrol their own on the admin's "Two-factor" page.
- admin sign-in lockouts (django-axes failure counts): read-only; "Unlock" forgets a count (audited).

Related rows are named and linked with `core.admin.admin_link`: staff see "Demo Clinic", never an id or a UUID.
"""

from __future__ import annotations

from contextvars import ContextVar

from axes.models import AccessAttempt
from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services, staff_auth, two_factor
from accounts.models import ExternalIdentity, Membership, Organization, User
from core.actors import Actor
from core.admin import (
    ConfirmItem,
    ReadOnlyAdminMixin,
    admin_actor,
    admin_datetime,
    admin_link,
    adopt_saved,
    confirm_action,
)

MEMBERS_NAMED = 10  # a suspension's confirmation page names this many members of each organization


# The staff user changing a password: UserAdmin builds the password form itself (no request in reach),
# so the view hands the actor to the form's save through this context variable (per thread / task).
_password_actor: ContextVar[Actor | None] = ContextVar("accounts_password_actor", default=None)


class AuditedPasswordChangeForm(AdminPasswordChangeForm):
    def save(self, commit=True):
        actor = _password_actor.get()
        if actor is None:
            raise RuntimeError("AuditedPasswordChangeForm saves only inside PlatformUserAdmin.user_change_password")
        password = self.cleaned_data["password1"] if self.cleaned_data["set_usable_password"] else None
        return services.user_password_set(user=self.user, password=password, actor=actor)


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["organization", "role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:  # leaving an organization is a removal, with its confirmation
            self.fields["organization"].disabled = True


class MembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipForm
    extra = 0
    can_delete = False  # removal: the row's "Remove" link, through a confirmation page
    autocomplete_fields = ["organization"]
    fields = ["organization", "role", "created_at", "remove_link"]
    readonly_fields = ["created_at", "remove_link"]

    @admin.display(description="")
    def remove_link(self, obj: Membership) -> str:
        if obj is None or obj.pk is None:
            return ""
        url = reverse("admin:accounts_user_membership_remove", args=[obj.user_id, obj.pk])
        return format_html('<a href="{}">Remove</a>', url)


def _save_memberships(request, user: User, formset) -> None:
    """Each added or changed membership through its service (audited); the formset itself writes nothing.
    (Removals have their own confirmed view; the organization of a stored row is not editable.)"""
    actor = admin_actor(request)
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
    for form in formset.forms:
        if not form.has_changed():
            continue
        organization, role = form.cleaned_data["organization"], form.cleaned_data["role"]
        membership = services.membership_set(user=user, organization=organization, role=role, actor=actor)
        if form.instance.pk is not None:
            formset.changed_objects.append((membership, form.changed_data))
        else:
            formset.new_objects.append(membership)


@admin.register(User)
class PlatformUserAdmin(UserAdmin):
    inlines = [MembershipInline]
    change_password_form = AuditedPasswordChangeForm
    readonly_fields = ("last_login", "date_joined")
    actions = ["deactivate_users", "reactivate_users"]

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        # Deactivating cuts the user (often a clinic's API user) off: only through its confirmation page.
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, "is_active", "access") if obj is not None else fields

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return tuple(
            (name, {**options, "fields": tuple(
                field for item in options["fields"] for field in ((item, "access") if item == "is_active" else (item,))
            )})
            for name, options in fieldsets
        )  # fmt: skip

    @admin.display(description="Deactivate or reactivate")
    def access(self, obj: User) -> str:
        if obj is None or obj.pk is None:
            return "-"
        verb = "deactivate" if obj.is_active else "reactivate"
        url = reverse(f"admin:accounts_user_{verb}", args=[obj.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, verb.capitalize())

    def get_urls(self):
        return [
            path("<path:object_id>/deactivate/", self.admin_site.admin_view(self.deactivate_view),
                 name="accounts_user_deactivate"),
            path("<path:object_id>/reactivate/", self.admin_site.admin_view(self.reactivate_view),
                 name="accounts_user_reactivate"),
            path("<path:object_id>/memberships/<int:membership_id>/remove/",
                 self.admin_site.admin_view(self.membership_remove_view), name="accounts_user_membership_remove"),
            *super().get_urls(),
        ]  # fmt: skip

    def _one_user(self, request, object_id) -> User:
        if not self.has_change_permission(request):
            raise PermissionDenied
        return get_object_or_404(User, pk=object_id)

    def membership_remove_view(self, request, object_id, membership_id):
        user = self._one_user(request, object_id)
        membership = get_object_or_404(Membership.objects.select_related("organization"), pk=membership_id, user=user)
        back = reverse("admin:accounts_user_change", args=[user.pk])
        organization = membership.organization

        def perform():
            services.membership_remove(user=user, organization=organization, actor=admin_actor(request))
            self.message_user(request, f"{user.username} removed from {organization.name}.", messages.SUCCESS)
            return HttpResponseRedirect(back)

        item = ConfirmItem(
            f"{user.username} in {organization.name} ({membership.role})",
            (
                f"{user.username} loses its {membership.role} role in {organization.name}: its data is no longer "
                "reachable with this user's tokens, and a clinic system signing in as this user stops working.",
            ),
        )
        return confirm_action(
            self,
            request,
            [user],
            title="Remove from organization",
            question=f"Remove {user.username} from {organization.name}?",
            items=[item],
            confirm_label="Yes, remove",
            perform=perform,
            form_action=request.path,
            action="",
        )

    def deactivate_view(self, request, object_id):
        user = self._one_user(request, object_id)
        back = reverse("admin:accounts_user_change", args=[user.pk])
        return self._confirm_active(request, [user], active=False, form_action=request.path, done_url=back)

    def reactivate_view(self, request, object_id):
        user = self._one_user(request, object_id)
        back = reverse("admin:accounts_user_change", args=[user.pk])
        return self._confirm_active(request, [user], active=True, form_action=request.path, done_url=back)

    def _confirm_active(self, request, users, *, active: bool, form_action: str = "", done_url: str = ""):
        done = HttpResponseRedirect(done_url) if done_url else None
        if not active and any(user.pk == request.user.pk for user in users):
            self.message_user(request, "You cannot deactivate your own account.", messages.ERROR)
            return done
        users = [user for user in users if user.is_active != active]
        if not users:
            self.message_user(request, f"Those users are already {'active' if active else 'inactive'}.")
            return done
        memberships = {user.pk: [] for user in users}
        for membership in Membership.objects.filter(user__in=users).select_related("organization"):
            memberships[membership.user_id].append(f"{membership.organization.name} ({membership.role})")
        items = []
        for user in users:
            where = ", ".join(sorted(memberships[user.pk])) or "no organization"
            if active:
                consequences = (f"{user.username} can sign in again, with its roles in: {where}.",)
            else:
                consequences = (
                    f"{user.username} can no longer sign in (admin, token endpoints) nor get new tokens.",
                    f"Its access through these organizations stops: {where}. A clinic system signing in as this "
                    "user stops working.",
                    "Nothing is deleted: reactivating restores the same access.",
                )
            items.append(ConfirmItem(user.username, consequences))

        def perform():
            actor = admin_actor(request)
            for user in users:
                services.user_update(user=user, is_active=active, actor=actor)
            state = "reactivated" if active else "deactivated"
            names = ", ".join(user.username for user in users)
            self.message_user(request, f"{len(users)} user(s) {state}: {names}.", messages.SUCCESS)
            return done

        verb = "reactivate" if active else "deactivate"
        return confirm_action(
            self,
            request,
            users,
            title=f"{verb.capitalize()} users",
            question=f"{verb.capitalize()} these users?",
            items=items,
            confirm_label=f"Yes, {verb}",
            perform=perform,
            form_action=form_action,
            action="" if form_action else None,
        )

    @admin.action(description="Deactivate the selected users (they lose all access)", permissions=["change"])
    def deactivate_users(self, request, queryset):
        return self._confirm_active(request, list(queryset), active=False)

    @admin.action(description="Reactivate the selected users", permissions=["change"])
    def reactivate_users(self, request, queryset):
        return self._confirm_active(request, list(queryset), active=True)

    def user_change_password(self, request, id, form_url=""):
        token = _password_actor.set(admin_actor(request))
        try:
            return super().user_change_password(request, id, form_url)
        finally:
            _password_actor.reset(token)

    def save_form(self, request, form, change):
        # Not form.save(): it would hash the password and queue the group/permission writes itself.
        return form.instance

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        actor = admin_actor(request)
        if not change:
            password = data.get("password1") if data.get("set_usable_password") else None
            adopt_saved(obj, services.user_create(username=data["username"], password=password, actor=actor))
            return
        fields = {name: data[name] for name in services.USER_FIELDS if name in data}
        relations = {name: list(data[name]) for name in ("groups", "user_permissions") if name in data}
        adopt_saved(obj, services.user_update(user=obj, **fields, **relations, actor=actor))

    def save_related(self, request, form, formsets, change):
        # Groups and permissions were written by user_update; memberships go through their services.
        for formset in formsets:
            _save_memberships(request, form.instance, formset)


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "clerk_organization_id", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "public_id", "clerk_organization_id"]
    readonly_fields = ["public_id", "created_at", "suspension"]
    actions = ["suspend_organizations", "reactivate_organizations"]

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        # Suspending cuts every member off: only through its confirmation page, never a checkbox.
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "is_active"] if obj is not None else fields

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "clerk_organization_id", "is_active"]
        return ["name", "public_id", "clerk_organization_id", "is_active", "suspension", "created_at"]

    @admin.display(description="Suspend or reactivate")
    def suspension(self, obj: Organization) -> str:
        if obj is None or obj.pk is None:
            return "-"
        verb = "suspend" if obj.is_active else "reactivate"
        url = reverse(f"admin:accounts_organization_{verb}", args=[obj.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, verb.capitalize())

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        fields = {"name": data["name"], "clerk_organization_id": data.get("clerk_organization_id")}
        if change:
            fields["is_active"] = obj.is_active  # unchanged here (read-only): the actions change it
            saved = services.organization_update(organization=obj, **fields, actor=admin_actor(request))
        else:
            fields["is_active"] = data.get("is_active", False)
            saved = services.organization_create(**fields, actor=admin_actor(request))
        adopt_saved(obj, saved)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/suspend/",
                self.admin_site.admin_view(self.suspend_view),
                name="accounts_organization_suspend",
            ),
            path(
                "<path:object_id>/reactivate/",
                self.admin_site.admin_view(self.reactivate_view),
                name="accounts_organization_reactivate",
            ),
            *super().get_urls(),
        ]

    def _one(self, request, object_id) -> Organization:
        if not self.has_change_permission(request):
            raise PermissionDenied
        return get_object_or_404(Organization, pk=object_id)

    def suspend_view(self, request, object_id):
        organization = self._one(request, object_id)
        back = reverse("admin:accounts_organization_change", args=[organization.pk])
        return self._confirm_suspension(request, [organization], form_action=request.path, done_url=back)

    def reactivate_view(self, request, object_id):
        organization = self._one(request, object_id)
        back = reverse("admin:accounts_organization_change", args=[organization.pk])
        if organization.is_active:
            return HttpResponseRedirect(back)

        def perform():
            self._set_active(request, [organization], active=True)
            return HttpResponseRedirect(back)

        item = ConfirmItem(f"{organization.name} ({organization.public_id})", ("Its members regain access.",))
        return confirm_action(
            self,
            request,
            [organization],
            title="Reactivate organization",
            question="Reactivate this organization?",
            items=[item],
            confirm_label="Yes, reactivate",
            perform=perform,
            form_action=request.path,
            action="",
        )

    def _set_active(self, request, organizations, *, active: bool) -> None:
        actor = admin_actor(request)
        for organization in organizations:
            services.organization_update(
                organization=organization,
                name=organization.name,
                clerk_organization_id=organization.clerk_organization_id,
                is_active=active,
                actor=actor,
            )
        state = "reactivated" if active else "suspended"
        names = ", ".join(organization.name for organization in organizations)
        self.message_user(request, f"{len(organizations)} organization(s) {state}: {names}.", messages.SUCCESS)

    def _confirm_suspension(self, request, organizations, *, form_action: str = "", done_url: str = ""):
        organizations = [organization for organization in organizations if organization.is_active]
        members = {organization.pk: [] for organization in organizations}
        for membership in Membership.objects.filter(organization__in=organizations).select_related("user"):
            members[membership.organization_id].append(membership)
        items = []
        for organization in organizations:
            rows = sorted(members[organization.pk], key=lambda membership: membership.user.username)
            named = ", ".join(f"{m.user.username} ({m.role})" for m in rows[:MEMBERS_NAMED])
            more = f" and {len(rows) - MEMBERS_NAMED} more" if len(rows) > MEMBERS_NAMED else ""
            items.append(
                ConfirmItem(
                    f"{organization.name} ({organization.public_id})",
                    (
                        f"Its {len(rows)} member(s) lose access to its data through the Mark, Routiq and "
                        f"therapist APIs: {named or 'none'}{more}.",
                        "Requests naming it (X-Organization-ID, a Clerk organization) are answered as if it did "
                        "not exist; no Mark API user can be added to it.",
                        "Nothing is deleted: reactivating it restores access.",
                    ),
                )
            )

        def perform():
            self._set_active(request, organizations, active=False)
            return HttpResponseRedirect(done_url) if done_url else None

        if not organizations:
            self.message_user(request, "Those organizations are already suspended.", messages.INFO)
            return HttpResponseRedirect(done_url) if done_url else None
        return confirm_action(
            self,
            request,
            organizations,
            title="Suspend organizations",
            question="Suspend these organizations? Their members are cut off at once.",
            items=items,
            confirm_label="Yes, suspend",
            perform=perform,
            form_action=form_action,
            action="" if form_action else None,
        )

    @admin.action(description="Suspend the selected organizations (members lose access)", permissions=["change"])
    def suspend_organizations(self, request, queryset):
        return self._confirm_suspension(request, list(queryset))

    @admin.action(description="Reactivate the selected organizations", permissions=["change"])
    def reactivate_organizations(self, request, queryset):
        suspended = [organization for organization in queryset if not organization.is_active]
        self._set_active(request, suspended, active=True)


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["subject", "user_link", "issuer", "created_at"]
    search_fields = ["subject", "user__username"]
    list_select_related = ["user"]
    fields = ["user", "issuer", "subject", "created_at"]
    readonly_fields = fields

    @admin.display(description="user", ordering="user__username")
    def user_link(self, obj: ExternalIdentity) -> str:
        return admin_link(obj.user)


admin.site.unregister(Group)


@admin.register(Group)
class AuditedGroupAdmin(GroupAdmin):
    """A group's permissions are every member's: created and edited through audited services."""

    def has_delete_permission(self, request, obj=None):
        return False

    def save_form(self, request, form, change):
        return form.instance

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        permissions = list(data.get("permissions") or [])
        if change:
            saved = services.group_update(
                group=obj, name=data["name"], permissions=permissions, actor=admin_actor(request)
            )
        else:
            saved = services.group_create(name=data["name"], permissions=permissions, actor=admin_actor(request))
        adopt_saved(obj, saved)

    def save_related(self, request, form, formsets, change):
        pass  # the permissions were written by the service


# --- Two-factor devices and sign-in lockouts ---------------------------------------------------------------

if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)  # django-otp's own admin edits devices and can show their keys


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "user_link", "confirmed", "created_at", "last_used_at", "throttling_failure_count"]
    list_filter = ["confirmed"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    fields = ["user", "name", "confirmed", "created_at", "last_used_at", "throttling_failure_count"]
    readonly_fields = fields
    actions = ["remove_devices"]

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("otp_totp.delete_totpdevice")

    @admin.display(description="user", ordering="user__username")
    def user_link(self, obj: TOTPDevice) -> str:
        return admin_link(obj.user)

    @admin.action(description="Remove (lost phone: the user enrols again)", permissions=["manage"])
    def remove_devices(self, request, queryset):
        devices = list(queryset.select_related("user"))

        def perform():
            for device in devices:
                two_factor.totp_device_remove(device=device, actor=admin_actor(request))
            self.message_user(request, f"Removed {len(devices)} device(s).", messages.SUCCESS)

        items = [
            ConfirmItem(
                f"{device.user.username}: {device.name}",
                (
                    f"{device.user.username} can no longer sign in to the admin with this device "
                    f"(last used {admin_datetime(device.last_used_at)}) and must enrol a new one.",
                ),
            )
            for device in devices
        ]
        return confirm_action(
            self,
            request,
            devices,
            title="Remove two-factor devices",
            question="Remove these two-factor devices?",
            items=items,
            confirm_label="Yes, remove",
            perform=perform,
        )


@admin.register(AccessAttempt)
class AdminLoginLockoutAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Failure counts of the admin sign-in (django-axes): per username and IP, locked at the limit."""

    list_display = ["attempt_time", "ip_address", "username", "failures_since_start", "path_info"]
    search_fields = ["ip_address__exact", "username__exact"]
    ordering = ["-attempt_time"]
    fields = ["attempt_time", "ip_address", "username", "user_agent", "failures_since_start", "path_info"]
    readonly_fields = fields
    actions = ["unlock"]

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("axes.delete_accessattempt")

    @admin.action(description="Unlock (forget these failures)", permissions=["manage"])
    def unlock(self, request, queryset):
        attempts = list(queryset)
        for attempt in attempts:
            staff_auth.staff_lockout_reset(attempt=attempt, actor=admin_actor(request))
        self.message_user(request, f"Forgot {len(attempts)} failure count(s).", messages.SUCCESS)
