"""Inbound WhatsApp messages (POST /api/messaging/twilio/inbound, after its signature check): routed to
a clinic by the number they were sent to, stored in the sender's open conversation, once per MessageSid.

- `To` is the clinic's ClinicSettings.whatsapp_number (patients.selectors.clinic_by_whatsapp_number);
  a number no clinic has, or a `From` that is not a phone number, is ignored (the webhook answers 204:
  Twilio could do nothing about it and an error would only make it retry).
- `From` is looked up among the clinic's patients by its blind index; an unknown number becomes a new
  patient: source `whatsapp`, name = the WhatsApp ProfileName (else "WhatsApp" and the masked number),
  language guessed from the number's country (Spanish-speaking countries -> es, Arabic-speaking -> ar,
  else en; Catalan cannot be told from a number: the clinic corrects it through the API).
- The message is stored as sender `patient` (message_record: the open conversation or a new one) with
  Message.external_id = MessageSid: a retried webhook finds it and stores nothing twice (the unique
  constraint per organization backs the check; concurrent deliveries of one sender's messages are
  serialized by a transaction-scoped advisory lock on PostgreSQL). `Patient.last_inbound_at` moves to it:
  free text may be sent to the patient for 24 hours (patients.services.whatsapp).
- A body that is only a stop word (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, BAJA, PARAR, BAIXA,
  ARRET, "الغاء", ... case-insensitive, surrounding spaces and punctuation ignored) opts the patient out
  (patient_whatsapp_opt_out, reason `stop_keyword`): nothing more is sent. START / UNSTOP / ALTA / ...
  re-subscribes a patient whose opt-out was that keyword (not one the clinic or the patient's request
  set). Both messages are stored like any other and get no assistant reply.
- Media: the first attachment (MediaUrl0) of an audio type is a voice note: the message is stored at
  once (content_type `voice`, content "") and its audio fetched after commit by a task
  (patients.tasks.fetch_inbound_media -> `inbound_media_fetch`): Twilio's media URL with the account's
  basic auth, through core.outbound, sniffed and stored like /messages/voice uploads (patients.media).
  Other attachments (images, documents) are not stored: the message keeps its caption, or a marker
  naming the media type.
- The assistant (patients.services.assistant) is asked for a reply after commit when the clinic has a
  responder and the message is text.
Nothing here logs a phone number, a name or message text; audit rows hold ids.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from core.actors import Actor
from core.domain import Invalid
from core.outbound import OutboundError, guarded_request
from core.phones import InvalidPhone, mask, normalize_e164, region_of
from core.time import utc_now
from patients.models import ClinicSettings, Message, Patient, Source

logger = logging.getLogger("patients")

INBOUND_ACTOR = Actor.system("patients.whatsapp_inbound")

STOP_WORDS = frozenset(
    {
        "stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "opt out", "opt-out", "revoke",
        "baja", "parar", "detener", "cancelar", "darse de baja", "no más", "no mas",  # es
        "baixa", "aturar", "prou",  # ca
        "arret", "arrêt", "désabonner",  # fr
        "الغاء", "إلغاء", "توقف", "ايقاف", "إيقاف",  # ar
    }
)  # fmt: skip
START_WORDS = frozenset({"start", "unstop", "subscribe", "alta", "reanudar", "començar", "ابدأ", "اشتراك"})
_PUNCTUATION = re.compile(r"[\s.!¡?¿,;:\"'()«»]+")

SPANISH_REGIONS = frozenset(
    "ES MX AR CO CL PE VE EC GT CU BO DO HN PY SV NI CR PA UY PR GQ".split()
)  # fmt: skip
ARABIC_REGIONS = frozenset(
    "MA DZ TN LY EG SD SA AE QA KW BH OM YE JO LB SY IQ PS MR".split()
)  # fmt: skip

NAME_MAX = 200
MEDIA_MAX_BYTES_DEFAULT = 16 * 1024 * 1024  # WhatsApp's own cap for audio
AUDIO_TYPES = ("audio/",)


@dataclass(frozen=True)
class Inbound:
    """The Twilio form fields the webhook reads (already validated by its serializer)."""

    to: str
    from_: str
    body: str
    message_sid: str
    profile_name: str = ""
    num_media: int = 0
    media_url: str = ""
    media_content_type: str = ""


@dataclass(frozen=True)
class InboundResult:
    outcome: str  # stored, duplicate, unknown_number, bad_sender
    message: Message | None = None
    patient: Patient | None = None
    keyword: str = ""  # stop, start or ""


def keyword_of(body: str) -> str:
    """ "stop", "start" or "" for a whole body (case-insensitive; spaces and punctuation around it ignored)."""
    text = _PUNCTUATION.sub(" ", (body or "").casefold()).strip()
    if text in STOP_WORDS:
        return "stop"
    if text in START_WORDS:
        return "start"
    return ""


def language_for_number(e164: str) -> str:
    """A first guess of a new patient's language from their number's country (see the module docstring)."""
    region = region_of(e164)
    if region in SPANISH_REGIONS:
        return "es"
    if region in ARABIC_REGIONS:
        return "ar"
    return "en"


def _e164(value: str) -> str | None:
    try:
        return normalize_e164(value)
    except InvalidPhone:
        return None


def _new_patient_name(profile_name: str, phone: str) -> str:
    name = " ".join((profile_name or "").split())[:NAME_MAX]
    return name or f"WhatsApp {mask(phone)}"


def _lock_sender(organization_pk: int, phone: str) -> None:
    """Serialize the inbound messages of one sender to one clinic (PostgreSQL advisory lock, released at
    commit): two first messages of an unknown number make one patient. SQLite serializes writers."""
    if connection.vendor != "postgresql":
        return
    raw = hashlib.sha256(f"patients.inbound:{organization_pk}:{phone}".encode()).digest()[:8]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(raw, "big", signed=True)])


def _is_audio(inbound: Inbound) -> bool:
    return (
        inbound.num_media > 0 and bool(inbound.media_url) and inbound.media_content_type.lower().startswith(AUDIO_TYPES)
    )


def inbound_whatsapp_record(*, inbound: Inbound, now: datetime | None = None) -> InboundResult:
    """Store one inbound WhatsApp message (see the module docstring). Returns what happened; the
    follow-up work (media fetch, assistant reply) is enqueued when the transaction commits."""
    from patients import services
    from patients.selectors import clinic_by_whatsapp_number, patient_by_phone

    now = now or utc_now()
    to = _e164(inbound.to)
    clinic = clinic_by_whatsapp_number(number_e164=to) if to else None
    if clinic is None:
        return InboundResult("unknown_number")
    phone = _e164(inbound.from_)
    if phone is None:
        return InboundResult("bad_sender")
    organization = clinic.organization
    with transaction.atomic():
        _lock_sender(organization.pk, phone)
        existing = (
            Message.objects.select_related("conversation__patient")
            .filter(organization=organization, external_id=inbound.message_sid)
            .first()
        )
        if existing is not None:
            return InboundResult("duplicate", message=existing, patient=existing.conversation.patient)
        patient = patient_by_phone(organization=organization, phone_e164=phone)
        if patient is None:
            patient = services.patient_create(
                organization=organization,
                name=_new_patient_name(inbound.profile_name, phone),
                phone_number=phone,
                preferred_language=language_for_number(phone),
                source=Source.WHATSAPP,
                actor=INBOUND_ACTOR,
                now=now,
            )
        voice = _is_audio(inbound)
        keyword = "" if voice else keyword_of(inbound.body)
        try:
            with transaction.atomic():
                message = services.message_record(
                    patient=patient,
                    sender=Message.Sender.PATIENT,
                    content="" if voice else _text_of(inbound),
                    content_type=Message.ContentType.VOICE if voice else Message.ContentType.TEXT,
                    now=now,
                )
                message.external_id = inbound.message_sid
                message.save(update_fields=["external_id"])
        except IntegrityError:  # the same MessageSid stored meanwhile (the constraint backs the check)
            existing = Message.objects.filter(organization=organization, external_id=inbound.message_sid).first()
            return InboundResult("duplicate", message=existing, patient=patient)
        Patient.objects.filter(pk=patient.pk).update(last_inbound_at=now)
        patient.last_inbound_at = now
        patient.refresh_from_db(fields=["whatsapp_consent", "whatsapp_opt_out_reason", "archived"])
        if keyword == "stop" and patient.whatsapp_consent:
            services.patient_whatsapp_opt_out(
                patient=patient, reason=Patient.OptOutReason.STOP_KEYWORD, actor=INBOUND_ACTOR, now=now
            )
        elif keyword == "start":
            patient_whatsapp_resubscribe(patient=patient, now=now)
        services._audit(
            "message.received",
            actor=INBOUND_ACTOR,
            organization=organization,
            subject_type="message",
            subject_id=message.public_id,
            patient_id=patient.public_id,
            conversation_id=message.conversation.public_id,
            content_type=message.content_type,
            keyword=keyword or None,
        )
        _after_commit(message=message, clinic=clinic, inbound=inbound, voice=voice, keyword=keyword)
    return InboundResult("stored", message=message, patient=patient, keyword=keyword)


def _text_of(inbound: Inbound) -> str:
    if inbound.body:
        return inbound.body
    if inbound.num_media > 0:
        return f"[{inbound.media_content_type or 'media'}]"  # an attachment Mark does not store
    return ""


def _after_commit(*, message: Message, clinic: ClinicSettings, inbound: Inbound, voice: bool, keyword: str) -> None:
    from patients import tasks

    message_id = message.pk
    if voice:
        media_url = inbound.media_url

        def fetch_media_after_commit() -> None:
            tasks.fetch_inbound_media.delay(message_id, media_url)

        transaction.on_commit(fetch_media_after_commit, robust=True)
    elif not keyword and clinic.responder == ClinicSettings.Responder.ANTHROPIC and message.content:

        def assistant_reply_after_commit() -> None:
            tasks.assistant_reply.delay(message_id)

        transaction.on_commit(assistant_reply_after_commit, robust=True)


@transaction.atomic
def patient_whatsapp_resubscribe(*, patient: Patient, now: datetime | None = None) -> bool:
    """START after STOP: the patient may be written to again. Only an opt-out the STOP keyword made is
    lifted (a clinic's decision or an opt-out the patient asked the clinic for stays). True if it was."""
    from patients import services

    now = now or utc_now()
    updated = Patient.objects.filter(
        pk=patient.pk, whatsapp_consent=False, whatsapp_opt_out_reason=Patient.OptOutReason.STOP_KEYWORD
    ).update(whatsapp_consent=True, whatsapp_consent_changed_at=now, whatsapp_opt_out_reason="", updated_at=now)
    if not updated:
        return False
    patient.refresh_from_db(fields=["whatsapp_consent", "whatsapp_consent_changed_at", "whatsapp_opt_out_reason"])
    services._audit(
        "patient.whatsapp_resubscribed",
        actor=INBOUND_ACTOR,
        organization=patient.organization,
        subject_type="patient",
        subject_id=patient.public_id,
    )
    return True


# --- Media (after commit, in a worker) -------------------------------------------------------------------


class MediaFetchError(Exception):
    def __init__(self, code: str, *, transient: bool = False):
        super().__init__(code)
        self.code = code
        self.transient = transient


def twilio_media_allowed(url: str) -> bool:
    """Only Twilio's API (TWILIO_API_BASE_URL: tests point it at 127.0.0.1) gets the account's credentials."""
    base = settings.TWILIO_API_BASE_URL.rstrip("/") + "/"
    return url.startswith(base)


def _download(url: str) -> bytes:
    import base64

    if not twilio_media_allowed(url):
        raise MediaFetchError("media_host_not_allowed")
    credentials = base64.b64encode(f"{settings.TWILIO_ACCOUNT_SID}:{settings.TWILIO_AUTH_TOKEN}".encode()).decode()
    try:
        # Twilio answers a media URL with a redirect to its CDN; guarded_request never follows one, so
        # the second hop is made here, without the credentials and through the SSRF guard.
        response = guarded_request(
            "GET",
            url,
            headers={"Authorization": f"Basic {credentials}"},
            max_bytes=_media_max_bytes(),
            user_supplied=False,
        )
        if response.is_redirect and response.headers.get("location", "").startswith("https://"):
            response = guarded_request("GET", response.headers["location"], max_bytes=_media_max_bytes())
    except OutboundError as exc:
        raise MediaFetchError(f"media_{type(exc).__name__}", transient=True) from None
    if response.status_code != 200:
        transient = response.status_code == 429 or response.status_code >= 500
        raise MediaFetchError(f"media_http_{response.status_code}", transient=transient)
    return response.content


def _media_max_bytes() -> int:
    return int(getattr(settings, "MARK_VOICE_MAX_BYTES", MEDIA_MAX_BYTES_DEFAULT))


def inbound_media_fetch(*, message_id: int, media_url: str) -> str:
    """Fetch a stored inbound voice note's audio, check it by content (patients.media.audio_inspect) and
    keep it in the media storage; idempotent (a message that has its audio is left alone). Returns
    "stored", "done" (nothing to do), "refused" (not audio we accept: the message stays without audio).
    Raises MediaFetchError(transient=True) for the task to retry."""
    from patients import media

    message = Message.objects.select_related("organization", "conversation").filter(pk=message_id).first()
    if message is None or message.media or message.content_type != Message.ContentType.VOICE:
        return "done"
    try:
        data = _download(media_url)
    except MediaFetchError as exc:
        if exc.transient:
            raise
        logger.warning("inbound media of message %s not fetched: %s", message.public_id, exc.code)
        return "refused"
    with tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as fileobj:
        fileobj.write(data)
        fileobj.seek(0)
        try:
            info = media.audio_inspect(fileobj)
        except Invalid:
            logger.warning("inbound media of message %s is not MP3, WAV or OGG audio; not stored", message.public_id)
            return "refused"
        name = media.audio_store(organization=message.organization, fileobj=fileobj, format=info.format)
    transcription = _transcribe(data, info, message)
    updated = Message.objects.filter(pk=message.pk, media="").update(
        media=name,
        media_format=info.format,
        media_duration=round(info.duration_seconds, 3),
        transcription=transcription,
    )
    if not updated:  # another run stored it first
        media.audio_delete(name)
        return "done"
    if transcription:
        clinic = ClinicSettings.objects.filter(organization_id=message.organization_id).first()
        if clinic is not None and clinic.responder == ClinicSettings.Responder.ANTHROPIC:
            from patients import tasks

            tasks.assistant_reply.delay(message.pk)
    return "stored"


def _transcribe(data: bytes, info, message: Message) -> str | None:
    """The voice note's text from the speech-to-text backend (MARK_STT_BACKEND; None when it is off or
    fails), as for /messages/voice uploads."""
    try:
        from patients.services.messages import voice_transcribe
    except ImportError:  # speech-to-text not installed in this build
        return None

    language = message.conversation.language if message.conversation_id else None
    return voice_transcribe(data=data, info=info, language=language)
