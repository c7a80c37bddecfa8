"""Queueing: validate and normalize a message, write the encrypted row and its audit event, enqueue its
sending after commit; and staff re-queueing of a failed message."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from audit.models import AuditEvent
from audit.services import audit_event_new, audit_event_record
from core.actors import Actor
from core.domain import Invalid
from core.encryption import blind_index
from core.phones import WHATSAPP_PREFIX, InvalidPhone, normalize_e164
from core.time import utc_now
from messaging.clients import CONTENT_SID_RE, MESSAGING_SERVICE_SID_RE
from messaging.models import RECIPIENT_INDEX_PURPOSE, OutboundMessage
from messaging.outbox import is_urgent, wake

logger = logging.getLogger("messaging")

Channel = OutboundMessage.Channel
Status = OutboundMessage.Status

MAX_SMS_BODY = 1600  # Twilio's limit for one message body
MAX_EMAIL_BODY = 100_000
MAX_SUBJECT = 200

_PURPOSE_RE = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,99}")
MAX_CONTENT_VARIABLES = 2000  # characters of JSON
MAX_MEDIA_URL = 2000


class MessagingError(Invalid):
    """Base of the errors message_queue raises for bad input. Messages never quote the values."""


class InvalidChannelError(MessagingError):
    pass


class InvalidRecipientError(MessagingError):
    pass


class InvalidMessageError(MessagingError):
    """Empty or oversized body, a subject on a non-email channel, a malformed purpose."""


_CHANNELS = frozenset(Channel.values)  # Choices.values builds a new list on each read


def normalize_recipient(channel: str, recipient: str) -> str:
    """The form stored and indexed: E.164 (`+447911123456`, a valid number under core.phones' rule) for
    sms/whatsapp, the trimmed address for email. Raises InvalidChannelError / InvalidRecipientError
    (without the value in the message)."""
    if channel not in _CHANNELS:
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
    # Twilio's `whatsapp:+...` address form; a message has no region to read a national number in.
    if not value.removeprefix(WHATSAPP_PREFIX).startswith("+"):
        raise InvalidRecipientError(f"{channel} recipient must be an E.164 phone number (+ and country code)")
    try:
        return normalize_e164(value)
    except InvalidPhone:
        raise InvalidRecipientError(f"{channel} recipient is not a valid phone number") from None


def recipient_index(channel: str, normalized: str) -> str:
    """Blind index of a normalized recipient (email casefolded): equal for equal destinations."""
    key = normalized.casefold() if channel == Channel.EMAIL else normalized
    return blind_index(key, purpose=RECIPIENT_INDEX_PURPOSE)


def message_queue(
    *,
    channel: str,
    recipient: str,
    body: str,
    subject: str = "",
    purpose: str = "",
    actor: Actor,
    sender: str = "",
    content_sid: str = "",
    content_variables: dict | None = None,
    media_url: str = "",
) -> OutboundMessage:
    """Write a queued message, audit it, and enqueue its sending once the caller's transaction commits.

    Call it inside the transaction of the change that causes the message, so the message exists if and
    only if that change does. Raises a MessagingError (a core.domain.Invalid) for bad input.

    sms/whatsapp only: `sender` is who it is sent as (an E.164 number or a Twilio Messaging Service SID,
    MG...; "" = the platform's TWILIO_FROM_NUMBER / TWILIO_WHATSAPP_FROM). whatsapp only: `content_sid`
    a pre-approved template (HX...) sent with `content_variables` (a JSON object of strings; `body` is
    then the rendered text kept for the record), `media_url` an http(s) attachment Twilio fetches.

    Validation runs before the writes, outside any transaction work, so a MessagingError leaves the
    caller's transaction as it was. The two writes join the caller's transaction without a savepoint
    (two round trips fewer per message, issue 15): a database error in them dooms that transaction,
    which is what the caller needs anyway (no message without its audit event).
    """
    pending = message_new(
        channel=channel,
        recipient=recipient,
        body=body,
        subject=subject,
        purpose=purpose,
        actor=actor,
        sender=sender,
        content_sid=content_sid,
        content_variables=content_variables,
        media_url=media_url,
    )
    with transaction.atomic(savepoint=False):
        pending.message.save(force_insert=True)
        pending.event.save(force_insert=True)
        return pending.inserted()


@dataclass(frozen=True)
class PendingMessage:
    """A validated queued message and its audit event, not inserted yet (`message_new`)."""

    message: OutboundMessage
    event: AuditEvent

    def inserted(self, *, committed: bool = False) -> OutboundMessage:
        """Once the caller inserted both rows in its transaction: enqueue the sending after that transaction
        commits (the beat sweeper sends it anyway if this is never called or the publish fails).
        `committed`: the rows were inserted with the caller's change by one statement in autocommit, which has
        returned, so they are committed (and the sending is enqueued now)."""
        if self.message.pk is None or self.event.pk is None:
            raise RuntimeError("PendingMessage.inserted() before its message and audit event were inserted")
        conn = transaction.get_connection()
        if committed and (conn.in_atomic_block or not conn.get_autocommit()):
            raise RuntimeError("PendingMessage.inserted(committed=True) inside a transaction: nothing committed yet")
        if not committed and not conn.in_atomic_block:
            raise RuntimeError("a message's rows must be inserted inside the caller's transaction.atomic block")
        _enqueue_on_commit(self.message)
        logger.info(
            "message %s via %s queued (purpose %s)",
            self.message.public_id,
            self.message.channel,
            self.message.purpose or "-",
        )
        return self.message


def message_new(
    *,
    channel: str,
    recipient: str,
    body: str,
    subject: str = "",
    purpose: str = "",
    actor: Actor,
    sender: str = "",
    content_sid: str = "",
    content_variables: dict | None = None,
    media_url: str = "",
) -> PendingMessage:
    """What `message_queue` writes, validated the same way, unsaved: for a service that inserts the message
    and its audit event together with its own rows in one statement (issue 15), inside the transaction of
    the change that causes it, and then calls `inserted()`. Raises a MessagingError for bad input."""
    normalized = normalize_recipient(channel, recipient)
    _validate_content(channel=channel, body=body, subject=subject, purpose=purpose)
    sender = _clean_sender(channel, sender)
    variables = _clean_template(channel, content_sid, content_variables)
    media_url = _clean_media_url(channel, media_url)
    now = utc_now()
    message = OutboundMessage(
        channel=channel,
        recipient=normalized,
        recipient_index=recipient_index(channel, normalized),
        subject=subject if channel == Channel.EMAIL else "",
        body=body,
        sender=sender,
        content_sid=content_sid,
        content_variables=variables,
        media_url=media_url,
        purpose=purpose,
        status=Status.QUEUED,
        next_attempt_at=now,
        created_at=now,
    )
    event = audit_event_new(
        action="messaging.message_queued",
        actor=actor,
        subject_type="messaging.message",
        subject_id=message.public_id,
        metadata={"message_id": message.public_id, "channel": channel, "purpose": purpose},
    )
    return PendingMessage(message=message, event=event)


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


def _clean_sender(channel: str, sender: str) -> str:
    """An E.164 number (a `whatsapp:` prefix dropped) or a Messaging Service SID; "" = the platform's."""
    if not sender:
        return ""
    if not isinstance(sender, str) or channel == Channel.EMAIL:
        raise InvalidMessageError("sender is for sms/whatsapp messages")
    if MESSAGING_SERVICE_SID_RE.fullmatch(sender):
        return sender
    if sender.removeprefix(WHATSAPP_PREFIX).startswith("+"):
        try:
            return normalize_e164(sender)
        except InvalidPhone:
            pass
    raise InvalidMessageError("sender must be an E.164 number or a Twilio Messaging Service SID (MG...)")


def _clean_template(channel: str, content_sid: str, variables: dict | None) -> str:
    """The variables as JSON text ("" without a template)."""
    if not content_sid:
        if variables:
            raise InvalidMessageError("content_variables need a content_sid")
        return ""
    if channel != Channel.WHATSAPP or not isinstance(content_sid, str) or not CONTENT_SID_RE.fullmatch(content_sid):
        raise InvalidMessageError("content_sid is a Twilio Content SID (HX...) for whatsapp messages")
    variables = variables or {}
    if not isinstance(variables, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in variables.items()
    ):
        raise InvalidMessageError("content_variables is an object of strings")
    text = json.dumps(variables, ensure_ascii=False, sort_keys=True)
    if len(text) > MAX_CONTENT_VARIABLES:
        raise InvalidMessageError(f"content_variables is at most {MAX_CONTENT_VARIABLES} characters of JSON")
    return text


def _clean_media_url(channel: str, media_url: str) -> str:
    if not media_url:
        return ""
    if (
        channel != Channel.WHATSAPP
        or not isinstance(media_url, str)
        or len(media_url) > MAX_MEDIA_URL
        or not media_url.startswith(("https://", "http://"))
        or any(ch.isspace() for ch in media_url)
    ):
        raise InvalidMessageError("media_url is an http(s) URL, for whatsapp messages")
    return media_url


def _enqueue_on_commit(message: OutboundMessage) -> None:
    from messaging.tasks import enqueue_send

    message_id = message.pk
    urgent = is_urgent(message.purpose)  # routes the publish without a read of the row (config.celery)

    def enqueue_send_after_commit() -> None:  # a named function: Django logs a robust hook's __qualname__
        if urgent:
            enqueue_send(message_id, urgent=True)  # a prompt of its own (and its watchdog at claim time)
        else:
            wake(message_id)  # one drain prompt per burst of ordinary messages (messaging.outbox)

    # robust: a broker outage after commit must not fail the caller's request; the sweeper sends it.
    transaction.on_commit(enqueue_send_after_commit, robust=True)


@transaction.atomic
def message_retry(*, message: OutboundMessage, actor: Actor) -> bool:
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
        actor=actor,
        subject_type="messaging.message",
        subject_id=message.public_id,
        metadata={
            "message_id": message.public_id,
            "channel": message.channel,
            "previous_attempts": previous[0],
            "previous_error": previous[1],
        },
    )
    _enqueue_on_commit(message)
    return True
