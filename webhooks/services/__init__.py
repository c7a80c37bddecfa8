"""Webhook writes, one module per job:

- `endpoints`: register, rotate secret, revoke the previous secret, disable, enable, recover, and the
  auto-disable rule (with the owner's email);
- `publishing`: publish an event inside the caller's transaction, wake its endpoints after commit;
- `delivery`: attempts of deliveries, a batch of one endpoint's at a time, and their record (claim, POST,
  record); a task's run drains its endpoint;
- `outbox`: the outbox declaration, the batch claim and the endpoints' wake-up flag (one message per
  endpoint while one is on its way);
- `sweeping`: the sweeper and staff redelivery.

Every service is keyword-only, takes `actor: Actor` where it writes an audit event, and writes it in its
own transaction, except two, by design:

- `webhook_event_publish` runs INSIDE the caller's (domain) transaction: the event and its deliveries
  exist iff the domain change does, and endpoints are woken only after commit (nothing is sent on a
  rollback). The domain service audits its own change; publishing adds no audit row (and takes no actor).
- `webhook_delivery_attempt` / `webhook_deliveries_attempt` must NOT run inside a transaction: they claim
  deliveries with a lease in a committed claim (core.outbox), send each HTTP request outside any
  transaction, and record each result in a short transaction.

Audited actions (audit.services.audit_event_record; metadata carries ids, codes and the URL host only):
webhooks.endpoint_registered, webhooks.endpoint_replaced, webhooks.secret_rotated,
webhooks.previous_secret_revoked, webhooks.endpoint_disabled, webhooks.endpoint_enabled,
webhooks.deliveries_redelivered, webhooks.endpoint_recovered.

The package's two seams live here and the job modules read them at call time, so swapping
`webhooks.services.RESOLVER` or `webhooks.services._enqueue` (tests, the e2e journey, the bench) reaches
every job at once.
"""

from __future__ import annotations

import logging

from core.outbound import Resolver

logger = logging.getLogger("webhooks")

# Name resolver used for registration checks and deliveries; None = the system resolver. Tests swap in
# tests.servers.StaticResolver to make a name resolve to a private address.
RESOLVER: Resolver | None = None


def _enqueue(delivery_id: int, countdown: float | None = None) -> None:
    """Send the task for the delivery (its run drains the delivery's endpoint) to the broker. A failure is
    logged, not raised: the row is the source of truth and the sweeper re-enqueues it."""
    from webhooks.tasks import deliver_webhook

    try:
        deliver_webhook.apply_async(args=[delivery_id], countdown=countdown)
    except Exception:
        logger.exception("could not enqueue webhook delivery %s; the sweeper will pick it up", delivery_id)


from webhooks.services.delivery import (  # noqa: E402
    delivery_lease,
    webhook_deliveries_attempt,
    webhook_delivery_attempt,
)
from webhooks.services.endpoints import (  # noqa: E402
    WebhookEndpointInvalid,
    check_webhook_url,
    generate_secret,
    url_host,
    webhook_endpoint_disable,
    webhook_endpoint_enable,
    webhook_endpoint_recover,
    webhook_endpoint_register,
    webhook_endpoint_revoke_previous_secret,
    webhook_endpoint_rotate_secret,
    webhook_endpoints_disable_failing,
)
from webhooks.services.publishing import serialize_payload, webhook_event_publish  # noqa: E402
from webhooks.services.sweeping import (  # noqa: E402
    webhook_attempts_close_lost,
    webhook_deliveries_redeliver,
    webhook_deliveries_sweep,
)

__all__ = [
    "RESOLVER",
    "WebhookEndpointInvalid",
    "check_webhook_url",
    "delivery_lease",
    "generate_secret",
    "serialize_payload",
    "url_host",
    "webhook_attempts_close_lost",
    "webhook_deliveries_redeliver",
    "webhook_deliveries_attempt",
    "webhook_deliveries_sweep",
    "webhook_delivery_attempt",
    "webhook_endpoint_disable",
    "webhook_endpoint_enable",
    "webhook_endpoint_recover",
    "webhook_endpoint_register",
    "webhook_endpoint_revoke_previous_secret",
    "webhook_endpoint_rotate_secret",
    "webhook_endpoints_disable_failing",
    "webhook_event_publish",
]
