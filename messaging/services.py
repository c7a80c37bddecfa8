"""Every write of the messaging outbox.

`message_queue` is what other apps call, inside their own transaction: it validates and normalizes the
recipient, writes the encrypted row and its audit event, and enqueues the send task after commit.

`message_send` is what the task calls. It never holds a transaction open across the provider call:
1. claim: one conditional UPDATE takes a lease on a queued, due, unclaimed row (and counts the attempt),
   so two workers given the same message send it once;
2. send through the configured backend, outside any transaction;
3. record the outcome with an UPDATE conditioned on the claim: sent; or queued again with a backoff
   (transient error, attempts left); or failed (permanent error, or no attempts left).
A worker that dies between 1 and 3 leaves a lease that expires after CLAIM_SECONDS; the sweeper then
re-enqueues the row. (If the provider had accepted the message, it is sent again: at-least-once.)

Logs carry the public id, channel, provider and error code only; errors raised here never quote the
recipient or the body.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import DateTimeField, F, Q, Value
from django.db.models.functions import Coalesce

from audit.services import audit_event_record
from core.encryption import blind_index
from core.time import utc_now
from messaging.backends import SendError, get_backend
from messaging.models import RECIPIENT_INDEX_PURPOSE, OutboundMessage

logger = logging.getLogger("messaging")

Channel = OutboundMessage.Channel
Status = OutboundMessage.Status

# A claimed row is left alone for this long (> the send task's hard time limit).
CLAIM_SECONDS = 300
# Retry backoff after a transient error: 30 s, 1 min, 2 min, 4 min... capped at 1 h, +0-10 % jitter.
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600
# Up to this much early, a due-time check still counts (clock skew between workers, countdown rounding).
DUE_TOLERANCE = timedelta(seconds=2)
MAX_SMS_BODY = 1600  # Twilio's limit for one message body
MAX_EMAIL_BODY = 100_000
MAX_SUBJECT = 200

_E164_RE = re.compile(r"\+[1-9]\d{6,14}")
_PURPOSE_RE = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,99}")
_ACTOR_TYPES = {"system", "user", "partner", "api_key", "anonymous"}


class MessagingError(ValueError):
    """Base of the errors message_queue raises for bad input. Messages never quote the values."""


class InvalidChannelError(MessagingError):
    pass


class InvalidRecipientError(MessagingError):
    pass


class InvalidMessageError(MessagingError):
    """Empty or oversized body, a subject on a non-email channel, a malformed purpose."""


# --- Recipients ----------------------------------------------------------------------------------------


def normalize_recipient(channel: str, recipient: str) -> str:
    """The form stored and indexed: E.164 (`+447700900123`) for sms/whatsapp, the trimmed address for
    email. Raises InvalidChannelError / InvalidRecipientError (without the value in the message)."""
    if channel not in Channel.values:
        raise InvalidChannelError(f"channel must be one of {', '.join(Channel.values)}")
    if not isinstance(recipient, str):
        raise InvalidRecipientError("recipient must be a string")
    value = recipient.strip()
    if channel == Channel.EMAIL:
        try:
            validate_email(value)
        except ValidationError:
            raise InvalidRecipientError("recipient is not a valid email address") from None
        return value
    if value.startswith("whatsapp:"):
        value = value[len("whatsapp:") :]
    if not value.startswith("+"):
        raise InvalidRecipientError(f"{channel} recipient must be an E.164 phone number (+ and country code)")
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise InvalidRecipientError(f"{channel} recipient is not a phone number") from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidRecipientError(f"{channel} recipient is not a possible phone number")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if not _E164_RE.fullmatch(e164):
        raise InvalidRecipientError(f"{channel} recipient is not an E.164 phone number")
    return e164


def recipient_index(channel: str, normalized: str) -> str:
    """Blind index of a normalized recipient (email casefolded): equal for equal destinations."""
    key = normalized.casefold() if channel == Channel.EMAIL else normalized
    return blind_index(key, purpose=RECIPIENT_INDEX_PURPOSE)


# --- Queue ----------------------------------------------------------------------------------------------


@transaction.atomic
def message_queue(
    *,
    channel: str,
    recipient: str,
    body: str,
    subject: str = "",
    purpose: str = "",
    actor_type: str = "system",
    actor_id: str = "",
) -> OutboundMessage:
    """Write a queued message, audit it, and enqueue its sending once the caller's transaction commits.

    Call it inside the transaction of the change that causes the message, so the message exists if and
    only if that change does. Raises a MessagingError (a ValueError) for bad input.
    """
    normalized = normalize_recipient(channel, recipient)
    _validate_content(channel=channel, body=body, subject=subject, purpose=purpose)
    if actor_type not in _ACTOR_TYPES:
        raise InvalidMessageError(f"actor_type must be one of {', '.join(sorted(_ACTOR_TYPES))}")
    now = utc_now()
    message = OutboundMessage.objects.create(
        channel=channel,
        recipient=normalized,
        recipient_index=recipient_index(channel, normalized),
        subject=subject if channel == Channel.EMAIL else "",
        body=body,
        purpose=purpose,
        status=Status.QUEUED,
        next_attempt_at=now,
        created_at=now,
    )
    audit_event_record(
        action="messaging.message_queued",
        actor_type=actor_type,
        actor_id=actor_id,
        subject_type="messaging.message",
        subject_id=message.public_id,
        metadata={"message_id": message.public_id, "channel": channel, "purpose": purpose},
    )
    _enqueue_on_commit(message)
    logger.info("message %s via %s queued (purpose %s)", message.public_id, channel, purpose or "-")
    return message


def _validate_content(*, channel: str, body: str, subject: str, purpose: str) -> None:
    if not isinstance(body, str) or not body.strip():
        raise InvalidMessageError("body must be a non-empty string")
    limit = MAX_EMAIL_BODY if channel == Channel.EMAIL else MAX_SMS_BODY
    if len(body) > limit:
        raise InvalidMessageError(f"body is longer than {limit} characters")
    if not isinstance(subject, str):
        raise InvalidMessageError("subject must be a string")
    if subject and channel != Channel.EMAIL:
        raise InvalidMessageError("subject is for email only")
    if len(subject) > MAX_SUBJECT or "\n" in subject or "\r" in subject:
        raise InvalidMessageError(f"subject must be one line of at most {MAX_SUBJECT} characters")
    if purpose and not _PURPOSE_RE.fullmatch(purpose):
        raise InvalidMessageError("purpose must be a short lowercase code such as 'careos.welcome'")


def _enqueue_on_commit(message: OutboundMessage) -> None:
    from messaging.tasks import enqueue_send

    message_id = message.pk

    def enqueue_send_after_commit() -> None:  # a named function: Django logs a robust hook's __qualname__
        enqueue_send(message_id)

    # robust: a broker outage after commit must not fail the caller's request; the sweeper sends it.
    transaction.on_commit(enqueue_send_after_commit, robust=True)


# --- Send -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendOutcome:
    """What one run of `message_send` did. `retry_in`: seconds until the next attempt is due, if any."""

    result: str  # "sent", "retry", "failed", or "skipped" (final, not due, or claimed by another worker)
    retry_in: float | None = None


def message_claim(*, message_id: int, now: datetime | None = None) -> datetime | None:
    """Take the lease on a queued, due, unclaimed message and count the attempt, in one UPDATE.

    Returns the lease's expiry (the claim token) or None if the message is not ours to send."""
    now = now or utc_now()
    claimed_until = now + timedelta(seconds=CLAIM_SECONDS)
    taken = (
        OutboundMessage.objects.filter(pk=message_id, status=Status.QUEUED)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + DUE_TOLERANCE))
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
        .update(claimed_until=claimed_until, attempts=F("attempts") + 1, updated_at=now)
    )
    return claimed_until if taken else None


