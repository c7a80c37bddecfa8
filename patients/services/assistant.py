"""The assistant: a pluggable responder per clinic (ClinicSettings.responder) that answers patients on
WhatsApp and summarises conversations when they end.

Responders: `none` (default: the clinic answers through the API; no reply, summaries stay null) and
`anthropic` (Anthropic's Messages API, patients.clients.anthropic, at MARK_RESPONDER_BASE_URL with the
clinic's own API key and model, else MARK_RESPONDER_MODEL).

- `assistant_reply(message_id)` (task patients.tasks.assistant_reply, after an inbound text or a
  transcribed voice note commits): asks the responder for a reply to the conversation so far (its last
  MAX_HISTORY messages; a short system prompt in the patient's language, kept below) and sends it through
  whatsapp_queue (inside the 24-hour window the inbound message opened), stored as sender `assistant`.
  Only the latest message is answered: when the patient wrote again, or the clinic or the assistant
  already wrote after it, the run does nothing (so a task run twice, or three quick messages, get one
  reply). Any responder error means no reply, logged by its class and code only.
- `conversations_close_idle` (beat, patients.tasks.close_idle_conversations): ends open conversations
  idle for MARK_CONVERSATION_IDLE_MINUTES (`end_time` = the last message), publishes conversation.updated,
  then asks for summaries.
- `conversation_summarize(conversation_id)` (task patients.tasks.summarize_conversation): a second prompt
  asks for JSON {summary, intent, sentiment, escalated}; the answer is validated (intent and sentiment
  from fixed lists, escalated a boolean, the summary one short text) and stored in `summary` and
  `metadata`; anything else leaves them null. At most SUMMARY_ATTEMPTS tries per conversation.
Nothing here logs message text, a name or a number.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q

from core.actors import Actor
from core.domain import Conflict
from core.time import utc_now
from patients.clients.anthropic import AnthropicClient, ResponderError
from patients.models import ClinicSettings, Conversation, Message, Patient

logger = logging.getLogger("patients")

ASSISTANT_ACTOR = Actor.system("patients.assistant")
ASSISTANT_PURPOSE = "mark.assistant"
MAX_HISTORY = 30
REPLY_MAX_TOKENS = 400
SUMMARY_MAX_TOKENS = 300
SUMMARY_MAX = 500
SUMMARY_ATTEMPTS = 3
# Conversations ended this long ago still get a summary asked for (by the sweeper: covers a lost task
# and conversations that conversation_for_message ended).
SUMMARY_LOOKBACK = timedelta(hours=24)
INTENTS = (
    "appointment_scheduling",
    "appointment_change",
    "appointment_cancellation",
    "appointment_confirmation",
    "question",
    "complaint",
    "other",
)
SENTIMENTS = ("positive", "neutral", "negative")

# The reply prompt, in the patient's language (es, ca, en, ar; anything else: en). Short on purpose.
REPLY_PROMPTS = {
    "en": (
        "You are the WhatsApp assistant of {clinic}, a healthcare clinic. Reply in English, briefly and "
        "kindly, in plain text. You cannot book, move or cancel appointments or give medical advice: say "
        "the clinic's team will reply. In an emergency, tell the patient to call 112 now."
    ),
    "es": (
        "Eres el asistente de WhatsApp de {clinic}, una clínica. Responde en español, breve y amable, en "
        "texto plano. No puedes reservar, cambiar ni cancelar citas ni dar consejo médico: di que el "
        "equipo de la clínica responderá. En una urgencia, pide al paciente que llame al 112 ya."
    ),
    "ca": (
        "Ets l'assistent de WhatsApp de {clinic}, una clínica. Respon en català, breu i amable, en text "
        "pla. No pots reservar, canviar ni cancel·lar cites ni donar consell mèdic: digues que l'equip "
        "de la clínica respondrà. En una urgència, demana al pacient que truqui al 112 ara."
    ),
    "ar": (
        "أنت مساعد واتساب لعيادة {clinic}. أجب بالعربية بإيجاز ولطف وبنص عادي. لا يمكنك حجز المواعيد أو "
        "تغييرها أو إلغاؤها ولا تقديم نصيحة طبية: قل إن فريق العيادة سيرد. في حالة الطوارئ، اطلب من "
        "المريض الاتصال بالرقم 112 فورًا."
    ),
}
SUMMARY_PROMPT = (
    "You summarise a WhatsApp conversation between a clinic and a patient. Answer with one JSON object "
    'only, no other text: {{"summary": "<one sentence in {language}, no names or phone numbers>", '
    '"intent": one of {intents}, "sentiment": one of {sentiments}, "escalated": true if the patient '
    "needs the clinic's staff, else false}}."
)
ROLE_LABELS = {"patient": "Patient", "assistant": "Assistant", "system": "Clinic"}


def _language(code: str | None) -> str:
    base = (code or "").split("-")[0].lower()
    return base if base in REPLY_PROMPTS else "en"


def _clinic_settings(organization) -> ClinicSettings:
    from patients.selectors import clinic_settings

    return clinic_settings(organization=organization)


def responder_for(clinic: ClinicSettings) -> AnthropicClient | None:
    """The clinic's responder client, or None (responder `none`, or no API key set)."""
    if clinic.responder != ClinicSettings.Responder.ANTHROPIC or not clinic.responder_api_key:
        return None
    return AnthropicClient(
        api_key=clinic.responder_api_key,
        model=clinic.responder_model or settings.MARK_RESPONDER_MODEL,
        base_url=settings.MARK_RESPONDER_BASE_URL,
        timeout=settings.MARK_RESPONDER_TIMEOUT_SECONDS,
    )


