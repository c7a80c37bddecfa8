"""Mark admin: patients and appointments (with their reminders), read-only; every page that shows them is
on the audit trail (core.admin.AuditedViewAdminMixin). Phones are masked ("+34 ••• ••• 5678"); a patient
is found by exact phone (any format, read in MARK_DEFAULT_PHONE_REGION when written without "+") through
the blind index, or by name ignoring case and accents. The only writes are actions that call the services:
erase a patient, cancel an appointment; both irreversible, so each first shows a confirmation page (what
is deleted or stops, for which clinic) and runs only on its "yes".

Conversations (read-only, audited like patients): the list, and a conversation's page with its messages
inline, their text (and voice transcriptions, summaries) decrypted for staff; the conversation's
`admin.record_viewed` event covers the messages it shows.

Clinic settings (one row per organization; docs/mark.md, "Setting up a clinic"): country, time zone,
WhatsApp number and Messaging Service, templates, responder, Zoom. Saved through
patients.services.clinic_settings.clinic_settings_update (validated there; audited with the names of
the fields changed). The two secrets (the responder's API key, the Zoom client secret) are write-only:
the form says whether one is set and never shows it; a newly entered secret is confirmed as set on save
and never displayed again. Removing one (its "Remove" button under Status) stops Zoom meetings or the
responder for the clinic, so it goes through a confirmation page first.

Mark API users: "Add Mark API user" (from the clinic settings list or page) creates a platform user with a
role in one organization through mark_api_user_create; the generated password is shown once, on that
response (no-store, never kept in the session). A clinic's page lists its API users and roles."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template import engines
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from accounts.models import Membership, Organization
from core.admin import (
    AuditedViewAdminMixin,
    ConfirmItem,
    ReadOnlyAdminMixin,
    admin_actor,
    admin_datetime,
    admin_link,
    adopt_saved,
    confirm_action,
    shown_once_response,
)
from core.domain import DomainError, Invalid
from core.phones import e164_or_none, mask
from core.scoping import Role
from patients import services
from patients.models import Appointment, ClinicSettings, Conversation, Message, Patient, Reminder, fold_name
from patients.services import clinic_settings as settings_services
from patients.services import zoom


@admin.register(Patient)
class PatientAdmin(AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Fits 1,400 px beside the filters: status, language, source and archived are filters, not columns.
    list_display = ("public_id", "name", "organization_link", "masked_phone", "last_activity")
    list_filter = ("organization", "status", "source", "archived", "language")
    list_select_related = ("organization",)
    search_fields = ("=public_id",)
    search_help_text = "Patient id, a name (case and accents ignored) or an exact phone number."
    ordering = ("-last_activity",)
    fields = (
        "public_id",
        "uuid",
        "organization",
        "name",
        "masked_phone",
        "email",
        "language",
        "status",
        "notes",
        "metadata",
        "whatsapp_consent",
        "whatsapp_consent_changed_at",
        "whatsapp_opt_out_reason",
        "source",
        "external_id",
        "archived",
        "last_activity",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = ("erase_patients",)

    @admin.display(description="phone")
    def masked_phone(self, obj: Patient) -> str:
        return mask(obj.phone)

    @admin.display(description="clinic", ordering="organization__name")
    def organization_link(self, obj: Patient) -> str:
        return admin_link(obj.organization)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        phone = e164_or_none(term, region=settings.MARK_DEFAULT_PHONE_REGION)
        if phone is not None:
            return queryset.filter(phone_index=services.phone_index_of(phone)), False
        return queryset.filter(Q(public_id=term) | Q(name_search__contains=fold_name(term))), False

    @admin.action(description="Erase the selected patients (protected data deleted, ids tombstoned)")
    def erase_patients(self, request, queryset):
        patients = list(
            queryset.select_related("organization").annotate(
                conversation_total=Count("conversations", distinct=True),
                appointment_total=Count("appointments", distinct=True),
                pending_reminder_total=Count(
                    "appointments__reminders",
                    filter=Q(appointments__reminders__status=Reminder.Status.PENDING),
                    distinct=True,
                ),
            )
        )

        def perform():
            for patient in patients:
                services.patient_erase(patient=patient, actor=admin_actor(request))
            self.message_user(request, f"{len(patients)} patient(s) erased.", messages.SUCCESS)

        items = [
            ConfirmItem(
                f"{patient.public_id} ({patient.organization.name})",
                (
                    f"Deleted for good: name, phone, email, notes, {patient.conversation_total} conversation(s) "
                    f"with their messages and voice notes, {patient.appointment_total} appointment(s).",
                    f"{patient.pending_reminder_total} pending WhatsApp reminder(s) are never sent; queued "
                    "messages to the patient are withdrawn.",
                    f"{patient.organization.name}'s systems get 404 for {patient.public_id} from the Mark API; "
                    "a later Cliniko sync does not bring the patient back.",
                ),
            )
            for patient in patients
        ]
        return confirm_action(
            self,
            request,
            patients,
            title="Erase patients",
            question="Erase these patients? This cannot be undone.",
            items=items,
            confirm_label="Yes, erase for good",
            perform=perform,
        )


class ReminderInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Reminder
    fields = ("kind", "due_at", "status", "outbound_message")
    readonly_fields = fields
    extra = 0


@admin.register(Appointment)
class AppointmentAdmin(AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Fits 1,400 px beside the filters: the patient by name, type and duration on the page.
    list_display = ("public_id", "patient_link", "organization_link", "start_time", "status")
    list_filter = ("organization", "status", "did_not_arrive")
    list_select_related = ("organization", "patient")
    search_fields = ("=public_id", "=patient__public_id", "=external_id")
    search_help_text = "Appointment id, patient id or Cliniko appointment id."
    date_hierarchy = "start_time"
    ordering = ("-start_time",)
    fields = (
        "public_id",
        "organization",
        "patient",
        "start_time",
        "duration",
        "end_time",
        "appointment_type",
        "status",
        "location",
        "notes",
        "zoom_link",
        "calendly_link",
        "practitioner",
        "external_id",
        "cancelled_at",
        "cancellation_reason",
        "did_not_arrive",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = (ReminderInline,)
    actions = ("cancel_appointments",)

    @admin.display(description="clinic", ordering="organization__name")
    def organization_link(self, obj: Appointment) -> str:
        return admin_link(obj.organization)

    @admin.display(description="patient", ordering="patient__name")
    def patient_link(self, obj: Appointment) -> str:
        return admin_link(obj.patient, obj.patient.name or obj.patient.public_id)

    @admin.action(description="Cancel the selected appointments (pending reminders are skipped)")
    def cancel_appointments(self, request, queryset):
        appointments = list(
            queryset.select_related("patient", "patient__organization", "organization").annotate(
                pending_reminder_total=Count("reminders", filter=Q(reminders__status=Reminder.Status.PENDING))
            )
        )

        def perform():
            cancelled = 0
            for appointment in appointments:
                try:
                    # Through the Zoom wrapper: a meeting Mark made for it is deleted too (docs/mark.md).
                    zoom.appointment_cancel_with_zoom(appointment=appointment, actor=admin_actor(request), reason="")
                except DomainError as exc:
                    self.message_user(request, f"{appointment.public_id}: {exc.message}", messages.WARNING)
                else:
                    cancelled += 1
            self.message_user(request, f"{cancelled} appointment(s) cancelled.", messages.SUCCESS)

        items = []
        for appointment in appointments:
            label = (
                f"{appointment.public_id}: {appointment.patient.public_id} at {admin_datetime(appointment.start_time)} "
                f"({appointment.organization.name})"
            )
            if appointment.status == Appointment.Status.CANCELED:
                items.append(ConfirmItem(label, ("Already cancelled: nothing changes.",)))
                continue
            consequences = [
                f"{appointment.pending_reminder_total} pending WhatsApp reminder(s) to the patient are not sent.",
                f"{appointment.organization.name}'s systems see it as cancelled (Mark API and webhooks).",
            ]
            if appointment.zoom_link:
                consequences.append("Its Zoom meeting, if Mark made it, is deleted: the link stops working.")
            items.append(ConfirmItem(label, tuple(consequences)))
        return confirm_action(
            self,
            request,
            appointments,
            title="Cancel appointments",
            question="Cancel these appointments? A cancelled appointment cannot be reopened here.",
            items=items,
            confirm_label="Yes, cancel them",
            perform=perform,
        )


# --- Conversations -------------------------------------------------------------------------------------


class MessageInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Message
    fields = ("public_id", "created_at", "sender", "content_type", "content", "voice", "transcription", "delivery")
    readonly_fields = fields
    extra = 0
    ordering = ("created_at", "id")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("outbound_message")

    @admin.display(description="audio")
    def voice(self, obj: Message) -> str:
        if obj.content_type != Message.ContentType.VOICE:
            return ""
        seconds = f", {obj.media_duration:.0f} s" if obj.media_duration is not None else ""
        return f"{obj.media_format or '?'}{seconds}"

    @admin.display(description="status")
    def delivery(self, obj: Message) -> str:
        return obj.status


@admin.register(Conversation)
class ConversationAdmin(AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Fits 1,400 px beside the filters: the patient by name; channel, language, end time, counts on the page.
    list_display = ("public_id", "patient_link", "organization_link", "status", "start_time")
    list_filter = ("organization", "status", "language")
    list_select_related = ("organization", "patient")
    search_fields = ("=public_id", "=patient__public_id")
    search_help_text = "Conversation id or patient id."
    date_hierarchy = "start_time"
    ordering = ("-start_time",)
    fields = (
        "public_id",
        "organization",
        "patient",
        "channel",
        "language",
        "status",
        "start_time",
        "end_time",
        "last_message_at",
        "message_count",
        "summary",
        "metadata",
    )
    readonly_fields = fields
    inlines = (MessageInline,)

    @admin.display(description="clinic", ordering="organization__name")
    def organization_link(self, obj: Conversation) -> str:
        return admin_link(obj.organization)

    @admin.display(description="patient", ordering="patient__name")
    def patient_link(self, obj: Conversation) -> str:
        return admin_link(obj.patient, obj.patient.name or obj.patient.public_id)


# --- Clinic settings and Mark API users ----------------------------------------------------------------

_SECRETS = {
    # form field -> (model field, label)
    "new_responder_api_key": ("responder_api_key", "Responder API key"),
    "new_zoom_client_secret": ("zoom_client_secret", "Zoom client secret"),
}


def _form_error(exc: Invalid) -> forms.ValidationError:
    return forms.ValidationError(exc.message)


class ClinicSettingsForm(forms.ModelForm):
    """Each value checked by the service's own rules (the same messages the service would raise). The
    secrets are separate write-only fields: never pre-filled, never rendered back."""

    new_responder_api_key = forms.CharField(
        label="Responder API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    new_zoom_client_secret = forms.CharField(
        label="Zoom client secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    class Meta:
        model = ClinicSettings
        fields = (
            "organization",
            "country",
            "time_zone",
            "whatsapp_number",
            "whatsapp_messaging_service_sid",
            "whatsapp_templates",
            "remind_synced_appointments",
            "recent_days",
            "responder",
            "responder_model",
            "zoom_account_id",
            "zoom_client_id",
        )
        help_texts = {
            "country": "ISO 3166-1 alpha-2 (ES): numbers written without + are read in it. Empty: the platform's.",
            "time_zone": "IANA time zone (Europe/Madrid) for reminder texts and analytics. Empty: the platform's.",
            "whatsapp_number": "The clinic's WhatsApp sender in E.164 (+34930000001); one clinic per number.",
            "whatsapp_messaging_service_sid": "Optional Twilio Messaging Service (MG...) to send through.",
            "whatsapp_templates": 'Approved templates: {"reminder_24h": {"es": "HX...", "en": "HX..."}, ...}',
            "recent_days": "Routiq dashboards: an appointment counts as recent for this many days (1-365). "
            "Empty: the platform's ROUTIQ_RECENT_DAYS.",
            "remind_synced_appointments": "Send the two WhatsApp reminders for appointments the Cliniko sync "
            "brings in (from the next time the sync writes each appointment).",
            "responder_model": "Empty: MARK_RESPONDER_MODEL.",
            "zoom_account_id": "From the clinic's Zoom Server-to-Server OAuth app.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = self.instance
        for name, (model_field, label) in _SECRETS.items():
            is_set = bool(getattr(instance, model_field, None)) if instance.pk else False
            self.fields[name].help_text = (
                f"{label}: SET (stored encrypted, never shown). Type a new one to replace it."
                if is_set
                else f"{label}: not set. Shown nowhere after saving."
            )

    def _clean_with(self, field: str, cleaner):
        try:
            return cleaner(self.cleaned_data.get(field))
        except Invalid as exc:
            raise _form_error(exc) from None

    def clean_country(self):
        return self._clean_with("country", settings_services.clean_country)

    def clean_time_zone(self):
        return self._clean_with("time_zone", settings_services.clean_time_zone)

    def clean_whatsapp_messaging_service_sid(self):
        return self._clean_with("whatsapp_messaging_service_sid", settings_services.clean_messaging_service_sid)

    def clean_whatsapp_templates(self):
        return self._clean_with("whatsapp_templates", settings_services.clean_templates)

    def clean_responder_model(self):
        return self._clean_with("responder_model", settings_services.clean_responder_model)

    def clean_zoom_account_id(self):
        return self._clean_with("zoom_account_id", lambda v: settings_services.clean_zoom_id(v, "zoom_account_id"))

    def clean_zoom_client_id(self):
        return self._clean_with("zoom_client_id", lambda v: settings_services.clean_zoom_id(v, "zoom_client_id"))

    def clean(self):
        cleaned = super().clean()
        organization = cleaned.get("organization") or getattr(self.instance, "organization", None)
        number = cleaned.get("whatsapp_number")
        if organization is not None and number:
            try:
                cleaned["whatsapp_number"] = settings_services.clean_whatsapp_number(
                    number, organization=organization, region=cleaned.get("country") or ""
                )
            except Invalid as exc:
                self.add_error("whatsapp_number", _form_error(exc))
        for name, (model_field, _label) in _SECRETS.items():
            if cleaned.get(name):
                try:
                    settings_services.clean_secret(cleaned[name], model_field)
                except Invalid as exc:
                    self.add_error(name, _form_error(exc))
        return cleaned

    def secret_changes(self) -> dict:
        """{model field: new value | None (remove)} for the secrets the staff user touched."""
        changes = {}
        for name, (model_field, _label) in _SECRETS.items():
            if self.cleaned_data.get(name):
                changes[model_field] = self.cleaned_data[name]
        return changes


API_USER_ROLE_VALUES = [str(role) for role in settings_services.API_USER_ROLES]


@admin.register(ClinicSettings)
class ClinicSettingsAdmin(AuditedViewAdminMixin, admin.ModelAdmin):
    form = ClinicSettingsForm
    # Country and time zone are on the page: the list fits 1,400 px.
    list_display = (
        "clinic_name",
        "whatsapp_number",
        "responder",
        "zoom_is_connected",
        "api_users_count",
        "add_api_user_link",
    )
    list_select_related = ("organization",)
    list_filter = ("responder",)
    search_fields = ("organization__name", "=organization__public_id", "=whatsapp_number")
    search_help_text = "Clinic name, organization id (org_...) or its exact WhatsApp number (+E.164)."
    readonly_fields = ("secrets_status", "api_users", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("organization", "country", "time_zone", "recent_days")}),
        ("WhatsApp", {"fields": ("whatsapp_number", "whatsapp_messaging_service_sid", "whatsapp_templates",
                                 "remind_synced_appointments")}),
        ("Assistant responder", {"fields": ("responder", "responder_model", "new_responder_api_key")}),
        ("Zoom (server-to-server OAuth app)", {"fields": ("zoom_account_id", "zoom_client_id",
                                                          "new_zoom_client_secret")}),
        ("Status", {"fields": ("secrets_status", "api_users", "created_at", "updated_at")}),
    )  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, "organization") if obj is not None else fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                api_user_total=Count(
                    "organization__memberships",
                    filter=Q(organization__memberships__role__in=API_USER_ROLE_VALUES),
                    distinct=True,
                )
            )
        )

    def has_delete_permission(self, request, obj=None):
        return False  # settings are changed (or emptied), never deleted: the audit trail names them

    @admin.display(description="clinic", ordering="organization__name")
    def clinic_name(self, obj: ClinicSettings) -> str:
        return obj.organization.name  # the row's own link (the page links to the organization)

    @admin.display(description="Zoom", boolean=True)
    def zoom_is_connected(self, obj: ClinicSettings) -> bool:
        return obj.zoom_connected

    @admin.display(description="API users", ordering="api_user_total")
    def api_users_count(self, obj: ClinicSettings) -> int:
        return getattr(obj, "api_user_total", 0)

    @admin.display(description="")
    def add_api_user_link(self, obj: ClinicSettings) -> str:
        url = reverse("admin:patients_clinicsettings_api_user_add")
        return format_html('<a href="{}?organization={}">Add Mark API user</a>', url, obj.organization_id)

    @admin.display(description="Secrets")
    def secrets_status(self, obj: ClinicSettings) -> str:
        if obj is None or obj.pk is None:
            return "-"
        states = []
        for field, label in _SECRETS.values():
            if getattr(obj, field):
                url = reverse("admin:patients_clinicsettings_secret_remove", args=[obj.pk, field])
                states.append((label, format_html('set <a class="button" href="{}">Remove</a>', url)))
            else:
                states.append((label, "not set"))
        return format_html_join(", ", "{}: {}", states)

    @admin.display(description="Mark API users")
    def api_users(self, obj: ClinicSettings) -> str:
        if obj is None or obj.pk is None:
            return "-"
        memberships = (
            Membership.objects.filter(organization_id=obj.organization_id, role__in=API_USER_ROLE_VALUES)
            .select_related("user")
            .order_by("user__username")
        )
        rows = format_html_join(
            "", "<li>{} ({}{})</li>", ((m.user.username, m.role, "" if m.user.is_active else ", inactive")
                                       for m in memberships)
        )  # fmt: skip
        url = reverse("admin:patients_clinicsettings_api_user_add")
        link = format_html('<a href="{}?organization={}">Add Mark API user</a>', url, obj.organization_id)
        return format_html("<ul>{}</ul>{}", rows, link) if rows else link

    def save_form(self, request, form, change):
        return form.instance  # written by the service in save_model

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        organization = obj.organization if change else data["organization"]
        changes = {field: data[field] for field in ClinicSettingsForm.Meta.fields if field != "organization"}
        secret_changes = form.secret_changes()
        saved = settings_services.clinic_settings_update(
            organization=organization, actor=admin_actor(request), **changes, **secret_changes
        )
        adopt_saved(obj, saved)
        for field, value in secret_changes.items():
            label = dict(_SECRETS.values())[field]
            if value is None:
                self.message_user(request, f"{label} removed.", messages.SUCCESS)
            else:
                self.message_user(
                    request, f"{label} set: stored encrypted; it will not be shown again.", messages.SUCCESS
                )

    def save_related(self, request, form, formsets, change):
        pass  # no related rows

    # --- Mark API users ----------------------------------------------------------------------------------

    def get_urls(self):
        return [
            path(
                "<path:object_id>/remove-secret/<str:field>/",
                self.admin_site.admin_view(self.secret_remove_view),
                name="patients_clinicsettings_secret_remove",
            ),
            path(
                "api-users/add/",
                self.admin_site.admin_view(self.api_user_add_view),
                name="patients_clinicsettings_api_user_add",
            ),
            *super().get_urls(),
        ]

    def secret_remove_view(self, request, object_id, field):
        if not self.has_change_permission(request):
            raise PermissionDenied
        labels = dict(_SECRETS.values())
        if field not in labels:
            raise Http404("No such secret")
        config = get_object_or_404(ClinicSettings.objects.select_related("organization"), pk=object_id)
        back = reverse("admin:patients_clinicsettings_change", args=[config.pk])
        if not getattr(config, field):
            self.message_user(request, f"{labels[field]} is not set.", messages.INFO)
            return HttpResponseRedirect(back)
        name = config.organization.name
        stops = {
            "zoom_client_secret": (
                f"Mark can no longer create or delete Zoom meetings for {name}'s appointments; meetings already "
                "made keep their links.",
            ),
            "responder_api_key": (
                f"The assistant stops answering {name}'s patients on WhatsApp and summarising their "
                "conversations; their messages wait for the clinic's staff (through the Mark API).",
            ),
        }[field]

        def perform():
            settings_services.clinic_settings_update(
                organization=config.organization, actor=admin_actor(request), **{field: None}
            )
            self.message_user(request, f"{labels[field]} removed.", messages.SUCCESS)
            return HttpResponseRedirect(back)

        return confirm_action(
            self,
            request,
            [config],
            title=f"Remove the {labels[field]}",
            question=f"Remove {name}'s {labels[field]}? It is deleted, not kept: the clinic must send it again.",
            items=[ConfirmItem(name, stops)],
            confirm_label="Yes, remove it",
            perform=perform,
            form_action=request.path,
            action="",
        )

    def api_user_add_view(self, request):
        if not (request.user.has_perm("accounts.add_user") and request.user.has_perm("accounts.add_membership")):
            raise PermissionDenied
        if request.method == "POST":
            form = MarkApiUserForm(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    user, password = settings_services.mark_api_user_create(
                        organization=data["organization"],
                        username=data["username"],
                        role=data["role"],
                        email=data.get("email") or "",
                        actor=admin_actor(request),
                    )
                except Invalid as exc:
                    field = (exc.details or {}).get("field")
                    form.add_error(field if field in form.fields else None, exc.message)
                else:
                    messages.success(
                        request,
                        format_html(
                            "Mark API user <code>{}</code> ({} of {}, {}) — password <code>{}</code>. "
                            "It signs in with POST /api/v1/auth/token.",
                            user.username,
                            data["role"],
                            data["organization"].name,
                            data["organization"].public_id,
                            password,
                        ),
                    )
                    return shown_once_response(
                        self.admin_site,
                        request,
                        title="Mark API user created",
                        back_url_name="admin:patients_clinicsettings_changelist",
                        back_label="clinic settings",
                    )
        else:
            form = MarkApiUserForm(initial={"organization": request.GET.get("organization"), "role": Role.STAFF})
        context = {
            **self.admin_site.each_context(request),
            "title": "Add Mark API user",
            "form": form,
            "back_url": reverse("admin:patients_clinicsettings_changelist"),
        }
        response = HttpResponse(engines["django"].from_string(_API_USER_FORM).render(context, request))
        response["Cache-Control"] = "no-store"
        return response


class MarkApiUserForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.filter(is_active=True).order_by("name"))
    username = forms.CharField(max_length=150, help_text="Letters, digits and @ . + - _ only.")
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(
        choices=[(str(role), role.label) for role in settings_services.API_USER_ROLES],
        help_text="owner, admin and staff read and write through the Mark API; viewer reads only.",
    )


_API_USER_FORM = """{% extends "admin/base_site.html" %}
{% block content %}
<p>A platform user with a role in one clinic, for the clinic's systems (POST /api/v1/auth/token). A password
is generated and shown once on the next page.</p>
<form method="post">{% csrf_token %}
{{ form.as_p }}
<input type="submit" value="Create user and show its password once">
</form>
<p><a href="{{ back_url }}">Back to clinic settings</a></p>
{% endblock %}"""
