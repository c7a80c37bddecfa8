"""Data for the Routiq read tests (tests/sync/test_selectors.py, test_api_patients.py, test_api_dashboard.py):
patients and appointments written as the Cliniko sync writes them (rows, any time, any status)."""

from __future__ import annotations

from datetime import timedelta

from rest_framework_simplejwt.tokens import AccessToken

from accounts import services as accounts_services
from accounts.models import User
from core.actors import Actor
from patients.models import Appointment, Patient, fold_name

ACTOR = Actor.system("tests")
_counter = {"n": 0}


def _next() -> int:
    _counter["n"] += 1
    return _counter["n"]


def make_patient(organization, name: str = "Ana Pérez", **fields) -> Patient:
    n = _next()
    fields.setdefault("external_id", f"cl-{n}")
    return Patient.objects.create(organization=organization, name=name, name_search=fold_name(name), **fields)


def make_appointment(patient: Patient, start, *, type_: str = "Physiotherapy", cancelled: bool = False, **fields):
    duration = fields.pop("duration", 30)
    status = Appointment.Status.CANCELED if cancelled else fields.pop("status", Appointment.Status.SCHEDULED)
    return Appointment.objects.create(
        organization_id=patient.organization_id,
        patient=patient,
        start_time=start,
        duration=duration,
        end_time=start + timedelta(minutes=duration),
        appointment_type=type_,
        status=status,
        cancelled_at=start if cancelled else None,
        external_id=fields.pop("external_id", f"ap-{_next()}"),
        **fields,
    )


def make_member(username: str, role: str, *organizations) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username + "-123!")
    for organization in organizations:
        accounts_services.membership_set(user=user, organization=organization, role=role, actor=ACTOR)
    return user


def bearer(user: User) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(user)}"}


def make_organization(name: str, **kwargs):
    return accounts_services.organization_create(name=name, actor=ACTOR, **kwargs)
