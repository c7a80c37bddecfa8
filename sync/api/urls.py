"""Routiq routes (spec: routiq-backend-api.md). Organizations in paths are `<org_id:...>` (core.ids), so
`/api/v1/patients/org_...` resolves here and `/api/v1/patients/pat_...` to Mark, by type."""

from django.urls import path

from sync.api import views

urlpatterns = [
    path("api/v1/auth/verify", views.AuthVerifyView.as_view(), name="routiq-auth-verify"),
    path(
        "api/v1/auth/organization/<org_id:organization_id>/access",
        views.OrganizationAccessView.as_view(),
        name="routiq-auth-organization-access",
    ),
    path(
        "api/v1/patients/<org_id:organization_id>/patients",
        views.ActivePatientListView.as_view(),
        name="routiq-patients",
    ),
    path(
        "api/v1/patients/<org_id:organization_id>/active/summary",
        views.ActiveSummaryView.as_view(),
        name="routiq-patients-active-summary",
    ),
    path(
        "api/v1/patients/<org_id:organization_id>/patients/with-appointments",
        views.PatientsWithAppointmentsView.as_view(),
        name="routiq-patients-with-appointments",
    ),
    path(
        "api/v1/patients/<org_id:organization_id>/patients/by-appointment-type/<path:appointment_type>",
        views.PatientsByAppointmentTypeView.as_view(),
        name="routiq-patients-by-appointment-type",
    ),
    path(
        "api/v1/patients/<org_id:organization_id>/patients/appointment-types/summary",
        views.AppointmentTypeSummaryView.as_view(),
        name="routiq-patients-appointment-types-summary",
    ),
    path("api/v1/dashboard/<org_id:organization_id>", views.DashboardView.as_view(), name="routiq-dashboard"),
    path(
        "api/v1/dashboard/<org_id:organization_id>/summary",
        views.DashboardSummaryView.as_view(),
        name="routiq-dashboard-summary",
    ),
    path(
        "api/v1/dashboard/<org_id:organization_id>/activity",
        views.DashboardActivityView.as_view(),
        name="routiq-dashboard-activity",
    ),
]
