"""Mark patients API (spec: mark-assistant-api.md, "Patients"). Input serializers check types and shapes;
the services (patients.services) apply the domain rules (E.164 phone, e-mail, language code, sizes) and
answer Invalid naming the field. Output serializers render the responses and are the schema."""

from __future__ import annotations

from rest_framework import serializers

from core.serializers import IsoDateTimeField, OutputSerializer, StrictCharField
from patients.models import Patient
from patients.services import NAME_MAX, NOTES_MAX

STATUSES = list(Patient.Status.values)
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
