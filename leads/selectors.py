"""Reads of the CareOS leads domain, scoped to the partner platform asking."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Sum

from audit.models import AuditEvent
from core.compiled_query import CompiledQuery
from core.kept_cursor import fetch_all
from leads.models import (
    CareosKeyPair,
    CareUser,
    Lead,
    PartnerPayment,
    PartnerPlatform,
    PartnerUser,
    PlatformApiKey,
)

# The audit action recording that a platform was given a pair's public key (leads.services.platforms).
KEYPAIR_GIVEN_ACTION = "leads.rsa_public_key_given"


def _one(queryset: QuerySet):
    """The row of a lookup on a unique key, or None: LIMIT 1 without the ORDER BY `.first()` adds."""
    return next(iter(queryset.order_by()[:1]), None)


def lead_for_conversation(*, platform: PartnerPlatform, source_conversation_id: str) -> Lead | None:
    """The platform's lead for one of its conversations (the idempotency key), with its user.

    On ingest this read usually finds nothing, so it asks for the id alone first (a narrow query, much
    cheaper to build and run than the lead joined to its user); only a hit loads the lead and user."""
    lead_id = _one(
        Lead.objects.filter(platform_id=platform.pk, source_conversation_id=source_conversation_id).values_list(
            "pk", flat=True
        )
    )
    if lead_id is None:
        return None
    return lead_by_id(lead_id=lead_id)


@dataclass(frozen=True)
class IngestPrelude:
    """What the ingest reads before its transaction, in one round trip (`ingest_prelude`)."""

    lead_id: int | None  # the platform's lead for the conversation (a replay), if any
    # The active key pairs' private PEMs, newest first, Fernet-encrypted as stored (leads.crypto decrypts).
    stored_private_pems: tuple[str, ...]
    # Those pairs' primary keys, in the same order (the lead records which pair decrypted it).
    pair_ids: tuple[int, ...] = ()


def _ingest_prelude_sql() -> str:
    lead, pair = Lead._meta, CareosKeyPair._meta
    column = {f.name: f.column for m in (lead, pair) for f in m.concrete_fields}
    # Table and column names from the models only, values always parameters. The lead part has at most one
    # row (leads_one_per_conversation); the key part (its lead_id column holds the pair's id) is ordered
    # newest first after it.
    return (
        f'SELECT 0 AS part, "{column["id"]}" AS lead_id, NULL AS private_pem, NULL AS created_at '  # noqa: S608
        f'FROM "{lead.db_table}" '
        f'WHERE "{lead.get_field("platform").column}" = %s AND "{column["source_conversation_id"]}" = %s '
        f'UNION ALL SELECT 1, "{column["id"]}", "{column["private_pem"]}", "{column["created_at"]}" '
        f'FROM "{pair.db_table}" WHERE "{column["retired_at"]}" IS NULL '
        "ORDER BY part, created_at DESC"
    )


_INGEST_PRELUDE_SQL = _ingest_prelude_sql()


def ingest_prelude(*, platform: PartnerPlatform, source_conversation_id: str) -> IngestPrelude:
    """The replay key's lead id and the key ring together: one statement instead of two (issue 15). The ring
    is read on every ingest (never cached across requests), so a retired pair stops decrypting at once."""
    lead_id = None
    pems, pair_ids = [], []
    # On PostgreSQL bound by the server and prepared once per connection (core.kept_cursor).
    for part, row_id, private_pem, _created_at in fetch_all(
        connections[DEFAULT_DB_ALIAS], _INGEST_PRELUDE_SQL, [platform.pk, source_conversation_id]
    ):
        if part == 0:
            lead_id = row_id
        else:
            pems.append(private_pem)
            pair_ids.append(row_id)
    return IngestPrelude(lead_id=lead_id, stored_private_pems=tuple(pems), pair_ids=tuple(pair_ids))


# Asked on every CareOS request: the ORM spent more CPU building and compiling this join than the database
# spent running it (issue 15), so it is compiled once per process (core.compiled_query).
_UNREVOKED_API_KEY = CompiledQuery(
    lambda key_id, environment, platform_slug: (
        PlatformApiKey.objects.select_related("platform")
        .filter(
            key_id=key_id,
            environment=environment,
            platform__slug=platform_slug,
            platform__status=PartnerPlatform.Status.ACTIVE,
            revoked_at__isnull=True,
        )
        .order_by()[:1]
    ),
    strs=("key_id", "environment", "platform_slug"),
)


def unrevoked_api_key(*, key_id: str, environment: str, platform_slug: str) -> PlatformApiKey | None:
    """The unrevoked key `key_id` of the active platform `platform_slug`, with its platform, or None (expiry
    and the secret are the caller's checks). One statement; the instances are the ORM's (every field's
    converters: the platform's encrypted fields are decrypted on read)."""
    return _UNREVOKED_API_KEY.one(key_id=key_id, environment=environment, platform_slug=platform_slug)


def lead_by_id(*, lead_id: int) -> Lead | None:
    """A lead with its user and the platform's id for the person (the replay answer)."""
    return _one(Lead.objects.select_related("user", "partner_user").filter(pk=lead_id))


def user_by_phone_index(*, phone_index: str, lock: bool = False) -> CareUser | None:
    """The person with this phone index; `lock`: SELECT ... FOR UPDATE (inside the caller's transaction)."""
    users = CareUser.objects.filter(phone_index=phone_index)
    return _one(users.select_for_update() if lock else users)


def partner_user_for(*, platform: PartnerPlatform, user: CareUser) -> PartnerUser | None:
    """The person's id as this platform knows it, if the platform referred them before."""
    return _one(PartnerUser.objects.filter(platform_id=platform.pk, user_id=user.pk))


def paid_lead_since(*, user: CareUser, since: datetime) -> Lead | None:
    """The person's latest lead, from any platform, created after `since` that earned a payment (whatever
    the payment's status since): while there is one, a new lead for the person is not paid."""
    return (
        Lead.objects.filter(user_id=user.pk, created_at__gt=since, payment__isnull=False)
        .order_by("-created_at", "-pk")
        .first()
    )


PAYOUT_EXPORT_FIELDS = (
    "batch__public_id",
    "platform__slug",
    "platform__name",
    "batch__backend",
    "batch__platform__stripe_account_id",
    "lead__public_id",
    "amount",
    "currency",
    "status",
    "batch__status",
    "batch__provider_reference",
    "created_at",
    "due_at",
    "paid_at",
)


def payout_export_rows(*, batch_pks: list[int]):
    """The payments of these batches, one tuple of PAYOUT_EXPORT_FIELDS each, in batch then payment order;
    a values_list to stream with `.iterator()` (leads.admin.payouts makes the CSV row)."""
    return (
        PartnerPayment.objects.filter(batch_id__in=batch_pks)
        .order_by("batch__created_at", "batch_id", "pk")
        .values_list(*PAYOUT_EXPORT_FIELDS)
    )


# --- Staff admin: what an irreversible action would stop, and for whom ------------------------------------


@dataclass(frozen=True)
class PlatformUse:
    """A platform and when it last did something with a key pair (received it, or had a lead decrypted)."""

    slug: str
    name: str
    at: datetime


@dataclass(frozen=True)
class KeyPairUsage:
    pair: CareosKeyPair
    handed_out: bool  # the newest active pair: the public key partners are given now
    # Each platform whose leads this pair decrypted, with its latest such lead, newest first.
    decrypted_for: tuple[PlatformUse, ...]
    # Each platform recorded as given this public key (`keypair_handout_record`), latest first.
    given_to: tuple[PlatformUse, ...]

    @property
    def last_decrypted_at(self) -> datetime | None:
        return self.decrypted_for[0].at if self.decrypted_for else None


def handed_out_keypair() -> CareosKeyPair | None:
    """The pair whose public key partners are given now (the newest active one; leads.crypto)."""
    return CareosKeyPair.objects.filter(retired_at__isnull=True).order_by("-created_at", "-pk").first()


def active_keypair_count() -> int:
    return CareosKeyPair.objects.filter(retired_at__isnull=True).count()


def keypair_decrypts(*, pair: CareosKeyPair) -> tuple[PlatformUse, ...]:
    """Per platform, its latest lead this pair decrypted (`Lead.key_pair`), newest first: one query, one
    index probe per platform (leads_lead_keypair_use), however many leads the pair decrypted."""
    latest = (
        Lead.objects.filter(platform_id=OuterRef("pk"), key_pair_id=pair.pk)
        .order_by("-created_at")
        .values("created_at")[:1]
    )
    rows = (
        PartnerPlatform.objects.annotate(last_lead_at=Subquery(latest))
        .filter(last_lead_at__isnull=False)
        .order_by("-last_lead_at", "slug")
        .values_list("slug", "name", "last_lead_at")
    )
    return tuple(PlatformUse(slug, name, at) for slug, name, at in rows)


def keypair_handouts(*, pair: CareosKeyPair) -> tuple[PlatformUse, ...]:
    """The platforms recorded as given this pair's public key (audit `leads.rsa_public_key_given`), each
    once with its latest time."""
    events = AuditEvent.objects.filter(
        action=KEYPAIR_GIVEN_ACTION, subject_type="leads.rsa_key", subject_id=pair.fingerprint
    ).order_by("-created_at")
    latest: dict[str, datetime] = {}
    for metadata, created_at in events.values_list("metadata", "created_at")[:500]:
        slug = (metadata or {}).get("platform")
        if isinstance(slug, str) and slug not in latest:
            latest[slug] = created_at
    names = dict(PartnerPlatform.objects.filter(slug__in=latest).values_list("slug", "name")) if latest else {}
    return tuple(PlatformUse(slug, names.get(slug, slug), at) for slug, at in latest.items())


def keypair_usages(*, pairs: list[CareosKeyPair]) -> list[KeyPairUsage]:
    """What the retire page shows for each pair (a few queries per pair; pairs are few)."""
    current = handed_out_keypair()
    return [
        KeyPairUsage(
            pair=pair,
            handed_out=current is not None and pair.pk == current.pk,
            decrypted_for=keypair_decrypts(pair=pair),
            given_to=keypair_handouts(pair=pair),
        )
        for pair in pairs
    ]


@dataclass(frozen=True)
class PlatformStanding:
    """What suspending a platform stops: its valid keys, and the money and leads it has in flight."""

    platform: PartnerPlatform
    valid_live_keys: int
    valid_test_keys: int
    pending_payments: int
    pending_amount: Decimal
    leads_last_30_days: int


def platform_standings(*, platform_pks: list[int], now: datetime) -> list[PlatformStanding]:
    """One query for all the given platforms (counts as subqueries, each on an index)."""
    valid = Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))

    def keys(environment: str):
        return Subquery(
            PlatformApiKey.objects.filter(valid, platform_id=OuterRef("pk"), environment=environment)
            .order_by()
            .values("platform_id")
            .annotate(n=Count("pk"))
            .values("n")
        )

    pending = PartnerPayment.objects.filter(platform_id=OuterRef("pk"), status=PartnerPayment.Status.PENDING).order_by()
    rows = PartnerPlatform.objects.filter(pk__in=platform_pks).annotate(
        live=keys(PlatformApiKey.Environment.LIVE),
        test=keys(PlatformApiKey.Environment.TEST),
        pending_n=Subquery(pending.values("platform_id").annotate(n=Count("pk")).values("n")),
        pending_sum=Subquery(pending.values("platform_id").annotate(s=Sum("amount")).values("s")),
        recent_leads=Subquery(
            Lead.objects.filter(platform_id=OuterRef("pk"), created_at__gte=now - timedelta(days=30))
            .order_by()
            .values("platform_id")
            .annotate(n=Count("pk"))
            .values("n")
        ),
    )
    return [
        PlatformStanding(
            platform=row,
            valid_live_keys=row.live or 0,
            valid_test_keys=row.test or 0,
            pending_payments=row.pending_n or 0,
            pending_amount=_cents(row.pending_sum),
            leads_last_30_days=row.recent_leads or 0,
        )
        for row in rows.order_by("slug")
    ]


def other_valid_keys(*, api_keys: list[PlatformApiKey], now: datetime) -> dict[tuple[int, str], int]:
    """Per (platform pk, environment) of these keys: how many valid keys it keeps once they are revoked."""
    targets = {(key.platform_id, key.environment) for key in api_keys}
    if not targets:
        return {}
    rows = (
        PlatformApiKey.objects.filter(
            Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now)),
            platform_id__in={platform_pk for platform_pk, _ in targets},
        )
        .exclude(pk__in=[key.pk for key in api_keys])
        .values("platform_id", "environment")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts = {(row["platform_id"], row["environment"]): row["n"] for row in rows}
    return {target: counts.get(target, 0) for target in targets}


def payout_batch_payments(*, batch_pks: list[int]) -> dict[int, tuple[int, Decimal]]:
    """Per batch: how many payments it holds and their total."""
    rows = (
        PartnerPayment.objects.filter(batch_id__in=batch_pks)
        .values("batch_id")
        .annotate(n=Count("pk"), total=Sum("amount"))
        .order_by()
    )
    return {row["batch_id"]: (row["n"], _cents(row["total"])) for row in rows}


def _cents(value) -> Decimal:
    # SUM comes back as 25 or 25.0 on SQLite: always two places, as stored.
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))