def _text(message: Message) -> str:
    """What a message said: its text, a voice note's transcription, else ""."""
    if message.content_type == Message.ContentType.VOICE:
        return message.transcription or ""
    return message.content or ""


def conversation_turns(messages: list[Message]) -> tuple[list[str], list[dict[str, str]]]:
    """(the clinic's messages before the patient's first, the Messages API turns): patient messages are
    `user`, assistant and clinic messages `assistant`; consecutive messages of one role are joined, so the
    roles alternate; empty messages are skipped."""
    leading: list[str] = []
    turns: list[dict[str, str]] = []
    for message in messages:
        text = _text(message).strip()
        if not text:
            continue
        role = "user" if message.sender == Message.Sender.PATIENT else "assistant"
        if not turns and role == "assistant":
            leading.append(text)
        elif turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n" + text
        else:
            turns.append({"role": role, "content": text})
    return leading, turns


def reply_prompt(*, clinic_name: str, language: str | None, leading: list[str]) -> str:
    prompt = REPLY_PROMPTS[_language(language)].format(clinic=clinic_name)
    if leading:
        prompt += "\n\nEarlier messages from the clinic in this conversation:\n" + "\n".join(leading)
    return prompt


def _answered(message: Message) -> bool:
    """Whether anything came after `message` in its conversation (the patient wrote again, or the clinic
    or the assistant answered)."""
    return (
        Message.objects.filter(conversation_id=message.conversation_id)
        .filter(Q(created_at__gt=message.created_at) | Q(created_at=message.created_at, pk__gt=message.pk))
        .exists()
    )


