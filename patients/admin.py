"""Mark admin: patients and appointments (with their reminders), read-only; every page that shows them is
on the audit trail (core.admin.AuditedViewAdminMixin). Phones are masked ("+34 ••• ••• 5678"); a patient
is found by exact phone (any format, read in MARK_DEFAULT_PHONE_REGION when written without "+") through
the blind index, or by name ignoring case and accents. The only writes are actions that call the services:
erase a patient, cancel an appointment."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Q

from core.admin import AuditedViewAdminMixin, ReadOnlyAdminMixin, admin_actor
from core.domain import DomainError
from core.phones import e164_or_none, mask
from patients import services
from patients.models import Appointment, Patient, Reminder, fold_name


@admin.register(Patient)
class PatientAdmin(AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "public_id",
        "organization",
        "name",
        "masked_phone",
        "language",
        "status",
        "source",
        "archived",
        "last_activity",
    )
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
        erased = 0
        for patient in queryset.select_related("organization"):
            services.patient_erase(patient=patient, actor=admin_actor(request))
            erased += 1
        self.message_user(request, f"{erased} patient(s) erased.", messages.SUCCESS)


class ReminderInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Reminder
    fields = ("kind", "due_at", "status", "outbound_message")
    readonly_fields = fields
    extra = 0


@admin.register(Appointment)
class AppointmentAdmin(AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("public_id", "organization", "patient", "start_time", "duration", "appointment_type", "status")
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

    @admin.action(description="Cancel the selected appointments (pending reminders are skipped)")
    def cancel_appointments(self, request, queryset):
        cancelled = 0
        for appointment in queryset.select_related("patient", "patient__organization"):
            try:
                services.appointment_cancel(appointment=appointment, actor=admin_actor(request), reason="")
            except DomainError as exc:
                self.message_user(request, f"{appointment.public_id}: {exc.message}", messages.WARNING)
            else:
                cancelled += 1
        self.message_user(request, f"{cancelled} appointment(s) cancelled.", messages.SUCCESS)
