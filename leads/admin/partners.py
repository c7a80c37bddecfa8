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
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from core.admin import (
    ActionsWithoutSelectionMixin,
    AuditedViewAdminMixin,
    ConfirmItem,
    ReadOnlyAdminMixin,
    admin_actor,
    admin_date,
    admin_datetime,
    adopt_saved,
    confirm_action,
    short_text,
    shown_once_response,
)
from core.time import utc_now
from leads import crypto, selectors
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
    # Fits 1,400 px beside the filters: the slug cut short (full on hover), the day only.
    list_display = ("slug_short", "name", "status", "payout", "minimum", "live_keys", "created_day")
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

    @admin.display(description="slug", ordering="slug")
    def slug_short(self, obj: PartnerPlatform) -> str:
        return short_text(obj.slug)

    @admin.display(description="payout", ordering="payout_backend")
    def payout(self, obj: PartnerPlatform) -> str:
        return obj.get_payout_backend_display()

    @admin.display(description="minimum", ordering="minimum_payout")
    def minimum(self, obj: PartnerPlatform):
        return obj.minimum_payout

    @admin.display(description="created", ordering="created_at")
    def created_day(self, obj: PartnerPlatform) -> str:
        return admin_date(obj.created_at)

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

    # --- The platform's own page: links to everything of it, and its key actions as buttons -----------

    def get_urls(self):
        def view(func, name):
            return path(f"<int:platform_pk>/{name}/", self.admin_site.admin_view(func), name=f"leads_platform_{name}")

        return [
            view(self.create_live_key_view, "create_live_key"),
            view(self.create_test_key_view, "create_test_key"),
            view(self.suspend_view, "suspend"),
            view(self.reactivate_view, "reactivate"),
            *super().get_urls(),
        ]

    def _button_target(self, request, platform_pk: int) -> PartnerPlatform:
        """The platform a button acts on; POST only (CSRF-checked by admin_view), manage permission only."""
        if request.method != "POST":
            raise _NotPost
        if not self.has_manage_permission(request):
            raise PermissionDenied
        return get_object_or_404(PartnerPlatform, pk=platform_pk)

    def _page_url(self, platform: PartnerPlatform) -> str:
        return reverse("admin:leads_partnerplatform_change", args=[platform.pk])

    def create_live_key_view(self, request, platform_pk: int):
        return self._create_key_view(request, platform_pk, PlatformApiKey.Environment.LIVE)

    def create_test_key_view(self, request, platform_pk: int):
        return self._create_key_view(request, platform_pk, PlatformApiKey.Environment.TEST)

    def _create_key_view(self, request, platform_pk: int, environment: str):
        try:
            platform = self._button_target(request, platform_pk)
        except _NotPost:
            return HttpResponseNotAllowed(["POST"])
        return self._create_keys(request, [platform], environment)

    def suspend_view(self, request, platform_pk: int):
        try:
            platform = self._button_target(request, platform_pk)
        except _NotPost:
            return HttpResponseNotAllowed(["POST"])
        url = reverse("admin:leads_platform_suspend", args=[platform.pk])
        return self._suspend_confirmed(request, [platform], form_action=url, done_url=self._page_url(platform))

    def reactivate_view(self, request, platform_pk: int):
        try:
            platform = self._button_target(request, platform_pk)
        except _NotPost:
            return HttpResponseNotAllowed(["POST"])
        if platforms.platform_reactivate(platform=platform, actor=admin_actor(request)):
            self.message_user(request, f"Reactivated {platform.slug}: its valid API keys are accepted again.")
        else:
            self.message_user(request, f"{platform.slug} was already active.", messages.INFO)
        return HttpResponseRedirect(self._page_url(platform))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        platform = self.get_object(request, object_id)
        if platform is not None:
            extra_context = {
                **(extra_context or {}),
                "platform_links": _platform_links(platform),
                "platform_buttons": _platform_buttons(platform) if self.has_manage_permission(request) else [],
            }
        return super().change_view(request, object_id, form_url, extra_context)

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
                    admin_datetime(expires_at),
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

    @admin.action(description="Suspend (its keys are refused at once; asks first)", permissions=["manage"])
    def suspend(self, request, queryset):
        return self._suspend_confirmed(request, list(queryset.order_by("slug")))

    def _suspend_confirmed(self, request, targets: list[PartnerPlatform], *, form_action: str = "", done_url=None):
        standings = selectors.platform_standings(platform_pks=[p.pk for p in targets], now=utc_now())

        def perform():
            count = sum(platforms.platform_suspend(platform=p, actor=admin_actor(request)) for p in targets)
            self.message_user(
                request, f"Suspended {count} platform(s); their API keys are refused now.", messages.SUCCESS
            )
            return HttpResponseRedirect(done_url) if done_url else None

        return confirm_action(
            self,
            request,
            targets,
            title="Suspend partner platforms",
            question=f"Suspend {len(targets)} platform(s)? Nothing is deleted; reactivating accepts their keys again.",
            items=[_suspend_item(standing) for standing in standings],
            confirm_label="Yes, suspend",
            perform=perform,
            form_action=form_action,
        )

    @admin.action(description="Reactivate", permissions=["manage"])
    def reactivate(self, request, queryset):
        count = sum(platforms.platform_reactivate(platform=p, actor=admin_actor(request)) for p in queryset)
        self.message_user(request, f"Reactivated {count} platform(s).", messages.SUCCESS)


