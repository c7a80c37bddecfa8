"""Routiq backend API: OpenAPI request and response examples, by operationId.

core.openapi_examples attaches them; error responses not given here are rendered by the API's own error body.
Adapted from `shared/specs/routiq-backend-api.md` where it shows one (its "sync_org_123_..." and "sync_123" are
our `sync_` ids here). One story throughout: a physiotherapy practice (`org_...`) synced hourly from Cliniko,
observed at 2025-06-30 12:00 UTC. Phone numbers are fictional (555-01xx). tests/core/test_openapi_examples.py
validates each against the schema. Bodyless POSTs keep their "No body" example from the views.
"""

from core.openapi_examples import OperationExamples

ORGANIZATION = "org_cbGPwi7Q2HJA9NzHT6m4yY3o"
LAST_SYNC = "sync_pbWW8tngkO5icVoY8xHVdoQV"
NEW_SYNC = "sync_Qe7Hn2Kx9Lm4Rt1Vb8Wc3Zy6"
PATIENT = "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65"
NOW = "2025-06-30T12:00:00Z"

RECENT_APPOINTMENT = {
    "id": "apt_JJrYTYoKF4ONfVMFwysThPN9",
    "cliniko_appointment_id": "58213907",
    "start_time": "2025-06-24T09:00:00Z",
    "end_time": "2025-06-24T09:45:00Z",
    "appointment_type": "Physiotherapy",
    "status": "completed",
    "practitioner": "Dr Sarah Chen",
}
UPCOMING_APPOINTMENT = {
    "id": "apt_Tq4Wm8Zp1Xc6Vn3Lb9Rk2Hy7",
    "cliniko_appointment_id": "58213944",
    "start_time": "2025-07-01T06:30:00Z",
    "end_time": "2025-07-01T07:15:00Z",
    "appointment_type": "Physiotherapy",
    "status": "scheduled",
    "practitioner": "Dr Sarah Chen",
}
ROUTIQ_PATIENT = {
    "id": PATIENT,
    "name": "Jane Doe",
    "phone": "+14155550123",
    "email": "jane.doe@example.com",
    "cliniko_patient_id": "1284763",
    "is_active": True,
    "activity_status": "active",
    "recent_appointment_count": 2,
    "upcoming_appointment_count": 1,
    "total_appointment_count": 9,
    "first_appointment_date": "2025-02-03T08:00:00Z",
    "last_appointment_date": "2025-06-24T09:00:00Z",
    "next_appointment_time": "2025-07-01T06:30:00Z",
    "next_appointment_type": "Physiotherapy",
    "primary_appointment_type": "Physiotherapy",
    "treatment_notes": "Lower back pain, improving with exercises.",
    "recent_appointments": [RECENT_APPOINTMENT],
    "upcoming_appointments": [UPCOMING_APPOINTMENT],
    "last_synced_at": "2025-06-30T11:06:00Z",
    "created_at": "2025-02-01T10:00:00Z",
    "updated_at": "2025-06-30T11:06:00Z",
}
SUMMARY = {
    "organization_id": ORGANIZATION,
    "total_patients": 650,
    "active_patients": 37,
    "patients_with_upcoming": 24,
    "patients_with_recent": 32,
    "total_upcoming_appointments": 28,
    "total_recent_appointments": 45,
    "total_all_appointments": 1247,
    "avg_upcoming_per_patient": 0.76,
    "avg_recent_per_patient": 1.22,
    "avg_total_per_patient": 33.7,
    "engagement_rate": 8.1,
    "last_sync_time": "2025-06-30T11:00:00Z",
    "synced_patients": 650,
    "sync_percentage": 100.0,
    "integration_status": "Connected",
    "activity_status": "Active",
    "generated_at": NOW,
}
ACTIVITY = {
    "id": LAST_SYNC,
    "source_system": "cliniko",
    "operation_type": "comprehensive_sync",
    "status": "completed",
    "records_processed": 651,
    "records_success": 651,
    "records_failed": 0,
    "started_at": "2025-06-30T11:00:00Z",
    "completed_at": "2025-06-30T11:06:00Z",
    "activity_type": "sync",
    "description": "Comprehensive patient and appointment sync",
    "minutes_ago": 60.0,
}
COMPLETED_RUN = {
    "sync_id": LAST_SYNC,
    "organization_id": ORGANIZATION,
    "status": "completed",
    "sync_mode": "comprehensive",
    "incremental": True,
    "progress_percentage": 100.0,
    "current_step": "Completed",
    "total_steps": 4,
    "completed_steps": 4,
    "started_at": "2025-06-30T11:00:00Z",
    "completed_at": "2025-06-30T11:06:00Z",
    "estimated_completion": None,
    "records_processed": 651,
    "records_total": 651,
    "records_success": 651,
    "records_failed": 0,
    "errors": [],
}
SYNC_STARTED = {
    "message": "Sync started successfully",
    "sync_started": True,
    "sync_id": NEW_SYNC,
    "organization_id": ORGANIZATION,
    "sync_mode": "comprehensive",
    "status": "pending",
    "timestamp": NOW,
}

