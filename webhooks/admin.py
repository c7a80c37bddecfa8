"""Webhook admin: endpoints and deliveries are read-only forms; every change goes through a service
(disable, enable, rotate secret, recover, redeliver), so each is audited. A rotated secret is shown
once on an intermediate page (not stored in messages, the session or a cookie).

Owners are shown by name with a link to their own admin page (webhooks.owners: the owning apps register
how to resolve them), resolved for a whole list page at once (one query per owner type), and a search
for an owner's name finds its endpoints and deliveries. Disabling endpoints asks for confirmation first
(what stops, for whom). A delivery's page shows the body and headers as the receiver got them, and a
Redeliver button."""

from __future__ import annotations

import hashlib
import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from core.admin import (
    AuditedViewAdminMixin,
    ConfirmItem,
    ReadOnlyAdminMixin,
    admin_actor,
    admin_datetime,
    confirm_action,
    short_id,
)
from webhooks import owners, selectors, services, signing
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

# Request headers never shown, even if a recorded attempt carried one (the delivery code keeps none).
HIDDEN_HEADERS = {"authorization", "cookie", "proxy-authorization"}


def _owner_of(endpoint: WebhookEndpoint) -> owners.Owner:
    """The endpoint's owner, as attached for the whole page by OwnerColumnMixin, else resolved alone."""
    owner = getattr(endpoint, "_webhook_owner", None)
    if owner is None:
        owner = owners.resolve([(endpoint.owner_type, endpoint.owner_id)])[(endpoint.owner_type, endpoint.owner_id)]
        endpoint._webhook_owner = owner
    return owner


def owner_html(owner: owners.Owner):
    label = owners.label_of(owner.owner_type)
    if owner.admin_url:
        return format_html('<a href="{}">{}</a> <span class="quiet">({})</span>', owner.admin_url, owner.name, label)
    return format_html('{} <span class="quiet">({})</span>', owner.name, label)


def owner_sentence(owner: owners.Owner) -> str:
    label = owners.label_of(owner.owner_type)
    return f"{owner.name} ({label})" if owner.found else f"{label} {owner.owner_id}"


class OwnerTypeFilter(admin.SimpleListFilter):
    """Owner types by their readable label (the registered ones and any in use)."""

    title = "owner type"
    parameter_name = "owner_type"
    field_path = "owner_type"

    def lookups(self, request, model_admin):
        types = set(owners.owner_types()) | set(selectors.webhook_owner_types_in_use())
        return sorted(((t, owners.label_of(t)) for t in types), key=lambda choice: choice[1].lower())

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(**{self.field_path: value}) if value else queryset


class OwnerFilter(admin.SimpleListFilter):
    """One owner's rows (`?owner_type=...&owner_id=...`, the links from an owner's own page). Offered only
    while in use, by the owner's name."""

    title = "owner"
    parameter_name = "owner_id"
    field_path = "owner_id"

    def lookups(self, request, model_admin):
        value = self.value()
        if not value:
            return []
        owner_type = request.GET.get(OwnerTypeFilter.parameter_name, "")
        if owner_type:
            return [(value, owner_sentence(owners.resolve([(owner_type, value)])[(owner_type, value)]))]
        return [(value, value)]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(**{self.field_path: value}) if value else queryset


class DeliveryOwnerTypeFilter(OwnerTypeFilter):
    field_path = "endpoint__owner_type"


class DeliveryOwnerFilter(OwnerFilter):
    field_path = "endpoint__owner_id"


