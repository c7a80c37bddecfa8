"""Webhook writes: registration, publishing, delivery attempts, retries, disable/enable, rotation, recovery.

Every service is keyword-only and writes its audit event in its own transaction, except two, by design:

- `webhook_event_publish` runs INSIDE the caller's (domain) transaction: the event and its deliveries
  exist iff the domain change does, and tasks are enqueued only after commit (nothing is sent on a
  rollback). The domain service audits its own change; publishing adds no audit row.
- `webhook_delivery_attempt` must NOT run inside a transaction: it claims the delivery with a lease in
  one committed conditional UPDATE, sends the HTTP request outside any transaction (no row lock held
  across the network), then records the result in a short transaction.

Audited actions (audit.services.audit_event_record; metadata carries ids, codes and the URL host only):
webhooks.endpoint_registered, webhooks.endpoint_replaced, webhooks.secret_rotated,
webhooks.previous_secret_revoked, webhooks.endpoint_disabled, webhooks.endpoint_enabled,
webhooks.deliveries_redelivered, webhooks.endpoint_recovered.
"""

from __future__ import annotations

import json
import logging
import secrets as pysecrets
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q, QuerySet

from audit.services import audit_event_record
from core.ids import new_public_id
from core.outbound import OutboundError, Resolver, UnsafeURLError, guarded_request, validate_destination
from core.time import iso_utc, utc_now
from webhooks import retry, signing
from webhooks.models import (
    RESPONSE_EXCERPT_BYTES,
    DeliveryStatus,
    Scheme,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

logger = logging.getLogger("webhooks")

# Name resolver used for registration checks and deliveries; None = the system resolver. Tests swap in
# tests.servers.StaticResolver to make a name resolve to a private address.
RESOLVER: Resolver | None = None

SECRET_BYTES = 32  # a generated secret is 64 hex characters (LoveRescue's spec shows a hex secret)
MIN_SECRET_LENGTH = 16
MAX_URL_LENGTH = 2000
# Retries due this soon are enqueued with a countdown; later ones are left to the sweeper (no
# hours-long ETA messages sitting in a broker or a worker's memory).
ENQUEUE_RETRY_WITHIN = timedelta(minutes=5)
# The sweeper leaves deliveries alone for this long after they fall due: their own message is
# normally on its way, and re-enqueueing them at once would only add duplicates.
SWEEP_GRACE = timedelta(seconds=30)
SWEEP_BATCH = 1000


class WebhookEndpointInvalid(ValidationError):
    """A registration (or an action on an endpoint) is refused; `.message` says why, for the caller."""


# --- Helpers ---------------------------------------------------------------------------------------


def generate_secret() -> str:
    return pysecrets.token_hex(SECRET_BYTES)


def delivery_lease() -> timedelta:
    """How long a claim lasts: longer than the longest attempt (guarded_request's deadline is 3x the
    timeout), so a lease only expires when the worker holding it died."""
    return timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS * 3 + 60)


def _url_host(url: str) -> str:
    try:
        return httpx.URL(url).host
    except Exception:
        return ""


def _audit(action: str, endpoint: WebhookEndpoint, *, actor_type: str, actor_id: str, **metadata: Any) -> None:
    audit_event_record(
        action=action,
        actor_type=actor_type,
        actor_id=actor_id,
        organization_id=endpoint.owner_id if endpoint.owner_type == "organization" else "",
        subject_type="webhook_endpoint",
        subject_id=endpoint.public_id,
        metadata={
            "owner_type": endpoint.owner_type,
            "owner_id": endpoint.owner_id,
            "scheme": endpoint.scheme,
            "host": _url_host(endpoint.url),
            **metadata,
        },
    )


def _enqueue(delivery_id: int, countdown: float | None = None) -> None:
    """Send the delivery's task to the broker. A failure is logged, not raised: the row is the source of
    truth and the sweeper re-enqueues it."""
    from webhooks.tasks import deliver_webhook

    try:
        deliver_webhook.apply_async(args=[delivery_id], countdown=countdown)
    except Exception:
        logger.exception("could not enqueue webhook delivery %s; the sweeper will pick it up", delivery_id)


def _enqueue_after_commit(delivery_ids: list[int], countdown: float | None = None) -> None:
    if not delivery_ids:
        return

    def send() -> None:
        for delivery_id in delivery_ids:
            _enqueue(delivery_id, countdown)

    transaction.on_commit(send, robust=True)


