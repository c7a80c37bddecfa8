"""Sync admin (docs/routiq.md, "Administration"): Cliniko connections and sync runs, for staff.

Cliniko connections: the API key is entered once (a password field, never pre-filled, never rendered back,
never in a list or a change message): adding a connection stores it through sync.services.cliniko_connect
(encrypted, audited without the key); on an existing connection a newly typed key replaces it, and a new
base URL reconnects with the stored key (both reset the incremental watermark: the next run is full).
`sync_enabled` (the hourly schedule) is set when adding; afterwards it changes only through the actions
"Turn the hourly sync off / on" (or the button on the connection's page), through
sync.services_admin.cliniko_sync_enabled_set; turning it off first shows a confirmation page saying what
stops reaching the clinic and since when its data is current. A "Test
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

from core.admin import (
    AuditedViewAdminMixin,
    ConfirmItem,
    ReadOnlyAdminMixin,
    admin_actor,
    admin_datetime,
    admin_link,
    admin_minute,
    adopt_saved,
    audit_admin_view,
    confirm_action,
)
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
    # The shard and when the key was last checked are on the page: the list fits 1,400 px.
    list_display = ("clinic_name", "sync_enabled", "credentials_valid", "last_successful_sync_started_at")
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
        "sync_switch",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("organization", "new_api_key", "key_status", "base_url", "sync_enabled", "sync_switch")}),
        ("Status", {"fields": ("shard", "business_country", "credentials_valid", "credentials_checked_at",
                               "test_connection_button", "last_successful_sync_started_at", "created_at",
                               "updated_at")}),
    )  # fmt: skip
    actions = ("test_connections", "run_sync_now", "turn_sync_off", "turn_sync_on")

    def get_readonly_fields(self, request, obj=None):
        # Turning the hourly sync off stops the clinic's data: only through its confirmation page.
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, "organization", "sync_enabled") if obj is not None else fields

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:  # nothing to switch before the connection exists
            first = [field for field in fieldsets[0][1]["fields"] if field != "sync_switch"]
            fieldsets = ((None, {"fields": first}), *fieldsets[1:])
        return fieldsets

    @admin.display(description="clinic", ordering="organization__name")
    def clinic_name(self, obj: ClinikoConnection) -> str:
        return obj.organization.name  # the row's own link (the page links to the organization)

    @admin.display(description="Hourly sync")
    def sync_switch(self, obj) -> str:
        if obj is None or obj.pk is None:
            return "-"
        verb = "off" if obj.sync_enabled else "on"
        url = reverse(f"admin:sync_clinikoconnection_sync_{verb}", args=[obj.pk])
        return format_html('<a class="button" href="{}">Turn the hourly sync {}</a>', url, verb)

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
        if change:
            saved = ClinikoConnection.objects.get(organization=organization)
        else:
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
            path(
                "<path:object_id>/sync-off/",
                self.admin_site.admin_view(self.sync_off_view),
                name="sync_clinikoconnection_sync_off",
            ),
            path(
                "<path:object_id>/sync-on/",
                self.admin_site.admin_view(self.sync_on_view),
                name="sync_clinikoconnection_sync_on",
            ),
            *super().get_urls(),
        ]

    def _connection(self, request, object_id) -> ClinikoConnection:
        if not self.has_change_permission(request):
            raise PermissionDenied
        return get_object_or_404(ClinikoConnection.objects.select_related("organization"), pk=object_id)

    def sync_off_view(self, request, object_id):
        connection = self._connection(request, object_id)
        back = reverse("admin:sync_clinikoconnection_change", args=[connection.pk])
        return self._confirm_sync(request, [connection], enabled=False, form_action=request.path, done_url=back)

    def sync_on_view(self, request, object_id):
        connection = self._connection(request, object_id)
        back = reverse("admin:sync_clinikoconnection_change", args=[connection.pk])
        return self._confirm_sync(request, [connection], enabled=True, form_action=request.path, done_url=back)

    def _set_sync(self, request, connections, *, enabled: bool) -> None:
        for connection in connections:
            services_admin.cliniko_sync_enabled_set(
                organization=connection.organization, sync_enabled=enabled, actor=admin_actor(request)
            )
        names = ", ".join(connection.organization.name for connection in connections)
        state = "on" if enabled else "off"
        self.message_user(request, f"Hourly sync turned {state} for {names}.", messages.SUCCESS)

    def _confirm_sync(self, request, connections, *, enabled: bool, form_action: str = "", done_url: str = ""):
        connections = [connection for connection in connections if connection.sync_enabled != enabled]
        if not connections:
            self.message_user(request, f"The hourly sync is already {'on' if enabled else 'off'}.", messages.INFO)
            return HttpResponseRedirect(done_url) if done_url else None

        def perform():
            self._set_sync(request, connections, enabled=enabled)
            return HttpResponseRedirect(done_url) if done_url else None

        if enabled:
            items = [
                ConfirmItem(connection.organization.name, ("The next hourly run brings its Cliniko data up to date.",))
                for connection in connections
            ]
        else:
            items = [
                ConfirmItem(
                    connection.organization.name,
                    (
                        "Patients and appointments added or changed in its Cliniko stop reaching Mark and the "
                        "Routiq dashboards (last complete sync started "
                        f"{admin_datetime(connection.last_successful_sync_started_at)}).",
                        "WhatsApp reminders for appointments booked in Cliniko from now on are not sent.",
                        "The key stays stored: a sync started by hand still runs, and turning it on resumes.",
                    ),
                )
                for connection in connections
            ]
        state = "on" if enabled else "off"
        return confirm_action(
            self,
            request,
            connections,
            title=f"Turn the hourly sync {state}",
            question=f"Turn the hourly Cliniko sync {state} for these clinics?",
            items=items,
            confirm_label=f"Yes, turn it {state}",
            perform=perform,
            form_action=form_action,
            action="" if form_action else None,
        )

    @admin.action(
        description="Turn the hourly sync off (the clinic's Cliniko data stops updating)", permissions=["change"]
    )
    def turn_sync_off(self, request, queryset):
        return self._confirm_sync(request, list(queryset.select_related("organization")), enabled=False)

    @admin.action(description="Turn the hourly sync on", permissions=["change"])
    def turn_sync_on(self, request, queryset):
        return self._confirm_sync(request, list(queryset.select_related("organization")), enabled=True)

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
    # Mode, trigger and counts are filters and on the run's page; the start is a fixed-width minute (Django's
    # "Sept. 30, 2026, 11:54 p.m." grows with the date): the list fits 1,400 px on any day.
    list_display = ("public_id", "organization_link", "status_progress", "failed_count", "error_codes", "created")
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

    @admin.display(description="clinic", ordering="organization__name")
    def organization_link(self, obj: SyncRun) -> str:
        return admin_link(obj.organization)

    @admin.display(description="status", ordering="status")
    def status_progress(self, obj: SyncRun) -> str:
        return f"{obj.get_status_display()} ({self.progress(obj)})"

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: SyncRun) -> str:
        return admin_minute(obj.created_at)

    @admin.display(description="failed", ordering="records_failed")
    def failed_count(self, obj: SyncRun) -> int:
        return obj.records_failed

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
    list_display = ("name", "organization_link", "category", "duration_minutes", "archived", "last_synced_at")
    list_select_related = ("organization",)
    list_filter = ("archived",)
    search_fields = ("name", "organization__name", "=organization__public_id")

    @admin.display(description="clinic", ordering="organization__name")
    def organization_link(self, obj: ClinikoAppointmentType) -> str:
        return admin_link(obj.organization)


@admin.register(ClinikoPractitioner)
class ClinikoPractitionerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "organization_link", "designation", "active", "last_synced_at")
    list_select_related = ("organization",)
    list_filter = ("active",)
    search_fields = ("name", "organization__name", "=organization__public_id")

    @admin.display(description="clinic", ordering="organization__name")
    def organization_link(self, obj: ClinikoPractitioner) -> str:
        return admin_link(obj.organization)
