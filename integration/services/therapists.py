"""Staff writes on LoveRescue therapists (the admin): create, edit, deactivate, reactivate.

A therapist's `is_active` decides whether their partners may act for them: `acting_therapist` refuses an
inactive therapist on the partner's very next request (token exchange and every API call). So a change of
`is_active` is recorded as its own audit event (`integration.therapist_deactivated` / `_reactivated`,
with the ids of the partners whose access it cuts or restores); other edits as
`integration.therapist_updated` naming the fields changed. Contact details are encrypted and never appear
in an audit row. Bad input raises TherapistInvalid (a core.domain.Invalid) with a message for staff.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from audit.services import audit_event_record
from core.actors import Actor
from core.domain import Invalid
from core.phones import InvalidPhone, normalize_e164
from integration.models import Therapist

NAME_MAX = 100


class TherapistInvalid(Invalid):
    """Bad input for a staff write on a therapist or client; the message is for staff."""


def clean_name(value, *, label: str) -> str:
    name = (value or "").strip()
    if not name:
        raise TherapistInvalid(f"{label} is required.")
    if len(name) > NAME_MAX:
        raise TherapistInvalid(f"{label} must be at most {NAME_MAX} characters.")
    return name


def clean_email(value) -> str | None:
    """A valid address, or None when blank."""
    email = (value or "").strip()
    if not email:
        return None
    try:
        validate_email(email)
    except ValidationError:
        raise TherapistInvalid("Enter a valid email address.") from None
    return email


def clean_phone(value) -> str | None:
    """E.164 (notifications are sent to it: the outbox accepts international numbers only), or None."""
    phone = (value or "").strip()
    if not phone:
        return None
    try:
        return normalize_e164(phone)
    except InvalidPhone as exc:
        raise TherapistInvalid(f"{exc.message} (E.164, e.g. +14155550123).") from None


def _check_user_free(user, therapist: Therapist | None = None) -> None:
    if user is None:
        return
    taken = Therapist.objects.filter(user=user)
    if therapist is not None:
        taken = taken.exclude(pk=therapist.pk)
    if taken.exists():
        raise TherapistInvalid("This user is already linked to another therapist.")


def _audit(action: str, therapist: Therapist, *, actor: Actor, **metadata) -> None:
    audit_event_record(
        action=action,
        actor=actor,
        subject_type="therapist",
        subject_id=str(therapist.pk),
        metadata=metadata,
    )


@transaction.atomic
def therapist_create(
    *,
    first_name: str,
    last_name: str,
    email: str | None = None,
    phone: str | None = None,
    user=None,
    is_active: bool = True,
    actor: Actor,
) -> Therapist:
    _check_user_free(user)
    therapist = Therapist.objects.create(
        first_name=clean_name(first_name, label="First name"),
        last_name=clean_name(last_name, label="Last name"),
        email=clean_email(email),
        phone=clean_phone(phone),
        user=user,
        is_active=bool(is_active),
    )
    _audit(
        "integration.therapist_created",
        therapist,
        actor=actor,
        user_id=str(user.pk) if user is not None else None,
        is_active=therapist.is_active,
    )
    return therapist


@transaction.atomic
def therapist_update(
    *,
    therapist: Therapist,
    first_name: str,
    last_name: str,
    email: str | None,
    phone: str | None,
    user,
    is_active: bool,
    actor: Actor,
) -> Therapist:
    """Replace the therapist's editable fields (the admin form sends them all). One audit event names the
    fields that changed (values only for the linked user id); a change of `is_active` is audited by
    therapist_set_active. Nothing changed: nothing written."""
    current = Therapist.objects.select_for_update().get(pk=therapist.pk)
    _check_user_free(user, current)
    wanted = {
        "first_name": clean_name(first_name, label="First name"),
        "last_name": clean_name(last_name, label="Last name"),
        "email": clean_email(email),
        "phone": clean_phone(phone),
        "user_id": user.pk if user is not None else None,
    }
    changed = [name for name, value in wanted.items() if getattr(current, name) != value]
    if changed:
        for name in changed:
            setattr(current, name, wanted[name])
        current.save(update_fields=changed)
        metadata = {"changed": [name.removesuffix("_id") for name in changed]}
        if "user_id" in changed:
            metadata["user_id"] = str(current.user_id) if current.user_id else None
        _audit("integration.therapist_updated", current, actor=actor, **metadata)
    therapist_set_active(therapist=current, is_active=is_active, actor=actor)
    current.refresh_from_db()
    return current


@transaction.atomic
def therapist_set_active(*, therapist: Therapist, is_active: bool, actor: Actor) -> bool:
    """Deactivate or reactivate: the therapist's partners lose (or regain) access on their next request.
    True when it changed anything."""
    current = Therapist.objects.select_for_update().get(pk=therapist.pk)
    if current.is_active == bool(is_active):
        return False
    current.is_active = bool(is_active)
    current.save(update_fields=["is_active"])
    partner_ids = sorted(str(pk) for pk in current.partners.values_list("pk", flat=True))
    action = "integration.therapist_reactivated" if current.is_active else "integration.therapist_deactivated"
    _audit(action, current, actor=actor, partner_ids=partner_ids)
    return True
