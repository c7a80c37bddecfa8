"""Routiq read API (spec: routiq-backend-api.md): authentication checks, the five patient views, the three
dashboard views. Every route is in the ROUTIQ family (core.apis: its `{"error","detail","timestamp","path"}`
body, the API rate tier and its headers). Bearer: a Clerk session token (OIDC, verified by JWKS) or a platform
token. The organization in the path is `<org_id:organization_id>` (our public id or the linked Clerk id, so
`/api/v1/patients/org_...` is Routiq's and `/api/v1/patients/pat_...` stays Mark's); core.scoping answers 404
for an organization that does not exist, 403 for one the caller does not belong to or a Clerk token whose
active organization is another, the same on every route.

Thin views: query parameters -> one selector -> output serializer. Definitions: sync/selectors.py and
docs/routiq.md, "Definitions".
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from accounts.authentication import OIDCAuthentication, PlatformJWTAuthentication
from core.actors import Actor
from core.api import ApiView
from core.apis import ROUTIQ
from core.context import note_subjects
from core.errors import ApiError
from core.pagination import offset_request, parse_int_param
from core.rounding import ratio, round_half_up
from core.schema import error_responses
from core.scoping import ORGANIZATION_HEADER, OrganizationRolePermission, Role
from core.time import utc_now
from sync import selectors
from sync.api import serializers as s
from sync.models import SyncRun

TAGS = [ROUTIQ.tag]
AUTH_NOTE = (
    "Bearer: a Clerk session token whose active organization is this one, or a platform token "
    "(POST /api/v1/auth/token) of a member. Owner, admin, staff and viewer read; other roles get 403. "
    "An organization that does not exist is 404, one the caller does not belong to 403."
)
ORGANIZATION_HEADER_PARAMETER = OpenApiParameter(
    ORGANIZATION_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="The organization (org_...: ours or its Clerk id); must be the one in the path when both are given.",
)
DEFAULT_LIMIT, MAX_LIMIT = 50, 500
PAGE_PARAMETERS = [
    OpenApiParameter("limit", OpenApiTypes.INT, description=f"Patients per page, 1 to {MAX_LIMIT} (default 50)"),
    OpenApiParameter("offset", OpenApiTypes.INT, description="Patients to skip, from 0 (default 0)"),
]
ACTIVITY_DEFAULT, ACTIVITY_MAX, DASHBOARD_ACTIVITY = 20, 100, 10
ACTIVITY_PARAMETERS = [
    OpenApiParameter(
        "limit", OpenApiTypes.INT, description=f"Entries, 1 to {ACTIVITY_MAX} (default {ACTIVITY_DEFAULT})"
    ),
]
# A clinic's patient data: the roles that read it in Mark too (therapist/supervisor are the therapist
# dashboard's roles).
READ_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.STAFF, Role.VIEWER})
ERRORS = (400, 401, 403, 404, 429)
APPOINTMENT_TYPE_MAX = 200


def _schema(operation_id: str, summary: str, *, response, parameters=(), errors=ERRORS):
    return extend_schema(
        tags=TAGS,
        operation_id=operation_id,
        summary=summary,
        description=AUTH_NOTE,
        parameters=[ORGANIZATION_HEADER_PARAMETER, *parameters],
        responses={200: response, **error_responses(ROUTIQ, *errors)},
    )


class RoutiqView(ApiView):
    """Base of the organization-scoped Routiq views (sync/api/ops.py builds on it too)."""

    api_family = ROUTIQ
    authentication_classes = [OIDCAuthentication, PlatformJWTAuthentication]
    permission_classes = [OrganizationRolePermission]
    read_roles = READ_ROLES
    write_roles = frozenset({Role.OWNER, Role.ADMIN})

    def organization(self, request):
        return request.organization_scope.organization

    def organization_label(self, request) -> str:
        """The organization as the request named it (path, then header); else its Clerk id when linked,
        else our public id."""
        named = (self.kwargs or {}).get("organization_id") or (request.headers.get(ORGANIZATION_HEADER) or "").strip()
        if named:
            return named
        organization = self.organization(request)
        return organization.clerk_organization_id or organization.public_id

    def actor(self, request) -> Actor:
        return Actor.user(request.user)


# --- Authentication -----------------------------------------------------------------------------------------


class AuthVerifyView(RoutiqView):
    @_schema(
        "routiq_auth_verify",
        "Verify the token (and the organization in X-Organization-ID)",
        response=s.RoutiqVerifyOutput,
    )
    def get(self, request):
        body = {
            "authenticated": True,
            "organization_id": self.organization_label(request),
            "message": "Authentication successful",
        }
        return Response(s.RoutiqVerifyOutput(body).data)


class OrganizationAccessView(RoutiqView):
    @_schema("routiq_auth_organization_access", "Check access to an organization", response=s.RoutiqAccessOutput)
    def get(self, request, organization_id: str):
        body = {"organization_id": organization_id, "access_granted": True, "message": "Access granted"}
        return Response(s.RoutiqAccessOutput(body).data)


# --- Patients -----------------------------------------------------------------------------------------------


class _PatientListView(RoutiqView):
    output = s.RoutiqPatientListOutput

    def queryset(self, request, now, days: int, **kwargs):
        raise NotImplementedError

    def extra(self, **kwargs) -> dict:
        return {}

    def get(self, request, organization_id: str, **kwargs):
        paging = offset_request(request.query_params, default_limit=DEFAULT_LIMIT, max_limit=MAX_LIMIT)
        now = utc_now()
        days = selectors.recent_days(self.organization(request))
        total, page = selectors.patient_page(
            self.queryset(request, now, days, **kwargs), now=now, days=days, limit=paging.limit,
            offset=paging.offset,
        )  # fmt: skip
        note_subjects(request, "patient", [patient.public_id for patient in page])
        body = {
            "organization_id": organization_id,
            "patients": page,
            "total_count": total,
            "limit": paging.limit,
            "offset": paging.offset,
            "timestamp": now,
            **self.extra(**kwargs),
        }
        return Response(self.output(body).data)


class ActivePatientListView(_PatientListView):
    @_schema(
        "routiq_patients_list",
        "List active patients (a recent or an upcoming appointment)",
        response=s.RoutiqPatientListOutput,
        parameters=PAGE_PARAMETERS,
    )
    def get(self, request, organization_id: str):
        return super().get(request, organization_id)

    def queryset(self, request, now, days):
        return selectors.active_patients(organization=self.organization(request), now=now, days=days)


class PatientsWithAppointmentsView(_PatientListView):
    output = s.RoutiqPatientWithAppointmentsListOutput

    @_schema(
        "routiq_patients_with_appointments",
        "List patients with an upcoming appointment, soonest first, with priority",
        response=s.RoutiqPatientWithAppointmentsListOutput,
        parameters=PAGE_PARAMETERS,
    )
    def get(self, request, organization_id: str):
        return super().get(request, organization_id)

    def queryset(self, request, now, days):
        return selectors.patients_with_appointments(organization=self.organization(request), now=now, days=days)


class PatientsByAppointmentTypeView(_PatientListView):
    output = s.RoutiqPatientsByTypeListOutput

    @_schema(
        "routiq_patients_by_appointment_type",
        "List active patients whose next or most frequent appointment type is the one named (URL-encoded)",
        response=s.RoutiqPatientsByTypeListOutput,
        parameters=PAGE_PARAMETERS,
    )
    def get(self, request, organization_id: str, appointment_type: str):
        return super().get(request, organization_id, appointment_type=self._type(appointment_type))

    @staticmethod
    def _type(value: str) -> str:
        if "\x00" in value or not value.strip() or len(value) > APPOINTMENT_TYPE_MAX:
            raise ApiError(
                400,
                f"appointment_type must be 1 to {APPOINTMENT_TYPE_MAX} characters without NUL",
                details={"parameter": "appointment_type"},
            )
        return value

    def queryset(self, request, now, days, appointment_type):
        return selectors.patients_by_appointment_type(
            days=days,
            organization=self.organization(request), appointment_type=appointment_type, now=now
        )

    def extra(self, appointment_type):
        return {"appointment_type": appointment_type}


class ActiveSummaryView(RoutiqView):
    @_schema("routiq_patients_active_summary", "Summary of the active patients", response=s.RoutiqActiveSummaryOutput)
    def get(self, request, organization_id: str):
        now = utc_now()
        numbers = selectors.active_summary(organization=self.organization(request), now=now)
        active = numbers["total_active_patients"]
        body = {
            "organization_id": organization_id,
            "total_active_patients": active,
            "patients_with_recent_appointments": numbers["patients_with_recent_appointments"],
            "patients_with_upcoming_appointments": numbers["patients_with_upcoming_appointments"],
            "avg_recent_appointments": ratio(numbers["recent_appointment_total"], active) or 0.0,
            "avg_total_appointments": ratio(numbers["total_appointment_total"], active) or 0.0,
            "last_sync_date": numbers["last_sync_date"],
            "timestamp": now,
        }
        return Response(s.RoutiqActiveSummaryOutput(body).data)


class AppointmentTypeSummaryView(RoutiqView):
    @_schema(
        "routiq_patients_appointment_types_summary",
        "Active patients grouped by next and most frequent appointment type",
        response=s.RoutiqAppointmentTypeSummaryOutput,
    )
    def get(self, request, organization_id: str):
        now = utc_now()
        rows = selectors.appointment_type_summary(organization=self.organization(request), now=now)
        body = {
            "organization_id": organization_id,
            "appointment_types": rows,
            "total_types": len(rows),
            "timestamp": now,
        }
        return Response(s.RoutiqAppointmentTypeSummaryOutput(body).data)


# --- Dashboard ----------------------------------------------------------------------------------------------

_DESCRIPTIONS = {
    SyncRun.Mode.COMPREHENSIVE: "Comprehensive patient and appointment sync",
    SyncRun.Mode.BASIC: "Basic patient and appointment sync",
    SyncRun.Mode.PATIENTS_ONLY: "Patient import",
}


def _activity(runs, now) -> list[dict]:
    rows = []
    for run in runs:
        since = run.started_at or run.created_at
        description = _DESCRIPTIONS.get(run.mode, "Sync")
        rows.append(
            {
                "public_id": run.public_id,
                "source_system": "cliniko",
                "operation_type": f"{run.mode.replace('-', '_')}_sync",
                "status": run.status,
                "records_processed": run.records_processed,
                "records_success": run.records_success,
                "records_failed": run.records_failed,
                "started_at": run.started_at,
                "completed_at": run.completed_at,
                "activity_type": "sync",
                "description": f"Incremental {description[0].lower()}{description[1:]}"
                if run.incremental
                else description,
                "minutes_ago": round_half_up(max((now - since).total_seconds(), 0) / 60, 1),
            }
        )
    return rows


def _summary(organization, label: str, now) -> dict:
    numbers = selectors.dashboard_summary(organization=organization, now=now)
    total, active = numbers["total_patients"], numbers["active_patients"]
    if not numbers["connected"]:
        integration = "Not connected"
    elif numbers["credentials_valid"] is False:
        integration = "Credentials invalid"
    else:
        integration = "Connected"
    return {
        "organization_id": label,
        "total_patients": total,
        "active_patients": active,
        "patients_with_upcoming": numbers["patients_with_upcoming"],
        "patients_with_recent": numbers["patients_with_recent"],
        "total_upcoming_appointments": numbers["total_upcoming_appointments"],
        "total_recent_appointments": numbers["total_recent_appointments"],
        "total_all_appointments": numbers["total_all_appointments"],
        "avg_upcoming_per_patient": ratio(numbers["total_upcoming_appointments"], active, 2) or 0.0,
        "avg_recent_per_patient": ratio(numbers["total_recent_appointments"], active, 2) or 0.0,
        "avg_total_per_patient": ratio(numbers["total_all_appointments"], active, 2) or 0.0,
        "engagement_rate": ratio(active * 100, total) or 0.0,
        "last_sync_time": numbers["last_sync_time"],
        "synced_patients": numbers["synced_patients"],
        "sync_percentage": ratio(numbers["synced_patients"] * 100, total) or 0.0,
        "integration_status": integration,
        "activity_status": "Active" if active else "Inactive",
        "generated_at": now,
    }


class DashboardView(RoutiqView):
    @_schema("routiq_dashboard", "Dashboard: summary and recent sync activity", response=s.RoutiqDashboardOutput)
    def get(self, request, organization_id: str):
        now = utc_now()
        organization = self.organization(request)
        body = {
            "success": True,
            "organization_id": organization_id,
            "summary": _summary(organization, organization_id, now),
            "recent_activity": _activity(
                selectors.sync_activity(organization=organization, limit=DASHBOARD_ACTIVITY), now
            ),
            "timestamp": now,
        }
        return Response(s.RoutiqDashboardOutput(body).data)


class DashboardSummaryView(RoutiqView):
    @_schema("routiq_dashboard_summary", "Dashboard summary only", response=s.RoutiqDashboardSummaryOutput)
    def get(self, request, organization_id: str):
        now = utc_now()
        body = {
            "success": True,
            "organization_id": organization_id,
            "summary": _summary(self.organization(request), organization_id, now),
            "timestamp": now,
        }
        return Response(s.RoutiqDashboardSummaryOutput(body).data)


class DashboardActivityView(RoutiqView):
    @_schema(
        "routiq_dashboard_activity",
        "Recent sync activity, newest first",
        response=s.RoutiqDashboardActivityOutput,
        parameters=ACTIVITY_PARAMETERS,
    )
    def get(self, request, organization_id: str):
        limit = parse_int_param(
            request.query_params, "limit", default=ACTIVITY_DEFAULT, minimum=1, maximum=ACTIVITY_MAX
        )
        now = utc_now()
        rows = _activity(selectors.sync_activity(organization=self.organization(request), limit=limit), now)
        body = {
            "success": True,
            "organization_id": organization_id,
            "recent_activity": rows,
            "total_count": len(rows),
            "timestamp": now,
        }
        return Response(s.RoutiqDashboardActivityOutput(body).data)
