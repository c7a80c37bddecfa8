"""Mark patients API (spec: mark-assistant-api.md, "Patients"): /api/v1/patients and
/api/v1/patients/{patient_id}. Organization-scoped (core.scoping): a platform token (or an OIDC token) of
a member of the clinic; a member of several clinics names one with X-Organization-ID. owner/admin/staff
read and write, viewer reads. Another clinic's `pat_` id is a 404 exactly like an unknown one (the
selector looks ids up inside the organization only). Errors in Mark's `{"error": {...}}` body.

Thin views: input serializer (core.validation), one selector or service, output serializer.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from accounts.authentication import OIDCAuthentication, PlatformJWTAuthentication
from core import idempotency
from core.actors import Actor
from core.api import ApiView
from core.apis import MARK
from core.context import note_subjects
from core.domain import NotFound
from core.errors import ApiError
from core.pagination import page_body, page_request, page_serializer, paginate
from core.schema import error_responses
from core.scoping import ORGANIZATION_HEADER, WRITE_ROLES, OrganizationRolePermission, Role
from core.time import parse_instant
from core.validation import validated
from patients import selectors, services
from patients.api import serializers as s
from patients.services import zoom

ORGANIZATION_PARAMETER = OpenApiParameter(
    ORGANIZATION_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="The clinic (org_...), required when the caller belongs to several organizations.",
)
LIST_PARAMETERS = [
    OpenApiParameter("page", OpenApiTypes.INT, description="Page number, from 1 (default 1)"),
    OpenApiParameter("limit", OpenApiTypes.INT, description="Results per page, 1 to 100 (default 20)"),
    OpenApiParameter(
        "search", OpenApiTypes.STR, description="A name (case and accents ignored) or a phone number in any format"
    ),
    OpenApiParameter("status", OpenApiTypes.STR, enum=s.STATUSES, description="active or inactive"),
    OpenApiParameter("language", OpenApiTypes.STR, description="Preferred language code, e.g. es"),
]
TAGS = [MARK.tag]
AUTH_NOTE = (
    "Platform token (POST /api/v1/auth/token) of a member of the clinic; owner, admin and staff read and "
    "write, viewer reads only, other roles get 403."
)


def _schema(operation_id: str, summary: str, *, responses: dict, errors, request=None, parameters=()):
    return extend_schema(
        tags=TAGS,
        operation_id=operation_id,
        summary=summary,
        description=AUTH_NOTE,
        request=request,
        parameters=[ORGANIZATION_PARAMETER, *parameters],
        responses={**responses, **error_responses(MARK, *errors)},
    )


def _input(serializer_class, request) -> dict:
    return validated(serializer_class, request.data, field_details=True)


def _filter(params, name: str, *, max_length: int, choices=None) -> str | None:
    """An optional text filter: too long or not one of `choices` is a 400 naming the parameter."""
    value = params.get(name)
    if value is None:
        return None
    if "\x00" in value:  # PostgreSQL text cannot hold NUL: refuse it before the query
        raise ApiError(400, f"{name} must not contain NUL characters", details={"parameter": name})
    if len(value) > max_length or (choices is not None and value not in choices):
        allowed = f"one of: {', '.join(choices)}" if choices else f"at most {max_length} characters"
        raise ApiError(400, f"{name} must be {allowed}", details={"parameter": name})
    return value


class _MarkView(ApiView):
    api_family = MARK
    authentication_classes = [OIDCAuthentication, PlatformJWTAuthentication]
    permission_classes = [OrganizationRolePermission]
    # The roles issue 11 names, and no others: therapist and supervisor are the therapist dashboard's
    # roles and get no access to a clinic's patient records (least privilege; docs/mark.md, "API").
    read_roles = frozenset({Role.OWNER, Role.ADMIN, Role.STAFF, Role.VIEWER})
    write_roles = WRITE_ROLES

    def organization(self, request):
        return request.organization_scope.organization

    def actor(self, request) -> Actor:
        return Actor.user(request.user)


class PatientListView(_MarkView):
    @_schema(
        "mark_patients_list",
        "List patients",
        responses={200: page_serializer(s.PatientListItemOutput)},
        errors=(400, 401, 403, 404, 429),
        parameters=LIST_PARAMETERS,
    )
    def get(self, request):
        params = request.query_params
        paging = page_request(params)
        filters = {
            "organization": self.organization(request),
            "search": _filter(params, "search", max_length=s.SEARCH_MAX),
            "status": _filter(params, "status", max_length=s.LANGUAGE_MAX, choices=s.STATUSES),
            "language": _filter(params, "language", max_length=s.LANGUAGE_MAX),
        }
        page = paginate(selectors.patient_list(**filters), paging, total=selectors.patient_list_total(**filters))
        note_subjects(request, "patient", [patient.public_id for patient in page.items])
        return Response(page_body(page, s.PatientListItemOutput.render_many(page.items)))

    @_schema(
        "mark_patients_create",
        "Create a patient",
        request=s.PatientCreateInput,
        responses={201: s.PatientOutput},
        errors=(400, 401, 403, 404, 409, 429),
    )
    def post(self, request):
        data = _input(s.PatientCreateInput, request)
        patient = services.patient_create(organization=self.organization(request), actor=self.actor(request), **data)
        note_subjects(request, "patient", [patient.public_id])
        return Response(s.PatientOutput(patient).data, status=status.HTTP_201_CREATED)


class PatientDetailView(_MarkView):
    def _patient(self, request, patient_id: str):
        patient = selectors.patient_get(organization=self.organization(request), public_id=patient_id)
        note_subjects(request, "patient", [patient.public_id])
        return patient

    @_schema("mark_patients_get", "Get a patient", responses={200: s.PatientOutput}, errors=(400, 401, 403, 404, 429))
    def get(self, request, patient_id: str):
        return Response(s.PatientOutput(self._patient(request, patient_id)).data)

    @_schema(
        "mark_patients_update",
        "Update a patient (partial: only the fields sent change)",
        request=s.PatientUpdateInput,
        responses={200: s.PatientOutput},
        errors=(400, 401, 403, 404, 429),
    )
    def put(self, request, patient_id: str):
        data = _input(s.PatientUpdateInput, request)
        patient = services.patient_update(patient=self._patient(request, patient_id), actor=self.actor(request), **data)
        return Response(s.PatientOutput(patient).data)

    @_schema(
        "mark_patients_delete",
        "Delete a patient (erases their data; every id of theirs then answers 404)",
        responses={200: s.DeleteOutput},
        errors=(400, 401, 403, 404, 429),
    )
    def delete(self, request, patient_id: str):
        services.patient_erase(patient=self._patient(request, patient_id), actor=self.actor(request))
        return Response(s.DeleteOutput({"success": True, "message": "Patient deleted successfully"}).data)


# --- Appointments (spec: "Appointments") ----------------------------------------------------------------

APPOINTMENT_LIST_PARAMETERS = [
    OpenApiParameter("page", OpenApiTypes.INT, description="Page number, from 1 (default 1)"),
    OpenApiParameter("limit", OpenApiTypes.INT, description="Results per page, 1 to 100 (default 20)"),
    OpenApiParameter("patient_id", OpenApiTypes.STR, description="Only this patient's appointments (pat_...)"),
    OpenApiParameter(
        "start_date", OpenApiTypes.STR, description="ISO 8601 date or date-time: appointments starting at or after it"
    ),
    OpenApiParameter(
        "end_date", OpenApiTypes.STR, description="ISO 8601 date or date-time: appointments starting at or before it"
    ),
    OpenApiParameter("status", OpenApiTypes.STR, enum=s.APPOINTMENT_STATUSES, description="Appointment status"),
]


def _instant_param(params, name: str):
    """An optional ISO 8601 date or date-time filter; anything else is a 400 naming the parameter."""
    raw = params.get(name)
    if raw is None:
        return None
    value = parse_instant(raw) if "\x00" not in raw and len(raw) <= 64 else None
    if value is None:
        raise ApiError(400, f"{name} must be an ISO 8601 date or date-time", details={"parameter": name})
    return value


class AppointmentListView(_MarkView):
    @_schema(
        "mark_appointments_list",
        "List appointments",
        responses={200: page_serializer(s.AppointmentListItemOutput)},
        errors=(400, 401, 403, 404, 429),
        parameters=APPOINTMENT_LIST_PARAMETERS,
    )
    def get(self, request):
        params = request.query_params
        paging = page_request(params)
        start = _instant_param(params, "start_date")
        end = _instant_param(params, "end_date")
        if start is not None and end is not None and end < start:
            raise ApiError(400, "end_date must not be before start_date", details={"parameter": "end_date"})
        appointments = selectors.appointment_list(
            organization=self.organization(request),
            patient_id=_filter(params, "patient_id", max_length=40),
            start=start,
            end=end,
            status=_filter(params, "status", max_length=20, choices=s.APPOINTMENT_STATUSES),
        )
        page = paginate(appointments, paging)
        note_subjects(request, "appointment", [appointment.public_id for appointment in page.items])
        return Response(page_body(page, s.AppointmentListItemOutput.render_many(page.items)))

    @_schema(
        "mark_appointments_create",
        "Book an appointment (a start in the past is 400, an overlap with the patient's active appointment 409)",
        request=s.AppointmentCreateInput,
        responses={201: s.AppointmentOutput},
        errors=(400, 401, 403, 404, 409, 422, 429),
        parameters=idempotency.PARAMETERS,
    )
    def post(self, request):
        data = dict(_input(s.AppointmentCreateInput, request))
        # Idempotency-Key (core.idempotency): a retry replays the first answer and books nothing twice.
        return idempotency.idempotent(request, api=MARK.name, run=lambda _prepared: self._create(request, data))

    def _create(self, request, data: dict):
        organization = self.organization(request)
        patient_id = data.pop("patient_id")
        try:
            patient = selectors.patient_get(organization=organization, public_id=patient_id)
        except NotFound:
            # An id in a body is the caller's input, not the resource addressed: 400 naming the field.
            raise ApiError(400, "Unknown patient_id", details={"field": "patient_id"}) from None
        data["appointment_type"] = data.pop("type", "")
        appointment = zoom.appointment_create_with_zoom(patient=patient, actor=self.actor(request), **data)
        note_subjects(request, "appointment", [appointment.public_id])
        appointment = selectors.appointment_get(organization=organization, public_id=appointment.public_id)
        return Response(s.AppointmentOutput(appointment).data, status=status.HTTP_201_CREATED)


class _AppointmentView(_MarkView):
    def _appointment(self, request, appointment_id: str):
        appointment = selectors.appointment_get(organization=self.organization(request), public_id=appointment_id)
        note_subjects(request, "appointment", [appointment.public_id])
        return appointment


class AppointmentDetailView(_AppointmentView):
    @_schema(
        "mark_appointments_get",
        "Get an appointment",
        responses={200: s.AppointmentOutput},
        errors=(400, 401, 403, 404, 429),
    )
    def get(self, request, appointment_id: str):
        return Response(s.AppointmentOutput(self._appointment(request, appointment_id)).data)

    @_schema(
        "mark_appointments_update",
        "Update an appointment (partial; a new start re-plans the reminders and makes it rescheduled)",
        request=s.AppointmentUpdateInput,
        responses={200: s.AppointmentOutput},
        errors=(400, 401, 403, 404, 409, 429),
    )
    def put(self, request, appointment_id: str):
        data = dict(_input(s.AppointmentUpdateInput, request))
        if "type" in data:
            data["appointment_type"] = data.pop("type")
        appointment = self._appointment(request, appointment_id)
        zoom.appointment_update_with_zoom(appointment=appointment, actor=self.actor(request), **data)
        appointment = selectors.appointment_get(organization=self.organization(request), public_id=appointment_id)
        return Response(s.AppointmentOutput(appointment).data)


class AppointmentCancelView(_AppointmentView):
    @_schema(
        "mark_appointments_cancel",
        "Cancel an appointment (pending reminders are dropped; notify_patient queues a WhatsApp notice)",
        request=s.AppointmentCancelInput,
        responses={200: s.AppointmentCancelOutput},
        errors=(400, 401, 403, 404, 409, 429),
    )
    def post(self, request, appointment_id: str):
        data = _input(s.AppointmentCancelInput, request)
        appointment, notified = zoom.appointment_cancel_with_zoom(
            appointment=self._appointment(request, appointment_id),
            actor=self.actor(request),
            reason=data["reason"],
            notify_patient=data["notify_patient"],
        )
        body = {
            "public_id": appointment.public_id,
            "status": appointment.status,
            "cancelled_at": appointment.cancelled_at,
            "cancellation_reason": appointment.cancellation_reason,
            "notification_sent": notified,
        }
        return Response(s.AppointmentCancelOutput(body).data)
