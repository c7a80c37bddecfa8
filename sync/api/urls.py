"""Routiq routes (spec: routiq-backend-api.md). Organizations in paths are `<org_id:...>` (core.ids), so
`/api/v1/patients/org_...` resolves here and `/api/v1/patients/pat_...` to Mark, by type."""

from django.urls import path

from sync.api import ops, views

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
    # Sync, Cliniko and administration operations (sync/api/ops.py)
    path("api/v1/sync/trigger", ops.SyncTriggerView.as_view(), name="routiq-sync-trigger"),
    path("api/v1/sync/scheduler/status", ops.SchedulerStatusView.as_view(), name="routiq-sync-scheduler-status"),
    path("api/v1/sync/scheduler/trigger", ops.SchedulerTriggerView.as_view(), name="routiq-sync-scheduler-trigger"),
    path("api/v1/sync/progress/<str:sync_id>", ops.SyncProgressView.as_view(), name="routiq-sync-progress"),
    path("api/v1/sync/history/<org_id:organization_id>", ops.SyncHistoryView.as_view(), name="routiq-sync-history"),
    path("api/v1/cliniko/sync/<org_id:organization_id>", ops.ClinikoSyncView.as_view(), name="routiq-cliniko-sync"),
    path(
        "api/v1/cliniko/status/<org_id:organization_id>", ops.ClinikoStatusView.as_view(), name="routiq-cliniko-status"
    ),
    path(
        "api/v1/cliniko/test-connection/<org_id:organization_id>",
        ops.ClinikoTestConnectionView.as_view(),
        name="routiq-cliniko-test-connection",
    ),
    path(
        "api/v1/cliniko/import-patients/<org_id:organization_id>",
        ops.ClinikoImportPatientsView.as_view(),
        name="routiq-cliniko-import-patients",
    ),
    path("api/v1/cliniko/debug/<org_id:organization_id>", ops.ClinikoDebugView.as_view(), name="routiq-cliniko-debug"),
    path("api/v1/admin/monitoring/system-health", ops.SystemHealthView.as_view(), name="routiq-admin-system-health"),
    path("api/v1/admin/database/cleanup", ops.DatabaseCleanupView.as_view(), name="routiq-admin-database-cleanup"),
]
