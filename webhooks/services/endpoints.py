"""Endpoints: register, rotate and revoke secrets, disable, enable, recover failed deliveries, and the
auto-disable rule (an endpoint failing for WEBHOOK_DISABLE_AFTER_DAYS, or answering 410) with the
owner's email."""

from __future__ import annotations

import logging
import secrets as pysecrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

import webhooks.services as package  # the swappable seams (RESOLVER, _enqueue), read at call time
from audit.services import audit_event_record
from core.actors import Actor
from core.domain import Invalid
from core.outbound import OutboundError, UnsafeURLError, validate_destination
from core.time import iso_utc, utc_now
from webhooks.models import DeliveryStatus, Scheme, WebhookDelivery, WebhookEndpoint
from webhooks.services.publishing import deliveries_restart

logger = logging.getLogger("webhooks.endpoints")

SECRET_BYTES = 32  # a generated secret is 64 hex characters (LoveRescue's spec shows a hex secret)
MIN_SECRET_LENGTH = 16
MAX_URL_LENGTH = 2000
# The caller's answer for any refused destination (unresolvable, private, reserved...), whatever the cause.
URL_REFUSED_MESSAGE = "The webhook URL is refused: its host must resolve only to public internet addresses."
# Who disables an endpoint that answered 410 or kept failing.
AUTO_DISABLE_ACTOR = Actor.system("webhooks")


class WebhookEndpointInvalid(Invalid):
    """A registration (or an action on an endpoint) is refused; `.message` says why, for the caller (the
    LoveRescue register endpoint returns it verbatim in its 400), `.code` names the rule."""


def generate_secret() -> str:
    return pysecrets.token_hex(SECRET_BYTES)


def url_host(url: str) -> str:
    try:
        return httpx.URL(url).host
    except Exception:
        return ""


def audit(action: str, endpoint: WebhookEndpoint, *, actor: Actor, **metadata: Any) -> None:
    audit_event_record(
        action=action,
        actor=actor,
        organization_id=endpoint.owner_id if endpoint.owner_type == "organization" else "",
        subject_type="webhook_endpoint",
        subject_id=endpoint.public_id,
        metadata={
            "owner_type": endpoint.owner_type,
            "owner_id": endpoint.owner_id,
            "scheme": endpoint.scheme,
            "host": url_host(endpoint.url),
            **metadata,
        },
    )


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
        validate_destination(url, resolver=package.RESOLVER)
    except OutboundError as exc:  # UnsafeURLError included
        # One answer for every refused destination: telling "does not resolve" from "resolves to a private
        # address" would let a caller map our internal DNS. The precise reason is for our log only.
        logger.warning(
            "webhook URL refused host=%s reason=%s: %s",
            url_host(url),
            "unsafe" if isinstance(exc, UnsafeURLError) else "unresolvable",
            exc,
        )
        raise WebhookEndpointInvalid(URL_REFUSED_MESSAGE, code="url_refused") from None
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


def lock(endpoint: WebhookEndpoint) -> WebhookEndpoint:
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


