"""Thin webhook tasks: load by id, call a service. Both are safe to run twice (the delivery claim makes a
second run of a delivered webhook a no-op)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from webhooks import services

# Longer than a batch: it starts requests for at most WEBHOOK_BATCH_SECONDS, and the last one may take
# guarded_request's deadline (3x the timeout).
_TIME_LIMIT = int(settings.WEBHOOK_BATCH_SECONDS + settings.WEBHOOK_TIMEOUT_SECONDS * 3 + 30)


@shared_task(name="webhooks.tasks.deliver_webhook", time_limit=_TIME_LIMIT, soft_time_limit=_TIME_LIMIT - 10)
def deliver_webhook(delivery_id: int) -> str:
    """A wake-up of the delivery's endpoint (one message per endpoint while one is on its way): the
    delivery and batches of its endpoint's other due deliveries until none is claimable; returns the
    delivery's own outcome ("skipped" when another run had it)."""
    outcomes = services.webhook_deliveries_attempt(delivery_id=delivery_id, drain=True)
    return outcomes.get(delivery_id, "skipped")


@shared_task(name="webhooks.tasks.sweep_due_webhook_deliveries", time_limit=120, soft_time_limit=100)
def sweep_due_webhook_deliveries() -> dict:
    return services.webhook_deliveries_sweep()
