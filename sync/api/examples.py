"""Routiq backend API: request and response examples for the OpenAPI document, by operationId.

core.openapi_examples attaches them (error responses not given here are rendered by the API's own error
body); tests/core/test_openapi_examples.py validates each against the schema. Adapted from `shared/specs/routiq-backend-api.md` where it shows one, with ids in our formats.
"""

from core.openapi_examples import OperationExamples

EXAMPLES = {
    "routiq_admin_database_cleanup": OperationExamples(
        responses={
            200: {
                "success": True,
                "days_cleaned": 90,
                "cleanup_results": ["Deleted 1250 old sync logs", "Deleted 850 old audit logs"],
                "scope": "platform",
                "sync_runs_deleted": 3,
                "idempotency_records_deleted": 3,
                "audit_logs_deleted": 3,
                "completed_at": "2025-06-30T12:00:00.000Z",
            }
        },
    ),
    "routiq_admin_system_health": OperationExamples(
        responses={
            200: {
                "status": "active",
                "scope": "platform",
                "database": {"status": "healthy", "connected": True},
                "cache": {"status": "active", "connected": True},
                "metrics": {
                    "total_organizations": 5,
                    "total_patients": 3250,
                    "active_patients": 185,
                    "configured_services": {"cliniko": 5, "chatwoot": 2},
                },
                "integrations": {
                    "cliniko": {"status": "operational", "total_connections": 5, "healthy_connections": 5}
                },
                "timestamp": "2025-06-30T12:00:00.000Z",
            }
        },
    ),
    "routiq_auth_organization_access": OperationExamples(
        responses={
            200: {
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "access_granted": True,
                "message": "Access granted",
            }
        },
    ),
    "routiq_auth_verify": OperationExamples(
        responses={
            200: {
                "authenticated": True,
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "message": "Authentication successful",
            }
        },
    ),
    "routiq_cliniko_debug": OperationExamples(
        responses={
            200: {
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "connection": {
                    "connected": True,
                    "api_region": "au1",
                    "custom_base_url": True,
                    "sync_enabled": True,
                    "credentials_valid": True,
                    "credentials_checked_at": "2026-11-30T09:15:00Z",
                    "business_country": "AU",
                    "incremental_since": "2026-11-30T09:15:00Z",
                },
                "counts": {
                    "patients": 3,
                    "patients_from_cliniko": 3,
                    "patients_archived": 3,
                    "appointments": 3,
                    "appointments_from_cliniko": 3,
                    "appointment_types": 3,
                    "practitioners": 3,
                    "sync_runs": 3,
                },
                "last_sync": {
                    "sync_id": "f39a666e-b1d2-5093-9d62-e2b79fed2927",
                    "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                    "status": "pending",
                    "sync_mode": "comprehensive",
                    "incremental": True,
                    "progress_percentage": 72.5,
                    "current_step": "Importing patients",
                    "total_steps": 12,
                    "completed_steps": 3,
                    "started_at": "2026-11-30T09:15:00Z",
                    "completed_at": "2026-11-30T09:15:00Z",
                    "estimated_completion": "2026-11-30T09:15:00Z",
                    "records_processed": 3,
                    "records_total": 12,
                    "records_success": 3,
                    "records_failed": 3,
                    "errors": [{"step": "patients", "code": "SESSION_PREP", "at": "2026-11-30T09:15:00Z"}],
                },
                "timestamp": "2026-11-30T09:15:00Z",
            }
        },
    ),
    "routiq_cliniko_import_patients": OperationExamples(
        responses={
            200: {
                "message": "Hi Jane, a reminder of your appointment tomorrow at 10:00.",
                "sync_started": True,
                "sync_id": "932a03f5-c7b5-5494-a9cf-f722a337cafa",
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "sync_mode": "comprehensive",
                "status": "pending",
                "timestamp": "2026-11-30T09:15:00Z",
                "success": True,
            }
        },
    ),
    "routiq_cliniko_status": OperationExamples(
        responses={
            200: {
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "cliniko_connected": True,
                "api_region": "au4",
                "last_sync": "2025-06-30T11:00:00.000Z",
                "total_patients": 650,
                "sync_enabled": True,
                "credentials_valid": True,
            }
        },
    ),
    "routiq_cliniko_sync": OperationExamples(
        responses={
            200: {
                "message": "Comprehensive Cliniko sync started successfully",
                "sync_started": True,
                "sync_id": "5ffffbae-5f29-5e30-b6b2-261c736e79ed",
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "sync_mode": "comprehensive",
                "status": "pending",
                "timestamp": "2025-06-30T12:00:00.000Z",
                "success": True,
            }
        },
    ),
    "routiq_cliniko_test_connection": OperationExamples(
        responses={
            200: {
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "success": True,
                "connected": True,
                "code": "SESSION_PREP",
                "message": "Hi Jane, a reminder of your appointment tomorrow at 10:00.",
                "api_region": "au1",
                "tested_at": "2026-11-30T09:15:00Z",
            }
        },
    ),
    "routiq_dashboard": OperationExamples(
        responses={
            200: {
                "success": True,
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "summary": {
                    "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
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
                    "last_sync_time": "2025-06-30T11:00:00.000Z",
                    "synced_patients": 650,
                    "sync_percentage": 100.0,
                    "integration_status": "Connected",
                    "activity_status": "Active",
                    "generated_at": "2025-06-30T12:00:00.000Z",
                },
                "recent_activity": [
                    {
                        "id": "sync_123",
                        "source_system": "cliniko",
                        "operation_type": "comprehensive_sync",
                        "status": "completed",
                        "records_processed": 651,
                        "records_success": 651,
                        "records_failed": 0,
                        "started_at": "2025-06-30T11:00:00.000Z",
                        "completed_at": "2025-06-30T11:06:00.000Z",
                        "activity_type": "sync",
                        "description": "Comprehensive patient and appointment sync",
                        "minutes_ago": 54.2,
                    }
                ],
                "timestamp": "2025-06-30T12:00:00.000Z",
            }
        },
    ),
    "routiq_dashboard_activity": OperationExamples(
        responses={
            200: {
                "success": True,
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "recent_activity": [
                    {
                        "id": "sync_pbWW8tngkO5icVoY8xHVdoQV",
                        "source_system": "cliniko",
                        "operation_type": "patient_sync",
                        "status": "pending",
                        "records_processed": 3,
                        "records_success": 3,
                        "records_failed": 3,
                        "started_at": "2026-11-30T09:15:00Z",
                        "completed_at": "2026-11-30T09:15:00Z",
                        "activity_type": "date_night",
                        "description": "Weekly check-in with the client.",
                        "minutes_ago": 72.5,
                    }
                ],
                "total_count": 12,
                "timestamp": "2026-11-30T09:15:00Z",
            }
        },
    ),
    "routiq_dashboard_summary": OperationExamples(
        responses={
            200: {
                "success": True,
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "summary": {
                    "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                    "total_patients": 12,
                    "active_patients": 3,
                    "patients_with_upcoming": 3,
                    "patients_with_recent": 3,
                    "total_upcoming_appointments": 12,
                    "total_recent_appointments": 12,
                    "total_all_appointments": 12,
                    "avg_upcoming_per_patient": 72.5,
                    "avg_recent_per_patient": 72.5,
                    "avg_total_per_patient": 72.5,
                    "engagement_rate": 72.5,
                    "last_sync_time": "2026-11-30T09:15:00Z",
                    "synced_patients": 3,
                    "sync_percentage": 72.5,
                    "integration_status": "Connected",
                    "activity_status": "Active",
                    "generated_at": "2026-11-30T09:15:00Z",
                },
                "timestamp": "2026-11-30T09:15:00Z",
            }
        },
    ),
    "routiq_patients_active_summary": OperationExamples(
        responses={
            200: {
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "total_active_patients": 37,
                "patients_with_recent_appointments": 32,
                "patients_with_upcoming_appointments": 24,
                "avg_recent_appointments": 1.2,
                "avg_total_appointments": 8.7,
                "last_sync_date": "2025-06-30T11:00:00.000Z",
                "timestamp": "2025-06-30T12:00:00.000Z",
            }
        },
    ),
    "routiq_patients_list": OperationExamples(
        responses={
            200: {
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "patients": [
                    {
                        "id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65",
                        "name": "Jane Doe",
                        "phone": "+14155550123",
                        "email": "jane.doe@example.com",
                        "cliniko_patient_id": "3693599c-6d40-55f3-923d-716f39bb8bda",
                        "is_active": True,
                        "activity_status": "active",
                        "recent_appointment_count": 12,
                        "upcoming_appointment_count": 12,
                        "total_appointment_count": 12,
                        "first_appointment_date": "2026-11-30T09:15:00Z",
                        "last_appointment_date": "2026-11-30T09:15:00Z",
                        "next_appointment_time": "2026-11-30T09:15:00Z",
                        "next_appointment_type": "Follow-up Consultation",
                        "primary_appointment_type": "Initial Consultation",
                        "treatment_notes": "Lower back pain, improving with exercises.",
                        "recent_appointments": [
                            {
                                "id": "apt_JJrYTYoKF4ONfVMFwysThPN9",
                                "cliniko_appointment_id": "66a65bab-5761-5927-9a98-e63048c0bc0a",
                                "start_time": "2026-11-30T09:15:00Z",
                                "end_time": "2026-11-30T09:15:00Z",
                                "appointment_type": "Initial Consultation",
                                "status": "scheduled",
                                "practitioner": "Dr Sarah Chen",
                            }
                        ],
                        "upcoming_appointments": [
                            {
                                "id": "apt_JJrYTYoKF4ONfVMFwysThPN9",
                                "cliniko_appointment_id": "c975d663-245c-58ad-b271-a5ccf4907a76",
                                "start_time": "2026-11-30T09:15:00Z",
                                "end_time": "2026-11-30T09:15:00Z",
                                "appointment_type": "Initial Consultation",
                                "status": "scheduled",
                                "practitioner": "Dr Sarah Chen",
                            }
                        ],
                        "last_synced_at": "2026-11-30T09:15:00Z",
                        "created_at": "2026-11-30T09:15:00Z",
                        "updated_at": "2026-11-30T09:15:00Z",
                    }
                ],
                "total_count": 12,
                "limit": 20,
                "offset": 0,
                "timestamp": "2026-11-30T09:15:00Z",
            }
        },
    ),
    "routiq_patients_appointment_types_summary": OperationExamples(
        responses={
            200: {
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "appointment_types": [
                    {
                        "next_appointment_type": "Physiotherapy",
                        "primary_appointment_type": "Physiotherapy",
                        "patient_count": 25,
                        "patients_with_upcoming": 18,
                        "earliest_upcoming": "2025-07-01T09:00:00.000Z",
                        "latest_upcoming": "2025-08-15T16:30:00.000Z",
                    }
                ],
                "total_types": 5,
                "timestamp": "2025-06-30T12:00:00.000Z",
            }
        },
    ),
    "routiq_patients_by_appointment_type": OperationExamples(
        responses={
            200: {
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "patients": [
                    {
                        "id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65",
                        "name": "Jane Doe",
                        "phone": "+14155550123",
                        "email": "jane.doe@example.com",
                        "cliniko_patient_id": "6cedb3da-2d71-5998-bd1a-d8d4d0cea229",
                        "is_active": True,
                        "activity_status": "active",
                        "recent_appointment_count": 12,
                        "upcoming_appointment_count": 12,
                        "total_appointment_count": 12,
                        "first_appointment_date": "2026-11-30T09:15:00Z",
                        "last_appointment_date": "2026-11-30T09:15:00Z",
                        "next_appointment_time": "2026-11-30T09:15:00Z",
                        "next_appointment_type": "Follow-up Consultation",
                        "primary_appointment_type": "Initial Consultation",
                        "treatment_notes": "Lower back pain, improving with exercises.",
                        "recent_appointments": [
                            {
                                "id": "apt_JJrYTYoKF4ONfVMFwysThPN9",
                                "cliniko_appointment_id": "c60010d5-6c5a-58b5-8e81-02e90eed67e0",
                                "start_time": "2026-11-30T09:15:00Z",
                                "end_time": "2026-11-30T09:15:00Z",
                                "appointment_type": "Initial Consultation",
                                "status": "scheduled",
                                "practitioner": "Dr Sarah Chen",
                            }
                        ],
                        "upcoming_appointments": [
                            {
                                "id": "apt_JJrYTYoKF4ONfVMFwysThPN9",
                                "cliniko_appointment_id": "552015d5-e28f-51b7-b3d6-13317e427ae9",
                                "start_time": "2026-11-30T09:15:00Z",
                                "end_time": "2026-11-30T09:15:00Z",
                                "appointment_type": "Initial Consultation",
                                "status": "scheduled",
                                "practitioner": "Dr Sarah Chen",
                            }
                        ],
                        "last_synced_at": "2026-11-30T09:15:00Z",
                        "created_at": "2026-11-30T09:15:00Z",
                        "updated_at": "2026-11-30T09:15:00Z",
                    }
                ],
                "total_count": 12,
                "limit": 20,
                "offset": 0,
                "timestamp": "2026-11-30T09:15:00Z",
                "appointment_type": "Initial Consultation",
            }
        },
    ),
    "routiq_patients_with_appointments": OperationExamples(
        responses={
            200: {
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "patients": [
                    {
                        "id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65",
                        "name": "Jane Smith",
                        "phone": "+14155550123",
                        "email": "jane.doe@example.com",
                        "cliniko_patient_id": "7bbd7abd-728b-59c2-9eb6-0d20a8d0673f",
                        "is_active": True,
                        "activity_status": "active",
                        "recent_appointment_count": 12,
                        "upcoming_appointment_count": 12,
                        "total_appointment_count": 12,
                        "first_appointment_date": "2026-11-30T09:15:00Z",
                        "last_appointment_date": "2026-11-30T09:15:00Z",
                        "next_appointment_time": "2026-11-30T09:15:00Z",
                        "next_appointment_type": "Follow-up Consultation",
                        "primary_appointment_type": "Initial Consultation",
                        "treatment_notes": "Lower back pain, improving with exercises.",
                        "recent_appointments": [
                            {
                                "id": "apt_JJrYTYoKF4ONfVMFwysThPN9",
                                "cliniko_appointment_id": "774d4fdb-1b11-5748-98a3-afa20fa48d90",
                                "start_time": "2026-11-30T09:15:00Z",
                                "end_time": "2026-11-30T09:15:00Z",
                                "appointment_type": "Initial Consultation",
                                "status": "scheduled",
                                "practitioner": "Dr Sarah Chen",
                            }
                        ],
                        "upcoming_appointments": [
                            {
                                "id": "apt_JJrYTYoKF4ONfVMFwysThPN9",
                                "cliniko_appointment_id": "20cc8477-65c4-5ffb-8887-c3a23b0a719b",
                                "start_time": "2026-11-30T09:15:00Z",
                                "end_time": "2026-11-30T09:15:00Z",
                                "appointment_type": "Initial Consultation",
                                "status": "scheduled",
                                "practitioner": "Dr Sarah Chen",
                            }
                        ],
                        "last_synced_at": "2026-11-30T09:15:00Z",
                        "created_at": "2026-11-30T09:15:00Z",
                        "updated_at": "2026-11-30T09:15:00Z",
                        "priority": "high",
                        "hours_until_next_appointment": 18.5,
                        "days_until_next_appointment": 0.8,
                    }
                ],
                "total_count": 37,
                "limit": 20,
                "offset": 0,
                "timestamp": "2025-06-30T12:00:00.000Z",
            }
        },
    ),
    "routiq_sync_history": OperationExamples(
        responses={
            200: {
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "total_syncs": 48,
                "successful_syncs": 47,
                "partial_syncs": 3,
                "failed_syncs": 1,
                "last_sync_at": "2025-06-30T11:00:00.000Z",
                "last_successful_sync_at": "2025-06-30T11:00:00.000Z",
                "average_sync_duration_seconds": 360.5,
                "recent_syncs": [
                    {
                        "sync_id": "fc634436-1f4c-553c-b39b-fe2dec93c26f",
                        "started_at": "2025-06-30T11:00:00.000Z",
                        "completed_at": "2025-06-30T11:06:00.000Z",
                        "status": "completed",
                        "records_processed": 651,
                        "records_success": 651,
                        "records_failed": 0,
                        "metadata": {
                            "sync_type": "comprehensive",
                            "trigger": "manual",
                            "incremental": True,
                            "patients_processed": 651,
                            "appointments_processed": 296,
                        },
                    }
                ],
            }
        },
    ),
    "routiq_sync_progress": OperationExamples(
        responses={
            200: {
                "sync_id": "sync_org_123_20250630_120000",
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "status": "running",
                "sync_mode": "comprehensive",
                "incremental": True,
                "progress_percentage": 75.5,
                "current_step": "Processing appointments",
                "total_steps": 4,
                "completed_steps": 3,
                "started_at": "2025-06-30T12:00:00.000Z",
                "completed_at": "2026-11-30T09:15:00Z",
                "estimated_completion": "2025-06-30T12:06:00.000Z",
                "records_processed": 490,
                "records_total": 650,
                "records_success": 3,
                "records_failed": 3,
                "errors": [{"step": "patients", "code": "SESSION_PREP", "at": "2026-11-30T09:15:00Z"}],
            }
        },
    ),
    "routiq_sync_scheduler_status": OperationExamples(
        responses={
            200: {
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "sync_running": False,
                "current_sync_id": "2225a164-95f0-5387-b9a6-e78810887939",
                "last_sync_time": "2025-06-30T11:00:00.000Z",
                "scheduler_active": True,
                "cliniko_connected": True,
                "message": "Scheduler status retrieved successfully",
            }
        },
    ),
    "routiq_sync_scheduler_trigger": OperationExamples(
        responses={
            200: {
                "message": "Hi Jane, a reminder of your appointment tomorrow at 10:00.",
                "sync_started": True,
                "sync_id": "f528b260-5281-53ed-98c3-dde218cae51b",
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "sync_mode": "comprehensive",
                "status": "pending",
                "timestamp": "2026-11-30T09:15:00Z",
            }
        },
    ),
    "routiq_sync_trigger": OperationExamples(
        responses={
            200: {
                "message": "Sync started successfully",
                "sync_started": True,
                "sync_id": "0121e685-7e74-5731-9226-74bf0d082b2b",
                "organization_id": "org_cbGPwi7Q2HJA9NzHT6m4yY3o",
                "sync_mode": "comprehensive",
                "status": "pending",
                "timestamp": "2025-06-30T12:00:00.000Z",
            }
        },
    ),
}