def message_send(*, message_id: int) -> SendOutcome:
    """Send one queued message if it is due and unclaimed; see the module docstring."""
    claim = message_claim(message_id=message_id)
    if claim is None:
        return SendOutcome("skipped")
    message = OutboundMessage.objects.get(pk=message_id)
    backend = get_backend()
    try:
        result = backend.send(message)
    except SendError as exc:
        return _record_failure(message, claim=claim, error=exc, provider=backend.name)
    except Exception as exc:
        # A bug or an unexpected library error (or the task's soft time limit): treat it as transient so the
        # message is not lost, and log the class only (exception text may quote the recipient).
        logger.error("message %s via %s: unexpected %s in backend %s", message.public_id, message.channel,
                     type(exc).__name__, backend.name)
        return _record_failure(message, claim=claim, error=SendError("internal_error"), provider=backend.name,
                               transient=True)
    now = utc_now()
    updated = _claimed(message, claim).update(
        status=Status.SENT,
        provider=result.provider[:32],
        provider_message_id=result.provider_message_id[:64],
        sent_at=now,
        last_error="",
        next_attempt_at=None,
        claimed_until=None,
        updated_at=now,
    )
    if not updated:
        logger.warning("message %s: sent, but its claim had expired", message.public_id)
    logger.info("message %s via %s sent (%s)", message.public_id, message.channel, result.provider)
    return SendOutcome("sent")


def _claimed(message: OutboundMessage, claim: datetime):
    return OutboundMessage.objects.filter(pk=message.pk, status=Status.QUEUED, claimed_until=claim)


