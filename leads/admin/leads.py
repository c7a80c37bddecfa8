"""CareOS admin: leads and CareOS users, read-only (no edit of personal data here).

Phones are masked everywhere ("+1 ••• ••• 0123", core.phones.mask); a user can be found by exact phone
through the blind index (search box: E.164, or a US national number). A lead's original message and
extracted details appear on its own page only, not in lists. A person has one internal id (`user_...` on
CareUser) and one id per partner that referred them (the `careos_user_id` that partner was given): both
are searchable, and the user page lists the partner ids.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from core.admin import AuditedViewAdminMixin, ReadOnlyAdminMixin, admin_date, short_id, short_text
from core.encryption import blind_index
from core.phones import e164_or_none, mask
from leads.models import CareUser, Lead, PartnerUser
from leads.services.ingest import PHONE_INDEX_PURPOSE

# The region a search term without "+" is read in (staff mostly type US numbers).
SEARCH_REGION = "US"


def phone_search_index(term: str) -> str | None:
    """The blind index of a search term that is a phone number (E.164, or a US national number), else
    None. Matches what the ingest stores: blind_index(E.164, purpose="leads.user.phone")."""
    phone = e164_or_none(term, region=SEARCH_REGION)
    return blind_index(phone, purpose=PHONE_INDEX_PURPOSE) if phone else None


class PhoneSearchMixin:
    """Exact phone search through the blind index (`phone_index_lookup`); other terms search as usual."""

    phone_index_lookup = "phone_index"

    def get_search_results(self, request, queryset, search_term):
        index = phone_search_index(search_term)
        if index is not None:
            return queryset.filter(**{self.phone_index_lookup: index}), False
        return super().get_search_results(request, queryset, search_term)


@admin.register(Lead)
class LeadAdmin(AuditedViewAdminMixin, PhoneSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    phone_index_lookup = "user__phone_index"
    # Fits 1,400 px with both sidebars: ids, slugs and categories cut short (full on hover), the day only;
    # the partner's own category, "new to this partner" (a filter) and the value (the payments list has
    # amounts) are on the lead's page.
    list_display = (
        "lead_short",
        "platform_short",
        "created_day",
        "category_short",
        "phone_cell",
        "payment_status",
    )
    list_filter = ("platform", "category", "is_new_user", "created_at")
    date_hierarchy = "created_at"
    search_fields = ("=public_id", "=source_conversation_id", "=user__public_id", "=partner_user__public_id")
    search_help_text = (
        "Lead id, conversation id, user id (internal or the partner's careos_user_id) or an exact phone number."
    )
    list_select_related = ("platform", "user", "payment")
    ordering = ("-created_at",)
    fieldsets = (
        (None, {"fields": ("public_id", "platform", "source_conversation_id", "created_at")}),
        (
            "User",
            {
                "fields": (
                    "user_link",
                    "partner_user_id",
                    "is_new_user",
                    "masked_phone",
                    "user_name",
                    "language",
                )
            },
        ),
        ("Location", {"fields": ("location_country", "location_state", "location_city")}),
        (
            "Request",
            {
                "fields": (
                    "source_category",
                    "category",
                    "subcategory",
                    "original_message",
                    "ai_extracted_details",
                    "consent_timestamp",
                )
            },
        ),
        (
            "Partner payment",
            {"fields": ("lead_value", "payment_status", "duplicate_link", "will_contact", "welcome_message_id")},
        ),
    )
    readonly_fields = (
        "public_id",
        "platform",
        "source_conversation_id",
        "created_at",
        "user_link",
        "partner_user_id",
        "is_new_user",
        "masked_phone",
        "user_name",
        "language",
        "location_country",
        "location_state",
        "location_city",
        "source_category",
        "category",
        "subcategory",
        "original_message",
        "ai_extracted_details",
        "consent_timestamp",
        "lead_value",
        "payment_status",
        "duplicate_link",
        "will_contact",
        "welcome_message_id",
    )

    @admin.display(description="lead", ordering="public_id")
    def lead_short(self, obj: Lead) -> str:
        return short_id(obj.public_id)

    @admin.display(description="created", ordering="created_at")
    def created_day(self, obj: Lead) -> str:
        return admin_date(obj.created_at)

    @admin.display(description="platform", ordering="platform__slug")
    def platform_short(self, obj: Lead) -> str:
        return short_text(obj.platform.slug)

    @admin.display(description="category", ordering="category")
    def category_short(self, obj: Lead) -> str:
        return short_text(obj.category)

    @admin.display(description="phone")
    def phone_cell(self, obj: Lead) -> str:
        return format_html('<span style="white-space: nowrap">{}</span>', mask(obj.user.phone))

    @admin.display(description="phone")
    def masked_phone(self, obj: Lead) -> str:
        return mask(obj.user.phone)

    @admin.display(description="payment")
    def payment_status(self, obj: Lead) -> str:
        payment = getattr(obj, "payment", None)
        if payment is not None:
            return payment.get_status_display()
        # No payment: a duplicate within the period (docs/careos.md, "Partners see only their own").
        return "none (duplicate)" if obj.duplicate_of_id else "-"

    @admin.display(description="careos_user_id given to the partner")
    def partner_user_id(self, obj: Lead) -> str:
        return obj.partner_user.public_id

    @admin.display(description="unpaid duplicate of")
    def duplicate_link(self, obj: Lead) -> str:
        if obj.duplicate_of_id is None:
            return "-"
        url = reverse("admin:leads_lead_change", args=[obj.duplicate_of_id])
        return format_html('<a href="{}">{}</a>', url, obj.duplicate_of.public_id)

    @admin.display(description="user")
    def user_link(self, obj: Lead) -> str:
        url = reverse("admin:leads_careuser_change", args=[obj.user_id])
        return format_html('<a href="{}">{}</a>', url, obj.user.public_id)


class UserLeadInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Lead
    extra = 0
    can_delete = False
    fields = ("public_id", "platform", "category", "created_at", "lead_value")
    readonly_fields = fields
    ordering = ("-created_at",)
    show_change_link = True


class PartnerUserInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The ids this person has at each partner (each partner knows only its own)."""

    model = PartnerUser
    extra = 0
    can_delete = False
    fields = ("platform", "public_id", "created_at")
    readonly_fields = fields
    ordering = ("created_at",)
    verbose_name = "partner id"
    verbose_name_plural = "ids given to partners (careos_user_id)"


