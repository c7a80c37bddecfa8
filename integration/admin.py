"""LoveRescue admin (staff side).

Integration partners: every change goes through integration.services.partners, so each is audited:
creating and editing (BAA, IP allowlist, rate limit, therapists) from the form, and the actions "Create
API key + secret", "Rotate secret", "Revoke all keys", "Suspend", "Reactivate". A new API key and secret
are shown once, as a success message rendered on the action's own response (no redirect, Cache-Control
no-store): the message is consumed by that page, so it is never kept in the session or a cookie, and
only the bcrypt hash of the secret (and a digest of the key) is stored.

People: therapists, clients and couples are created and edited through integration.services.therapists
and client_data (each change audited, the staff user as actor); deactivating a therapist (checkbox or
action) cuts their partners' access on the next request and is audited as such. A client's login and a
couple's two partners are fixed once created. Nobody deletes partners, therapists, clients, couples or
links here: the records, consent history and audit trail refer to them (deactivate instead).

Clinical data: alerts and session-prep reports are read-only; journal entries are not registered at
all (their text is never shown in the admin, and therapist-hidden entries are nobody's business).
Consent belongs to the client: a link added here starts "pending" until the client grants it in the app.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import UploadedFile
from django.db.models import Count
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_POST

from core.admin import (
    AuditedViewAdminMixin,
    ConfirmItem,
    ReadOnlyAdminMixin,
    admin_actor,
    admin_date,
    admin_datetime,
    admin_minute,
    adopt_saved,
    confirm_action,
    shown_once_response,
)
from core.domain import Invalid
from core.time import utc_now
from integration.events import OWNER_TYPE
from integration.models import (
    Alert,
    Client,
    Couple,
    IntegrationPartner,
    PartnerCredential,
    SessionPrepReport,
    Therapist,
    TherapistClientLink,
)
from integration.selectors.partners import partner_reach
from integration.services import client_data, partners, therapists


def _shown_once(admin_site, request, title: str) -> HttpResponse:
    return shown_once_response(
        admin_site,
        request,
        title=title,
        back_url_name="admin:integration_integrationpartner_changelist",
        back_label="integration partners",
    )


def _client_name(client: Client) -> str:
    """A client by name in narrow lists (their str() is the long id; the id is on the row's page)."""
    return f"{client.first_name} {client.last_name}"


def _names(values, total: int) -> str:
    shown = ", ".join(values)
    return f"{shown} and {total - len(values)} more" if total > len(values) else shown


def _data_lost(reach, lead: str) -> str:
    """Whose data the partner stops reading (a confirmation page's "for whom"): `lead` + the therapists."""
    if not reach.therapist_count:
        return "It acts for no therapist yet: no therapist's data is affected."
    return f"{lead} {reach.therapist_count} therapist(s): {_names(reach.therapist_names, reach.therapist_count)}."


def _webhooks(reach, active: str) -> str:
    if not reach.active_endpoint_count:
        return "It has no active webhook endpoint."
    return f"Its {reach.active_endpoint_count} active webhook endpoint(s) {active}"


def _keys(hints) -> str:
    return ", ".join(hints) if hints else "(none live)"


# --- Partners ---------------------------------------------------------------------------------------


class BaaDocumentWidget(forms.ClearableFileInput):
    """The BAA file input. "Currently:" links the staff download view (permission-checked, audited),
    never a media URL: the private storage has none."""

    template_name = "integration/widgets/baa_document.html"
    download_url = ""
    sha256 = ""

    def is_initial(self, value):
        return bool(value and getattr(value, "name", ""))

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"].update(download_url=self.download_url, sha256=self.sha256)
        return context


class IntegrationPartnerForm(forms.ModelForm):
    allowed_ips = forms.CharField(
        label="IP allowlist",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 50}),
        help_text="IPv4 or IPv6 addresses or networks in CIDR form (203.0.113.7, 203.0.113.0/24, "
        "2001:db8::/32), one per line or separated by commas. Empty: any address.",
    )

    class Meta:
        model = IntegrationPartner
        fields = (
            "name",
            "baa_signed_at",
            "baa_signer",
            "baa_document",
            "allowed_ips",
            "rate_limit_per_minute",
            "therapists",
        )
        widgets = {"baa_document": BaaDocumentWidget(attrs={"accept": "application/pdf,.pdf"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        document = self.fields.get("baa_document")  # absent for staff who may only view
        if document is None:
            pass
        elif self.instance and self.instance.pk:
            document.widget.download_url = reverse(
                "admin:integration_integrationpartner_baa_document", args=[self.instance.pk]
            )
            document.widget.sha256 = self.instance.baa_document_sha256
        if document is not None:
            document.help_text = (
                f"The signed agreement as a PDF, at most {settings.BAA_DOCUMENT_MAX_BYTES / (1024 * 1024):g} MB. "
                "Kept in private storage; staff download it here (each download is audited)."
            )
        if self.instance and self.instance.pk and not self.is_bound:
            self.initial["allowed_ips"] = "\n".join(self.instance.allowed_ips or [])

    def clean_baa_document(self):
        document = self.cleaned_data.get("baa_document")
        if isinstance(document, UploadedFile):  # a new upload (not the stored file, not "clear")
            try:
                partners.validate_baa_document(document)
            except partners.PartnerInvalid as exc:
                raise forms.ValidationError(exc.message) from None
        return document

    def clean_allowed_ips(self):
        raw = self.cleaned_data.get("allowed_ips") or ""
        entries = [part.strip() for part in raw.replace(",", "\n").splitlines() if part.strip()]
        try:
            return partners.normalize_allowed_ips(entries)
        except partners.PartnerInvalid as exc:
            # One error listing every bad entry and why, so staff fix the list in one go.
            raise forms.ValidationError(exc.details or exc.message) from None

    def clean_rate_limit_per_minute(self):
        try:
            return partners.validate_rate_limit(self.cleaned_data.get("rate_limit_per_minute"))
        except partners.PartnerInvalid as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("baa_signed_at") and not (cleaned.get("baa_signer") or "").strip():
            self.add_error("baa_signer", "Who signed the BAA? Required with a signed date.")
        return cleaned


class PartnerCredentialInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = PartnerCredential
    extra = 0
    can_delete = False
    fields = ("key_hint", "created", "secret_rotated", "old_secret_valid_until", "revoked", "last_used")
    readonly_fields = fields
    ordering = ("-created_at",)
    verbose_name = "API key"
    verbose_name_plural = "API keys (secrets are stored hashed and never shown again)"

    @admin.display(description="created")
    def created(self, obj: PartnerCredential) -> str:
        return admin_datetime(obj.created_at)

    @admin.display(description="secret rotated")
    def secret_rotated(self, obj: PartnerCredential) -> str:
        return admin_datetime(obj.secret_rotated_at)

    @admin.display(description="old secret valid until")
    def old_secret_valid_until(self, obj: PartnerCredential) -> str:
        return admin_datetime(obj.previous_secret_expires_at)

    @admin.display(description="revoked")
    def revoked(self, obj: PartnerCredential) -> str:
        return admin_datetime(obj.revoked_at)

    @admin.display(description="last used")
    def last_used(self, obj: PartnerCredential) -> str:
        return admin_datetime(obj.last_used_at)


# The key actions, each offered both in the list's action menu and as a button on a partner's page
# (custom POST URLs below): name -> (button label, confirmed first?).
PARTNER_OPERATIONS = {
    "create_credential": ("Create API key + secret", False),
    "rotate_secret": ("Rotate secret", True),
    "revoke_all_keys": ("Revoke all keys", True),
    "suspend": ("Suspend", True),
    "reactivate": ("Reactivate", False),
}


@admin.register(IntegrationPartner)
class IntegrationPartnerAdmin(AuditedViewAdminMixin, admin.ModelAdmin):
    form = IntegrationPartnerForm
    change_form_template = "admin/integration/integrationpartner/partner_change_form.html"
    list_display = ("name", "status", "baa_on_file", "therapist_count", "rate_limit", "created_at")
    list_filter = ("status", ("baa_signed_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("name",)
    ordering = ("name",)
    autocomplete_fields = ("therapists",)
    readonly_fields = ("id", "status", "suspended", "created", "updated")
    fieldsets = (
        (None, {"fields": ("id", "name", "status", "suspended")}),
        ("Business Associate Agreement", {"fields": ("baa_signed_at", "baa_signer", "baa_document")}),
        ("Access", {"fields": ("therapists", "allowed_ips", "rate_limit_per_minute")}),
        ("Record", {"fields": ("created", "updated")}),
    )
    inlines = (PartnerCredentialInline,)
    actions = tuple(PARTNER_OPERATIONS)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(therapists_count=Count("therapists", distinct=True))

    def get_fieldsets(self, request, obj=None):
        if self.has_change_permission(request, obj):
            return self.fieldsets
        # View-only staff: the document as a link to the audited download (the file field's own
        # read-only display would link a media URL, which private storage has none of).
        return tuple(
            (
                title,
                {
                    **options,
                    "fields": tuple(
                        "baa_document_download" if name == "baa_document" else name for name in options["fields"]
                    ),
                },
            )
            for title, options in self.fieldsets
        )

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "baa_document_download")

    @admin.display(description="BAA document")
    def baa_document_download(self, obj: IntegrationPartner) -> str:
        if not obj.baa_document:
            return "-"
        url = reverse("admin:integration_integrationpartner_baa_document", args=[obj.pk])
        return format_html('<a href="{}" class="baa-download">Download the signed BAA (PDF)</a>', url)

    @admin.display(description="BAA on file", boolean=True, ordering="baa_signed_at")
    def baa_on_file(self, obj: IntegrationPartner) -> bool:
        return obj.has_baa

    @admin.display(description="therapists", ordering="therapists_count")
    def therapist_count(self, obj: IntegrationPartner) -> int:
        return getattr(obj, "therapists_count", None) or obj.therapists.count()

    @admin.display(description="rate limit / min", ordering="rate_limit_per_minute")
    def rate_limit(self, obj: IntegrationPartner) -> str:
        return str(obj.rate_limit_per_minute) if obj.rate_limit_per_minute else "100 (default)"

    @admin.display(description="suspended at")
    def suspended(self, obj: IntegrationPartner) -> str:
        return admin_datetime(obj.suspended_at)

    @admin.display(description="created at")
    def created(self, obj: IntegrationPartner) -> str:
        return admin_datetime(obj.created_at)

    @admin.display(description="updated at")
    def updated(self, obj: IntegrationPartner) -> str:
        return admin_datetime(obj.updated_at)

    def has_delete_permission(self, request, obj=None):
        # Partners are suspended, never deleted: their audit trail and access log refer to them.
        return False

    # Create / edit through the services (audited). The form has validated every field already.
    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            partners.partner_update(
                partner=obj,
                name=data["name"],
                baa_signed_at=data.get("baa_signed_at"),
                baa_signer=data.get("baa_signer", ""),
                baa_document=data.get("baa_document") if "baa_document" in form.changed_data else partners.UNSET,
                allowed_ips=data.get("allowed_ips", []),
                rate_limit_per_minute=data.get("rate_limit_per_minute"),
                therapists=list(data.get("therapists") or []),
                actor=admin_actor(request),
            )
            obj.refresh_from_db()
        else:
            created = partners.partner_create(
                name=data["name"],
                therapists=list(data.get("therapists") or []),
                baa_signed_at=data.get("baa_signed_at"),
                baa_signer=data.get("baa_signer", ""),
                allowed_ips=data.get("allowed_ips", []),
                rate_limit_per_minute=data.get("rate_limit_per_minute"),
                baa_document=data.get("baa_document"),
                actor=admin_actor(request),
            )
            adopt_saved(obj, created)

    def save_related(self, request, form, formsets, change):
        # Therapists were set by the service (audited); the credential inline is read-only.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("integration.change_integrationpartner")

    # --- The partner's page: links and the key actions as buttons ---------------------------------

    def get_urls(self):
        opts = self.model._meta
        prefix = f"{opts.app_label}_{opts.model_name}"
        urls = [
            path(
                "<path:object_id>/baa-document/",
                self.admin_site.admin_view(self.baa_document_view),
                name=f"{prefix}_baa_document",
            ),
        ]
        urls += [
            path(
                f"<path:object_id>/{name.replace('_', '-')}/",
                self.admin_site.admin_view(self._operation_view(name)),
                name=f"{prefix}_{name}",
            )
            for name in PARTNER_OPERATIONS
        ]
        return urls + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        partner = self.get_object(request, unquote(object_id))
        if partner is not None:
            extra_context = {**(extra_context or {}), **self._page_context(request, partner)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _page_context(self, request, partner: IntegrationPartner) -> dict:
        reach = partner_reach(partner)
        pk = str(partner.pk)
        links = [(f"API keys ({len(reach.live_key_hints)} live)", "#credentials-group")]  # the inline below
        endpoints = reverse("admin:webhooks_webhookendpoint_changelist")
        links.append(
            (
                f"Webhook endpoints ({len(reach.endpoint_ids)})",
                f"{endpoints}?{urlencode({'owner_type': OWNER_TYPE, 'owner_id': pk})}",
            )
        )
        if reach.endpoint_ids:
            deliveries = reverse("admin:webhooks_webhookdelivery_changelist")
            ids = ",".join(map(str, reach.endpoint_ids))
            links.append(("Webhook deliveries", f"{deliveries}?{urlencode({'endpoint__id__in': ids})}"))
        events = reverse("admin:audit_auditevent_changelist")
        links.append(("Audit trail (changes)", f"{events}?{urlencode({'subject_type': OWNER_TYPE, 'subject_id': pk})}"))
        requests_log = reverse("admin:audit_accesslog_changelist")
        links.append(("Audit trail (its API requests)", f"{requests_log}?{urlencode({'actor_id': pk})}"))
        buttons = []
        if self.has_manage_permission(request):
            opts = self.model._meta
            for name, (label, confirmed) in PARTNER_OPERATIONS.items():
                if name == "suspend" and not partner.is_active or name == "reactivate" and partner.is_active:
                    continue
                if name in ("rotate_secret", "revoke_all_keys") and not reach.live_key_hints:
                    continue
                url = reverse(f"admin:{opts.app_label}_{opts.model_name}_{name}", args=[partner.pk])
                buttons.append({"name": name, "label": label, "url": url, "confirmed": confirmed})
        return {"partner_links": links, "partner_buttons": buttons}

    def baa_document_view(self, request, object_id):
        """The signed BAA, to staff who may view partners; audited before the bytes leave."""
        partner = self.get_object(request, unquote(object_id))
        if partner is None:
            raise Http404("No such partner.")
        if not self.has_view_permission(request, partner):
            raise PermissionDenied
        try:
            document = partners.partner_baa_document_download(partner=partner, actor=admin_actor(request))
        except partners.BaaDocumentMissing as exc:
            raise Http404(exc.message) from None
        response = HttpResponse(document.content, content_type="application/pdf")
        response["Content-Disposition"] = content_disposition_header(True, document.filename)
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "no-store"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response

    def _operation_view(self, name: str):
        """A POST-only view running action `name` on one partner (the page's button): the same code,
        confirmation page and services as the list's action menu."""

        @require_POST
        def view(request, object_id):
            partner = self.get_object(request, unquote(object_id))
            if partner is None:
                raise Http404("No such partner.")
            if not self.has_manage_permission(request):
                raise PermissionDenied
            change_url = reverse("admin:integration_integrationpartner_change", args=[partner.pk])
            queryset = self.get_queryset(request).filter(pk=partner.pk)
            response = getattr(self, name)(request, queryset)
            return response if response is not None else HttpResponseRedirect(change_url)

        return view

    # --- The operations (list actions; the page's buttons call the same methods) ------------------

    @admin.action(description="Create API key + secret (shown once)", permissions=["manage"])
    def create_credential(self, request, queryset):
        for partner in queryset:
            issued = partners.partner_credential_create(partner=partner, actor=admin_actor(request))
            messages.success(
                request,
                format_html(
                    "{}: API key <code>{}</code> — API secret <code>{}</code>",
                    partner.name,
                    issued.api_key,
                    issued.api_secret,
                ),
            )
        return _shown_once(self.admin_site, request, "New API keys")

    @admin.action(
        description=f"Rotate secret (old stays valid {settings.LOVERESCUE_SECRET_OVERLAP_HOURS:g} h)",
        permissions=["manage"],
    )
    def rotate_secret(self, request, queryset):
        selected = list(queryset)
        overlap = timedelta(hours=settings.LOVERESCUE_SECRET_OVERLAP_HOURS)
        if overlap > timedelta(0):
            until = admin_datetime(utc_now() + overlap)
            fate = f"its current secret keeps working until about {until}, then token requests with it are refused"
        else:
            fate = "its current secret is refused at once (no overlap is configured)"
        items = []
        for partner in selected:
            reach = partner_reach(partner)
            items.append(
                ConfirmItem(
                    partner.name,
                    (
                        f"API keys {_keys(reach.live_key_hints)}: each gets a new secret, shown once; {fate}.",
                        _data_lost(reach, "The partner must deploy the new secret by then, or it loses the data of"),
                    ),
                )
            )

        def perform():
            rotated = 0
            for partner in selected:
                for credential in partner.credentials.filter(revoked_at__isnull=True).order_by("created_at"):
                    secret = partners.partner_credential_rotate_secret(
                        credential=credential, actor=admin_actor(request)
                    )
                    credential.refresh_from_db()
                    rotated += 1
                    old_until = (
                        f"until {admin_datetime(credential.previous_secret_expires_at)}"
                        if credential.previous_secret_expires_at
                        else "no longer: no overlap"
                    )
                    messages.success(
                        request,
                        format_html(
                            "{}: API key {} — new API secret <code>{}</code> (the old secret works {})",
                            partner.name,
                            credential.key_hint,
                            secret,
                            old_until,
                        ),
                    )
            if not rotated:
                self.message_user(request, "No live API keys to rotate.", messages.WARNING)
                return None
            return _shown_once(self.admin_site, request, "New API secrets")

        return confirm_action(
            self,
            request,
            selected,
            title="Rotate API secrets",
            question=f"Rotate the API secrets of {len(selected)} partner(s)?",
            items=items,
            confirm_label="Yes, rotate the secrets",
            perform=perform,
            action="rotate_secret",
        )

    @admin.action(description="Revoke all keys…", permissions=["manage"])
    def revoke_all_keys(self, request, queryset):
        selected = list(queryset)
        items = []
        for partner in selected:
            reach = partner_reach(partner)
            items.append(
                ConfirmItem(
                    partner.name,
                    (
                        f"API keys {_keys(reach.live_key_hints)} are refused from now on, and tokens already "
                        "issued with them stop working on their next request.",
                        _data_lost(reach, "Until staff create a new key, the partner cannot read the data of"),
                        _webhooks(reach, "still receive events (suspend the partner to stop those)."),
                    ),
                )
            )

        def perform():
            count = 0
            for partner in selected:
                for credential in partner.credentials.filter(revoked_at__isnull=True):
                    count += partners.partner_credential_revoke(credential=credential, actor=admin_actor(request))
            self.message_user(request, f"Revoked {count} API key(s); their tokens stop working now.", messages.SUCCESS)

        return confirm_action(
            self,
            request,
            selected,
            title="Revoke all API keys",
            question=f"Revoke every API key of {len(selected)} partner(s)? Revoked keys cannot be restored.",
            items=items,
            confirm_label="Yes, revoke all keys",
            perform=perform,
            action="revoke_all_keys",
        )

    @admin.action(description="Suspend…", permissions=["manage"])
    def suspend(self, request, queryset):
        selected = list(queryset)
        items = []
        for partner in selected:
            reach = partner_reach(partner)
            if not partner.is_active:
                items.append(
                    ConfirmItem(
                        partner.name,
                        (f"Already suspended since {admin_datetime(partner.suspended_at)}: nothing changes.",),
                    )
                )
                continue
            items.append(
                ConfirmItem(
                    partner.name,
                    (
                        f"Its API keys ({_keys(reach.live_key_hints)}) and tokens are refused from its next request.",
                        _data_lost(reach, "It can no longer read the data of"),
                        _webhooks(
                            reach,
                            "get no new events while it is suspended (events meanwhile are never sent); "
                            "deliveries already queued still go out.",
                        ),
                    ),
                )
            )

        def perform():
            count = sum(partners.partner_suspend(partner=p, actor=admin_actor(request)) for p in selected)
            self.message_user(
                request, f"Suspended {count} partner(s); their tokens stop working now.", messages.SUCCESS
            )

        return confirm_action(
            self,
            request,
            selected,
            title="Suspend partners",
            question=f"Suspend {len(selected)} partner(s)? Reactivating later restores access (not missed events).",
            items=items,
            confirm_label="Yes, suspend",
            perform=perform,
            action="suspend",
        )

    @admin.action(description="Reactivate", permissions=["manage"])
    def reactivate(self, request, queryset):
        count = sum(partners.partner_reactivate(partner=p, actor=admin_actor(request)) for p in queryset)
        self.message_user(request, f"Reactivated {count} partner(s).", messages.SUCCESS)


# --- People and links -----------------------------------------------------------------------------


def _form_error(exc: Invalid) -> forms.ValidationError:
    return forms.ValidationError(exc.message)


class TherapistForm(forms.ModelForm):
    # Declared: the model's encrypted text columns would render as text areas with no validation.
    email = forms.EmailField(required=False, help_text="Alert notifications by email go here.")
    phone = forms.CharField(
        required=False, max_length=40, help_text="E.164 with the country code, e.g. +14155550123 (alert SMS)."
    )

    class Meta:
        model = Therapist
        fields = ("user", "first_name", "last_name", "email", "phone", "is_active")

    def clean_phone(self):
        try:
            return therapists.clean_phone(self.cleaned_data.get("phone"))
        except Invalid as exc:
            raise _form_error(exc) from None


@admin.register(Therapist)
class TherapistAdmin(AuditedViewAdminMixin, admin.ModelAdmin):
    """Created and edited through integration.services.therapists (audited). Deactivating a therapist
    cuts their partners' access on the next request, so it is an audited change of its own (the
    checkbox or the actions). Never deleted: links, tasks, alerts and the audit trail refer to them."""

    form = TherapistForm
    list_display = ("last_name", "first_name", "id", "is_active", "created_at")
    list_filter = ("is_active", "created_at")
    search_fields = ("first_name", "last_name", "=id")
    fields = ("id", "user", "first_name", "last_name", "email", "phone", "is_active", "created_at")
    readonly_fields = ("id", "created_at")
    raw_id_fields = ("user",)
    actions = ("deactivate", "reactivate")

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        fields = {
            "first_name": data["first_name"],
            "last_name": data["last_name"],
            "email": data.get("email"),
            "phone": data.get("phone"),
            "user": data.get("user"),
            "is_active": data.get("is_active", False),
        }
        if change:
            saved = therapists.therapist_update(therapist=obj, **fields, actor=admin_actor(request))
        else:
            saved = therapists.therapist_create(**fields, actor=admin_actor(request))
        adopt_saved(obj, saved)

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("integration.change_therapist")

    @admin.action(description="Deactivate (their partners lose access on the next request)", permissions=["manage"])
    def deactivate(self, request, queryset):
        count = sum(
            therapists.therapist_set_active(therapist=t, is_active=False, actor=admin_actor(request)) for t in queryset
        )
        self.message_user(request, f"Deactivated {count} therapist(s).", messages.SUCCESS)

    @admin.action(description="Reactivate", permissions=["manage"])
    def reactivate(self, request, queryset):
        count = sum(
            therapists.therapist_set_active(therapist=t, is_active=True, actor=admin_actor(request)) for t in queryset
        )
        self.message_user(request, f"Reactivated {count} therapist(s).", messages.SUCCESS)


class ClientForm(forms.ModelForm):
    email = forms.EmailField(required=False)

    class Meta:
        model = Client
        fields = ("user", "first_name", "last_name", "email")


@admin.register(Client)
class ClientAdmin(AuditedViewAdminMixin, admin.ModelAdmin):
    """Created and edited through integration.services.client_data (audited). The login (`user`) is fixed
    at creation: changing it would hand the client's records to another sign-in. Never deleted here:
    their check-ins, journal, links and the audit trail refer to them."""

    form = ClientForm
    list_display = ("last_name", "first_name", "id", "created_at")
    list_filter = ("created_at",)
    search_fields = ("first_name", "last_name", "=id", "user__username")
    fields = ("id", "user", "first_name", "last_name", "email", "created_at")
    raw_id_fields = ("user",)

    def get_readonly_fields(self, request, obj=None):
        return ("id", "created_at") if obj is None else ("id", "user", "created_at")

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        names = {"first_name": data["first_name"], "last_name": data["last_name"], "email": data.get("email")}
        if change:
            saved = client_data.client_update(client=obj, **names, actor=admin_actor(request))
        else:
            saved = client_data.client_create(user=data["user"], **names, actor=admin_actor(request))
        adopt_saved(obj, saved)


@admin.register(TherapistClientLink)
class TherapistClientLinkAdmin(AuditedViewAdminMixin, admin.ModelAdmin):
    """Staff may add a link (it starts pending: only the client grants consent, in the app); the
    level and consent of an existing link are the client's to change, so it is read-only here."""

    # Fits 1,400 px beside the filters: the link id is on its page, consent granted by day.
    list_display = ("therapist", "client_name", "level", "consent", "granted_day")
    list_display_links = ("therapist", "client_name")
    list_filter = (
        "permission_level",
        ("consent_granted_at", admin.EmptyFieldListFilter),
        ("consent_revoked_at", admin.EmptyFieldListFilter),
    )
    search_fields = ("client__first_name", "client__last_name", "therapist__first_name", "therapist__last_name")
    list_select_related = ("therapist", "client")
    raw_id_fields = ("therapist", "client")

    @admin.display(description="client", ordering="client__last_name")
    def client_name(self, obj: TherapistClientLink) -> str:
        return _client_name(obj.client)

    @admin.display(description="level", ordering="permission_level")
    def level(self, obj: TherapistClientLink) -> str:
        return obj.get_permission_level_display()

    @admin.display(description="granted", ordering="consent_granted_at")
    def granted_day(self, obj: TherapistClientLink) -> str:
        return admin_date(obj.consent_granted_at)

    @admin.display(description="consent")
    def consent(self, obj: TherapistClientLink) -> str:
        if obj.has_consent:
            return "granted"
        return "revoked" if obj.consent_revoked_at else "pending"

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("therapist", "client", "permission_level")
        return (
            "id",
            "therapist",
            "client",
            "permission_level",
            "consent_granted_at",
            "consent_revoked_at",
            "created_at",
            "updated_at",
        )

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.get_fields(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:  # read-only; nothing to save
            return
        # Through the service: the link and its audit event in one transaction, consent pending.
        created = client_data.link_create(
            therapist=obj.therapist,
            client=obj.client,
            permission_level=obj.permission_level,
            actor=admin_actor(request),
        )
        adopt_saved(obj, created)


class CoupleForm(forms.ModelForm):
    class Meta:
        model = Couple
        fields = ("partner1", "partner2", "status")

    def clean(self):
        cleaned = super().clean()
        first, second = cleaned.get("partner1"), cleaned.get("partner2")
        if self.instance._state.adding and first is not None and second is not None:
            try:
                client_data.couple_pair_check(first, second)
            except Invalid as exc:
                raise _form_error(exc) from None
        return cleaned


@admin.register(Couple)
class CoupleAdmin(AuditedViewAdminMixin, admin.ModelAdmin):
    """Created and re-statused through integration.services.client_data (audited; partners see the
    status). The two partners are fixed once created; a couple is made inactive, never deleted."""

    form = CoupleForm
    # Fits 1,400 px beside the filters: the couple id is on its page, the day only.
    list_display = ("first_partner", "second_partner", "status", "created_day")
    list_display_links = ("first_partner", "second_partner")
    list_filter = ("status", "created_at")
    search_fields = ("partner1__first_name", "partner1__last_name", "partner2__first_name", "partner2__last_name")
    list_select_related = ("partner1", "partner2")
    raw_id_fields = ("partner1", "partner2")

    def get_readonly_fields(self, request, obj=None):
        return ("id", "created_at") if obj is None else ("id", "partner1", "partner2", "created_at")

    @admin.display(description="partner 1", ordering="partner1__last_name")
    def first_partner(self, obj: Couple) -> str:
        return _client_name(obj.partner1)

    @admin.display(description="partner 2", ordering="partner2__last_name")
    def second_partner(self, obj: Couple) -> str:
        return _client_name(obj.partner2)

    @admin.display(description="created", ordering="created_at")
    def created_day(self, obj: Couple) -> str:
        return admin_date(obj.created_at)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            client_data.couple_set_status(couple=obj, status=data["status"], actor=admin_actor(request))
            obj.refresh_from_db()
            return
        saved = client_data.couple_create(
            partner1=data["partner1"], partner2=data["partner2"], status=data["status"], actor=admin_actor(request)
        )
        adopt_saved(obj, saved)


# --- Clinical data: read-only ----------------------------------------------------------------------


@admin.register(Alert)
class AlertAdmin(AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Fits 1,400 px beside the filters: opens by its time (the alert id is on its page and searchable).
    list_display = ("raised", "client_name", "alert_type", "severity", "rule", "resolved")
    list_display_links = ("raised",)
    list_filter = ("alert_type", "severity", "rule", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("client__first_name", "client__last_name", "=id")
    list_select_related = ("client",)
    ordering = ("-created_at",)
    date_hierarchy = "created_at"
    fields = (
        "id",
        "client",
        "alert_type",
        "severity",
        "rule",
        "episode_key",
        "required_level",
        "message",
        "metadata",
        "created_at",
        "resolved_at",
    )
    readonly_fields = fields

    @admin.display(description="client", ordering="client__last_name")
    def client_name(self, obj: Alert) -> str:
        return _client_name(obj.client)

    @admin.display(description="raised", ordering="created_at")
    def raised(self, obj: Alert) -> str:
        return admin_minute(obj.created_at)

    @admin.display(description="resolved", ordering="resolved_at")
    def resolved(self, obj: Alert) -> str:
        return admin_minute(obj.resolved_at)


@admin.register(SessionPrepReport)
class SessionPrepReportAdmin(AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "therapist", "client", "report_date", "last_session_date")
    list_filter = ("report_date",)
    search_fields = ("client__first_name", "client__last_name", "therapist__last_name", "=id")
    list_select_related = ("therapist", "client")
    ordering = ("-report_date",)
    fields = ("id", "therapist", "client", "report_date", "last_session_date", "content")
    readonly_fields = fields
