"""Mark messages: voice notes from the clinic (POST /api/v1/messages/voice) and their speech-to-text
(the message reads are patients.selectors.message_get / message_with_media). Text messages are
`patients.services.message_send_text`.

- `voice_transcribe`: the pluggable speech-to-text backend (MARK_STT_BACKEND), called synchronously
  in the request but outside its transaction; a failure gives a null transcription.
- `message_send_voice`: stores the audio, records the message and queues the WhatsApp voice note in
  one transaction (audit `message.sent`, ids only).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction

from core.actors import Actor
from core.time import utc_now
from patients import media
from patients.clients.stt import OpenAITranscriptionClient, SpeechToTextError
from patients.media import AudioInfo
from patients.models import Message, Patient
from patients.services import (
    LANGUAGE_RE,
    MESSAGE_PURPOSE,
    _audit,
    _invalid,
    _lock_patient,
    _whatsapp_refusal,
    message_record,
)
from patients.services.whatsapp import whatsapp_queue

logger = logging.getLogger("patients")
# The outbox needs a body; with media it is the voice note's caption. Language-neutral on purpose.
VOICE_NOTE_BODY = "\N{MICROPHONE}"

# --- Speech-to-text (outside any transaction) ----------------------------------------------------------


def voice_transcribe(*, data: bytes, info: AudioInfo, language: str | None = None) -> str | None:
    """The audio's text from the configured backend (MARK_STT_BACKEND): "none" -> None; "openai" -> the
    OpenAI-compatible client. Any failure is logged by its code (never the audio or the text) and gives
    None: a voice message is sent whether or not it could be transcribed. Call it outside a transaction:
    it waits on a vendor (at most MARK_STT_TIMEOUT_SECONDS)."""
    if settings.MARK_STT_BACKEND != "openai":
        return None
    client = OpenAITranscriptionClient(
        base_url=settings.MARK_STT_BASE_URL,
        api_key=settings.MARK_STT_API_KEY,
        model=settings.MARK_STT_MODEL,
        timeout=settings.MARK_STT_TIMEOUT_SECONDS,
    )
    try:
        text = client.transcribe(
            data=data, filename=f"audio.{info.format}", content_type=info.content_type, language=language
        )
    except SpeechToTextError as exc:
        logger.warning("speech-to-text failed: %s", exc.code)
        return None
    return text or None


# --- Voice messages ------------------------------------------------------------------------------------


def voice_language(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not LANGUAGE_RE.fullmatch(value):
        raise _invalid("language", "language is a language code such as es, ca, en or ar")
    return value.lower()


def voice_precheck(*, patient: Patient) -> None:
    """The refusals message_send_voice would raise for this patient, checked before the audio is
    inspected and transcribed (message_send_voice checks again under the patient's lock)."""
    refusal = _whatsapp_refusal(patient)
    if refusal is not None:
        raise refusal


@transaction.atomic
def message_send_voice(
    *,
    organization,
    patient: Patient,
    fileobj,
    info: AudioInfo,
    transcription: str | None,
    actor: Actor,
    media_base_url: str = "",
    now: datetime | None = None,
) -> Message:
    """A voice note from the clinic (POST /messages/voice): the audio (already inspected with
    patients.media.audio_inspect) is stored in the private media storage, the message is recorded as
    sender `system`, content type `voice`, with its media fields, and the WhatsApp voice note is queued
    with a long-lived signed URL Twilio fetches (patients.media.OUTBOUND_URL_SECONDS), all in one
    transaction. Refusals as message_send_text (opted out, archived, no number: Conflict naming why;
    outside WhatsApp's 24-hour window: Conflict, templates carry no audio). The stored file is deleted
    when anything here fails; the caller deletes it if an enclosing transaction rolls back (the returned
    message's `media.name`). Audit `message.sent`: ids only."""
    now = now or utc_now()
    if patient.organization_id != organization.pk:
        raise _invalid("patient_id", "Unknown patient_id")
    patient = _lock_patient(patient)
    refusal = _whatsapp_refusal(patient)
    if refusal is not None:
        raise refusal
    name = media.audio_store(organization=organization, fileobj=fileobj, format=info.format)
    try:
        message = message_record(
            patient=patient, sender=Message.Sender.SYSTEM, content="", content_type=Message.ContentType.VOICE, now=now
        )
        media_url = media.signed_media_url(
            message, expires_in=media.OUTBOUND_URL_SECONDS, base_url=media_base_url or None
        )
        outbound = whatsapp_queue(
            patient=patient, body=VOICE_NOTE_BODY, purpose=MESSAGE_PURPOSE, actor=actor, media_url=media_url, now=now
        )
        message.media = name
        message.media_format = info.format
        message.media_duration = info.duration_seconds
        message.transcription = transcription
        message.outbound_message = outbound
        message.save(update_fields=["media", "media_format", "media_duration", "transcription", "outbound_message"])
        _audit(
            "message.sent",
            actor=actor,
            organization=organization,
            subject_type="message",
            subject_id=message.public_id,
            patient_id=patient.public_id,
            conversation_id=message.conversation.public_id,
            outbound_message_id=outbound.public_id,
            content_type="voice",
        )
    except BaseException:
        media.audio_delete(name)
        raise
    return message
