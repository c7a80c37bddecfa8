"""Mark webhooks (spec: mark-assistant-api.md, "Webhooks"; docs/mark.md, "Webhooks"): a clinic's
endpoints on the webhooks engine, and the events Mark's services publish to them.

Endpoints are `webhooks.WebhookEndpoint` rows with scheme "mark" (signed `X-Mark-Signature`: hex
HMAC-SHA256 of the exact body under the endpoint's secret, plus the Standard Webhooks headers), owner
"organization" and the clinic's `org_...` id, so one clinic never sees, deletes or receives another's.

Events: every body is `{"id": "evt_...", "type", "created", "data"}`, `data` holding ids, codes, counts
and times only: never a phone number, an e-mail, a name, notes or message text. Each is published by
the service that causes it, inside that service's transaction (`webhooks.services.webhook_event_publish`):
the event and its deliveries exist iff the change does, and nothing is sent before it commits. Only the
clinic's active endpoints subscribed to the type get a delivery; with none, nothing is written.

Types, who publishes them, and their `data`:
- patient.created (patient_create): patient_id, registration_date, preferred_language, status, source;
- patient.updated (patient_update, patient_whatsapp_opt_out, patient_erase): patient_id, updated_fields,
  preferred_language, status, whatsapp_consent, erased;
- appointment.created (appointment_create): appointment_id, patient_id, start_time, end_time, duration,
  status; appointment.updated (appointment_update): the same and updated_fields;
- appointment.canceled (appointment_cancel): appointment_id, patient_id, start_time, end_time, status,
  cancellation_time;
- conversation.created (conversation_for_message, when a message starts one): conversation_id,
  patient_id, start_time, language (the spec's example);
- conversation.updated (a conversation ends: conversation_for_message, the idle sweeper; its summary is
  filled: services.assistant): conversation_id, patient_id, start_time, end_time, status, language,
  message_count.

An erased patient (DELETE /patients/{id}) is announced as `patient.updated` with `"erased": true` and
nothing else about them (the spec has no patient.deleted type): the clinic's systems learn to drop their
copy. Their appointments and conversations go with them without events of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet, Subquery

from accounts.models import Organization
from audit.services import audit_event_record
from core.actors import Actor
from core.domain import Conflict, Invalid, NotFound
from core.time import iso_utc
from webhooks.models import Scheme, WebhookEndpoint, WebhookEvent
from webhooks.services import (
    WebhookEndpointInvalid,
    webhook_endpoint_disable,
    webhook_endpoint_register,
    webhook_event_publish,
)

OWNER_TYPE = "organization"
# The spec's list, in its order.
EVENT_TYPES = (
    "conversation.created",
    "conversation.updated",
    "appointment.created",
    "appointment.updated",
    "appointment.canceled",
    "patient.created",
    "patient.updated",
)
# Active endpoints one clinic may have at once (each event is one delivery per endpoint).
MAX_ACTIVE_WEBHOOKS = 10
# The disabled_reason of an endpoint its clinic deleted: it is then gone from the Mark API (404, not
# listed) while its deliveries and attempts stay for support.
DELETED_REASON = "deleted by the clinic (Mark API)"
# The engine's refusal codes -> the request field they are about.
_FIELD_OF_CODE = {
    "invalid_url": "url",
    "https_required": "url",
    "url_refused": "url",
    "invalid_events": "events",
    "invalid_secret": "secret",
}


# --- Endpoints (POST/GET/DELETE /webhooks) ----------------------------------------------------------------


def webhook_list(*, organization) -> QuerySet[WebhookEndpoint]:
    """The clinic's Mark endpoints, newest first, active and disabled (not deleted ones)."""
    return (
        WebhookEndpoint.objects.filter(owner_type=OWNER_TYPE, owner_id=organization.public_id, scheme=Scheme.MARK)
        .exclude(is_active=False, disabled_reason=DELETED_REASON)
        .order_by("-created_at", "-pk")
    )


