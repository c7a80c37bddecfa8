"""Reads of the CareOS leads domain, scoped to the partner platform asking."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import QuerySet

from leads.models import CareosKeyPair, CareUser, Lead, PartnerPayment, PartnerPlatform, PartnerUser


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


def _ingest_prelude_sql() -> str:
    lead, pair = Lead._meta, CareosKeyPair._meta
    column = {f.name: f.column for m in (lead, pair) for f in m.concrete_fields}
    # Table and column names from the models only, values always parameters. The lead part has at most one
    # row (leads_one_per_conversation); the key part is ordered newest first after it.
    return (
        f'SELECT 0 AS part, "{column["id"]}" AS lead_id, NULL AS private_pem, NULL AS created_at '  # noqa: S608
        f'FROM "{lead.db_table}" '
        f'WHERE "{lead.get_field("platform").column}" = %s AND "{column["source_conversation_id"]}" = %s '
        f'UNION ALL SELECT 1, NULL, "{column["private_pem"]}", "{column["created_at"]}" '
        f'FROM "{pair.db_table}" WHERE "{column["retired_at"]}" IS NULL '
        "ORDER BY part, created_at DESC"
    )


_INGEST_PRELUDE_SQL = _ingest_prelude_sql()


def ingest_prelude(*, platform: PartnerPlatform, source_conversation_id: str) -> IngestPrelude:
    """The replay key's lead id and the key ring together: one statement instead of two (issue 15). The ring
    is read on every ingest (never cached across requests), so a retired pair stops decrypting at once."""
    lead_id = None
    pems = []
    with connection.cursor() as cursor:
        cursor.execute(_INGEST_PRELUDE_SQL, [platform.pk, source_conversation_id])
        for part, row_lead_id, private_pem, _created_at in cursor.fetchall():
            if part == 0:
                lead_id = row_lead_id
            else:
                pems.append(private_pem)
    return IngestPrelude(lead_id=lead_id, stored_private_pems=tuple(pems))


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


def payout_export_rows(*, batch_pks: list[int]):
    """The payments of these batches as CSV rows (batch, lead_id, amount, currency, created, due), in
    batch then payment order; a values_list to stream with `.iterator()`."""
    return (
        PartnerPayment.objects.filter(batch_id__in=batch_pks)
        .order_by("batch__created_at", "batch_id", "pk")
        .values_list("batch__public_id", "lead__public_id", "amount", "currency", "created_at", "due_at")
    )
