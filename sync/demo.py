"""Routiq demo data for `manage.py seed_demo` (key "routiq"), registered by sync/apps.py (order 500).

DEMO ONLY (seed_demo refuses production). Patients and appointments are written through patients.services
(audit trail, encryption, blind indexes as real data), with Cliniko-style string ids as external ids, as
the sync would have written them. What it makes, only when missing (a second run creates and changes
nothing and prints the same ids):
- "Routiq Demo Clinic", owner `routiq-demo`: ROUTIQ_DEMO_PATIENTS patients (Australian mobiles), each with
  past appointments (some in the last 30 days, some older, some cancelled) and, for most, upcoming ones, in a
  few appointment types: every dashboard and patient view has something to show;
- "Routiq Other Clinic", owner `routiq-other`: a few patients with the same Cliniko ids (another tenant:
  its ids are for trying the 403s/404s);
- "Routiq Empty Clinic", also owned by `routiq-demo`, with no data at all: connect a real Cliniko account
  to it (admin or `manage.py connect_cliniko`) and watch a first sync.
Both users log in with the demo password (POST /api/v1/auth/token). `routiq-demo` belongs to two
organizations, so calls without an organization in the path send `X-Organization-ID`.
"""

from __future__ import annotations

from datetime import timedelta

from accounts.models import Organization, User
from accounts.services import membership_set, organization_create, user_create
from core.actors import Actor
from core.time import utc_now
from patients.models import Patient, Source
from patients.services import appointment_cancel, appointment_create, patient_create

ACTOR = Actor.system("seed_demo")
ORGANIZATION_NAME = "Routiq Demo Clinic"
OTHER_ORGANIZATION_NAME = "Routiq Other Clinic"
EMPTY_ORGANIZATION_NAME = "Routiq Empty Clinic"
USERNAME = "routiq-demo"
OTHER_USERNAME = "routiq-other"
DEMO_PATIENTS = 24
OTHER_PATIENTS = 4
TYPES = ("Initial Consultation", "Standard Consultation", "Follow-up", "Physiotherapy")
FIRST = ("Olivia", "Jack", "Charlotte", "William", "Mia", "Noah", "Amelia", "Lucas", "Isla", "Leo", "Ava", "Henry")
LAST = ("Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Nguyen", "Martin")


def _organization(ctx, name: str) -> Organization:
    organization = Organization.objects.filter(name=name).order_by("pk").first()
    if organization is None:
        organization = organization_create(name=name, actor=ACTOR)
        ctx.changed(f"created organization {organization.name} ({organization.public_id})")
    return organization


def _owner(ctx, username: str, *organizations) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        user = user_create(username=username, password=ctx.password, actor=ACTOR)
        ctx.changed(f"created platform user {username}")
    elif not user.is_active or not user.check_password(ctx.password):
        user.is_active = True
        user.set_password(ctx.password)
        user.save(update_fields=["is_active", "password"])
        ctx.changed(f"reset platform user {username} (inactive or password changed)")
    for organization in organizations:
        if not user.memberships.filter(organization=organization).exists():
            membership_set(user=user, organization=organization, role="owner", actor=ACTOR)
    return user


def _patients(ctx, organization: Organization, count: int, now) -> None:
    if Patient.objects.filter(organization=organization, metadata__demo=True).exists():
        return
    for index in range(count):
        created = now - timedelta(days=120 - index)
        patient = patient_create(
            organization=organization,
            name=f"{FIRST[index % len(FIRST)]} {LAST[(index // 3) % len(LAST)]}",
            phone_number=f"+6141200{index:04d}",
            source=Source.CLINIKO,
            external_id=str(1_000_001 + index),  # Cliniko ids are digit strings, per account
            metadata={"demo": True},
            actor=ACTOR,
            now=created,
        )
        _appointments(patient, index, created, now)
    ctx.changed(f"created {count} Routiq demo patients with appointments in {organization.name}")


def _appointments(patient: Patient, index: int, created, now) -> None:
    """History the dashboards read: an older visit, a recent one (most), a cancelled one (some), and an
    upcoming one (most). Times are whole hours between 9:00 and 16:00 UTC."""

    def book(start, number: int):
        return appointment_create(
            patient=patient,
            start_time=start,
            duration=45 if number == 0 else 30,
            appointment_type=TYPES[0] if number == 0 else TYPES[1 + (index + number) % (len(TYPES) - 1)],
            practitioner="Dr Demo Practitioner",
            external_id=str(5_000_001 + index * 10 + number),
            actor=ACTOR,
            now=min(created, start - timedelta(days=1)),
        )

    def at(days: int):
        return (now + timedelta(days=days)).replace(hour=9 + index % 8, minute=0, second=0, microsecond=0)

    book(at(-60 - index % 30), 0)
    if index % 5 != 4:
        book(at(-1 - index % 25), 1)
    if index % 4 == 1:
        cancelled = book(at(-3 - index % 10), 2)
        appointment_cancel(appointment=cancelled, actor=ACTOR, reason="Demo: patient unwell", now=at(-4 - index % 10))
    if index % 3 != 2:
        book(at(1 + index % 20), 3)


def seed(ctx) -> tuple[str, object]:
    """The "routiq" key of seed_demo --json."""
    now = utc_now()
    organization = _organization(ctx, ORGANIZATION_NAME)
    other = _organization(ctx, OTHER_ORGANIZATION_NAME)
    empty = _organization(ctx, EMPTY_ORGANIZATION_NAME)
    _owner(ctx, USERNAME, organization, empty)
    _owner(ctx, OTHER_USERNAME, other)
    _patients(ctx, organization, DEMO_PATIENTS, now)
    _patients(ctx, other, OTHER_PATIENTS, now)
    return "routiq", {
        "organizationId": organization.public_id,
        "username": USERNAME,
        "password": ctx.password,
        "otherOrganizationId": other.public_id,
        "otherUsername": OTHER_USERNAME,
        "otherPassword": ctx.password,
        "emptyOrganizationId": empty.public_id,
    }