def assistant_reply(*, message_id: int, now: datetime | None = None) -> str:
    """Answer one inbound message (see the module docstring). Returns "sent", or why not: "not_found",
    "no_responder", "answered", "refused" (the patient cannot be written to, or the window closed),
    "failed" (the responder failed)."""
    from patients import services
    from patients.services.whatsapp import whatsapp_queue

    message = (
        Message.objects.select_related("conversation__patient__organization")
        .filter(pk=message_id, sender=Message.Sender.PATIENT)
        .first()
    )
    if message is None:
        return "not_found"
    patient = message.conversation.patient
    client = responder_for(_clinic_settings(patient.organization))
    if client is None:
        return "no_responder"
    if _answered(message):
        return "answered"
    if services._whatsapp_refusal(patient) is not None:
        return "refused"
    history = list(message.conversation.messages.order_by("-created_at", "-id")[:MAX_HISTORY])[::-1]
    leading, turns = conversation_turns(history)
    if not turns or turns[-1]["role"] != "user":
        return "answered"
    system = reply_prompt(clinic_name=patient.organization.name, language=patient.language, leading=leading)
    try:
        text = client.complete(system=system, messages=turns, max_tokens=REPLY_MAX_TOKENS)
    except ResponderError as exc:
        logger.warning("assistant reply to message %s failed: %s %s", message.public_id, type(exc).__name__, exc.code)
        return "failed"
    text = text[: services.CONTENT_MAX]
    now = now or utc_now()
    with transaction.atomic():
        patient = services._lock_patient(patient)
        if _answered(message):
            return "answered"
        try:
            outbound = whatsapp_queue(
                patient=patient, body=text, purpose=ASSISTANT_PURPOSE, actor=ASSISTANT_ACTOR, now=now
            )
        except Conflict as exc:
            logger.info("assistant reply to message %s not sent: %s", message.public_id, exc.code)
            return "refused"
        reply = services.message_record(
            patient=patient, sender=Message.Sender.ASSISTANT, content=text, outbound_message=outbound, now=now
        )
        services._audit(
            "message.assistant_replied",
            actor=ASSISTANT_ACTOR,
            organization=patient.organization,
            subject_type="message",
            subject_id=reply.public_id,
            patient_id=patient.public_id,
            conversation_id=reply.conversation.public_id,
            in_reply_to=message.public_id,
            outbound_message_id=outbound.public_id,
        )
    return "sent"


# --- Conversation end ----------------------------------------------------------------------------------


def _publish_conversation_updated(conversation: Conversation) -> None:
    try:
        from patients import events
    except ImportError:  # the webhooks slice is not installed in this build
        return
    publish = getattr(events, "conversation_updated", None)
    if publish is not None:
        publish(conversation)


def conversation_close(*, conversation_id: int, now: datetime) -> bool:
    """End one open conversation if it is still idle: `closed`, `end_time` = its last message (its start
    if it has none); conversation.updated is published in the same transaction. The patient row is
    locked first (SKIP LOCKED), as message_record does, so a message being stored right now either joins
    the conversation before it closes or finds it closed. True if it closed it."""
    from patients import services

    patient_id = Conversation.objects.filter(pk=conversation_id).values_list("patient_id", flat=True).first()
    if patient_id is None:
        return False
    with transaction.atomic():
        if Patient.objects.select_for_update(skip_locked=True).filter(pk=patient_id).first() is None:
            return False
        conversation = (
            Conversation.objects.select_for_update()
            .select_related("patient")
            .filter(pk=conversation_id, status=Conversation.Status.OPEN)
            .first()
        )
        if conversation is None:
            return False
        last = services._conversation_last_activity(conversation)
        if now - last < services.conversation_idle():
            return False
        conversation.status = Conversation.Status.CLOSED
        conversation.end_time = last
        conversation.save(update_fields=["status", "end_time"])
        _publish_conversation_updated(conversation)
    return True


def conversations_close_idle(*, now: datetime | None = None, limit: int = 500) -> dict[str, int]:
    """The beat sweeper: end every open conversation idle for MARK_CONVERSATION_IDLE_MINUTES (each in its
    own transaction), then enqueue a summary for each recently ended conversation of a clinic with a
    responder that has none yet. Idempotent."""
    from patients import services, tasks

    now = now or utc_now()
    cutoff = now - services.conversation_idle()
    idle_ids = list(
        Conversation.objects.filter(status=Conversation.Status.OPEN)
        .filter(Q(last_message_at__lt=cutoff) | Q(last_message_at__isnull=True, start_time__lt=cutoff))
        .order_by("start_time", "id")
        .values_list("pk", flat=True)[:limit]
    )
    closed = sum(conversation_close(conversation_id=pk, now=now) for pk in idle_ids)
    to_summarize = list(
        Conversation.objects.filter(
            status=Conversation.Status.CLOSED,
            summary__isnull=True,
            metadata__isnull=True,
            end_time__gte=now - SUMMARY_LOOKBACK - services.conversation_idle(),
            organization__clinic_settings__responder=ClinicSettings.Responder.ANTHROPIC,
        )
        .order_by("end_time", "id")
        .values_list("pk", flat=True)[:limit]
    )
    queued = 0
    for pk in to_summarize:
        if _attempts(pk) < SUMMARY_ATTEMPTS:
            tasks.summarize_conversation.delay(pk)
            queued += 1
    return {"closed": closed, "summaries_queued": queued}


