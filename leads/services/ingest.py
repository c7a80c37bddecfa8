"""`POST /api/leads/ingest`: decrypt and verify the phone, then user + lead + payment + welcome SMS.

`lead_ingest`:

1. Replay: the platform's lead for `source_conversation_id` already exists -> its stored ids and flags,
   nothing new (no decryption, no user, lead, payment, SMS or audit row). Checked first because it is
   one indexed read and retries are the common duplicate; a replay is keyed by the conversation id
   alone (a retry with a different body gets the first answer, as with any idempotency key).
2. The phone: RSA-OAEP decryption (`leads.crypto.decrypt_phone`, every failure the same), then the
   spec's hash `hex(sha256(phone + PHONE_HASH_SALT))` over the exact decrypted text, compared in
   constant time (hex case ignored), then E.164 by the platform's one rule (`core.phones.normalize_e164`,
   the lead's country as the region hint for national numbers; without a country only international
   "+..." numbers parse).
3. One transaction, the only writes: the user, deduplicated by `blind_index(E.164,
   purpose="leads.user.phone")` (a UNIQUE column): reused, or created with the platform's `user_source`
   ("businessos_referral"); the welcome SMS (`messaging.message_queue`, in the lead's language: en, es,
   fr, else en; it quotes neither the user's message nor any health detail), the lead (CareOS category
   from `leads.categories`), a pending PartnerPayment of `lead_value_agreed` due 30 days after the lead,
   and the audit event `leads.lead_ingested` (ids and codes only), all by the partner platform's actor.
Steps 1 and 2 only read, so they run before the transaction opens: a replay costs one read, and the
RSA work never holds a transaction (or, on SQLite, the write lock) open.

Concurrent duplicates are settled by the database, not by the reads: the user is inserted in a
savepoint; a unique violation on its phone index means another request created that user (re-read and
reuse it, `is_new_user` false). A unique violation on the lead means another request
took this conversation: the transaction (including the user, the SMS row and its on-commit enqueue) is
rolled back, and the other request's lead is returned as a replay. Under READ COMMITTED the re-reads
after a conflict see the other transaction's rows (the conflicting INSERT waits for it to commit).

Refusals are `IngestRejected` (a `core.domain.Invalid`: the API answers 400 with its message). Nothing
here logs or raises with a phone number, a name or message text.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction

from audit.services import audit_event_record
from core.actors import Actor
from core.domain import Invalid
from core.encryption import blind_index
from core.phones import InvalidPhone, normalize_e164
from leads import crypto, selectors
from leads.categories import careos_category
from leads.models import CareUser, Lead, PartnerPayment, PartnerPlatform
from messaging.services import InvalidRecipientError, message_queue

logger = logging.getLogger("leads.ingest")

PHONE_INDEX_PURPOSE = "leads.user.phone"
PAYMENT_DUE_AFTER = timedelta(days=30)
WELCOME_PURPOSE = "careos.welcome"

DECRYPTION_FAILED = "Failed to decrypt user data"
PHONE_HASH_MISMATCH = "Phone hash mismatch"
INVALID_PHONE = "Invalid phone number"

# Welcome texts: first name (or none), the partner's display name. No health detail, no user message.
WELCOME_TEXTS = {
    "en": (
        "Hi{name}, this is CareOS. {partner} told us you'd like help finding care. "
        "We'll text you shortly to get started. Reply STOP to opt out."
    ),
    "es": (
        "Hola{name}, somos CareOS. {partner} nos dijo que te gustaría recibir ayuda para encontrar "
        "cuidado. Te escribiremos pronto para empezar. Responde STOP para darte de baja."
    ),
    "fr": (
        "Bonjour{name}, ici CareOS. {partner} nous a indiqué que vous souhaitiez de l'aide pour trouver "
        "des soins. Nous vous écrirons bientôt pour commencer. Répondez STOP pour vous désabonner."
    ),
}
DEFAULT_WELCOME_LANGUAGE = "en"
MAX_NAME_IN_SMS = 40


class IngestRejected(Invalid):
    """A lead refused after validation (decryption, hash, phone). The message is the API's 400 message."""


@dataclass(frozen=True)
class LeadInput:
    """A validated ingest body (leads.api.serializers.parse_inbound_lead)."""

    source_conversation_id: str
    user_phone_hash: str = field(repr=False)
    user_phone_encrypted: str = field(repr=False)
    user_language: str
    category: str
    original_message: str = field(repr=False)
    consent_timestamp: datetime
    lead_value: Decimal
    user_name: str | None = field(default=None, repr=False)
    location_state: str = ""
    location_country: str = ""
    location_city: str = field(default="", repr=False)
    subcategory: str = ""
    ai_extracted_details: dict = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class IngestResult:
    lead: Lead
    replayed: bool

    @property
    def user(self) -> CareUser:
        return self.lead.user


# --- The phone -----------------------------------------------------------------------------------------


def spec_phone_hash(phone: str, salt: str) -> str:
    """The spec's `hashPhone`: hex SHA-256 of phone + PHONE_HASH_SALT (UTF-8)."""
    return hashlib.sha256((phone + salt).encode("utf-8")).hexdigest()


def verified_phone(*, platform: PartnerPlatform, payload: LeadInput, keys=None) -> str:
    """The lead's phone in E.164, after decryption and the hash check; IngestRejected otherwise."""
    try:
        plaintext = crypto.decrypt_phone(payload.user_phone_encrypted, keys)
    except crypto.DecryptionFailed:
        raise IngestRejected(DECRYPTION_FAILED) from None
    expected = spec_phone_hash(plaintext, platform.phone_hash_salt).encode("ascii")
    presented = payload.user_phone_hash.lower().encode("utf-8")
    if not hmac.compare_digest(expected, presented):
        raise IngestRejected(PHONE_HASH_MISMATCH)
    return e164(plaintext, region=payload.location_country or None)