def webhook_get(*, organization, public_id: str) -> WebhookEndpoint:
    """One of the clinic's endpoints; another clinic's id, or a deleted one, is NotFound like an unknown id."""
    endpoint = webhook_list(organization=organization).filter(public_id=public_id).first()
    if endpoint is None:
        raise NotFound("Webhook not found")
    return endpoint


def _check_event_types(events: Iterable[str]) -> list[str]:
    if isinstance(events, str) or not isinstance(events, Iterable):
        raise Invalid("events must be a list of event types", details={"field": "events"})
    events = list(events)
    unknown = [event for event in events if event not in EVENT_TYPES]
    if unknown or not events:
        raise Invalid(
            f"events must be a non-empty list of: {', '.join(EVENT_TYPES)}",
            details={"field": "events", "unknown": [str(event)[:100] for event in unknown[:10]]},
        )
    return list(dict.fromkeys(events))


@transaction.atomic
def webhook_register(*, organization, url: str, secret: str, events: Iterable[str], actor: Actor) -> WebhookEndpoint:
    """Register an endpoint for the clinic. The URL must be https and resolve only to public addresses
    (the engine's SSRF guard), the secret 16 to 256 printable characters, every event one of EVENT_TYPES.
    At most MAX_ACTIVE_WEBHOOKS active endpoints per clinic (Conflict). Refusals name the field."""
    events = _check_event_types(events)
    try:
        endpoint, _secret = webhook_endpoint_register(
            owner_type=OWNER_TYPE,
            owner_id=organization.public_id,
            url=url,
            events=events,
            scheme=Scheme.MARK,
            secret=secret,
            actor=actor,
        )
    except WebhookEndpointInvalid as exc:
        field = _FIELD_OF_CODE.get(exc.code or "", "url")
        raise Invalid(exc.message, details={"field": field}) from None
    # The cap, counted under the clinic's row lock (taken after the URL's DNS check, not during it): of two
    # registrations at once, the second counts the first once it commits. Over the cap, all rolls back.
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    if webhook_list(organization=organization).filter(is_active=True).count() > MAX_ACTIVE_WEBHOOKS:
        raise Conflict(
            f"A clinic has at most {MAX_ACTIVE_WEBHOOKS} active webhooks; delete one first",
            details={"field": "url"},
        )
    return endpoint


@transaction.atomic
def webhook_delete(*, endpoint: WebhookEndpoint, actor: Actor) -> None:
    """Stop sending to the endpoint and remove it from the clinic's API (later calls answer 404). Its
    pending deliveries fail (never sent); the endpoint row, its deliveries and attempts stay for
    support and staff may enable it again in the admin. Audited by the engine (endpoint_disabled) when
    it was active, and here as mark.webhook_deleted in every case."""
    was_active = webhook_endpoint_disable(endpoint=endpoint, reason=DELETED_REASON, actor=actor)
    if not was_active:
        # Already disabled (by the engine's failure rule or staff): mark it deleted as well.
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(disabled_reason=DELETED_REASON)
    audit_event_record(
        action="mark.webhook_deleted",
        actor=actor,
        organization_id=endpoint.owner_id,
        subject_type="webhook_endpoint",
        subject_id=endpoint.public_id,
        metadata={"was_active": was_active},
    )


# --- Publishing -------------------------------------------------------------------------------------------


def _audience(organization_pk: int) -> QuerySet[WebhookEndpoint]:
    """The clinic's active Mark endpoints, found by the organization's primary key in one query."""
    return WebhookEndpoint.objects.filter(
        owner_type=OWNER_TYPE,
        owner_id=Subquery(Organization.objects.filter(pk=organization_pk).values("public_id")[:1]),
        scheme=Scheme.MARK,
        is_active=True,
    )


