"""Webhook reads, for the admin and the domain APIs that publish (scoped by owner)."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint


def webhook_endpoints_for_owner(*, owner_type: str, owner_id: str, active_only: bool = True) -> QuerySet:
    """An owner's endpoints: the usual audience handed to services.webhook_event_publish."""
    queryset = WebhookEndpoint.objects.filter(owner_type=owner_type, owner_id=str(owner_id))
    return queryset.filter(is_active=True) if active_only else queryset


def webhook_endpoint_get(*, owner_type: str, owner_id: str, public_id: str) -> WebhookEndpoint | None:
    return (
        webhook_endpoints_for_owner(owner_type=owner_type, owner_id=owner_id, active_only=False)
        .filter(public_id=public_id)
        .first()
    )


def webhook_deliveries_for_endpoint(*, endpoint: WebhookEndpoint) -> QuerySet:
    return WebhookDelivery.objects.filter(endpoint=endpoint).select_related("event").order_by("-created_at")


def webhook_attempts_for_delivery(*, delivery: WebhookDelivery) -> QuerySet:
    return WebhookAttempt.objects.filter(delivery=delivery).order_by("attempted_at", "pk")


def webhook_pending_delivery_counts(*, endpoint_ids: list[int]) -> dict[int, int]:
    """How many deliveries each endpoint has pending (one query): what disabling it would fail."""
    rows = (
        WebhookDelivery.objects.filter(endpoint_id__in=endpoint_ids, status=DeliveryStatus.PENDING)
        .values("endpoint_id")
        .annotate(count=Count("pk"))
        .values_list("endpoint_id", "count")
    )
    return {endpoint_id: 0 for endpoint_id in endpoint_ids} | dict(rows)


def webhook_owner_types_in_use() -> list[str]:
    """The owner types endpoints are registered with (the admin's owner-type filter)."""
    return sorted(WebhookEndpoint.objects.order_by().values_list("owner_type", flat=True).distinct())


def webhook_delivery_last_attempt(*, delivery: WebhookDelivery) -> WebhookAttempt | None:
    return webhook_attempts_for_delivery(delivery=delivery).last()
