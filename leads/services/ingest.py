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
3. One transaction, the only writes: the person (`CareUser`), deduplicated by `blind_index(E.164,
   purpose="leads.user.phone")` (a UNIQUE column): reused, or created with the platform's `user_source`
   ("businessos_referral"); then, holding that person's row lock, the rules that cross partners
   (docs/careos.md, "Partners see only their own"):
   - the person's id as THIS platform knows it (`PartnerUser`, one per platform and person, unrelated
     ids), and `is_new_user` = this platform had no lead for the person before;
   - the welcome SMS (`messaging.message_new`, in the lead's language: en, es, fr, else en; it quotes
     neither the user's message nor any health detail) unless the person got one within the period
     (`CAREOS_REFERRAL_PERIOD_DAYS`, whichever platform referred them); `careos_will_contact` is true
     either way, false only when messaging refuses the number (a property of the number alone);
   - a pending PartnerPayment of `lead_value_agreed` due 30 days after the lead, only if no lead for the
     person earned one within the period (else the lead is recorded as an unpaid `duplicate_of` it);
   then the lead (CareOS category from `leads.categories`) and the audit event `leads.lead_ingested`
   (ids and codes only), all by the partner platform's actor. The answer is the same whatever other
   platforms sent: a partner cannot tell a person another partner referred from a new one.
Steps 1 and 2 only read, so they run before the transaction opens: a replay costs one read, and the
RSA work never holds a transaction (or, on SQLite, the write lock) open. On PostgreSQL the welcome SMS and
its audit event, the new partner id, the lead and its payment are written by one statement (`_rows_insert`:
data-modifying CTEs, each INSERT taking the id the one before it returned); a conflict in any of them writes
none of them.

The caller may hand in the request's access row (`access_row`, audit.middleware.access_row_join): it is
inserted by the same statement as the lead and its audit event, so the lead, its payment, its SMS row, their
audit events and the access row commit together in one durable commit (issue 15). If the transaction rolls
back (a replay race below), that row goes with it and the access-log middleware writes the request's row.

Step 1 reads the key ring in the same statement (`selectors.ingest_prelude`), so the RSA work needs no
read of its own. The lead records which stored pair decrypted its phone (`Lead.key_pair`, no extra
statement): the admin derives a pair's last decrypt and its platforms from it before retiring it.

Concurrent duplicates are settled by the database, not by the reads: the user is inserted with
`ON CONFLICT (phone_index) DO NOTHING` (no read before it, no savepoint); when another request holds or
created that phone, the INSERT waits for it and stands down, and the person is then read and locked
(SELECT ... FOR UPDATE). So every lead holds the person's row lock, and two platforms sending the same
person at once are serialized: one welcome SMS, one payment. A unique violation on the lead means
another request took this conversation: the transaction (including the user, the SMS row and its
on-commit enqueue) is rolled back, and the other request's lead is returned as a replay. Under READ
COMMITTED the re-reads after a conflict or a lock wait see the other transaction's rows.

Refusals are `IngestRejected` (a `core.domain.Invalid`: the API answers 400 with its message). Nothing
here logs or raises with a phone number, a name or message text.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction

from audit.models import AccessLog
from audit.services import audit_event_new
from core.actors import Actor
from core.domain import Invalid
from core.encryption import blind_index
from core.kept_cursor import fetch_one
from core.phones import InvalidPhone, normalize_e164
from core.time import utc_now
from leads import crypto, selectors
from leads.categories import careos_category
from leads.models import CareUser, Lead, PartnerPayment, PartnerPlatform, PartnerUser
from messaging.services import InvalidRecipientError, PendingMessage, message_new, normalize_recipient

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
    location_state: str = field(default="", repr=False)  # protected like the city (encrypted at rest)
    location_country: str = ""
    location_city: str = field(default="", repr=False)
    subcategory: str = field(default="", repr=False)
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


def verified_phone(*, platform: PartnerPlatform, payload: LeadInput, keys=None) -> tuple[str, int]:
    """The lead's phone in E.164, after decryption and the hash check, and the position in `keys` of the
    key that decrypted it; IngestRejected otherwise."""
    try:
        plaintext, key_position = crypto.decrypt_phone_and_key(payload.user_phone_encrypted, keys)
    except crypto.DecryptionFailed:
        raise IngestRejected(DECRYPTION_FAILED) from None
    expected = spec_phone_hash(plaintext, platform.phone_hash_salt).encode("ascii")
    presented = payload.user_phone_hash.lower().encode("utf-8")
    if not hmac.compare_digest(expected, presented):
        raise IngestRejected(PHONE_HASH_MISMATCH)
    return e164(plaintext, region=payload.location_country or None), key_position


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


def lead_ingest(
    *,
    platform: PartnerPlatform,
    payload: LeadInput,
    actor: Actor,
    keys=None,
    now: datetime | None = None,
    access_row: Callable[[Lead], AccessLog | None] | None = None,
) -> IngestResult:
    """Replay or create the lead for (platform, source_conversation_id); see the module docstring.
    `actor` is the calling platform (`Actor.partner_platform(slug)`); `now` the lead's time (the period
    rules compare it). Raises IngestRejected (nothing written) for an undecryptable, mismatched or
    invalid phone. `access_row(lead)`, called inside the write transaction for a new lead only, may give
    an unsaved row to insert with it (audit.middleware.access_row_join); a replay writes nothing.

    Not `@transaction.atomic` as a whole on purpose: the replay read and the RSA work run before the one
    write transaction (`_lead_create`), so they never hold it (or SQLite's write lock) open."""
    prelude = selectors.ingest_prelude(platform=platform, source_conversation_id=payload.source_conversation_id)
    if prelude.lead_id is not None:
        existing = selectors.lead_by_id(lead_id=prelude.lead_id)
        if existing is not None:
            return IngestResult(lead=existing, replayed=True)
    # The pair of each key tried, by position: None for CAREOS_PRIVATE_KEY (first) or keys a caller gave.
    key_pair_ids: tuple[int | None, ...] = ()
    if keys is None:
        keys = crypto.private_keys_from_stored(prelude.stored_private_pems)
        key_pair_ids = (None,) * (len(keys) - len(prelude.pair_ids)) + prelude.pair_ids
    phone, key_position = verified_phone(platform=platform, payload=payload, keys=keys)
    key_pair_id = key_pair_ids[key_position] if key_position < len(key_pair_ids) else None
    textable = _textable(phone)
    now = now or utc_now()
    try:
        with transaction.atomic():
            lead = _lead_create(
                platform=platform,
                payload=payload,
                phone=phone,
                textable=textable,
                key_pair_id=key_pair_id,
                actor=actor,
                now=now,
                access_row=access_row,
            )
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


def referral_period() -> timedelta:
    """At most one welcome SMS and one paid lead per person within this period (any platform)."""
    return timedelta(days=settings.CAREOS_REFERRAL_PERIOD_DAYS)


def _user_insert_or_lock(
    *, platform: PartnerPlatform, payload: LeadInput, phone: str, welcome_sent_at: datetime | None
) -> tuple[CareUser, bool]:
    """The person with this phone, locked by this transaction, and whether this request created them.

    One statement for a new person (an INSERT that stands down on the phone index, so no read before it and
    no savepoint); a known person costs that INSERT and the locking read. A new person is created with
    `welcome_sent_at` already set when their welcome SMS is about to be queued (no UPDATE after it)."""
    phone_index = blind_index(phone, purpose=PHONE_INDEX_PURPOSE)
    user = CareUser(
        phone=phone,
        phone_index=phone_index,
        name=payload.user_name or None,
        language=payload.user_language,
        source=platform.user_source,
        source_platform=platform,
        welcome_sent_at=welcome_sent_at,
    )
    if _insert_unless_phone_taken(user):
        return user, True
    # Another request created this person (it committed: our INSERT waited for it). Every lead for one
    # person takes this lock first, so the period rules hold when several platforms (or conversations)
    # send the same person at once. A person this transaction inserted is locked already (others wait
    # on its phone_index) and has no leads yet.
    user = selectors.user_by_phone_index(phone_index=phone_index, lock=True)
    if user is None:
        raise IntegrityError("leads_careuser: insert ignored but no user has this phone_index")
    return user, False


def _partner_user_get_or_new(
    *, platform: PartnerPlatform, user: CareUser, new_person: bool, now: datetime
) -> tuple[PartnerUser, bool]:
    """The person's id for this platform, and whether it is new (the platform's first lead for them; not
    saved yet: `_rows_insert` inserts it with the lead). Called under the person's row lock, so no other
    request creates the same pair meanwhile (a plain INSERT, no savepoint); a person created by this request
    has no id anywhere yet (no lookup)."""
    partner_user = None if new_person else selectors.partner_user_for(platform=platform, user=user)
    if partner_user is not None:
        return partner_user, False
    return PartnerUser(platform=platform, user=user, created_at=now), True


def _rows_insert(rows: list[tuple[models.Model, dict[str, int]]]) -> None:
    """Insert unsaved model instances in order, each `(instance, links)`: `links` maps a foreign key's attname
    to the position in `rows` of an earlier instance whose new primary key it takes.

    On PostgreSQL one statement whatever the number of rows (data-modifying CTEs, each INSERT taking the
    ids it needs from an earlier one's RETURNING): the partner id, the lead and its payment cost one round
    trip instead of three (issue 15). Values are prepared by each field as the ORM prepares them
    (encryption, auto_now), names come from the models only, values are always parameters. Elsewhere
    (SQLite, the embedded default) one ORM INSERT per row. Either way a constraint violation raises
    IntegrityError and inserts nothing of that statement."""
    if connection.vendor != "postgresql":
        for instance, links in rows:
            _link(rows, only=(instance, links))
            instance.save(force_insert=True)
        return
    ctes, params = [], []
    for position, (instance, links) in enumerate(rows):
        meta = instance._meta
        fields = [column for column in meta.concrete_fields if not column.primary_key]
        values = []
        for model_field in fields:
            if model_field.attname in links:
                earlier = links[model_field.attname]
                values.append(f'(SELECT "{rows[earlier][0]._meta.pk.column}" FROM r{earlier})')  # noqa: S608
            else:
                values.append("%s")
                params.append(model_field.get_db_prep_save(model_field.pre_save(instance, True), connection))
        columns = ", ".join(f'"{column.column}"' for column in fields)
        ctes.append(
            f'r{position} AS (INSERT INTO "{meta.db_table}" ({columns}) VALUES ({", ".join(values)}) '  # noqa: S608
            f'RETURNING "{meta.pk.column}")'
        )
    selects = ", ".join(f"(SELECT * FROM r{position})" for position in range(len(rows)))  # noqa: S608
    # ~100 parameters: bound by the server, the statement prepared once per connection and shape (core.kept_cursor).
    ids = fetch_one(connection, f"WITH {', '.join(ctes)} SELECT {selects}", params)
    for (instance, _links), pk in zip(rows, ids, strict=True):
        instance.pk = pk
        instance._state.adding = False
        instance._state.db = connection.alias
    _link(rows)


def _link(rows: list[tuple[models.Model, dict[str, int]]], only=None) -> None:
    """Point each linked foreign key (of `only`, one of `rows`, or of all) at its saved row, through the
    relation: the id and the cached object both, so reading `lead.partner_user` afterwards costs no query."""
    for instance, links in rows if only is None else [only]:
        for attname, position in links.items():
            relation = next(field for field in instance._meta.concrete_fields if field.attname == attname)
            setattr(instance, relation.name, rows[position][0])


def _careuser_insert_statement() -> tuple[str, list]:
    """INSERT ... ON CONFLICT (phone_index) DO NOTHING RETURNING id (PostgreSQL, SQLite >= 3.35), and the
    model fields in its column order. Names from the model only, values always parameters."""
    meta = CareUser._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    columns = ", ".join(f'"{field.column}"' for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = (
        f'INSERT INTO "{meta.db_table}" ({columns}) VALUES ({placeholders}) '  # noqa: S608
        f'ON CONFLICT ("{meta.get_field("phone_index").column}") DO NOTHING RETURNING "{meta.pk.column}"'
    )
    return sql, fields


_CAREUSER_INSERT, _CAREUSER_FIELDS = _careuser_insert_statement()


def _insert_unless_phone_taken(user: CareUser) -> bool:
    """Insert `user`; False (nothing written, the transaction still usable) when another request's person
    has the same phone_index: the INSERT waited for that request to commit. Any other unique conflict
    (a public_id) still raises IntegrityError. Values are prepared by each field, as the ORM prepares them
    (encryption, auto_now_add)."""
    params = [field.get_db_prep_save(field.pre_save(user, True), connection) for field in _CAREUSER_FIELDS]
    row = fetch_one(connection, _CAREUSER_INSERT, params)
    if row is None:
        return False
    user.pk = row[0]
    user._state.adding = False
    user._state.db = connection.alias
    return True


def _textable(phone: str) -> bool:
    """Whether messaging accepts this number for SMS (a property of the number alone), decided before the
    transaction so a new person's row carries its welcome time from the start."""
    try:
        normalize_recipient("sms", phone)
    except InvalidRecipientError:
        return False
    return True


@dataclass(frozen=True)
class Welcome:
    outcome: str  # "queued" | "recent" (one within the period, none sent) | "refused" (by messaging)
    message: PendingMessage | None = None  # queued: its rows, inserted with the lead's

    @property
    def will_contact(self) -> bool:
        return self.outcome != "refused"

    @property
    def message_id(self) -> str:
        return self.message.message.public_id if self.message is not None else ""


def _welcome_new(
    *,
    user: CareUser,
    new_person: bool,
    textable: bool,
    platform: PartnerPlatform,
    payload: LeadInput,
    phone: str,
    actor: Actor,
    now: datetime,
) -> Welcome:
    """The welcome SMS to queue, if any: its rows are inserted with the lead's (`_lead_create`). A new person's
    row already carries `welcome_sent_at = now` when `textable` (_user_insert_or_lock)."""
    if not new_person and user.welcome_sent_at is not None and user.welcome_sent_at > now - referral_period():
        # One welcome per person per period whoever referred them: more would be spam. CareOS is in touch
        # with the person either way, so careos_will_contact stays true (as for a new person).
        return Welcome(outcome="recent")
    try:
        if not textable:
            raise InvalidRecipientError("not an SMS recipient")
        message = message_new(
            channel="sms",
            recipient=phone,
            body=welcome_text(language=payload.user_language, user_name=payload.user_name, partner_name=platform.name),
            purpose=WELCOME_PURPOSE,
            actor=actor,
        )
    except InvalidRecipientError:
        # A number messaging cannot text: the lead still counts, CareOS just cannot contact by SMS.
        # (message_new validates and writes nothing, so this transaction is intact.)
        logger.warning("lead from %s: welcome SMS not queued (recipient refused by messaging)", platform.slug)
        if user.welcome_sent_at == now:  # a new person marked in advance (only if _textable was wrong)
            user.welcome_sent_at = None
            user.save(update_fields=["welcome_sent_at"])
        return Welcome(outcome="refused")
    if user.welcome_sent_at != now:
        user.welcome_sent_at = now
        user.save(update_fields=["welcome_sent_at"])
    return Welcome(outcome="queued", message=message)


def _lead_create(
    *,
    platform: PartnerPlatform,
    payload: LeadInput,
    phone: str,
    textable: bool,
    key_pair_id: int | None,
    actor: Actor,
    now: datetime,
    access_row: Callable[[Lead], AccessLog | None] | None = None,
) -> Lead:
    user, new_person = _user_insert_or_lock(
        platform=platform, payload=payload, phone=phone, welcome_sent_at=now if textable else None
    )
    partner_user, is_new_user = _partner_user_get_or_new(platform=platform, user=user, new_person=new_person, now=now)
    welcome = _welcome_new(
        user=user,
        new_person=new_person,
        textable=textable,
        platform=platform,
        payload=payload,
        phone=phone,
        actor=actor,
        now=now,
    )
    duplicate_of = None if new_person else selectors.paid_lead_since(user=user, since=now - referral_period())
    category = careos_category(payload.category)
    lead = Lead(
        platform=platform,
        source_conversation_id=payload.source_conversation_id,
        user=user,
        partner_user=partner_user,
        is_new_user=is_new_user,
        duplicate_of=duplicate_of,
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
        will_contact=welcome.will_contact,
        welcome_message_id=welcome.message_id,
        key_pair_id=key_pair_id,
        created_at=now,
    )
    # The welcome SMS and its audit event (if queued), the new partner id (if any), the lead, its payment (if
    # payable), its audit event and the request's access row (if the caller gave one): one INSERT statement.
    rows: list[tuple[models.Model, dict[str, int]]] = []
    if welcome.message is not None:
        rows += [(welcome.message.message, {}), (welcome.message.event, {})]
    if is_new_user:
        rows.append((partner_user, {}))
    rows.append((lead, {"partner_user_id": len(rows) - 1} if is_new_user else {}))
    if duplicate_of is None:
        payment = PartnerPayment(
            lead=lead,
            platform=platform,
            amount=payload.lead_value,
            status=PartnerPayment.Status.PENDING,
            due_at=now + PAYMENT_DUE_AFTER,
        )
        rows.append((payment, {"lead_id": len(rows) - 1}))
    event = audit_event_new(
        action="leads.lead_ingested",
        actor=actor,
        subject_type="leads.lead",
        subject_id=lead.public_id,
        metadata={
            "lead_id": lead.public_id,
            "user_id": user.public_id,
            "partner_user_id": partner_user.public_id,
            "platform": platform.slug,
            "category": category,
            "is_new_user": is_new_user,
            "new_person": new_person,
            "will_contact": lead.will_contact,
            "welcome": welcome.outcome,
            "welcome_message_id": welcome.message_id,
            "amount": str(payload.lead_value),
            "payable": duplicate_of is None,
            "duplicate_of": duplicate_of.public_id if duplicate_of is not None else None,
        },
    )
    rows.append((event, {}))
    row = access_row(lead) if access_row is not None else None
    if row is not None:
        rows.append((row, {}))
    _rows_insert(rows)
    if welcome.message is not None:
        welcome.message.inserted()
    return lead
