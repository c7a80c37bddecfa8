"""Cliniko records -> our rows: one page of Cliniko records per call, one transaction per call, bulk
statements only (the number of statements does not grow with the page). docs/routiq.md, "What the sync
writes", states every rule below for the clinic's eyes.

    import_patients(*, organization, records, region, now, run=None) -> ImportCounts
    import_appointments(*, organization, records, now, run=None) -> ImportCounts
    import_appointment_types(*, organization, records, now, run=None) -> ImportCounts
    import_practitioners(*, organization, records, now, run=None) -> ImportCounts

Every call returns `ImportCounts`: processed = created + updated + linked + skipped + failed, and `codes`
counts why records were skipped or failed (or noted: `phone_unusable`), codes only, never record data.
Writes are upserts on the per-organization unique keys `(organization, external_id)`, so a page imported
twice leaves the same state, and one organization's Cliniko ids never touch another's rows.

**Patients** (`patients.Patient`). Cliniko owns the name (first + last; `name_search` folded), the phone
(the first Mobile number, else the first number, as E.164 read in the business's country: `region`; a number
that does not parse is not stored, the record is still imported, code `phone_unusable`), the e-mail
(encrypted, blind-indexed) and `archived` (Cliniko's archived_at; a stored patient deleted in Cliniko is
archived and nothing else of it changes: Cliniko's deleted entries may carry only the id and deleted_at).
The clinic owns what it sets in Mark (language, notes, metadata, WhatsApp consent and its reason and time,
`status`, `source`): those are written when the sync creates the row and never again. `status` follows
Cliniko's archive only when it changes there: a patient archived in Cliniko becomes `inactive`, one
unarchived becomes `active` again; a clinic's own status is otherwise left alone. A new patient's
`created_at` (the registration date) and `last_activity` are Cliniko's created_at (never after `now`).
A record whose id belonged to an erased patient (a tombstone) is skipped (`tombstoned`), never re-created;
a record deleted in Cliniko that we never stored is skipped (`deleted`): a full run (without deleted
records) and an incremental one (with them) end in the same state.
Linking: a Cliniko record with no row yet whose E.164 phone matches exactly ONE patient of the organization
that has no Cliniko id (one created through Mark or by an inbound WhatsApp message) becomes that patient:
its external id is set and the Cliniko-owned fields above are written over it (`linked`). Several such
patients with that number (a family sharing one phone), or several records of the page with that number,
link nothing: a new patient is created (the clinic merges by hand if it wants).

**Appointments** (`patients.Appointment`). The patient is found by its Cliniko id (unknown -> skipped,
`unknown_patient`: the patients step runs first, so that means one deleted in Cliniko before we saw it, or
one created after that step, which the next incremental run brings with its appointments; an erased
patient's -> skipped, `patient_erased`).
Cliniko owns the patient, start, end and duration (whole minutes, at least one; a missing or non-positive
length takes the stored appointment type's duration, else DEFAULT_DURATION_MINUTES), the type and
practitioner names (read from the stored ClinikoAppointmentType / ClinikoPractitioner rows; "" until that
step has run), the notes (encrypted; a patient's `treatment_notes` is their latest appointment's notes,
read at read time), did_not_arrive, and the status:
    cancelled_at set -> `canceled` (cancelled_at kept; the reason is empty: Cliniko's record carries none,
        its blind index is cancellation_reason_index_of(""));
    otherwise a start in the past (<= now) -> `completed` (a no-show too: did_not_arrive says it);
    otherwise `scheduled` (Cliniko has no "rescheduled": a full and an incremental run end the same).
A cancellation is never undone by the sync: an appointment already `canceled` here (by Cliniko or through
Mark) keeps its status, time and reason. Deleted in Cliniko (deleted_at or archived_at: Cliniko's
"archived" appointment is a deleted one) -> the row is deleted with its reminders (`deleted`); never
stored -> nothing to do. Tombstoned ids (erased patients' appointments) are skipped (`tombstoned`).
The clinic owns location, Zoom/Calendly links and the cancellation reason.
Reminders: created appointments and ones whose start moved, when `scheduled` (future), get their two
reminders planned as patients.services.reminders_plan does (due = start - offset; `skipped` if that time
has passed; a moved one is re-planned); appointments cancelled or deleted lose their pending reminders.
Only when the clinic turned `ClinicSettings.remind_synced_appointments` on (off by default: a synced
patient never wrote to Mark); sending then decides per patient (WhatsApp consent, a phone, not archived,
the clinic's sender and templates) exactly as for Mark bookings. The switch applies to appointments the
sync writes (creates or moves) from then on.
The patients touched have `last_activity` moved to the start of their latest appointment that has begun
(start <= now) if that is later, in one UPDATE (a future booking is not activity yet).

**Appointment types and practitioners** (sync.models): upserted with Cliniko's name, category, duration and
archive state / label, designation and active state.

No webhook events are published for synced changes (Mark's events are for changes made through Mark).
Each call that wrote something records one audit event (`sync.<kind>_imported`) with the run's id and the
counts: ids and numbers only.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Max, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce, Greatest

from audit.services import audit_event_record
from core.actors import Actor
from core.encryption import blind_index
from core.phones import InvalidPhone, normalize_e164
from patients.models import (
    EMAIL_INDEX_PURPOSE,
    Appointment,
    ClinicSettings,
    Patient,
    PatientTombstone,
    Reminder,
    Source,
    fold_name,
)
from patients.services import (
    cancellation_reason_index_of,
    phone_index_of,
    reminder_offsets,
    tombstone_index_of,
)
from sync.clients import ClinikoAppointment, ClinikoPatient
from sync.models import ClinikoAppointmentType, ClinikoPractitioner

SYNC_ACTOR = Actor.system("sync.cliniko")
DEFAULT_DURATION_MINUTES = 30
NAME_MAX = Patient._meta.get_field("name").max_length
TYPE_NAME_MAX = Appointment._meta.get_field("appointment_type").max_length
PRACTITIONER_MAX = Appointment._meta.get_field("practitioner").max_length

# What Cliniko owns on a patient row: the upsert writes these over an existing row, nothing else.
PATIENT_SYNC_FIELDS = [
    "name",
    "name_search",
    "phone",
    "phone_index",
    "email",
    "email_index",
    "archived",
    "last_synced_at",
    "updated_at",
]
# ... and on an appointment row (status/cancelled_at/reason index are computed so a cancellation sticks).
APPOINTMENT_SYNC_FIELDS = [
    "patient",
    "start_time",
    "duration",
    "end_time",
    "appointment_type",
    "practitioner",
    "status",
    "notes",
    "cancelled_at",
    "cancellation_reason_index",
    "did_not_arrive",
    "updated_at",
]


@dataclass
class ImportCounts:
    processed: int = 0
    created: int = 0
    updated: int = 0
    linked: int = 0
    skipped: int = 0
    failed: int = 0
    deleted: int = 0  # appointments deleted in Cliniko and here (also counted in `updated`)
    codes: Counter = field(default_factory=Counter)  # why records were skipped/failed/noted, codes only

    def as_dict(self) -> dict:
        return {
            "processed": self.processed,
            "created": self.created,
            "updated": self.updated,
            "linked": self.linked,
            "skipped": self.skipped,
            "failed": self.failed,
            "deleted": self.deleted,
            "codes": dict(self.codes),
        }

    def skip(self, code: str) -> None:
        self.skipped += 1
        self.codes[code] += 1

    def fail(self, code: str) -> None:
        self.failed += 1
        self.codes[code] += 1


def _unique_by_id(records: Sequence) -> list:
    """One record per id (the last one wins): one upsert statement may not touch a row twice."""
    by_id: dict[str, object] = {}
    for record in records:
        if record is None or not getattr(record, "id", None):
            continue
        by_id.pop(record.id, None)
        by_id[record.id] = record
    return list(by_id.values())


def _audit(action: str, *, organization, run, counts: ImportCounts, **metadata) -> None:
    audit_event_record(
        action=action,
        actor=SYNC_ACTOR,
        organization_id=organization.public_id,
        subject_type="sync_run" if run is not None else "organization",
        subject_id=run.public_id if run is not None else organization.public_id,
        metadata={**counts.as_dict(), **metadata},
    )


def _tombstoned(*, organization, kind: str, external_ids) -> set[str]:
    """The ids among `external_ids` that belonged to erased records: one query."""
    index_of = {tombstone_index_of(external_id): external_id for external_id in external_ids}
    if not index_of:
        return set()
    found = PatientTombstone.objects.filter(
        organization=organization, kind=kind, external_id_index__in=list(index_of)
    ).values_list("external_id_index", flat=True)
    return {index_of[index] for index in found}


def _not_after(value: datetime | None, now: datetime) -> datetime:
    return now if value is None or value > now else value


# --- Patients ------------------------------------------------------------------------------------------


def _phone(record: ClinikoPatient, region: str) -> tuple[str | None, bool]:
    """(E.164 or None, whether a number was there but unusable)."""
    raw = record.mobile
    if not raw:
        return None, False
    try:
        return normalize_e164(raw, region=region), False
    except InvalidPhone:
        return None, True


def _email_index(email: str) -> str:
    return blind_index(email.casefold(), purpose=EMAIL_INDEX_PURPOSE)


@transaction.atomic
def import_patients(
    *, organization, records: Sequence[ClinikoPatient], region: str, now: datetime, run=None
) -> ImportCounts:
    """Upsert one page of Cliniko patients (module docstring). Statements: tombstones, existing rows,
    link candidates, (links), the upsert, (status on archive changes), the audit row."""
    counts = ImportCounts(processed=len(records))
    region = (region or settings.MARK_DEFAULT_PHONE_REGION or "").upper()
    page = _unique_by_id(records)
    for _ in range(len(records) - len(page)):
        counts.skip("duplicate")
    if not page:
        return counts
    ids = [record.id for record in page]
    tombstoned = _tombstoned(organization=organization, kind=PatientTombstone.Kind.PATIENT, external_ids=ids)
    existing = {
        row["external_id"]: row
        for row in Patient.objects.filter(organization=organization, external_id__in=ids).values(
            "pk", "external_id", "archived"
        )
    }

    rows: list[Patient] = []
    deleted: list[str] = []  # stored patients deleted in Cliniko
    archived_of: dict[str, bool] = {}
    phone_of: dict[str, str] = {}  # new records' E.164 (link candidates)
    for record in page:
        if record.id in tombstoned:
            counts.skip("tombstoned")
            continue
        if record.deleted_at is not None:
            # Cliniko's deleted entries may carry nothing but the id and deleted_at: archive what we have.
            if record.id in existing:
                deleted.append(record.id)
            else:
                counts.skip("deleted")
            continue
        name = " ".join(f"{record.first_name} {record.last_name}".split())[:NAME_MAX]
        if not name:
            counts.fail("missing_name")
            continue
        phone, unusable = _phone(record, region)
        if unusable:
            counts.codes["phone_unusable"] += 1
        email = record.email.strip() or None
        archived = record.archived_at is not None or record.deleted_at is not None
        registered = _not_after(record.created_at, now)
        rows.append(
            Patient(
                organization=organization,
                external_id=record.id,
                name=name,
                name_search=fold_name(name),
                phone=phone,
                phone_index=phone_index_of(phone) if phone else None,
                email=email,
                email_index=_email_index(email) if email else None,
                archived=archived,
                status=Patient.Status.INACTIVE if archived else Patient.Status.ACTIVE,
                source=Source.CLINIKO,
                last_synced_at=now,
                last_activity=registered,
                created_at=registered,
            )
        )
        archived_of[record.id] = archived
        if phone and record.id not in existing:
            phone_of[record.id] = phone
    if deleted:
        # One UPDATE; SET reads the old `archived`, so only patients archived now become inactive.
        Patient.objects.filter(organization=organization, external_id__in=deleted).update(
            archived=True,
            status=Case(When(archived=False, then=Value(Patient.Status.INACTIVE)), default=F("status")),
            last_synced_at=now,
            updated_at=now,
        )
        counts.updated += len(deleted)
    if not rows:
        if counts.processed:
            _audit("sync.patients_imported", organization=organization, run=run, counts=counts)
        return counts

    # Linking: a new record whose number is that of exactly one patient without a Cliniko id.
    existing_archived = {external_id: row["archived"] for external_id, row in existing.items()}
    linked: dict[str, int] = {}
    if phone_of:
        index_of = {external_id: phone_index_of(phone) for external_id, phone in phone_of.items()}
        candidates: dict[str, list[tuple[int, bool]]] = {}
        for pk, index, was_archived in Patient.objects.filter(
            organization=organization, external_id=None, phone_index__in=set(index_of.values())
        ).values_list("pk", "phone_index", "archived"):
            candidates.setdefault(index, []).append((pk, was_archived))
        claims = Counter(index_of.values())
        for external_id, index in index_of.items():
            if len(candidates.get(index, ())) == 1 and claims[index] == 1:
                pk, was_archived = candidates[index][0]
                linked[external_id] = pk
                existing_archived[external_id] = was_archived
        if linked:
            Patient.objects.bulk_update(
                [Patient(pk=pk, external_id=external_id) for external_id, pk in linked.items()],
                ["external_id"],
            )

    Patient.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["organization", "external_id"],
        update_fields=PATIENT_SYNC_FIELDS,
    )
    # Status follows Cliniko's archive only when it changes there (a linked row included).
    transitions = [
        external_id
        for external_id, archived in archived_of.items()
        if external_id in existing_archived and existing_archived[external_id] != archived
    ]
    if transitions:
        Patient.objects.filter(organization=organization, external_id__in=transitions).update(
            status=Case(
                When(archived=True, then=Value(Patient.Status.INACTIVE)),
                default=Value(Patient.Status.ACTIVE),
            )
        )
    for external_id in archived_of:
        if external_id in linked:
            counts.linked += 1
        elif external_id in existing:
            counts.updated += 1
        else:
            counts.created += 1
    _audit(
        "sync.patients_imported",
        organization=organization,
        run=run,
        counts=counts,
    )
    return counts


# --- Appointments --------------------------------------------------------------------------------------


def _duration(record: ClinikoAppointment, type_minutes: int | None) -> int:
    if record.ends_at is not None and record.starts_at is not None and record.ends_at > record.starts_at:
        return max(1, math.ceil((record.ends_at - record.starts_at).total_seconds() / 60))
    return type_minutes if type_minutes and type_minutes > 0 else DEFAULT_DURATION_MINUTES


@transaction.atomic
def import_appointments(
    *, organization, records: Sequence[ClinikoAppointment], now: datetime, run=None
) -> ImportCounts:
    """Upsert one page of Cliniko appointments (module docstring). Statements: tombstones, deletions,
    existing rows, patients, types, practitioners, the upsert, reminders (plan / drop), the patients'
    last_activity, the audit row: the same number whatever the page size."""
    counts = ImportCounts(processed=len(records))
    page = _unique_by_id(records)
    for _ in range(len(records) - len(page)):
        counts.skip("duplicate")
    if not page:
        return counts
    ids = [record.id for record in page]
    tombstoned = _tombstoned(organization=organization, kind=PatientTombstone.Kind.APPOINTMENT, external_ids=ids)
    live: list[ClinikoAppointment] = []
    gone: list[str] = []
    for record in page:
        if record.id in tombstoned:
            counts.skip("tombstoned")
        elif record.deleted_at is not None or record.archived_at is not None:
            gone.append(record.id)
        else:
            live.append(record)
    deleted_ids: list[str] = []
    if gone:
        doomed = Appointment.objects.filter(organization=organization, external_id__in=gone)
        deleted_ids = list(doomed.values_list("public_id", flat=True))
        if deleted_ids:
            doomed.delete()  # CASCADE: their reminders
        counts.deleted = len(deleted_ids)
        counts.updated += len(deleted_ids)
        for _ in range(len(gone) - len(deleted_ids)):
            counts.skip("deleted")

    existing = {
        row["external_id"]: row
        for row in Appointment.objects.filter(
            organization=organization, external_id__in=[record.id for record in live]
        ).values("pk", "external_id", "start_time", "status", "cancelled_at", "cancellation_reason_index")
    }
    patient_ids = {record.patient_id for record in live if record.patient_id}
    patient_pk = dict(
        Patient.objects.filter(organization=organization, external_id__in=patient_ids).values_list("external_id", "pk")
        if patient_ids
        else ()
    )
    type_ids = {record.appointment_type_id for record in live if record.appointment_type_id}
    types = {
        row["external_id"]: row
        for row in (
            ClinikoAppointmentType.objects.filter(organization=organization, external_id__in=type_ids).values(
                "external_id", "name", "duration_minutes"
            )
            if type_ids
            else ()
        )
    }
    practitioner_ids = {record.practitioner_id for record in live if record.practitioner_id}
    practitioners = dict(
        ClinikoPractitioner.objects.filter(organization=organization, external_id__in=practitioner_ids).values_list(
            "external_id", "name"
        )
        if practitioner_ids
        else ()
    )

    unknown = {record.patient_id for record in live if record.patient_id and record.patient_id not in patient_pk}
    erased = (
        _tombstoned(organization=organization, kind=PatientTombstone.Kind.PATIENT, external_ids=unknown)
        if unknown
        else set()
    )
    canceled_index = cancellation_reason_index_of("")
    rows: list[Appointment] = []
    replan: set[str] = set()
    for record in live:
        patient = patient_pk.get(record.patient_id or "")
        if patient is None:
            counts.skip("patient_erased" if record.patient_id in erased else "unknown_patient")
            continue
        if record.starts_at is None:
            counts.fail("missing_start")
            continue
        kind = types.get(record.appointment_type_id or "")
        duration = _duration(record, kind["duration_minutes"] if kind else None)
        before = existing.get(record.id)
        if before is not None and before["status"] == Appointment.Status.CANCELED:
            status = Appointment.Status.CANCELED
            cancelled_at, reason_index = before["cancelled_at"], before["cancellation_reason_index"]
        elif record.cancelled_at is not None:
            status, cancelled_at, reason_index = Appointment.Status.CANCELED, record.cancelled_at, canceled_index
        else:
            status = Appointment.Status.COMPLETED if record.starts_at <= now else Appointment.Status.SCHEDULED
            cancelled_at, reason_index = None, before["cancellation_reason_index"] if before else ""
        rows.append(
            Appointment(
                organization=organization,
                external_id=record.id,
                patient_id=patient,
                start_time=record.starts_at,
                duration=duration,
                end_time=Appointment.end_of(record.starts_at, duration),
                appointment_type=(kind["name"] if kind else "")[:TYPE_NAME_MAX],
                practitioner=practitioners.get(record.practitioner_id or "", "")[:PRACTITIONER_MAX],
                status=status,
                notes=record.notes or "",
                cancelled_at=cancelled_at,
                cancellation_reason_index=reason_index,
                did_not_arrive=record.did_not_arrive,
                created_at=_not_after(record.created_at, now),
            )
        )
        if status == Appointment.Status.SCHEDULED and (before is None or before["start_time"] != record.starts_at):
            replan.add(record.id)
        if before is None:
            counts.created += 1
        else:
            counts.updated += 1

    saved: list[Appointment] = []
    if rows:
        saved = Appointment.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["organization", "external_id"],
            update_fields=APPOINTMENT_SYNC_FIELDS,
        )
    pk_of = {appointment.external_id: appointment.pk for appointment in saved}
    if any(pk is None for pk in pk_of.values()):  # a backend that returns no ids from an upsert
        pk_of = dict(
            Appointment.objects.filter(organization=organization, external_id__in=list(pk_of)).values_list(
                "external_id", "pk"
            )
        )

    # Reminders: plan the created/moved scheduled ones (bulk form of patients.services.reminders_plan),
    # drop the pending ones of the cancelled.
    planned = []
    offsets = reminder_offsets()
    # Read fresh (not the relation cached on the organization object: a long sync run must see a change).
    remind = bool(
        ClinicSettings.objects.filter(organization=organization)
        .values_list("remind_synced_appointments", flat=True)
        .first()
    )
    for appointment in saved:
        if not remind or appointment.external_id not in replan:
            continue
        for kind, offset in offsets.items():
            due_at = appointment.start_time - offset
            planned.append(
                Reminder(
                    appointment_id=pk_of[appointment.external_id],
                    kind=kind,
                    due_at=due_at,
                    status=Reminder.Status.PENDING if due_at > now else Reminder.Status.SKIPPED,
                    outbound_message=None,
                    created_at=now,
                )
            )
    if planned:
        Reminder.objects.bulk_create(
            planned,
            update_conflicts=True,
            unique_fields=["appointment", "kind"],
            update_fields=["due_at", "status", "outbound_message", "updated_at"],
        )
    canceled_pks = [
        pk_of[appointment.external_id] for appointment in saved if appointment.status == Appointment.Status.CANCELED
    ]
    if canceled_pks:
        Reminder.objects.filter(appointment_id__in=canceled_pks, status=Reminder.Status.PENDING).update(
            status=Reminder.Status.SKIPPED
        )

    touched = {appointment.patient_id for appointment in saved}
    if touched:
        latest = (
            Appointment.objects.filter(patient=OuterRef("pk"), start_time__lte=now)
            .order_by()
            .values("patient")
            .annotate(latest=Max("start_time"))
            .values("latest")
        )
        Patient.objects.filter(pk__in=touched).update(
            last_activity=Greatest(F("last_activity"), Coalesce(Subquery(latest), F("last_activity")))
        )

    if counts.processed:
        _audit(
            "sync.appointments_imported",
            organization=organization,
            run=run,
            counts=counts,
            deleted_appointment_ids=deleted_ids,
        )
    return counts


# --- Lookups -------------------------------------------------------------------------------------------


def _upsert_lookup(*, model, organization, rows, update_fields, action, run, counts) -> ImportCounts:
    if rows:
        known = set(
            model.objects.filter(
                organization=organization, external_id__in=[row.external_id for row in rows]
            ).values_list("external_id", flat=True)
        )
        model.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["organization", "external_id"], update_fields=update_fields
        )
        counts.updated += len(known)
        counts.created += len(rows) - len(known)
    if counts.processed:
        _audit(action, organization=organization, run=run, counts=counts)
    return counts


@transaction.atomic
def import_appointment_types(*, organization, records, now: datetime, run=None) -> ImportCounts:
    """Upsert one page of Cliniko appointment types (name, category, duration, archived)."""
    counts = ImportCounts(processed=len(records))
    page = _unique_by_id(records)
    for _ in range(len(records) - len(page)):
        counts.skip("duplicate")
    rows = []
    for record in page:
        if not record.name:
            counts.fail("missing_name")
            continue
        rows.append(
            ClinikoAppointmentType(
                organization=organization,
                external_id=record.id,
                name=record.name[: ClinikoAppointmentType._meta.get_field("name").max_length],
                category=record.category[: ClinikoAppointmentType._meta.get_field("category").max_length],
                duration_minutes=record.duration_in_minutes
                if record.duration_in_minutes and record.duration_in_minutes > 0
                else None,
                archived=record.archived_at is not None,
                last_synced_at=now,
            )
        )
    return _upsert_lookup(
        model=ClinikoAppointmentType,
        organization=organization,
        rows=rows,
        update_fields=["name", "category", "duration_minutes", "archived", "last_synced_at"],
        action="sync.appointment_types_imported",
        run=run,
        counts=counts,
    )


@transaction.atomic
def import_practitioners(*, organization, records, now: datetime, run=None) -> ImportCounts:
    """Upsert one page of Cliniko practitioners (label as the name, designation, active)."""
    counts = ImportCounts(processed=len(records))
    page = _unique_by_id(records)
    for _ in range(len(records) - len(page)):
        counts.skip("duplicate")
    rows = []
    for record in page:
        name = (record.label or f"{record.first_name} {record.last_name}").strip()
        if not name:
            counts.fail("missing_name")
            continue
        rows.append(
            ClinikoPractitioner(
                organization=organization,
                external_id=record.id,
                name=name[: ClinikoPractitioner._meta.get_field("name").max_length],
                designation=record.designation[: ClinikoPractitioner._meta.get_field("designation").max_length],
                active=record.active,
                last_synced_at=now,
            )
        )
    return _upsert_lookup(
        model=ClinikoPractitioner,
        organization=organization,
        rows=rows,
        update_fields=["name", "designation", "active", "last_synced_at"],
        action="sync.practitioners_imported",
        run=run,
        counts=counts,
    )
