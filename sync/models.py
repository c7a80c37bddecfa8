"""sync: the Cliniko connection of an organization, its sync runs, and the Cliniko lookups (appointment
types, practitioners) appointments are named by. The synced patients and appointments themselves are
`patients.Patient` / `patients.Appointment` (Cliniko ids as per-organization `external_id`s): a Cliniko
patient is also a Mark patient. Every write goes through sync/services.py; see docs/routiq.md.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from core.encryption import EncryptedTextField
from core.ids import public_id_default
from core.time import utc_now


class ClinikoConnection(models.Model):
    """One organization's Cliniko account. The API key is encrypted at rest and never shown again; its
    suffix names the shard (`...-au4` -> https://api.au4.cliniko.com/v1) unless `base_url` is set (a
    self-hosted stand-in or a test server; it passes the outbound guard like any URL)."""

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="cliniko_connection", primary_key=True
    )
    api_key = EncryptedTextField()
    base_url = models.CharField(max_length=300, blank=True, default="")
    shard = models.CharField(max_length=10, blank=True, default="")  # the spec's api_region, e.g. "au4"
    # ISO 3166-1 alpha-2 of the Cliniko business: the region patients' numbers are read in.
    business_country = models.CharField(max_length=2, blank=True, default="")
    sync_enabled = models.BooleanField(default=True)  # the hourly schedule runs it
    credentials_valid = models.BooleanField(null=True, blank=True)  # None = never checked
    credentials_checked_at = models.DateTimeField(null=True, blank=True)
    # Start of the last run that completed: the next incremental run asks for `updated_at >=` this
    # minus a margin. None = the next run is a full one.
    last_successful_sync_started_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Cliniko connection of {self.organization.name}"  # staff read names, not row ids


class SyncRun(models.Model):
    """One sync of one organization: its steps, counts, progress and errors. At most one pending or
    running run per organization (a partial unique index). Work runs in chunked, resumable tasks: `cursor`
    is where the next chunk starts, `lease_until` the lease of the task working on it now (a worker killed
    mid-chunk leaves a lease that expires; the sweeper resumes the run)."""

    class Mode(models.TextChoices):
        COMPREHENSIVE = "comprehensive", "Comprehensive (patients, appointment types, appointments, practitioners)"
        BASIC = "basic", "Basic (patients + appointments)"
        PATIENTS_ONLY = "patients-only", "Patients only"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        PARTIAL = "partial", "Partial (some records failed or the run was cut short)"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Hourly schedule"
        API = "api", "API"
        ADMIN = "admin", "Admin"
        COMMAND = "command", "Management command"

    ACTIVE_STATUSES = (Status.PENDING, Status.RUNNING)

    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("sync"), editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="sync_runs")
    mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.COMPREHENSIVE)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.API)
    incremental = models.BooleanField(default=False)
    updated_since = models.DateTimeField(null=True, blank=True)  # the incremental filter sent to Cliniko
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    current_step = models.CharField(max_length=100, blank=True, default="")
    total_steps = models.PositiveSmallIntegerField(default=0)
    completed_steps = models.PositiveSmallIntegerField(default=0)
    records_total = models.PositiveIntegerField(default=0)
    records_processed = models.PositiveIntegerField(default=0)
    records_success = models.PositiveIntegerField(default=0)
    records_failed = models.PositiveIntegerField(default=0)
    patients_processed = models.PositiveIntegerField(default=0)
    appointments_processed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)  # [{"step", "code", "at"}]: codes, never record data
    cursor = models.JSONField(default=dict, blank=True)  # where the next chunk starts (step, page...)
    lease_until = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=utc_now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=Q(status__in=["pending", "running"]),
                name="sync_one_active_run_per_organization",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="sync_run_org_created"),
            models.Index(fields=["status", "lease_until"], name="sync_run_status_lease"),
        ]

    def __str__(self) -> str:
        return self.public_id


class ClinikoAppointmentType(models.Model):
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    external_id = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    category = models.CharField(max_length=200, blank=True, default="")
    duration_minutes = models.PositiveIntegerField(null=True, blank=True)
    archived = models.BooleanField(default=False)
    last_synced_at = models.DateTimeField(default=utc_now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "external_id"], name="sync_one_appointment_type_id")
        ]

    def __str__(self) -> str:
        return self.name


class ClinikoPractitioner(models.Model):
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    external_id = models.CharField(max_length=64)
    name = models.CharField(max_length=200)  # Cliniko's label ("Dr Jane Smith")
    designation = models.CharField(max_length=200, blank=True, default="")
    active = models.BooleanField(default=True)
    last_synced_at = models.DateTimeField(default=utc_now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["organization", "external_id"], name="sync_one_practitioner_id")]

    def __str__(self) -> str:
        return self.name