def retry_delay(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before the next attempt after `attempts` attempts; a provider's Retry-After is honoured."""
    delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))
    if retry_after:
        delay = max(delay, min(retry_after, BACKOFF_MAX_SECONDS))
    return delay * (1 + random.uniform(0, 0.1))


def _record_failure(
    message: OutboundMessage, *, claim: datetime, error: SendError, provider: str, transient: bool | None = None
) -> SendOutcome:
    transient = error.transient if transient is None else transient
    attempts = OutboundMessage.objects.values_list("attempts", flat=True).get(pk=message.pk)
    now = utc_now()
    if transient and attempts < settings.MESSAGING_MAX_ATTEMPTS:
        delay = retry_delay(attempts, error.retry_after)
        _claimed(message, claim).update(
            last_error=error.code,
            provider=provider[:32],
            next_attempt_at=now + timedelta(seconds=delay),
            claimed_until=None,
            updated_at=now,
        )
        logger.warning(
            "message %s via %s: attempt %d failed (%s), retry in %ds",
            message.public_id, message.channel, attempts, error.code, delay,
        )
        return SendOutcome("retry", retry_in=delay)
    code = error.code if not transient else f"{error.code} (after {attempts} attempts)"
    with transaction.atomic():
        updated = _claimed(message, claim).update(
            status=Status.FAILED,
            last_error=code[:200],
            provider=provider[:32],
            next_attempt_at=None,
            claimed_until=None,
            updated_at=now,
        )
        if updated:
            audit_event_record(
                action="messaging.message_failed",
                actor_type="system",
                actor_id="messaging",
                subject_type="messaging.message",
                subject_id=message.public_id,
                metadata={"message_id": message.public_id, "channel": message.channel, "purpose": message.purpose,
                          "error": error.code, "attempts": attempts},
            )
    logger.warning("message %s via %s failed after %d attempt(s): %s", message.public_id, message.channel,
                   attempts, error.code)
    return SendOutcome("failed")


# --- Provider status callbacks ---------------------------------------------------------------------------

# Which current statuses a callback may move a message from, per new status: never backwards, and
# delivered/failed are final.
_FORWARD_FROM = {
    Status.SENT: (Status.QUEUED,),
    Status.DELIVERED: (Status.QUEUED, Status.SENT),
    Status.FAILED: (Status.QUEUED, Status.SENT),
}


def message_status_record(
    *, provider: str, provider_message_id: str, status: str, error_code: str = ""
) -> OutboundMessage | None:
    """Apply a provider's delivery report. Returns the message, or None when no message has that
    provider id. A report that would move the message backwards (delivered -> sent) changes nothing."""
    if status not in _FORWARD_FROM:
        raise ValueError("status must be sent, delivered or failed")
    message = (
        OutboundMessage.objects.filter(provider=provider, provider_message_id=provider_message_id)
        .only("pk", "public_id", "channel", "status")
        .first()
    )
    if message is None:
        return None
    now = utc_now()
    changes: dict = {"status": status, "updated_at": now, "claimed_until": None, "next_attempt_at": None}
    if status == Status.SENT:
        changes["sent_at"] = Coalesce(F("sent_at"), Value(now, output_field=DateTimeField()))
    elif status == Status.DELIVERED:
        changes["delivered_at"] = now
    else:
        digits = "".join(ch for ch in error_code if ch.isdigit())[:10]
        changes["last_error"] = f"{provider}_error_{digits}" if digits else f"{provider}_failed"
    # Conditional: two callbacks racing cannot move the message backwards either.
    updated = OutboundMessage.objects.filter(pk=message.pk, status__in=_FORWARD_FROM[status]).update(**changes)
    if updated:
        logger.info("message %s via %s: provider reports %s", message.public_id, message.channel, status)
    message.refresh_from_db()
    return message


# --- Admin actions ---------------------------------------------------------------------------------------


@transaction.atomic
def message_retry(*, message: OutboundMessage, actor_type: str, actor_id: str) -> bool:
    """Queue a failed message again with a fresh attempt budget. False if it was not failed."""
    now = utc_now()
    previous = OutboundMessage.objects.filter(pk=message.pk).values_list("attempts", "last_error").first()
    updated = OutboundMessage.objects.filter(pk=message.pk, status=Status.FAILED).update(
        status=Status.QUEUED,
        attempts=0,
        next_attempt_at=now,
        claimed_until=None,
        # A late report about the failed attempt must not be taken for the new one.
        provider_message_id="",
        updated_at=now,
    )
    if not updated:
        return False
    audit_event_record(
        action="messaging.message_retried",
        actor_type=actor_type,
        actor_id=actor_id,
        subject_type="messaging.message",
        subject_id=message.public_id,
        metadata={"message_id": message.public_id, "channel": message.channel,
                  "previous_attempts": previous[0], "previous_error": previous[1]},
    )
    _enqueue_on_commit(message)
    return True