EXAMPLES = {
    # --- Authentication ---------------------------------------------------------------------------------
    "routiq_auth_verify": OperationExamples(
        responses={
            200: {"authenticated": True, "organization_id": ORGANIZATION, "message": "Authentication successful"}
        },
    ),
    "routiq_auth_organization_access": OperationExamples(
        responses={200: {"organization_id": ORGANIZATION, "access_granted": True, "message": "Access granted"}},
    ),
    # --- Patients -------------------------------------------------------------------------------------------
    "routiq_patients_list": OperationExamples(
        responses={
            200: {
                "organization_id": ORGANIZATION,
                "patients": [ROUTIQ_PATIENT],
                "total_count": 37,
                "limit": 20,
                "offset": 0,
                "timestamp": NOW,
            }
        },
    ),
    "routiq_patients_active_summary": OperationExamples(
        responses={
            200: {
                "organization_id": ORGANIZATION,
                "total_active_patients": 37,
                "patients_with_recent_appointments": 32,
                "patients_with_upcoming_appointments": 24,
                "avg_recent_appointments": 1.2,
                "avg_total_appointments": 8.7,
                "last_sync_date": "2025-06-30T11:00:00Z",
                "timestamp": NOW,
            }
        },
    ),
    "routiq_patients_with_appointments": OperationExamples(
        responses={
            200: {
                "organization_id": ORGANIZATION,
                "patients": [
                    {
                        **ROUTIQ_PATIENT,
                        "activity_status": "has_upcoming",
                        "priority": "high",
                        "hours_until_next_appointment": 18.5,
                        "days_until_next_appointment": 0.8,
                    }
                ],
                "total_count": 24,
                "limit": 20,
                "offset": 0,
                "timestamp": NOW,
            }
        },
    ),
    "routiq_patients_appointment_types_summary": OperationExamples(
        responses={
            200: {
                "organization_id": ORGANIZATION,
                "appointment_types": [
                    {
                        "next_appointment_type": "Physiotherapy",
                        "primary_appointment_type": "Physiotherapy",
                        "patient_count": 25,
                        "patients_with_upcoming": 18,
                        "earliest_upcoming": "2025-07-01T06:30:00Z",
                        "latest_upcoming": "2025-08-15T16:30:00Z",
                    }
                ],
                "total_types": 5,
                "timestamp": NOW,
            }
        },
    ),
    "routiq_patients_by_appointment_type": OperationExamples(
        responses={
            200: {
                "organization_id": ORGANIZATION,
                "patients": [ROUTIQ_PATIENT],
                "total_count": 25,
                "limit": 20,
                "offset": 0,
                "timestamp": NOW,
                "appointment_type": "Physiotherapy",
            }
        },
    ),
    # --- Dashboard ------------------------------------------------------------------------------------------
    "routiq_dashboard": OperationExamples(
        responses={
            200: {
                "success": True,
                "organization_id": ORGANIZATION,
                "summary": SUMMARY,
                "recent_activity": [ACTIVITY],
                "timestamp": NOW,
            }
        },
    ),
    "routiq_dashboard_summary": OperationExamples(
        responses={200: {"success": True, "organization_id": ORGANIZATION, "summary": SUMMARY, "timestamp": NOW}},
    ),
    "routiq_dashboard_activity": OperationExamples(
        responses={
            200: {
                "success": True,
                "organization_id": ORGANIZATION,
                "recent_activity": [ACTIVITY],
                "total_count": 48,
                "timestamp": NOW,
            }
        },
    ),
    # --- Sync -------------------------------------------------------------------------------------------------
    "routiq_sync_trigger": OperationExamples(responses={200: SYNC_STARTED}),
    "routiq_sync_scheduler_trigger": OperationExamples(
        responses={200: {**SYNC_STARTED, "message": "Scheduled sync triggered successfully"}}
    ),
    "routiq_sync_progress": OperationExamples(
        responses={
            200: {
                **COMPLETED_RUN,
                "sync_id": NEW_SYNC,
                "status": "running",
                "progress_percentage": 75.5,
                "current_step": "Processing appointments",
                "completed_steps": 3,
                "started_at": NOW,
                "completed_at": None,
                "estimated_completion": "2025-06-30T12:06:00Z",
                "records_processed": 490,
                "records_total": 650,
                "records_success": 490,
            }
        },
    ),
    "routiq_sync_history": OperationExamples(
        responses={
            200: {
                "organization_id": ORGANIZATION,
                "total_syncs": 48,
                "successful_syncs": 44,
                "partial_syncs": 3,
                "failed_syncs": 1,
                "last_sync_at": "2025-06-30T11:00:00Z",
                "last_successful_sync_at": "2025-06-30T11:00:00Z",
                "average_sync_duration_seconds": 360.5,
                "recent_syncs": [
                    {
                        "sync_id": LAST_SYNC,
                        "started_at": "2025-06-30T11:00:00Z",
                        "completed_at": "2025-06-30T11:06:00Z",
                        "status": "completed",
                        "records_processed": 651,
                        "records_success": 651,
                        "records_failed": 0,
                        "metadata": {
                            "sync_type": "comprehensive",
                            "trigger": "scheduled",
                            "incremental": True,
                            "patients_processed": 651,
                            "appointments_processed": 296,
                        },
                    }
                ],
            }
        },
    ),
    "routiq_sync_scheduler_status": OperationExamples(
        responses={
            200: {
                "organization_id": ORGANIZATION,
                "sync_running": False,
                "current_sync_id": None,
                "last_sync_time": "2025-06-30T11:00:00Z",
                "scheduler_active": True,
                "cliniko_connected": True,
                "message": "Scheduler status retrieved successfully",
            }
        },
    ),
    # --- Cliniko ----------------------------------------------------------------------------------------------
    "routiq_cliniko_status": OperationExamples(
        responses={
            200: {
                "organization_id": ORGANIZATION,
                "cliniko_connected": True,
                "api_region": "au4",
                "last_sync": "2025-06-30T11:00:00Z",
                "total_patients": 650,
                "sync_enabled": True,
                "credentials_valid": True,
            }
        },
    ),
    "routiq_cliniko_sync": OperationExamples(
        responses={
            200: {
                **SYNC_STARTED,
                "message": "Comprehensive Cliniko sync started successfully",
                "success": True,
            }
        },
    ),
    "routiq_cliniko_import_patients": OperationExamples(
        responses={
            200: {
                **SYNC_STARTED,
                "sync_mode": "patients-only",
                "message": "Cliniko patient import started successfully",
                "success": True,
            }
        },
    ),
    "routiq_cliniko_test_connection": OperationExamples(
        responses={
            200: {
                "organization_id": ORGANIZATION,
                "success": True,
                "connected": True,
                "code": None,
                "message": "Connected to Cliniko",
                "api_region": "au4",
                "tested_at": NOW,
            }
        },
    ),
    "routiq_cliniko_debug": OperationExamples(
        responses={
            200: {
                "organization_id": ORGANIZATION,
                "connection": {
                    "connected": True,
                    "api_region": "au4",
                    "custom_base_url": False,
                    "sync_enabled": True,
                    "credentials_valid": True,
                    "credentials_checked_at": "2025-06-30T11:00:00Z",
                    "business_country": "AU",
                    "incremental_since": "2025-06-30T10:00:00Z",
                },
                "counts": {
                    "patients": 650,
                    "patients_from_cliniko": 650,
                    "patients_archived": 12,
                    "appointments": 1247,
                    "appointments_from_cliniko": 1247,
                    "appointment_types": 5,
                    "practitioners": 4,
                    "sync_runs": 48,
                },
                "last_sync": COMPLETED_RUN,
                "timestamp": NOW,
            }
        },
    ),
    # --- Admin ------------------------------------------------------------------------------------------------
    "routiq_admin_system_health": OperationExamples(
        responses={
            200: {
                "status": "healthy",
                "scope": "platform",
                "database": {"status": "healthy", "connected": True},
                "cache": {"status": "healthy", "connected": True},
                "metrics": {
                    "total_organizations": 5,
                    "total_patients": 3250,
                    "active_patients": 185,
                    "configured_services": {"cliniko": 5, "chatwoot": 2},
                },
                "integrations": {
                    "cliniko": {"status": "operational", "total_connections": 5, "healthy_connections": 5}
                },
                "timestamp": NOW,
            }
        },
    ),
    "routiq_admin_database_cleanup": OperationExamples(
        responses={
            200: {
                "success": True,
                "days_cleaned": 90,
                "cleanup_results": ["Deleted 1250 old sync runs", "Deleted 850 expired idempotency records"],
                "scope": "platform",
                "sync_runs_deleted": 1250,
                "idempotency_records_deleted": 850,
                "audit_logs_deleted": 0,
                "completed_at": NOW,
            }
        },
    ),
}
