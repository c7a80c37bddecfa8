"""CareOS admin: partner platforms, their API keys, and CareOS's RSA key pairs.

Partner platforms: created and edited through leads.services.platforms (audited), never deleted. Actions:
"Create live/test API key" (shown once, as a message rendered on the action's own no-store response:
consumed by that page, so never kept in the session or a cookie; only a SHA-256 digest is stored),
"Suspend", "Reactivate". The phone-hash salt is shown on a platform's page only (never in the list).
API keys are read-only rows with a "Revoke" action. CareOS RSA key pairs show their public key only
(the private key is never displayed); actions "Rotate" (a new pair becomes the public key handed out,
older ones keep decrypting) and "Retire" (refused for the last pair able to decrypt).

Every write goes through leads.services.platforms with the staff user as actor (core.admin.admin_actor).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from core.admin import AuditedViewAdminMixin, ReadOnlyAdminMixin, admin_actor, adopt_saved, shown_once_response
from core.time import utc_now
from leads.models import CareosKeyPair, PartnerPlatform, PlatformApiKey
from leads.services import platforms


def _shown_once(admin_site, request, title: str) -> HttpResponse:
    return shown_once_response(
        admin_site,
        request,
        title=title,
        back_url_name="admin:leads_partnerplatform_changelist",
        back_label="partner platforms",
    )


# --- Partner platforms ------------------------------------------------------------------------------


class PartnerPlatformForm(forms.ModelForm):
    contact_email = forms.EmailField(required=False, help_text="Payout notifications go here.")

    class Meta:
        model = PartnerPlatform
        fields = (
            "slug",
            "name",
            "contact_name",
            "contact_email",
            "minimum_payout",
            "payout_backend",
            "stripe_account_id",
        )
        help_texts = {
            "slug": "The partner's X-Platform header and source_platform (lowercase letters and digits).",
            "stripe_account_id": "The partner's Stripe connected account (acct_...), for the Stripe backend.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance and self.instance.pk and not self.is_bound:
            self.initial["contact_email"] = self.instance.contact_email or ""

    def clean_slug(self):
        slug = self.cleaned_data.get("slug") or ""
        if not platforms.SLUG_RE.fullmatch(slug):
            raise forms.ValidationError("2-40 lowercase letters and digits, starting with a letter.")
        return slug

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            platforms.validate_payout(
                platforms.parse_amount(cleaned.get("minimum_payout", 0)),
                cleaned.get("payout_backend") or "",
                (cleaned.get("stripe_account_id") or "").strip(),
            )
        except platforms.PlatformInvalid as exc:
            raise forms.ValidationError(str(exc)) from None
        return cleaned


class PlatformApiKeyInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = PlatformApiKey
    extra = 0
    can_delete = False
    fields = ("key_hint", "environment", "created_at", "expires_at", "revoked_at", "last_used_at")
    readonly_fields = fields
    ordering = ("-created_at",)
    verbose_name = "API key"
    verbose_name_plural = "API keys (stored hashed: a key is shown once, when created)"


@admin.register(PartnerPlatform)
class PartnerPlatformAdmin(AuditedViewAdminMixin, admin.ModelAdmin):
    form = PartnerPlatformForm
    list_display = ("slug", "name", "status", "payout_backend", "minimum_payout", "live_keys", "created_at")
    list_filter = ("status", "payout_backend")
    search_fields = ("slug", "name")
    ordering = ("slug",)
    inlines = (PlatformApiKeyInline,)
    actions = ("create_live_key", "create_test_key", "suspend", "reactivate")

    def get_fieldsets(self, request, obj=None):
        main = ("slug", "name") if obj is None else ("slug", "name", "status", "phone_hash_salt_shown")
        fieldsets = [
            (None, {"fields": main}),
            ("Contact", {"fields": ("contact_name", "contact_email")}),
            ("Payouts", {"fields": ("minimum_payout", "payout_backend", "stripe_account_id")}),
        ]
        if obj is not None:
            fieldsets.append(("Record", {"fields": ("created_at", "updated_at")}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("slug", "status", "phone_hash_salt_shown", "created_at", "updated_at")

    def get_queryset(self, request):
        now = utc_now()
        live = Q(api_keys__environment=PlatformApiKey.Environment.LIVE, api_keys__revoked_at__isnull=True) & (
            Q(api_keys__expires_at__isnull=True) | Q(api_keys__expires_at__gt=now)
        )
        return super().get_queryset(request).annotate(live_keys_count=Count("api_keys", filter=live, distinct=True))

    @admin.display(description="live keys", ordering="live_keys_count")
    def live_keys(self, obj: PartnerPlatform) -> int:
        return obj.live_keys_count

    @admin.display(description="phone hash salt (PHONE_HASH_SALT, shared with the partner)")
    def phone_hash_salt_shown(self, obj: PartnerPlatform) -> str:
        return format_html("<code>{}</code>", obj.phone_hash_salt)

    def has_delete_permission(self, request, obj=None):
        # Platforms are suspended, never deleted: leads, payments and the audit trail refer to them.
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        fields = {
            "name": data.get("name", ""),
            "contact_name": data.get("contact_name", ""),
            "contact_email": data.get("contact_email") or None,
            "minimum_payout": data["minimum_payout"],
            "payout_backend": data["payout_backend"],
            "stripe_account_id": (data.get("stripe_account_id") or "").strip(),
        }
        if change:
            saved = platforms.platform_update(platform=obj, **fields, actor=admin_actor(request))
        else:
            saved = platforms.platform_create(slug=data["slug"], **fields, actor=admin_actor(request))
        adopt_saved(obj, saved)

    def save_related(self, request, form, formsets, change):
        # The API key inline is read-only (saving it writes nothing); no other relation is edited here.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("leads.change_partnerplatform")

    def _create_keys(self, request, queryset, environment: str):
        expires_at = platforms.default_api_key_expiry()
        for platform in queryset:
            issued = platforms.api_key_create(
                platform=platform, environment=environment, expires_at=expires_at, actor=admin_actor(request)
            )
            messages.success(
                request,
                format_html(
                    "{}: {} API key <code>{}</code> (expires {}; earlier keys stay valid until they expire or "
                    "are revoked){}",
                    platform.slug,
                    environment,
                    issued.full_key,
                    expires_at.strftime("%Y-%m-%d %H:%M UTC"),
                    "" if platform.is_active else " — the platform is suspended: reactivate it first",
                ),
            )
        return _shown_once(self.admin_site, request, f"New {environment} API keys")

    @admin.action(
        description=f"Create live API key (shown once; expires in {platforms.API_KEY_DEFAULT_DAYS} days)",
        permissions=["manage"],
    )
    def create_live_key(self, request, queryset):
        return self._create_keys(request, queryset, PlatformApiKey.Environment.LIVE)

    @admin.action(
        description=f"Create test API key (shown once; expires in {platforms.API_KEY_DEFAULT_DAYS} days)",
        permissions=["manage"],
    )
    def create_test_key(self, request, queryset):
        return self._create_keys(request, queryset, PlatformApiKey.Environment.TEST)

    @admin.action(description="Suspend (its keys are refused at once)", permissions=["manage"])
    def suspend(self, request, queryset):
        count = sum(platforms.platform_suspend(platform=p, actor=admin_actor(request)) for p in queryset)
        self.message_user(request, f"Suspended {count} platform(s); their API keys are refused now.", messages.SUCCESS)

    @admin.action(description="Reactivate", permissions=["manage"])
    def reactivate(self, request, queryset):
        count = sum(platforms.platform_reactivate(platform=p, actor=admin_actor(request)) for p in queryset)
        self.message_user(request, f"Reactivated {count} platform(s).", messages.SUCCESS)


@admin.register(PlatformApiKey)
class PlatformApiKeyAdmin(AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "key_hint",
        "platform",
        "environment",
        "state",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    )
    list_filter = ("platform", "environment", ("revoked_at", admin.EmptyFieldListFilter), "expires_at")
    search_fields = ("=key_id", "platform__slug")
    list_select_related = ("platform",)
    ordering = ("-created_at",)
    fields = ("key_hint", "key_id", "platform", "environment", "created_at", "expires_at", "revoked_at", "last_used_at")
    readonly_fields = fields
    actions = ("revoke",)

    @admin.display(description="state")
    def state(self, obj: PlatformApiKey) -> str:
        if obj.revoked_at is not None:
            return "revoked"
        if obj.expires_at is not None and obj.expires_at <= utc_now():
            return "expired"
        return "valid"

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("leads.change_partnerplatform")

    @admin.action(description="Revoke (refused from now on; irreversible)", permissions=["manage"])
    def revoke(self, request, queryset):
        count = sum(platforms.api_key_revoke(api_key=key, actor=admin_actor(request)) for key in queryset)
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)


@admin.register(CareosKeyPair)
class CareosKeyPairAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("short_fingerprint", "key_size", "created_at", "retired_at", "handed_out")
    list_filter = (("retired_at", admin.EmptyFieldListFilter),)
    search_fields = ("fingerprint",)
    ordering = ("-created_at",)
    fields = ("fingerprint", "key_size", "created_at", "retired_at", "handed_out", "public_key")
    readonly_fields = fields  # never the private key
    actions = ("rotate", "retire")

    @admin.display(description="fingerprint (SHA-256 of the public key)", ordering="fingerprint")
    def short_fingerprint(self, obj: CareosKeyPair) -> str:
        return f"{obj.fingerprint[:16]}…"

    @admin.display(description="public key handed to partners", boolean=True)
    def handed_out(self, obj: CareosKeyPair) -> bool:
        if not hasattr(self, "_current_fingerprint"):
            current = CareosKeyPair.objects.filter(retired_at__isnull=True).order_by("-created_at").first()
            self._current_fingerprint = current.fingerprint if current else None
        return obj.fingerprint == self._current_fingerprint

    def changelist_view(self, request, extra_context=None):
        self.__dict__.pop("_current_fingerprint", None)
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self.__dict__.pop("_current_fingerprint", None)
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="public key (PEM)")
    def public_key(self, obj: CareosKeyPair) -> str:
        return format_html("<pre>{}</pre>", obj.public_pem)

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("leads.change_partnerplatform")

    @admin.action(description="Rotate: create a new key pair (selected pairs keep decrypting)", permissions=["manage"])
    def rotate(self, request, queryset):
        pair = platforms.keypair_create(actor=admin_actor(request))
        self.message_user(
            request,
            f"Created RSA-{pair.key_size} pair {pair.fingerprint[:16]}…: it is now the public key handed to "
            "partners (copy it below). Older active pairs keep decrypting: retire them once partners switched.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:leads_careoskeypair_change", args=[pair.pk]))

    @admin.action(description="Retire (stop decrypting with these pairs)", permissions=["manage"])
    def retire(self, request, queryset):
        count = 0
        for pair in queryset.order_by("created_at"):
            try:
                count += platforms.keypair_retire(pair=pair, actor=admin_actor(request))
            except platforms.PlatformInvalid as exc:
                self.message_user(request, f"{pair}: {exc}", messages.ERROR)
        self.message_user(request, f"Retired {count} key pair(s).", messages.SUCCESS if count else messages.WARNING)
