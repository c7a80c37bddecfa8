"""Webhook events to integration partners (spec section 3), published inside the domain transaction.

Audience: the loverescue-scheme endpoints of every active partner with a BAA on file that may act for
the therapist concerned. A partner acting for several therapists tells them apart by `therapistId`.
"""

from __future__ import annotations

from django.db.models import QuerySet

from integration.models import IntegrationPartner, Therapist
from webhooks.models import Scheme, WebhookEndpoint
from webhooks.services import webhook_event_publish

OWNER_TYPE = "integration_partner"
EVENT_TYPES = ("alert.created", "alert.critical", "milestone.achieved", "consent.revoked")


def partner_endpoints(therapist: Therapist) -> QuerySet[WebhookEndpoint]:
    partner_ids = IntegrationPartner.objects.filter(
        therapists=therapist, status=IntegrationPartner.Status.ACTIVE, baa_signed_at__isnull=False
    ).values_list("pk", flat=True)
    return WebhookEndpoint.objects.filter(
        owner_type=OWNER_TYPE,
        owner_id__in=[str(pk) for pk in partner_ids],
        scheme=Scheme.LOVERESCUE,
        is_active=True,
    )


def publish_to_partners(*, event_type: str, payload: dict, therapist: Therapist):
    """Publish one event to the partners acting for `therapist`; None when nobody subscribes. Must run
    inside the transaction of the change that causes it (nothing is sent if it rolls back)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown LoveRescue event type {event_type!r}")
    return webhook_event_publish(event_type=event_type, payload=payload, endpoints=partner_endpoints(therapist))
