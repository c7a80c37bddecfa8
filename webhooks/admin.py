"""Webhook admin: endpoints and deliveries are read-only forms; every change goes through a service
(disable, enable, rotate secret, recover, redeliver), so each is audited. A rotated secret is shown
once on an intermediate page (not stored in messages, the session or a cookie)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from core.admin import AuditedViewAdminMixin, ReadOnlyAdminMixin, admin_actor
from webhooks import services, signing
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


class RecoverForm(forms.Form):
    since = forms.DateTimeField(
        label="Recover failed deliveries created since (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "public_id",
        "owner_type",
        "owner_id",
        "url_host",
        "scheme",
        "is_active",
        "failing_since",
        "disabled_reason",
        "created_at",
    )
    list_filter = ("scheme", "is_active", "owner_type", ("failing_since", admin.EmptyFieldListFilter))
    search_fields = ("public_id", "owner_id")
    ordering = ("-created_at",)
    # Never the secrets (encrypted columns, shown once at creation or rotation).
    fields = (
        "public_id",
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

    @admin.display(description="URL host")
    def url_host(self, obj: WebhookEndpoint) -> str:
        return services.url_host(obj.url)

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("webhooks.change_webhookendpoint")

    @admin.action(description="Disable selected endpoints", permissions=["manage"])
    def disable_endpoints(self, request, queryset):
        actor = admin_actor(request)
        count = sum(
            services.webhook_endpoint_disable(endpoint=e, reason="disabled by staff", actor=actor) for e in queryset
        )
        self.message_user(request, f"Disabled {count} endpoint(s).", messages.SUCCESS)

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
                {"endpoint": endpoint, "secret": secret, "standard_secret": signing.standard_webhooks_secret(secret)}
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

    @admin.action(description="Recover failed deliveries since…", permissions=["manage"])
    def recover_failed_deliveries(self, request, queryset):
        form = RecoverForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            total = 0
            for endpoint in queryset:
                try:
                    total += services.webhook_endpoint_recover(
                        endpoint=endpoint, since=form.cleaned_data["since"], actor=admin_actor(request)
                    )
                except services.WebhookEndpointInvalid as exc:
                    self.message_user(request, f"{endpoint.public_id}: {exc.message}", messages.ERROR)
            self.message_user(request, f"Queued {total} failed deliveries again.", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Recover failed deliveries",
            "form": form,
            "endpoints": queryset,
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
class WebhookDeliveryAdmin(AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "event_id",
        "event_type",
        "endpoint",
        "status",
        "attempt_count",
        "next_attempt_at",
        "last_attempt_at",
        "created_at",
    )
    list_filter = ("status", "endpoint__scheme", "event__type", "endpoint")
    search_fields = ("event__public_id", "endpoint__public_id")
    list_select_related = ("event", "endpoint")
    ordering = ("-created_at",)
    fields = (
        "event_id",
        "event_type",
        "endpoint",
        "status",
        "attempt_count",
        "first_attempt_at",
        "last_attempt_at",
        "next_attempt_at",
        "claimed_until",
        "succeeded_at",
        "created_at",
    )
    readonly_fields = fields
    inlines = (WebhookAttemptInline,)
    actions = ("redeliver_selected",)

    @admin.display(description="event")
    def event_id(self, obj: WebhookDelivery) -> str:
        return obj.event.public_id

    @admin.display(description="event type")
    def event_type(self, obj: WebhookDelivery) -> str:
        return obj.event.type

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("webhooks.change_webhookdelivery")

    @admin.action(description="Redeliver selected deliveries", permissions=["manage"])
    def redeliver_selected(self, request, queryset):
        count = services.webhook_deliveries_redeliver(
            delivery_ids=list(queryset.values_list("pk", flat=True)), actor=admin_actor(request)
        )
        self.message_user(request, f"Queued {count} deliveries again (disabled endpoints skipped).", messages.SUCCESS)
