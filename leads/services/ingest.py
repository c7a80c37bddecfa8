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
Steps 1 and 2 only read, so they run before any write: a replay costs one read, and the RSA work never
holds a transaction (or, on SQLite, the write lock) open. The welcome SMS is built (and messaging's check of
the number made) before the write too, so a new person's row carries its welcome time from the start.

The write, on PostgreSQL in autocommit (the API's case), first assumes a person nobody referred before
(`_new_person_lead_insert`): ONE statement (`_rows_insert`: data-modifying CTEs, each INSERT taking the ids it
needs from an earlier one's RETURNING) inserts the person with `ON CONFLICT (phone_index) DO NOTHING`, and,
only if that INSERT inserted, the welcome SMS and its audit event, the person's id for this platform, the lead,
its payment, the lead's audit event and the request's access row. A single statement is its own transaction:
no BEGIN, no COMMIT, one durable commit for all of them (issue 15). When the phone is a known person's, that
INSERT waits for any transaction holding the phone, stands down, and the statement writes nothing; the lead is
then written by the transaction below. Elsewhere (SQLite, or inside a caller's transaction) only that
transaction runs.

The transaction (`_lead_create`) reads and locks the person (SELECT ... FOR UPDATE) after the one statement
stood down on their phone; otherwise it inserts the person the same way and, if that INSERT stands down, reads
and locks them. So every lead for a known person holds that person's row lock, and two
platforms sending the same person at once are serialized: one welcome SMS, one payment. The rules of step 3 are
read under the lock, and the lead's rows are one statement as above.

The caller may hand in the request's access row (`access_row`, audit.middleware.access_row_join): it is
inserted by the same statement as the lead and its audit event, so the lead, its payment, its SMS row, their
audit events and the access row commit together. If that statement or transaction writes nothing or rolls back
(a known person, a replay race), the row goes with it and is asked for again, or the access-log middleware
writes the request's row.

Step 1 reads the key ring in the same statement (`selectors.ingest_prelude`), so the RSA work needs no
read of its own. The lead records which stored pair decrypted its phone (`Lead.key_pair`, no extra
statement): the admin derives a pair's last decrypt and its platforms from it before retiring it.

Concurrent duplicates are settled by the database, not by the reads. A unique violation on the lead means
another request took this conversation: the statement or transaction (including the person, the SMS row and
its enqueue) writes nothing, and the other request's lead is returned as a replay. Under READ COMMITTED the
re-reads after a conflict or a lock wait see the other transaction's rows.

Refusals are `IngestRejected` (a `core.domain.Invalid`: the API answers 400 with its message). Nothing
here logs or raises with a phone number, a name or message text.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, models, transaction

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
from messaging.services import InvalidRecipientError, PendingMessage, message_new

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
    invalid phone. `access_row(lead)`, called as a new lead's write is built (again if the one statement
    stood down), may give an unsaved row to insert with it (audit.middleware.access_row_join); a replay writes
    nothing.

    Not `@transaction.atomic` as a whole on purpose: the replay read and the RSA work run before the write
    (one statement, or the transaction of `_lead_create`), so they never hold it (or SQLite's write lock) open."""
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
    lead_write = _LeadWrite(
        platform=platform,
        payload=payload,
        phone=phone,
        phone_index=blind_index(phone, purpose=PHONE_INDEX_PURPOSE),
        key_pair_id=key_pair_ids[key_position] if key_position < len(key_pair_ids) else None,
        actor=actor,
        now=now or utc_now(),
        welcome_message=_welcome_message(platform=platform, payload=payload, phone=phone, actor=actor),
        access_row=access_row,
    )
    try:
        one_statement = _one_statement_writes()
        lead = _new_person_lead_insert(lead_write) if one_statement else None
        if lead is None:  # a known person (or SQLite, or inside a caller's transaction)
            with transaction.atomic():
                lead = _lead_create(lead_write, person_known=one_statement)
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


@dataclass(frozen=True)
class _LeadWrite:
    """What the write needs, decided before it: the verified phone, the welcome SMS it would queue (None: messaging
    refuses the number), the lead's time."""

    platform: PartnerPlatform
    payload: LeadInput
    phone: str
    phone_index: str  # blind_index(phone, PHONE_INDEX_PURPOSE): the person's UNIQUE key
    key_pair_id: int | None
    actor: Actor
    now: datetime
    welcome_message: PendingMessage | None
    access_row: Callable[[Lead], AccessLog | None] | None


def _one_statement_writes() -> bool:
    """A new person's lead may be written by one statement that commits by itself: PostgreSQL, in autocommit
    (no transaction of a caller's open, so the statement is its own transaction and a failed one leaves no
    transaction to roll back)."""
    conn = connections[DEFAULT_DB_ALIAS]
    return conn.vendor == "postgresql" and conn.get_autocommit() and not conn.in_atomic_block


def referral_period() -> timedelta:
    """At most one welcome SMS and one paid lead per person within this period (any platform)."""
    return timedelta(days=settings.CAREOS_REFERRAL_PERIOD_DAYS)


def _new_person(write: _LeadWrite) -> CareUser:
    """The person a lead with this phone would create (unsaved). Their welcome time is set from the start when
    the lead queues their welcome SMS (no UPDATE after the INSERT)."""
    payload, platform = write.payload, write.platform
    return CareUser(
        phone=write.phone,
        phone_index=write.phone_index,
        name=payload.user_name or None,
        language=payload.user_language,
        source=platform.user_source,
        source_platform=platform,
        welcome_sent_at=write.now if write.welcome_message is not None else None,
    )


def _user_insert_or_lock(write: _LeadWrite, *, person_known: bool) -> tuple[CareUser, bool]:
    """The person with this phone, locked by this transaction, and whether this request created them.

    One statement for a new person (an INSERT that stands down on the phone index, so no read before it and
    no savepoint); a known person costs that INSERT and the locking read. `person_known`: the one statement
    just stood down on this phone, so the locking read comes first (the INSERT only if the person has gone
    since, e.g. erased)."""
    if person_known:
        user = selectors.user_by_phone_index(phone_index=write.phone_index, lock=True)
        if user is not None:
            return user, False
    user = _new_person(write)
    if _insert_unless_phone_taken(user):
        return user, True
    # Another request created this person (it committed: our INSERT waited for it). Every lead for one
    # person takes this lock first, so the period rules hold when several platforms (or conversations)
    # send the same person at once. A person this transaction inserted is locked already (others wait
    # on its phone_index) and has no leads yet.
    user = selectors.user_by_phone_index(phone_index=write.phone_index, lock=True)
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


# --- One statement for many rows -------------------------------------------------------------------------

Rows = list[tuple[models.Model, dict[str, int]]]


def _rows_insert(rows: Rows, *, unless_first_conflicts_on: str | None = None) -> bool:
    """Insert unsaved model instances in order, each `(instance, links)`: `links` maps a foreign key's attname
    to the position in `rows` of an earlier instance whose new primary key it takes. True once inserted.

    On PostgreSQL one statement whatever the number of rows (data-modifying CTEs, each INSERT taking the
    ids it needs from an earlier one's RETURNING): a lead's rows cost one round trip instead of one each
    (issue 15). With `unless_first_conflicts_on` (a unique field of the first row's model) the first row's
    INSERT stands down on a conflict on that field (waiting for a transaction that holds it), every other
    INSERT of the statement inserts only if it inserted, and the answer is False with nothing written.
    Values are prepared by each field as the ORM prepares them (encryption, auto_now), names come from the
    models only, values are always parameters. Elsewhere (SQLite, the embedded default) one ORM INSERT per
    row, and no `unless_first_conflicts_on`. Either way any other constraint violation raises IntegrityError
    and inserts nothing of that statement."""
    conn = connections[DEFAULT_DB_ALIAS]  # the wrapper itself: each field's preparation reads it (no proxy)
    if conn.vendor != "postgresql":
        if unless_first_conflicts_on is not None:
            raise ValueError("unless_first_conflicts_on is for PostgreSQL's one-statement insert")
        for instance, links in rows:
            _link(rows, only=(instance, links))
            instance.save(force_insert=True)
        return True
    shape = tuple((type(instance), tuple(sorted(links.items()))) for instance, links in rows)
    sql, valued_fields = _rows_insert_statement(shape, unless_first_conflicts_on)
    params = [
        field.get_db_prep_save(field.pre_save(instance, True), conn)
        for (instance, _links), fields in zip(rows, valued_fields, strict=True)
        for field in fields
    ]
    # ~100 parameters: bound by the server, the statement prepared once per connection and shape (core.kept_cursor).
    ids = fetch_one(conn, sql, params)
    if ids[0] is None:
        return False  # the first row's conflict: the statement inserted nothing
    for (instance, _links), pk in zip(rows, ids, strict=True):
        instance.pk = pk
        instance._state.adding = False
        instance._state.db = conn.alias
    _link(rows)
    return True


@functools.lru_cache(maxsize=32)
def _rows_insert_statement(shape: tuple, unless_first_conflicts_on: str | None) -> tuple[str, list[list]]:
    """`_rows_insert`'s statement for rows of these models and links (built once per shape), and the fields whose
    values are its parameters, row by row. A gated INSERT (after a first row that may stand down) selects its
    values FROM the first row's RETURNING, each parameter cast to its column's type without modifier (the
    column then checks length and precision on assignment, as for VALUES: a cast with one would truncate)."""
    conn = connections[DEFAULT_DB_ALIAS]
    ctes, valued_fields = [], []
    for position, (model, links) in enumerate(shape):
        meta, linked = model._meta, dict(links)
        gated = unless_first_conflicts_on is not None and position > 0
        fields = [column for column in meta.concrete_fields if not column.primary_key]
        values, valued = [], []
        for model_field in fields:
            if model_field.attname in linked:
                earlier = linked[model_field.attname]
                values.append(f'(SELECT "{shape[earlier][0]._meta.pk.column}" FROM r{earlier})')  # noqa: S608
            else:
                cast = f"::{_TYPE_MODIFIER.sub('', model_field.cast_db_type(conn))}" if gated else ""
                values.append(f"%s{cast}")
                valued.append(model_field)
        columns = ", ".join(f'"{column.column}"' for column in fields)
        into = f'INSERT INTO "{meta.db_table}" ({columns})'
        if gated:
            body = f"{into} SELECT {', '.join(values)} FROM r0"  # noqa: S608
        else:
            body = f"{into} VALUES ({', '.join(values)})"
            if position == 0 and unless_first_conflicts_on is not None:
                body += f' ON CONFLICT ("{meta.get_field(unless_first_conflicts_on).column}") DO NOTHING'
        ctes.append(f'r{position} AS ({body} RETURNING "{meta.pk.column}")')
        valued_fields.append(valued)
    selects = ", ".join(f"(SELECT * FROM r{position})" for position in range(len(shape)))  # noqa: S608
    return f"WITH {', '.join(ctes)} SELECT {selects}", valued_fields


_TYPE_MODIFIER = re.compile(r"\([^)]*\)")


def _link(rows: Rows, only=None) -> None:
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
    conn = connections[DEFAULT_DB_ALIAS]
    params = [field.get_db_prep_save(field.pre_save(user, True), conn) for field in _CAREUSER_FIELDS]
    row = fetch_one(conn, _CAREUSER_INSERT, params)
    if row is None:
        return False
    user.pk = row[0]
    user._state.adding = False
    user._state.db = conn.alias
    return True


# --- The welcome SMS and the lead --------------------------------------------------------------------------


def _welcome_message(
    *, platform: PartnerPlatform, payload: LeadInput, phone: str, actor: Actor
) -> PendingMessage | None:
    """The welcome SMS this lead would queue, validated by messaging and not inserted (None: messaging refuses
    the number, a property of the number alone). Built before the write, so a new person's row carries its
    welcome time from the start; a lead whose person had a welcome within the period discards it."""
    try:
        return message_new(
            channel="sms",
            recipient=phone,
            body=welcome_text(language=payload.user_language, user_name=payload.user_name, partner_name=platform.name),
            purpose=WELCOME_PURPOSE,
            actor=actor,
        )
    except InvalidRecipientError:
        # A number messaging cannot text: the lead still counts, CareOS just cannot contact by SMS.
        logger.warning("lead from %s: welcome SMS not queued (recipient refused by messaging)", platform.slug)
        return None


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


def _welcome_for(*, user: CareUser, new_person: bool, write: _LeadWrite) -> Welcome:
    """Whether this lead queues its welcome SMS. A known person's welcome time is updated (locked row) when it
    does; a new person's row carries it already (`_new_person`), so nothing is saved for them here."""
    now = write.now
    if not new_person and user.welcome_sent_at is not None and user.welcome_sent_at > now - referral_period():
        # One welcome per person per period whoever referred them: more would be spam. CareOS is in touch
        # with the person either way, so careos_will_contact stays true (as for a new person).
        return Welcome(outcome="recent")
    if write.welcome_message is None:
        return Welcome(outcome="refused")
    if user.welcome_sent_at != now:
        user.welcome_sent_at = now
        user.save(update_fields=["welcome_sent_at"])
    return Welcome(outcome="queued", message=write.welcome_message)


def _new_person_lead_insert(write: _LeadWrite) -> Lead | None:
    """A lead for a person nobody referred before, written by one statement in autocommit (PostgreSQL): the
    person, their welcome SMS and its audit event, their id for this platform, the lead, its payment, its audit
    event and the request's access row. The statement commits them together (one durable commit: no BEGIN, no
    COMMIT, no statement per row). None, with nothing written, when the phone is a known person's (the
    person's INSERT stood down on the phone index): the caller then takes the locking path (`_lead_create`).
    IntegrityError, nothing written, when another request took this conversation meanwhile."""
    user = _new_person(write)
    partner_user = PartnerUser(platform=write.platform, user=user, created_at=write.now)
    welcome = _welcome_for(user=user, new_person=True, write=write)
    lead, rows = _lead_rows(
        write, user=(user, True), partner_user=(partner_user, True), welcome=welcome, duplicate_of=None
    )
    if not _rows_insert(rows, unless_first_conflicts_on="phone_index"):
        return None
    if welcome.message is not None:
        welcome.message.inserted(committed=True)  # the statement returned: it committed
    return lead


def _lead_create(write: _LeadWrite, *, person_known: bool = False) -> Lead:
    """The lead inside the caller's transaction: the person inserted or locked first, then the rules that cross
    partners read under that lock (module docstring, step 3), then the lead's rows in one statement.
    `person_known`: the one statement stood down on this phone (`_user_insert_or_lock`)."""
    user, new_person = _user_insert_or_lock(write, person_known=person_known)
    partner_user = _partner_user_get_or_new(platform=write.platform, user=user, new_person=new_person, now=write.now)
    welcome = _welcome_for(user=user, new_person=new_person, write=write)
    duplicate_of = None if new_person else selectors.paid_lead_since(user=user, since=write.now - referral_period())
    lead, rows = _lead_rows(
        write, user=(user, new_person), partner_user=partner_user, welcome=welcome, duplicate_of=duplicate_of
    )
    _rows_insert(rows)
    if welcome.message is not None:
        welcome.message.inserted()
    return lead


def _lead_rows(
    write: _LeadWrite,
    *,
    user: tuple[CareUser, bool],
    partner_user: tuple[PartnerUser, bool],
    welcome: Welcome,
    duplicate_of: Lead | None,
) -> tuple[Lead, Rows]:
    """The lead and the rows to insert for it, in order: the person if unsaved, the welcome SMS and its audit
    event (if queued), the new partner id (if any), the lead, its payment (if payable), its audit event and the
    request's access row (if the caller gave one). `user` and `partner_user` are (instance, new)."""
    (person, new_person), (partner, is_new_user) = user, partner_user
    platform, payload, now = write.platform, write.payload, write.now
    category = careos_category(payload.category)
    lead = Lead(
        platform=platform,
        source_conversation_id=payload.source_conversation_id,
        user=person,
        partner_user=partner,
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
        key_pair_id=write.key_pair_id,
        created_at=now,
    )
    rows: Rows = []
    person_unsaved = person.pk is None
    if person_unsaved:
        rows.append((person, {}))
    if welcome.message is not None:
        rows += [(welcome.message.message, {}), (welcome.message.event, {})]
    person_link = {"user_id": 0} if person_unsaved else {}
    if is_new_user:
        rows.append((partner, person_link))
    lead_links = dict(person_link)
    if is_new_user:
        lead_links["partner_user_id"] = len(rows) - 1
    rows.append((lead, lead_links))
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
        actor=write.actor,
        subject_type="leads.lead",
        subject_id=lead.public_id,
        metadata={
            "lead_id": lead.public_id,
            "user_id": person.public_id,
            "partner_user_id": partner.public_id,
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
    row = write.access_row(lead) if write.access_row is not None else None
    if row is not None:
        rows.append((row, {}))
    return lead, rows