@admin.register(PlatformApiKey)
class PlatformApiKeyAdmin(AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Fits 1,400 px beside the filters: days only; "revoked" shows in the state (when: the key's page).
    list_display = ("key_hint", "platform_short", "env", "state", "created_day", "expires_day", "used_day")
    list_filter = ("platform", "environment", ("revoked_at", admin.EmptyFieldListFilter), "expires_at")
    search_fields = ("=key_id", "platform__slug")
    list_select_related = ("platform",)
    ordering = ("-created_at",)
    fields = ("key_hint", "key_id", "platform", "environment", "created_at", "expires_at", "revoked_at", "last_used_at")
    readonly_fields = fields
    actions = ("revoke",)

    @admin.display(description="platform", ordering="platform__slug")
    def platform_short(self, obj: PlatformApiKey) -> str:
        return short_text(obj.platform.slug)

    @admin.display(description="env", ordering="environment")
    def env(self, obj: PlatformApiKey) -> str:
        return obj.get_environment_display()

    @admin.display(description="created", ordering="created_at")
    def created_day(self, obj: PlatformApiKey) -> str:
        return admin_date(obj.created_at)

    @admin.display(description="expires", ordering="expires_at")
    def expires_day(self, obj: PlatformApiKey) -> str:
        return admin_date(obj.expires_at)

    @admin.display(description="last used", ordering="last_used_at")
    def used_day(self, obj: PlatformApiKey) -> str:
        return admin_date(obj.last_used_at)

    @admin.display(description="state")
    def state(self, obj: PlatformApiKey) -> str:
        if obj.revoked_at is not None:
            return "revoked"
        if obj.expires_at is not None and obj.expires_at <= utc_now():
            return "expired"
        return "valid"

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("leads.change_partnerplatform")

    @admin.action(description="Revoke (refused from now on; irreversible; asks first)", permissions=["manage"])
    def revoke(self, request, queryset):
        keys = list(queryset.select_related("platform").order_by("platform__slug", "-created_at"))
        now = utc_now()
        remaining = selectors.other_valid_keys(api_keys=[key for key in keys if key.revoked_at is None], now=now)

        def perform():
            count = sum(platforms.api_key_revoke(api_key=key, actor=admin_actor(request)) for key in keys)
            self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)

        return confirm_action(
            self,
            request,
            keys,
            title="Revoke API keys",
            question=f"Revoke {len(keys)} API key(s)? A revoked key is never accepted again (issue a new one instead).",
            items=[_revoke_item(key, remaining, now) for key in keys],
            confirm_label="Yes, revoke",
            perform=perform,
        )


class _NotPost(Exception):
    """A platform button's URL opened with GET (a link, a reload): nothing happens."""


def _platform_links(platform: PartnerPlatform) -> list[tuple[str, str]]:
    """Where staff find everything of one platform: the lists filtered to it (filters each list offers),
    and its audit trail (events about it, events it caused, its API requests) by plain field lookups."""
    by_platform = urlencode({"platform__id__exact": platform.pk})

    def listing(model: str, query: str) -> str:
        return f"{reverse(f'admin:{model}_changelist')}?{query}"

    return [
        ("API keys", listing("leads_platformapikey", by_platform)),
        ("Leads", listing("leads_lead", by_platform)),
        ("Payments", listing("leads_partnerpayment", by_platform)),
        ("Payout batches", listing("leads_payoutbatch", by_platform)),
        ("Audit events about it", listing("audit_auditevent", urlencode({"subject_id": platform.slug}))),
        ("Audit events by it", listing("audit_auditevent", urlencode({"actor_id": platform.slug}))),
        ("Its API requests", listing("audit_accesslog", urlencode({"actor_id": platform.slug}))),
    ]


def _platform_buttons(platform: PartnerPlatform) -> list[tuple[str, str]]:
    """(label, POST url) of the key actions on the platform's page."""
    buttons = [
        (f"Create live API key (shown once; expires in {platforms.API_KEY_DEFAULT_DAYS} days)", "create_live_key"),
        (f"Create test API key (shown once; expires in {platforms.API_KEY_DEFAULT_DAYS} days)", "create_test_key"),
        ("Suspend…", "suspend") if platform.is_active else ("Reactivate", "reactivate"),
    ]
    return [(label, reverse(f"admin:leads_platform_{name}", args=[platform.pk])) for label, name in buttons]


def _suspend_item(standing: selectors.PlatformStanding) -> ConfirmItem:
    platform = standing.platform
    label = f"{platform.name} ({platform.slug})"
    if not platform.is_active:
        return ConfirmItem(label, ("Already suspended: nothing changes.",))
    return ConfirmItem(
        label,
        (
            f"Its {standing.valid_live_keys} valid live and {standing.valid_test_keys} valid test API key(s) are "
            f"refused (401) from its next request: {platform.name} cannot post leads.",
            f"It sent {standing.leads_last_30_days} lead(s) in the last 30 days.",
            f"{standing.pending_payments} pending payment(s) ({standing.pending_amount} USD) are held: no payout "
            "to it while it is suspended.",
        ),
    )


def _revoke_item(key: PlatformApiKey, remaining: dict, now) -> ConfirmItem:
    platform = key.platform
    label = f"{key.key_hint} ({key.get_environment_display().lower()}, {platform.name})"
    if key.revoked_at is not None:
        return ConfirmItem(label, (f"Already revoked at {admin_datetime(key.revoked_at)}: nothing changes.",))
    if key.expires_at is not None and key.expires_at <= now:
        return ConfirmItem(label, (f"Already expired at {admin_datetime(key.expires_at)}: nothing else changes.",))
    left = remaining.get((key.platform_id, key.environment), 0)
    lines = [
        f"{platform.name} ({platform.slug}) requests with this key get 401 from now on. "
        f"Last used: {admin_datetime(key.last_used_at)}.",
        f"{platform.name} keeps {left} other valid {key.environment} key(s)."
        if left
        else f"{platform.name} has no other valid {key.environment} key: its {key.environment} requests all fail "
        "until you create a new key and the partner installs it.",
    ]
    return ConfirmItem(label, tuple(lines))


@admin.register(CareosKeyPair)
class CareosKeyPairAdmin(ActionsWithoutSelectionMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Short headers and days so the list fits 1,400 px beside the filters; full values on the pair's page.
    list_display = ("short_fingerprint", "bits", "created_day", "retired_day", "handed_out_cell")
    list_filter = (("retired_at", admin.EmptyFieldListFilter),)
    search_fields = ("fingerprint",)
    ordering = ("-created_at",)
    fields = (
        "fingerprint",
        "key_size",
        "created_at",
        "retired_at",
        "handed_out",
        "last_decrypt",
        "decrypted_for",
        "given_to",
        "public_key",
    )
    readonly_fields = fields  # never the private key
    actions = ("rotate", "retire")
    actions_without_selection = ("rotate",)

    @admin.display(description="fingerprint", ordering="fingerprint")
    def short_fingerprint(self, obj: CareosKeyPair) -> str:
        return format_html('<span title="{}">{}…</span>', obj.fingerprint, obj.fingerprint[:16])

    @admin.display(description="bits", ordering="key_size")
    def bits(self, obj: CareosKeyPair) -> int:
        return obj.key_size

    @admin.display(description="created", ordering="created_at")
    def created_day(self, obj: CareosKeyPair) -> str:
        return admin_date(obj.created_at)

    @admin.display(description="retired", ordering="retired_at")
    def retired_day(self, obj: CareosKeyPair) -> str:
        return admin_date(obj.retired_at)

    @admin.display(description="handed out", boolean=True)
    def handed_out_cell(self, obj: CareosKeyPair) -> bool:
        return self.handed_out(obj)

    @admin.display(description="public key handed to partners", boolean=True)
    def handed_out(self, obj: CareosKeyPair) -> bool:
        if not hasattr(self, "_current_fingerprint"):
            current = selectors.handed_out_keypair()
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

    @admin.display(description="last successful decrypt")
    def last_decrypt(self, obj: CareosKeyPair) -> str:
        decrypts = selectors.keypair_decrypts(pair=obj)
        return admin_datetime(decrypts[0].at) if decrypts else "none recorded"

    @admin.display(description="leads decrypted for (latest lead)")
    def decrypted_for(self, obj: CareosKeyPair) -> str:
        return _uses(selectors.keypair_decrypts(pair=obj)) or "none recorded"

    @admin.display(description="public key given to (recorded)")
    def given_to(self, obj: CareosKeyPair) -> str:
        return _uses(selectors.keypair_handouts(pair=obj)) or "none recorded"

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("leads.change_partnerplatform")

    @admin.action(description="Rotate: create a new key pair (no selection needed)", permissions=["manage"])
    def rotate(self, request, queryset):
        pair = platforms.keypair_create(actor=admin_actor(request))
        self.message_user(
            request,
            f"Created RSA-{pair.key_size} pair {pair.fingerprint[:16]}…: it is now the public key handed to "
            "partners (copy it below). Older active pairs keep decrypting: retire them once partners switched.",
            messages.SUCCESS,
        )
        if queryset.exists():
            self.message_user(
                request,
                "Rotate does not use the ticked rows: it created one new pair and left the selected pairs unchanged.",
                messages.INFO,
            )
        return HttpResponseRedirect(reverse("admin:leads_careoskeypair_change", args=[pair.pk]))

    @admin.action(description="Retire (stop decrypting with these pairs; asks first)", permissions=["manage"])
    def retire(self, request, queryset):
        pairs = list(queryset.order_by("created_at", "pk"))
        usages = selectors.keypair_usages(pairs=pairs)
        guard_since = platforms.keypair_retire_guard_since(utc_now())
        active = [usage for usage in usages if usage.pair.retired_at is None]
        guarded = [usage for usage in active if _needs_fingerprint(usage, guard_since)]
        if len(guarded) > 1:
            self.message_user(
                request,
                "Nothing was retired: "
                + ", ".join(f"{usage.pair.fingerprint[:16]}…" for usage in guarded)
                + " each need their full fingerprint typed (handed out to partners, or decrypted a lead within "
                f"{settings.CAREOS_KEY_RETIRE_GUARD_DAYS} days). Retire them one at a time.",
                messages.ERROR,
            )
            return None
        typed_pair = guarded[0].pair if guarded else None
        active_left = selectors.active_keypair_count() - sum(1 for p in pairs if p.retired_at is None)
        warning = ""
        if active_left <= 0 and crypto.env_private_key() is None:
            warning = (
                "You selected every active pair: the last one will be refused (nothing could decrypt phones). "
                "Rotate first to create a new pair."
            )

        def perform():
            retired = 0
            for pair in pairs:
                try:
                    retired += platforms.keypair_retire(
                        pair=pair,
                        actor=admin_actor(request),
                        confirmed_fingerprint=typed_pair.fingerprint if pair == typed_pair else "",
                    )
                except platforms.KeyPairRetireRefused as exc:
                    self.message_user(
                        request,
                        f"{pair}: not retired: it decrypted a lead at {admin_datetime(exc.last_decrypted_at)}, "
                        f"within the last {exc.guard_days} days. Retire it alone and type its full fingerprint.",
                        messages.ERROR,
                    )
                except platforms.PlatformInvalid as exc:
                    self.message_user(request, f"{pair}: {exc}", messages.ERROR)
            level = messages.SUCCESS if retired else messages.WARNING
            self.message_user(request, f"Retired {retired} key pair(s).", level)
            return None

        return confirm_action(
            self,
            request,
            pairs,
            title="Retire key pairs",
            question=f"Retire {len(pairs)} key pair(s)? A retired pair never decrypts again.",
            items=[_retire_item(usage, guard_since) for usage in usages],
            confirm_label="Yes, retire",
            perform=perform,
            warning=warning,
            typed_confirmation=typed_pair.fingerprint if typed_pair else None,
            typed_label=(
                f"Type the full fingerprint of {typed_pair} to retire it anyway (it is on the pair's page):"
                if typed_pair
                else ""
            ),
        )


def _uses(uses) -> str:
    return ", ".join(f"{use.name} ({use.slug}) {admin_datetime(use.at)}" for use in uses)


def _needs_fingerprint(usage: selectors.KeyPairUsage, guard_since) -> bool:
    """Handed out now, or decrypted a lead within CAREOS_KEY_RETIRE_GUARD_DAYS (that part the service
    enforces too)."""
    last = usage.last_decrypted_at
    return usage.handed_out or (guard_since is not None and last is not None and last > guard_since)


def _retire_item(usage: selectors.KeyPairUsage, guard_since) -> ConfirmItem:
    pair = usage.pair
    label = f"{pair} (created {admin_datetime(pair.created_at)})"
    if pair.retired_at is not None:
        return ConfirmItem(label, (f"Already retired at {admin_datetime(pair.retired_at)}: nothing changes.",))
    lines = []
    if usage.handed_out:
        lines.append(
            "This is the public key handed to partners now: every partner encrypting to it gets 400 "
            "“Failed to decrypt user data” on its next lead, until it switches to a newer key."
        )
    if usage.given_to:
        lines.append(f"Public key given to: {_uses(usage.given_to)}.")
    if usage.decrypted_for:
        lines.append(
            f"Leads it decrypted, by platform (latest): {_uses(usage.decrypted_for)}: their next leads "
            "encrypted to it will be refused."
        )
    else:
        lines.append("No lead decrypted with it is recorded.")
    lines.append(f"Last successful decrypt: {admin_datetime(usage.last_decrypted_at)}.")
    if _needs_fingerprint(usage, guard_since):
        lines.append("Needs its full fingerprint typed below.")
    return ConfirmItem(label, tuple(lines))