class OwnerColumnMixin:
    """An "owner" column by name, resolved for the whole page at once, and owner names searchable.
    `owner_path` leads from a row to its endpoint ("" for an endpoint, "endpoint__" for a delivery)."""

    owner_path = ""

    def endpoint_of(self, obj) -> WebhookEndpoint:
        return obj.endpoint if self.owner_path else obj

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        # Evaluating the page's queryset here fills the cache the template then reads.
        endpoints = [self.endpoint_of(row) for row in changelist.result_list]
        resolved = owners.resolve((e.owner_type, e.owner_id) for e in endpoints)
        for endpoint in endpoints:
            endpoint._webhook_owner = resolved[(endpoint.owner_type, endpoint.owner_id)]
        return changelist

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        matches = owners.search(search_term)
        if matches:
            by_owner = Q()
            for owner_type, ids in matches.items():
                by_owner |= Q(**{f"{self.owner_path}owner_type": owner_type, f"{self.owner_path}owner_id__in": ids})
            results = results | queryset.filter(by_owner)
        return results, may_have_duplicates

    @admin.display(description="owner")
    def owner(self, obj):
        return owner_html(_owner_of(self.endpoint_of(obj)))


class RecoverForm(forms.Form):
    since = forms.DateTimeField(
        label="Recover failed deliveries created since (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(OwnerColumnMixin, AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Every column on screen at 1,400 px beside the filters (the id cut, in full on hover): the rest is on
    # the endpoint's page.
    list_display = ("endpoint_short", "owner", "url_host", "scheme_name", "active", "failing_since")
    list_filter = (
        "scheme",
        "is_active",
        OwnerTypeFilter,
        OwnerFilter,
        ("failing_since", admin.EmptyFieldListFilter),
    )
    search_fields = ("public_id", "=owner_id")
    ordering = ("-created_at",)
    # Never the secrets (encrypted columns, shown once at creation or rotation).
    fields = (
        "public_id",
        "owner",
        "owner_type",
        "owner_id",
        "url",
        "scheme",
        "events",
        "is_active",
        "disabled_reason",
        "disabled_at",
        "failing_since",
        "previous_secret_expires_at",
        "notification_email",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = ("disable_endpoints", "enable_endpoints", "rotate_secret", "recover_failed_deliveries")

    @admin.display(description="endpoint", ordering="public_id")
    def endpoint_short(self, obj: WebhookEndpoint) -> str:
        return short_id(obj.public_id)

    @admin.display(description="active", boolean=True, ordering="is_active")
    def active(self, obj: WebhookEndpoint) -> bool:
        return obj.is_active

    @admin.display(description="scheme", ordering="scheme")
    def scheme_name(self, obj: WebhookEndpoint) -> str:
        return obj.scheme  # the short name; the list filter and the page spell out its headers

    @admin.display(description="URL host")
    def url_host(self, obj: WebhookEndpoint) -> str:
        return services.url_host(obj.url)

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("webhooks.change_webhookendpoint")

    @admin.action(description="Disable selected endpoints", permissions=["manage"])
    def disable_endpoints(self, request, queryset):
        endpoints = list(queryset)
        pending = selectors.webhook_pending_delivery_counts(endpoint_ids=[e.pk for e in endpoints])
        resolved = owners.resolve((e.owner_type, e.owner_id) for e in endpoints)
        items = [
            ConfirmItem(
                label=f"{e.public_id} ({services.url_host(e.url)})",
                consequences=self._disable_consequences(e, resolved[(e.owner_type, e.owner_id)], pending[e.pk]),
            )
            for e in endpoints
        ]

        def perform():
            actor = admin_actor(request)
            count = sum(
                services.webhook_endpoint_disable(endpoint=e, reason="disabled by staff", actor=actor)
                for e in endpoints
            )
            self.message_user(request, f"Disabled {count} endpoint(s).", messages.SUCCESS)

        return confirm_action(
            self,
            request,
            endpoints,
            title="Disable webhook endpoints",
            question=f"Disable {len(endpoints)} webhook endpoint(s)? Their owners stop receiving events at once.",
            items=items,
            confirm_label="Yes, disable",
            perform=perform,
        )

    @staticmethod
    def _disable_consequences(endpoint: WebhookEndpoint, owner: owners.Owner, pending: int) -> tuple[str, ...]:
        if not endpoint.is_active:
            return (f"Already disabled since {admin_datetime(endpoint.disabled_at)}: nothing changes.",)
        events = "every event type" if "*" in endpoint.events else ", ".join(endpoint.events)
        return (
            f"{owner_sentence(owner)} stops receiving {events} at {services.url_host(endpoint.url)}.",
            f"{pending} pending deliver{'y' if pending == 1 else 'ies'} will be marked failed "
            "(recoverable once the endpoint is enabled again)."
            if pending
            else "No deliveries are pending.",
            "The owner is not told by email; enabling the endpoint later needs no confirmation.",
        )

    @admin.action(description="Enable selected endpoints", permissions=["manage"])
    def enable_endpoints(self, request, queryset):
        count = sum(services.webhook_endpoint_enable(endpoint=e, actor=admin_actor(request)) for e in queryset)
        self.message_user(request, f"Enabled {count} endpoint(s).", messages.SUCCESS)

    @admin.action(description="Rotate secret (shown once)", permissions=["manage"])
    def rotate_secret(self, request, queryset):
        rotated = []
        for endpoint in queryset:
            secret = services.webhook_endpoint_rotate_secret(endpoint=endpoint, actor=admin_actor(request))
            endpoint.refresh_from_db()
            rotated.append(
                {
                    "endpoint": endpoint,
                    "owner": owner_sentence(_owner_of(endpoint)),
                    "secret": secret,
                    "standard_secret": signing.standard_webhooks_secret(secret),
                    "previous_valid_until": admin_datetime(endpoint.previous_secret_expires_at)
                    if endpoint.previous_secret_expires_at
                    else "revoked",
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "New webhook secrets",
            "rotated": rotated,
            "opts": self.model._meta,
        }
        response = TemplateResponse(request, "admin/webhooks/webhookendpoint/secret_shown.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @staticmethod
    def _with_owners(endpoints) -> list[tuple[WebhookEndpoint, str]]:
        endpoints = list(endpoints)
        resolved = owners.resolve((e.owner_type, e.owner_id) for e in endpoints)
        return [(e, owner_sentence(resolved[(e.owner_type, e.owner_id)])) for e in endpoints]

    @admin.action(description="Recover failed deliveries since…", permissions=["manage"])
    def recover_failed_deliveries(self, request, queryset):
        form = RecoverForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            since = form.cleaned_data["since"]
            total = 0
            for endpoint in queryset:
                try:
                    total += services.webhook_endpoint_recover(
                        endpoint=endpoint, since=since, actor=admin_actor(request)
                    )
                except services.WebhookEndpointInvalid as exc:
                    self.message_user(request, f"{endpoint.public_id}: {exc.message}", messages.ERROR)
            self.message_user(
                request,
                f"Queued {total} failed deliveries created since {admin_datetime(since)} again.",
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Recover failed deliveries",
            "form": form,
            "endpoints": queryset,
            "endpoint_owners": self._with_owners(queryset),
            "action": "recover_failed_deliveries",
            "opts": self.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/webhooks/webhookendpoint/recover.html", context)


class WebhookAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ("attempted_at", "state", "status_code", "duration_ms", "error", "response_excerpt", "request_headers")
    readonly_fields = fields
    ordering = ("attempted_at", "pk")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(OwnerColumnMixin, AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    owner_path = "endpoint__"
    # Every column on screen at 1,400 px: event and endpoint ids are searchable and on the delivery's page.
    list_display = ("id", "event_type", "owner", "status", "attempt_count", "last_attempt_at")
    list_filter = ("status", "endpoint__scheme", "event__type", DeliveryOwnerTypeFilter, DeliveryOwnerFilter)
    search_fields = ("event__public_id", "endpoint__public_id")
    list_select_related = ("event", "endpoint")
    ordering = ("-created_at",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "event_id",
                    "event_type",
                    "endpoint",
                    "owner",
                    "status",
                    "attempt_count",
                    "first_attempt_at",
                    "last_attempt_at",
                    "next_attempt_at",
                    "claimed_until",
                    "succeeded_at",
                    "created_at",
                )
            },
        ),
        ("As the receiver got it", {"fields": ("body_as_sent", "headers_as_sent")}),
    )
    readonly_fields = tuple(name for _, options in fieldsets for name in options["fields"])
    inlines = (WebhookAttemptInline,)
    actions = ("redeliver_selected",)
    change_form_template = "admin/webhooks/webhookdelivery/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("event", "endpoint")

    @admin.display(description="event")
    def event_id(self, obj: WebhookDelivery) -> str:
        return obj.event.public_id

    @admin.display(description="event type")
    def event_type(self, obj: WebhookDelivery) -> str:
        return obj.event.type

    @admin.display(description="body")
    def body_as_sent(self, obj: WebhookDelivery):
        """The event's exact body (the bytes every attempt signed and sent), indented for reading, and
        the exact text beside it."""
        body = obj.event.body
        try:
            shown = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
        except ValueError:
            shown = obj.event.payload
        return format_html(
            '<pre class="webhook-body">{}</pre>'
            '<p class="help">{} bytes of {}, exactly as signed and sent (SHA-256 {}); indented here for reading.</p>'
            '<details><summary>Exact bytes as sent</summary><pre class="webhook-body-exact">{}</pre></details>',
            shown,
            len(body),
            signing.CONTENT_TYPE,
            hashlib.sha256(body).hexdigest(),
            obj.event.payload,
        )

    @admin.display(description="headers")
    def headers_as_sent(self, obj: WebhookDelivery):
        """The last attempt's request headers (each attempt signs anew: its timestamp and signatures
        differ; every attempt's are in the list below). Never a credential."""
        attempt = selectors.webhook_delivery_last_attempt(delivery=obj)
        if attempt is None:
            return "Not sent yet: the headers are made and signed at each attempt."
        headers = sorted(
            (name, value) for name, value in attempt.request_headers.items() if name.lower() not in HIDDEN_HEADERS
        )
        rows = format_html_join("", "<tr><th>{}</th><td><code>{}</code></td></tr>", headers)
        return format_html(
            '<table class="webhook-headers"><caption>Last attempt, {}</caption><tbody>{}</tbody></table>',
            admin_datetime(attempt.attempted_at),
            rows,
        )

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("webhooks.change_webhookdelivery")

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["can_redeliver"] = self.has_manage_permission(request)
            context["endpoint_active"] = obj.endpoint.is_active
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def get_urls(self):
        opts = self.model._meta
        redeliver = path(
            "<path:object_id>/redeliver/",
            self.admin_site.admin_view(self.redeliver_view),
            name=f"{opts.app_label}_{opts.model_name}_redeliver",
        )
        return [redeliver, *super().get_urls()]

    def redeliver_view(self, request, object_id):
        """The delivery page's Redeliver button: POST only (CSRF-checked by admin_view), for staff who may
        manage deliveries, through the same audited service as the list action."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_manage_permission(request):
            raise PermissionDenied
        delivery = self.get_object(request, unquote(object_id))
        if delivery is None:
            return self._get_obj_does_not_exist_redirect(request, self.model._meta, object_id)
        count = services.webhook_deliveries_redeliver(delivery_ids=[delivery.pk], actor=admin_actor(request))
        if count:
            delivery.refresh_from_db()
            self.message_user(
                request,
                f"Delivery {delivery.pk} of {delivery.event.public_id} to "
                f"{owner_sentence(_owner_of(delivery.endpoint))} is queued again: next attempt at "
                f"{admin_datetime(delivery.next_attempt_at)}.",
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request,
                f"Delivery {delivery.pk} was not queued: its endpoint {delivery.endpoint.public_id} is disabled. "
                "Enable the endpoint first.",
                messages.WARNING,
            )
        return HttpResponseRedirect(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]))

    @admin.action(description="Redeliver selected deliveries", permissions=["manage"])
    def redeliver_selected(self, request, queryset):
        count = services.webhook_deliveries_redeliver(
            delivery_ids=list(queryset.values_list("pk", flat=True)), actor=admin_actor(request)
        )
        self.message_user(request, f"Queued {count} deliveries again (disabled endpoints skipped).", messages.SUCCESS)