def check_webhook_url(url: str) -> str:
    """The URL if it may be registered, else WebhookEndpointInvalid: https (unless WEBHOOK_REQUIRE_HTTPS
    is off), no credentials, and a host resolving only to public addresses (core.outbound's SSRF guard)."""
    if not isinstance(url, str) or not url.strip():
        raise WebhookEndpointInvalid("A webhook URL is required.", code="invalid_url")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise WebhookEndpointInvalid(f"The webhook URL is longer than {MAX_URL_LENGTH} characters.", code="invalid_url")
    try:
        scheme = httpx.URL(url).scheme
    except Exception:
        raise WebhookEndpointInvalid("The webhook URL is not a valid URL.", code="invalid_url") from None
    if scheme != "https" and (settings.WEBHOOK_REQUIRE_HTTPS or scheme != "http"):
        raise WebhookEndpointInvalid("The webhook URL must use https.", code="https_required")
    try:
        validate_destination(url, resolver=RESOLVER)
    except UnsafeURLError as exc:
        raise WebhookEndpointInvalid(f"The webhook URL is refused: {exc}.", code="url_refused") from None
    except OutboundError as exc:
        raise WebhookEndpointInvalid(f"The webhook URL is refused: {exc}.", code="url_unresolvable") from None
    return url


def _check_events(events: Iterable[str]) -> list[str]:
    if isinstance(events, str) or not isinstance(events, Iterable):
        raise WebhookEndpointInvalid("events must be a list of event types.", code="invalid_events")
    result: list[str] = []
    for event in events:
        if not isinstance(event, str) or not event.strip() or len(event) > 100:
            raise WebhookEndpointInvalid("Each event type must be a non-empty string.", code="invalid_events")
        if event not in result:
            result.append(event.strip())
    if not result:
        raise WebhookEndpointInvalid("Subscribe to at least one event type.", code="invalid_events")
    return result


def _lock(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    return WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)


def _deactivate(endpoint: WebhookEndpoint, *, reason: str, now: datetime, pending_to: str) -> int:
    """Mark the endpoint inactive and move its pending deliveries to `pending_to`; returns how many."""
    endpoint.is_active = False
    endpoint.disabled_reason = reason[:200]
    endpoint.disabled_at = now
    endpoint.save(update_fields=["is_active", "disabled_reason", "disabled_at", "updated_at"])
    return WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).update(
        status=pending_to, next_attempt_at=None, claimed_until=None, updated_at=now
    )


def _disable_and_notify(
    endpoint: WebhookEndpoint, *, reason: str, code: str, now: datetime, actor_type: str, actor_id: str, notify: bool
) -> None:
    """Disable (inside the caller's transaction), audit, and tell the owner by email when asked."""
    failed = _deactivate(endpoint, reason=reason, now=now, pending_to=DeliveryStatus.FAILED)
    _audit(
        "webhooks.endpoint_disabled",
        endpoint,
        actor_type=actor_type,
        actor_id=actor_id,
        reason=code,
        pending_deliveries_failed=failed,
        notified=bool(notify and endpoint.notification_email),
    )
    if notify and endpoint.notification_email:
        from messaging.services import message_queue

        message_queue(
            channel="email",
            recipient=endpoint.notification_email,
            subject=f"Webhook endpoint {endpoint.public_id} disabled",
            body=(
                f"Your webhook endpoint {endpoint.public_id} (host {_url_host(endpoint.url)}, "
                f"scheme {endpoint.scheme}) was disabled at {iso_utc(now)}.\n"
                f"Reason: {reason}.\n\n"
                "No further events are sent to it. Once the receiver works again, ask us to re-enable the "
                "endpoint; deliveries that failed meanwhile can then be recovered."
            ),
            purpose="webhooks.endpoint_disabled",
            actor_type=actor_type,
            actor_id=actor_id,
        )


# --- Endpoints -------------------------------------------------------------------------------------


