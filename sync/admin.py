"""Sync admin (docs/routiq.md, "Administration"): Cliniko connections and sync runs, for staff.

Cliniko connections: the API key is entered once (a password field, never pre-filled, never rendered back,
never in a list or a change message): adding a connection stores it through sync.services.cliniko_connect
(encrypted, audited without the key); on an existing connection a newly typed key replaces it, and a new
base URL reconnects with the stored key (both reset the incremental watermark: the next run is full).
`sync_enabled` (the hourly schedule) changes through sync.services_admin.cliniko_sync_enabled_set. A "Test
connection" button on the page, and the actions "Test the connection" and "Run a sync now" on the list,
call cliniko_test_connection and sync_run_start (trigger `admin`; a running run is reported, not doubled).

Sync runs: read-only (status, progress, counts, error codes; a run holds no record data), with the
action "Run a sync now" for the selected runs' organizations. Every page that shows connections or runs is
on the audit trail (core.admin.AuditedViewAdminMixin), as in the Mark admin.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template import engines
from django.urls import path, reverse
from django.utils.html import format_html

from core.admin import AuditedViewAdminMixin, ReadOnlyAdminMixin, admin_actor, adopt_saved, audit_admin_view
from core.domain import DomainError, Invalid
from sync import services, services_admin
from sync.models import ClinikoAppointmentType, ClinikoConnection, ClinikoPractitioner, SyncRun

_CONFIRM = """{% extends "admin/base_site.html" %}
{% block content %}
<p>Test the Cliniko connection of <strong>{{ organization }}</strong>: one request to Cliniko with the stored
key. The outcome is recorded on the connection.</p>
<form method="post">{% csrf_token %}<input type="submit" value="Test connection"></form>
<p><a href="{{ back_url }}">Back</a></p>
{% endblock %}"""


class ClinikoConnectionForm(forms.ModelForm):
    """The key is a separate write-only field: required when adding, optional (replace) when changing."""

    new_api_key = forms.CharField(
        label="Cliniko API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    class Meta:
        model = ClinikoConnection
        fields = ("organization", "base_url", "sync_enabled")
        help_texts = {
            "base_url": "Empty for Cliniko itself (the shard comes from the key's suffix, e.g. -au4). "
            "A stand-in's URL otherwise (https; http only where loopback is allowed).",
            "sync_enabled": "The hourly schedule syncs this organization.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields[
                "new_api_key"
            ].help_text = "SET (stored encrypted, never shown). Type a new key to replace it (the next sync is full)."
        else:
            self.fields["new_api_key"].required = True
            self.fields["new_api_key"].help_text = "Stored encrypted; shown nowhere after saving."

    # The services' own rules and messages (sync.services validates again when it writes).
    def clean_new_api_key(self):
        value = self.cleaned_data.get("new_api_key") or ""
        if not value:
            return ""
        try:
            return services._clean_api_key(value)
        except Invalid as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_base_url(self):
        try:
            return services._clean_base_url(self.cleaned_data.get("base_url") or "")
        except Invalid as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(ClinikoConnection)
class ClinikoConnectionAdmin(AuditedViewAdminMixin, admin.ModelAdmin):
    form = ClinikoConnectionForm
    list_display = (
        "organization",
        "shard",
        "sync_enabled",
        "credentials_valid",
        "credentials_checked_at",
        "last_successful_sync_started_at",
    )
    list_select_related = ("organization",)
    list_filter = ("sync_enabled", "credentials_valid")
    search_fields = ("organization__name", "=organization__public_id")
    readonly_fields = (
        "key_status",
        "shard",
        "business_country",
        "credentials_valid",
        "credentials_checked_at",
        "last_successful_sync_started_at",
        "test_connection_button",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("organization", "new_api_key", "key_status", "base_url", "sync_enabled")}),
        ("Status", {"fields": ("shard", "business_country", "credentials_valid", "credentials_checked_at",
                               "test_connection_button", "last_successful_sync_started_at", "created_at",
                               "updated_at")}),
    )  # fmt: skip
    actions = ("test_connections", "run_sync_now")

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, "organization") if obj is not None else fields

    def has_delete_permission(self, request, obj=None):
        return False  # a connection is turned off (sync_enabled), not deleted: runs and the audit name it

    @admin.display(description="API key")
    def key_status(self, obj) -> str:
        return "set (stored encrypted, never shown)" if obj is not None and obj.pk and obj.api_key else "not set"

    @admin.display(description="Connection test")
    def test_connection_button(self, obj) -> str:
        if obj is None or obj.pk is None:
            return "-"
        url = reverse("admin:sync_clinikoconnection_test", args=[obj.pk])
        return format_html('<a class="button" href="{}">Test connection</a>', url)

    def save_form(self, request, form, change):
        return form.instance  # written by the services in save_model

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        organization = obj.organization if change else data["organization"]
        actor = admin_actor(request)
        new_key = data.get("new_api_key") or ""
        if not change or new_key or data["base_url"] != form.initial.get("base_url", ""):
            stored = ClinikoConnection.objects.filter(organization=organization).first()
            key = new_key or (stored.api_key if stored else "")
            services.cliniko_connect(organization=organization, api_key=key, base_url=data["base_url"], actor=actor)
            if new_key:
                self.message_user(request, "API key stored encrypted; it will not be shown again.")
        saved = services_admin.cliniko_sync_enabled_set(
            organization=organization, sync_enabled=data["sync_enabled"], actor=actor
        )
        adopt_saved(obj, saved)

    def save_related(self, request, form, formsets, change):
        pass

    def get_urls(self):
        return [
            path(
                "<path:object_id>/test-connection/",
                self.admin_site.admin_view(self.test_connection_view),
                name="sync_clinikoconnection_test",
            ),
            *super().get_urls(),
        ]

    def test_connection_view(self, request, object_id):
        if not self.has_change_permission(request):
            raise PermissionDenied
        connection = get_object_or_404(ClinikoConnection.objects.select_related("organization"), pk=object_id)
        back = reverse("admin:sync_clinikoconnection_change", args=[connection.pk])
        if request.method == "GET":
            audit_admin_view(request, ClinikoConnection, [connection], view="test-connection")
            template = engines["django"].from_string(_CONFIRM)
            context = {
                **self.admin_site.each_context(request),
                "title": "Test the Cliniko connection",
                "organization": connection.organization,
                "back_url": back,
            }
            return HttpResponse(template.render(context, request))
        if request.method != "POST":
            return HttpResponseNotAllowed(["GET", "POST"])
        self._test(request, connection)
        return HttpResponseRedirect(back)

    def _test(self, request, connection) -> None:
        result = services.cliniko_test_connection(organization=connection.organization, actor=admin_actor(request))
        if result.get("ok"):
            self.message_user(request, f"{connection.organization}: connected to Cliniko.", messages.SUCCESS)
        else:
            code = result.get("code") or "error"
            self.message_user(request, f"{connection.organization}: connection failed ({code}).", messages.ERROR)

    @admin.action(description="Test the connection", permissions=["change"])
    def test_connections(self, request, queryset):
        for connection in queryset.select_related("organization"):
            self._test(request, connection)

    @admin.action(description="Run a sync now (comprehensive)", permissions=["change"])
    def run_sync_now(self, request, queryset):
        _run_now(self, request, [connection.organization for connection in queryset.select_related("organization")])


def _run_now(model_admin, request, organizations) -> None:
    for organization in organizations:
        try:
            run, started = services.sync_run_start(
                organization=organization,
                mode=SyncRun.Mode.COMPREHENSIVE,
                trigger=SyncRun.Trigger.ADMIN,
                requested_by=request.user,
                actor=admin_actor(request),
            )
        except DomainError as exc:
            model_admin.message_user(request, f"{organization}: {exc.message}", messages.ERROR)
            continue
        if started:
            model_admin.message_user(request, f"{organization}: sync {run.public_id} started.", messages.SUCCESS)
        else:
            model_admin.message_user(
                request, f"{organization}: sync {run.public_id} is already running.", messages.WARNING
            )


@admin.register(SyncRun)
class SyncRunAdmin(AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "public_id",
        "organization",
        "mode",
        "trigger",
        "incremental",
        "status",
        "progress",
        "records_processed",
        "records_failed",
        "error_codes",
        "created_at",
        "completed_at",
    )
    list_select_related = ("organization",)
    list_filter = ("status", "mode", "trigger", "incremental")
    search_fields = ("=public_id", "organization__name", "=organization__public_id")
    date_hierarchy = "created_at"
    readonly_fields = (
        "public_id",
        "organization",
        "mode",
        "trigger",
        "incremental",
        "updated_since",
        "status",
        "progress",
        "current_step",
        "total_steps",
        "completed_steps",
        "records_total",
        "records_processed",
        "records_success",
        "records_failed",
        "patients_processed",
        "appointments_processed",
        "errors",
        "lease_until",
        "requested_by",
        "created_at",
        "started_at",
        "completed_at",
        "updated_at",
    )
    exclude = ("cursor",)
    actions = ("run_sync_now",)

    @admin.display(description="Progress")
    def progress(self, obj: SyncRun) -> str:
        return f"{services.run_progress(obj)['progress_percentage']}%"

    @admin.display(description="Errors")
    def error_codes(self, obj: SyncRun) -> str:
        codes = sorted({str(error.get("code", "")) for error in obj.errors or [] if isinstance(error, dict)})
        return ", ".join(codes) or "-"

    @admin.action(description="Run a sync now for the organizations of the selected runs")
    def run_sync_now(self, request, queryset):
        if not request.user.has_perm("sync.change_clinikoconnection"):
            raise PermissionDenied
        organizations = {run.organization_id: run.organization for run in queryset.select_related("organization")}
        _run_now(self, request, list(organizations.values()))


@admin.register(ClinikoAppointmentType)
class ClinikoAppointmentTypeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "organization", "category", "duration_minutes", "archived", "last_synced_at")
    list_select_related = ("organization",)
    list_filter = ("archived",)
    search_fields = ("name", "=organization__public_id")


@admin.register(ClinikoPractitioner)
class ClinikoPractitionerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "organization", "designation", "active", "last_synced_at")
    list_select_related = ("organization",)
    list_filter = ("active",)
    search_fields = ("name", "=organization__public_id")