def publish(*, organization_pk: int, event_type: str, data: Callable[[], dict]) -> WebhookEvent | None:
    """Publish one Mark event to the clinic's subscribed endpoints, inside the caller's transaction.
    `data` builds the event's data; it is called only when some endpoint subscribes (so an event nobody
    receives costs one query: the audience). Returns the event, or None when nobody subscribes."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown Mark event type {event_type!r}")

    def body(event_id: str, created: datetime) -> dict:
        return {"id": event_id, "type": event_type, "created": iso_utc(created), "data": data()}

    return webhook_event_publish(event_type=event_type, payload=body, endpoints=_audience(organization_pk))


def _patient_data(patient) -> dict:
    return {
        "patient_id": patient.public_id,
        "preferred_language": patient.language,
        "status": patient.status,
        "whatsapp_consent": patient.whatsapp_consent,
    }


def patient_created(patient) -> WebhookEvent | None:
    return publish(
        organization_pk=patient.organization_id,
        event_type="patient.created",
        data=lambda: {
            "patient_id": patient.public_id,
            "registration_date": iso_utc(patient.created_at),
            "preferred_language": patient.language,
            "status": patient.status,
            "source": patient.source,
        },
    )


def patient_updated(patient, *, fields: Iterable[str]) -> WebhookEvent | None:
    """`fields`: the names of the fields that changed (as the API names them), never their values."""
    fields = list(fields)
    return publish(
        organization_pk=patient.organization_id,
        event_type="patient.updated",
        data=lambda: {**_patient_data(patient), "updated_fields": fields, "erased": False},
    )


def patient_erased(*, organization_pk: int, patient_id: str) -> WebhookEvent | None:
    """The patient was erased: their id only (every other field of theirs is gone)."""
    return publish(
        organization_pk=organization_pk,
        event_type="patient.updated",
        data=lambda: {
            "patient_id": patient_id,
            "preferred_language": None,
            "status": None,
            "whatsapp_consent": None,
            "updated_fields": [],
            "erased": True,
        },
    )


def _appointment_data(appointment) -> dict:
    return {
        "appointment_id": appointment.public_id,
        "patient_id": appointment.patient.public_id,
        "start_time": iso_utc(appointment.start_time),
        "end_time": iso_utc(appointment.end_time),
        "duration": appointment.duration,
        "status": appointment.status,
    }


def appointment_created(appointment) -> WebhookEvent | None:
    return publish(
        organization_pk=appointment.organization_id,
        event_type="appointment.created",
        data=lambda: _appointment_data(appointment),
    )


def appointment_updated(appointment, *, fields: Iterable[str]) -> WebhookEvent | None:
    fields = list(fields)
    return publish(
        organization_pk=appointment.organization_id,
        event_type="appointment.updated",
        data=lambda: {**_appointment_data(appointment), "updated_fields": fields},
    )


def appointment_canceled(appointment) -> WebhookEvent | None:
    def data() -> dict:
        body = _appointment_data(appointment)
        body.pop("duration")
        return {**body, "cancellation_time": iso_utc(appointment.cancelled_at)}

    return publish(organization_pk=appointment.organization_id, event_type="appointment.canceled", data=data)


def conversation_created(conversation) -> WebhookEvent | None:
    return publish(
        organization_pk=conversation.organization_id,
        event_type="conversation.created",
        data=lambda: {
            "conversation_id": conversation.public_id,
            "patient_id": conversation.patient.public_id,
            "start_time": iso_utc(conversation.start_time),
            "language": conversation.language,
        },
    )


def conversation_updated(conversation) -> WebhookEvent | None:
    """A conversation changed, e.g. it ended (status closed, end_time set): call inside the transaction
    that changed it. Summary and metadata are not sent (they describe the patient); fetch the conversation."""
    return publish(
        organization_pk=conversation.organization_id,
        event_type="conversation.updated",
        data=lambda: {
            "conversation_id": conversation.public_id,
            "patient_id": conversation.patient.public_id,
            "start_time": iso_utc(conversation.start_time),
            "end_time": iso_utc(conversation.end_time),
            "status": conversation.status,
            "language": conversation.language,
            "message_count": conversation.message_count,
        },
    )
