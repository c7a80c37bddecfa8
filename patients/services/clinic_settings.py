"""A clinic's Mark settings and its Mark API users (the staff admin's writes; docs/mark.md, "Setting up a
clinic").

- `clinic_settings_update`: partial update of the organization's ClinicSettings (the row is created on
  the first write). Every value is checked here (the admin form shows the same messages next to the
  field): country ISO 3166-1 alpha-2, time zone IANA, WhatsApp number E.164 and used by one clinic only,
  Messaging Service SID `MG` + 32 hex, templates `{"<name>": {"<language>": "HX" + 32 hex}}`, responder one
  of the choices. Secrets (the responder's API key, the Zoom client secret) are write-only: a string sets
  one, None clears it, leaving the argument out keeps it. The audit event `clinic_settings.updated` names
  the fields changed, never a value.
- `mark_api_user_create`: a platform user with a role in one organization (owner, admin, staff or viewer)
  and a generated password, returned once for the staff user to hand over; it signs in with POST
  /api/v1/auth/token. Through accounts.services (user_create, membership_set: each audited) in one
  transaction.
"""

from __future__ import annotations

import re
import secrets
from functools import cache
from typing import Any
from zoneinfo import available_timezones

import pycountry
from django.conf import settings
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts import services as accounts_services
from accounts.models import Organization, User
from core.actors import Actor
from core.domain import Invalid
from core.phones import InvalidPhone, normalize_e164
from core.scoping import Role
from patients.models import ClinicSettings
from patients.services import LANGUAGE_RE, UNSET, _audit

MESSAGING_SERVICE_SID_RE = re.compile(r"MG[0-9a-fA-F]{32}")
CONTENT_SID_RE = re.compile(r"HX[0-9a-fA-F]{32}")
TEMPLATE_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
ZOOM_ID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
SECRET_MAX = 500
MAX_TEMPLATES = 50
SECRET_FIELDS = ("responder_api_key", "zoom_client_secret")
FIELDS = (
    "country",
    "time_zone",
    "whatsapp_number",
    "whatsapp_messaging_service_sid",
    "whatsapp_templates",
    "remind_synced_appointments",
    "recent_days",
    "responder",
    "responder_api_key",
    "responder_model",
    "zoom_account_id",
    "zoom_client_id",
    "zoom_client_secret",
)
# The roles a Mark API user may have (issue 11): the others are the therapist dashboard's.
API_USER_ROLES = (Role.OWNER, Role.ADMIN, Role.STAFF, Role.VIEWER)
PASSWORD_BYTES = 18  # token_urlsafe: 24 characters


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(message, details={"field": field})


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


# --- Field rules (also used by the admin form) ----------------------------------------------------------


def clean_country(value: Any) -> str:
    value = (value or "").strip().upper() if isinstance(value, str | None) else value
    if value == "":
        return ""
    if (
        not isinstance(value, str)
        or len(value) != 2
        or not value.isalpha()
        or not pycountry.countries.get(alpha_2=value)
    ):
        raise _invalid("country", "country is an ISO 3166-1 alpha-2 code such as ES (or empty)")
    return value


def clean_time_zone(value: Any) -> str:
    value = (value or "").strip() if isinstance(value, str | None) else value
    if value == "":
        return ""
    if not isinstance(value, str) or value not in _time_zones():
        raise _invalid("time_zone", "time_zone is an IANA time zone such as Europe/Madrid (or empty)")
    return value


def clean_whatsapp_number(value: Any, *, organization: Organization, region: str = "") -> str:
    """E.164 (a number written without "+" is read in `region`, else MARK_DEFAULT_PHONE_REGION), used by no
    other clinic: inbound messages find the clinic by it."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise _invalid("whatsapp_number", "whatsapp_number must be a string")
    try:
        number = normalize_e164(value, region=region or settings.MARK_DEFAULT_PHONE_REGION)
    except InvalidPhone as exc:
        raise _invalid("whatsapp_number", f"whatsapp_number: {exc.message}") from None
    if ClinicSettings.objects.filter(whatsapp_number=number).exclude(organization=organization).exists():
        raise _invalid("whatsapp_number", "Another clinic uses this WhatsApp number")
    return number


def clean_messaging_service_sid(value: Any) -> str:
    value = (value or "").strip() if isinstance(value, str | None) else value
    if value == "":
        return ""
    if not isinstance(value, str) or not MESSAGING_SERVICE_SID_RE.fullmatch(value):
        raise _invalid("whatsapp_messaging_service_sid", "The Messaging Service SID is MG followed by 32 hex digits")
    return value


def clean_templates(value: Any) -> dict:
    """{"<template name>": {"<language>": "HX<32 hex>"}}; names are lowercase identifiers, languages codes
    such as es, ca, en, ar or es-ES."""
    field = "whatsapp_templates"
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise _invalid(field, 'Templates are a JSON object: {"reminder_24h": {"es": "HX..."}}')
    if len(value) > MAX_TEMPLATES:
        raise _invalid(field, f"At most {MAX_TEMPLATES} templates")
    cleaned: dict[str, dict[str, str]] = {}
    for name, by_language in value.items():
        if not isinstance(name, str) or not TEMPLATE_NAME_RE.fullmatch(name):
            raise _invalid(field, "A template name is a lowercase identifier such as reminder_24h")
        if not isinstance(by_language, dict) or not by_language:
            raise _invalid(field, f'Template {name}: an object of language -> Content SID, e.g. {{"es": "HX..."}}')
        cleaned[name] = {}
        for language, sid in by_language.items():
            if not isinstance(language, str) or not LANGUAGE_RE.fullmatch(language):
                raise _invalid(field, f"Template {name}: a language is a code such as es, ca, en, ar or es-ES")
            if not isinstance(sid, str) or not CONTENT_SID_RE.fullmatch(sid):
                raise _invalid(field, f"Template {name} ({language}): a Content SID is HX followed by 32 hex digits")
            cleaned[name][language] = sid
    return cleaned


def clean_responder(value: Any) -> str:
    if value not in ClinicSettings.Responder.values:
        raise _invalid("responder", f"responder must be one of: {', '.join(ClinicSettings.Responder.values)}")
    return value


def clean_responder_model(value: Any) -> str:
    value = (value or "").strip() if isinstance(value, str | None) else value
    if not isinstance(value, str) or len(value) > 100 or any(ch.isspace() for ch in value):
        raise _invalid("responder_model", "responder_model is a model name of at most 100 characters, no spaces")
    return value


def clean_zoom_id(value: Any, field: str) -> str:
    value = (value or "").strip() if isinstance(value, str | None) else value
    if value == "":
        return ""
    if not isinstance(value, str) or not ZOOM_ID_RE.fullmatch(value):
        raise _invalid(field, f"{field} is the id from the Zoom app (letters, digits, - _ .; at most 100)")
    return value


def clean_secret(value: Any, field: str) -> str | None:
    """None clears the secret; otherwise a non-empty string without surrounding spaces."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > SECRET_MAX:
        raise _invalid(field, f"{field} is a non-empty string of at most {SECRET_MAX} characters")
    return value.strip()