@transaction.atomic
def webhook_endpoint_register(
    *,
    owner_type: str,
    owner_id: str,
    url: str,
    events: Iterable[str],
    scheme: str,
    secret: str | None = None,
    notification_email: str | None = None,
    replace_existing: bool = False,
    actor_type: str,
    actor_id: str,
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its secret (shown to the caller once, stored encrypted).

    `replace_existing` deactivates the owner's active endpoints of the same scheme first and cancels
    their pending deliveries (LoveRescue: "registering again replaces the registration")."""
    if scheme not in Scheme.values:
        raise WebhookEndpointInvalid(f"Unknown signing scheme {scheme!r}.", code="invalid_scheme")
    if not owner_type or not owner_id:
        raise WebhookEndpointInvalid("An endpoint needs an owner.", code="invalid_owner")
    url = check_webhook_url(url)
    events = _check_events(events)
    if secret is None:
        secret = generate_secret()
    elif not isinstance(secret, str) or not (MIN_SECRET_LENGTH <= len(secret) <= 256) or not secret.isprintable():
        raise WebhookEndpointInvalid(
            f"The secret must be {MIN_SECRET_LENGTH} to 256 printable characters.", code="invalid_secret"
        )
    if notification_email:
        try:
            validate_email(notification_email)
        except ValidationError:
            raise WebhookEndpointInvalid("notification_email is not a valid address.", code="invalid_email") from None
    now = utc_now()
    replaced: list[str] = []
    if replace_existing:
        existing = WebhookEndpoint.objects.select_for_update().filter(
            owner_type=owner_type, owner_id=str(owner_id), scheme=scheme, is_active=True
        )
        for old in existing:
            cancelled = _deactivate(old, reason="replaced by a new registration", now=now,
                                    pending_to=DeliveryStatus.CANCELLED)
            _audit("webhooks.endpoint_replaced", old, actor_type=actor_type, actor_id=actor_id,
                   pending_deliveries_cancelled=cancelled)
            replaced.append(old.public_id)
    endpoint = WebhookEndpoint.objects.create(
        owner_type=owner_type,
        owner_id=str(owner_id),
        url=url,
        secret=secret,
        events=events,
        scheme=scheme,
        notification_email=notification_email or None,
    )
    _audit("webhooks.endpoint_registered", endpoint, actor_type=actor_type, actor_id=actor_id,
           events=events, replaced=replaced)
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, overlap: timedelta | None = None, actor_type: str, actor_id: str
) -> str:
    """A new secret, returned once. The old one stays valid as `previous_secret` for `overlap` (default
    WEBHOOK_SECRET_OVERLAP_HOURS): during it `webhook-signature` carries both signatures; the scheme
    header (X-LoveRescue-Signature / X-Mark-Signature) uses the new secret. A zero overlap revokes the
    old secret at once. Rotating again during an overlap drops the older previous secret."""
    endpoint = _lock(endpoint)
    if overlap is None:
        overlap = timedelta(hours=settings.WEBHOOK_SECRET_OVERLAP_HOURS)
    now = utc_now()
    new_secret = generate_secret()
    if overlap > timedelta(0):
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + overlap
    else:
        endpoint.previous_secret = None
        endpoint.previous_secret_expires_at = None
    endpoint.secret = new_secret
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    _audit("webhooks.secret_rotated", endpoint, actor_type=actor_type, actor_id=actor_id,
           overlap_seconds=int(overlap.total_seconds()))
    return new_secret


@transaction.atomic
def webhook_endpoint_revoke_previous_secret(*, endpoint: WebhookEndpoint, actor_type: str, actor_id: str) -> bool:
    """End a rotation overlap now: only the current secret signs from here on. False if none was kept."""
    endpoint = _lock(endpoint)
    had_previous = endpoint.previous_secret is not None
    endpoint.previous_secret = None
    endpoint.previous_secret_expires_at = None
    endpoint.save(update_fields=["previous_secret", "previous_secret_expires_at", "updated_at"])
    _audit("webhooks.previous_secret_revoked", endpoint, actor_type=actor_type, actor_id=actor_id,
           had_previous=had_previous)
    return had_previous


@transaction.atomic
def webhook_endpoint_disable(
    *, endpoint: WebhookEndpoint, reason: str = "disabled by staff", actor_type: str, actor_id: str
) -> bool:
    """Disable by hand; pending deliveries become failed (recoverable after enabling). No email."""
    endpoint = _lock(endpoint)
    if not endpoint.is_active:
        return False
    _disable_and_notify(endpoint, reason=reason, code="manual", now=utc_now(), actor_type=actor_type,
                        actor_id=actor_id, notify=False)
    return True


@transaction.atomic
def webhook_endpoint_enable(*, endpoint: WebhookEndpoint, actor_type: str, actor_id: str) -> bool:
    endpoint = _lock(endpoint)
    if endpoint.is_active:
        return False
    previous_reason = endpoint.disabled_reason
    endpoint.is_active = True
    endpoint.disabled_reason = ""
    endpoint.disabled_at = None
    endpoint.failing_since = None
    endpoint.save(update_fields=["is_active", "disabled_reason", "disabled_at", "failing_since", "updated_at"])
    _audit("webhooks.endpoint_enabled", endpoint, actor_type=actor_type, actor_id=actor_id,
           previous_reason=previous_reason)
    return True


# --- Publishing ------------------------------------------------------------------------------------

Payload = dict | Callable[[str, datetime], dict]


def serialize_payload(payload: dict) -> str:
    """Compact, ASCII-only JSON (non-ASCII as \\u escapes): the same bytes whatever the receiver's
    decoding, deterministic for a given dict."""
    return json.dumps(payload, separators=(",", ":"), cls=DjangoJSONEncoder)


@transaction.atomic
def webhook_event_publish(
    *,
    event_type: str,
    payload: Payload,
    endpoints: Iterable[WebhookEndpoint],
    actor_type: str = "system",
    actor_id: str = "",
) -> WebhookEvent | None:
    """Publish one event to an audience, inside the caller's transaction.

    `endpoints` is the audience the caller chose (a queryset or list); only active endpoints subscribed
    to `event_type` get a delivery. `payload` is a dict, or a callable `(event_id, created_at) -> dict`
    for bodies that carry the event's own id (Mark: {"id": "evt_...", "type", "created", "data"}).
    The body is serialized once; every endpoint receives the same bytes. Returns None when nobody is
    subscribed. Deliveries are enqueued after commit; nothing is sent if the transaction rolls back.
    """
    if isinstance(endpoints, QuerySet):
        endpoints = endpoints.filter(is_active=True)
    targets: dict[int, WebhookEndpoint] = {}
    for endpoint in endpoints:
        if endpoint.is_active and endpoint.subscribes_to(event_type):
            targets.setdefault(endpoint.pk, endpoint)
    if not targets:
        return None
    now = utc_now()
    event_id = new_public_id("evt")
    data = payload(event_id, now) if callable(payload) else payload
    event = WebhookEvent.objects.create(
        public_id=event_id, type=event_type, payload=serialize_payload(data), created_at=now
    )
    deliveries = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(event=event, endpoint=endpoint, next_attempt_at=now) for endpoint in targets.values()]
    )
    _enqueue_after_commit([delivery.pk for delivery in deliveries])
    return event


# --- Delivery --------------------------------------------------------------------------------------


def _excerpt(content: bytes) -> str:
    """At most RESPONSE_EXCERPT_BYTES bytes of the response as text: invalid or cut UTF-8 dropped, NULs
    removed (PostgreSQL text cannot hold them)."""
    return content[:RESPONSE_EXCERPT_BYTES].decode("utf-8", errors="ignore").replace("\x00", "")


def _valid_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    secrets = [endpoint.secret]
    if (
        endpoint.previous_secret
        and endpoint.previous_secret_expires_at is not None
        and endpoint.previous_secret_expires_at > now
    ):
        secrets.append(endpoint.previous_secret)
    return secrets


def _recordable_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower() not in {"authorization"}}


def webhook_delivery_attempt(*, delivery_id: int) -> str:
    """Make one attempt of a delivery if it is due and nobody else holds it; returns the outcome:
    "skipped" (not pending, not due, or claimed by another run), "succeeded", "retry_scheduled",
    "failed" (attempts exhausted, or the endpoint is disabled), "endpoint_disabled" (410 or 5 days).

    Claim: one conditional UPDATE (pending, due, no live lease) sets `claimed_until`; only the run whose
    UPDATE matched sends. After a success the row is no longer pending, so any later run skips it.
    """
    now = utc_now()
    lease_until = now + delivery_lease()
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
        .update(claimed_until=lease_until, updated_at=now)
    )
    if not claimed:
        return "skipped"
    delivery = WebhookDelivery.objects.select_related("event", "endpoint").get(pk=delivery_id)
    endpoint, event = delivery.endpoint, delivery.event

    if not endpoint.is_active:
        WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING,
                                       claimed_until=lease_until).update(
            status=DeliveryStatus.FAILED, next_attempt_at=None, claimed_until=None, updated_at=utc_now()
        )
        return "failed"

    body = event.body
    sent_at = utc_now()
    headers = signing.build_headers(
        scheme=endpoint.scheme,
        event_id=event.public_id,
        event_type=event.type,
        event_created_at=event.created_at,
        body=body,
        secrets=_valid_secrets(endpoint, sent_at),
        timestamp=int(sent_at.timestamp()),
    )
    status_code: int | None = None
    excerpt = ""
    error = ""
    retry_after_header: str | None = None
    started = time.monotonic()
    try:
        response = guarded_request(
            "POST",
            endpoint.url,
            headers=headers,
            content=body,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            user_supplied=True,
            resolver=RESOLVER,
        )
        status_code = response.status_code
        excerpt = _excerpt(response.content)
        retry_after_header = response.headers.get("retry-after")
    except UnsafeURLError as exc:
        error = f"refused: {exc}"
    except OutboundError as exc:
        error = str(exc)
    except Exception as exc:  # never leave a claimed delivery without a recorded attempt
        logger.exception("webhook delivery %s: unexpected error", delivery_id)
        error = f"unexpected error: {type(exc).__name__}"
    duration_ms = int((time.monotonic() - started) * 1000)
    if status_code is not None and 300 <= status_code < 400:
        error = "redirect not followed (3xx counts as a failure)"

    return _record_attempt(
        delivery_id=delivery_id,
        lease_until=lease_until,
        sent_at=sent_at,
        headers=headers,
        status_code=status_code,
        excerpt=excerpt,
        error=error[:300],
        duration_ms=duration_ms,
        retry_after_header=retry_after_header,
    )


@transaction.atomic
def _record_attempt(
    *,
    delivery_id: int,
    lease_until: datetime,
    sent_at: datetime,
    headers: dict[str, str],
    status_code: int | None,
    excerpt: str,
    error: str,
    duration_ms: int,
    retry_after_header: str | None,
) -> str:
    now = utc_now()
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
    endpoint = WebhookEndpoint.objects.get(pk=delivery.endpoint_id)
    WebhookAttempt.objects.create(
        delivery=delivery,
        attempted_at=sent_at,
        request_headers=_recordable_headers(headers),
        status_code=status_code,
        response_excerpt=excerpt,
        duration_ms=duration_ms,
        error=error,
    )
    success = status_code is not None and 200 <= status_code < 300
    owned = delivery.status == DeliveryStatus.PENDING and delivery.claimed_until == lease_until
    if not owned and not success:
        # Cancelled or disabled while we were sending (or our lease was taken over): keep its state.
        return "skipped"

    delivery.attempt_count += 1
    delivery.first_attempt_at = delivery.first_attempt_at or sent_at
    delivery.last_attempt_at = sent_at
    delivery.claimed_until = None
    if success:
        delivery.status = DeliveryStatus.SUCCEEDED
        delivery.succeeded_at = now
        delivery.next_attempt_at = None
        delivery.save()
        WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=False).update(failing_since=None)
        return "succeeded"

    if status_code == 410:
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
        delivery.save()
        endpoint = _lock(endpoint)
        if endpoint.is_active:
            _disable_and_notify(endpoint, reason="410 Gone", code="gone", now=now, actor_type="system",
                                actor_id="webhooks", notify=True)
        return "endpoint_disabled"

    retry_after = None
    if status_code in (429, 503):
        retry_after = retry.parse_retry_after(retry_after_header, now=now)
    policy = retry.policy_for(endpoint.scheme)
    next_at = policy.next_attempt_at(
        attempt_count=delivery.attempt_count, now=now, first_attempt_at=delivery.first_attempt_at,
        retry_after=retry_after,
    )
    if next_at is None:
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
        outcome = "failed"
    else:
        delivery.next_attempt_at = next_at
        outcome = "retry_scheduled"
    delivery.save()

    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=sent_at)
    if _disable_if_failing_too_long(endpoint.pk, now=now):
        return "endpoint_disabled"
    if next_at is not None and next_at - now <= ENQUEUE_RETRY_WITHIN:
        _enqueue_after_commit([delivery.pk], countdown=max((next_at - now).total_seconds(), 0))
    return outcome


def _disable_if_failing_too_long(endpoint_pk: int, *, now: datetime) -> bool:
    """Inside a transaction: disable the endpoint (and notify, audit) if it has been failing since
    before WEBHOOK_DISABLE_AFTER_DAYS ago without a success in between."""
    cutoff = now - timedelta(days=settings.WEBHOOK_DISABLE_AFTER_DAYS)
    endpoint = (
        WebhookEndpoint.objects.select_for_update()
        .filter(pk=endpoint_pk, is_active=True, failing_since__lte=cutoff)
        .first()
    )
    if endpoint is None:
        return False
    days = settings.WEBHOOK_DISABLE_AFTER_DAYS
    _disable_and_notify(
        endpoint,
        reason=f"failing continuously since {iso_utc(endpoint.failing_since)} (more than {days:g} days)",
        code="failing",
        now=now,
        actor_type="system",
        actor_id="webhooks",
        notify=True,
    )
    return True


def webhook_endpoints_disable_failing(*, now: datetime | None = None) -> int:
    """Apply the auto-disable rule to every endpoint failing for too long (one transaction each)."""
    now = now or utc_now()
    cutoff = now - timedelta(days=settings.WEBHOOK_DISABLE_AFTER_DAYS)
    disabled = 0
    candidates = WebhookEndpoint.objects.filter(is_active=True, failing_since__lte=cutoff).values_list("pk", flat=True)
    for pk in list(candidates):
        with transaction.atomic():
            disabled += _disable_if_failing_too_long(pk, now=now)
    return disabled


def webhook_deliveries_sweep(*, now: datetime | None = None, limit: int = SWEEP_BATCH) -> dict[str, int]:
    """Beat, every minute: apply the auto-disable rule, then re-enqueue pending deliveries that are due
    (for more than SWEEP_GRACE) and not claimed, oldest first. A lost broker message thus delays a
    delivery by about a minute; a duplicate message is harmless (the claim lets only one run send)."""
    now = now or utc_now()
    disabled = webhook_endpoints_disable_failing(now=now)
    due = list(
        WebhookDelivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=now - SWEEP_GRACE, endpoint__is_active=True
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for delivery_id in due:
        _enqueue(delivery_id)
    return {"enqueued": len(due), "endpoints_disabled": disabled}


# --- Redelivery and recovery -----------------------------------------------------------------------


def _restart(queryset: QuerySet, now: datetime) -> list[int]:
    """Back to pending, due now, a fresh attempt cycle; skips deliveries being attempted right now."""
    in_flight = Q(status=DeliveryStatus.PENDING, claimed_until__gt=now)
    ids = list(queryset.exclude(in_flight).select_for_update(of=("self",)).values_list("pk", flat=True))
    WebhookDelivery.objects.filter(pk__in=ids).update(
        status=DeliveryStatus.PENDING,
        attempt_count=0,
        first_attempt_at=None,
        next_attempt_at=now,
        claimed_until=None,
        succeeded_at=None,
        updated_at=now,
    )
    _enqueue_after_commit(ids)
    return ids


@transaction.atomic
def webhook_deliveries_redeliver(*, delivery_ids: Iterable[int], actor_type: str, actor_id: str) -> int:
    """Send the given deliveries again (whatever their status) with a fresh retry schedule. Deliveries of
    disabled endpoints are skipped. Returns how many were queued."""
    now = utc_now()
    queryset = WebhookDelivery.objects.filter(pk__in=list(delivery_ids), endpoint__is_active=True)
    ids = _restart(queryset, now)
    by_endpoint: dict[int, list[int]] = {}
    for delivery_id, endpoint_id in WebhookDelivery.objects.filter(pk__in=ids).values_list("pk", "endpoint_id"):
        by_endpoint.setdefault(endpoint_id, []).append(delivery_id)
    for endpoint in WebhookEndpoint.objects.filter(pk__in=by_endpoint):
        delivered = sorted(by_endpoint[endpoint.pk])
        _audit("webhooks.deliveries_redelivered", endpoint, actor_type=actor_type, actor_id=actor_id,
               count=len(delivered), delivery_ids=delivered[:500])
    return len(ids)


@transaction.atomic
def webhook_endpoint_recover(*, endpoint: WebhookEndpoint, since: datetime, actor_type: str, actor_id: str) -> int:
    """Send again every failed delivery of the endpoint created at or after `since` (Svix "recover").
    The endpoint must be active (enable it first). Returns how many were queued."""
    endpoint = _lock(endpoint)
    if not endpoint.is_active:
        raise WebhookEndpointInvalid("Enable the endpoint before recovering its deliveries.", code="endpoint_disabled")
    now = utc_now()
    queryset = WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.FAILED, created_at__gte=since)
    ids = _restart(queryset, now)
    _audit("webhooks.endpoint_recovered", endpoint, actor_type=actor_type, actor_id=actor_id,
           since=iso_utc(since), count=len(ids))
    return len(ids)
