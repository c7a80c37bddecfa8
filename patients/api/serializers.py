"""Mark patients API (spec: mark-assistant-api.md, "Patients"). Input serializers check types and shapes;
the services (patients.services) apply the domain rules (E.164 phone, e-mail, language code, sizes) and
answer Invalid naming the field. Output serializers render the responses and are the schema."""

from __future__ import annotations

from rest_framework import serializers

from core.serializers import (
    InstantField,
    IsoDateTimeField,
    OutputSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
)
from patients.models import Appointment, Patient, Reminder
from patients.services import MAX_DURATION_MINUTES, NAME_MAX, NOTES_MAX, TEXT_MAX, reminder_status

STATUSES = list(Patient.Status.values)
APPOINTMENT_STATUSES = list(Appointment.Status.values)
# PUT cannot cancel: cancelling has its own action (POST .../cancel), which drops reminders and may notify.
APPOINTMENT_UPDATE_STATUSES = [value for value in APPOINTMENT_STATUSES if value != Appointment.Status.CANCELED]
SEARCH_MAX = 200
LANGUAGE_MAX = 10

# --- Inputs ----------------------------------------------------------------------------------------


class PatientCreateInput(serializers.Serializer):
    name = StrictCharField(max_length=NAME_MAX)
    phone_number = StrictCharField(
        required=False, allow_null=True, allow_blank=True, max_length=40, help_text="any format; stored as E.164"
    )
    email = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=254)
    preferred_language = StrictCharField(
        required=False, default="en", max_length=LANGUAGE_MAX, help_text="a language code: es, ca, en, ar, ..."
    )
    notes = StrictCharField(
        required=False, allow_null=True, allow_blank=True, max_length=NOTES_MAX, trim_whitespace=False
    )
    metadata = serializers.DictField(required=False, allow_null=True, help_text="a JSON object, at most 10 kB")


class PatientUpdateInput(PatientCreateInput):
    """PUT is a partial update: only the fields sent change."""

    name = StrictCharField(required=False, max_length=NAME_MAX)
    preferred_language = StrictCharField(required=False, max_length=LANGUAGE_MAX)
    status = serializers.ChoiceField(choices=STATUSES, required=False)


class AppointmentCreateInput(serializers.Serializer):
    patient_id = StrictCharField(max_length=40, help_text="pat_...")
    start_time = InstantField(help_text="ISO 8601 with a time zone; must be in the future")
    duration = StrictIntegerField(min_value=1, max_value=MAX_DURATION_MINUTES, help_text="minutes")
    type = StrictCharField(required=False, allow_blank=True, max_length=100, default="")
    notes = StrictCharField(
        required=False, allow_null=True, allow_blank=True, max_length=NOTES_MAX, trim_whitespace=False
    )
    location = StrictCharField(required=False, allow_blank=True, max_length=TEXT_MAX, default="")
    zoom_link = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=500)
    calendly_link = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=500)


class AppointmentUpdateInput(serializers.Serializer):
    """PUT is a partial update: only the fields sent change. A new start or duration re-plans the reminders."""

    start_time = InstantField(required=False, help_text="ISO 8601 with a time zone; must be in the future")
    duration = StrictIntegerField(required=False, min_value=1, max_value=MAX_DURATION_MINUTES, help_text="minutes")
    status = serializers.ChoiceField(choices=APPOINTMENT_UPDATE_STATUSES, required=False)
    type = StrictCharField(required=False, allow_blank=True, max_length=100)
    notes = StrictCharField(
        required=False, allow_null=True, allow_blank=True, max_length=NOTES_MAX, trim_whitespace=False
    )
    location = StrictCharField(required=False, allow_blank=True, max_length=TEXT_MAX)
    zoom_link = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=500)
    calendly_link = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=500)


class AppointmentCancelInput(serializers.Serializer):
    reason = StrictCharField(
        required=False, allow_null=True, allow_blank=True, max_length=NOTES_MAX, default="", trim_whitespace=False
    )
    notify_patient = StrictBooleanField(required=False, default=False)


# --- Outputs ---------------------------------------------------------------------------------------


class PatientListItemOutput(OutputSerializer):
    id = serializers.CharField(source="public_id", help_text="pat_...")
    name = serializers.CharField()
    phone_number = serializers.CharField(source="phone", allow_null=True, help_text="E.164")
    email = serializers.CharField(allow_null=True)
    registration_date = IsoDateTimeField(source="created_at")
    last_activity = IsoDateTimeField()
    preferred_language = serializers.CharField(source="language")
    status = serializers.ChoiceField(choices=STATUSES)


class PatientOutput(PatientListItemOutput):
    notes = serializers.CharField(allow_blank=True)
    metadata = serializers.DictField()
    whatsapp_consent = serializers.BooleanField(
        help_text="false once the patient opted out (STOP) or the clinic stopped it"
    )
    whatsapp_opt_out_reason = serializers.CharField(
        allow_blank=True,
        help_text='why WhatsApp messages stopped: "stop_keyword", "patient_request", "clinic"; "" while allowed',
    )


class DeleteOutput(OutputSerializer):
    success = serializers.BooleanField()
    message = serializers.CharField()


class BlankAsNullCharField(serializers.CharField):
    """A link stored as "" (none given) renders as null."""

    def to_representation(self, value):
        return value or None


class ReminderStatusField(serializers.ChoiceField):
    """The reminder's status as the outbox knows it (`reminder_status`): read from the whole reminder."""

    def __init__(self, **kwargs):
        super().__init__(choices=list(Reminder.Status.values), source="*", **kwargs)

    def to_representation(self, reminder):
        return reminder_status(reminder)


class ReminderOutput(OutputSerializer):
    type = serializers.CharField(default="whatsapp", help_text="always whatsapp")
    time = IsoDateTimeField(source="due_at")
    status = ReminderStatusField()


class AppointmentListItemOutput(OutputSerializer):
    id = serializers.CharField(source="public_id", help_text="apt_...")
    patient_id = serializers.CharField(source="patient.public_id", help_text="pat_...")
    patient_name = serializers.CharField(source="patient.name")
    start_time = IsoDateTimeField()
    end_time = IsoDateTimeField(help_text="start_time + duration")
    duration = serializers.IntegerField(help_text="minutes")
    type = serializers.CharField(source="appointment_type", allow_blank=True)
    status = serializers.ChoiceField(choices=APPOINTMENT_STATUSES)
    notes = serializers.CharField(allow_blank=True)


class AppointmentOutput(AppointmentListItemOutput):
    location = serializers.CharField(allow_blank=True)
    zoom_link = BlankAsNullCharField(allow_null=True)
    calendly_link = BlankAsNullCharField(allow_null=True)
    reminders = ReminderOutput(many=True)


class AppointmentCancelOutput(OutputSerializer):
    id = serializers.CharField(source="public_id", help_text="apt_...")
    status = serializers.ChoiceField(choices=APPOINTMENT_STATUSES)
    cancellation_time = IsoDateTimeField(source="cancelled_at")
    cancellation_reason = serializers.CharField(allow_blank=True)
    notification_sent = serializers.BooleanField(help_text="whether a WhatsApp notice to the patient was queued")