def clean_recent_days(value: Any) -> int | None:
    """Routiq's "recent" window for this clinic, 1 to 365 days; None = the platform's ROUTIQ_RECENT_DAYS."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 365:
        raise _invalid("recent_days", "recent_days must be a whole number of days from 1 to 365")
    return value


def clean_flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _invalid("remind_synced_appointments", "remind_synced_appointments must be true or false")
    return value


# --- Writes ---------------------------------------------------------------------------------------------


@transaction.atomic
def clinic_settings_update(*, organization: Organization, actor: Actor, **changes: Any) -> ClinicSettings:
    """Change the given settings (FIELDS; leave one out to keep it). Secrets: a string sets, None clears.
    The first write creates the row. One audit event `clinic_settings.updated` names the fields changed
    (and whether the row was created); no value, least of all a secret's. Nothing changed: nothing written."""
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise Invalid(f"Unknown settings: {', '.join(sorted(unknown))}", details={"fields": sorted(unknown)})
    config = ClinicSettings.objects.select_for_update().filter(organization=organization).first()
    created = config is None
    if created:
        config = ClinicSettings(organization=organization)
    region = changes.get("country", UNSET)
    region = clean_country(region) if region is not UNSET else config.country
    cleaners = {
        "country": clean_country,
        "time_zone": clean_time_zone,
        "whatsapp_number": lambda v: clean_whatsapp_number(v, organization=organization, region=region),
        "whatsapp_messaging_service_sid": clean_messaging_service_sid,
        "whatsapp_templates": clean_templates,
        "remind_synced_appointments": clean_flag,
        "recent_days": clean_recent_days,
        "responder": clean_responder,
        "responder_model": clean_responder_model,
        "zoom_account_id": lambda v: clean_zoom_id(v, "zoom_account_id"),
        "zoom_client_id": lambda v: clean_zoom_id(v, "zoom_client_id"),
        "responder_api_key": lambda v: clean_secret(v, "responder_api_key"),
        "zoom_client_secret": lambda v: clean_secret(v, "zoom_client_secret"),
    }
    changed: list[str] = []
    for field in FIELDS:
        if field not in changes or changes[field] is UNSET:
            continue
        value = cleaners[field](changes[field])
        if getattr(config, field) != value:
            setattr(config, field, value)
            changed.append(field)
    if not changed and not created:
        return config
    try:
        with transaction.atomic():
            config.save(force_insert=created)
    except IntegrityError:
        # Two clinics given one number at the same moment: the unique constraint keeps one.
        raise _invalid("whatsapp_number", "Another clinic uses this WhatsApp number") from None
    _audit(
        "clinic_settings.updated",
        actor=actor,
        organization=organization,
        subject_type="organization",
        subject_id=organization.public_id,
        fields=changed,
        created=created,
        zoom_connected=config.zoom_connected,
    )
    return config


def generate_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


@transaction.atomic
def mark_api_user_create(
    *, organization: Organization, username: str, role: str, actor: Actor, email: str = ""
) -> tuple[User, str]:
    """A user of `organization` with `role` and a generated password, returned (once) with the user. The
    password is stored hashed only; a lost one is replaced (accounts admin: change password)."""
    username = (username or "").strip()
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError:
        raise _invalid("username", "A username has letters, digits and @ . + - _ only") from None
    if role not in API_USER_ROLES:
        raise _invalid("role", f"role must be one of: {', '.join(API_USER_ROLES)}")
    if not organization.is_active:
        raise _invalid("organization", "The organization is not active")
    password = generate_password()
    try:
        user = accounts_services.user_create(username=username, password=password, email=email or "", actor=actor)
    except accounts_services.AccountInvalid as exc:
        raise _invalid("username", exc.message) from None
    accounts_services.membership_set(user=user, organization=organization, role=role, actor=actor)
    _audit(
        "mark.api_user_created",
        actor=actor,
        organization=organization,
        subject_type="user",
        subject_id=str(user.pk),
        role=role,
    )
    return user, password