@admin.register(CareUser)
class CareUserAdmin(AuditedViewAdminMixin, PhoneSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Fits 1,400 px beside the filters: the id and platform slug cut short (full on hover), the day only.
    list_display = ("user_short", "phone_cell", "source", "platform_short", "language", "created_day")
    list_filter = ("source", "source_platform", "language", "created_at")
    search_fields = ("=public_id", "=partner_ids__public_id")
    search_help_text = (
        "User id (internal, or a partner's careos_user_id) or an exact phone number (E.164, e.g. +14155552671)."
    )
    list_select_related = ("source_platform",)
    ordering = ("-created_at",)
    fields = (
        "public_id",
        "masked_phone",
        "name",
        "language",
        "source",
        "source_platform",
        "created_at",
        "welcome_sent_at",
    )
    readonly_fields = fields
    inlines = (PartnerUserInline, UserLeadInline)

    @admin.display(description="user", ordering="public_id")
    def user_short(self, obj: CareUser) -> str:
        return short_id(obj.public_id)

    @admin.display(description="phone")
    def phone_cell(self, obj: CareUser) -> str:
        return format_html('<span style="white-space: nowrap">{}</span>', mask(obj.phone))

    @admin.display(description="platform", ordering="source_platform__slug")
    def platform_short(self, obj: CareUser) -> str:
        return short_text(obj.source_platform.slug) if obj.source_platform_id else "-"

    @admin.display(description="created", ordering="created_at")
    def created_day(self, obj: CareUser) -> str:
        return admin_date(obj.created_at)

    @admin.display(description="phone")
    def masked_phone(self, obj: CareUser) -> str:
        return mask(obj.phone)