def e164(phone: str, *, region: str | None) -> str:
    try:
        return normalize_e164(phone, region=region)
    except InvalidPhone:
        # One message for every refusal (core's own texts differ by cause; the API's 400 does not).
        raise IngestRejected(INVALID_PHONE) from None


# --- The welcome SMS -------------------------------------------------------------------------------------


def welcome_text(*, language: str, user_name: str | None, partner_name: str) -> str:
    primary = language.split("-")[0].lower()
    template = WELCOME_TEXTS.get(primary, WELCOME_TEXTS[DEFAULT_WELCOME_LANGUAGE])
    first = (user_name or "").split()
    name = f" {first[0][:MAX_NAME_IN_SMS]}" if first else ""
    return template.format(name=name, partner=partner_name)


# --- The write -------------------------------------------------------------------------------------------


def lead_ingest(*, platform: PartnerPlatform, payload: LeadInput, actor: Actor, keys=None) -> IngestResult:
    """Replay or create the lead for (platform, source_conversation_id); see the module docstring.
    `actor` is the calling platform (`Actor.partner_platform(slug)`). Raises IngestRejected (nothing
    written) for an undecryptable, mismatched or invalid phone.

    Not `@transaction.atomic` as a whole on purpose: the replay read and the RSA work run before the one
    write transaction (`_lead_create`), so they never hold it (or SQLite's write lock) open."""
    existing = selectors.lead_for_conversation(platform=platform, source_conversation_id=payload.source_conversation_id)
    if existing is not None:
        return IngestResult(lead=existing, replayed=True)
    phone = verified_phone(platform=platform, payload=payload, keys=keys)
    try:
        with transaction.atomic():
            lead = _lead_create(platform=platform, payload=payload, phone=phone, actor=actor)
    except IntegrityError:
        # Another request took this conversation between our read and our insert (everything this
        # transaction wrote is rolled back; a savepoint if a caller's transaction was already open).
        existing = selectors.lead_for_conversation(
            platform=platform, source_conversation_id=payload.source_conversation_id
        )
        if existing is None:
            raise
        return IngestResult(lead=existing, replayed=True)
    logger.info("lead %s ingested from %s (new user: %s)", lead.public_id, platform.slug, lead.is_new_user)
    return IngestResult(lead=lead, replayed=False)


def _user_get_or_create(*, platform: PartnerPlatform, payload: LeadInput, phone: str) -> tuple[CareUser, bool]:
    phone_index = blind_index(phone, purpose=PHONE_INDEX_PURPOSE)
    user = selectors.user_by_phone_index(phone_index=phone_index)
    if user is not None:
        return user, False
    user = CareUser(
        phone=phone,
        phone_index=phone_index,
        name=payload.user_name or None,
        language=payload.user_language,
        source=platform.user_source,
        source_platform=platform,
    )
    if _insert_unless_conflict(user):
        return user, True
    # Another request created this user since our read (it committed: the INSERT waited for it).
    user = selectors.user_by_phone_index(phone_index=phone_index)
    if user is None:
        raise IntegrityError("leads_careuser: insert ignored but no user has this phone_index")
    return user, False


def _insert_unless_conflict(user: CareUser) -> bool:
    """Insert `user` in a savepoint; False when a unique column conflicts (another request created the
    same phone's user since our read: the INSERT waited for it to commit). The savepoint keeps the
    caller's transaction usable after the unique violation."""
    try:
        with transaction.atomic():
            user.save(force_insert=True)
    except IntegrityError:
        return False
    return True


def _lead_create(*, platform: PartnerPlatform, payload: LeadInput, phone: str, actor: Actor) -> Lead:
    user, is_new_user = _user_get_or_create(platform=platform, payload=payload, phone=phone)
    welcome_id = ""
    try:
        message = message_queue(
            channel="sms",
            recipient=phone,
            body=welcome_text(language=payload.user_language, user_name=payload.user_name, partner_name=platform.name),
            purpose=WELCOME_PURPOSE,
            actor=actor,
        )
        welcome_id = message.public_id
    except InvalidRecipientError:
        # A number messaging cannot text: the lead still counts, CareOS just cannot contact by SMS.
        logger.warning("lead from %s: welcome SMS not queued (recipient refused by messaging)", platform.slug)
    category = careos_category(payload.category)
    lead = Lead.objects.create(
        platform=platform,
        source_conversation_id=payload.source_conversation_id,
        user=user,
        is_new_user=is_new_user,
        user_name=payload.user_name or None,
        language=payload.user_language,
        location_state=payload.location_state,
        location_country=payload.location_country,
        location_city=payload.location_city,
        source_category=payload.category.strip(),
        category=category,
        subcategory=payload.subcategory,
        original_message=payload.original_message,
        ai_extracted_details=payload.ai_extracted_details,
        consent_timestamp=payload.consent_timestamp,
        lead_value=payload.lead_value,
        will_contact=bool(welcome_id),
        welcome_message_id=welcome_id,
    )
    PartnerPayment.objects.create(
        lead=lead,
        platform=platform,
        amount=payload.lead_value,
        status=PartnerPayment.Status.PENDING,
        due_at=lead.created_at + PAYMENT_DUE_AFTER,
    )
    audit_event_record(
        action="leads.lead_ingested",
        actor=actor,
        subject_type="leads.lead",
        subject_id=lead.public_id,
        metadata={
            "lead_id": lead.public_id,
            "user_id": user.public_id,
            "platform": platform.slug,
            "category": category,
            "is_new_user": is_new_user,
            "will_contact": lead.will_contact,
            "welcome_message_id": welcome_id,
            "amount": str(payload.lead_value),
        },
    )
    return lead
