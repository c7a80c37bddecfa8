"""Thin Celery tasks over patients.services: they take ids, are idempotent and time-limited."""

from __future__ import annotations

from celery import shared_task

from patients import services
from patients.services import assistant, inbound

MEDIA_RETRIES = 5


@shared_task(name="patients.tasks.send_due_reminders", soft_time_limit=50, time_limit=60)
def send_due_reminders() -> dict[str, int]:
    """Every minute (beat): queue the WhatsApp text of every due pending reminder. Safe to run twice or
    in two workers at once: each reminder is taken under a row lock (SKIP LOCKED) and only while pending."""
    return services.reminders_sweep()


@shared_task(
    bind=True, name="patients.tasks.fetch_inbound_media", soft_time_limit=60, time_limit=90, max_retries=MEDIA_RETRIES
)
def fetch_inbound_media(self, message_id: int, media_url: str) -> str:
    """After an inbound voice note commits: fetch its audio from Twilio and store it. A message that has
    its audio is left alone; a network failure or a 5xx/429 is retried with backoff."""
    try:
        return inbound.inbound_media_fetch(message_id=message_id, media_url=media_url)
    except inbound.MediaFetchError as exc:
        raise self.retry(countdown=min(600, 10 * 2**self.request.retries), exc=exc) from None


@shared_task(name="patients.tasks.assistant_reply", soft_time_limit=60, time_limit=90)
def assistant_reply(message_id: int) -> str:
    """After an inbound text commits: the clinic's responder answers it on WhatsApp (once: a run that finds
    the message answered does nothing)."""
    return assistant.assistant_reply(message_id=message_id)


@shared_task(name="patients.tasks.summarize_conversation", soft_time_limit=60, time_limit=90)
def summarize_conversation(conversation_id: int) -> str:
    """A closed conversation's summary and metadata from the clinic's responder (once: a summarised
    conversation is left alone)."""
    return assistant.conversation_summarize(conversation_id=conversation_id)


@shared_task(name="patients.tasks.close_idle_conversations", soft_time_limit=50, time_limit=60)
def close_idle_conversations() -> dict[str, int]:
    """Every 5 minutes (beat): end the conversations idle for MARK_CONVERSATION_IDLE_MINUTES and ask for
    the summaries still missing."""
    return assistant.conversations_close_idle()