def _attempts_key(conversation_id: int) -> str:
    return f"patients:summary-attempts:{conversation_id}"


def _attempts(conversation_id: int) -> int:
    return int(cache.get(_attempts_key(conversation_id)) or 0)


def _count_attempt(conversation_id: int) -> None:
    key = _attempts_key(conversation_id)
    if cache.add(key, 1, timeout=int((SUMMARY_LOOKBACK * 2).total_seconds())):
        return
    try:
        cache.incr(key)
    except ValueError:  # expired in between
        cache.add(key, 1, timeout=int((SUMMARY_LOOKBACK * 2).total_seconds()))


_CODE_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)


def parse_summary(text: str) -> tuple[str, dict] | None:
    """(summary, metadata) from the responder's answer, or None when it is not the JSON asked for: one
    JSON object (alone, or alone in a code fence) whose intent and sentiment are from the lists, escalated
    a boolean and summary a non-empty string (cut to SUMMARY_MAX)."""
    text = (text or "").strip()
    fenced = _CODE_FENCE.match(text)
    if fenced is not None:
        text = fenced.group(1).strip()
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    summary, intent = data.get("summary"), data.get("intent")
    sentiment, escalated = data.get("sentiment"), data.get("escalated")
    if not isinstance(summary, str) or not summary.strip():
        return None
    if intent not in INTENTS or sentiment not in SENTIMENTS or not isinstance(escalated, bool):
        return None
    return " ".join(summary.split())[:SUMMARY_MAX], {"intent": intent, "sentiment": sentiment, "escalated": escalated}


def _transcript(messages: list[Message]) -> str:
    lines = []
    for message in messages:
        text = _text(message).strip()
        if text:
            lines.append(f"{ROLE_LABELS.get(message.sender, 'Clinic')}: {text}")
    return "\n".join(lines)


def conversation_summarize(*, conversation_id: int) -> str:
    """Fill a closed conversation's summary and metadata from the responder (see the module docstring).
    Returns "summarized", or why not: "not_found" (not closed, or already summarised), "no_responder",
    "empty", "failed", "invalid"."""
    conversation = (
        Conversation.objects.select_related("patient__organization")
        .filter(pk=conversation_id, status=Conversation.Status.CLOSED, summary__isnull=True)
        .first()
    )
    if conversation is None:
        return "not_found"
    organization = conversation.patient.organization
    client = responder_for(_clinic_settings(organization))
    if client is None:
        return "no_responder"
    messages = list(conversation.messages.order_by("-created_at", "-id")[:MAX_HISTORY])[::-1]
    transcript = _transcript(messages)
    if not transcript:
        return "empty"
    _count_attempt(conversation_id)
    language = {"es": "Spanish", "ca": "Catalan", "ar": "Arabic"}.get(_language(conversation.language), "English")
    system = SUMMARY_PROMPT.format(
        language=language, intents=json.dumps(list(INTENTS)), sentiments=json.dumps(list(SENTIMENTS))
    )
    try:
        answer = client.complete(
            system=system, messages=[{"role": "user", "content": transcript}], max_tokens=SUMMARY_MAX_TOKENS
        )
    except ResponderError as exc:
        logger.warning("summary of %s failed: %s %s", conversation.public_id, type(exc).__name__, exc.code)
        return "failed"
    parsed = parse_summary(answer)
    if parsed is None:
        logger.warning("summary of %s: the responder's answer is not the JSON asked for", conversation.public_id)
        return "invalid"
    summary, metadata = parsed
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update()
            .select_related("patient")
            .filter(pk=conversation_id, summary__isnull=True)
            .first()
        )
        if conversation is None:
            return "not_found"
        conversation.summary = summary
        conversation.metadata = metadata
        conversation.save(update_fields=["summary", "metadata"])
        _publish_conversation_updated(conversation)
    return "summarized"