def disable_and_notify(
    endpoint: WebhookEndpoint, *, reason: str, code: str, now: datetime, actor: Actor, notify: bool
) -> None:
    """Disable (inside the caller's transaction), audit, and tell the owner by email when asked."""
    failed = _deactivate(endpoint, reason=reason, now=now, pending_to=DeliveryStatus.FAILED)
    audit(
        "webhooks.endpoint_disabled",
        endpoint,
        actor=actor,
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
                f"Your webhook endpoint {endpoint.public_id} (host {url_host(endpoint.url)}, "
                f"scheme {endpoint.scheme}) was disabled at {iso_utc(now)}.\n"
                f"Reason: {reason}.\n\n"
                "No further events are sent to it. Once the receiver works again, ask us to re-enable the "
                "endpoint; deliveries that failed meanwhile can then be recovered."
            ),
            purpose="webhooks.endpoint_disabled",
            actor=actor,
        )


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
    actor: Actor,
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
            cancelled = _deactivate(
                old, reason="replaced by a new registration", now=now, pending_to=DeliveryStatus.CANCELLED
            )
            audit("webhooks.endpoint_replaced", old, actor=actor, pending_deliveries_cancelled=cancelled)
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
    audit("webhooks.endpoint_registered", endpoint, actor=actor, events=events, replaced=replaced)
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint, overlap: timedelta | None = None, actor: Actor) -> str:
    """A new secret, returned once. The old one stays valid as `previous_secret` for `overlap` (default
    WEBHOOK_SECRET_OVERLAP_HOURS): during it `webhook-signature` carries both signatures; the scheme
    header (X-LoveRescue-Signature / X-Mark-Signature) uses the new secret. A zero overlap revokes the
    old secret at once. Rotating again during an overlap drops the older previous secret."""
    endpoint = lock(endpoint)
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
    audit("webhooks.secret_rotated", endpoint, actor=actor, overlap_seconds=int(overlap.total_seconds()))
    return new_secret


@transaction.atomic
def webhook_endpoint_revoke_previous_secret(*, endpoint: WebhookEndpoint, actor: Actor) -> bool:
    """End a rotation overlap now: only the current secret signs from here on. False if none was kept."""
    endpoint = lock(endpoint)
    had_previous = endpoint.previous_secret is not None
    endpoint.previous_secret = None
    endpoint.previous_secret_expires_at = None
    endpoint.save(update_fields=["previous_secret", "previous_secret_expires_at", "updated_at"])
    audit("webhooks.previous_secret_revoked", endpoint, actor=actor, had_previous=had_previous)
    return had_previous


@transaction.atomic
def webhook_endpoint_disable(*, endpoint: WebhookEndpoint, reason: str = "disabled by staff", actor: Actor) -> bool:
    """Disable by hand; pending deliveries become failed (recoverable after enabling). No email."""
    endpoint = lock(endpoint)
    if not endpoint.is_active:
        return False
    disable_and_notify(endpoint, reason=reason, code="manual", now=utc_now(), actor=actor, notify=False)
    return True


@transaction.atomic
def webhook_endpoint_enable(*, endpoint: WebhookEndpoint, actor: Actor) -> bool:
    endpoint = lock(endpoint)
    if endpoint.is_active:
        return False
    previous_reason = endpoint.disabled_reason
    endpoint.is_active = True
    endpoint.disabled_reason = ""
    endpoint.disabled_at = None
    endpoint.failing_since = None
    endpoint.save(update_fields=["is_active", "disabled_reason", "disabled_at", "failing_since", "updated_at"])
    audit("webhooks.endpoint_enabled", endpoint, actor=actor, previous_reason=previous_reason)
    return True


@transaction.atomic
def webhook_endpoint_recover(*, endpoint: WebhookEndpoint, since: datetime, actor: Actor) -> int:
    """Send again every failed delivery of the endpoint created at or after `since` (Svix "recover").
    The endpoint must be active (enable it first). Returns how many were queued."""
    endpoint = lock(endpoint)
    if not endpoint.is_active:
        raise WebhookEndpointInvalid("Enable the endpoint before recovering its deliveries.", code="endpoint_disabled")
    now = utc_now()
    queryset = WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.FAILED, created_at__gte=since)
    ids = deliveries_restart(queryset, now)
    audit("webhooks.endpoint_recovered", endpoint, actor=actor, since=iso_utc(since), count=len(ids))
    return len(ids)


def disable_if_failing_too_long(endpoint_pk: int, *, now: datetime) -> bool:
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
    disable_and_notify(
        endpoint,
        reason=f"failing continuously since {iso_utc(endpoint.failing_since)} (more than {days:g} days)",
        code="failing",
        now=now,
        actor=AUTO_DISABLE_ACTOR,
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
            disabled += disable_if_failing_too_long(pk, now=now)
    return disabled
