"""Webhook reads, for the admin and the domain APIs that publish (scoped by owner)."""

from __future__ import annotations

from django.db.models import QuerySet

from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


def webhook_endpoints_for_owner(*, owner_type: str, owner_id: str, active_only: bool = True) -> QuerySet:
    """An owner's endpoints: the usual audience handed to services.webhook_event_publish."""
    queryset = WebhookEndpoint.objects.filter(owner_type=owner_type, owner_id=str(owner_id))
    return queryset.filter(is_active=True) if active_only else queryset


def webhook_endpoint_get(*, owner_type: str, owner_id: str, public_id: str) -> WebhookEndpoint | None:
    return webhook_endpoints_for_owner(owner_type=owner_type, owner_id=owner_id, active_only=False).filter(
        public_id=public_id
    ).first()


def webhook_deliveries_for_endpoint(*, endpoint: WebhookEndpoint) -> QuerySet:
    return WebhookDelivery.objects.filter(endpoint=endpoint).select_related("event").order_by("-created_at")


def webhook_attempts_for_delivery(*, delivery: WebhookDelivery) -> QuerySet:
    return WebhookAttempt.objects.filter(delivery=delivery).order_by("attempted_at", "pk")
