from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import ExternalIdentity, Membership, Organization, User


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["organization"]


@admin.register(User)
class PlatformUserAdmin(UserAdmin):
    inlines = [MembershipInline]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "clerk_organization_id", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "public_id", "clerk_organization_id"]
    readonly_fields = ["public_id", "created_at"]


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(admin.ModelAdmin):
    list_display = ["user", "issuer", "subject", "created_at"]
    search_fields = ["subject", "user__username"]
    raw_id_fields = ["user"]
