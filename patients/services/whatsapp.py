"""WhatsApp sends of a clinic: its own sender, WhatsApp's 24-hour window and its approved templates.

`whatsapp_queue` is the one way Mark queues a WhatsApp message (called inside the caller's transaction,
like messaging.services.message_queue, which it wraps):

- sender: the clinic's ClinicSettings.whatsapp_messaging_service_sid (MG...), else its whatsapp_number,
  else "" (the platform's TWILIO_WHATSAPP_FROM);
- inside 24 hours of the patient's last inbound message (`Patient.last_inbound_at`): free text (and an
  optional media URL);
- outside it: the clinic's template for `template` (ClinicSettings.whatsapp_templates
  `{"<template>": {"<language>": "HX..."}}`) in the patient's language (its base language, then "en"),
  sent as Content SID + `variables`; the rendered `body` is kept on the outbox row for the record;
- outside it with no such template (or with media, which templates do not carry): Conflict
  `OUTSIDE_WHATSAPP_WINDOW`, nothing queued. Callers decide what that means: POST /messages answers 409,
  a reminder is `skipped` with reason `outside_whatsapp_window`, a cancellation notice is not sent
  (`notification_sent: false`). A message is never sent as free text outside the window.

Template names Mark uses, with their variables (docs/mark.md, "WhatsApp: numbers, templates..."):
`reminder_24h`, `reminder_30min`, `appointment_cancelled` ({"1": clinic, "2": date, "3": time}) and
`clinic_message` ({"1": clinic, "2": the text}).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.actors import Actor
from core.domain import Conflict
from core.time import utc_now
from messaging.models import OutboundMessage
from messaging.services import message_queue
from patients.models import ClinicSettings, Patient

WHATSAPP_WINDOW = timedelta(hours=24)
OUTSIDE_WINDOW = "OUTSIDE_WHATSAPP_WINDOW"
FALLBACK_LANGUAGE = "en"

TEMPLATE_REMINDER = {"24h": "reminder_24h", "30min": "reminder_30min"}
TEMPLATE_CANCELLED = "appointment_cancelled"
TEMPLATE_CLINIC_MESSAGE = "clinic_message"
TEMPLATE_NAMES = (*TEMPLATE_REMINDER.values(), TEMPLATE_CANCELLED, TEMPLATE_CLINIC_MESSAGE)


def _clinic_settings(organization) -> ClinicSettings:
    """The clinic's settings as they are now (read each time: a cached `organization.clinic_settings`
    may predate a change), defaults when it has none."""
    found = ClinicSettings.objects.filter(organization_id=organization.pk).first()
    return found if found is not None else ClinicSettings(organization=organization)


def whatsapp_sender(clinic: ClinicSettings) -> str:
    """Who the clinic's messages are sent as: its Messaging Service, else its number, else "" (platform)."""
    return clinic.whatsapp_messaging_service_sid or clinic.whatsapp_number or ""


def whatsapp_window_open(patient: Patient, *, now: datetime) -> bool:
    """True while free text may be sent: less than 24 hours since the patient's last message to us."""
    last = patient.last_inbound_at
    return last is not None and now - last < WHATSAPP_WINDOW


def template_sid(clinic: ClinicSettings, *, template: str, language: str | None) -> str:
    """The clinic's Content SID for `template` in `language` ("es-ES" -> "es-ES", "es", then "en"), or ""."""
    by_language = (clinic.whatsapp_templates or {}).get(template)
    if not isinstance(by_language, dict):
        return ""
    language = (language or "").strip()
    for candidate in (language, language.split("-")[0].lower(), FALLBACK_LANGUAGE):
        sid = by_language.get(candidate) if candidate else None
        if isinstance(sid, str) and sid:
            return sid
    return ""


def outside_window_conflict(template: str | None) -> Conflict:
    return Conflict(
        "The patient has not written in the last 24 hours and the clinic has no WhatsApp template for this message",
        code=OUTSIDE_WINDOW,
        details={"field": "patient_id", "reason": "outside_whatsapp_window", "template": template or None},
    )


def whatsapp_queue(
    *,
    patient: Patient,
    body: str,
    purpose: str,
    actor: Actor,
    template: str | None = None,
    variables: dict | None = None,
    media_url: str = "",
    now: datetime | None = None,
) -> OutboundMessage:
    """Queue one WhatsApp message to `patient` from their clinic (see the module docstring). Refuses a
    patient who cannot be written to (opted out, archived, no number) with the same Conflicts as
    message_send_text, and a message outside the window with no template with OUTSIDE_WHATSAPP_WINDOW.
    Call it inside the transaction of the change that causes the message."""
    from patients.services import _whatsapp_refusal  # the package imports this module: import late

    now = now or utc_now()
    refusal = _whatsapp_refusal(patient)
    if refusal is not None:
        raise refusal
    clinic = _clinic_settings(patient.organization)
    fields: dict = {"sender": whatsapp_sender(clinic)}
    if whatsapp_window_open(patient, now=now):
        fields["media_url"] = media_url
    else:
        sid = template_sid(clinic, template=template, language=patient.language) if template else ""
        if not sid or media_url:
            raise outside_window_conflict(template)
        fields["content_sid"] = sid
        fields["content_variables"] = {str(key): str(value) for key, value in (variables or {}).items()}
    return message_queue(
        channel=OutboundMessage.Channel.WHATSAPP,
        recipient=patient.phone,
        body=body,
        purpose=purpose,
        actor=actor,
        **fields,
    )
