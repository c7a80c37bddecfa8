"""Mark conversation writes: delete one conversation, export one (docs/mark.md, "API: conversations and
exports").

- `conversation_delete`: the conversation and its messages are erased in one transaction with the
  `conversation.deleted` audit event (ids and counts only); the messages' audio files are removed from the
  media storage after the commit. The patient and the rest of their data stay. Outbox messages of the
  conversation that are still queued and not being sent are withdrawn (never sent); see the function.
- `conversation_export`: renders the export file (patients.exports, pure code) and records the
  `conversation.exported` audit event (ids and format) in its own transaction.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from core.actors import Actor
from core.domain import NotFound
from core.time import utc_now
from messaging.services import messages_withdraw
from patients import exports
from patients.media import audio_delete_after_commit
from patients.models import Conversation, Message, Patient, Reminder
from patients.services import _audit

# `last_error` of an outbox message withdrawn because its conversation was deleted.
WITHDRAWN = "withdrawn_conversation_deleted"


@transaction.atomic
def conversation_delete(*, conversation: Conversation, actor: Actor, now: datetime | None = None) -> dict[str, int]:
    """Erase `conversation` and its messages; returns the counts written to the audit event.

    - The patient row is locked first (the order message_record uses), so a message arriving meanwhile
      waits and then starts a new conversation instead of joining the one being deleted.
    - The patient and their other conversations, appointments and reminders stay; `last_activity` is not
      moved back (it records when the patient was last active, which did happen).
    - Outbox messages of the conversation still queued and unclaimed are withdrawn (failed,
      `last_error` WITHDRAWN); a reminder whose message that was becomes `skipped`. Messages already sent
      (or being sent) stay in the outbox under its retention, as for an erased patient.
    - Audio files of voice messages are deleted from the media storage after the commit.
    """
    now = now or utc_now()
    Patient.objects.select_for_update().filter(pk=conversation.patient_id).first()
    if not Conversation.objects.filter(pk=conversation.pk).exists():
        # Deleted (or its patient erased) by a request that held the lock first: the same 404 as any
        # unknown id, and no second audit event.
        raise NotFound("Conversation not found")
    rows = list(Message.objects.filter(conversation_id=conversation.pk).values_list("media", "outbound_message_id"))
    media_names = sorted({name for name, _outbound in rows if name})
    withdrawn = messages_withdraw(
        message_ids=[outbound for _name, outbound in rows if outbound], reason=WITHDRAWN, now=now
    )
    reminders_skipped = (
        Reminder.objects.filter(outbound_message_id__in=withdrawn)
        .exclude(status=Reminder.Status.SKIPPED)
        .update(status=Reminder.Status.SKIPPED)
        if withdrawn
        else 0
    )
    counts = {
        "messages": len(rows),
        "media_files": len(media_names),
        "outbox_withdrawn": len(withdrawn),
        "reminders_skipped": reminders_skipped,
    }
    public_id, patient_public_id = conversation.public_id, conversation.patient.public_id
    organization = conversation.organization
    Conversation.objects.filter(pk=conversation.pk).delete()  # CASCADE: its messages
    _audit(
        "conversation.deleted",
        actor=actor,
        organization=organization,
        subject_type="conversation",
        subject_id=public_id,
        patient_id=patient_public_id,
        **counts,
    )
    audio_delete_after_commit(media_names)
    return counts


def export_data(
    *, conversation: Conversation, clinic_name: str, time_zone: str, now: datetime
) -> exports.ExportConversation:
    """The plain data an export renders, from a conversation loaded by selectors.conversation_get (patient
    joined, messages prefetched: no query here)."""
    messages = [
        exports.ExportMessage(
            id=message.public_id,
            timestamp=message.created_at,
            sender=message.sender,
            content_type=message.content_type,
            content=(message.transcription or None)
            if message.content_type == Message.ContentType.VOICE
            else message.content,
            duration=message.media_duration if message.content_type == Message.ContentType.VOICE else None,
        )
        for message in conversation.messages.all()
    ]
    return exports.ExportConversation(
        id=conversation.public_id,
        patient_id=conversation.patient.public_id,
        patient_name=conversation.patient.name,
        start_time=conversation.start_time,
        end_time=conversation.end_time,
        language=conversation.language,
        message_count=len(messages),
        summary=conversation.summary or None,
        metadata=conversation.metadata,
        exported_at=now,
        clinic_name=clinic_name,
        time_zone=time_zone,
        messages=messages,
    )


def conversation_export(
    *,
    conversation: Conversation,
    fmt: str,
    actor: Actor,
    clinic_name: str,
    time_zone: str,
    now: datetime | None = None,
) -> exports.ExportFile:
    """Render the export (outside any transaction: it is CPU work, no row is held), then record the
    `conversation.exported` audit event (ids, format, message count) in its own transaction. An unknown
    `fmt` is a ValueError (the view validates it first)."""
    now = now or utc_now()
    data = export_data(conversation=conversation, clinic_name=clinic_name, time_zone=time_zone, now=now)
    file = exports.render(data, fmt)
    conversation_export_record(conversation=conversation, fmt=fmt, actor=actor, message_count=len(data.messages))
    return file


@transaction.atomic
def conversation_export_record(*, conversation: Conversation, fmt: str, actor: Actor, message_count: int) -> None:
    _audit(
        "conversation.exported",
        actor=actor,
        organization=conversation.organization,
        subject_type="conversation",
        subject_id=conversation.public_id,
        patient_id=conversation.patient.public_id,
        format=fmt,
        messages=message_count,
    )
